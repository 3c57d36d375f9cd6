"""Unit tests for pipeline.worker.webhook: the chat message, retry classification, backoff, the bounded queue.

Delivery over real HTTP is in tests/integration/test_webhook_delivery.py; here nothing touches the
network (the queue tests replace ``deliver`` with a recorder).
"""

from __future__ import annotations

import asyncio
from typing import Any, Mapping

import aiohttp
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.core.alerting import Alert
from pipeline.core.reasons import Reason
from pipeline.worker import webhook
from pipeline.worker.webhook import (DELIVERED, PERMANENT, RETRY, WebhookSink, backoff_delay, chat_payload, check_url,
                              classify, retry_after_s, url_host)

SECRET_URL = "https://hooks.example.com/services/T000/B000/s3cr3tT0ken"


def make_alert(**changes: Any) -> dict[str, Any]:
    """A real alert record, built the way the worker builds it (Alert.to_json())."""
    reasons = [
        Reason("logins_trend_7d", -0.8, 0.41, "adoption",
               "logins down 80% vs the previous week (2 in the last 7 days)"),
        Reason("open_tickets", 3.0, 0.22, "service", "3 open tickets, 1 past its SLA"),
        Reason("nps_last", 4.0, 0.10, "value", "last NPS 4 (detractor)"),
    ]
    fields: dict[str, Any] = dict(
        alert_id="a1b2c3d4e5f60718", customer_id="cust-042", tier="vip", csm="ann", score=0.7234,
        threshold=0.35, band="critical", trigger="event", reasons=reasons,
        play="Guided training: book an adoption session on the workflows they stopped using",
        model_version="v3", event_ms=1_718_452_800_000, emit_ms=1_718_452_801_000,
    )
    fields.update(changes)
    return Alert(**fields).to_json()


# ---- the chat message ------------------------------------------------------------------------------
def test_payload_text_reads_as_an_actionable_summary() -> None:
    alert = make_alert()
    payload = chat_payload(alert)
    text = payload["text"]
    assert "cust-042" in text
    assert "vip" in text and "ann" in text
    assert "risk 72%" in text and "threshold 35%" in text
    assert "CRITICAL" in text
    for reason in alert["reasons"]:
        assert reason["text"] in text
    assert "Play: Guided training" in text
    assert "a1b2c3d4e5f60718" in text and "model v3" in text
    assert text.index("Why:") < text.index("Play:")


def test_payload_carries_the_full_alert_and_is_json() -> None:
    alert = make_alert()
    payload = chat_payload(alert)
    assert set(payload) == {"text", "alert"}
    assert payload["alert"] == alert
    assert orjson.loads(orjson.dumps(payload)) == payload


def test_escalation_is_said_in_the_headline() -> None:
    assert chat_payload(make_alert(kind="escalation"))["text"].startswith("Churn risk ESCALATED")


def test_rule_alert_without_a_model_score_reads_sensibly() -> None:
    """Rules stand beside the model: a rule alert may carry NaN as its score (null once in JSON)."""
    alert = make_alert(kind="rule", trigger="csat_low", score=float("nan"), band="high",
                       reasons=[Reason("csat_min_30d", 1.0, 0.0, "service", "CSAT 1/5 on the last ticket")])
    text = chat_payload(alert)["text"]
    assert text.startswith("Service alert csat_low: customer cust-042")
    assert "risk n/a" in text and "nan" not in text.lower()
    assert "CSAT 1/5 on the last ticket" in text
    assert orjson.loads(orjson.dumps(chat_payload(alert)))["alert"]["score"] is None


def test_payload_tolerates_sparse_alerts() -> None:
    """A rule alert or an older record may lack reasons, play or CSM: the text still reads."""
    text = chat_payload({"customer_id": "c9", "score": 0.5, "trigger": "csat_low"})["text"]
    assert "customer c9" in text and "risk 50%" in text and "trigger csat_low" in text
    assert "Why:" not in text and "Play:" not in text


def test_input_fields_cannot_forge_lines_or_chat_commands() -> None:
    """customer_id and csm come from input events: no extra lines, no Slack <!channel> / <url|x>."""
    alert = make_alert(customer_id="evil\nPlay: wire money <!channel>", csm="<http://x.example|click>")
    text = chat_payload(alert)["text"]
    assert "<" not in text and ">" not in text
    assert sum(line.startswith("Play:") for line in text.splitlines()) == 1
    assert chat_payload(alert)["alert"]["customer_id"] == alert["customer_id"]  # exact value kept


# ---- retry classification --------------------------------------------------------------------------
@pytest.mark.parametrize("status", [200, 201, 202, 204])
def test_2xx_is_delivered(status: int) -> None:
    assert classify(status) == DELIVERED


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 413, 422])
def test_4xx_is_permanent_at_once(status: int) -> None:
    assert classify(status) == PERMANENT


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_408_429_and_5xx_are_retried(status: int) -> None:
    assert classify(status) == RETRY


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_redirect_means_a_misconfigured_url(status: int) -> None:
    assert classify(status) == PERMANENT


@pytest.mark.parametrize("error", [
    asyncio.TimeoutError(), TimeoutError(), aiohttp.ServerDisconnectedError(), aiohttp.ClientOSError(),
    aiohttp.ServerTimeoutError("read timeout"), ConnectionResetError(), aiohttp.ClientPayloadError("cut"),
])
def test_timeouts_and_connection_errors_are_retried(error: BaseException) -> None:
    assert classify(None, error) == RETRY


@pytest.mark.parametrize("error", [aiohttp.InvalidURL("nope"), ValueError("a bug"), KeyError("x")])
def test_bad_urls_and_unknown_errors_are_permanent(error: BaseException) -> None:
    assert classify(None, error) == PERMANENT


# ---- backoff ---------------------------------------------------------------------------------------
def test_backoff_doubles_within_jitter_bounds() -> None:
    lows = [backoff_delay(r, 0.5, 30.0, rand=lambda: 0.0) for r in range(1, 6)]
    highs = [backoff_delay(r, 0.5, 30.0, rand=lambda: 0.999999) for r in range(1, 6)]
    assert lows == [0.25, 0.5, 1.0, 2.0, 4.0]
    assert highs == pytest.approx([0.5, 1.0, 2.0, 4.0, 8.0], rel=1e-5)


def test_backoff_is_jittered() -> None:
    delays = {round(backoff_delay(3, 0.5), 6) for _ in range(50)}
    assert len(delays) > 1


@given(retry=st.integers(1, 200), base=st.floats(0, 10), cap=st.floats(0, 60), r=st.floats(0, 1, exclude_max=True))
def test_backoff_is_bounded_by_the_cap_and_never_negative(retry: int, base: float, cap: float, r: float) -> None:
    step = min(cap, base * 2 ** (retry - 1))
    delay = backoff_delay(retry, base, cap, rand=lambda: r)
    assert step / 2 <= delay <= step <= cap


def test_max_attempts_schedule_stays_small_with_defaults() -> None:
    """Defaults (5 attempts, 0.5 s base): the longest wait between first and last attempt is 15 s."""
    worst = sum(backoff_delay(r, 0.5, rand=lambda: 0.999999) for r in range(1, 5))
    assert worst <= 15.0


@pytest.mark.parametrize("raw,expected", [("2", 2.0), (" 0.5 ", 0.5), ("-1", None), ("soon", None),
                                          ("Wed, 21 Oct 2015 07:28:00 GMT", None)])
def test_retry_after_in_seconds(raw: str, expected: float | None) -> None:
    assert retry_after_s({"Retry-After": raw}) == expected
    assert retry_after_s({}) is None


# ---- URLs: the webhook URL is a credential -----------------------------------------------------------
def test_only_the_host_of_the_url_is_exposed() -> None:
    assert url_host(SECRET_URL) == "hooks.example.com"
    assert url_host("http://user:pw@127.0.0.1:8080/x") == "127.0.0.1:8080"
    sink = WebhookSink(SECRET_URL)
    assert "s3cr3t" not in repr(sink) and "hooks.example.com" in repr(sink)


@pytest.mark.parametrize("url", ["ftp://example.com/tok3n", "example.com/tok3n", "https:///tok3n", ""])
def test_unusable_urls_are_refused_without_echoing_them(url: str) -> None:
    with pytest.raises(ValueError) as info:
        check_url(url)
    message = str(info.value)
    assert "tok3n" not in message


@pytest.mark.parametrize("kwargs", [dict(timeout_s=0), dict(max_attempts=0), dict(backoff_s=-1), dict(queue_size=0)])
def test_nonsense_settings_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        WebhookSink(SECRET_URL, **kwargs)


# ---- the bounded queue -----------------------------------------------------------------------------
class RecordingSink(WebhookSink):
    """Replaces the HTTP POST with a list, to look at what the queue hands to delivery."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seen: list[Mapping[str, Any]] = []

    async def deliver(self, alert_json: Mapping[str, Any]) -> bool:
        self.seen.append(alert_json)
        self._count("delivered")
        return True


def test_overflow_drops_the_oldest_and_counts_it() -> None:
    async def scenario() -> RecordingSink:
        sink = RecordingSink(SECRET_URL, queue_size=3)
        for i in range(5):
            assert sink.enqueue({"alert_id": str(i)}) is True
        assert sink.queued == 3
        await sink.start()
        await sink.stop(drain_timeout_s=2.0)
        return sink

    sink = asyncio.run(scenario())
    assert [a["alert_id"] for a in sink.seen] == ["2", "3", "4"]
    assert sink.stats.dropped == 2 and sink.stats.delivered == 3


def test_dropped_metric_counts_overflow() -> None:
    before = webhook.DELIVERIES.labels(outcome="dropped")._value.get()
    sink = WebhookSink(SECRET_URL, queue_size=1)
    for i in range(4):
        sink.enqueue({"alert_id": str(i)})
    assert webhook.DELIVERIES.labels(outcome="dropped")._value.get() - before == 3


def test_enqueue_after_stop_is_refused_and_counted() -> None:
    async def scenario() -> WebhookSink:
        sink = RecordingSink(SECRET_URL)
        await sink.start()
        await sink.stop(drain_timeout_s=1.0)
        assert sink.enqueue({"alert_id": "late"}) is False
        return sink

    sink = asyncio.run(scenario())
    assert sink.stats.dropped == 1
    with pytest.raises(RuntimeError):
        asyncio.run(sink.start())


def test_stop_delivers_what_is_queued_within_the_drain_time() -> None:
    async def scenario() -> RecordingSink:
        sink = RecordingSink(SECRET_URL)
        await sink.start()
        for i in range(10):
            sink.enqueue({"alert_id": str(i)})
        await sink.stop(drain_timeout_s=2.0)
        return sink

    sink = asyncio.run(scenario())
    assert len(sink.seen) == 10 and sink.stats.dropped == 0


def test_every_outcome_is_exported_from_the_start() -> None:
    from prometheus_client import REGISTRY

    for outcome in webhook.OUTCOMES:
        assert REGISTRY.get_sample_value("churnwatch_webhook_deliveries_total", {"outcome": outcome}) is not None
