"""Webhook delivery against a real HTTP server on a free loopback port (no Kafka needed).

The server runs aiohttp.web on its own event loop in a thread, like a remote chat service would be:
the sink under test cannot cheat by sharing its loop, and a slow or hanging server really is slow.
Each test scripts the server's answers (status, delay) per request and reads back what it received.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, Callable, Iterator

import orjson
import pytest
from aiohttp import web

from devtools.broker import free_port
from pipeline.worker import webhook
from pipeline.worker.webhook import WebhookSink
from tests.unit.pipeline.worker.test_webhook import make_alert

SECRET = "services/T000/B000/s3cr3tT0ken"
#: (status, seconds to wait before answering, response body) for the n-th request (0-based).
Script = Callable[[int], tuple[int, float, str]]


class ChatServer:
    """An incoming-webhook endpoint whose answers a test scripts; records every JSON body it gets."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.received: list[dict[str, Any]] = []
        self.content_types: list[str] = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._release: asyncio.Event | None = None
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._serve, name="chat-server", daemon=True)
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{SECRET}"

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.received)

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        with self._lock:
            n = len(self.received)
            self.received.append(body)
            self.content_types.append(request.content_type)
        status, delay, text = self.script(n)
        if delay:
            assert self._release is not None
            try:  # a "hang" ends early when the test is over, so teardown never waits for it
                await asyncio.wait_for(self._release.wait(), delay)
            except asyncio.TimeoutError:
                pass
        return web.Response(status=status, text=text)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def start() -> None:
            self._release = asyncio.Event()
            app = web.Application()
            app.router.add_post(f"/{SECRET}", self._handle)
            self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0, shutdown_timeout=1.0)
            await site.start()
            self.port = self._runner.addresses[0][1]
            self._ready.set()

        self._loop.run_until_complete(start())
        self._loop.run_forever()

    def start(self) -> "ChatServer":
        self._thread.start()
        assert self._ready.wait(5), "chat server did not start"
        return self

    def stop(self) -> None:
        async def shutdown() -> None:
            assert self._release is not None and self._runner is not None
            self._release.set()
            await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()


@pytest.fixture
def chat_server() -> Iterator[Callable[[Script], ChatServer]]:
    servers: list[ChatServer] = []

    def make(script: Script) -> ChatServer:
        server = ChatServer(script).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


class Failures:
    """The on_failure callback the worker would use to publish to the dead-letter topic."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.details: list[str] = []

    async def __call__(self, record: dict[str, Any], detail: str) -> None:
        self.records.append(record)
        self.details.append(detail)


async def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the sink")
        await asyncio.sleep(0.01)


def metric(outcome: str) -> float:
    return webhook.DELIVERIES.labels(outcome=outcome)._value.get()


def fast_sink(url: str, failures: Failures | None = None, **kwargs: Any) -> WebhookSink:
    options: dict[str, Any] = dict(timeout_s=2.0, max_attempts=5, backoff_s=0.01, queue_size=100,
                                   on_failure=failures, trust_env=False)
    options.update(kwargs)
    return WebhookSink(url, **options)


def test_alert_is_posted_as_a_chat_message(chat_server) -> None:
    server = chat_server(lambda n: (200, 0, "ok"))
    alert = make_alert()
    latency_before = webhook.LATENCY._sum.get()

    async def scenario() -> WebhookSink:
        sink = fast_sink(server.url)
        await sink.start()
        assert sink.enqueue(alert)
        await wait_until(lambda: sink.stats.delivered == 1)
        await sink.stop(drain_timeout_s=1.0)
        return sink

    sink = asyncio.run(scenario())
    assert server.count == 1
    body = server.received[0]
    assert body["alert"] == alert
    assert "cust-042" in body["text"] and "risk 72%" in body["text"] and "Play:" in body["text"]
    assert server.content_types == ["application/json"]
    assert (sink.stats.retried, sink.stats.failed, sink.stats.dropped) == (0, 0, 0)
    assert webhook.LATENCY._sum.get() > latency_before


def test_two_503s_then_accepted_is_one_delivery_in_three_attempts(chat_server) -> None:
    server = chat_server(lambda n: (503, 0, "busy") if n < 2 else (200, 0, "ok"))
    failures = Failures()
    before = {o: metric(o) for o in webhook.OUTCOMES}

    async def scenario() -> WebhookSink:
        sink = fast_sink(server.url, failures)
        await sink.start()
        sink.enqueue(make_alert())
        await wait_until(lambda: sink.stats.delivered == 1)
        await sink.stop(drain_timeout_s=1.0)
        return sink

    sink = asyncio.run(scenario())
    assert server.count == 3
    assert server.received[0] == server.received[2]  # the same message, re-sent
    assert (sink.stats.delivered, sink.stats.retried, sink.stats.failed) == (1, 2, 0)
    assert failures.records == []
    assert metric("delivered") - before["delivered"] == 1
    assert metric("retried") - before["retried"] == 2
    assert metric("failed") - before["failed"] == 0


def test_rate_limit_is_retried_after_the_servers_pause(chat_server) -> None:
    server = chat_server(lambda n: (429, 0, "rate_limited") if n == 0 else (200, 0, "ok"))

    async def scenario() -> WebhookSink:
        sink = fast_sink(server.url)
        await sink.start()
        sink.enqueue(make_alert())
        await wait_until(lambda: sink.stats.delivered == 1)
        await sink.stop(drain_timeout_s=1.0)
        return sink

    sink = asyncio.run(scenario())
    assert server.count == 2 and sink.stats.retried == 1


def test_400_is_dead_lettered_once_without_retries(chat_server) -> None:
    server = chat_server(lambda n: (400, 0, "invalid_payload"))
    failures = Failures()
    alert = make_alert()

    async def scenario() -> WebhookSink:
        sink = fast_sink(server.url, failures)
        await sink.start()
        sink.enqueue(alert)
        await wait_until(lambda: sink.stats.failed == 1)
        await asyncio.sleep(0.1)  # room for a wrong retry to show up
        await sink.stop(drain_timeout_s=1.0)
        return sink

    sink = asyncio.run(scenario())
    assert server.count == 1
    assert sink.stats.retried == 0
    assert len(failures.records) == 1
    record = failures.records[0]
    assert record["reason"] == "webhook_failed"
    assert record["alert"] == alert
    assert record["url_host"] == f"127.0.0.1:{server.port}"
    assert record["status"] == 400 and record["attempts"] == 1 and record["error"] is None
    assert record["response"] == "invalid_payload"
    assert "HTTP 400" in failures.details[0] and "permanent" in failures.details[0]
    assert "s3cr3t" not in orjson.dumps(record).decode() and "s3cr3t" not in failures.details[0]


def test_hanging_server_times_out_is_retried_then_dead_lettered(chat_server) -> None:
    server = chat_server(lambda n: (200, 30.0, "too late"))
    failures = Failures()

    async def scenario() -> tuple[WebhookSink, float]:
        sink = fast_sink(server.url, failures, timeout_s=0.3, max_attempts=3)
        await sink.start()
        started = time.monotonic()
        sink.enqueue(make_alert())
        # the loop stays responsive while deliveries hang: a ticker keeps running on time
        ticks = 0
        while sink.stats.failed == 0 and time.monotonic() - started < 5:
            await asyncio.sleep(0.02)
            ticks += 1
        elapsed = time.monotonic() - started
        assert ticks >= 10  # ~45 expected; a blocked loop would give 1
        await sink.stop(drain_timeout_s=1.0)
        return sink, elapsed

    sink, elapsed = asyncio.run(scenario())
    assert server.count == 3
    assert (sink.stats.retried, sink.stats.failed, sink.stats.delivered) == (2, 1, 0)
    assert 0.9 <= elapsed < 4.0  # three 0.3 s timeouts plus short backoffs
    record = failures.records[0]
    assert record["status"] is None and record["attempts"] == 3
    assert "timeout" in record["error"].lower()
    assert "gave up after 3 attempts" in record["detail"]
    assert "s3cr3t" not in orjson.dumps(record).decode()


def test_connection_refused_is_retried_then_dead_lettered() -> None:
    url = f"http://127.0.0.1:{free_port()}/{SECRET}"  # nothing listens there
    failures = Failures()

    async def scenario() -> WebhookSink:
        sink = fast_sink(url, failures, max_attempts=3)
        await sink.start()
        sink.enqueue(make_alert())
        await wait_until(lambda: sink.stats.failed == 1)
        await sink.stop(drain_timeout_s=1.0)
        return sink

    sink = asyncio.run(scenario())
    assert sink.stats.retried == 2
    record = failures.records[0]
    assert record["attempts"] == 3 and record["status"] is None and record["error"]
    assert "s3cr3t" not in orjson.dumps(record).decode()


def test_a_failing_callback_does_not_stop_deliveries(chat_server) -> None:
    server = chat_server(lambda n: (404, 0, "no_service") if n == 0 else (200, 0, "ok"))

    async def broken(record: dict[str, Any], detail: str) -> None:
        raise RuntimeError("producer is gone")

    async def scenario() -> WebhookSink:
        sink = fast_sink(server.url, on_failure=broken)
        await sink.start()
        sink.enqueue(make_alert(alert_id="first"))
        sink.enqueue(make_alert(alert_id="second"))
        await wait_until(lambda: sink.stats.delivered == 1)
        await sink.stop(drain_timeout_s=1.0)
        return sink

    sink = asyncio.run(scenario())
    assert sink.stats.failed == 1 and sink.stats.delivered == 1
    assert [b["alert"]["alert_id"] for b in server.received] == ["first", "second"]


def test_enqueue_never_blocks_while_the_endpoint_is_slow(chat_server) -> None:
    """10,000 alerts against a server that takes 0.5 s per request: enqueue returns at once, the
    queue stays bounded, the oldest are dropped and counted, the newest are the ones delivered, and
    every alert is accounted for exactly once (delivered, failed or dropped)."""
    server = chat_server(lambda n: (200, 0.5, "ok"))
    total, size = 10_000, 100

    async def scenario() -> tuple[WebhookSink, float]:
        sink = fast_sink(server.url, queue_size=size)
        await sink.start()
        await asyncio.sleep(0)  # the delivery task is waiting on the queue
        started = time.monotonic()
        accepted = [sink.enqueue({**make_alert(), "alert_id": str(i)}) for i in range(total)]
        elapsed = time.monotonic() - started
        assert all(accepted)
        assert sink.queued <= size
        await wait_until(lambda: server.count >= 1)
        await sink.stop(drain_timeout_s=0.2)  # the endpoint is too slow to drain: give up quickly
        return sink, elapsed

    sink, elapsed = asyncio.run(scenario())
    assert elapsed < 5.0  # loose: 10,000 calls that never wait for the network
    assert sink.stats.dropped >= total - size - 1
    assert sink.stats.delivered + sink.stats.failed + sink.stats.dropped == total
    first_posted = int(server.received[0]["alert"]["alert_id"])
    assert first_posted >= total - size - 1  # the oldest were dropped, not the newest
