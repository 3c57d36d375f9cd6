"""Unit tests for pipeline.worker.metrics: every labelled counter is exported at 0 for every known label value,
and the lists of known values keep up with the code that increments the counters."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from prometheus_client import REGISTRY, generate_latest

from pipeline.core import rules
from pipeline.core.contract import OUTCOME_TYPES, REASONS
from pipeline.core.rules import RulesConfig
from pipeline.worker import metrics

REPO = Path(metrics.__file__).resolve().parents[2]


def _samples() -> set[str]:
    """``name{labels}`` of every sample on the process's /metrics page (values dropped)."""
    text = generate_latest(REGISTRY).decode()
    return {line.rsplit(" ", 1)[0] for line in text.splitlines() if line and not line.startswith("#")}


def _source(*names: str) -> str:
    return "\n".join((REPO / name).read_text(encoding="utf-8") for name in names)


def test_init_labels_exports_every_known_label_value() -> None:
    metrics.init_labels(["u1.interactions", "u1.tickets"], tiers={"vip", "standard"}, rules={"csat_low"})
    have = _samples()
    expected = {
        'churnwatch_events_consumed_total{topic="u1.interactions"}',
        'churnwatch_events_consumed_total{topic="u1.tickets"}',
        'churnwatch_duplicates_skipped_total{topic="u1.tickets"}',
        *(f'churnwatch_deadletters_total{{reason="{r}"}}' for r in REASONS),
        *(f'churnwatch_internal_errors_total{{stage="{s}"}}' for s in ("parse", "apply", "score")),
        *(f'churnwatch_state_restores_total{{how="{h}"}}' for h in ("restored", "tail", "kept", "reseed")),
        *(f'churnwatch_model_reload_failures_total{{reason="{r}"}}' for r in metrics.RELOAD_FAILURE_REASONS),
        *(f'churnwatch_outcomes_total{{type="{t}"}}' for t in OUTCOME_TYPES),
        *(f'churnwatch_alerted_outcomes_total{{type="{t}"}}' for t in OUTCOME_TYPES),
        *(f'churnwatch_alerts_emitted_total{{tier="{tier}",trigger="{trigger}"}}'
          for tier in ("vip", "standard") for trigger in ("event", "sweep", "csat_low")),
        *(f'churnwatch_webhook_deliveries_total{{outcome="{o}"}}' for o in metrics.WEBHOOK_OUTCOMES),
    }
    assert expected <= have, sorted(expected - have)


def test_every_model_rejection_reason_is_known() -> None:
    """A reason missing from RELOAD_FAILURE_REASONS would have no series until its first failure."""
    code = _source("pipeline/model/modelcheck.py", "pipeline/model/scoring.py", "pipeline/model/registry.py")
    raised = set(re.findall(r'ModelError\(\s*"(\w+)"', code)) | set(re.findall(r'_rejected_as\([^)]*?"(\w+)"', code))
    assert raised, "no ModelError reason found: the pattern no longer matches the code"
    assert raised <= set(metrics.RELOAD_FAILURE_REASONS), raised - set(metrics.RELOAD_FAILURE_REASONS)
    doc = re.search(r"a failure reason\s*\(([^)]*)\)", _source("pipeline/model/scoring.py"))
    assert doc, "ModelHolder.refresh no longer lists its failure reasons"
    assert set(re.findall(r"'(\w+)'", doc.group(1))) == set(metrics.RELOAD_FAILURE_REASONS)


def test_every_internal_error_stage_and_restore_kind_is_known() -> None:
    code = _source("pipeline/worker/batch.py", "pipeline/worker/rebalance.py", "pipeline/worker/store.py")
    stages = set(re.findall(r'INTERNAL_ERRORS\.labels\(stage="(\w+)"\)', code))
    assert stages == set(metrics.INTERNAL_ERROR_STAGES)
    kinds = set(re.findall(r'\bhow(?:, \w+)? = (?:\w+, )?"(\w+)"', code))
    full = re.search(r'def after_full_read[^\n]*\n(?:[^\n]*\n)*?\s*return "(\w+)" if [^\n]* else "(\w+)"', code)
    assert full, "after_full_read no longer says which restore kinds it returns"
    kinds |= set(full.groups())
    assert kinds == set(metrics.RESTORE_KINDS)


def test_every_rule_name_is_a_known_trigger() -> None:
    fired = {getattr(rules, name) for name in re.findall(r'RuleHit\((\w+),', _source("pipeline/core/rules.py"))}
    assert fired and fired <= RulesConfig().enabled


def test_a_worker_initialises_its_labels(tmp_path: Path) -> None:
    pytest.importorskip("faust")
    from pipeline.config.settings import Settings
    from pipeline.worker.batch import BatchProcessor

    settings = Settings.from_env(env={}).with_(broker="kafka://127.0.0.1:1", topic_prefix="u2.",
                                               models_dir=tmp_path / "models", data_dir=tmp_path / "data")
    BatchProcessor(settings)
    have = _samples()
    for topic in settings.input_topics.values():
        assert f'churnwatch_events_consumed_total{{topic="{topic}"}}' in have
        assert f'churnwatch_duplicates_skipped_total{{topic="{topic}"}}' in have
    for rule in RulesConfig().enabled:
        assert f'churnwatch_alerts_emitted_total{{tier="standard",trigger="{rule}"}}' in have
        assert f'churnwatch_alerts_emitted_total{{tier="vip",trigger="{rule}"}}' in have
