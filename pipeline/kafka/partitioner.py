"""Which partition a customer's events land on: Kafka's default partitioner, as every producer uses it.

The worker's web server answers for the customers of its own partitions and forwards the others, and the
offline alert replay spreads customers over partitions as a cluster would, so both must place a key
exactly where the producers' default (murmur2 of the key) puts it.
"""

from __future__ import annotations

from typing import Callable


def partitioner(partitions: int) -> Callable[[str], int]:
    """Kafka's default partitioner for a customer key (what producers, and so the worker, use)."""
    if partitions <= 1:
        return lambda _cid: 0
    from kafka.partitioner.default import murmur2

    return lambda cid: (murmur2(cid.encode()) & 0x7FFFFFFF) % partitions
