"""The report's six PNG plots, drawn from the ``evaluation`` section of ``metrics.json`` alone.

Plots use matplotlib's object API on the Agg canvas (no pyplot, no display, no global state).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from pipeline.core.contract import VIP_TIER
from training.report.sections import LABELS, MODEL, PCTS, format_value

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



def _legend(ax: Any, **kwargs: Any) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**kwargs)


def _finish(fig: Any, ax: Any, path: Path, legend_loc: str, **settings: Any) -> None:
    """Axis settings, the legend, the grid, and the PNG: how every one-panel plot ends."""
    ax.set(**settings)
    _legend(ax, loc=legend_loc, fontsize=9)
    ax.grid(alpha=0.3)
    fig.savefig(path)


def _missing(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#777777")


def _plot_roc(scorers: Mapping[str, Any], path: Path) -> None:
    fig, (ax,) = _figure()
    ax.plot([0, 1], [0, 1], color="#bbbbbb", linewidth=1, label="random")
    for name, block in scorers.items():
        roc = block["curves"].get("roc")
        if roc:
            style = _style(name)
            style["label"] += f" (AUC {format_value(block['metrics'].get('roc_auc'))})"
            ax.plot(roc["fpr"], roc["tpr"], **style)
    _finish(fig, ax, path, "lower right", xlabel="false positive rate (stayers flagged)",
            ylabel="true positive rate (churners flagged)", title="ROC curve", xlim=(0, 1), ylim=(0, 1.01))


def _plot_pr(scorers: Mapping[str, Any], path: Path) -> None:
    fig, (ax,) = _figure()
    base = None
    for name, block in scorers.items():
        pr = block["curves"].get("pr")
        base = block["metrics"].get("base_rate") if base is None else base
        if pr:
            style = _style(name)
            style["label"] += f" (AP {format_value(block['metrics'].get('pr_auc'))})"
            ax.step(pr["recall"], pr["precision"], where="post", **style)
    if isinstance(base, float):
        ax.axhline(base, color="#bbbbbb", linewidth=1, label=f"base rate {base:.3f}")
    _finish(fig, ax, path, "upper right", xlabel="recall (share of churners flagged)",
            ylabel="precision (share of flagged who churn)", title="Precision-recall curve", xlim=(0, 1),
            ylim=(0, 1.01))


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
        style["label"] += f" (Brier {format_value(block['metrics'].get('brier'), '.4f')})"
        ax.plot(x, y, marker="o", markersize=4, **style)
    top = min(1.0, top * 1.08)
    ax.plot([0, top], [0, top], color="#bbbbbb", linewidth=1, label="perfectly calibrated")
    _finish(fig, ax, path, "upper left", xlabel="mean predicted churn probability (score decile)",
            ylabel="observed churn rate", title="Calibration (reliability by score decile)", xlim=(0, top),
            ylim=(0, top))


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
                           linestyle="--" if tier == VIP_TIER else "-", linewidth=1, label=f"{tier} threshold {thr:.3f}")
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
        style["label"] += f" (median {format_value(lead.get('median_days'), '.1f')} d)"
        ax.plot(grid, share, **style)
    if not any((b.get("lead_time") or {}).get("churners") for b in scorers.values()):
        _missing(ax, "no churners in the period")
    ax.axvline(14, color="#dddddd", linewidth=1, zorder=0)
    _finish(fig, ax, path, "upper right", xlabel="days before churn", ylabel="share of churners already flagged",
            title="Lead time: churners flagged at least x days before churning", xlim=(0, horizon),
            ylim=(0, 1.01))


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

