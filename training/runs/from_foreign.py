"""A team's own usage log and churn table -> a model in one step: convert
(:mod:`training.data.foreign`), then train on the converted log."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from pipeline.model.registry import Registry
from training.data.foreign.convert import convert
from training.data.foreign.mapping import ForeignMapping
from training.data.foreign.stats import ConvertStats
from training.data.progress import Report


@dataclass
class ForeignTrainResult:
    """The conversion and the training run it fed."""

    convert: ConvertStats
    train: Any  # training.runs.from_log.TrainResult (imported lazily: LightGBM is heavy)

    def summary(self) -> str:
        return self.convert.summary() + "\n" + self.train.summary()


def _counting_conversion(stats: ConvertStats, result: Any) -> Any:
    """The printed total is the user's wait: conversion included (on a big usage log it is minutes)."""
    result.timings["convert_s"] = round(stats.seconds, 3)
    result.timings["total_s"] = round(result.timings.get("total_s", 0.0) + stats.seconds, 3)
    return result


def train_foreign(usage: Path | str, churn: Path | str | None, registry: Any, mapping: ForeignMapping = ForeignMapping(),
                  *, log_out: Path | str | None = None, on_converted: Callable[[ConvertStats], None] | None = None,
                  convert_progress: Report | None = None, **train_kwargs: Any) -> ForeignTrainResult:
    """Convert ``usage`` + ``churn`` and train on the result (:func:`training.runs.from_log.train_from_log`);
    ``churn`` is None when ``mapping.inactive_days`` defines churn; training then runs with a label
    delay of ``inactive_days`` (:mod:`training.rows.labels`).

    ``registry`` is a :class:`pipeline.model.registry.Registry` or its directory. The converted log goes to a
    temporary file unless ``log_out`` names one to keep — worth keeping: the registry's metadata records
    the training log's path and checksum, which only helps an audit if the file still exists.
    ``on_converted`` gets the conversion's stats before training starts: when training then fails (too
    few churns, say), the rows left out and the warnings are usually the explanation, and a raised error
    would otherwise take them with it. ``convert_progress`` is the conversion's progress callback
    (:func:`training.data.foreign.convert.convert`); training draws its own bars
    (``train_kwargs['progress']``).
    """
    from training.runs.from_log import train_from_log  # LightGBM is heavy: loaded when training starts

    reg = registry if isinstance(registry, Registry) else Registry(registry)
    if mapping.inactive_days:  # an inactivity churn is known only N days after its date
        train_kwargs["label_delay_days"] = int(mapping.inactive_days)
    if log_out is not None:
        stats = convert(usage, churn, log_out, mapping, progress=convert_progress)
        if on_converted is not None:
            on_converted(stats)
        return ForeignTrainResult(stats, _counting_conversion(stats, train_from_log(log_out, reg, **train_kwargs)))
    with tempfile.TemporaryDirectory(prefix="churnwatch-foreign-") as tmp:
        log = Path(tmp) / "converted.jsonl"
        stats = convert(usage, churn, log, mapping, progress=convert_progress)
        stats.temporary = True
        if on_converted is not None:
            on_converted(stats)
        return ForeignTrainResult(stats, _counting_conversion(stats, train_from_log(log, reg, **train_kwargs)))

