"""Point-in-time training data: what the stream *would have known* at each observation time.

Events are replayed in time order through :func:`pipeline.core.features.apply` — the same code the worker
runs — and at each observation time T every eligible customer's state is snapshotted with
:meth:`pipeline.core.spec.CompiledSpec.vector` after applying exactly the events with ``ts < T``. Because the
snapshot is taken before any later event touches the state, a row can never contain information from
after T; the leakage test rebuilds the data from a log cut at T and checks the rows are identical.

Labels look forward: 1 when the customer churns in (T, T + horizon]. Observations whose label window
runs past the end of the log are dropped (censored), since "no churn seen yet" is not "no churn".

A churn that is only known some days after its date (inactivity churn: ``label_delay_days`` = N) is
handled by the rules of :mod:`training.rows.labels`: a customer is left out at T only when a churn known at T
(dated at least the delay before T) has not been followed by a comeback, and the label is 1 for a churn
dated in (T - delay, T + horizon] that no comeback at or before T has ended — a customer already silent
at T who never returns is positive, not left out. With no delay (the default) this is the rule above.
"""

from __future__ import annotations

import csv
import gzip
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from pipeline.core.contract import DAY_MS, Event, format_ts
from pipeline.core.features import FEATURES, CustomerState, FeatureConfig
from pipeline.core.spec import CompiledSpec, FeatureSpec, compile_spec
from training.rows.labels import Labels, labels_from_events
from training.rows.timeline import ProgressFn, snapshots

#: A per-row function of the state at the row's instant (``build_dataset(extra=…)``).
RowFn = Callable[[CustomerState, int], Sequence[float]]



@dataclass(frozen=True)
class DatasetConfig:
    """How observations are taken.

    ``min_history_days`` is per customer: how long before T a customer must have been seen to get a
    row. It is 0 because new accounts churn most and the model should learn what their first weeks
    look like; their youth is in the row itself (``tenure_days``, and the windows and own-baseline
    ratios that cover only the days seen). Whether a young customer's score may raise an alert is
    the alert policy's ``min_history_days``, not a property of the training data.

    ``warmup_days`` is per log: how far after the log's first event the first observation time
    lies. A log has a beginning, the customers do not: at the log's start every established customer
    looks brand new (a few hours seen, empty windows, long tenure), a row no live customer resembles
    once the stream has run a while. After 28 days an established customer's 7-day windows and
    week-over-week trends are whole and its 30-day windows nearly so (the 90-day ones, like the
    stream's, count only the days seen), and a customer seen for less than 28 days at T was first
    seen after the log began: genuinely new, or back after a long silence. The warm-up is a
    separate setting so that dropping the per-customer minimum does not move the grid to the
    log's first day, where every row would be one of those look-alike newcomers.
    """

    cadence_days: int = 7
    horizon_days: int = 30
    min_history_days: int = 0
    warmup_days: int = 28
    features: FeatureConfig = field(default_factory=FeatureConfig)
    #: What the rows' features are (``train`` learns one from the log); the worker computes the same
    #: through the model's metadata. The default is the built-in features only.
    spec: FeatureSpec = field(default_factory=FeatureSpec.legacy_spec)
    #: Treat the log as ending here for censoring (default: its newest event). Lets a log cut short
    #: for a test keep the same observation grid as the full log.
    log_end_ms: int | None = None
    #: Observe at exactly these instants instead of the cadence grid (``dataset --at``: the rows a
    #: ``churnwatch score`` backtest scores). A label whose horizon runs past the log's end is 0 unless
    #: the log already shows the churn: such rows are for scoring, not for judging.
    at_ms: tuple[int, ...] = ()
    #: How many days after its date a churn becomes known: N for churn defined as N days without
    #: usage (``--inactive-days N``), 0 for recorded churn dates. Decides who is a row at T and their
    #: label (see :mod:`training.rows.labels`) and widens the time split's purge gap to horizon + delay.
    label_delay_days: int = 0

    def __post_init__(self) -> None:
        if self.cadence_days < 1 or self.horizon_days < 1 or self.min_history_days < 0 or self.warmup_days < 0:
            raise ValueError("cadence_days and horizon_days must be >= 1, min_history_days and warmup_days >= 0")
        if not isinstance(self.label_delay_days, int) or self.label_delay_days < 0:
            raise ValueError(f"label_delay_days must be a whole number of days >= 0, not {self.label_delay_days!r}")

    @property
    def delay_ms(self) -> int:
        return self.label_delay_days * DAY_MS

    @property
    def purge_days(self) -> int:
        """Days between a row's time and the end of the data that settles its label: the horizon plus
        the label delay. The time split's purge gap and every period's warm-up context."""
        return self.horizon_days + self.label_delay_days


def row_selector(mask: np.ndarray) -> Any:
    """``mask`` as a slice when its rows are one run (indexing with it is then a view, not a copy)."""
    idx = np.flatnonzero(mask)
    if idx.size and int(idx[-1]) - int(idx[0]) + 1 == idx.size:
        return slice(int(idx[0]), int(idx[-1]) + 1)
    return mask


@dataclass
class Dataset:
    """One row per (customer, observation time). ``X`` columns are in ``features`` order (the spec's)."""

    X: np.ndarray
    y: np.ndarray
    customer_ids: np.ndarray
    obs_ms: np.ndarray
    tiers: np.ndarray
    log_start_ms: int
    log_end_ms: int
    config: DatasetConfig
    features: tuple[str, ...] = FEATURES
    #: Other per-row values taken from the same states at the same instants (``build_dataset(extra=…)``):
    #: the baselines' 28-day counts, without a second replay of the log.
    extra: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.y.shape[0])

    @property
    def observation_times(self) -> np.ndarray:
        return np.unique(self.obs_ms)

    @property
    def positive_rate(self) -> float:
        return float(self.y.mean()) if len(self) else float("nan")

    def subset(self, mask: np.ndarray) -> "Dataset":
        """The rows where ``mask`` holds. Rows are in observation-time order, so a period is one run of
        rows, and its subset is a view (no copy) of the arrays: on a large log the train, validation,
        test and cross-validation parts would otherwise each copy the matrix."""
        sel = row_selector(mask)
        return Dataset(self.X[sel], self.y[sel], self.customer_ids[sel], self.obs_ms[sel],
                       self.tiers[sel], self.log_start_ms, self.log_end_ms, self.config, self.features,
                       None if self.extra is None else self.extra[sel])

    def rows_at(self, t_ms: int) -> "Dataset":
        return self.subset(self.obs_ms == t_ms)

    def summary(self) -> dict[str, object]:
        times = self.observation_times
        return {
            "rows": len(self),
            "positives": int(self.y.sum()),
            "positive_rate": round(self.positive_rate, 5) if len(self) else None,
            "customers": int(np.unique(self.customer_ids).size),
            "observation_times": int(times.size),
            "first_observation": format_ts(int(times[0])) if times.size else None,
            "last_observation": format_ts(int(times[-1])) if times.size else None,
        }


# ---- observation grid ---------------------------------------------------------------------------
def next_midnight(ts_ms: int) -> int:
    """The first UTC midnight at or after ``ts_ms`` (day buckets are UTC, so snapshots are too)."""
    return -(-ts_ms // DAY_MS) * DAY_MS


def observation_times(log_start_ms: int, log_end_ms: int, cfg: DatasetConfig) -> list[int]:
    """UTC midnights every ``cadence_days``, from the first one after the log's warm-up (and at which
    anybody can have ``min_history_days`` of history: earlier times would have no rows), to the last
    one whose label window fits inside the log; or exactly ``cfg.at_ms``."""
    if cfg.at_ms:
        return sorted(set(int(t) for t in cfg.at_ms))
    first = next_midnight(log_start_ms + max(cfg.warmup_days, cfg.min_history_days) * DAY_MS)
    last = log_end_ms - cfg.horizon_days * DAY_MS
    step = cfg.cadence_days * DAY_MS
    return list(range(first, last + 1, step)) if first <= last else []


# ---- replay -------------------------------------------------------------------------------------
class _Matrix:
    """Rows as they are taken: each snapshot's vectors become one float64 block at once, so a large
    dataset costs 8 bytes a value, not the ~32 of a Python float in a list."""

    def __init__(self, n_features: int) -> None:
        self.n_features = n_features
        self.blocks: list[np.ndarray] = []
        self.pending: list[Sequence[float]] = []

    def add(self, vector: Sequence[float]) -> None:
        self.pending.append(vector)

    def seal(self) -> None:
        if self.pending:
            self.blocks.append(np.asarray(self.pending, dtype=np.float64).reshape(len(self.pending), self.n_features))
            self.pending = []

    def matrix(self) -> np.ndarray:
        """All rows as one array. Blocks are copied in and released one by one, so the peak is the
        matrix plus one block, not twice the matrix as with ``np.concatenate``."""
        self.seal()
        if len(self.blocks) == 1:
            return self.blocks.pop()
        X = np.empty((sum(b.shape[0] for b in self.blocks), self.n_features), dtype=np.float64)
        at = 0
        self.blocks.reverse()
        while self.blocks:
            block = self.blocks.pop()
            X[at:at + block.shape[0]] = block
            at += block.shape[0]
            del block
        return X


class _Texts:
    """A text per row (customer id, tier), kept off Python's small-object heap while the replay runs.

    A row's customer id is the string the replay's state dict is keyed by, born in the middle of
    millions of short-lived event and state objects. Held until the end, each such survivor keeps
    its whole 1 MiB pymalloc arena resident after the states are freed: at 10M events that was
    ~500 MB of arenas holding 14k strings. So each snapshot's texts become one Arrow array (Arrow's
    own allocator), and the Python strings of the final array are made once, after the replay, one
    per distinct value.
    """

    def __init__(self) -> None:
        self.blocks: list[Any] = []  # pyarrow.Array
        self.pending: list[str] = []

    def add(self, text: str) -> None:
        self.pending.append(text)

    def seal(self) -> None:
        if self.pending:
            import pyarrow as pa

            self.blocks.append(pa.array(self.pending, pa.string()))
            self.pending = []

    def array(self) -> np.ndarray:
        """An object array of str, one shared string per distinct value."""
        self.seal()
        if not self.blocks:
            return np.asarray([], dtype=object)
        import pyarrow as pa

        encoded = pa.chunked_array(self.blocks).combine_chunks().dictionary_encode()
        self.blocks = []
        distinct = encoded.dictionary.to_pylist()
        values = np.empty(len(distinct) + 1, dtype=object)  # the last one stands for a missing text
        values[:-1] = distinct
        return values[encoded.indices.fill_null(len(distinct)).to_numpy()]


class _Rows:
    def __init__(self, n_features: int, n_extra: int | None = None) -> None:
        self.X = _Matrix(n_features)
        self.extra = _Matrix(n_extra) if n_extra is not None else None
        self.y: list[int] = []
        self.ids = _Texts()
        self.obs: list[int] = []
        self.tiers = _Texts()

    def add(self, vector: list[float], label: int, cid: str, t_ms: int, tier: str,
            extra: Sequence[float] | None = None) -> None:
        self.X.add(vector)
        if self.extra is not None:
            self.extra.add(extra)  # type: ignore[arg-type]
        self.y.append(label)
        self.ids.add(cid)
        self.obs.append(t_ms)
        self.tiers.add(tier)

    def seal(self) -> None:
        self.X.seal()
        self.ids.seal()
        self.tiers.seal()
        if self.extra is not None:
            self.extra.seal()


def _snapshot(states: dict[str, CustomerState], t_ms: int, labels: Labels, cfg: DatasetConfig, out: _Rows,
              compiled: CompiledSpec, extra: RowFn | None = None) -> None:
    """Rows for every customer eligible at ``t_ms``. Only the state (events before T) decides who has
    enough history; the labels decide who is known at T to have left (:meth:`Labels.known_churned`:
    with a label delay, a churn counts only from its date + delay on) and the label
    (:meth:`Labels.label`: a churn not yet known at T and dated by T + horizon)."""
    history_cut = t_ms - cfg.min_history_days * DAY_MS
    horizon_ms, delay_ms = cfg.horizon_days * DAY_MS, cfg.delay_ms
    for cid, state in states.items():
        if state.first_ms > history_cut or labels.known_churned(cid, t_ms, delay_ms):
            continue
        out.add(compiled.vector(state, t_ms), labels.label(cid, t_ms, horizon_ms, delay_ms), cid, t_ms, state.tier,
                extra(state, t_ms) if extra is not None else None)
    out.seal()


def log_bounds(events: Iterable[Event]) -> tuple[Iterable[Event], int, int]:
    """``events`` with its first and last event time: known without a pass for a log read by
    :func:`training.data.eventlog.read_events` (an :class:`~training.data.eventlog.EventStream`), taken from a
    list otherwise."""
    first, last = getattr(events, "first_ms", None), getattr(events, "last_ms", None)
    if first is None or last is None:
        events = events if isinstance(events, Sequence) else list(events)
        if not events:
            raise ValueError("the event log has no valid events")
        first, last = events[0].ts_ms, max(ev.ts_ms for ev in events)
    return events, int(first), int(last)


def build_dataset(events: Iterable[Event], cfg: DatasetConfig = DatasetConfig(), *,
                  labels: Labels | None = None, on_progress: ProgressFn | None = None,
                  extra: RowFn | None = None, extra_width: int = 0) -> Dataset:
    """Replay time-sorted ``events`` and snapshot eligible customers at every observation time.

    ``labels`` defaults to the churn outcomes in ``events``; pass them separately when the features
    should be built from a subset of the log (the leakage test does) or to save a pass over a large
    log (:meth:`training.data.eventlog.EventLog.labels`). ``on_progress(n)`` is called with the number of
    events applied since the previous call. ``extra(state, T)`` (``extra_width`` values) is taken from
    each row's state too, into ``Dataset.extra``. Memory is the customers' state and the rows, not the log.
    """
    events, log_start, log_end = log_bounds(events)
    labels = labels if labels is not None else labels_from_events(events)
    log_end = cfg.log_end_ms if cfg.log_end_ms is not None else log_end
    times = observation_times(log_start, log_end, cfg)
    compiled = compile_spec(cfg.spec)
    rows = _Rows(len(compiled.names), extra_width if extra is not None else None)
    for t, states in snapshots(events, times, cfg.features, labels=labels, delay_ms=cfg.delay_ms,
                               on_progress=on_progress):
        _snapshot(states, t, labels, cfg, rows, compiled, extra)
    return _to_dataset(rows, log_start, log_end, cfg, compiled.names)


def _to_dataset(rows: _Rows, log_start: int, log_end: int, cfg: DatasetConfig,
                names: tuple[str, ...] = FEATURES) -> Dataset:
    return Dataset(
        X=rows.X.matrix(),
        y=np.asarray(rows.y, dtype=np.int64),
        customer_ids=rows.ids.array(),
        obs_ms=np.asarray(rows.obs, dtype=np.int64),
        tiers=rows.tiers.array(),
        log_start_ms=log_start,
        log_end_ms=log_end,
        config=cfg,
        features=names,
        extra=rows.extra.matrix() if rows.extra is not None else None,
    )


# ---- writing ------------------------------------------------------------------------------------
#: Leading columns of a written dataset; the feature columns follow in :data:`FEATURES` order.
ID_COLUMNS = ("customer_id", "observed_at", "tier", "label")


def dataset_format(path: Path) -> str:
    """``parquet`` or ``csv`` from the output name; a ValueError (one line) for anything unwritable."""
    name = path.name.lower()
    if not path.parent.is_dir():
        raise ValueError(f"{path}: directory {path.parent} does not exist")
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith((".csv", ".csv.gz")):
        return "csv"
    raise ValueError(f"{path}: the dataset is written as .parquet, .csv or .csv.gz")


def write_dataset(dataset: Dataset, path: Path | str, columns: dict[str, Sequence[str]] | None = None) -> str:
    """Write ``dataset`` as Parquet (``.parquet``) or CSV (``.csv``/``.csv.gz``) and return the format.

    Written for the data scientist who wants to explore or model outside churnwatch: the very rows
    ``churnwatch train`` fits on, one per (customer, observation time), features in the stream's
    order, ``label`` = churned within the horizon. Missing feature values stay missing (empty CSV
    cells, Parquet nulls), never zeros, because "no survey answer yet" is not "a score of 0". The
    file appears atomically, so a failed write never leaves a truncated table behind. ``columns``:
    extra text columns, one value per row, written after the leading ones (``period``).
    """
    columns = {k: [str(v) for v in values] for k, values in (columns or {}).items()}
    for name, values in columns.items():
        if len(values) != len(dataset):
            raise ValueError(f"column {name} has {len(values)} values for {len(dataset)} rows")
    path = Path(path)
    fmt, name = dataset_format(path), path.name.lower()
    observed = [format_ts(int(t)) for t in dataset.obs_ms]
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        if fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            table: dict[str, Any] = {
                "customer_id": pa.array(dataset.customer_ids.tolist(), pa.string()),
                "observed_at": pa.array(observed, pa.string()),
                "tier": pa.array(dataset.tiers.tolist(), pa.string()),
                "label": pa.array(dataset.y.tolist(), pa.int8()),
            }
            for name, values in columns.items():
                table[name] = pa.array(values, pa.string())
            for j, feature in enumerate(dataset.features):
                table[feature] = pa.array(dataset.X[:, j], pa.float64(), from_pandas=True)  # NaN -> null
            pq.write_table(pa.table(table), tmp)
        else:
            opener = gzip.open if name.endswith(".gz") else open
            with opener(tmp, "wt", newline="") as fh:
                out = csv.writer(fh)
                out.writerow([*ID_COLUMNS, *columns, *dataset.features])
                extra = list(columns.values())
                for i in range(len(dataset)):
                    values = ["" if math.isnan(v) else repr(float(v)) for v in dataset.X[i]]
                    out.writerow([dataset.customer_ids[i], observed[i], dataset.tiers[i], int(dataset.y[i]),
                                  *(col[i] for col in extra), *values])
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return fmt
