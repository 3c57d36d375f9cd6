"""How good are the scores: ranking and calibration measures with intervals, alert volumes under the
stream's policy, backtests of a model over a log, stream/offline parity, and the worker's alerts replayed
offline (:mod:`.shadow`).
"""
