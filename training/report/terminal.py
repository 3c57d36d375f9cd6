"""The report's figures as rich tables for the terminal (``churnwatch train`` and ``evaluate``)."""

from __future__ import annotations

from typing import Any, Mapping

from training.report.sections import HEADLINE_ROWS, MODEL, format_value, guidance_rows, with_ci

#: Narrow names for terminal tables.
SHORT_LABELS = {MODEL: "model", "logreg": "logreg, same features", "counts_28d": "logreg, 28-day counts",
                "type_counts_28d": "logreg, per-type counts"}
_SHORT_ROWS = {
    "roc_auc": "ROC-AUC", "pr_auc": "PR-AUC", "brier": "Brier", "lift_at_10": "lift top 10%",
    "precision_at_10": "precision top 10%", "recall_at_10": "recall top 10%",
    "alerts_per_week_per_1k": "new alerts/wk/1k", "alert_precision": "alert precision",
    "lead_median_days": "median lead (days)", "flagged_early_share": "churners flagged ≥14 d",
}


def comparison_table(comparison: Mapping[str, Mapping[str, Any]], title: str = "model vs baselines"):
    """A rich Table of the headline figures (the CLI prints it after ``train`` and ``evaluate``)."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    table.add_column("")
    for name in comparison:
        table.add_column(SHORT_LABELS.get(name, name), justify="right")
    for key, label, fmt, higher in HEADLINE_ROWS:
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
    table = Table(title=title or f"threshold guidance for {format_value(budget, 'g')} new alerts / week / 1,000 customers",
                  title_justify="left")
    for col in ("tier", "threshold", "alerts / wk / 1k of tier", "of budget", "precision"):
        table.add_column(col, justify="left" if col == "tier" else "right")
    for r in guidance_rows(guidance):
        table.add_row(r["tier"], format_value(r["threshold"], ".4f"), format_value(r["per_week_per_1k"], ".1f"),
                      format_value(r["share_per_1k_all"], ".1f"), format_value(r["precision"], ".3f"))
    return table
