"""The evaluation report of a model: ``metrics.json``, ``report/report.html`` and its PNG plots.

Every number and every figure shows the model beside the two baselines fitted in the same run
(:mod:`training.fit.baselines`), on the same rows of a period the model never saw (the time split's test
period at training time; the later part of a log with ``churnwatch evaluate --events``). What is
measured, per scorer:

- ranking: ROC-AUC, PR-AUC (average precision), precision / recall / lift of the top 5, 10 and 20 %;
- probabilities: Brier score and a reliability table (mean predicted vs observed churn per score bin);
- workload: new alerts per week per 1,000 customers at the scorer's per-tier thresholds, counted by
  replaying the stream's alert policy (:func:`training.assess.measures.alert_rate`), and their precision;
- timeliness: lead time between a churner's first flag and their churn
  (:func:`training.assess.measures.lead_times`);
- threshold guidance: the per-tier thresholds that fit a weekly alert budget
  (:func:`training.assess.measures.propose_thresholds`), with the volume and precision they imply.

The computation (:func:`score_period`) works on plain arrays; :func:`render` draws the HTML page and
plots from the JSON alone, so ``churnwatch evaluate VERSION`` can re-draw a saved report without data.
Plots use matplotlib's object API on the Agg canvas (no pyplot, no display, no global state).
"""

from __future__ import annotations

import html
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from training.fit.baselines import BASELINE_LABELS
from training.assess.measures import (CI_METRICS, alert_rate, curves, customer_weights, evaluate, interval, json_safe,
                               lead_times, reliability, weighted_metrics)

REPORT_HTML = "report.html"
MODEL = "model"
#: Scorers in the order tables and legends show them.
LABELS: dict[str, str] = {MODEL: "LightGBM model", **BASELINE_LABELS}
COLORS = {MODEL: "#1f5fa8", "logreg": "#e07b00", "counts_28d": "#2a9d3a", "type_counts_28d": "#8e44ad"}
STYLES = {MODEL: "-", "logreg": "--", "counts_28d": ":", "type_counts_28d": "-."}
PLOTS = {
    "roc": "roc.png",
    "pr": "pr.png",
    "gain": "gain_lift.png",
    "calibration": "calibration.png",
    "scores": "score_distribution.png",
    "lead_time": "lead_time.png",
}
PCTS = (5, 10, 20)


# ---- computing ------------------------------------------------------------------------------------
@dataclass
class Frame:
    """The rows a period is evaluated on: the period's own rows (``counted``) plus the purge gap before
    it (horizon + label delay), which only warms up the alert policy's memory and holds early flags of the period's churners.
    ``churn_ms``: the period's churners (a positive row in the period) and their churn instant."""

    customer_ids: np.ndarray
    obs_ms: np.ndarray
    tiers: np.ndarray
    y: np.ndarray
    counted: np.ndarray
    churn_ms: dict[str, int]
    cadence_days: int
    horizon_days: int

    def __len__(self) -> int:
        return int(self.y.shape[0])


def score_period(frame: Frame, p: np.ndarray, thresholds: Mapping[str, float]) -> dict[str, Any]:
    """Every figure of one scorer over one period (``p`` aligned with the frame's rows)."""
    p = np.asarray(p, dtype=np.float64)
    c = frame.counted
    thresholds = dict(thresholds)
    return json_safe({
        "thresholds": thresholds,
        "metrics": evaluate(frame.y[c], p[c]),
        "calibration": reliability(frame.y[c], p[c]),
        "curves": curves(frame.y[c], p[c]),
        "alerts": alert_rate(frame.customer_ids, frame.obs_ms, frame.tiers, frame.y, p, thresholds, c,
                             frame.cadence_days),
        "lead_time": lead_times(frame.customer_ids, frame.obs_ms, frame.tiers, p, thresholds, frame.churn_ms,
                                frame.horizon_days),
    })


def headline(block: Mapping[str, Any]) -> dict[str, Any]:
    """The figures of a scorer that go in summary tables and the CLI."""
    m, alerts, lead = block["metrics"], block["alerts"], block["lead_time"]
    out = {k: m.get(k) for k in ("roc_auc", "pr_auc", "brier")}
    for pct in PCTS:
        out[f"lift_at_{pct}"] = m.get(f"lift_at_{pct}")
        out[f"precision_at_{pct}"] = m.get(f"precision_at_{pct}")
        out[f"recall_at_{pct}"] = m.get(f"recall_at_{pct}")
    out["alerts_per_week_per_1k"] = alerts.get("share_per_1k_all")
    out["alert_precision"] = alerts.get("precision")
    out["lead_median_days"] = lead.get("median_days")
    out["flagged_share"] = lead.get("flagged_share")
    out["flagged_early_share"] = lead.get("share_flagged_early")
    return json_safe(out)


#: Fewer churners than this in the test period and every figure is mostly noise: said loudly.
MIN_TEST_CHURNERS = 30


def with_ci(value: Any, ci: Any, fmt: str) -> str:
    """``0.801 (0.762-0.840)``: a figure with its 95 % bootstrap interval, when it has one."""
    text = _fmt(value, fmt)
    if isinstance(ci, (list, tuple)) and len(ci) == 2 and all(isinstance(x, (int, float)) for x in ci):
        text += f" ({_fmt(ci[0], fmt)}–{_fmt(ci[1], fmt)})"
    return text


def evaluation(frame: Frame, period: Mapping[str, Any], scorers: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    """The ``evaluation`` section of ``metrics.json``.

    ``scorers`` maps a scorer name (``model``, then the baselines) to ``p`` (scores aligned with the
    frame), ``thresholds``, and optionally ``guidance`` and ``importance``.
    """
    c = frame.counted
    out: dict[str, Any] = {
        "period": dict(period, rows=int(c.sum()), positives=int(frame.y[c].sum()), churners=len(frame.churn_ms),
                       customers=int(np.unique(frame.customer_ids[c]).size)),
        "scorers": {},
        "comparison": {},
    }
    # one set of customer resamples for every scorer: intervals of differences are paired
    weights = customer_weights(frame.customer_ids[c])
    draws: dict[str, dict[str, np.ndarray]] = {}
    for name, s in scorers.items():
        block = score_period(frame, s["p"], s["thresholds"])
        block["label"] = LABELS.get(name, name)
        block["guidance"] = s.get("guidance") or {}
        block["importance"] = s.get("importance") or {}
        draws[name] = weighted_metrics(frame.y[c], np.asarray(s["p"])[c], weights)
        block["ci"] = {k: interval(draws[name][k]) for k in CI_METRICS}
        out["scorers"][name] = block
        out["comparison"][name] = dict(headline(block), ci=block["ci"])
    first = next(iter(draws), None)
    for name in list(draws)[1:]:
        # the leading scorer (the model) minus this one, per resample
        out["comparison"][name]["ci_lead"] = {k: interval(draws[first][k] - draws[name][k]) for k in CI_METRICS}
    out["period"]["few_churners"] = out["period"]["churners"] < MIN_TEST_CHURNERS
    return json_safe(out)


# ---- drawing -------------------------------------------------------------------------------------
def _figure(ncols: int = 1, width: float = 6.4, height: float = 4.6):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]
    return fig, axes


def _style(name: str) -> dict[str, Any]:
    return {"color": COLORS.get(name, "#555555"), "linestyle": STYLES.get(name, "-"), "linewidth": 2.0,
            "label": LABELS.get(name, name)}


def _fmt(value: Any, fmt: str = ".3f") -> str:
    return format(value, fmt) if isinstance(value, (int, float)) and not isinstance(value, bool) else "n/a"


def _legend(ax: Any, **kwargs: Any) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**kwargs)


def _missing(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#777777")


def _plot_roc(scorers: Mapping[str, Any], path: Path) -> None:
    fig, (ax,) = _figure()
    ax.plot([0, 1], [0, 1], color="#bbbbbb", linewidth=1, label="random")
    for name, block in scorers.items():
        roc = block["curves"].get("roc")
        if roc:
            style = _style(name)
            style["label"] += f" (AUC {_fmt(block['metrics'].get('roc_auc'))})"
            ax.plot(roc["fpr"], roc["tpr"], **style)
    ax.set(xlabel="false positive rate (stayers flagged)", ylabel="true positive rate (churners flagged)",
           title="ROC curve", xlim=(0, 1), ylim=(0, 1.01))
    _legend(ax, loc="lower right", fontsize=9)
    ax.grid(alpha=0.3)
    fig.savefig(path)


def _plot_pr(scorers: Mapping[str, Any], path: Path) -> None:
    fig, (ax,) = _figure()
    base = None
    for name, block in scorers.items():
        pr = block["curves"].get("pr")
        base = block["metrics"].get("base_rate") if base is None else base
        if pr:
            style = _style(name)
            style["label"] += f" (AP {_fmt(block['metrics'].get('pr_auc'))})"
            ax.step(pr["recall"], pr["precision"], where="post", **style)
    if isinstance(base, float):
        ax.axhline(base, color="#bbbbbb", linewidth=1, label=f"base rate {base:.3f}")
    ax.set(xlabel="recall (share of churners flagged)", ylabel="precision (share of flagged who churn)",
           title="Precision-recall curve", xlim=(0, 1), ylim=(0, 1.01))
    _legend(ax, loc="upper right", fontsize=9)
    ax.grid(alpha=0.3)
    fig.savefig(path)


def _plot_gain(scorers: Mapping[str, Any], path: Path) -> None:
    fig, (gain_ax, lift_ax) = _figure(2, width=5.6)
    gain_ax.plot([0, 1], [0, 1], color="#bbbbbb", linewidth=1, label="random")
    lift_ax.axhline(1.0, color="#bbbbbb", linewidth=1, label="random")
    for name, block in scorers.items():
        gain = block["curves"].get("gain")
        if not gain:
            continue
        share, captured = np.asarray(gain["share"]), np.asarray(gain["captured"])
        gain_ax.plot(share, captured, **_style(name))
        keep = share >= 0.01  # lift of the first few rows is noise
        with np.errstate(divide="ignore", invalid="ignore"):
            lift_ax.plot(share[keep], captured[keep] / share[keep], **_style(name))
        for pct in PCTS:
            lift = block["metrics"].get(f"lift_at_{pct}")
            if isinstance(lift, float):
                lift_ax.plot([pct / 100], [lift], "o", color=COLORS.get(name, "#555555"), markersize=4)
    for pct in PCTS:
        for ax in (gain_ax, lift_ax):
            ax.axvline(pct / 100, color="#dddddd", linewidth=0.8, zorder=0)
    gain_ax.set(xlabel="share of customers contacted (highest scores first)", ylabel="share of churners reached",
                title="Cumulative gain", xlim=(0, 1), ylim=(0, 1.01))
    lift_ax.set(xlabel="share of customers contacted", ylabel="lift (churn rate vs base rate)",
                title="Lift (dots: top 5 / 10 / 20 %)", xlim=(0, 1))
    lift_ax.set_ylim(bottom=0)
    for ax in (gain_ax, lift_ax):
        _legend(ax, loc="lower right" if ax is gain_ax else "upper right", fontsize=8)
        ax.grid(alpha=0.3)
    fig.savefig(path)


def _plot_calibration(scorers: Mapping[str, Any], path: Path) -> None:
    fig, (ax,) = _figure()
    top = 0.05
    for name, block in scorers.items():
        bins = block.get("calibration") or []
        if not bins:
            continue
        x = [b["mean_predicted"] for b in bins]
        y = [b["observed_rate"] for b in bins]
        top = max(top, *x, *y)
        style = _style(name)
        style["label"] += f" (Brier {_fmt(block['metrics'].get('brier'), '.4f')})"
        ax.plot(x, y, marker="o", markersize=4, **style)
    top = min(1.0, top * 1.08)
    ax.plot([0, top], [0, top], color="#bbbbbb", linewidth=1, label="perfectly calibrated")
    ax.set(xlabel="mean predicted churn probability (score decile)", ylabel="observed churn rate",
           title="Calibration (reliability by score decile)", xlim=(0, top), ylim=(0, top))
    _legend(ax, loc="upper left", fontsize=9)
    ax.grid(alpha=0.3)
    fig.savefig(path)


def _plot_scores(scorers: Mapping[str, Any], path: Path) -> None:
    fig, axes = _figure(len(scorers) or 1, width=4.4, height=4.0)
    for ax, (name, block) in zip(axes, scorers.items()):
        hist = block["curves"].get("scores")
        if not hist:
            _missing(ax, "no rows")
            continue
        edges = np.sqrt(np.asarray(hist["edges"]))  # drawn on a square-root axis: equal-width bars
        for key, colour in (("stayers", "#9aa5b1"), ("churners", "#c0392b")):
            counts = np.asarray(hist[key], dtype=np.float64)
            total = counts.sum()
            density = counts / total if total else counts
            ax.stairs(density, edges, fill=True, alpha=0.45, color=colour, label=f"{key} ({int(total):,})")
        for tier, thr in sorted((block.get("thresholds") or {}).items()):
            if isinstance(thr, (int, float)):
                ax.axvline(math.sqrt(max(0.0, min(1.0, thr))), color="#333333",
                           linestyle="--" if tier == "vip" else "-", linewidth=1, label=f"{tier} threshold {thr:.3f}")
        ticks = np.array([0, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0])
        ax.set_xticks(np.sqrt(ticks), [f"{t:g}" for t in ticks])
        ax.set(xlabel="score (square-root axis)", ylabel="share of the class", title=LABELS.get(name, name),
               xlim=(0, 1))
        _legend(ax, fontsize=8, loc="upper right")
    fig.suptitle("Score distribution of churners and stayers")
    fig.savefig(path)


def _plot_lead(scorers: Mapping[str, Any], path: Path, horizon_days: float | None) -> None:
    fig, (ax,) = _figure()
    horizon = float(horizon_days or 30)
    grid = np.linspace(0, horizon, 121)
    for name, block in scorers.items():
        lead = block.get("lead_time") or {}
        n = lead.get("churners") or 0
        if not n:
            continue
        days = np.asarray(lead.get("days") or [], dtype=np.float64)
        share = [(days >= g).sum() / n for g in grid]
        style = _style(name)
        style["label"] += f" (median {_fmt(lead.get('median_days'), '.1f')} d)"
        ax.plot(grid, share, **style)
    if not any((b.get("lead_time") or {}).get("churners") for b in scorers.values()):
        _missing(ax, "no churners in the period")
    ax.axvline(14, color="#dddddd", linewidth=1, zorder=0)
    ax.set(xlabel="days before churn", ylabel="share of churners already flagged",
           title="Lead time: churners flagged at least x days before churning", xlim=(0, horizon), ylim=(0, 1.01))
    _legend(ax, loc="upper right", fontsize=9)
    ax.grid(alpha=0.3)
    fig.savefig(path)


def draw(evaluation_: Mapping[str, Any], out_dir: Path, horizon_days: float | None = None) -> dict[str, Path]:
    """Write the six PNGs into ``out_dir``; returns plot name -> path."""
    scorers = evaluation_["scorers"]
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {k: out_dir / v for k, v in PLOTS.items()}
    _plot_roc(scorers, paths["roc"])
    _plot_pr(scorers, paths["pr"])
    _plot_gain(scorers, paths["gain"])
    _plot_calibration(scorers, paths["calibration"])
    _plot_scores(scorers, paths["scores"])
    _plot_lead(scorers, paths["lead_time"], horizon_days)
    return paths


# ---- the HTML page ----------------------------------------------------------------------------------
_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:1180px;margin:2em auto;padding:0 1em;
     color:#222;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em} h2{margin-top:1.8em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;margin:.8em 0;font-size:.92em} th,td{padding:.3em .7em;border-bottom:1px solid #e4e4e4}
th{text-align:left;background:#f4f6f8} td.n{text-align:right;font-variant-numeric:tabular-nums}
td.best{font-weight:700;color:#0b4f2a} .muted{color:#666;font-size:.9em}
figure{margin:1.2em 0} figure img{max-width:100%;border:1px solid #eee} figcaption{color:#444;font-size:.92em;max-width:900px}
code{background:#f4f4f4;padding:0 .25em}
"""

#: (key, label, format, higher is better?) rows of the headline table
_HEADLINE_ROWS = [
    ("roc_auc", "ROC-AUC", ".3f", True),
    ("pr_auc", "PR-AUC (average precision)", ".3f", True),
    ("brier", "Brier score", ".4f", False),
    *[(f"lift_at_{k}", f"lift, top {k} %", ".2f", True) for k in PCTS],
    *[(f"precision_at_{k}", f"precision, top {k} %", ".3f", True) for k in PCTS],
    *[(f"recall_at_{k}", f"recall, top {k} %", ".3f", True) for k in PCTS],
    ("alerts_per_week_per_1k", "new alerts / week / 1,000 customers (at its thresholds)", ".1f", None),
    ("alert_precision", "precision of those alerts", ".3f", True),
    ("flagged_share", "churners flagged within the horizon", ".3f", True),
    ("lead_median_days", "median lead time (days)", ".1f", True),
    ("flagged_early_share", "churners flagged ≥ 14 days ahead", ".3f", True),
]

#: Narrow names for terminal tables.
SHORT_LABELS = {MODEL: "model", "logreg": "logreg, same features", "counts_28d": "logreg, 28-day counts",
                "type_counts_28d": "logreg, per-type counts"}
_SHORT_ROWS = {
    "roc_auc": "ROC-AUC", "pr_auc": "PR-AUC", "brier": "Brier", "lift_at_10": "lift top 10%",
    "precision_at_10": "precision top 10%", "recall_at_10": "recall top 10%",
    "alerts_per_week_per_1k": "new alerts/wk/1k", "alert_precision": "alert precision",
    "lead_median_days": "median lead (days)", "flagged_early_share": "churners flagged ≥14 d",
}

_CAPTIONS = {
    "roc": "ROC curve: how well each scorer ranks churners above stayers, over all thresholds. "
           "The area (ROC-AUC) is the chance a random churner scores above a random stayer.",
    "pr": "Precision-recall: of the customers flagged, how many churn (precision) versus how many churners are "
          "caught (recall). With rare churn this is more telling than ROC; the grey line is a random ranking.",
    "gain": "Cumulative gain and lift: calling the top x % of scores reaches the share of churners on the left; "
            "lift is that share divided by x (how many times better than calling customers at random).",
    "calibration": "Calibration: customers grouped by score decile; a calibrated scorer's points lie on the "
                   "diagonal, so a score of 0.3 means about 30 % churn within the horizon.",
    "scores": "Score distributions of churners and stayers (each normalised to its class) with the per-tier "
              "alert thresholds; the less the two overlap, the better the separation.",
    "lead_time": "Lead time: share of all churners of the period flagged (score above their tier threshold) at "
                 "least x days before churning. Churners never flagged count as not flagged; the grey line "
                 "marks 14 days.",
}


def _e(value: Any) -> str:
    return html.escape(str(value))


def _table(head: list[str], rows: list[list[str]]) -> str:
    th = "".join(f"<th>{_e(h)}</th>" for h in head)
    return f"<table><tr>{th}</tr>{''.join('<tr>' + ''.join(r) + '</tr>' for r in rows)}</table>"


def _td(value: Any, fmt: str, best: bool = False) -> str:
    cls = "n best" if best else "n"
    return f'<td class="{cls}">{_e(_fmt(value, fmt))}</td>'


def _headline_table(comparison: Mapping[str, Mapping[str, Any]]) -> str:
    names = list(comparison)
    rows = []
    for key, label, fmt, higher in _HEADLINE_ROWS:
        values = [comparison[n].get(key) for n in names]
        numeric = [v for v in values if isinstance(v, (int, float))]
        best = None
        if higher is not None and len(numeric) > 1:
            best = max(numeric) if higher else min(numeric)
        cells = []
        for n, v in zip(names, values):
            ci = (comparison[n].get("ci") or {}).get(key)
            cls = "n best" if best is not None and v == best else "n"
            cells.append(f'<td class="{cls}">{_e(with_ci(v, ci, fmt))}</td>')
        rows.append([f"<td>{_e(label)}</td>"] + cells)
    return _table(["", *[LABELS.get(n, n) for n in names]], rows)


def guidance_rows(guidance: Mapping[str, Any], tested: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Per-tier rows of threshold guidance: threshold, expected alerts / week / 1k (of the tier and as a
    share of all customers), precision on the period it was chosen on, and, when given, what the test
    period then showed at the same thresholds."""
    expected = (guidance.get("expected") or {}).get("tiers") or {}
    tested_tiers = ((tested or {}).get("tiers") or {})
    out = []
    for tier, thr in sorted((guidance.get("thresholds") or {}).items()):
        e, t = expected.get(tier) or {}, tested_tiers.get(tier) or {}
        out.append({"tier": tier, "threshold": thr, "per_week_per_1k": e.get("per_week_per_1k"),
                    "share_per_1k_all": e.get("share_per_1k_all"), "precision": e.get("precision"),
                    "test_share_per_1k_all": t.get("share_per_1k_all") if tested else None,
                    "test_precision": t.get("precision") if tested else None})
    return out


def _guidance_html(name: str, block: Mapping[str, Any]) -> str:
    g = block.get("guidance") or {}
    if not g.get("thresholds"):
        return f"<p class='muted'>{_e(LABELS.get(name, name))}: no threshold guidance recorded.</p>"
    budget = g.get("budget_per_1k_week")
    expected = (g.get("expected") or {})
    head = ["tier", "threshold", "expected alerts / wk / 1k of tier", "share of budget (/ wk / 1k customers)",
            "expected precision", "test: alerts / wk / 1k customers", "test: precision"]
    rows = [[f"<td>{_e(r['tier'])}</td>", _td(r["threshold"], ".4f"), _td(r["per_week_per_1k"], ".1f"),
             _td(r["share_per_1k_all"], ".1f"), _td(r["precision"], ".3f"), _td(r["test_share_per_1k_all"], ".1f"),
             _td(r["test_precision"], ".3f")]
            for r in guidance_rows(g, block.get("alerts"))]
    rows.append(["<td><b>all</b></td>", "<td></td>", _td(expected.get("per_week_per_1k"), ".1f"),
                 _td(expected.get("share_per_1k_all"), ".1f"), _td(expected.get("precision"), ".3f"),
                 _td((block.get("alerts") or {}).get("share_per_1k_all"), ".1f"),
                 _td((block.get("alerts") or {}).get("precision"), ".3f")])
    if budget is None:
        how = f"top share per tier {g.get('top_pct')}"
    else:
        how = (f"budget <b>{_e(_fmt(budget, 'g'))}</b> new alerts per week per 1,000 customers, VIP threshold "
               f"{_e(_fmt(g.get('vip_ratio'), 'g'))} × standard"
               + ("" if g.get("within_budget", True) else " — <b>not reachable</b>: even the top score alone is "
                  "over budget, nobody is alerted"))
    chosen_on = _e(g.get("chosen_on", "validation"))
    return (f"<h3>{_e(LABELS.get(name, name))}</h3><p>{how}; chosen on the {chosen_on} period.</p>"
            + _table(head, rows))


def _importance_html(scorers: Mapping[str, Any]) -> str:
    parts = []
    for name, block in scorers.items():
        imp = block.get("importance") or {}
        if not imp:
            continue
        what = "share of total gain" if name == MODEL else "share of |standardised coefficient|"
        rows = [[f"<td><code>{_e(k)}</code></td>", _td(v, ".3f")] for k, v in list(imp.items())[:12]]
        parts.append(f"<div style='display:inline-block;vertical-align:top;margin-right:2em'>"
                     f"<h3>{_e(LABELS.get(name, name))}</h3>{_table(['input', what], rows)}</div>")
    return "".join(parts) or "<p class='muted'>none recorded</p>"


def cv_line(cv: Mapping[str, Any]) -> str:
    """One line on how the rounds (and settings) were chosen, for the printed summary and the report."""
    if not cv.get("folds"):
        return (f"rounds: {cv.get('rounds')} by early stopping on the validation period "
                f"(no cross-validation: {cv.get('fallback')})")
    folds = cv["folds"]
    text = (f"rounds: {cv.get('rounds')} from {len(folds)} rolling-origin folds (best iterations "
            f"{', '.join(str(f['best_iteration']) for f in folds)}; mean fold ROC-AUC {cv.get('mean_roc_auc', 0):.3f})")
    search = cv.get("search")
    if search:
        chosen = search.get("chosen") or {}
        which = ("kept the configured settings" if not search.get("changed") else
                 "chose " + ", ".join(f"{k}={v:g}" for k, v in chosen.items()))
        text += f"; search over {len(search.get('candidates') or [])} settings {which}"
        if search.get("stopped"):
            text += f" ({search['stopped']})"
    if cv.get("note"):
        text += f" [{cv['note']}]"
    return text


def render_html(metrics: Mapping[str, Any], plots: Mapping[str, str], title: str) -> str:
    ev = metrics["evaluation"]
    scorers, comparison, period = ev["scorers"], ev["comparison"], ev["period"]
    split = metrics.get("split") or {}
    facts = [
        ("evaluated on", f"{period.get('name', 'test')} period {period.get('start', '?')} … {period.get('end', '?')} "
                         f"({period.get('dates', '?')} observation dates, {period.get('rows', 0):,} snapshots of "
                         f"{period.get('customers', 0):,} customers, {period.get('positives', 0):,} churn labels, "
                         f"{period.get('churners', 0):,} churners)"),
        ("horizon", f"churn within {metrics.get('horizon_days', '?')} days of a snapshot"
                    + (f"; a churn is known {metrics['label_delay_days']} days after its date (inactivity), so a "
                       f"churn not yet known at the snapshot counts too, and the purge gap is horizon + "
                       f"{metrics['label_delay_days']} days" if metrics.get("label_delay_days") else "")),
        ("data window", " … ".join(str(v) for v in (metrics.get("data_window") or {}).values()) or "?"),
        ("time split", ", ".join(f"{k} {v.get('start')} … {v.get('end')}" for k, v in split.items()
                                 if isinstance(v, dict)) or "?"),
        *([("boosting rounds", cv_line(metrics["cv"]))] if metrics.get("cv") else []),
        *([("as of", f"{metrics['as_of'].get('as_of')} ({metrics['as_of'].get('events_after', 0):,} later events "
                     f"ignored)")] if metrics.get("as_of") else []),
        ("source", metrics.get("source") or "?"),
        ("created", metrics.get("created") or "?"),
    ]
    facts_html = _table(["", ""], [[f"<td>{_e(k)}</td>", f"<td>{_e(v)}</td>"] for k, v in facts])
    figures = "".join(
        f"<figure><img src='{_e(plots[k])}' alt='{_e(k)}'><figcaption>{_e(_CAPTIONS[k])}</figcaption></figure>"
        for k in PLOTS if k in plots)
    guidance = "".join(_guidance_html(n, b) for n, b in scorers.items())
    names = ", ".join(f"<b>{_e(LABELS.get(n, n))}</b>" for n in scorers if n != MODEL)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title><style>{_CSS}</style></head>
<body>
<h1>{_e(title)}</h1>
<p class="muted">The model beside two baselines fitted in the same run on the same time split: {names}.
Every figure is computed on the same rows, which no scorer was fitted, calibrated or given thresholds on.
Best value per row in bold.</p>
{facts_html}
<h2>Headline figures</h2>
{_headline_table(comparison)}
<h2>Threshold guidance</h2>
<p>Per-tier alert thresholds that keep the number of <i>new</i> alerts within the weekly budget, measured by replaying
the stream's alert policy (one open alert per customer, hysteresis, cool-down). The model's thresholds are stored
in its metadata (<code>thresholds</code>, <code>guidance</code>), where the worker's alert policy reads them; a
<code>[thresholds]</code> section in the policy file overrides them.</p>
{guidance}
<h2>Figures</h2>
{figures}
<h2>Feature importance</h2>
{_importance_html(scorers)}
</body></html>
"""


def render(metrics: Mapping[str, Any], out_dir: Path | str, title: str | None = None) -> Path:
    """Draw the report into ``out_dir`` (``report.html`` + PNGs) and return the HTML path.

    Written into a temporary sibling directory and swapped in, so a re-render never leaves a report
    half old, half new."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        paths = draw(metrics["evaluation"], tmp, metrics.get("horizon_days"))
        title = title or f"churnwatch model evaluation{' — ' + metrics['version'] if metrics.get('version') else ''}"
        (tmp / REPORT_HTML).write_text(render_html(metrics, {k: p.name for k, p in paths.items()}, title),
                                       encoding="utf-8")
        if out_dir.exists():
            old = out_dir.with_name(f".{out_dir.name}-old-{os.getpid()}")
            os.rename(out_dir, old)
            os.rename(tmp, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir / REPORT_HTML


# ---- the terminal ----------------------------------------------------------------------------------
def comparison_table(comparison: Mapping[str, Mapping[str, Any]], title: str = "model vs baselines"):
    """A rich Table of the headline figures (the CLI prints it after ``train`` and ``evaluate``)."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    table.add_column("")
    for name in comparison:
        table.add_column(SHORT_LABELS.get(name, name), justify="right")
    for key, label, fmt, higher in _HEADLINE_ROWS:
        if key not in _SHORT_ROWS:
            continue
        label = _SHORT_ROWS[key]
        values = [comparison[n].get(key) for n in comparison]
        numeric = [v for v in values if isinstance(v, (int, float))]
        best = (max(numeric) if higher else min(numeric)) if higher is not None and len(numeric) > 1 else None
        cells = [with_ci(v, (comparison[n].get("ci") or {}).get(key), fmt) for n, v in zip(comparison, values)]
        table.add_row(label, *[f"[bold green]{t}[/]" if best is not None and v == best else t
                               for t, v in zip(cells, values)])
    return table


def guidance_table(guidance: Mapping[str, Any], title: str | None = None):
    """A rich Table of per-tier threshold guidance."""
    from rich.table import Table

    budget = guidance.get("budget_per_1k_week")
    table = Table(title=title or f"threshold guidance for {_fmt(budget, 'g')} new alerts / week / 1,000 customers",
                  title_justify="left")
    for col in ("tier", "threshold", "alerts / wk / 1k of tier", "of budget", "precision"):
        table.add_column(col, justify="left" if col == "tier" else "right")
    for r in guidance_rows(guidance):
        table.add_row(r["tier"], _fmt(r["threshold"], ".4f"), _fmt(r["per_week_per_1k"], ".1f"),
                      _fmt(r["share_per_1k_all"], ".1f"), _fmt(r["precision"], ".3f"))
    return table
