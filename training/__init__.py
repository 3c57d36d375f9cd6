"""The offline half of churnwatch: event logs in, models, evaluations and backtests out.

It imports the stream's pure core (:mod:`pipeline.core`), so training rows are computed by the code the
worker runs. Layers, bottom up (``tests/unit/test_layers.py`` holds them to it): :mod:`training.data`
(reading and writing logs), :mod:`training.rows` (labels and point-in-time rows), :mod:`training.assess`
(measures, backtests, parity, the offline alert replay), :mod:`training.fit` (splits, LightGBM,
baselines, the gate), :mod:`training.report` (the evaluation report) and :mod:`training.runs` on top.
"""
