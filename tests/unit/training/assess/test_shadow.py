"""training.assess.shadow: the worker's per-customer logic offline — and proof that it *is* the worker's logic."""

from __future__ import annotations

import asyncio
import dataclasses
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Sequence

import lightgbm as lgb
import numpy as np
import orjson
import pytest

from devtools.simulator import SimConfig, encode_value, simulate
from pipeline.core.alerting import AlertConfig
from pipeline.core.contract import DAY_MS, Event, parse_ts
from pipeline.core.features import FEATURE_INDEX, FEATURES, CustomerState, apply
from pipeline.core.policy import AlertPolicy
from pipeline.core.rules import RulesConfig, on_event
from training.assess import shadow as rp
from training.assess.shadow import Replayer, ShadowSignal, Scoring, events_from_records, score_and_decide

T0 = parse_ts("2025-03-03T09:00:00Z")
H = 3_600_000
N = len(FEATURES)
DSA = FEATURE_INDEX["days_since_activity"]
TICKETS = FEATURE_INDEX["tickets_30d"]


class StubModel:
    """Risk = days since the last activity / 10, or open-ticket load, whichever is higher (capped at 0.99)."""

    version = "stub"

    def __init__(self, thresholds: dict[str, float] | None = None) -> None:
        self._thresholds = thresholds or {}
        self.rows = 0

    @property
    def thresholds(self) -> dict[str, float]:
        return dict(self._thresholds)

    @staticmethod
    def score(row: Sequence[float]) -> float:
        idle = 0.0 if math.isnan(row[DSA]) else row[DSA] / 10
        return min(0.99, max(idle, row[TICKETS] / 4))

    def predict(self, rows: Any) -> np.ndarray:
        self.rows += len(rows)
        return np.array([self.score(r) for r in rows])

    def contributions(self, rows: Any) -> np.ndarray:
        out = np.zeros((len(rows), N + 1))
        out[:, DSA] = 1.0
        out[:, TICKETS] = 0.5
        return out


def ev(cid: str, source: str, typ: str, ts: int, **data: Any) -> Event:
    return Event(source, f"{cid}-{source}-{typ}-{ts}", cid, ts, typ, data)


def login(cid: str, ts: int) -> Event:
    return ev(cid, "interactions", "login", ts, duration_s=60.0)


def daily_logins(cid: str, first_day: int, last_day: int, hour: int = 9) -> list[Event]:
    return [login(cid, T0 + d * DAY_MS + hour * H) for d in range(first_day, last_day + 1)]


def profile(cid: str, tier: str = "standard") -> Event:
    return ev(cid, "customers", "profile", T0, tier=tier, plan="pro", csm="ann")


def ordered(*streams: list[Event]) -> list[Event]:
    return sorted((e for s in streams for e in s), key=lambda e: e.ts_ms)


def replay(events: list[Event], model: Any = None, **kw: Any) -> Replayer:
    r = Replayer(model if model is not None else StubModel(), partitions=kw.pop("partitions", 1),
                 batch_max=kw.pop("batch_max", 1), **kw)  # one event per batch: a live worker
    r.run(events)
    return r


def of(r: Replayer, cid: str) -> list:
    return [a for a in r.alerts if a.customer_id == cid]


# ---- the worker's constants and types -----------------------------------------------------------------
def test_batch_size_and_entry_type_match_the_worker():
    batch = pytest.importorskip("pipeline.worker.batch")
    assert rp.BATCH_MAX == batch.BATCH_MAX
    assert [f.name for f in dataclasses.fields(rp.Touched)] == [f.name for f in dataclasses.fields(batch.Touched)]


# ---- model alerts ------------------------------------------------------------------------------------
def test_customer_gone_quiet_is_alerted_by_the_sweep_once():
    quiet = [profile("c1")] + daily_logins("c1", 0, 40)
    busy = [profile("c2")] + daily_logins("c2", 0, 70, hour=15)  # keeps the event clock moving
    r = replay(ordered(quiet, busy))
    alerts = of(r, "c1")
    # one new alert; while it is open, only a score 0.15 above the last one sent is news (escalation)
    assert [(a.trigger, a.kind) for a in alerts] == [("sweep", "new")] + [("escalation", "escalation")] * (len(alerts) - 1)
    assert len(alerts) >= 2 and all(b.score >= a.score + 0.15 for a, b in zip(alerts, alerts[1:]))
    last_activity = T0 + 40 * DAY_MS + 9 * H
    # the sweep re-scores daily: alerted on the first sweep with >= 5 days of silence (score 0.5)
    assert 5 * DAY_MS <= alerts[0].event_ms - last_activity < 6 * DAY_MS
    assert alerts[0].score >= 0.5 and alerts[0].reasons[0].feature == "days_since_activity"
    assert of(r, "c2") == []
    assert r.counts["scorings_sweep"] > 0


def test_no_model_alert_before_the_minimum_history():
    # silent from day 2: the score passes 0.5 on day 7, but this policy waits for 28 days of history
    early = [profile("c1")] + daily_logins("c1", 0, 2)
    busy = [profile("c2")] + daily_logins("c2", 0, 40, hour=15)
    policy = AlertPolicy(alerts=AlertConfig(min_history_days=28))
    alerts = of(replay(ordered(early, busy), policy=policy), "c1")
    assert len(alerts) == 1 and alerts[0].event_ms - T0 >= 28 * DAY_MS


def test_event_triggered_alert_and_escalation():
    base = [profile("c1")] + daily_logins("c1", 0, 40)
    tickets = [ev("c1", "tickets", "opened", T0 + (35 + k) * DAY_MS + 10 * H, ticket_id=f"t{k}", severity="low")
               for k in range(4)]
    r = replay(ordered(base, tickets))
    alerts = of(r, "c1")
    # 2 tickets in 30 days: score 0.5 -> new alert on that event; 3 tickets: 0.75 >= 0.5 + 0.15 and
    # 4 tickets: 0.99 >= 0.75 + 0.15 -> escalations
    assert [(a.trigger, a.kind, a.event_ms) for a in alerts] == [
        ("event", "new", tickets[1].ts_ms), ("escalation", "escalation", tickets[2].ts_ms),
        ("escalation", "escalation", tickets[3].ts_ms)]
    assert [a.score for a in alerts] == [0.5, 0.75, 0.99]


def test_a_churned_customer_gets_no_alert_after_churn():
    def run(churn: bool) -> list:
        c1 = [profile("c1")] + daily_logins("c1", 0, 40)
        if churn:
            c1.append(ev("c1", "outcomes", "churned", T0 + 43 * DAY_MS, reason="price"))
        busy = [profile("c2")] + daily_logins("c2", 0, 70, hour=15)
        r = replay(ordered(c1, busy))
        assert r.states["c1"].churned_ms == (T0 + 43 * DAY_MS if churn else 0)
        return of(r, "c1")

    assert run(churn=False), "control: without the churn the silent customer is alerted"
    assert run(churn=True) == []


def test_rules_are_not_applied_after_churn():
    c1 = ([profile("c1")] + daily_logins("c1", 0, 30)
          + [ev("c1", "outcomes", "churned", T0 + 31 * DAY_MS, reason="price"),
             ev("c1", "surveys", "csat", T0 + 32 * DAY_MS, score=1.0)])  # a late answer after churn
    assert of(replay(ordered(c1), batch_max=1), "c1") == []


# ---- rules -------------------------------------------------------------------------------------------
def test_survey_rules_fire_as_in_pipeline_rules_with_their_cooldown():
    c1 = [profile("c1")] + daily_logins("c1", 0, 20)
    surveys = [
        ev("c1", "surveys", "csat", T0 + 3 * DAY_MS + 11 * H, score=1.0),   # csat_low
        ev("c1", "surveys", "csat", T0 + 6 * DAY_MS + 11 * H, score=2.0),   # within 7 days: cooled down
        ev("c1", "surveys", "csat", T0 + 11 * DAY_MS + 11 * H, score=2.0),  # 8 days later: fires again
        ev("c1", "surveys", "csat", T0 + 12 * DAY_MS + 11 * H, score=4.0),  # fine
        ev("c1", "surveys", "nps", T0 + 13 * DAY_MS + 11 * H, score=5.0),   # nps_detractor
    ]
    r = replay(ordered(c1, surveys), batch_max=500)  # one batch: rule times are still the events' own
    got = [(a.trigger, a.kind, a.event_ms) for a in of(r, "c1")]
    assert got == [("csat_low", "rule", surveys[0].ts_ms), ("csat_low", "rule", surveys[2].ts_ms),
                   ("nps_detractor", "rule", surveys[4].ts_ms)]
    # the same hits pipeline.core.rules gives on each event
    st = CustomerState("c1")
    direct = []
    for e in ordered(c1, surveys):
        apply(st, e)
        direct += [h.rule for h in on_event(st, e, RulesConfig())]
    assert direct == ["csat_low", "csat_low", "csat_low", "nps_detractor"]  # the cool-down is due()'s job


def test_repeated_failed_help_rule():
    views = [ev("c1", "interactions", "help_view", T0 + 5 * DAY_MS + k * H, feature="export", success=False)
             for k in range(3)]
    r = replay(ordered([profile("c1")] + daily_logins("c1", 0, 6), views))
    assert [(a.trigger, a.event_ms) for a in of(r, "c1")] == [("repeated_failed_help", views[2].ts_ms)]
    assert of(r, "c1")[0].play == AlertPolicy().plays["adoption"]


def test_disabled_rules_stay_off():
    policy = AlertPolicy(rules=RulesConfig(enabled=frozenset()))
    c1 = [profile("c1")] + daily_logins("c1", 0, 5) + [ev("c1", "surveys", "csat", T0 + 5 * DAY_MS + 11 * H, score=1.0)]
    assert of(replay(ordered(c1), policy=policy), "c1") == []


# ---- batching, observers, shadow policy ---------------------------------------------------------------
def test_a_customer_is_scored_once_per_batch_as_of_its_newest_event():
    events = [profile("c1")] + [login("c1", T0 + k * 60_000) for k in range(1, 6)]
    seen: list[Scoring] = []
    replay(events, batch_max=500, observers=[seen.append])
    assert [(s.trigger, s.entry.as_of_ms) for s in seen] == [("event", T0 + 5 * 60_000)]
    seen.clear()
    replay(events, batch_max=1, observers=[seen.append])
    assert [s.entry.as_of_ms for s in seen] == [e.ts_ms for e in events]  # a profile is scored too


def test_outcomes_are_not_scored():
    events = [profile("c1"), ev("c1", "outcomes", "renewed", T0 + H)]
    seen: list[Scoring] = []
    replay(events, batch_max=1, observers=[seen.append])
    assert [s.entry.as_of_ms for s in seen] == [T0]


def test_shadow_policy_uses_the_same_policy_memory_rules():
    # the signal is on from day 30 to day 33, off, then on again from day 36: one alert, then the
    # cool-down (14 days) blocks the second episode even though the signal re-armed
    def signal_on(row: Sequence[float]) -> bool:
        return row[FEATURE_INDEX["logins_7d"]] == 0

    c1 = [profile("c1")] + daily_logins("c1", 0, 29) + daily_logins("c1", 33, 35) + daily_logins("c1", 60, 61)
    busy = [profile("c2")] + daily_logins("c2", 0, 70, hour=15)
    shadow = ShadowSignal("no_logins_7d", signal_on)
    replay(ordered(c1, busy), observers=[shadow])
    mine = [a for a in shadow.alerts if a.customer_id == "c1"]
    assert len(mine) >= 1 and all(a.trigger == "no_logins_7d" for a in mine)
    assert all(a.event_ms - T0 >= 28 * DAY_MS for a in mine)
    gaps = [b.event_ms - a.event_ms for a, b in zip(mine, mine[1:])]
    assert all(g >= 14 * DAY_MS for g in gaps)
    assert not [a for a in shadow.alerts if a.customer_id == "c2"]


def test_score_and_decide_without_a_model_runs_rules_only():
    st = CustomerState("c1", tier="vip")
    csat = ev("c1", "surveys", "csat", T0, score=1.0)
    apply(st, csat)
    entry = rp.Touched(st, 0, True, T0, on_event(st, csat, RulesConfig()))
    [s] = score_and_decide([entry], None, AlertPolicy(), "event")
    assert s.score is None and [a.trigger for a in s.alerts] == ["csat_low"] and math.isnan(s.alerts[0].score)
    assert st.alert.rules["csat_low"] == T0 and st.alert.history[0]["trigger"] == "csat_low"


def test_events_from_records_validates_and_counts_invalid():
    recs = [SimpleNamespace(source="surveys", ts_ms=T0, value={
                "event_id": "e1", "customer_id": "c1", "ts": T0, "type": "nps", "score": 3, "schema_version": 1}),
            SimpleNamespace(source="surveys", ts_ms=T0, value=b"\x00garbage"),
            SimpleNamespace(source="surveys", ts_ms=T0, value={
                "event_id": "e2", "customer_id": "c1", "ts": T0, "type": "nps", "score": 11, "schema_version": 1})]
    stats: dict = __import__("collections").Counter()
    out = list(events_from_records(recs, stats=stats))
    assert [(e.event_id, e.data["score"]) for e in out] == [("e1", 3)] and stats["invalid"] == 2


# ---- parity with the real worker ---------------------------------------------------------------------
def tiny_registry(root: Path) -> Path:
    """A real LightGBM model in a registry: risk rises with days since the last activity."""
    from pipeline.model.registry import Registry

    rng = np.random.default_rng(3)
    X = rng.normal(size=(3000, N)) * 3
    y = (X[:, DSA] + 0.5 * rng.normal(size=3000) > 1.5).astype(int)
    params = {"objective": "binary", "num_leaves": 4, "min_data_in_leaf": 20, "verbose": -1,
              "num_threads": 1, "deterministic": True, "force_row_wise": True, "seed": 3}
    text = lgb.train(params, lgb.Dataset(X, label=y), num_boost_round=8).model_to_string()
    reg = Registry(root)
    version = reg.save(text, {"features": list(FEATURES), "calibration": {},
                              "thresholds": {"vip": 0.5, "standard": 0.6}})
    reg.promote(version)
    return root


def test_replay_emits_exactly_the_alerts_of_the_real_worker(tmp_path: Path):
    """BatchProcessor.process_batch + BatchProcessor.sweep (Kafka stubbed) vs Replayer on the same simulated events."""
    pytest.importorskip("faust")
    from pipeline.config.settings import Settings
    from pipeline.model.registry import Registry
    from pipeline.model.scoring import load_current
    from pipeline.worker.batch import BatchProcessor

    models = tiny_registry(tmp_path / "models")
    cfg = SimConfig(customers=40, days=75, seed=5, start_ms=T0, churn_rate=0.4)
    records = [r for r in simulate(cfg)]
    settings = Settings.from_env(env={}).with_(broker="kafka://127.0.0.1:1", models_dir=models,
                                               data_dir=tmp_path / "data", realtime_idle_s=1e9)
    worker = BatchProcessor(settings)
    worker.refresh_model()
    assert worker.models.model is not None
    sent: list[dict] = []

    def sink(records: Any) -> None:
        sent.extend(orjson.loads(value) for topic, _key, value, _p in records if topic == settings.alerts_topic)

    worker.detach(sink)
    offsets: dict[tuple[str, int], int] = {}
    fake = []
    partition_of = rp.partitioner(settings.partitions)
    for rec in records:
        key = rec.key.encode()
        topic = settings.topic(rec.source)
        part = partition_of(rec.key)
        off = offsets[(topic, part)] = offsets.get((topic, part), -1) + 1
        fake.append(SimpleNamespace(topic=topic, partition=part, offset=off, key=key, value=encode_value(rec)))
    batch = 100

    async def drive() -> None:
        for i in range(0, len(fake), batch):
            await worker.process_batch(fake[i:i + batch])
            await worker.sweep()
        await worker.drain()  # the last batch's alerts (the worker lands it on shutdown)

    asyncio.run(drive())

    r = Replayer(load_current(Registry(models)), AlertPolicy(), batch_max=batch, partitions=settings.partitions)
    r.run(events_from_records(records))

    def key(a: dict) -> dict:
        return {k: v for k, v in a.items() if k not in ("emit_time", "emit_ms")}

    mine = [key(a.to_json()) for a in r.alerts]
    theirs = [key(a) for a in sent]
    triggers = {a["trigger"] for a in theirs}
    assert {"event", "sweep"} <= triggers, f"the scenario must exercise both model paths, got {triggers}"
    assert len(theirs) >= 20
    order = lambda a: (a["event_time"], a["customer_id"], a["trigger"])  # noqa: E731  (within a sweep, partitions are visited in turn)
    assert sorted(mine, key=order) == sorted(theirs, key=order)
