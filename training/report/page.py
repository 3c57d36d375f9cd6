"""The evaluation report as files: ``report.html`` (from ``templates/report.html.j2``, autoescaped) and
the PNG plots beside it, drawn from the saved JSON alone."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Mapping

import jinja2

from training.report.plots import PLOTS, draw
from training.report.sections import HEADLINE_ROWS, LABELS, MODEL, cv_line, format_value, guidance_rows, with_ci

REPORT_HTML = "report.html"

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

_TEMPLATES = jinja2.Environment(loader=jinja2.PackageLoader("training.report", "templates"), autoescape=True,
                                undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


def _text(value: Any, kind: str = "") -> dict[str, Any]:
    """A table cell of the template: ``kind`` "" (plain), "code" or "bold"."""
    return {"kind": kind, "text": str(value), "best": False}


def _number(value: Any, fmt: str, best: bool = False) -> dict[str, Any]:
    """A right-aligned figure cell, in bold when it is the best of its row."""
    return {"kind": "n", "text": format_value(value, fmt), "best": best}


def _headline(comparison: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    names = list(comparison)
    rows = []
    for key, label, fmt, higher in HEADLINE_ROWS:
        values = [comparison[n].get(key) for n in names]
        numeric = [v for v in values if isinstance(v, (int, float))]
        best = None
        if higher is not None and len(numeric) > 1:
            best = max(numeric) if higher else min(numeric)
        cells = []
        for n, v in zip(names, values):
            ci = (comparison[n].get("ci") or {}).get(key)
            cells.append({"kind": "n", "text": with_ci(v, ci, fmt), "best": best is not None and v == best})
        rows.append([_text(label)] + cells)
    return {"head": ["", *[LABELS.get(n, n) for n in names]], "rows": rows}


def _guidance(name: str, block: Mapping[str, Any]) -> dict[str, Any]:
    g = block.get("guidance") or {}
    label = LABELS.get(name, name)
    if not g.get("thresholds"):
        return {"label": label, "rows": None}
    budget = g.get("budget_per_1k_week")
    expected = (g.get("expected") or {})
    alerts = block.get("alerts") or {}
    head = ["tier", "threshold", "expected alerts / wk / 1k of tier", "share of budget (/ wk / 1k customers)",
            "expected precision", "test: alerts / wk / 1k customers", "test: precision"]
    rows = [[_text(r["tier"]), _number(r["threshold"], ".4f"), _number(r["per_week_per_1k"], ".1f"),
             _number(r["share_per_1k_all"], ".1f"), _number(r["precision"], ".3f"),
             _number(r["test_share_per_1k_all"], ".1f"), _number(r["test_precision"], ".3f")]
            for r in guidance_rows(g, block.get("alerts"))]
    rows.append([_text("all", "bold"), _text(""), _number(expected.get("per_week_per_1k"), ".1f"),
                 _number(expected.get("share_per_1k_all"), ".1f"), _number(expected.get("precision"), ".3f"),
                 _number(alerts.get("share_per_1k_all"), ".1f"), _number(alerts.get("precision"), ".3f")])
    return {"label": label, "head": head, "rows": rows, "chosen_on": g.get("chosen_on", "validation"),
            "budget": None if budget is None else format_value(budget, "g"), "top_pct": g.get("top_pct"),
            "vip_ratio": format_value(g.get("vip_ratio"), "g"), "within_budget": g.get("within_budget", True)}


def _importance(scorers: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    for name, block in scorers.items():
        imp = block.get("importance") or {}
        if not imp:
            continue
        what = "share of total gain" if name == MODEL else "share of |standardised coefficient|"
        out.append({"label": LABELS.get(name, name), "what": what,
                    "rows": [[_text(k, "code"), _number(v, ".3f")] for k, v in list(imp.items())[:12]]})
    return out


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
    return _TEMPLATES.get_template("report.html.j2").render(
        title=title,
        baselines=[LABELS.get(n, n) for n in scorers if n != MODEL],
        facts=[[_text(k), _text(v)] for k, v in facts],
        headline=_headline(comparison),
        guidance=[_guidance(n, b) for n, b in scorers.items()],
        figures=[{"src": plots[k], "alt": k, "caption": _CAPTIONS[k]} for k in PLOTS if k in plots],
        importance=_importance(scorers),
    )


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
