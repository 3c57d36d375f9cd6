"""The Faust stream worker: consuming the input topics in micro-batches, the state store and its
changelog, rebalances, the customer view, metrics, the webhook and the dead-letter topic — the I/O
around :mod:`pipeline.core`.
"""
