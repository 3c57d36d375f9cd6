"""Harness of the fault suite: real processes, faults injected from outside, an independent oracle.

Why a separate suite: the integration tests check the worker against the project's own offline code
(``features.states_from_events``), so a bug shared by both passes unseen. Here every test

* starts its own Tansu broker (``EmbeddedBroker``, memory storage, a free loopback port) and its own
  ``python -m apps.cli worker`` processes, each with its own ports and data dir;
* produces its own seeded events (:mod:`tests.faults.oracle`), injects one kind of fault (kill -9,
  rebalance, re-sent events, deleted topics, a broker that loses its data, poison values);
* then asks the worker about EVERY customer (``GET /customers/{id}/`` -> ``applied``) and compares
  with the counts the test computed itself. No expected value comes from the code under test.

Only infrastructure is borrowed from the project (broker, ports, settings, topic creation, metric
scraping). Every process is stopped by its pid in fixture teardown. Waits poll a condition with a
generous deadline; a wait that cannot succeed any more (nothing changes for a long while) gives up
early so a failing run stays short.

Fixture names here never start with ``model_`` (another suite's namespace).
"""

from __future__ import annotations

import concurrent.futures
import json
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import pytest
from kafka import KafkaAdminClient, KafkaProducer

from apps.demo import scrape
from devtools.broker import EmbeddedBroker, free_port, stop_process
from pipeline.config.settings import INPUT_SOURCES, Settings
from pipeline.kafka.feed import read_all, read_raw
from pipeline.kafka.topics import ensure_topics
from tests.faults.oracle import SOURCES, Comparison, Ev, Observed, Oracle, Unavailable
from tests.integration.conftest import _env, wait_for

REPO = Path(__file__).resolve().parents[2]
#: Consumer-group timing for the workers: a dead member is noticed in seconds, not ~30 s.
GROUP_TIMING = dict(session_timeout_s=6.0, heartbeat_s=1.0, rebalance_timeout_s=6.0)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "faults: fault injection against real broker and worker processes")


class HarnessError(AssertionError):
    """The harness itself could not do its part (e.g. a produce was not acknowledged): not a finding."""


def summary(test: str, **numbers: Any) -> str:
    """One line per test with its numbers, printed (visible with ``pytest -s`` or on failure)."""
    line = f"[faults] {test}: " + " ".join(f"{k}={v}" for k, v in numbers.items())
    print("\n" + line, flush=True)
    return line


# ---- HTTP ---------------------------------------------------------------------------------------
def http_get(url: str, timeout: float = 3.0) -> tuple[int, Any]:
    """(status, decoded JSON body or text). Transport errors raise OSError."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode("utf-8", "replace")[:300]


class InterfaceMissing(AssertionError):
    """The worker answered, but not in the documented shape (e.g. no ``applied`` in the view)."""


@dataclass
class HttpStats:
    """Responses that the interface says must not happen (anything 5xx but 503, unparsable bodies)."""

    server_errors: int = 0
    transport_errors: int = 0
    unavailable: int = 0
    examples: list[str] = field(default_factory=list)

    def note(self, kind: str, text: str) -> None:
        setattr(self, kind, getattr(self, kind) + 1)
        if kind == "server_errors" and len(self.examples) < 5:
            self.examples.append(text[:300])


def read_customer(port: int, customer_id: str, stats: HttpStats | None = None, timeout: float = 3.0) -> Observed:
    """A customer's ``applied`` counts as served by the worker on ``port`` (routed to the owner)."""
    url = f"http://127.0.0.1:{port}/customers/{customer_id}/"
    try:
        status, body = http_get(url, timeout)
    except (OSError, TimeoutError) as exc:
        if stats:
            stats.note("transport_errors", str(exc))
        return Unavailable(0, str(exc)[:120])
    if status == 200:
        applied = body.get("applied") if isinstance(body, dict) else None
        if not isinstance(applied, dict):
            keys = sorted(body)[:12] if isinstance(body, dict) else body
            raise InterfaceMissing(f"GET {url} -> 200 without an 'applied' object (keys: {keys})")
        return {s: int(applied.get(s, 0)) for s in SOURCES}
    if status == 404:
        return None
    if status == 503:
        if stats:
            stats.note("unavailable", "")
        return Unavailable(503, str(body)[:120])
    if stats:
        stats.note("server_errors", f"{status} {body!r}")
    return Unavailable(status, str(body)[:120])


def read_customers(ports: list[int], customer_ids: Iterable[str], stats: HttpStats | None = None,
                   threads: int = 12) -> dict[str, Observed]:
    """Every customer's ``applied``, asking the given workers in turn (each request is routed to
    the owner of the customer, so any worker must answer for any customer)."""
    ids = list(customer_ids)
    if not ports:
        return {c: Unavailable(0, "no live worker") for c in ids}
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        futures = {c: pool.submit(read_customer, ports[i % len(ports)], c, stats) for i, c in enumerate(ids)}
        return {c: f.result() for c, f in futures.items()}


# ---- workers ------------------------------------------------------------------------------------
class Member:
    """One worker of the group: the same settings (ports, data dir) across restarts, like a pod."""

    def __init__(self, harness: "Harness", name: str) -> None:
        self.harness = harness
        self.name = name
        base = harness.settings
        self.settings = base.with_(metrics_port=free_port(), web_port=free_port(),
                                   data_dir=harness.tmp / f"worker-{name}")
        self.proc: subprocess.Popen | None = None
        self.incarnation = 0
        self.log_path: Path | None = None
        self.started_at = 0.0
        #: False after the test killed or stopped it on purpose (until it is started again)
        self.expected_alive = False

    # -- lifecycle --
    def start(self, wait_ready: bool = True, timeout: float = 120.0) -> "Member":
        assert not self.alive, f"worker {self.name} is already running"
        self.incarnation += 1
        self.log_path = self.harness.tmp / f"worker-{self.name}-{self.incarnation}.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "apps.cli", "worker"], cwd=REPO,
                                         env=_env(self.settings), stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        self.started_at = time.monotonic()
        self.expected_alive = True
        if wait_ready:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 120.0) -> float:
        """Until ``churnwatch_worker_ready`` is 1; returns the seconds since this incarnation started."""
        def ready() -> bool:
            self.assert_alive("while waiting for it to become ready")
            return self.metric("churnwatch_worker_ready") >= 1
        wait_for(ready, timeout, interval=0.2, what=f"worker {self.name} ready (churnwatch_worker_ready=1)")
        return time.monotonic() - self.started_at

    def kill9(self) -> None:
        assert self.proc is not None
        self.expected_alive = False
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self, timeout: float = 30.0) -> int | None:
        if self.proc is not None:
            self.expected_alive = False
            stop_process(self.proc, timeout, signal.SIGTERM)
            return self.proc.returncode
        return None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def assert_alive(self, when: str = "") -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"worker {self.name} (incarnation {self.incarnation}) exited with "
                                 f"{self.proc.returncode} {when}; log tail:\n{self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        if self.log_path is None or not self.log_path.exists():
            return "(no log)"
        return self.log_path.read_text(errors="replace")[-chars:]

    # -- observation --
    @property
    def web_port(self) -> int:
        return self.settings.web_port

    def metrics(self) -> dict[str, float]:
        return scrape(f"http://127.0.0.1:{self.settings.metrics_port}/metrics")

    def metric(self, name: str, default: float = 0.0) -> float:
        try:
            return self.metrics().get(name, default)
        except OSError:
            return default

    def ready(self) -> tuple[int, Any]:
        """``GET /ready``: (status, body); (0, error) when the web server does not answer."""
        try:
            return http_get(f"http://127.0.0.1:{self.web_port}/ready", timeout=3.0)
        except OSError as exc:
            return 0, str(exc)

    def ready_endpoint_ok(self) -> bool:
        status, body = self.ready()
        return status == 200 and isinstance(body, dict) and body.get("ready") is True

    def is_ready(self) -> bool:
        return self.metric("churnwatch_worker_ready") >= 1 and self.ready_endpoint_ok()

    def health(self) -> int:
        try:
            return http_get(f"http://127.0.0.1:{self.web_port}/health", timeout=3.0)[0]
        except OSError:
            return 0


# ---- producing ----------------------------------------------------------------------------------
CUSTOMER_KEY = object()  # send(): key = the event's customer_id (the contract)


class Sender:
    """kafka-python producer; every send is checked after flush, so an event the test counts in its
    oracle really is on the topic (a failed produce is a harness error, not a finding)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, linger_ms=5, acks="all",
                                      retries=5, max_in_flight_requests_per_connection=1)
        self._pending: list[tuple[str, Any]] = []
        self._lock = threading.Lock()

    def send(self, ev: Ev, key: Any = CUSTOMER_KEY) -> None:
        k = ev.customer_id.encode() if key is CUSTOMER_KEY else key
        self.send_raw(ev.source, json.dumps(ev.value).encode(), k, ev.event_id)

    def send_raw(self, source: str, value: bytes, key: bytes | None, label: str = "") -> None:
        fut = self.producer.send(self.settings.topic(source), key=key, value=value)
        with self._lock:
            self._pending.append((label, fut))

    def send_all(self, evs: Iterable[Ev]) -> int:
        n = 0
        for ev in evs:
            self.send(ev)
            n += 1
        self.flush()
        return n

    def flush(self, timeout: float = 60.0) -> None:
        self.producer.flush(timeout)
        with self._lock:
            pending, self._pending = self._pending, []
        failed = [(label, fut.exception) for label, fut in pending if fut.failed() or not fut.is_done]
        if failed:
            raise HarnessError(f"{len(failed)} produce(s) not acknowledged, e.g. {failed[:3]}")

    def close(self) -> None:
        try:
            self.producer.close(timeout=5)
        except Exception:  # the broker may be gone at teardown
            pass


class SteadyProducer(threading.Thread):
    """Sends ``events`` at ``rate`` events/s in the background, adding each to the oracle as it is
    sent; ``pause()`` stops (and flushes) so the oracle is a fixed target, ``finish()`` sends the
    rest of a finite list at full speed, ``halt()`` ends an endless stream. The test waits for the
    thread before its final comparison."""

    def __init__(self, sender: Sender, events: Iterable[Ev], oracle: Oracle, rate: float) -> None:
        super().__init__(daemon=True, name="steady-producer")
        self.sender, self.events, self.oracle, self.rate = sender, events, oracle, rate
        self.sent = 0
        self.error: BaseException | None = None
        self._go = threading.Event()
        self._go.set()
        self._idle = threading.Event()
        self._hurry = threading.Event()
        self._halt = threading.Event()

    def run(self) -> None:
        try:
            t0, n0 = time.monotonic(), 0
            for ev in self.events:
                if self._halt.is_set():
                    break
                if not self._go.is_set():
                    self.sender.flush()
                    self._idle.set()
                    self._go.wait()
                    self._idle.clear()
                    t0, n0 = time.monotonic(), self.sent
                self.sender.send(ev)
                self.oracle.add(ev)
                self.sent += 1
                if not self._hurry.is_set():
                    ahead = (self.sent - n0) / self.rate - (time.monotonic() - t0)
                    if ahead > 0:
                        time.sleep(ahead)
                    if self.sent % 50 == 0:
                        self.sender.flush()
            self.sender.flush()
        except BaseException as exc:  # reported by the test through .check()
            self.error = exc
        finally:
            self._idle.set()

    def pause(self, timeout: float = 60.0) -> None:
        self._go.clear()
        if not self._idle.wait(timeout):
            raise HarnessError("background producer did not pause")
        self.check()

    def resume(self) -> None:
        self._idle.clear()
        self._go.set()

    def wait_sent(self, n: int, timeout: float = 120.0) -> None:
        wait_for(lambda: self.sent >= n or not self.is_alive(), timeout, interval=0.05, what=f"{n} events sent")
        self.check()

    def finish(self, timeout: float = 120.0) -> None:
        self._hurry.set()
        self.resume()
        self.join(timeout)
        if self.is_alive():
            raise HarnessError("background producer did not finish")
        self.check()

    def stop(self) -> None:
        self._halt.set()
        self.resume()
        self.join(30)

    def halt(self) -> None:
        """Stop sending (after the event in flight), flush, and fail on any produce error."""
        self.stop()
        if self.is_alive():
            raise HarnessError("background producer did not stop")
        self.check()

    def check(self) -> None:
        if self.error is not None:
            raise HarnessError(f"background producer failed: {self.error!r}")


# ---- the harness of one test --------------------------------------------------------------------
class Harness:
    """One test's broker, settings, workers and producers; :meth:`close` stops all of them by pid."""

    def __init__(self, tmp: Path, partitions: int = 4) -> None:
        self.tmp = tmp
        self.broker_incarnation = 0
        self.broker = self._new_broker(port=0)
        self.settings = Settings.from_env(env={}).with_(
            broker=self.broker.url, topic_prefix="faults.", app_id="churnwatch-faults", partitions=partitions,
            models_dir=tmp / "no-models", data_dir=tmp / "data", log_level="WARNING", **GROUP_TIMING,
        )
        (tmp / "no-models").mkdir(exist_ok=True)  # no model: the worker folds state, it just doesn't score
        ensure_topics(self.settings)
        self.members: list[Member] = []
        self.senders: list[Sender] = []
        self.threads: list[SteadyProducer] = []
        self.http = HttpStats()
        self.interface_problems: list[str] = []

    def _new_broker(self, port: int) -> EmbeddedBroker:
        self.broker_incarnation += 1
        b = EmbeddedBroker(port=port, log_path=self.tmp / f"broker-{self.broker_incarnation}.log")
        deadline = time.monotonic() + 30
        while True:  # the same port right after a kill -9 can take a moment to be bindable
            try:
                return b.start()
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    # -- broker faults --
    def kill9_broker(self) -> None:
        assert self.broker.proc is not None
        self.broker.proc.send_signal(signal.SIGKILL)
        self.broker.proc.wait(10)
        self.broker.stop()  # closes the log; the process is already gone

    def restart_broker_same_port(self) -> None:
        self.broker = self._new_broker(port=self.broker.port)

    def admin(self) -> KafkaAdminClient:
        return KafkaAdminClient(bootstrap_servers=self.settings.bootstrap_servers, request_timeout_ms=10_000)

    def delete_input_topics(self, timeout: float = 30.0) -> list[str]:
        names = [self.settings.topic(s) for s in INPUT_SOURCES]
        admin = self.admin()
        try:
            admin.delete_topics(names)
            wait_for(lambda: not set(names) & set(admin.list_topics()), timeout, what="input topics deleted")
        finally:
            admin.close()
        return names

    # -- workers and producers --
    def member(self, name: str) -> Member:
        m = Member(self, name)
        self.members.append(m)
        return m

    def close_senders(self) -> None:
        """Close the producers made so far (before a broker outage: their reconnect noise is not a finding)."""
        for s in self.senders:
            s.close()
        self.senders.clear()

    def sender(self) -> Sender:
        s = Sender(self.settings)
        self.senders.append(s)
        return s

    def steady(self, events: Iterable[Ev], oracle: Oracle, rate: float) -> SteadyProducer:
        t = SteadyProducer(self.sender(), events, oracle, rate)
        self.threads.append(t)
        t.start()
        return t

    def wait_ready(self, members: list[Member], timeout: float, step: str) -> float:
        """Until every member reports ``churnwatch_worker_ready`` 1 AND ``GET /ready`` 200 {"ready": true}.

        The metric drives the test's flow (failing here is fatal); a ``/ready`` that disagrees with
        it (or is missing: 404) is recorded in :attr:`interface_problems` and asserted at the end of
        the test, so one missing endpoint does not hide the state findings. Returns the seconds waited.
        """
        t0 = time.monotonic()

        def metric_ready() -> bool:
            for m in members:
                m.assert_alive(f"while waiting for readiness ({step})")
            return all(m.metric("churnwatch_worker_ready") >= 1 for m in members)

        wait_for(metric_ready, timeout, interval=0.2, what=f"churnwatch_worker_ready=1 on {[m.name for m in members]} ({step})")
        deadline = t0 + timeout
        pending = list(members)
        while pending:
            statuses = {m.name: m.ready() for m in pending}
            pending = [m for m in pending if not (statuses[m.name][0] == 200
                       and isinstance(statuses[m.name][1], dict) and statuses[m.name][1].get("ready") is True)]
            missing = [m for m in pending if statuses[m.name][0] == 404]
            if missing or (pending and time.monotonic() > deadline):
                for m in pending:
                    self.interface_problems.append(
                        f"{step}: {m.name} metric ready=1 but GET /ready -> {statuses[m.name][0]} {str(statuses[m.name][1])[:160]}")
                break
            if pending:
                time.sleep(0.2)
        return time.monotonic() - t0

    def assert_interface(self) -> None:
        problems = list(self.interface_problems)
        if self.http.server_errors:
            problems.append(f"customer views answered 5xx other than 503 {self.http.server_errors} times, "
                            f"e.g. {self.http.examples[:2]}")
        assert not problems, "interface problems: " + "; ".join(problems[:6])

    def send_tail(self, gen: Any, oracle: Oracle, tag: str = "tail") -> int:
        """One new event for every customer, sent last. A customer's events share a partition and a
        partition is processed in order, so once its tail event is applied every earlier message of
        that customer was processed too: an exact count then is not "the duplicates are still on
        their way". Returns how many were sent."""
        tail = [gen.event(cid, source="interactions", tag=tag) for cid in oracle.customers]
        oracle.add_all(tail)
        return self.sender().send_all(tail)

    def wait_consumed(self, member: Member, n: float, timeout: float = 120.0, soft: bool = False) -> bool:
        """Until ``member`` consumed at least ``n`` input messages (valid or not) since it started.
        ``soft``: return False at the deadline instead of failing (the counts will tell what is missing)."""
        try:
            wait_for(lambda: (member.assert_alive("while consuming"),
                              member.metric("churnwatch_events_consumed_total") >= n)[1],
                     timeout, interval=0.2, what=f"worker {member.name} consumed {n:.0f} messages")
            return True
        except AssertionError:
            member.assert_alive("while consuming")
            if soft:
                return False
            raise

    def live_ports(self) -> list[int]:
        return [m.web_port for m in self.members if m.alive]

    # -- observing every customer --
    def compare(self, oracle: Oracle, ports: list[int] | None = None) -> Comparison:
        expected = oracle.snapshot()
        return Comparison.of(expected, read_customers(ports or self.live_ports(), expected, self.http))

    def wait_exact(self, oracle: Oracle, timeout: float = 180.0, settle_s: float = 30.0,
                   ports: Callable[[], list[int]] | None = None) -> tuple[Comparison, float]:
        """Poll until every customer's ``applied`` equals the oracle; returns (last comparison, seconds).

        Only customers not yet exact are re-asked each round, then one full sweep confirms (and one
        full sweep is the answer when it gives up). Gives up
        at ``timeout``, or earlier when neither the answers nor the workers' consumed counters have
        changed for ``settle_s`` seconds (nothing is going to change any more). The caller asserts.
        """
        t0 = time.monotonic()
        expected = oracle.snapshot()
        observed: dict[str, Observed] = {}
        todo = list(expected)
        signature: Any = None
        since = time.monotonic()
        while True:
            for m in self.members:
                if m.expected_alive:
                    m.assert_alive("while waiting for the counts to match")
            live = ports() if ports else self.live_ports()
            observed.update(read_customers(live, todo, self.http))
            cmp = Comparison.of(expected, observed)
            if cmp.ok:
                confirm = Comparison.of(expected, read_customers(live, expected, self.http))
                if confirm.ok:
                    return confirm, time.monotonic() - t0
                observed.update(confirm.observed)
                cmp = confirm
            todo = [c for c in expected if c not in cmp.exact]
            sig = (tuple(sorted((c, repr(observed.get(c))) for c in todo)),
                   tuple(m.metric("churnwatch_events_consumed_total") for m in self.members if m.alive))
            if sig != signature or cmp.unavailable:
                signature, since = sig, time.monotonic()
            now = time.monotonic()
            if now - t0 > timeout or now - since > settle_s:
                # a last full sweep: customers seen exact early may have changed since (e.g. counted twice later)
                final = Comparison.of(expected, read_customers(live, expected, self.http))
                return final, now - t0
            time.sleep(0.5)

    def on_topics(self, customer_ids: Iterable[str]) -> dict[str, dict[str, int]]:
        """Distinct event ids per source of some customers, read back from the input topics: shows a
        count mismatch is the worker's (the events are there) and not the harness's."""
        wanted = set(customer_ids)
        seen: dict[str, dict[str, set[str]]] = {c: {s: set() for s in SOURCES} for c in wanted}
        for source in SOURCES:
            for rec in read_raw(self.settings, self.settings.topic(source), idle_s=0.5):
                try:
                    value = json.loads(rec.value)
                except (TypeError, ValueError):
                    continue
                if isinstance(value, dict) and value.get("customer_id") in wanted \
                        and rec.key == value["customer_id"].encode():
                    seen[value["customer_id"]][source].add(value.get("event_id"))
        return {c: {s: len(ids) for s, ids in by.items()} for c, by in seen.items()}

    def assert_counts(self, cmp: Comparison, step: str) -> None:
        if cmp.ok:
            return
        sample = (cmp.lost[:2] + cmp.double[:2]) or cmp.unavailable[:2]
        try:
            topics = self.on_topics(sample)
        except Exception as exc:  # the broker may be the thing that is down
            topics = {"error": repr(exc)}
        raise AssertionError(f"[{step}] not every customer matches the oracle: {cmp.describe()}\n"
                             f"  distinct well-keyed events on the input topics now (harness check) for {sample}: {topics}")

    def close(self) -> None:
        """Stop everything this test started, by pid; one failing step never skips the others."""
        steps: list[Callable[[], None]] = [t.stop for t in self.threads]
        steps += [(lambda p=m.proc: stop_process(p, 20)) for m in self.members if m.proc is not None]
        steps += [s.close for s in self.senders]
        steps.append(self.broker.stop)
        errors: list[BaseException] = []
        for step in steps:
            try:
                step()
            except BaseException as exc:  # keep stopping the rest
                errors.append(exc)
        if errors:
            raise errors[0]


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    h = Harness(tmp_path, partitions=4)
    try:
        yield h
    finally:
        h.close()


# ---- dead letters -------------------------------------------------------------------------------
def dead_letters(settings: Settings) -> list[dict[str, Any]]:
    return read_all(settings, settings.deadletter_topic, idle_s=0.5)


def dead_letter_index(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Dead-letter records by the ``event_id`` of their original message (when it is JSON)."""
    out: dict[str, dict[str, Any]] = {}
    for rec in records:
        try:
            original = json.loads(rec.get("original") or "null")
        except ValueError:
            continue
        if isinstance(original, dict) and isinstance(original.get("event_id"), str):
            out[original["event_id"]] = rec
    return out


def wait_dead_lettered(settings: Settings, event_ids: Iterable[str], timeout: float = 60.0) -> dict[str, dict[str, Any]]:
    """Poll the dead-letter topic until every one of ``event_ids`` is on it; returns what was found
    (possibly incomplete at the deadline: the caller asserts)."""
    wanted = set(event_ids)
    deadline = time.monotonic() + timeout
    found: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        found = {k: v for k, v in dead_letter_index(dead_letters(settings)).items() if k in wanted}
        if len(found) == len(wanted):
            break
        time.sleep(0.5)
    return found


class Steps:
    """Named checks of a multi-step test, collected and asserted together at the end, so the first
    broken step does not hide what the later steps would show (each failure names its step)."""

    def __init__(self) -> None:
        self.results: list[tuple[str, bool, str]] = []

    def check(self, step: str, ok: bool, detail: str = "") -> bool:
        self.results.append((step, bool(ok), detail))
        return bool(ok)

    def assert_all(self) -> None:
        failed = [f"[{step}] {detail}" for step, ok, detail in self.results if not ok]
        assert not failed, f"{len(failed)} of {len(self.results)} steps failed:\n" + "\n".join(failed)


def assert_all_alive(members: list[Member], step: str = "end") -> None:
    dead = [m for m in members if not m.alive]
    assert not dead, f"[{step}] worker(s) died: " + "; ".join(
        f"{m.name} exit {m.proc.returncode if m.proc else '?'}: ...{m.log_tail(1500)}" for m in dead)
