"""The runs the CLI starts, on top of everything else in :mod:`training`: an event log to a registry
version (``churnwatch train``), a team's own usage log in one step, and re-evaluating a saved version
(``churnwatch evaluate``), with the score frames they keep.
"""
