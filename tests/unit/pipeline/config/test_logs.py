"""Unit tests for pipeline.config.logs: the text and JSON line formats and the process-wide setup."""

from __future__ import annotations

import io
import json
import logging
import sys
import threading
import warnings
from collections.abc import Iterator

import pytest

from pipeline.config.logs import JsonFormatter, TextFormatter, configure_logging, logging_config, strip_ansi


def _record(msg: str, *args: object, level: int = logging.WARNING, name: str = "faust.worker",
            exc_info: object = None) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, exc_info)  # type: ignore[arg-type]


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """configure_logging changes process-wide state; put it back for the other tests."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    hooks = (sys.excepthook, threading.excepthook)
    # an earlier test (the CLI's, in this process) may have left warnings captured: start uncaptured,
    # so that configure_logging's capture is the one in force here
    logging.captureWarnings(False)
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    sys.excepthook, threading.excepthook = hooks
    logging.captureWarnings(False)


def test_strip_ansi_removes_colours_and_cursor_codes() -> None:
    assert strip_ansi("\x1b[?25lstarting\x1b[?25h \x1b[31mred\x1b[0m\x1bc\x1b]0;title\x07\x1b(B") == "starting red"
    assert strip_ansi("plain [text]") == "plain [text]"


def test_json_line_has_the_fields_and_stays_one_line() -> None:
    line = JsonFormatter().format(_record("table:\n+---+\n| %s |\x1b[0m", "x", name="aiokafka.consumer"))
    assert "\n" not in line and "\x1b" not in line
    doc = json.loads(line)
    assert set(doc) == {"ts", "level", "logger", "message"}
    assert doc["level"] == "WARNING" and doc["logger"] == "aiokafka.consumer"
    assert doc["message"] == "table:\n+---+\n| x |"
    assert doc["ts"].endswith("Z") and "T" in doc["ts"] and len(doc["ts"]) == len("2026-01-01T00:00:00.000Z")


def test_json_line_carries_the_exception_text() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record = _record("scoring failed", level=logging.ERROR, name="churnwatch.worker", exc_info=sys.exc_info())
    doc = json.loads(JsonFormatter().format(record))
    assert doc["message"] == "scoring failed"
    assert doc["exception"].startswith("Traceback") and "RuntimeError: boom" in doc["exception"]


def test_json_line_survives_a_lone_surrogate() -> None:
    doc = json.loads(JsonFormatter().format(_record("bad key %r", "\udcff")))
    assert doc["message"].startswith("bad key")


def test_text_line_has_no_escape_codes_unless_on_a_terminal() -> None:
    record = _record("\x1b[32mloaded\x1b[0m model %s", "v2", name="churnwatch.scoring")
    plain = TextFormatter().format(record)
    assert "\x1b" not in plain
    assert plain.endswith("[WARNING] churnwatch.scoring: loaded model v2")
    coloured = TextFormatter(colour=True).format(record)
    assert "\x1b[33mWARNING\x1b[0m" in coloured and strip_ansi(coloured) == plain


def test_colour_follows_whether_the_stream_is_a_terminal() -> None:
    assert logging_config("text", "INFO", io.StringIO())["formatters"]["churnwatch"]["colour"] is False
    assert logging_config("text", "INFO", _Tty())["formatters"]["churnwatch"]["colour"] is True
    assert "colour" not in logging_config("json", "INFO", _Tty())["formatters"]["churnwatch"]


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="xml"):
        logging_config("xml", "INFO")


def test_configure_json_routes_every_logger_and_warnings(restore_logging: None) -> None:
    out = io.StringIO()
    configure_logging("json", "INFO", out)
    logging.getLogger("churnwatch.worker").info("partition %d restored", 3)
    logging.getLogger("faust.worker").warning("[^Worker]: Ready")
    logging.getLogger("aiokafka.conn").error("connection lost")
    logging.getLogger("kafka.net").debug("below the level: not written")
    warnings.warn("something deprecated", UserWarning, stacklevel=1)
    lines = out.getvalue().splitlines()
    docs = [json.loads(line) for line in lines]
    assert [d["logger"] for d in docs] == ["churnwatch.worker", "faust.worker", "aiokafka.conn", "py.warnings"]
    assert docs[0]["message"] == "partition 3 restored"
    assert "something deprecated" in docs[3]["message"]


def test_configure_json_logs_uncaught_exceptions(restore_logging: None) -> None:
    out = io.StringIO()
    configure_logging("json", "WARNING", out)
    try:
        raise ValueError("no such thing")
    except ValueError:
        sys.excepthook(*sys.exc_info())
    thread = threading.Thread(target=lambda: 1 / 0, name="metrics")
    thread.start()
    thread.join()
    docs = [json.loads(line) for line in out.getvalue().splitlines()]
    assert docs[0]["level"] == "CRITICAL" and "ValueError: no such thing" in docs[0]["exception"]
    assert "thread metrics" in docs[1]["message"] and "ZeroDivisionError" in docs[1]["exception"]


def test_configure_text_keeps_the_default_hooks(restore_logging: None) -> None:
    out = io.StringIO()
    configure_logging("text", "WARNING", out)
    assert getattr(sys.excepthook, "__module__", "") != "pipeline.config.logs"
    logging.getLogger("mode.worker").warning("\x1b[?25lstarting")
    assert out.getvalue().rstrip("\n").endswith("[WARNING] mode.worker: starting")
