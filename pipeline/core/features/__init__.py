"""Per-customer feature state, its update and the feature vector: the code the stream and training share.

Modules: :mod:`.state` (the record and its changelog bytes), :mod:`.seen` (the event-id memory),
:mod:`.update` (folding events in), :mod:`.feature_vector` (the model's input). This face re-exports
what the rest of churnwatch imports.
"""

from pipeline.core.features.feature_vector import FEATURE_INDEX, FEATURES, as_dict, vector
from pipeline.core.features.state import (CH, CHANNELS, N_CH, OTHER_TYPE, RING_DAYS, TYPE_CAP, VALUE_SCALE, WINDOWS,
                                          CustomerState, FeatureConfig, day_of)
from pipeline.core.features.update import Applied, apply, states_from_events

__all__ = [
    "CH", "CHANNELS", "FEATURES", "FEATURE_INDEX", "N_CH", "OTHER_TYPE", "RING_DAYS", "TYPE_CAP", "VALUE_SCALE",
    "WINDOWS", "Applied", "CustomerState", "FeatureConfig", "apply", "as_dict", "day_of", "states_from_events",
    "vector",
]
