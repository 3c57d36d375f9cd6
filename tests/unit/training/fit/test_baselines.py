"""Baselines: 28-day event counts read from the stream's state, and logistic regressions kept as numbers."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from pipeline.core.contract import DAY_MS, Event
from pipeline.core.features import CH, FEATURES, CustomerState, apply
from pipeline.core.spec import FeatureSpec, compile_spec
from training.fit.baselines import (
    BASELINE_LABELS,
    COUNT_FEATURES,
    COUNT_WINDOW_DAYS,
    LinearBaseline,
    baseline_inputs,
    baselines_json,
    count_matrix,
    event_counts,
    fit_linear,
    load_baselines,
)
from training.rows.dataset import DatasetConfig, build_dataset

T0 = 1_699_920_000_000  # 2023-11-14T00:00:00Z, a UTC midnight
H = 3_600_000
N_CH = len(CH)


def at(day: float) -> int:
    return T0 + int(day * DAY_MS)


def ev(source: str, cid: str, day: float, typ: str, **data) -> Event:
    return Event(source, f"{cid}-{typ}-{day}-{len(data)}", cid, at(day), typ, data)


def state_of(events: list[Event]) -> CustomerState:
    st = CustomerState(events[0].customer_id)
    for e in sorted(events, key=lambda e: e.ts_ms):
        apply(st, e)
    return st


def test_event_counts_cover_exactly_the_28_days_ending_today() -> None:
    now = at(100.5)  # noon of day 100: the window is days 73..100
    st = state_of([
        ev("interactions", "a", 100.25, "login"),
        ev("interactions", "a", 73.1, "login"),            # first day of the window
        ev("interactions", "a", 72.9, "login"),            # the day before: outside
        ev("interactions", "a", 90.0, "feature_use", feature="x"),
        ev("interactions", "a", 90.2, "feature_use", feature="x"),
        ev("interactions", "a", 95.0, "help_view", success=False),
        ev("surveys", "a", 97.0, "csat", score=2),
        ev("surveys", "a", 60.0, "nps", score=3),          # too old
        ev("surveys", "a", 99.0, "nps", score=9),
    ])
    counts = dict(zip(COUNT_FEATURES, event_counts(st, now)))
    assert len(COUNT_FEATURES) == len(event_counts(st, now)) == N_CH + 3
    assert counts[f"logins_{COUNT_WINDOW_DAYS}d"] == 2
    assert counts[f"feature_uses_{COUNT_WINDOW_DAYS}d"] == 2
    assert counts[f"help_views_{COUNT_WINDOW_DAYS}d"] == 1 and counts[f"failed_help_{COUNT_WINDOW_DAYS}d"] == 1
    assert counts[f"csat_answers_{COUNT_WINDOW_DAYS}d"] == 1
    assert counts[f"nps_answers_{COUNT_WINDOW_DAYS}d"] == 1
    assert counts[f"ces_answers_{COUNT_WINDOW_DAYS}d"] == 0
    # a week later the day-73 and day-90 events have aged out
    later = dict(zip(COUNT_FEATURES, event_counts(st, at(118.5))))
    assert later[f"logins_{COUNT_WINDOW_DAYS}d"] == 1 and later[f"feature_uses_{COUNT_WINDOW_DAYS}d"] == 0


def test_count_matrix_is_point_in_time_and_lines_up_with_the_dataset() -> None:
    events = []
    for cid, last_day in (("busy", 139), ("fading", 70)):
        events.append(ev("customers", cid, 0.0, "profile", tier="standard"))
        events += [ev("interactions", cid, d + 0.4, "login") for d in range(0, last_day + 1)]
    events.append(ev("outcomes", "fading", 110.5, "churned"))
    events.append(ev("interactions", "busy", 150.0, "login"))
    events.sort(key=lambda e: e.ts_ms)
    dataset = build_dataset(events, DatasetConfig())
    counts = count_matrix(events, dataset)
    assert counts.shape == (len(dataset), len(COUNT_FEATURES))
    logins = counts[:, COUNT_FEATURES.index(f"logins_{COUNT_WINDOW_DAYS}d")]
    for i in range(len(dataset)):
        t, cid = int(dataset.obs_ms[i]), dataset.customer_ids[i]
        # the observation is at a midnight and sees only events before it: the 28 days before T
        expected = sum(1 for e in events if e.customer_id == cid and e.type == "login" and t - 28 * DAY_MS <= e.ts_ms < t)
        assert logins[i] == expected, (cid, t)
    fading = dataset.customer_ids == "fading"
    assert logins[fading].min() == 0 and logins[~fading].min() == 28


def test_linear_baseline_reproduces_sklearn_and_survives_json() -> None:
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 3)) * [1.0, 5.0, 0.1] + [0.0, 10.0, 0.0]
    X[rng.random(400) < 0.1, 1] = np.nan
    y = (X[:, 0] + rng.normal(size=400) > 1.0).astype(int)
    before = X.copy()
    b = fit_linear("logreg", X, y, ("a", "b", "c"), seed=1)
    np.testing.assert_array_equal(X, before)  # imputed and scaled in place, but in a copy
    rows = np.arange(0, 400, 2)
    half = fit_linear("logreg", X, y, ("a", "b", "c"), seed=1, rows=rows)
    np.testing.assert_allclose(half.coef, fit_linear("logreg", X[rows], y[rows], ("a", "b", "c"), seed=1).coef)
    np.testing.assert_array_equal(X, before)
    ref = make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler(),
                        LogisticRegression(class_weight="balanced", max_iter=2000, random_state=1)).fit(X, y)
    np.testing.assert_allclose(b.raw(X), ref.predict_proba(X)[:, 1], rtol=1e-10, atol=1e-12)
    assert max(b.importance(), key=b.importance().get) == "a"

    b.calibration = {"x": [0.0, 0.5, 1.0], "y": [0.0, 0.1, 0.9]}
    b.thresholds = {"vip": 0.2, "standard": 0.3}
    back = LinearBaseline.from_json(orjson.loads(orjson.dumps(b.to_json())))
    np.testing.assert_array_equal(back.predict(X), b.predict(X))
    assert back.thresholds == b.thresholds and back.features == ("a", "b", "c")
    assert not np.allclose(b.predict(X), b.raw(X))  # the calibration map is applied


def test_from_json_refuses_mismatched_parameters() -> None:
    d = fit_linear("logreg", np.eye(4)[:, :2], np.array([0, 1, 0, 1]), ("a", "b")).to_json()
    d["coef"] = d["coef"][:1]
    with pytest.raises(ValueError, match="lengths"):
        LinearBaseline.from_json(d)


def test_baselines_file_round_trip_and_checks() -> None:
    rng = np.random.default_rng(3)
    y = np.tile([0, 1], 50)
    fitted = {}
    names = compile_spec(FeatureSpec(types=("post", "like"))).names
    for name in BASELINE_LABELS:
        _, cols = baseline_inputs(name, np.zeros((0, len(names))), np.zeros((0, len(COUNT_FEATURES))), names)
        fitted[name] = fit_linear(name, rng.normal(size=(100, len(cols))), y, cols)
    assert fitted["type_counts_28d"].features == ("type_post_28d", "type_like_28d", "other_types_28d",
                                                  "tenure_days", "usage_observed_days")
    data = orjson.loads(orjson.dumps(baselines_json(fitted)))
    loaded = load_baselines(data, names)
    assert list(loaded) == list(BASELINE_LABELS)
    assert loaded["counts_28d"].features == COUNT_FEATURES and loaded["logreg"].features == names
    with pytest.raises(ValueError, match="other inputs"):
        load_baselines(data)  # the built-in features only: not the inputs these were fitted on
    with pytest.raises(ValueError, match="28-day"):
        load_baselines(dict(data, count_window_days=14), names)
    with pytest.raises(ValueError, match="unknown baseline"):
        load_baselines({"baselines": {"magic": data["baselines"]["logreg"]}}, names)
    swapped = {"baselines": {"logreg": data["baselines"]["counts_28d"]}}
    with pytest.raises(ValueError, match="other inputs"):
        load_baselines(swapped, names)
    with pytest.raises(ValueError, match="not a baselines file"):
        load_baselines({"nope": 1})


def test_baseline_inputs_pick_the_matrix() -> None:
    X, counts = np.ones((2, len(FEATURES))), np.zeros((2, len(COUNT_FEATURES)))
    assert baseline_inputs("logreg", X, counts)[0] is X
    assert baseline_inputs("counts_28d", X, counts)[0] is counts
    with pytest.raises(ValueError, match="unknown baseline"):
        baseline_inputs("other", X, counts)
