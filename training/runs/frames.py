"""Score frames: the validation and test rows of a run with every scorer's scores, as the evaluation
report measures them (:class:`training.report.sections.Frame`), and saved as ``scores.npz`` so a saved
model can be re-evaluated for another budget without the event log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipeline.core.contract import DAY_MS
from training.fit.baselines import LinearBaseline, baseline_inputs
from training.fit.split import period_rows
from training.fit.train import TrainedModel
from training.report.sections import MODEL, Frame, evaluation_section
from training.rows.dataset import Dataset
from training.rows.labels import Labels

SCORES_FILE = "scores.npz"


def churners_in(customer_ids: np.ndarray, obs_ms: np.ndarray, y: np.ndarray, counted: np.ndarray,
                labels: Labels, horizon_days: int | None = None, delay_days: int = 0) -> dict[str, int]:
    """The churners of a period — customers with a positive row in it — and the churn instant that made
    their first positive row positive (:meth:`Labels.labelling_churn`; without ``horizon_days``, the
    first churn after that row)."""
    out: dict[str, int] = {}
    pos = np.flatnonzero(np.asarray(counted, dtype=bool) & (np.asarray(y) == 1))
    for i in pos[np.argsort(obs_ms[pos], kind="stable")]:
        cid = str(customer_ids[i])
        if cid in out:
            continue
        if horizon_days is not None:
            churn = labels.labelling_churn(cid, int(obs_ms[i]), horizon_days * DAY_MS, delay_days * DAY_MS)
            if churn is not None:
                out[cid] = churn
            continue
        times = labels.churns.get(cid) or []
        after = [t for t in times if t > int(obs_ms[i])]
        if after:
            out[cid] = after[0]
    return out


def frame_for(dataset: Dataset, rows: np.ndarray, counted: np.ndarray, labels: Labels) -> Frame:
    """A :class:`training.report.sections.Frame` over ``dataset[rows]``, ``counted`` (a subset of ``rows``) being
    the period measured and the rest its warm-up context."""
    ids, obs, y = dataset.customer_ids[rows], dataset.obs_ms[rows], dataset.y[rows]
    c = counted[rows]
    cfg = dataset.config
    return Frame(ids, obs, dataset.tiers[rows], y, c,
                 churners_in(ids, obs, y, c, labels, cfg.horizon_days, cfg.label_delay_days),
                 cfg.cadence_days, cfg.horizon_days)


def baseline_scores(dataset: Dataset, counts: np.ndarray, baseline: LinearBaseline,
                     rows: np.ndarray | None = None) -> np.ndarray:
    X, _ = baseline_inputs(baseline.name, dataset.X, counts, dataset.features)
    return baseline.predict(X if rows is None else X[rows])


def evaluation_of_run(dataset: Dataset, counts: np.ndarray, model: TrainedModel,
                      baselines: dict[str, LinearBaseline], labels: Labels) -> tuple[dict[str, Any], dict[str, Any]]:
    """The test-period evaluation of a training run (model and baselines), and the arrays behind it
    (validation and test frames with every scorer's scores) for ``scores.npz``."""
    split = model.split
    frames: dict[str, tuple[Frame, dict[str, np.ndarray]]] = {}
    for name in ("validation", "test"):
        rows, counted = period_rows(dataset.obs_ms, getattr(split, name), dataset.config.purge_days)
        frame = frame_for(dataset, rows, counted, labels)
        scores = {MODEL: model.scores[rows] if model.scores is not None else model.predict(dataset.X[rows])}
        for bname, baseline in baselines.items():
            scores[bname] = baseline_scores(dataset, counts, baseline, rows)
        frames[name] = (frame, scores)
    test_frame, test_scores = frames["test"]
    scorers = {MODEL: {"p": test_scores[MODEL], "thresholds": model.thresholds, "guidance": model.guidance,
                       "importance": model.feature_importance}}
    for bname, baseline in baselines.items():
        scorers[bname] = {"p": test_scores[bname], "thresholds": baseline.thresholds, "guidance": baseline.guidance,
                          "importance": baseline.importance()}
    period = {"name": "test", **split.test.to_json()}
    return evaluation_section(test_frame, period, scorers), frames


def save_frames(path: Path, frames: dict[str, tuple[Frame, dict[str, np.ndarray]]]) -> None:
    """Validation and test rows with every scorer's scores, as plain arrays (no pickle): enough to
    re-propose thresholds for another budget and re-evaluate them without the event log."""
    arrays: dict[str, np.ndarray] = {}
    for name, (frame, scores) in frames.items():
        arrays[f"{name}.customer_ids"] = frame.customer_ids.astype(str)
        arrays[f"{name}.obs_ms"] = frame.obs_ms.astype(np.int64)
        arrays[f"{name}.tiers"] = frame.tiers.astype(str)
        arrays[f"{name}.y"] = frame.y.astype(np.int8)
        arrays[f"{name}.counted"] = frame.counted.astype(bool)
        arrays[f"{name}.churn_ids"] = np.asarray(list(frame.churn_ms), dtype=str)
        arrays[f"{name}.churn_ms"] = np.asarray(list(frame.churn_ms.values()), dtype=np.int64)
        arrays[f"{name}.cadence_horizon"] = np.asarray([frame.cadence_days, frame.horizon_days], dtype=np.int64)
        for scorer, p in scores.items():
            arrays[f"{name}.score.{scorer}"] = np.asarray(p, dtype=np.float64)
    with open(path, "wb") as fh:
        np.savez_compressed(fh, **arrays)


def load_frames(path: Path) -> dict[str, tuple[Frame, dict[str, np.ndarray]]]:
    out: dict[str, tuple[Frame, dict[str, np.ndarray]]] = {}
    with np.load(path, allow_pickle=False) as z:
        names = sorted({k.split(".", 1)[0] for k in z.files})
        for name in names:
            cadence, horizon = (int(v) for v in z[f"{name}.cadence_horizon"])
            frame = Frame(z[f"{name}.customer_ids"].astype(object), z[f"{name}.obs_ms"], z[f"{name}.tiers"].astype(object),
                          z[f"{name}.y"].astype(np.int64), z[f"{name}.counted"],
                          dict(zip(z[f"{name}.churn_ids"].tolist(), (int(t) for t in z[f"{name}.churn_ms"]))),
                          cadence, horizon)
            prefix = f"{name}.score."
            scores = {k[len(prefix):]: z[k] for k in z.files if k.startswith(prefix)}
            out[name] = (frame, scores)
    return out

