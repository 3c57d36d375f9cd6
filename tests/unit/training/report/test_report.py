"""The evaluation report: figures computed for the model and both baselines, drawn as PNGs, tied together
by one readable HTML page — and re-drawable from the saved JSON alone."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import orjson
import pytest

from training.assess.alert_measures import propose_thresholds
from training.fit.baselines import BASELINE_LABELS
from training.report.page import REPORT_HTML, render
from training.report.plots import PLOTS
from training.report.sections import LABELS, MODEL, Frame, evaluation_section
from training.report.terminal import comparison_table

DAY_MS = 86_400_000
T0 = 1_699_920_000_000
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def make_frame(customers: int = 400, weeks: int = 10, seed: int = 1) -> tuple[Frame, dict[str, np.ndarray]]:
    """Customers with a latent risk; churners churn two weeks after the last week; three scorers of
    decreasing skill."""
    rng = np.random.default_rng(seed)
    risk = rng.beta(0.7, 6.0, customers)
    churner = rng.random(customers) < risk
    ids = np.repeat(np.array([f"c{i}" for i in range(customers)], dtype=object), weeks)
    obs = np.tile(T0 + np.arange(weeks) * 7 * DAY_MS, customers)
    tiers = np.repeat(np.where(np.arange(customers) % 8 == 0, "vip", "standard").astype(object), weeks)
    churn_at = T0 + (weeks + 1) * 7 * DAY_MS
    week = (obs - T0) // (7 * DAY_MS)
    y = (np.repeat(churner, weeks) & (churn_at - obs <= 30 * DAY_MS)).astype(int)
    counted = week >= 4
    truth = np.repeat(churner, weeks).astype(float) * (0.2 + 0.1 * week / weeks)
    scores = {
        MODEL: np.clip(0.05 + truth + rng.normal(0, 0.05, ids.size), 0, 1),
        "logreg": np.clip(0.05 + 0.6 * truth + rng.normal(0, 0.08, ids.size), 0, 1),
        "counts_28d": np.clip(0.05 + 0.3 * truth + rng.normal(0, 0.1, ids.size), 0, 1),
        "type_counts_28d": np.clip(0.05 + 0.45 * truth + rng.normal(0, 0.09, ids.size), 0, 1),
    }
    churn_ms = {f"c{i}": churn_at for i in np.flatnonzero(churner)}
    return Frame(ids, obs, tiers, y, counted, churn_ms, 7, 30), scores


@pytest.fixture(scope="module")
def metrics() -> dict:
    frame, scores = make_frame()
    scorers = {}
    for name, p in scores.items():
        g = propose_thresholds(frame.customer_ids, frame.obs_ms, frame.tiers, frame.y, p, frame.counted, 30.0)
        g["chosen_on"] = "validation"
        scorers[name] = {"p": p, "thresholds": g["thresholds"], "guidance": g,
                         "importance": {"days_since_last_login": 0.4, "logins_30d": 0.2}}
    ev = evaluation_section(frame, {"name": "test", "start": "2024-01-01", "end": "2024-02-01", "dates": 6}, scorers)
    return {"evaluation": ev, "horizon_days": 30, "created": "2024-03-01T00:00:00+00:00",
            "data_window": {"start": "2023-06-01", "end": "2024-03-01"}, "thresholds": scorers[MODEL]["thresholds"]}


def test_evaluation_compares_the_same_rows_for_every_scorer(metrics: dict) -> None:
    ev = metrics["evaluation"]
    assert list(ev["scorers"]) == [MODEL, *BASELINE_LABELS]
    rows = {b["metrics"]["rows"] for b in ev["scorers"].values()}
    assert rows == {ev["period"]["rows"]} and ev["period"]["rows"] == 400 * 6
    c = ev["comparison"]
    # the synthetic scorers are ordered by skill, and the figures say so
    assert c[MODEL]["roc_auc"] > c["logreg"]["roc_auc"] > c["counts_28d"]["roc_auc"]
    assert c[MODEL]["lift_at_10"] > c["counts_28d"]["lift_at_10"]
    for name, block in ev["scorers"].items():
        assert block["label"] == LABELS[name]
        assert block["lead_time"]["churners"] == ev["period"]["churners"] > 0
        assert len(block["calibration"]) == 10
        assert block["alerts"]["share_per_1k_all"] is not None
    orjson.dumps(metrics)  # JSON-ready: no NaN, no numpy scalars


def test_report_files_exist_are_png_and_are_referenced(metrics: dict, tmp_path: Path) -> None:
    html_path = render(metrics, tmp_path / "report")
    assert html_path == tmp_path / "report" / REPORT_HTML
    html = html_path.read_text(encoding="utf-8")
    referenced = set(re.findall(r"<img src='([^']+)'", html))
    assert referenced == set(PLOTS.values())
    for name in PLOTS.values():
        data = (tmp_path / "report" / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 10_000, name
        assert not re.search(r"(src|href)=['\"](https?:|/)", html)  # nothing but the relative PNGs
    # readable: the headline table and the threshold guidance name the model and both baselines
    for label in (LABELS[MODEL], *BASELINE_LABELS.values()):
        assert html.count(label) >= 2, label
    assert "ROC-AUC" in html and "lift, top 10 %" in html and "median lead time" in html
    g = metrics["evaluation"]["scorers"][MODEL]["guidance"]
    assert f"{g['thresholds']['standard']:.4f}" in html and f"{g['thresholds']['vip']:.4f}" in html
    assert "budget <b>30</b>" in html
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == sorted([REPORT_HTML, *PLOTS.values()])


def test_the_report_redraws_from_saved_json_and_replaces_the_old_one(metrics: dict, tmp_path: Path) -> None:
    saved = orjson.loads(orjson.dumps(metrics))
    out = tmp_path / "report"
    render(saved, out)
    (out / "stale.png").write_bytes(b"old")
    render(dict(saved, version="v7"), out)
    assert not (out / "stale.png").exists()  # swapped in whole, not written over
    assert "churnwatch model evaluation — v7" in (out / REPORT_HTML).read_text(encoding="utf-8")
    assert [p.name for p in tmp_path.iterdir()] == ["report"]  # no temporary directories left behind


def test_degenerate_periods_still_give_a_report(tmp_path: Path) -> None:
    frame, scores = make_frame(customers=30, weeks=6)
    frame.y[:] = 0  # no churn labels in the period: AUCs undefined
    frame.churn_ms.clear()
    ev = evaluation_section(frame, {"name": "test"}, {n: {"p": p, "thresholds": {"standard": 0.5}} for n, p in scores.items()})
    assert ev["comparison"][MODEL]["roc_auc"] is None
    html = render({"evaluation": ev}, tmp_path / "r").read_text(encoding="utf-8")
    assert "n/a" in html and "no threshold guidance recorded" in html


def test_terminal_table_lists_every_scorer(metrics: dict) -> None:
    from rich.console import Console

    console = Console(record=True, width=120)
    console.print(comparison_table(metrics["evaluation"]["comparison"]))
    text = console.export_text()
    assert "ROC-AUC" in text and "lift top 10%" in text
    assert "logreg, same features" in text and "logreg, 28-day counts" in text
    assert f"{metrics['evaluation']['comparison'][MODEL]['roc_auc']:.3f}" in text
