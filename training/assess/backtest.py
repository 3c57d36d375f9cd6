"""Batch scoring of a whole event log at chosen times: the backtest, and the "book of business" list.

"What would the model have said about every customer on 1 May?" is the question a data scientist asks
before trusting a model, and the list a customer-success lead asks for on Monday. :func:`score_log`
answers it point in time: the log is replayed in event-time order through the stream's own
:func:`pipeline.core.features.apply`, and at each time T every customer seen before T and not churned by T is
scored on the model's own feature spec (:meth:`pipeline.model.scoring.Model.vector`) from exactly the events
with ``ts < T`` — what a worker that had run until T would have held.

Each row carries the score, its band against the model's threshold for the customer's tier (the same
thresholds the worker alerts with: ``critical`` half-way to certainty, ``high`` at the threshold, ``low``
below it), the top reasons in words, and — where the log already knows — when the customer churned after
T, so a backtest can be held against what happened.
"""

from __future__ import annotations

import csv
import gzip
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.core.alerting import AlertConfig
from pipeline.core.contract import DAY_MS, Event, format_ts
from pipeline.core.features import CustomerState, FeatureConfig
from pipeline.core.reasons import top_reasons
from pipeline.model.scoring import Model
from training.rows.labels import Labels, labels_from_events
from training.rows.timeline import snapshots

#: Rows scored per model call: bounds the memory of one call, whatever the population.
CHUNK = 5_000
COLUMNS = ("customer_id", "observed_at", "tier", "score", "band", "threshold", "reasons", "churned_at",
           "model_version")


@dataclass
class Scored:
    customer_ids: list[str] = field(default_factory=list)
    observed_ms: list[int] = field(default_factory=list)
    tiers: list[str] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    bands: list[str] = field(default_factory=list)
    thresholds: list[float] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    churned_ms: list[int | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.customer_ids)


def band_of(score: float, threshold: float) -> str:
    if score >= (1.0 + threshold) / 2:
        return "critical"
    return "high" if score >= threshold else "low"


def score_log(events: Iterable[Event], model: Model, at_ms: Sequence[int], *,
              feature_cfg: FeatureConfig = FeatureConfig(), policy: AlertConfig = AlertConfig(),
              reasons: int = 3, labels: Labels | None = None, label_delay_days: int | None = None) -> Scored:
    """Score every customer active at each of ``at_ms`` (sorted here) from the events before it.

    ``events`` must be time-sorted (as :func:`training.data.eventlog.read_events` returns them). A customer
    is active at T when its first event is before T and it is not known at T to have churned (and not
    come back since: :meth:`training.rows.labels.Labels.known_churned`, the rule the training rows use, so
    ``churnwatch dataset --at`` gives exactly these rows). ``label_delay_days`` defaults to the
    model's own (``label_delay_days`` in its metadata, 0 when absent): with inactivity churn a churn is
    known only that many days after its date. ``churned_at`` is the churn that the row's label would
    count: the first one not yet known at T and not ended by a comeback at or before T."""
    times = sorted(set(int(t) for t in at_ms))
    if labels is None:
        events = events if isinstance(events, Sequence) else list(events)
        labels = labels_from_events(events)
    if label_delay_days is None:
        label_delay_days = int((model.meta or {}).get("label_delay_days") or 0)
    delay_ms = int(label_delay_days) * DAY_MS
    out = Scored()
    for t, states in snapshots(events, times, feature_cfg, labels=labels, delay_ms=delay_ms):
        _snapshot(states, t, model, policy, delay_ms, reasons, out, labels)
    return out


#: No horizon: ``churned_at`` is the next churn the log knows of, however late.
_EVER = 1 << 62


def _snapshot(states: dict[str, CustomerState], t_ms: int, model: Model, policy: AlertConfig,
              delay_ms: int, k: int, out: Scored, labels: Labels) -> None:
    active = [st for st in states.values()
              if st.first_ms < t_ms and not labels.known_churned(st.customer_id, t_ms, delay_ms)]
    for start in range(0, len(active), CHUNK):
        chunk = active[start:start + CHUNK]
        rows = np.asarray([model.vector(st, t_ms) for st in chunk], dtype=np.float64)
        scores = model.predict(rows)
        thresholds = [policy.threshold(st.tier, model.thresholds) for st in chunk]
        contrib = model.contributions(rows) if k else None
        for i, st in enumerate(chunk):
            score, thr = float(scores[i]), thresholds[i]
            out.customer_ids.append(st.customer_id)
            out.observed_ms.append(t_ms)
            out.tiers.append(st.tier)
            out.scores.append(score)
            out.thresholds.append(thr)
            out.bands.append(band_of(score, thr))
            if contrib is not None:
                top = top_reasons(rows[i].tolist(), contrib[i].tolist(), k, names=model.features)
                out.reasons.append("; ".join(r.text for r in top))
            else:
                out.reasons.append("")
            out.churned_ms.append(labels.labelling_churn(st.customer_id, t_ms, _EVER, delay_ms))


def write_scores(scored: Scored, path: Path | str, version: str) -> str:
    """Write ``scored`` as Parquet (``.parquet``) or CSV (``.csv``/``.csv.gz``), atomically; returns the
    format. Times are ISO-8601 UTC like every churnwatch output."""
    path = Path(path)
    name = path.name.lower()
    if not path.parent.is_dir():
        raise ValueError(f"{path}: directory {path.parent} does not exist")
    if not name.endswith((".parquet", ".csv", ".csv.gz")):
        raise ValueError(f"{path}: scores are written as .parquet, .csv or .csv.gz")
    columns: dict[str, list[Any]] = {
        "customer_id": scored.customer_ids,
        "observed_at": [format_ts(t) for t in scored.observed_ms],
        "tier": scored.tiers,
        "score": [round(s, 6) for s in scored.scores],
        "band": scored.bands,
        "threshold": [round(t, 6) for t in scored.thresholds],
        "reasons": scored.reasons,
        "churned_at": [format_ts(t) if t is not None else None for t in scored.churned_ms],
        "model_version": [version] * len(scored),
    }
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        if name.endswith(".parquet"):
            import pyarrow as pa
            import pyarrow.parquet as pq

            pq.write_table(pa.table(columns), tmp)
            fmt = "parquet"
        else:
            opener = gzip.open if name.endswith(".gz") else open
            with opener(tmp, "wt", newline="", encoding="utf-8") as fh:  # type: ignore[operator]
                writer = csv.writer(fh)
                writer.writerow(COLUMNS)
                for i in range(len(scored)):
                    writer.writerow(["" if columns[c][i] is None else columns[c][i] for c in COLUMNS])
            fmt = "csv"
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return fmt
