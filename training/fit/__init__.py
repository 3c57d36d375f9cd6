"""Fitting a model on point-in-time rows: the time split, LightGBM and its calibration, rolling-origin
cross-validation, per-tier thresholds, the baselines it must beat and the promotion gate.
"""
