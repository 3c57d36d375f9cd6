"""How the worker's log lines look: ``text`` for people, ``json`` for log shippers.

Why churnwatch configures this itself: Faust (through ``mode``) colours its log lines when *stdout* is a
terminal, even though the lines go to *stderr*, and its start-up spinner writes cursor escape codes
(``ESC[?25l`` / ``ESC[?25h``) whether or not anything is a terminal. A file, ``docker logs`` or a log
shipper then receives control characters. Here every record of every logger (churnwatch's, Faust's,
mode's, aiokafka's, Python warnings) goes through one handler on stderr whose formatter never emits an
escape code, except that ``text`` colours the level name when stderr itself is a terminal; escape codes
inside a message are removed too.

``json`` writes one object per record and line: ``ts`` (UTC, ISO-8601 with milliseconds), ``level``,
``logger``, ``message`` and, when the record carries one, ``exception`` (the formatted traceback) or
``stack``. A multi-line message (Faust prints tables) stays one line: JSON escapes the newlines.
"""

from __future__ import annotations

import logging
import logging.config
import re
import sys
import threading
from datetime import datetime, timezone
from types import TracebackType
from typing import IO, Any

import orjson

#: The values of ``CHURNWATCH_LOG_FORMAT``.
LOG_FORMATS = ("text", "json")

#: CSI sequences (colours, cursor movement, ``ESC[?25l``), OSC strings (window titles) and the other
#: escapes (``ESC c``, ``ESC ( B`` and the like).
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[ -/]*[0-~]")

_LEVEL_COLOURS = {"DEBUG": "34", "WARNING": "33", "ERROR": "31", "CRITICAL": "1;31"}


def strip_ansi(text: str) -> str:
    """``text`` without terminal escape sequences."""
    return _ANSI.sub("", text) if "\x1b" in text else text


class TextFormatter(logging.Formatter):
    """``[time] [pid] [LEVEL] logger: message``; the level is coloured only if ``colour`` (a terminal)."""

    def __init__(self, colour: bool = False) -> None:
        super().__init__("[%(asctime)s] [%(process)s] [%(levelname)s] %(name)s: %(message)s")
        self.colour = colour

    def format(self, record: logging.LogRecord) -> str:
        text = strip_ansi(super().format(record))
        code = _LEVEL_COLOURS.get(record.levelname) if self.colour else None
        if code:
            level = f"[{record.levelname}]"
            text = text.replace(level, f"[\x1b[{code}m{record.levelname}\x1b[0m]", 1)
        return text


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``ts``, ``level``, ``logger``, ``message`` (+ ``exception``/``stack``)."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, tz=timezone.utc).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": strip_ansi(record.getMessage()),
        }
        if record.exc_info:
            if not record.exc_text:
                record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            doc["exception"] = strip_ansi(record.exc_text)
        if record.stack_info:
            doc["stack"] = strip_ansi(self.formatStack(record.stack_info))
        # orjson refuses lone surrogates (they occur in messages quoting bad input); the stdlib does not
        try:
            return orjson.dumps(doc).decode()
        except TypeError:
            import json

            return json.dumps(doc, ensure_ascii=True)


def _is_tty(stream: IO[str]) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def logging_config(log_format: str, level: str, stream: IO[str] | None = None) -> dict[str, Any]:
    """A :func:`logging.config.dictConfig` dict: one handler on ``stream`` (the process's real stderr
    by default) with the chosen formatter, at ``level``, for the root logger and so for every library.

    Faust's worker applies it too (``mode`` clears the root handlers and calls ``dictConfig`` with it),
    so the records of a running worker and those written before Faust starts look the same."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {LOG_FORMATS}, got {log_format!r}")
    stream = stream if stream is not None else sys.__stderr__ or sys.stderr
    formatter: dict[str, Any] = (
        {"()": JsonFormatter} if log_format == "json" else {"()": TextFormatter, "colour": _is_tty(stream)}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"churnwatch": formatter},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "churnwatch", "stream": stream}},
        "root": {"level": level.upper(), "handlers": ["stderr"]},
    }


def configure_logging(log_format: str, level: str, stream: IO[str] | None = None) -> None:
    """Apply :func:`logging_config` now, and route what would otherwise bypass logging through it:
    Python warnings, and (with ``json``) uncaught exceptions of the main thread and other threads."""
    logging.config.dictConfig(logging_config(log_format, level, stream))
    logging.captureWarnings(True)
    if log_format == "json":
        sys.excepthook = _log_uncaught
        threading.excepthook = _log_uncaught_in_thread


def _log_uncaught(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, value, tb)
        return
    logging.getLogger("churnwatch").critical("uncaught %s: %s", kind.__name__, value, exc_info=(kind, value, tb))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit or args.exc_value is None:
        return
    name = args.thread.name if args.thread is not None else "?"
    logging.getLogger("churnwatch").critical("uncaught %s in thread %s: %s", args.exc_type.__name__, name,
                                             args.exc_value, exc_info=(args.exc_type, args.exc_value, args.exc_traceback))


__all__ = ["LOG_FORMATS", "JsonFormatter", "TextFormatter", "configure_logging", "logging_config", "strip_ansi"]
