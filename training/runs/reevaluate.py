"""Re-evaluating a saved model: ``churnwatch evaluate``.

A registry version's report re-drawn from its saved ``metrics.json``, its thresholds re-proposed for
another weekly budget from the saved ``scores.npz``, or the saved model and baselines scored on a new
event log and evaluated on the observations the model never saw.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import orjson

from pipeline.core.contract import DAY_MS, format_ts, parse_ts
from pipeline.core.features import FeatureConfig
from pipeline.core.spec import spec_of_meta
from pipeline.model.registry import Registry, sha256_file
from pipeline.model.scoring import load_version
from training.assess.measures import json_safe
from training.data.eventlog import read_events
from training.fit.baselines import BASELINES_FILE, LinearBaseline, count_matrix, load_baselines
from training.fit.config import TrainConfig, TrainingError
from training.fit.split import Period, period_rows, time_split
from training.fit.thresholds import budget_guidance
from training.report.page import render
from training.report.sections import MODEL, evaluation_section
from training.report.terminal import comparison_table, guidance_table
from training.rows.dataset import DatasetConfig, build_dataset
from training.rows.labels import labels_from_events
from training.runs.frames import SCORES_FILE, baseline_scores, frame_for, load_frames
from training.runs.from_log import METRICS_FILE, REPORT_DIR, REPORT_KEYS, cut_as_of, few_churners_warning


@dataclass
class ReevaluationResult:
    version: str
    out_dir: Path
    report_path: Path
    metrics: dict[str, Any]
    #: The guidance recomputed for ``--budget`` (model), else None.
    guidance: dict[str, Any] | None
    baseline_guidance: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def churners(self) -> int | None:
        value = self.metrics.get("evaluation", {}).get("period", {}).get("churners")
        return int(value) if isinstance(value, (int, float)) else None

    @property
    def few_churners(self) -> bool:
        """Fewer than MIN_TEST_CHURNERS churners in the evaluated period (``evaluate --strict`` exits 2)."""
        return few_churners_warning(self.churners, "") is not None

    def print(self, console: Any = None) -> None:
        """What ``churnwatch evaluate`` shows: the period, model vs baselines, the guidance for a
        ``--budget`` (with a policy-file snippet), and where the report is."""
        from rich.console import Console

        console = console or Console()
        ev = self.metrics["evaluation"]
        period = ev["period"]
        console.print(f"model {self.version}, {period.get('name', 'test')} period {period.get('start')} … "
                      f"{period.get('end')}: {period.get('rows', 0):,} snapshots, {period.get('positives', 0):,} "
                      f"churn labels, {period.get('churners', 0):,} churners", highlight=False)
        console.print(comparison_table(ev["comparison"]))
        if self.guidance is not None:
            console.print(guidance_table(self.guidance, title=f"model {self.version}: threshold guidance for "
                                         f"{self.guidance.get('budget_per_1k_week'):g} new alerts / week / 1,000 "
                                         f"customers (chosen on the {self.guidance.get('chosen_on')} period)"))
            thr = self.guidance.get("thresholds") or {}
            if not self.guidance.get("within_budget", True):
                console.print("[yellow]even the single highest score is over this budget: nobody would be alerted[/]")
            elif self.guidance.get("floor_binding"):
                console.print(f"[yellow]the threshold floor ({self.guidance.get('min_threshold')}) leaves part of "
                              f"the budget unspent[/]")
            console.print("to use them, put in the alert policy file (CHURNWATCH_POLICY_FILE):\n[thresholds]\n"
                          + "\n".join(f"{t} = {v}" for t, v in sorted(thr.items())), highlight=False, markup=False)
        console.print(f"report: {self.report_path}", highlight=False, soft_wrap=True)
        warning = few_churners_warning(self.churners, "evaluate on a longer log", period="evaluated")
        if warning:
            console.print(warning, style="bold yellow", highlight=False, markup=False, soft_wrap=True)


def reevaluate_version(registry: Registry, version: str | None = None, *, events: Path | str | None = None,
                       out: Path | str | None = None, budget: float | None = None, period: str = "later",
                       config: TrainConfig = TrainConfig(), train_until_ms: int | None = None,
                       test_from_ms: int | None = None, as_of_ms: int | None = None) -> ReevaluationResult:
    """``churnwatch evaluate``: the evaluation report of a registry version (default: the current one).

    - no ``events``: re-draw the report from the saved ``metrics.json`` (into the version's own
      ``report/`` unless ``out`` is given);
    - ``events``: score that log with the saved model and the saved baselines and evaluate them on
      the observations the model never saw — those from the start of its test period on
      (``period="later"``, the default; a log entirely after training is used whole), or on every
      observation (``period="all"``, for a log of other customers);
    - ``budget``: propose per-tier thresholds for that weekly budget (new alerts per week per 1,000
      customers) and evaluate every scorer at them: chosen on the saved validation period
      (``scores.npz``) without ``events``, on the evaluated log period with it;
    - with ``events`` only: ``test_from_ms`` evaluates from that observation date on instead (not
      before the model's test period with ``period="later"``: those rows fitted or calibrated it);
      ``train_until_ms`` alone evaluates the test period :func:`time_split` places after it (what
      ``train --train-until`` would have tested on); ``as_of_ms`` reads the log as exported then
      (:mod:`training.data.asof`).

    Without ``out``, anything but a plain re-draw goes to ``./churnwatch-eval-<version>/``; the saved
    version is never changed then (the worker reads its thresholds from the metadata as trained).
    """
    version = version or registry.current()
    if version is None:
        raise TrainingError(f"no current model in {registry.root}; name a VERSION (see 'churnwatch models list')")
    meta = registry.verify(version)
    vdir = registry.path(version)
    if period not in ("later", "all"):
        raise TrainingError(f"--period must be 'later' or 'all', not {period!r}")
    if budget is not None and not (budget > 0 and math.isfinite(budget)):
        raise TrainingError(f"--budget must be a positive number of alerts per week per 1,000 customers, not {budget}")
    saved = _read_json(vdir / METRICS_FILE, version) if (vdir / METRICS_FILE).is_file() else None
    cuts = {"train_until_ms": train_until_ms, "test_from_ms": test_from_ms, "as_of_ms": as_of_ms}
    if events is None and any(v is not None for v in cuts.values()):
        raise TrainingError("--train-until, --test-from and --as-of choose what of an event log is evaluated: "
                            "give --events LOG")
    if events is None:
        if saved is None or "evaluation" not in saved:
            raise TrainingError(f"model {version} has no saved evaluation (trained before reports existed); "
                                f"evaluate it on a log: churnwatch evaluate {version} --events LOG")
        metrics = dict(saved, version=version)
        guidance, baseline_guidance = None, {}
        if budget is not None:
            metrics, guidance, baseline_guidance = _rebudget_saved(vdir, version, metrics, budget, config)
        default_out = vdir / REPORT_DIR if budget is None else Path(f"churnwatch-eval-{version}")
    else:
        metrics, guidance, baseline_guidance = _reevaluate_on_log(registry, version, meta, vdir, Path(events),
                                                                  budget, period, saved, config, **cuts)
        default_out = Path(f"churnwatch-eval-{version}")
    out_dir = Path(out) if out is not None else default_out
    if out_dir.exists() and not out_dir.is_dir():
        raise TrainingError(f"--out {out_dir} exists and is not a directory")
    report_dir = out_dir if out_dir == vdir / REPORT_DIR else out_dir / REPORT_DIR
    if out_dir != vdir / REPORT_DIR:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / METRICS_FILE).write_bytes(orjson.dumps(json_safe(metrics), option=orjson.OPT_INDENT_2))
    html_path = render(metrics, report_dir, title=f"churnwatch model evaluation — {version}")
    return ReevaluationResult(version, out_dir, html_path, metrics, guidance, baseline_guidance)


def _read_json(path: Path, version: str) -> dict[str, Any]:
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise TrainingError(f"model {version}: unreadable {path.name} ({exc})") from None
    if not isinstance(data, dict):
        raise TrainingError(f"model {version}: {path.name} is not a JSON object")
    return data


def _saved_baselines(vdir: Path, version: str, features: Sequence[str]) -> dict[str, LinearBaseline]:
    path = vdir / BASELINES_FILE
    if not path.is_file():
        return {}
    try:
        return load_baselines(_read_json(path, version), features)
    except ValueError as exc:
        raise TrainingError(f"model {version}: {BASELINES_FILE}: {exc}") from None


def _rebudget_saved(vdir: Path, version: str, metrics: dict[str, Any], budget: float,
                    config: TrainConfig) -> tuple[dict[str, Any], dict[str, Any], dict[str, dict[str, Any]]]:
    path = vdir / SCORES_FILE
    if not path.is_file():
        raise TrainingError(f"model {version} has no saved {SCORES_FILE}; use --events LOG with --budget")
    try:
        frames = load_frames(path)
        (valid, v_scores), (test, t_scores) = frames["validation"], frames["test"]
    except (OSError, ValueError, KeyError) as exc:
        raise TrainingError(f"model {version}: unreadable {SCORES_FILE} ({exc})") from None
    old = metrics["evaluation"]
    scorers: dict[str, dict[str, Any]] = {}
    guidance: dict[str, dict[str, Any]] = {}
    for name in old["scorers"]:
        if name not in v_scores or name not in t_scores:
            continue
        thr, g = budget_guidance(valid.customer_ids, valid.obs_ms, valid.tiers, valid.y, v_scores[name],
                                 valid.counted, budget, config, valid.cadence_days, chosen_on="validation")
        guidance[name] = g
        scorers[name] = {"p": t_scores[name], "thresholds": thr, "guidance": g,
                         "importance": old["scorers"][name].get("importance")}
    period = {k: v for k, v in old["period"].items() if k in ("name", "start", "end", "dates")}
    new = dict(metrics, evaluation=evaluation_section(test, period, scorers), budget_per_1k_week=budget)
    model_g = guidance.pop(MODEL, None)
    return new, model_g, guidance


def _reevaluate_on_log(registry: Registry, version: str, meta: dict[str, Any], vdir: Path, path: Path,
                       budget: float | None, period: str, saved: dict[str, Any] | None, config: TrainConfig,
                       train_until_ms: int | None = None, test_from_ms: int | None = None,
                       as_of_ms: int | None = None) -> tuple[dict[str, Any], dict[str, Any] | None, dict[str, dict[str, Any]]]:
    if not path.is_file():
        raise TrainingError(f"event log {path} not found")
    model = load_version(registry, version)
    baselines = _saved_baselines(vdir, version, model.features)
    try:
        log = read_events(path)
    except (ValueError, OSError) as exc:
        detail = str(exc).splitlines()[0][:240] if str(exc) else type(exc).__name__
        raise TrainingError(detail if str(path) in detail else f"{path}: cannot read the event log ({detail})") from None
    if not log.events:
        raise TrainingError(f"{path}: no valid events ({log.stats.skipped} invalid records)")
    as_of = cut_as_of(log, as_of_ms)
    log = as_of.log
    try:
        dcfg = DatasetConfig(cadence_days=int(meta["cadence_days"]), horizon_days=int(meta["horizon_days"]),
                             min_history_days=int(meta.get("min_history_days", 28)),
                             label_delay_days=int(meta.get("label_delay_days") or 0),
                             features=FeatureConfig(**(meta.get("feature_config") or {})),
                             spec=spec_of_meta(meta), log_end_ms=as_of.end_ms)
    except (KeyError, TypeError, ValueError) as exc:
        raise TrainingError(f"model {version}: metadata lacks the dataset settings ({exc})") from None
    dataset = build_dataset(log.events, dcfg, labels=labels_from_events(log.outcomes))
    if len(dataset) == 0:
        raise TrainingError(f"{path}: no observations — the log spans too few days for {dcfg.min_history_days} "
                            f"days of history plus a {dcfg.horizon_days}-day horizon")
    dates = np.unique(dataset.obs_ms)
    chosen = _chosen_start(dates, dcfg.purge_days, config, train_until_ms, test_from_ms)
    if period == "later":
        try:
            first = parse_ts(meta["split"]["test"]["start"])
        except (KeyError, TypeError, ValueError):
            raise TrainingError(f"model {version}: metadata has no time split; use --period all") from None
        if chosen is not None and dates[dates >= chosen].size and dates[dates >= chosen][0] < first:
            raise TrainingError(f"the evaluated period would start {format_ts(int(dates[dates >= chosen][0]))[:10]}, "
                                f"before the model's test period ({meta['split']['test']['start'][:10]}): earlier "
                                f"observations fitted or calibrated it; use --period all for a log of other customers")
        dates = dates[dates >= (chosen if chosen is not None else first)]
        if dates.size == 0:
            raise TrainingError(f"{path}: no observations from {format_ts(chosen or first)[:10]} on (the model's test "
                                f"period; earlier ones were used to fit it); use --period all for another population")
    elif chosen is not None:
        dates = dates[dates >= chosen]
        if dates.size == 0:
            raise TrainingError(f"{path}: no observations from {format_ts(chosen)[:10]} on")
    evaluated = Period(int(dates[0]), int(dates[-1]), int(dates.size))
    context = dcfg.purge_days if period == "later" or chosen is not None else 0
    rows, counted = period_rows(dataset.obs_ms, evaluated, context)
    labels = labels_from_events(log.outcomes)
    frame = frame_for(dataset, rows, counted, labels)
    scores = {MODEL: model.predict(dataset.X[rows])}
    counts = count_matrix(log.events, dataset, labels=labels) if baselines else None
    for name, baseline in baselines.items():
        scores[name] = baseline_scores(dataset, counts, baseline, rows)
    old_scorers = (saved or {}).get("evaluation", {}).get("scorers", {})
    stored = {MODEL: (dict(meta.get("thresholds") or {}), meta.get("guidance") or {})}
    stored.update({n: (b.thresholds, b.guidance) for n, b in baselines.items()})
    importance = {MODEL: meta.get("feature_importance") or {}}
    importance.update({n: b.importance() for n, b in baselines.items()})
    scorers: dict[str, dict[str, Any]] = {}
    guidance: dict[str, dict[str, Any]] = {}
    for name, p in scores.items():
        thr, g = stored[name]
        if budget is not None:
            thr, g = budget_guidance(frame.customer_ids, frame.obs_ms, frame.tiers, frame.y, p, frame.counted,
                                     budget, config, frame.cadence_days, chosen_on="evaluated log")
            guidance[name] = g
        scorers[name] = {"p": p, "thresholds": thr, "guidance": g,
                         "importance": importance.get(name) or old_scorers.get(name, {}).get("importance")}
    if chosen is not None:
        name = "chosen"
    else:
        name = "log, after the model's validation" if period == "later" else "whole log"
    metrics = {k: meta[k] for k in REPORT_KEYS if k in meta and k not in ("metrics", "timings", "rows", "as_of")}
    if as_of.record is not None:
        metrics["as_of"] = as_of.record
    metrics.update({
        "version": version,
        "evaluation": evaluation_section(frame, {"name": name, **evaluated.to_json()}, scorers),
        "source": f"{path.resolve()} (sha256 {sha256_file(path)[:12]}…), {len(log.events):,} events",
        "data_window": {"start": format_ts(dataset.log_start_ms), "end": format_ts(dataset.log_end_ms)},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "budget_per_1k_week": budget,
    })
    model_g = guidance.pop(MODEL, None)
    return json_safe(metrics), model_g, guidance


def _chosen_start(dates: np.ndarray, purge_days: int, config: TrainConfig, train_until_ms: int | None,
                  test_from_ms: int | None) -> int | None:
    """Where ``evaluate --train-until/--test-from`` start the evaluated period (None: not chosen):
    ``--test-from`` itself (checked against ``--train-until`` as ``train`` checks them), or the test
    period :func:`time_split` places after ``--train-until``."""
    if test_from_ms is not None:
        if train_until_ms is not None and test_from_ms <= train_until_ms + 2 * purge_days * DAY_MS:
            raise TrainingError(f"--test-from must be more than two {purge_days}-day purge gaps after --train-until "
                                f"(validation lies between them)")
        return int(test_from_ms)
    if train_until_ms is None:
        return None
    return time_split(dates, purge_days, config.fractions, train_until_ms=train_until_ms).test.start_ms
