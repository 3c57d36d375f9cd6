"""A team's own usage log -> a loadable model in one step (convert, then train)."""

from __future__ import annotations

from pathlib import Path

from pipeline.model.registry import Registry
from pipeline.model.scoring import load_version
from training.data.foreign.mapping import ForeignMapping, parse_type_map
from training.runs.from_foreign import train_foreign
from tests.unit.training.data.foreign.test_convert import team_history


def test_inactivity_trains_a_loadable_model(tmp_path: Path) -> None:
    usage, _ = team_history(tmp_path, accounts=120, days=200)
    mapping = ForeignMapping(id_col="account", time_col="occurred_at", type_col="action", inactive_days=21,
                             type_map=parse_type_map("signin=login,view_dashboard=page_view"))
    result = train_foreign(usage, None, tmp_path / "models", mapping, log_out=tmp_path / "converted.jsonl",
                           progress=False)
    assert result.convert.churned > 40 and result.convert.labelled_until_ms is not None
    registry = Registry(tmp_path / "models")
    assert load_version(registry, result.train.version).version == result.train.version
    assert registry.meta(result.train.version)["metrics"]["test"]["roc_auc"] > 0.6
    # a churn is known 21 days after its date: rows, labels and the purge gap use that delay
    meta = registry.meta(result.train.version)
    assert meta["label_delay_days"] == 21 and meta["split"]["purge_days"] == 30 + 21
    # the printed total includes the conversion, the user's whole wait
    t = result.train.timings
    assert t["convert_s"] > 0 and "of which conversion" in result.train.summary()
