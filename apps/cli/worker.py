"""``churnwatch worker``: one stream worker (Faust); more workers with the same settings share the
partitions. Its ports and the broker are checked first, so a mistake is one line, not a Faust traceback."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable

from apps.cli.args import common_flags, env_help, partitions_flag
from apps.cli.errors import known_errors
from apps.cli.inputs import listenable, settings_of
from pipeline.config.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    sp = sub.add_parser("worker", help="run a stream worker (Faust); more workers with the same settings share "
                                       "the partitions")
    sp.add_argument("--web-port", type=int, metavar="PORT",
                    help=env_help("web_port", "the worker's web server port (customer view, /health, /ready); "
                                               "one per worker on a host"))
    sp.add_argument("--metrics-port", type=int, metavar="PORT",
                    help=env_help("metrics_port", "Prometheus metrics port; 0: any free port, printed at start"))
    partitions_flag(sp)
    sp.add_argument("--emit-scores", action="store_true",
                    help="publish every scoring to the scores topic (env CHURNWATCH_EMIT_SCORES)")
    sp.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
                    help=env_help("log_level", "worker log level"))
    sp.add_argument("--log-format", choices=["text", "json"],
                    help=env_help("log_format", "log lines as text, or json: one JSON object per line"))
    common_flags(sp)
    sp.set_defaults(func=cmd_worker)


def _announcer(settings: Settings) -> Callable[[str], None]:
    """How the worker tells its addresses on stdout: a plain line, or with JSON logs a JSON log record
    (so that every line of its output stays one JSON object)."""
    if settings.log_format != "json":
        return lambda line: print(line, flush=True)
    from pipeline.config.logs import JsonFormatter

    formatter = JsonFormatter()

    def announce(line: str) -> None:
        record = logging.LogRecord("churnwatch.worker", logging.INFO, __file__, 0, line, None, None)
        print(formatter.format(record), flush=True)

    return announce


def cmd_worker(args: argparse.Namespace) -> int:
    from pipeline.config.logs import configure_logging
    from pipeline.kafka.connection import check_connection
    from pipeline.kafka.topics import ensure_topics
    from pipeline.web.webauth import check_bind
    from pipeline.worker.run import run_worker

    settings = settings_of(args)
    configure_logging(settings.log_format, settings.log_level)  # the connection and topic checks log too
    try:
        check_bind(settings, settings.web_host, "worker web server")  # before the broker is contacted
        # before the broker and the topics: a busy port is otherwise a traceback from inside Faust
        listenable(settings.web_host, settings.web_port, "--web-port or CHURNWATCH_WEB_PORT")
        listenable(settings.metrics_host, settings.metrics_port,
                    "--metrics-port or CHURNWATCH_METRICS_PORT (0: any free port)")
        cluster = check_connection(settings)
        plan = ensure_topics(settings, cluster).plan
        sys.argv = [sys.argv[0], "worker"]  # Faust's Worker parses argv itself
        run_worker(settings.with_(replication_factor=plan.replication_factor,
                                  min_insync_replicas=plan.min_insync_replicas), announce=_announcer(settings))
    except known_errors() as exc:
        if settings.log_format != "json":
            raise
        # with JSON logs the one-line error is a JSON line too (main() would print plain text)
        logging.getLogger("churnwatch.worker").error("churnwatch worker: error: %s", exc)
        return 2
    return 0
