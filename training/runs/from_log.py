"""From an event log to the registry: ``churnwatch train``.

Read + validate the log (:mod:`training.data.eventlog`), replay it through the stream's own feature code
into point-in-time snapshots (:mod:`training.rows.dataset`), train the model and the baselines
(:mod:`training.fit.train`), evaluate them on the test period, and save model, metadata, baselines and
the evaluation report (:mod:`training.report.sections`: ``metrics.json``, ``report/report.html`` and
plots) as one new registry version, promoted when the gate (:mod:`training.fit.gate`) lets it.
"""

from __future__ import annotations

import hashlib
import platform
import sys
import tempfile
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, Callable

import lightgbm as lgb
import numpy as np
import orjson
import sklearn

from pipeline.core.contract import format_ts
from pipeline.core.spec import DEFAULT_TOP_K, FeatureSpec
from pipeline.model.registry import Registry, sha256_file
from pipeline.model.scoring import ModelError, load_version
from training.assess.measures import json_safe
from training.data.asof import AsOfError, Cut, cut
from training.data.eventlog import EventLog, read_events
from training.report.page import REPORT_HTML, render
from training.report.sections import MIN_TEST_CHURNERS, MODEL, cv_line
from training.fit.baselines import (BASELINES_FILE, COUNT_FEATURES, COUNT_WINDOW_DAYS, LinearBaseline,
                                    baselines_json, count_matrix, event_counts)
from training.fit.booster import IterationFn
from training.fit.config import TrainConfig, TrainingError
from training.fit.gate import Verdict, judge_baselines, judge_current
from training.fit.train import TrainedModel, train, train_baselines
from training.rows.dataset import Dataset, DatasetConfig, build_dataset
from training.rows.labels import labels_from_events
from training.runs.frames import SCORES_FILE, evaluation_of_run, save_frames

METRICS_FILE = "metrics.json"
REPORT_DIR = "report"


@dataclass
class TrainResult:
    version: str
    promoted: bool
    registry_root: Path
    metrics: dict[str, Any]
    thresholds: dict[str, float]
    rows: dict[str, dict[str, Any]]
    timings: dict[str, float]
    log_stats: dict[str, Any]
    #: Headline test-period figures per scorer (``model`` and the baselines), see training.report.sections.
    comparison: dict[str, dict[str, Any]] = field(default_factory=dict)
    guidance: dict[str, Any] = field(default_factory=dict)
    #: churners in the test period: below MIN_TEST_CHURNERS every figure is mostly noise
    test_churners: int | None = None
    #: why a model that was to be promoted was not (None: it was, or promotion was not asked for)
    not_promoted: str | None = None
    #: how the boosting rounds (and settings) were chosen, see :func:`training.fit.cv.choose`
    cv: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return self.registry_root / self.version

    @property
    def report_path(self) -> Path:
        return self.path / REPORT_DIR / REPORT_HTML

    def summary(self) -> str:
        test = self.metrics["test"]
        t = self.timings

        def f(key: str, fmt: str) -> str:
            value = test.get(key)
            return format(value, fmt) if isinstance(value, (int, float)) else "n/a"

        state = "promoted" if self.promoted else "saved, not promoted"
        text = (f"model {self.version} ({state}) in {self.registry_root}: test ROC-AUC {f('roc_auc', '.3f')}, "
                f"PR-AUC {f('pr_auc', '.3f')}, lift@10% {f('lift_at_10', '.2f')}, precision@10% "
                f"{f('precision_at_10', '.3f')} on {test.get('rows', 0):,} rows; "
                f"{self.log_stats.get('events', 0):,} events replayed at {t['replay_events_per_s']:,.0f}/s, "
                f"total {t['total_s']:.1f}s" + (f" (of which conversion {t['convert_s']:.1f}s)" if "convert_s" in t else ""))
        for name, c in self.comparison.items():
            if name == MODEL:
                continue
            auc, lift = c.get("roc_auc"), c.get("lift_at_10")
            text += (f"\n  baseline {name}: ROC-AUC {auc:.3f}" if isinstance(auc, float) else f"\n  baseline {name}: ROC-AUC n/a")
            text += f", lift@10% {lift:.2f}" if isinstance(lift, float) else ", lift@10% n/a"
        if self.cv:
            text += f"\n  {cv_line(self.cv)}"
        if self.comparison:
            text += f"\n  report: {self.report_path}"
        warning = few_churners_warning(self.test_churners, "use a longer log or a longer --horizon-days")
        if warning:
            text += f"\n  {warning}"
        if self.not_promoted:
            text += f"\n  {self.not_promoted}"
        return text


def few_churners_warning(churners: int | None, advice: str, period: str = "test") -> str | None:
    """The loud line ``train`` and ``evaluate`` print when a period has fewer than MIN_TEST_CHURNERS
    churners (None otherwise): with so few, every figure is mostly noise."""
    if churners is None or churners >= MIN_TEST_CHURNERS:
        return None
    return (f"WARNING: the {period} period has only {churners} churners: every figure above is mostly noise "
            f"(see the intervals); {advice}")


def progress_bars(enabled: bool):  # -> rich.progress.Progress | None
    if not enabled:
        return None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=Console(stderr=True), transient=False)


def train_from_log(path: Path | str, registry: Registry, *, horizon_days: int = 30, cadence_days: int = 7,
                   seed: int = 42, promote: bool = True, progress: bool = True,
                   dataset_config: DatasetConfig | None = None, config: TrainConfig = TrainConfig(),
                   spec: FeatureSpec | None = None, top_k: int = DEFAULT_TOP_K, strict: bool = False,
                   gate: bool = False, force_promote: bool = False, as_of_ms: int | None = None,
                   label_delay_days: int | None = None) -> TrainResult:
    """Read ``path``, build the point-in-time dataset (and the baselines' 28-day counts), train the
    model and the baselines, evaluate them on the test period, save model, metadata, baselines
    and the evaluation report to ``registry`` as one new version and (optionally) promote it.

    With ``gate`` (the CLI's default) promotion is decided by :mod:`training.fit.gate` — against the
    baselines and the current model on the same test rows — unless ``force_promote``; ``strict`` also
    holds back a model whose test period has fewer than 30 churners. ``as_of_ms`` reads the log as
    if exported then (:mod:`training.data.asof`). ``label_delay_days``, when given, overrides the dataset
    config's (:func:`training.runs.from_foreign.train_foreign` sets it to N for inactivity churn). Progress bars
    go to stderr so stdout stays clean for the summary."""
    path = Path(path)
    t0 = time.perf_counter()
    bars = progress_bars(progress)
    with bars if bars is not None else nullcontext():
        # reading and validating a large log is the first minute of a run: it gets its bar too
        log = read_events(path, progress=_read_bar(bars))
        if not log.events:
            raise TrainingError(f"{path}: no valid events ({log.stats.skipped} invalid records)")
        as_of = cut_as_of(log, as_of_ms)
        log = as_of.log
        t_read = time.perf_counter() - t0
        dcfg = dataset_config or DatasetConfig(cadence_days=cadence_days, horizon_days=horizon_days)
        if as_of.end_ms is not None:
            dcfg = replace(dcfg, log_end_ms=as_of.end_ms)
        if label_delay_days is not None:
            dcfg = replace(dcfg, label_delay_days=int(label_delay_days))
        if dcfg.spec.legacy:
            # the product's own vocabulary decides the channels, unless the caller brought a spec
            dcfg = replace(dcfg, spec=spec if spec is not None else log.learn_spec(top_k))
        t1 = time.perf_counter()
        dataset = _build(log, dcfg, bars)
        t_replay = time.perf_counter() - t1
        if len(dataset) == 0:
            raise TrainingError(f"{path}: no observations — the log spans too few days for "
                                f"{dcfg.min_history_days} days of history plus a {dcfg.horizon_days}-day horizon")
        model = train(dataset, seed, config, _iteration_bar(bars, config.max_rounds), _fold_bar(bars))
        if bars is not None:  # early stopping ends short of max_rounds: show the bar as done
            for task in bars.tasks:
                bars.update(task.id, total=task.completed)
        t2 = time.perf_counter()
        counts = _counts(log, dataset, bars)
        t_counts = time.perf_counter() - t2
        t3 = time.perf_counter()
        task = bars.add_task("baselines + evaluation report", total=3) if bars is not None else None
        baselines = train_baselines(dataset, counts, model.split, config, seed)
        if bars is not None:
            bars.update(task, completed=1)
        labels = labels_from_events(log.outcomes)
        evaluation_, frames = evaluation_of_run(dataset, counts, model, baselines, labels)
        if bars is not None:
            bars.update(task, completed=2)
        t_eval = time.perf_counter() - t3
        timings = {
            "read_s": round(t_read, 3),
            "replay_s": round(t_replay, 3),
            "replay_events_per_s": round(len(log.events) / t_replay, 1) if t_replay > 0 else float("inf"),
            "train_s": round(model.train_seconds, 3),
            "counts_s": round(t_counts, 3),
            "baselines_eval_s": round(t_eval, 3),
        }
        meta = model_meta(model, dataset, log, timings)
        meta["guidance"] = model.guidance
        meta["comparison"] = evaluation_["comparison"]
        if as_of.record is not None:
            meta["as_of"] = as_of.record
        verdict = _gate(registry, log, dataset, model) if gate and promote else None
        if verdict is not None:
            judge_baselines(evaluation_["comparison"], verdict)
            meta["gate"] = json_safe(verdict.to_json())
        version = _save(registry, model, meta, baselines, evaluation_, frames)
        if bars is not None:
            bars.update(task, completed=3)
    churners = int(evaluation_["period"]["churners"])
    held = None
    if strict and churners < MIN_TEST_CHURNERS:
        held = f"the test period has {churners} churners (fewer than {MIN_TEST_CHURNERS}): not promoted (--strict)"
    elif verdict is not None and not verdict.passed:
        if force_promote:
            log_note = "; ".join(verdict.reasons)
            print(f"promotion gate failed ({log_note}); promoted anyway (--force-promote)", file=sys.stderr)
        else:
            held = "not promoted: " + "; ".join(verdict.reasons) + " (--force-promote to promote anyway)"
    if promote and held is None:
        registry.promote(version, validate=lambda _p: load_version(registry, version))
    timings["total_s"] = round(time.perf_counter() - t0, 3)
    return TrainResult(version, promote and held is None, registry.root, model.metrics, model.thresholds, model.rows,
                       timings, log.stats.to_json(), evaluation_["comparison"], model.guidance, churners, held,
                       model.cv)


def _gate(registry: Registry, log: EventLog, dataset: Dataset, model: TrainedModel) -> Verdict:
    """The gate's comparison with the current model: re-scored on the new model's test rows, from
    the same log, through the current model's own feature spec (the rows are the same: which
    customers are observed when does not depend on the spec)."""
    verdict = Verdict()
    current = registry.current()
    if current is None:
        return verdict
    try:
        running = load_version(registry, current)
    except ModelError as exc:  # a broken current model must not keep a good new one out
        verdict.current = {"version": current, "error": str(exc)}
        return verdict
    test = model.split.test.mask(dataset.obs_ms)
    if not test.any():
        return verdict
    cur = build_dataset(log.events, replace(dataset.config, spec=running.compiled.spec),
                        labels=labels_from_events(log.outcomes))
    if not (np.array_equal(cur.customer_ids, dataset.customer_ids) and np.array_equal(cur.obs_ms, dataset.obs_ms)):
        verdict.current = {"version": current, "error": "its rows differ from the new model's"}
        return verdict
    judge_current(current, dataset.y[test], model.predict(dataset.X[test]), running.predict(cur.X[test]),
                  dataset.customer_ids[test], verdict)
    return verdict


def _counts(log: EventLog, dataset: Dataset, bars: Any) -> np.ndarray:
    if dataset.extra is not None:  # taken in the same replay as the rows (see _build)
        return dataset.extra
    if bars is None:
        return count_matrix(log.events, dataset, labels=labels_from_events(log.outcomes))
    task = bars.add_task("28-day counts (baseline)", total=1)
    out = count_matrix(log.events, dataset, labels=labels_from_events(log.outcomes))
    bars.update(task, completed=1)
    return out


def _build(log: EventLog, cfg: DatasetConfig, bars: Any) -> Dataset:
    """The rows, with the baselines' 28-day counts of the same states at the same instants: one replay
    of the log for both (:func:`training.fit.baselines.count_matrix` would be a second)."""
    counts = dict(extra=lambda state, t: event_counts(state, t, COUNT_WINDOW_DAYS), extra_width=len(COUNT_FEATURES))
    labels = labels_from_events(log.outcomes)
    if bars is None:
        return build_dataset(log.events, cfg, labels=labels, **counts)
    task = bars.add_task("replaying events", total=len(log.events))
    dataset = build_dataset(log.events, cfg, labels=labels, on_progress=lambda n: bars.advance(task, n), **counts)
    bars.update(task, completed=len(log.events))
    return dataset


def _read_bar(bars: Any) -> Callable[[str, int, int | None], None] | None:
    """The reading of the log (:func:`training.data.eventlog.read_events`' progress) as bars: one per label
    (the file read, then the sort when the log is out of time order)."""
    if bars is None:
        return None
    tasks: dict[str, Any] = {}

    def update(label: str, done: int, total: int | None) -> None:
        if label not in tasks:
            tasks[label] = bars.add_task(label, total=total)
        bars.update(tasks[label], completed=done, total=total)

    return update


def _iteration_bar(bars: Any, max_rounds: int) -> IterationFn | None:
    if bars is None:
        return None
    task = bars.add_task("boosting", total=max_rounds)
    return lambda i, end: bars.update(task, completed=i, total=end)


def _fold_bar(bars: Any) -> IterationFn | None:
    if bars is None:
        return None
    task: list[Any] = []

    def update(done: int, total: int) -> None:
        if not task:
            task.append(bars.add_task("cross-validation folds", total=total))
        bars.update(task[0], completed=done, total=total)

    return update


def cut_as_of(log: EventLog, as_of_ms: int | None) -> Cut:
    """The log as exported at ``as_of_ms`` (:mod:`training.data.asof`), or a one-line TrainingError."""
    try:
        return cut(log, as_of_ms)
    except AsOfError as exc:
        raise TrainingError(f"{log.path}: {exc}") from None


def package_versions() -> dict[str, str]:
    try:
        churnwatch = importlib_metadata.version("churnwatch")
    except importlib_metadata.PackageNotFoundError:
        churnwatch = "unknown"
    return {"churnwatch": churnwatch, "lightgbm": lgb.__version__, "sklearn": sklearn.__version__,
            "numpy": np.__version__, "python": platform.python_version()}


def model_meta(model: TrainedModel, dataset: Dataset, log: EventLog, timings: dict[str, float]) -> dict[str, Any]:
    """The registry metadata: enough to load the model safely and to reproduce or audit the run."""
    cfg = dataset.config
    return json_safe({
        "features": list(dataset.features),
        "feature_spec": cfg.spec.to_json(),
        "calibration": model.calibration,
        "thresholds": model.thresholds,
        "horizon_days": cfg.horizon_days,
        "label_delay_days": cfg.label_delay_days,
        "cadence_days": cfg.cadence_days,
        "min_history_days": cfg.min_history_days,
        "feature_config": asdict(cfg.features),
        "data_window": {"start": format_ts(dataset.log_start_ms), "end": format_ts(dataset.log_end_ms)},
        "split": model.split.to_json(),
        "metrics": model.metrics,
        "rows": model.rows,
        "best_iteration": model.best_iteration,
        "params": model.params,
        "seed": model.seed,
        "feature_importance": model.feature_importance,
        "package_versions": package_versions(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "source_log": {"path": str(log.path.resolve()), "sha256": sha256_file(log.path)},
        "eventlog": log.stats.to_json(),
        "timings": timings,
        "cv": model.cv,
    })


#: Keys of the metadata repeated in ``metrics.json`` (the report's context).
REPORT_KEYS = ("metrics", "thresholds", "guidance", "rows", "split", "data_window", "horizon_days",
                "label_delay_days", "cadence_days",
                "best_iteration", "feature_importance", "timings", "created", "cv", "as_of")


def _save(registry: Registry, model: TrainedModel, meta: dict[str, Any], baselines: dict[str, LinearBaseline],
          evaluation_: dict[str, Any], frames: dict[str, Any]) -> str:
    """One atomic registry version: model, metadata, ``metrics.json``, ``baselines.json``,
    ``scores.npz`` and ``report/`` (HTML + PNGs), all written before the version directory appears."""
    text = model.booster.model_to_string(num_iteration=model.best_iteration)
    report = {k: meta[k] for k in REPORT_KEYS if k in meta}
    report["evaluation"] = evaluation_
    report["source"] = f"{meta['source_log']['path']} (sha256 {meta['source_log']['sha256'][:12]}…)"
    report["model_sha256"] = hashlib.sha256(text.encode()).hexdigest()
    report = json_safe(report)
    with tempfile.TemporaryDirectory(prefix="churnwatch-train-") as tmp:
        metrics_path = Path(tmp) / METRICS_FILE
        metrics_path.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
        baselines_path = Path(tmp) / BASELINES_FILE
        baselines_path.write_bytes(orjson.dumps(json_safe(baselines_json(baselines)), option=orjson.OPT_INDENT_2))
        scores_path = Path(tmp) / SCORES_FILE
        save_frames(scores_path, frames)
        report_dir = Path(tmp) / REPORT_DIR
        render(report, report_dir, title="churnwatch model evaluation")
        return registry.save(text, meta, files={METRICS_FILE: metrics_path, BASELINES_FILE: baselines_path,
                                                SCORES_FILE: scores_path, REPORT_DIR: report_dir})
