"""Optional webhook sink: alerts posted as chat messages a CSM can act on.

The alert topic is the system of record; the webhook is a convenience that puts the same alert in
front of a person (Slack, Mattermost, Teams-style incoming webhooks). So the sink is built around one
rule: it must never slow down or stop scoring. The worker only calls :meth:`WebhookSink.enqueue`,
which puts the alert on a bounded in-memory queue and returns at once. When the queue is full the
*oldest* alert is dropped (and counted): a backlog means the endpoint is down or slow, and the newest
alerts are the ones still worth reading. A background task posts queued alerts one at a time, in
order (chat webhooks are rate-limited per URL, and a channel reads better in order), retrying
transient failures with exponential backoff and jitter. An alert that cannot be delivered goes to an
``on_failure`` callback, which the worker uses to publish a ``webhook_failed`` record to the
dead-letter topic, so nothing disappears silently.

A webhook URL usually *is* the credential (Slack's path is the token), so it is never logged,
reported or put in a dead-letter record: only its host is.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import re
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Mapping
from urllib.parse import urlsplit

import aiohttp
import orjson

from pipeline.core.alerting import ESCALATION, RULE
from pipeline.worker.metrics import WEBHOOK_DELIVERIES as DELIVERIES
from pipeline.worker.metrics import WEBHOOK_LATENCY as LATENCY
from pipeline.worker.metrics import WEBHOOK_OUTCOMES as OUTCOMES  # noqa: F401  (re-exported for callers)

log = logging.getLogger("churnwatch.webhook")

#: Verdicts of :func:`classify`.
DELIVERED, RETRY, PERMANENT = "delivered", "retry", "permanent"
#: 4xx statuses that mean "try again later" rather than "this request is wrong".
RETRYABLE_4XX = frozenset({408, 429})
#: Upper bound of one backoff delay, and of a server's Retry-After we are willing to honour.
BACKOFF_MAX_S = 30.0
#: How much of an error response body is kept for the dead-letter record (Slack puts the reason
#: there: ``invalid_payload``, ``no_service``, ``channel_is_archived``).
BODY_SNIPPET_BYTES = 300

FailureCallback = Callable[[dict[str, Any], str], Awaitable[None]]


# ---- pure parts ------------------------------------------------------------------------------------
def classify(status: int | None, error: BaseException | None = None) -> str:
    """Decide what one attempt's result means: ``delivered``, ``retry`` or ``permanent``.

    A 4xx says the request itself is wrong (bad token, archived channel, malformed payload): sending
    it again cannot help, so it is permanent at once, except 408 (request timeout) and 429 (rate
    limited). 5xx, timeouts and connection errors are the endpoint's trouble and usually pass. A
    redirect is permanent too: webhook URLs do not move, and following one would turn the POST into
    a GET on most servers, so it means the URL is misconfigured.
    """
    if error is not None:
        if isinstance(error, (asyncio.TimeoutError, TimeoutError, aiohttp.ClientConnectionError,
                              aiohttp.ClientPayloadError, ConnectionError)):
            return RETRY
        if isinstance(error, aiohttp.InvalidURL):
            return PERMANENT
        if isinstance(error, (aiohttp.ClientError, OSError)):
            return RETRY
        return PERMANENT  # a bug or something we do not understand: retrying would hide it
    if status is None:
        return RETRY
    if 200 <= status < 300:
        return DELIVERED
    if status in RETRYABLE_4XX or status >= 500:
        return RETRY
    return PERMANENT


def backoff_delay(retry: int, base_s: float, cap_s: float = BACKOFF_MAX_S,
                  rand: Callable[[], float] = random.random) -> float:
    """Delay before retry number ``retry`` (1 = after the first failed attempt).

    Exponential (``base * 2**(retry-1)``, capped) with "equal jitter": a uniform draw in the upper half
    of the step. The jitter spreads the retries of several workers that saw the same outage; keeping
    the lower half out means a recovering endpoint is not hit again almost immediately.
    """
    step = min(cap_s, base_s * 2 ** max(0, retry - 1))
    return step / 2 + rand() * step / 2


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """A ``Retry-After`` given in seconds (what chat services send with 429); dates are ignored."""
    value = headers.get("Retry-After")
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def url_host(url: str) -> str:
    """``host[:port]`` of a URL: the part of a webhook URL that is safe to log and publish."""
    parts = urlsplit(url)
    return parts.netloc.rsplit("@", 1)[-1] or "?"


def check_url(url: str) -> str:
    """Return ``url`` if it can be a webhook target, else raise ValueError (without echoing it)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"webhook URL must be http(s)://host/..., got scheme {parts.scheme!r} "
                         f"and host {parts.hostname!r}")
    return url


_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")


def _inline(value: Any, limit: int = 120) -> str:
    """One safe line of text from a field that came from input events (ids, tier, CSM name).

    Newlines and control characters are collapsed, so a field cannot forge extra lines of the
    message, and ``<``/``>`` become look-alikes, because Slack reads ``<!channel>`` or ``<url|label>``
    as commands and links. The exact values stay in the ``alert`` object next to the text.
    """
    text = _CONTROL.sub(" ", "" if value is None else str(value)).strip()
    text = text.replace("<", "‹").replace(">", "›")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _pct(value: Any) -> str:
    """A probability as a percentage; rule alerts raised without a model carry no score (NaN/null)."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        return "n/a"
    return f"{x:.0%}" if math.isfinite(x) else "n/a"


def chat_text(alert: Mapping[str, Any]) -> str:
    """The readable summary: who, how risky, why (the reasons in words), what to do (the play)."""
    band = _inline(alert.get("band") or "high", 20).upper()
    kind = alert.get("kind")
    if kind == ESCALATION:
        headline = "Churn risk ESCALATED"
    elif kind == RULE:  # a proactive-service rule fired (e.g. csat_low), whatever the score says
        headline = f"Service alert {_inline(alert.get('trigger'), 40)}"
    else:
        headline = f"Churn risk {band}"
    who = _inline(alert.get("customer_id"))
    tier = _inline(alert.get("tier") or "-", 40)
    csm = _inline(alert.get("csm") or "-", 60)
    lines = [f"{headline}: customer {who} (tier {tier}, CSM {csm}) - "
             f"risk {_pct(alert.get('score'))} (threshold {_pct(alert.get('threshold'))})"]
    reasons = [r for r in alert.get("reasons") or [] if isinstance(r, Mapping)]
    if reasons:
        lines.append("Why:")
        lines += [f"• {_inline(r.get('text') or r.get('feature'), 300)}" for r in reasons]
    if alert.get("play"):
        lines.append(f"Play: {_inline(alert['play'], 300)}")
    event_time = str(alert.get("event_time") or "")[:19].replace("T", " ")
    lines.append(f"Alert {_inline(alert.get('alert_id'), 40)} · trigger {_inline(alert.get('trigger'), 40)}"
                 f" · model {_inline(alert.get('model_version') or '-', 40)}"
                 + (f" · event time {event_time} UTC" if event_time else ""))
    return "\n".join(lines)


def chat_payload(alert_json: Mapping[str, Any]) -> dict[str, Any]:
    """The POST body: chat incoming-webhook compatible ``text`` plus the full alert under ``alert``.

    ``text`` is the one field Slack, Mattermost and Teams-style (connector) incoming webhooks all
    render. It is plain text because markup is where they differ (``*bold*`` vs ``**bold**``).
    Services that ignore unknown fields still show the text, and a program on the receiving side
    gets the whole record under ``alert``.
    """
    return {"text": chat_text(alert_json), "alert": dict(alert_json)}


# ---- the sink --------------------------------------------------------------------------------------
@dataclass
class SinkStats:
    """Per-sink counts (the Prometheus counters are process-wide; these serve tests and logs)."""

    delivered: int = 0
    retried: int = 0
    failed: int = 0
    dropped: int = 0


@dataclass
class _Attempt:
    status: int | None = None
    error: BaseException | None = None
    body: str = ""
    retry_after: float | None = None


class WebhookSink:
    """A bounded queue of alerts and one background task that POSTs them.

    Lifecycle: construct anywhere; ``await start()`` inside the running event loop (creates the HTTP
    session and the delivery task); ``enqueue()`` from the same loop, before or after ``start()``;
    ``await stop(drain_timeout_s)`` before the Kafka producer stops, because failures still go to
    ``on_failure`` while draining.

    ``on_failure(record, detail)`` receives, once per alert given up on, a dead-letter-ready record
    (``reason='webhook_failed'``, ``detail``, ``alert``, ``url_host``, ``status``, ``error``,
    ``response``, ``attempts``, ``failed_ms``) and the same ``detail`` as a one-line summary for logs.
    Exceptions it raises are logged and do not stop the sink.
    """

    def __init__(self, url: str, *, timeout_s: float = 5.0, max_attempts: int = 5, backoff_s: float = 0.5,
                 queue_size: int = 1000, on_failure: FailureCallback | None = None,
                 backoff_max_s: float = BACKOFF_MAX_S, trust_env: bool = True,
                 rand: Callable[[], float] = random.random) -> None:
        self.url = check_url(url)
        if timeout_s <= 0:
            raise ValueError(f"webhook timeout must be > 0 s, got {timeout_s}")
        if max_attempts < 1:
            raise ValueError(f"webhook max attempts must be >= 1, got {max_attempts}")
        if backoff_s < 0 or backoff_max_s < 0:
            raise ValueError(f"webhook backoff must be >= 0 s, got {backoff_s}")
        if queue_size < 1:
            raise ValueError(f"webhook queue size must be >= 1, got {queue_size}")
        self.host = url_host(url)
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.on_failure = on_failure
        #: Honour HTTP(S)_PROXY / NO_PROXY: chat services are outside, workers often behind a proxy.
        self.trust_env = trust_env
        self.rand = rand
        self.stats = SinkStats()
        # asyncio.Queue binds to the running loop lazily (Python >= 3.10), so it can be built here
        # and filled before start().
        self._queue: asyncio.Queue[Mapping[str, Any]] = asyncio.Queue(maxsize=queue_size)
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def __repr__(self) -> str:  # never the URL: it is a credential
        return f"<WebhookSink host={self.host} queued={self._queue.qsize()} {self.stats}>"

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    # ---- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        """Open the HTTP session and start the delivery task (idempotent)."""
        if self._closed:
            raise RuntimeError("webhook sink was stopped; build a new one")
        if self._task is not None:
            return
        self._session = aiohttp.ClientSession(trust_env=self.trust_env)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="churnwatch-webhook")

    def enqueue(self, alert_json: Mapping[str, Any]) -> bool:
        """Queue an alert for delivery without ever waiting; call from the event loop's thread.

        Returns True when the alert is queued. When the queue is full, the oldest queued alert is
        dropped to make room (counted as ``dropped``). Returns False, counting the alert as dropped,
        once the sink is stopping: it is still on the alert topic, only the chat copy is missing.
        The dict is posted as is later, so the caller must not mutate it afterwards.
        """
        if self._closed:
            self._count("dropped")
            return False
        if self._queue.full():
            try:
                self._queue.get_nowait()
            except asyncio.QueueEmpty:  # pragma: no cover - single-threaded, cannot happen
                pass
            else:
                self._queue.task_done()
                self._count("dropped")
        self._queue.put_nowait(alert_json)
        return True

    async def stop(self, drain_timeout_s: float = 5.0) -> None:
        """Stop accepting alerts, deliver what is queued for up to ``drain_timeout_s``, then give up.

        Alerts still queued (or mid-delivery) at the deadline are counted as dropped and logged, not
        dead-lettered: they are on the alert topic already, and a shutdown should not be held up by
        an endpoint that is down.
        """
        self._closed = True
        if self.running:
            try:
                await asyncio.wait_for(self._queue.join(), timeout=max(0.0, drain_timeout_s))
            except asyncio.TimeoutError:
                pass
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            except Exception:  # pragma: no cover - _run catches everything
                log.exception("webhook delivery task ended with an error")
        left = self._queue.qsize()
        while not self._queue.empty():
            self._queue.get_nowait()
            self._queue.task_done()
        if left:
            self._count("dropped", left)
            log.warning("webhook to %s: %d alert(s) not delivered at shutdown (still on the alert topic)",
                        self.host, left)
        if self._session is not None:
            await self._session.close()
            self._session = None

    # ---- delivery -----------------------------------------------------------------------------
    def _count(self, outcome: str, n: int = 1) -> None:
        setattr(self.stats, outcome, getattr(self.stats, outcome) + n)
        DELIVERIES.labels(outcome=outcome).inc(n)

    async def _run(self) -> None:
        while True:
            alert = await self._queue.get()
            try:
                await self.deliver(alert)
            except asyncio.CancelledError:  # stop() ran out of drain time mid-delivery
                self._count("dropped")
                raise
            except Exception:  # the task must outlive any one alert
                log.exception("webhook to %s: unexpected error delivering an alert", self.host)
            finally:
                self._queue.task_done()

    async def deliver(self, alert_json: Mapping[str, Any]) -> bool:
        """Post one alert with retries; True when delivered, False when handed to ``on_failure``."""
        body = orjson.dumps(chat_payload(alert_json), option=orjson.OPT_SERIALIZE_NUMPY)
        attempts = 0
        while True:
            attempts += 1
            result = await self._attempt(body)
            verdict = classify(result.status, result.error)
            if verdict == DELIVERED:
                self._count("delivered")
                return True
            if verdict == PERMANENT or attempts >= self.max_attempts:
                await self._fail(alert_json, result, attempts, verdict)
                return False
            self._count("retried")
            delay = backoff_delay(attempts, self.backoff_s, self.backoff_max_s, self.rand)
            if result.retry_after is not None:
                delay = max(delay, min(result.retry_after, self.backoff_max_s))
            await asyncio.sleep(delay)

    async def _attempt(self, body: bytes) -> _Attempt:
        if self._session is None:  # deliver() called without start(): a short-lived session
            async with aiohttp.ClientSession(trust_env=self.trust_env) as session:
                return await self._post(session, body)
        return await self._post(self._session, body)

    async def _post(self, session: aiohttp.ClientSession, body: bytes) -> _Attempt:
        started = time.perf_counter()
        try:
            async with session.post(
                self.url, data=body, headers={"Content-Type": "application/json"},
                timeout=aiohttp.ClientTimeout(total=self.timeout_s), allow_redirects=False,
            ) as resp:
                text = ""
                if not 200 <= resp.status < 300:
                    text = (await resp.content.read(BODY_SNIPPET_BYTES)).decode("utf-8", "replace")
                return _Attempt(resp.status, None, text, retry_after_s(resp.headers))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # classified by classify(); never propagates out of the sink
            return _Attempt(None, exc)
        finally:
            LATENCY.observe(time.perf_counter() - started)

    def _describe(self, exc: BaseException) -> str:
        """Exception text without any URL's secret path (aiohttp puts URLs in some messages)."""
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
            text = f"timeout after {self.timeout_s:g} s ({text})"
        return _URL.sub(lambda m: f"<{url_host(m.group())}>", text)[:500]

    async def _fail(self, alert_json: Mapping[str, Any], result: _Attempt, attempts: int, verdict: str) -> None:
        self._count("failed")
        error = self._describe(result.error) if result.error is not None else None
        what = f"HTTP {result.status}" if result.status is not None else error
        why = "permanent error" if verdict == PERMANENT else f"gave up after {attempts} attempt{'s' if attempts != 1 else ''}"
        detail = f"webhook to {self.host}: {what} ({why})"
        record = {
            "reason": "webhook_failed",
            "detail": detail,
            "alert": dict(alert_json),
            "url_host": self.host,
            "status": result.status,
            "error": error,
            "response": _CONTROL.sub(" ", result.body).strip() or None,
            "attempts": attempts,
            "failed_ms": int(time.time() * 1000),
        }
        log.warning("%s; alert %s for customer %s", detail, alert_json.get("alert_id"),
                    alert_json.get("customer_id"))
        if self.on_failure is None:
            return
        try:
            await self.on_failure(record, detail)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("webhook to %s: on_failure callback raised", self.host)
