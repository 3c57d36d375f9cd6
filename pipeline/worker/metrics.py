"""Prometheus metrics the worker exports. Names are a public contract: the Grafana dashboard and the
alert rules under ``deploy/`` use them, so rename only together with those files."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics, start_http_server

from pipeline.core.alerting import EVENT, SWEEP
from pipeline.core.contract import OUTCOME_TYPES, REASONS

disable_created_metrics()  # the *_created samples double the page for no dashboard use

# ---- label values known at start (see init_labels) ----
#: ``stage`` of :data:`INTERNAL_ERRORS`.
INTERNAL_ERROR_STAGES = ("parse", "apply", "score")
#: ``how`` of :data:`RESTORES` (:meth:`pipeline.worker.store.StateStore.adopt`, plus ``kept``).
RESTORE_KINDS = ("restored", "tail", "kept", "reseed")
#: ``reason`` of :data:`MODEL_RELOAD_FAILURES`: the :class:`pipeline.model.modelcheck.ModelError` reasons.
RELOAD_FAILURE_REASONS = ("corrupt", "feature_mismatch", "bad_spec", "feature_config", "bad_calibration",
                          "crashed", "timeout", "check_error", "registry_error")
#: ``trigger`` of :data:`ALERTS` besides the rule names: a scoring after an event, or the silence sweep.
SCORING_TRIGGERS = (EVENT, SWEEP)

EVENTS_CONSUMED = Counter("churnwatch_events_consumed", "Input events consumed, valid or not", ["topic"])
DEADLETTERS = Counter("churnwatch_deadletters", "Input events rejected to the dead-letter topic", ["reason"])
DUPLICATES = Counter("churnwatch_duplicates_skipped",
                     "Events skipped because the same event (source + event_id) was applied before", ["topic"])
INTERNAL_ERRORS = Counter("churnwatch_internal_errors",
                          "Exceptions contained by the worker (stage: parse, apply, score); apply/parse ones "
                          "dead-letter their event as internal_error", ["stage"])
RESTORES = Counter("churnwatch_state_restores",
                   "Partitions taken over: restored (the whole changelog read into a fresh local copy), tail "
                   "(the local copy brought up to date from the changelog after its mark), kept (the local "
                   "copy was already the newest), reseed (the changelog had lost our writes)", ["how"])
RECOVERY_SECONDS = Gauge("churnwatch_recovery_seconds", "Wall time of the last rebalance's state restore")
INPUT_RESETS = Counter("churnwatch_input_resets",
                       "Input partitions read again from the beginning because the message at the state's "
                       "position was gone or different (topic deleted and re-created, or truncated)")
WRITE_RETRIES = Counter("churnwatch_write_retries", "Durable writes retried because the broker did not take them")
SCORING_LATENCY = Histogram(
    "churnwatch_scoring_latency_seconds",
    "Wall time of one scoring call (a micro-batch of customers)",
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
SCORED = Counter("churnwatch_scored", "Customer scorings")
ALERTS = Counter("churnwatch_alerts_emitted", "Alerts emitted", ["tier", "trigger"])
ALERTS_HELD = Counter("churnwatch_alert_decisions_held",
                      "Risk decisions held because the partition's interactions were read too far behind the scoring time")
MODEL_INFO = Gauge("churnwatch_model_info", "The loaded model version (value 1)", ["version"])
MODEL_LOADED = Gauge("churnwatch_model_loaded", "1 when a model is loaded")
MODEL_RELOAD_FAILURES = Counter("churnwatch_model_reload_failures", "Promoted models that were rejected", ["reason"])
WORKER_READY = Gauge("churnwatch_worker_ready",
                     "1 while every readiness check passes (partitions, recovery, broker, model, agent; see GET /ready)")
CUSTOMERS = Gauge("churnwatch_customers_tracked", "Customers with state on this worker")
OUTCOMES = Counter("churnwatch_outcomes", "Outcome events (alert_ack, contacted, saved, churned, renewed)", ["type"])
ALERTED_OUTCOMES = Counter("churnwatch_alerted_outcomes",
                           "Outcome events of customers who had been alerted before the outcome", ["type"])
SAVE_RATE = Gauge("churnwatch_save_rate", "Of alerted customers with a final outcome: saved / (saved + churned)")
EVENT_LAG = Gauge("churnwatch_event_time_lag_seconds", "Wall clock minus the newest event time seen")

# ---- the webhook alert sink (pipeline/worker/webhook.py) ----
#: Outcome labels of :data:`WEBHOOK_DELIVERIES`; all four are exported from the start (at 0) so that
#: ``rate()``/``increase()`` in alert rules work before the first failure.
WEBHOOK_OUTCOMES = ("delivered", "retried", "failed", "dropped")

WEBHOOK_DELIVERIES = Counter(
    "churnwatch_webhook_deliveries",
    "Webhook alert deliveries by outcome: delivered (alert accepted), retried (an attempt failed and "
    "will be retried), failed (alert given up, sent to the dead-letter topic), dropped (queue overflow "
    "or shutdown)",
    ["outcome"],
)
for _outcome in WEBHOOK_OUTCOMES:
    WEBHOOK_DELIVERIES.labels(outcome=_outcome)
WEBHOOK_LATENCY = Histogram(
    "churnwatch_webhook_latency_seconds",
    "Wall time of one webhook POST attempt, whatever its outcome (timeouts land near the timeout)",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)


def init_labels(input_topics: Iterable[str], tiers: Iterable[str], rules: Iterable[str]) -> None:
    """Export every labelled counter at 0 for each label value known at start.

    Why: prometheus_client exports a labelled child only once ``.labels(...)`` was called, so a counter
    that never moved has no series at all and a ``rate()`` panel shows "No data" instead of 0, and an
    alert on ``increase()`` cannot see the first increment. The worker calls this with its input
    topics, the tiers its policy names and the alert rules' names (alerts of other tiers appear when
    they first occur)."""
    topics = list(input_topics)
    for topic in topics:
        EVENTS_CONSUMED.labels(topic=topic)
        DUPLICATES.labels(topic=topic)
    for reason in REASONS:
        DEADLETTERS.labels(reason=reason)
    for stage in INTERNAL_ERROR_STAGES:
        INTERNAL_ERRORS.labels(stage=stage)
    for how in RESTORE_KINDS:
        RESTORES.labels(how=how)
    for reason in RELOAD_FAILURE_REASONS:
        MODEL_RELOAD_FAILURES.labels(reason=reason)
    for kind in sorted(OUTCOME_TYPES):
        OUTCOMES.labels(type=kind)
        ALERTED_OUTCOMES.labels(type=kind)
    triggers = [*SCORING_TRIGGERS, *sorted(set(rules))]
    for tier in sorted(set(tiers)):
        for trigger in triggers:
            ALERTS.labels(tier=tier, trigger=trigger)
    for outcome in WEBHOOK_OUTCOMES:
        WEBHOOK_DELIVERIES.labels(outcome=outcome)


def set_model(version: str | None, previous: str | None = None) -> None:
    if previous:
        MODEL_INFO.remove(previous)
    if version:
        MODEL_INFO.labels(version=version).set(1)
    MODEL_LOADED.set(1 if version else 0)


def serve(port: int, host: str = "127.0.0.1") -> int:
    """Serve /metrics on a background thread (prometheus_client's own server); the port it listens on
    (``port`` 0 takes any free one, which the caller then has to tell Prometheus)."""
    server, _thread = start_http_server(port, addr=host)
    return int(server.server_address[1])
