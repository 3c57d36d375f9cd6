"""One event into its customer's batch entry: the step the stream worker and the offline replay share.

``pipeline.worker.batch.BatchProcessor`` and ``training.assess.shadow.Replayer`` both call :func:`fold`, so the replay's alerts are
the worker's alerts by construction rather than by a copy kept in step (``tests/unit/training/assess/test_shadow.py``
still compares the two end to end). Pure: no broker, no store, no metrics; whatever a caller does around an
event (recording input positions, isolating a poisoned event, counting duplicates, the sweep clock) stays with
the caller.
"""

from __future__ import annotations

from pipeline.core import alerting
from pipeline.core import rules
from pipeline.core.contract import Event
from pipeline.core.decisions import Touched
from pipeline.core.features import Applied, FeatureConfig, apply


def fold(entry: Touched, event: Event, cfg: FeatureConfig, rules_cfg: rules.RulesConfig, *,
         offset: int | None = None, partition: int | None = None) -> Applied:
    """Apply ``event`` to ``entry``; a duplicate or too-late event changes nothing and is returned as such.

    An outcome is feedback on an alert, not customer behaviour: it goes to the alert memory (an
    acknowledgement closes the open alert) and is no reason to score. Any other event may change the risk,
    so it marks the entry for scoring and runs the event rules, which read the state *after* the event.

    ``offset``/``partition`` are where the event was read, if it was read from a stream: ``apply`` keeps
    the position in the state, and the state remembers the partition it was read from (the sweep re-scores
    customers per partition); without one it is the entry's partition.
    """
    result = apply(entry.state, event, offset, cfg, partition=partition)
    if not result:
        return result
    entry.state.partition = entry.partition if partition is None else partition
    if event.source == "outcomes":
        alerting.on_outcome(entry.state.alert, event)
    else:
        entry.score_needed = True
        entry.rule_hits += rules.on_event(entry.state, event, rules_cfg)
    return result
