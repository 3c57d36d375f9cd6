"""The stream half of churnwatch: events in from Kafka, per-customer features, scores and alerts out.

Layers, bottom up (each imports only those below it; ``tests/unit/test_layers.py`` holds them to it):

* :mod:`pipeline.core` — pure: the event contract, feature state, the feature spec, the alert policy and
  the decision loop. No Faust, Kafka, files or clocks, so :mod:`training` runs exactly this code.
* :mod:`pipeline.config` (settings, logs, the policy file) and :mod:`pipeline.model` (registry, scoring).
* :mod:`pipeline.kafka` (clients: security, connection check, topics, readers) and :mod:`pipeline.web`
  (who may use the web servers).
* :mod:`pipeline.worker` — the Faust worker: a thin I/O shell around the core.
"""
