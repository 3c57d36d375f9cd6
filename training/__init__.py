"""The offline half of churnwatch: event logs in, models, evaluations and backtests out.

It imports the stream's pure core (:mod:`pipeline.core`), so training rows are computed by the code the
worker runs. Layers, bottom up: :mod:`training.data` (reading and writing logs), :mod:`training.rows`
(labels and point-in-time rows), :mod:`training.assess` (measures, backtests, parity),
:mod:`training.fit` (splits, LightGBM, baselines, the gate) and the runs on top.
"""
