"""Synthetic customer population and event stream for churnwatch (the design: :mod:`devtools.simulator.stream`).

The package face: the names the demo, the CLI, the benches and the tests use. Inside, ``records`` holds the
config and record types, ``parameters`` and ``vocabulary`` the fixed story's numbers and the foreign
product, ``plan`` who each customer is, ``customer`` what they do each day, ``malformed`` the bad records,
``stream`` the drivers and ``output`` the encodings. Names with a leading underscore are private to the package.
"""

from devtools.simulator.output import encode_value, to_log_line, write_jsonl
from devtools.simulator.records import (SOURCES, VOCAB_MAX, VOCAB_MIN, SimConfig, SimRecord, iso_ms,
                                        resolve_start_ms)
from devtools.simulator.stream import ground_truth, simulate
from devtools.simulator.vocabulary import ProductEventType, product_vocabulary

__all__ = [
    "SOURCES",
    "VOCAB_MAX",
    "VOCAB_MIN",
    "ProductEventType",
    "SimConfig",
    "SimRecord",
    "encode_value",
    "ground_truth",
    "iso_ms",
    "product_vocabulary",
    "resolve_start_ms",
    "simulate",
    "to_log_line",
    "write_jsonl",
]
