"""Unit tests for the simulator's foreign-vocabulary mode (``SimConfig.vocabulary > 0``).

A product of the simulator's own making that sends its *own* event types, has monthly and annual plans that
churn at renewals, multi-user accounts, and a churn story told by the *mix* of types more than by their
volume. One mid-sized population (600 customers x 200 days) is generated once and reduced to per-day count
arrays, so every statistical test shares a single pass; a small one serves the record-level checks.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass

import numpy as np
import pytest

from devtools import simulator as sim
from devtools.simulator import SimConfig, SimRecord, ground_truth, product_vocabulary, simulate
from devtools.simulator.records import DAY_MS
from devtools.simulator.vocabulary import FIXED_TYPES
from pipeline.core.contract import parse_ts, validate

START = 1_767_225_600_000  # 2026-01-01T00:00:00Z
SMALL = SimConfig(customers=80, days=120, start_ms=START, seed=5, vocabulary=14)
BIG = SimConfig(customers=600, days=200, start_ms=START, seed=21, vocabulary=18)


@pytest.fixture(scope="module")
def small() -> list[SimRecord]:
    return list(simulate(SMALL))


@dataclass
class Population:
    """BIG reduced to what the statistical tests read, in one streaming pass."""

    roles: np.ndarray  # (V,) role of each vocabulary type
    counts: np.ndarray  # (customers, days, V) interactions per customer, window day and type
    first_day: np.ndarray  # (customers,) window day of the first profile
    churn_day: np.ndarray  # (customers,) window day of `churned`, -1 if none
    churn_ms: dict[int, int]
    renewal_at_churn: dict[int, int]  # the renewal_ts the last profile before churn announced
    terms: dict[int, str]
    plans: Counter
    renewals_ok: int  # `renewed` events at exactly the announced renewal_ts
    renewals_bad: int
    renewal_moves_back: int  # a profile whose renewal_ts is earlier than the previous profile's
    users: dict[int, set[str]]
    user_days: dict[int, dict[int, set[str]]]
    types_seen: set[str]
    value_types: Counter  # type -> events carrying a numeric `value`
    value_bad: int  # a `value` that is not a positive number, or on a type without a value field


@pytest.fixture(scope="module")
def big() -> Population:
    vocab = product_vocabulary(BIG)
    idx = {t.name: i for i, t in enumerate(vocab)}
    has_value = {t.name for t in vocab if t.value_field is not None}
    c_n, d_n = BIG.customers, BIG.days
    counts = np.zeros((c_n, d_n, len(vocab)), np.int32)
    first = np.full(c_n, d_n, np.int64)
    churn = np.full(c_n, -1, np.int64)
    pop = Population(np.array([t.role for t in vocab]), counts, first, churn, {}, {}, {}, Counter(), 0, 0, 0,
                     defaultdict(set), defaultdict(lambda: defaultdict(set)), set(), Counter(), 0)
    announced: dict[int, int] = {}
    plen = len(BIG.id_prefix)
    n_types = len(vocab)
    cells: list[int] = []  # flat (customer, day, type) index per interaction, counted at the end
    seen: set[tuple[int, int, str]] = set()  # (customer, day, user)
    for r in simulate(BIG):
        c = int(r.key[plen:])
        day = (r.ts_ms - START) // DAY_MS
        v = r.value
        if r.source == "interactions":
            typ = v["type"]
            cells.append((c * d_n + day) * n_types + idx[typ])
            seen.add((c, day, v["user_id"]))
            if "value" in v:
                x = v["value"]
                pop.value_types[typ] += 1
                pop.value_bad += typ not in has_value or isinstance(x, bool) or not x > 0
        elif r.source == "customers":
            if first[c] == d_n:
                first[c] = day
                pop.terms[c] = v["term"]
            pop.plans[v["plan"]] += 1
            rt = parse_ts(v["renewal_ts"])
            pop.renewal_moves_back += rt < announced.get(c, 0)
            announced[c] = rt
        elif r.source == "outcomes":
            if v["type"] == "churned":
                churn[c] = day
                pop.churn_ms[c] = r.ts_ms
                pop.renewal_at_churn[c] = announced[c]
            elif v["type"] == "renewed":
                if announced[c] == r.ts_ms:
                    pop.renewals_ok += 1
                else:
                    pop.renewals_bad += 1
    counts += np.bincount(np.array(cells, np.int64), minlength=counts.size).reshape(counts.shape).astype(
        np.int32)
    pop.types_seen = {vocab[i].name for i in np.nonzero(counts.sum((0, 1)))[0]}
    for c, day, u in seen:
        pop.users[c].add(u)
        pop.user_days[c][day].add(u)
    return pop


# ------------------------------------------------------------------------------------------ vocabulary


def test_vocabulary_is_the_products_own() -> None:
    for n in (8, 13, 25):
        for seed in (0, 1, 2, 3):
            cfg = SimConfig(seed=seed, vocabulary=n)
            vocab = product_vocabulary(cfg)
            names = [t.name for t in vocab]
            assert len(names) == len(set(names)) == n
            assert not set(names) & FIXED_TYPES
            assert all(name.replace("_", "").isalpha() and name.islower() and len(name) <= 64 for name in names)
            roles = Counter(t.role for t in vocab)
            assert roles["value"] >= 2 and roles["friction"] >= 2 and roles["neutral"] >= 2
            assert all((t.weight > 0) == (t.role == "value") for t in vocab if t.role != "neutral")
            shares = [t.share for t in vocab]
            assert shares == sorted(shares, reverse=True) and abs(sum(shares) - 1.0) < 1e-9
            assert shares[0] > 8 * shares[-1]  # a long tail: the top types are not the whole story
            assert product_vocabulary(SimConfig(seed=seed, vocabulary=n, customers=3)) == vocab
    assert product_vocabulary(SimConfig(seed=1, vocabulary=18)) != product_vocabulary(
        SimConfig(seed=2, vocabulary=18))
    assert product_vocabulary(SimConfig()) == ()


def test_records_use_exactly_the_configured_types(small: list[SimRecord], big: Population) -> None:
    for cfg, seen in ((SMALL, {r.value["type"] for r in small if r.source == "interactions"}),
                      (BIG, big.types_seen)):
        assert seen == {t.name for t in product_vocabulary(cfg)}
        assert len(seen) == cfg.vocabulary
        assert not seen & FIXED_TYPES


# ------------------------------------------------------------------------------------------- contract


def test_every_record_validates_and_the_stream_is_well_formed(small: list[SimRecord]) -> None:
    now = START + (SMALL.days + 1) * DAY_MS
    for r in small:
        ev = validate(r.source, r.value, now)
        assert ev.customer_id == r.key and ev.ts_ms == r.ts_ms
        if r.source == "interactions":
            assert isinstance(r.value["user_id"], str) and r.value["user_id"].startswith(r.key + "-u")
    assert len({r.value["event_id"] for r in small}) == len(small)
    ts = [r.ts_ms for r in small]
    assert ts == sorted(ts) and ts[0] >= START and ts[-1] < START + SMALL.days * DAY_MS
    sources = Counter(r.source for r in small)
    assert set(sources) == set(sim.SOURCES)
    assert sources["interactions"] > 0.9 * len(small)  # tickets and surveys are there, but a small part
    seen: set[str] = set()
    churned: dict[str, int] = {}
    for r in small:
        if r.key not in seen:
            seen.add(r.key)
            assert (r.source, r.value["type"]) == ("customers", "profile")
        assert r.key not in churned, f"event after churn: {r}"
        if r.source == "outcomes" and r.value["type"] == "churned":
            churned[r.key] = r.ts_ms
    assert {k: v for k, v in ground_truth(SMALL).items() if v is not None} == churned


def test_deterministic_from_the_seed(small: list[SimRecord]) -> None:
    assert list(simulate(SMALL)) == small
    other = SimConfig(customers=SMALL.customers, days=SMALL.days, start_ms=START, seed=6, vocabulary=14)
    assert list(simulate(other)) != small
    # Customer i is the same customer in any population size, and malformed records leave the rest alone.
    half = SimConfig(customers=40, days=SMALL.days, start_ms=START, seed=5, vocabulary=14)
    wanted = {f"c{i:06d}" for i in range(40)}
    assert list(simulate(half)) == [r for r in small if r.key in wanted]
    noisy = SimConfig(customers=80, days=120, start_ms=START, seed=5, vocabulary=14, bad_rate=0.02)
    assert [r for r in simulate(noisy) if not isinstance(r.value, bytes)] == small


# ------------------------------------------------------------------------------------------- churn story


def _mix(pop: Population, sel: list[tuple[int, int, int]]) -> tuple[float, float, float]:
    """(events per customer-day, value share, friction share) pooled over (customer, first day, end day)."""
    tot = np.zeros(pop.counts.shape[2])
    days = 0
    for c, a, b in sel:
        tot += pop.counts[c, a:b].sum(0)
        days += b - a
    n = tot.sum()
    return n / days, tot[pop.roles == "value"].sum() / n, tot[pop.roles == "friction"].sum() / n


def test_churners_mix_shifts_toward_friction_more_than_their_volume_falls(big: Population) -> None:
    truth = ground_truth(BIG)
    late = [c for c in range(BIG.customers) if big.churn_day[c] >= 100 and big.first_day[c] == 0]
    healthy = [c for c in range(BIG.customers) if truth[f"c{c:06d}"] is None and big.first_day[c] == 0]
    assert len(late) >= 40 and len(healthy) >= 300
    _, h_val, h_fric = _mix(big, [(c, 0, BIG.days) for c in healthy])
    _, e_val, e_fric = _mix(big, [(c, 0, 30) for c in late])  # the same churners, months before
    _, p_val, p_fric = _mix(big, [(c, big.churn_day[c] - 30, big.churn_day[c]) for c in late])
    # Months before churn their habits look like everyone's (churners are smaller accounts, with less volume);
    assert abs(e_val - h_val) < 0.25 * h_val and abs(e_fric - h_fric) < 0.25 * h_fric
    # in their last 30 days value types lose ground and friction types gain it.
    assert p_val < 0.7 * e_val and p_val < 0.7 * h_val
    assert p_fric > 1.5 * e_fric and p_fric > 1.5 * h_fric
    # Per churner, the mix moves further than the volume: the typical churner keeps most of its volume.
    vol_r, val_r, fric_r = [], [], []
    value, friction = big.roles == "value", big.roles == "friction"
    for c in late:
        e = big.counts[c, 0:30].sum(0)
        p = big.counts[c, big.churn_day[c] - 30:big.churn_day[c]].sum(0)
        if e.sum() >= 40 and p.sum() >= 10:
            vol_r.append(p.sum() / e.sum())
            val_r.append((p[value].sum() / p.sum()) / max(e[value].sum() / e.sum(), 1e-9))
            fric_r.append((p[friction].sum() / p.sum()) / max(e[friction].sum() / e.sum(), 1e-9))
    assert len(vol_r) >= 20
    assert np.median(vol_r) > 0.6
    assert np.median(val_r) < 0.75 and np.median(fric_r) > 1.4
    assert np.median(val_r) < np.median(vol_r) - 0.1


def test_churn_lands_on_renewal_days_and_renewals_move_forward(big: Population) -> None:
    assert {k: v for k, v in ground_truth(BIG).items() if v is not None} == {
        f"c{c:06d}": t for c, t in big.churn_ms.items()}
    share = len(big.churn_ms) / BIG.customers
    assert 0.18 <= share <= 0.32
    on_renewal_day = sum(0 < big.renewal_at_churn[c] - t <= DAY_MS for c, t in big.churn_ms.items())
    # Uniform churn times would fall within a day of a renewal ~3% of the time (monthly) or less (annual).
    assert on_renewal_day / len(big.churn_ms) > 0.7
    assert big.renewals_ok > 300 and big.renewals_bad == 0
    assert big.renewal_moves_back == 0


def test_monthly_and_annual_plans_both_occur(big: Population) -> None:
    terms = Counter(big.terms.values())
    assert set(terms) == {"monthly", "annual"}
    assert min(terms.values()) > 0.2 * BIG.customers
    assert len(big.plans) == 3
    churn_terms = Counter(big.terms[c] for c in big.churn_ms)
    assert churn_terms["annual"] >= 10 and churn_terms["monthly"] >= 10
    allm = SimConfig(customers=30, days=40, start_ms=START, seed=2, vocabulary=9, annual_share=0.0)
    assert {r.value["term"] for r in simulate(allm) if r.source == "customers"} == {"monthly"}


def test_multi_user_accounts_lose_users_as_they_decline(big: Population) -> None:
    n_users = [len(big.users[c]) for c in range(BIG.customers) if big.users[c]]
    assert np.mean([n >= 2 for n in n_users]) > 0.7  # most accounts have several users ...
    assert sum(n == 1 for n in n_users) >= 10  # ... some have one
    assert max(n_users) >= 8

    def active(c: int, a: int, b: int) -> int:
        return len(set().union(*(big.user_days[c].get(d, set()) for d in range(a, b))))

    truth = ground_truth(BIG)
    late = [c for c in range(BIG.customers) if big.churn_day[c] >= 100 and big.first_day[c] == 0]
    healthy = [c for c in range(BIG.customers) if truth[f"c{c:06d}"] is None and big.first_day[c] == 0]
    ratio_churn = np.mean([active(c, big.churn_day[c] - 21, big.churn_day[c]) / max(1, active(c, 0, 21))
                           for c in late])
    ratio_healthy = np.mean([active(c, BIG.days - 21, BIG.days) / max(1, active(c, 0, 21)) for c in healthy])
    print(f"active users, last 21 days / first 21 days: churners {ratio_churn:.2f}, healthy {ratio_healthy:.2f}")
    assert ratio_churn < ratio_healthy - 0.1
    solo = SimConfig(customers=30, days=30, start_ms=START, seed=2, vocabulary=9, users_per_account=1.0)
    per = defaultdict(set)
    for r in simulate(solo):
        if r.source == "interactions":
            per[r.key].add(r.value["user_id"])
    assert per and all(len(u) == 1 for u in per.values())


def test_numeric_value_rides_on_some_types(big: Population) -> None:
    assert big.value_bad == 0
    valued = {t.name for t in product_vocabulary(BIG) if t.value_field is not None}
    assert valued and set(big.value_types) <= valued
    assert sum(big.value_types.values()) > 100


# ----------------------------------------------------------------------------------------- learnability


def test_learnable_from_type_counts_and_shares_beat_volume(big: Population) -> None:
    """28-day per-type counts -> churn within 30 days, weekly snapshots, trained on the past, tested on the
    future: a plain logistic regression finds the signal, and it is in the mix, not only the volume."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    feats: dict[str, list[np.ndarray]] = defaultdict(list)
    ys: list[np.ndarray] = []
    ts: list[np.ndarray] = []
    for t in range(35, BIG.days - 30, 7):
        live = (big.first_day <= t - 28) & ((big.churn_day < 0) | (big.churn_day >= t))
        cs = np.nonzero(live)[0]
        win = big.counts[cs, t - 28:t].sum(1).astype(float)
        total = win.sum(1, keepdims=True)
        feats["counts"].append(np.log1p(win))
        feats["volume"].append(np.log1p(total))
        feats["shares"].append(win / np.maximum(total, 1.0))  # the mix alone, blind to the volume
        ys.append(((big.churn_day[cs] >= t) & (big.churn_day[cs] < t + 30)).astype(int))
        ts.append(np.full(len(cs), t))
    y = np.concatenate(ys)
    t_ = np.concatenate(ts)
    split = 126
    train, test = t_ + 30 <= split, t_ >= split  # labels of the training snapshots are known at the split
    assert y[train].sum() >= 80 and y[test].sum() >= 80
    auc = {}
    for name, parts in feats.items():
        x = np.concatenate(parts)
        mu, sd = x[train].mean(0), x[train].std(0) + 1e-9
        model = LogisticRegression(max_iter=2000).fit((x[train] - mu) / sd, y[train])
        auc[name] = roc_auc_score(y[test], model.predict_proba((x[test] - mu) / sd)[:, 1])
    print("foreign-mode learnability (test ROC-AUC):", {k: round(v, 3) for k, v in auc.items()})
    assert auc["counts"] > 0.7
    assert auc["volume"] < auc["counts"] - 0.05
    assert auc["shares"] > 0.7
