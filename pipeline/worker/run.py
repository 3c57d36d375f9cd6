"""Running a worker in this process: refuse an unguarded web port, set up logging, serve the metrics,
then hand the Faust app to Faust's own worker (which runs it until SIGINT/SIGTERM).

Faust's worker would otherwise write its own log format, colours and a start-up spinner; the subclass
here gives it churnwatch's format (:mod:`pipeline.config.logs`) and collapses a library's repeated log
lines during a broker outage.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

import faust

from pipeline.config.logs import configure_logging, logging_config
from pipeline.config.settings import Settings
from pipeline.web.webauth import check_bind
from pipeline.worker import metrics
from pipeline.worker.app import WorkerApp


class _OncePerMinute(logging.Filter):
    """Collapses repeats of the same library log line (aiokafka and Faust log every failed reconnect
    during a broker outage) to one per minute; churnwatch's own one-line WARNING says what happened."""

    def __init__(self, every_s: float = 60.0) -> None:
        super().__init__()
        self.every_s = every_s
        self.last: dict[tuple[str, Any], float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("churnwatch"):
            return True
        key = (record.name, record.msg)
        now = time.monotonic()
        if now - self.last.get(key, -1e9) < self.every_s:
            return False
        self.last[key] = now
        return True


def run_worker(settings: Settings, announce: Callable[[str], None] | None = None) -> None:
    """Run a worker in this process until SIGINT/SIGTERM. ``announce`` gets one line with the metrics and
    web addresses once the metrics server listens: with ``CHURNWATCH_METRICS_PORT=0`` that line is
    the only place the chosen port is told (for Prometheus' scrape config)."""
    check_bind(settings, settings.web_host, "worker web server")  # an unguarded public web port: not started
    configure_logging(settings.log_format, settings.log_level)  # before anything logs (Faust applies it again)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    worker = WorkerApp(settings)
    worker.core.open_store()  # refuses a state directory another worker holds, before anything starts
    worker.core.refresh_model()
    port = metrics.serve(settings.metrics_port, settings.metrics_host)
    if announce is not None:
        host = f"[{settings.metrics_host}]" if ":" in settings.metrics_host else settings.metrics_host
        announce(f"churnwatch worker: metrics on http://{host}:{port}/metrics, web server on "
                 f"{settings.web_advertised_url} (bound to {settings.web_host}:{settings.web_port})")
    level = {"WARNING": "warn", "CRITICAL": "crit"}.get(settings.log_level.upper(), settings.log_level.lower())
    faust_worker = _QuietWorker(worker.app, loglevel=level, quiet=True,
                                logging_config=logging_config(settings.log_format, settings.log_level))
    faust_worker.execute_from_commandline()


class _QuietWorker(faust.Worker):
    """Faust's worker with churnwatch's log format (:mod:`pipeline.config.logs`, passed as ``logging_config``),
    no terminal spinner, and :class:`_OncePerMinute` on the root handlers it sets up."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The spinner writes cursor escape codes even when stdout is no terminal; without it Faust
        # logs "Ready" instead.
        self.spinner = None

    def _setup_logging(self) -> None:
        super()._setup_logging()
        quiet = _OncePerMinute()
        for handler in logging.getLogger().handlers:
            handler.addFilter(quiet)
