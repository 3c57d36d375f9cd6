"""Tools for running churnwatch without a cluster or customer data: the embedded Kafka-protocol broker,
the simulated customer population and a producer that streams it.

The demo, the tests and the benchmarks use them; neither the stream (:mod:`pipeline`) nor the offline
side (:mod:`training`) does, so production code never depends on a simulator.
"""
