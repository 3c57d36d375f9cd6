"""Models on disk and in memory: the versioned registry, the child-process check a model file passes
before any worker parses it, and scoring with calibrated probabilities and contributions.
"""
