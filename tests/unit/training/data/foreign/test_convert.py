"""A team's own usage log + churn table -> churnwatch events -> a model, in one step."""

from __future__ import annotations

import argparse
import csv
import dataclasses
import re
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from apps import cli
from pipeline.model.registry import Registry
from pipeline.model.scoring import load_version
from training.data.eventlog import read_events
from training.data.foreign.convert import convert
from training.data.foreign.mapping import ForeignLogError, ForeignMapping, parse_type_map
from training.data.foreign.times import TimeReader, day_order

UTC = timezone.utc


def ms(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp() * 1000)


def write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


MAPPING = ForeignMapping(id_col="account", time_col="occurred_at", type_col="action",
                         type_map={"SignIn": "login", "view_dashboard": "page_view"})


# ---- times --------------------------------------------------------------------------------------
@pytest.mark.parametrize("value,dayfirst,expected", [
    ("2026-03-01 14:03:00", None, ms(2026, 3, 1, 14, 3)),
    ("2026-03-01T14:03:00Z", None, ms(2026, 3, 1, 14, 3)),
    ("2026-03-01T14:03:00+02:00", None, ms(2026, 3, 1, 12, 3)),
    ("2026-03-01", None, ms(2026, 3, 1)),
    ("03/01/2026", False, ms(2026, 3, 1)),
    ("03/01/2026", True, ms(2026, 1, 3)),
    ("3/1/2026 2:03 PM", False, ms(2026, 3, 1, 14, 3)),
    ("3/1/2026 12:10 am", False, ms(2026, 3, 1, 0, 10)),
    ("01.03.2026 14:03:05", True, ms(2026, 3, 1, 14, 3, 5)),
    ("2026/03/01 14:03", None, ms(2026, 3, 1, 14, 3)),
    ("20260301", None, ms(2026, 3, 1)),
    ("1772373780", None, ms(2026, 3, 1, 14, 3)),           # epoch seconds
    ("1772373780000", None, ms(2026, 3, 1, 14, 3)),        # epoch ms
    ("1772373780000000", None, ms(2026, 3, 1, 14, 3)),     # epoch µs
    (1772373780, None, ms(2026, 3, 1, 14, 3)),
    (1772373780.5, None, ms(2026, 3, 1, 14, 3) + 500),
    (datetime(2026, 3, 1, 14, 3), None, ms(2026, 3, 1, 14, 3)),
    (date(2026, 3, 1), None, ms(2026, 3, 1)),
])
def test_time_formats(value: Any, dayfirst: bool | None, expected: int) -> None:
    assert TimeReader(dayfirst=dayfirst)(value) == expected


@pytest.mark.parametrize("value", ["yesterday", "13/13/2026", "2026-02-30", "03/01/2026", True, "1:2:3"])
def test_unreadable_times_raise_value_error(value: Any) -> None:
    with pytest.raises(ValueError):
        TimeReader()(value)  # "03/01/2026" without a known day/month order is refused, not guessed


def test_explicit_format_wins() -> None:
    assert TimeReader("%d %b %Y")("01 Mar 2026") == ms(2026, 3, 1)


def test_day_order_is_read_off_the_column() -> None:
    assert day_order(["", "03/01/2026", "03/25/2026"]) is False
    assert day_order(["03/01/2026", "25/03/2026"]) is True
    assert day_order(["03/01/2026", "04/02/2026"]) == "undecided"
    assert day_order(["2026-03-01", "25/03/2026"]) is None  # not a d/m/y column
    assert day_order([datetime(2026, 3, 1)]) is None


# ---- a small conversion, every rule visible -----------------------------------------------------
@pytest.fixture
def small(tmp_path: Path) -> tuple[Path, Path]:
    usage = write_csv(tmp_path / "usage.csv", ["account", "occurred_at", "action", "plan_name"], [
        ["a1", "2026-01-05 09:00:00", "signin", "Pro"],
        ["a1", "2026-01-06 10:30:00", "view_dashboard", ""],
        ["a1", "2026-02-20 11:00:00", "export_report", "Pro"],
        ["a2", "2026-01-10 08:00:00", "SIGNIN", ""],
        ["a2", "2026-03-01 14:03:00", "signin", ""],
        ["a3", "2026-02-01 12:00:00", "signin", "basic"],
        ["", "2026-02-01 12:00:00", "signin", ""],      # no account
        ["a3", "soon", "signin", ""],                   # unreadable time
        ["a3", "2026-02-02 12:00:00", "", ""],          # no type
    ])
    churn = write_csv(tmp_path / "churn.csv", ["account", "churn_date"], [
        ["a1", "02/25/2026"],
        ["a3", "12/15/2025"],    # before the usage log starts
        ["a3", "03/02/2026"],    # after it ends
        ["ghost", "02/14/2026"],  # never used the product
        ["a2", "not a date"],
    ])
    return usage, churn


def test_convert_churn_dates(small: tuple[Path, Path], tmp_path: Path) -> None:
    usage, churn = small
    out = tmp_path / "log.jsonl"
    mapping = ForeignMapping(id_col="account", time_col="occurred_at", type_col="action",
                             type_map={"SignIn": "login", "view_dashboard": "page_view"}, plan_col="plan_name")
    stats = convert(usage, churn, out, mapping)
    records = lines(out)
    inter = [r for r in records if r["source"] == "interactions"]
    assert [(r["customer_id"], r["type"]) for r in inter] == [
        ("a1", "login"), ("a1", "page_view"), ("a1", "export_report"),  # unknown types kept as they are
        ("a2", "login"), ("a2", "login"), ("a3", "login")]              # the type map ignores case
    profiles = {r["customer_id"]: r for r in records if r["source"] == "customers"}
    assert profiles["a1"]["signup_ts"] == "2026-01-05T09:00:00.000Z" == profiles["a1"]["ts"]  # first seen
    assert profiles["a1"]["tier"] == "standard" and profiles["a1"]["plan"] == "pro"
    assert profiles["a3"]["plan"] == "basic" and "plan" not in profiles["a2"]
    outcomes = [(r["customer_id"], r["type"], r["ts"]) for r in records if r["source"] == "outcomes"]
    assert outcomes == [("a1", "churned", "2026-02-25T00:00:00.000Z")]
    assert stats.usage_invalid == {"missing_field": 2, "bad_timestamp": 1}
    assert stats.churn_invalid == {"bad_timestamp": 1}
    assert stats.dropped == {"churned_before_usage_window": 1, "churned_after_as_of": 1,
                             "churn_of_account_without_usage": 1}
    assert stats.unmapped_types == {"export_report": 1}
    assert stats.time_formats["churn.churn_date"] == "auto, month/day/year"
    assert (stats.accounts, stats.churned, stats.interactions) == (3, 1, 6)

    log = read_events(out)  # the converted log passes the contract untouched
    assert log.stats.skipped == 0 and log.stats.events == len(records)


def test_conversion_is_deterministic(small: tuple[Path, Path], tmp_path: Path) -> None:
    usage, churn = small
    convert(usage, churn, tmp_path / "one.jsonl", MAPPING)
    convert(usage, churn, tmp_path / "two.jsonl", MAPPING)
    assert (tmp_path / "one.jsonl").read_bytes() == (tmp_path / "two.jsonl").read_bytes()
    ids = [r["event_id"] for r in lines(tmp_path / "one.jsonl")]
    assert len(ids) == len(set(ids))


def test_subscriptions_table(tmp_path: Path) -> None:
    usage = write_csv(tmp_path / "usage.csv", ["account_id", "ts", "event"], [
        [acc, f"2026-{m:02d}-10T10:00:00Z", "login"] for acc in ("s1", "s2", "s3", "s4") for m in (1, 2, 3, 4, 5)
    ])
    subs = write_csv(tmp_path / "subs.csv", ["account", "start", "end", "segment"], [
        ["s1", "2024-06-01", "", "Enterprise"],        # open: active, signed up long before the log
        ["s2", "2025-12-01", "2026-02-28", "smb"],     # ended in the window: churned
        ["s3", "2025-11-01", "2026-01-31", "smb"],     # churned, then came back after a gap
        ["s3", "2026-03-15", "", "vip"],
        ["s4", "2025-10-01", "2026-01-31", "smb"],     # renewed without a gap: one continuous spell
        ["s4", "2026-02-01", "2026-09-30", "smb"],     # ends after the data: not a churn yet
        ["s5", "2026-01-01", "", "smb"],               # paying, never used the product: kept
        ["s6", "2023-01-01", "2023-06-30", "smb"],     # gone before the window
        ["s7", "2026-03-01", "2026-02-01", "smb"],     # end before start
    ])
    stats = convert(usage, subs, tmp_path / "log.jsonl", ForeignMapping(tier_col="segment"))
    records = lines(tmp_path / "log.jsonl")
    outcomes = [(r["customer_id"], r["type"], r["ts"][:10]) for r in records if r["source"] == "outcomes"]
    assert outcomes == [("s3", "churned", "2026-01-31"), ("s2", "churned", "2026-02-28"),
                        ("s3", "renewed", "2026-03-15")]
    profiles = {r["customer_id"]: r for r in records if r["source"] == "customers"}
    assert set(profiles) == {"s1", "s2", "s3", "s4", "s5"}
    assert profiles["s1"]["signup_ts"][:10] == "2024-06-01"   # true signup kept ...
    assert profiles["s1"]["ts"][:10] == "2026-01-10"          # ... but stamped inside the usage window
    assert profiles["s1"]["tier"] == "enterprise" and profiles["s3"]["tier"] == "vip"  # newest subscription
    assert profiles["s5"]["ts"][:10] == "2026-01-10"
    assert stats.churn_table == "subscriptions" and stats.churn_invalid == {"bad_value": 1}
    assert stats.dropped == {"subscription_outside_usage_window": 1}
    assert read_events(tmp_path / "log.jsonl").stats.skipped == 0


def test_parquet_usage_and_jsonl_churn(tmp_path: Path) -> None:
    """Native timestamps and integer ids in Parquet; epoch-second dates in JSONL."""
    t = [datetime(2026, 1, d, 9, tzinfo=UTC) for d in range(1, 29)]
    pq.write_table(pa.table({"user": pa.array([7] * 28 + [8] * 28, type=pa.int64()),
                             "when": pa.array(t + t, type=pa.timestamp("us", tz="UTC")),
                             "kind": ["open"] * 56, "secs": [30.0] * 55 + [float("nan")]}),
                   tmp_path / "usage.parquet")
    (tmp_path / "churn.jsonl").write_bytes(orjson.dumps({"user": 8, "churn_date": ms(2026, 1, 20) // 1000}) + b"\n")
    mapping = ForeignMapping(id_col="user", time_col="when", type_col="kind", type_map={"open": "login"},
                             duration_col="secs")
    stats = convert(tmp_path / "usage.parquet", tmp_path / "churn.jsonl", tmp_path / "log.jsonl.gz", mapping)
    log = read_events(tmp_path / "log.jsonl.gz")
    assert log.stats.skipped == 0 and stats.interactions == 56
    churned = [e for e in log.events if e.type == "churned"]
    assert [(e.customer_id, e.ts_ms) for e in churned] == [("8", ms(2026, 1, 20))]
    first = next(e for e in log.events if e.source == "interactions")
    assert first.type == "login" and first.data == {"duration_s": 30.0}
    assert stats.usage_after_churn == 1  # account 8 kept using it for a week after: reported


# ---- whole-file problems: one line naming the file and column -----------------------------------
def test_missing_usage_column(small: tuple[Path, Path], tmp_path: Path) -> None:
    usage, churn = small
    with pytest.raises(ForeignLogError, match=r"usage\.csv: missing column 'event_time'.*the file has: account"):
        convert(usage, churn, tmp_path / "x.jsonl", ForeignMapping(id_col="account", time_col="event_time",
                                                                   type_col="action"))


def test_churn_table_without_dates(small: tuple[Path, Path], tmp_path: Path) -> None:
    usage, _ = small
    other = write_csv(tmp_path / "other.csv", ["account", "status"], [["a1", "gone"]])
    with pytest.raises(ForeignLogError, match=r"other\.csv: neither a churn-date column 'churn_date' nor"):
        convert(usage, other, tmp_path / "x.jsonl", MAPPING)
    no_id = write_csv(tmp_path / "noid.csv", ["who", "churn_date"], [["a1", "2026-01-01"]])
    with pytest.raises(ForeignLogError, match=r"noid\.csv: no account column"):
        convert(usage, no_id, tmp_path / "x.jsonl", MAPPING)


def test_ambiguous_dates_ask_for_a_format(small: tuple[Path, Path], tmp_path: Path) -> None:
    usage, _ = small
    churn = write_csv(tmp_path / "churn.csv", ["account", "churn_date"], [["a1", "02/02/2026"], ["a2", "03/04/2026"]])
    with pytest.raises(ForeignLogError, match="--churn-time-format"):
        convert(usage, churn, tmp_path / "x.jsonl", MAPPING)
    stats = convert(usage, churn, tmp_path / "x.jsonl", dataclasses.replace(MAPPING, churn_time_format="%d/%m/%Y"))
    assert stats.churned == 1 and stats.dropped["churned_after_as_of"] == 1  # a2 on 3 April: after the log


def test_bad_output_name_and_unreadable_input(small: tuple[Path, Path], tmp_path: Path) -> None:
    usage, churn = small
    with pytest.raises(ForeignLogError, match="name it"):
        convert(usage, churn, tmp_path / "x.csv", MAPPING)
    with pytest.raises(ForeignLogError, match="nope.csv: file not found"):
        convert(tmp_path / "nope.csv", churn, tmp_path / "x.jsonl", MAPPING)
    bogus = tmp_path / "usage.parquet"
    bogus.write_text("account,occurred_at\n")
    with pytest.raises(ForeignLogError, match="usage.parquet: not a readable Parquet file"):
        convert(bogus, churn, tmp_path / "x.jsonl", MAPPING)
    assert not list(tmp_path.glob(".x.jsonl.*"))  # no half-written output left behind


def test_type_map_and_cli_arguments() -> None:
    assert parse_type_map("signin=login, view = page_view") == {"signin": "login", "view": "page_view"}
    assert parse_type_map(["a=b", "c=d"]) == {"a": "b", "c": "d"}
    with pytest.raises(ForeignLogError, match="FROM=TO"):
        parse_type_map("signin")
    args = argparse.Namespace(id_col="account_id", time_col="ts", type_col="event", type_map=["signin=login"],
                              tier_col=None, as_of="2026-06-01", events=None)
    m = ForeignMapping.from_options(vars(args))
    assert (m.id_col, m.time_col, m.type_col, dict(m.type_map), m.as_of) == \
        ("account_id", "ts", "event", {"signin": "login"}, "2026-06-01")
    assert m.tier_col is None and m.churn_date_col == "churn_date"


# ---- end to end: someone else's history to a loadable model -------------------------------------
START = datetime(2025, 9, 1)
ACTIONS = ("signin", "view_dashboard", "export_report", "open_help")


def team_history(root: Path, accounts: int = 300, days: int = 200, seed: int = 5) -> tuple[Path, Path]:
    """A product team's export, not in churnwatch's format: its own column names, ``2026-03-01 14:03:00``
    times and US ``03/01/2026`` churn dates. 40 % of accounts churn; their usage fades over the 40 days
    before they go. Some stayers have a quiet spell too, so silence alone is not a perfect tell."""
    rng = np.random.default_rng(seed)
    usage, churn = root / "product_usage.csv", root / "cancellations.csv"
    churn_rows = []
    with open(usage, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["account", "occurred_at", "action", "browser"])
        for i in range(accounts):
            account = f"ACME-{i:04d}"
            signup = 0 if rng.random() < 0.7 else int(rng.integers(1, 60))
            rate = float(np.exp(rng.normal(1.0, 0.4)))
            churn_day = int(rng.integers(signup + 45, days - 3)) if rng.random() < 0.4 else None
            quiet = None
            if churn_day is None and rng.random() < 0.2:
                q0 = int(rng.integers(signup, days - 20))
                quiet = (q0, q0 + int(rng.integers(10, 20)))
            if churn_day is not None:
                churn_rows.append([account, (START + timedelta(days=churn_day)).strftime("%m/%d/%Y")])
            for d in range(signup, churn_day if churn_day is not None else days):
                level = 1.0
                if churn_day is not None and d >= churn_day - 40:
                    level = max(0.05, (churn_day - d) / 40)
                if quiet and quiet[0] <= d < quiet[1]:
                    level *= 0.3
                day = START + timedelta(days=d)
                if day.weekday() >= 5:
                    level *= 0.5
                n = int(rng.poisson(rate * level))
                for s, k in zip(np.sort(rng.integers(8 * 3600, 20 * 3600, size=n)),
                                rng.choice(len(ACTIONS), size=n, p=(0.35, 0.35, 0.2, 0.1))):
                    w.writerow([account, (day + timedelta(seconds=int(s))).strftime("%Y-%m-%d %H:%M:%S"),
                                ACTIONS[k], "firefox"])
    write_csv(churn, ["account", "churn_date"], churn_rows)
    return usage, churn


def test_foreign_history_trains_a_loadable_model_with_the_documented_command(tmp_path: Path, capsys) -> None:
    usage, churn = team_history(tmp_path)
    models, converted = tmp_path / "models", tmp_path / "converted.jsonl"
    code = cli.main(["train", "--usage", str(usage), "--churn", str(churn), "--id-col", "account",
                     "--time-col", "occurred_at", "--type-col", "action",
                     "--type-map", "signin=login,view_dashboard=page_view",
                     "--type-map", "export_report=feature_use,open_help=help_view",
                     "--save-log", str(converted), "--models-dir", str(models), "--quiet"])
    out = capsys.readouterr()
    assert code == 0, out.err

    registry = Registry(models)
    version = registry.current()
    assert version is not None and version in out.out
    model = load_version(registry, version)
    assert model.version == version
    meta = registry.meta(version)
    assert meta["metrics"]["test"]["roc_auc"] > 0.7  # the fading usage is learnt
    assert "300 accounts" in out.out and "ROC-AUC" in out.out
    order = [out.out.index(s) for s in ("converted ", "test period: model vs baselines", f"model {version} ")]
    assert order == sorted(order)  # conversion, then the same comparison table as --events, then the model
    log = read_events(converted)  # the kept conversion is a valid churnwatch log: nothing left out
    assert log.stats.skipped == 0
    assert sum(1 for e in log.events if e.type == "churned") > 80
    assert {e.type for e in log.events if e.source == "interactions"} >= {"login", "page_view", "feature_use", "help_view"}

    # the backtest takes the same foreign log and mapping, and scores what the kept conversion gives
    mapping = ["--id-col", "account", "--time-col", "occurred_at", "--type-col", "action",
               "--type-map", "signin=login,view_dashboard=page_view", "--type-map", "export_report=feature_use,open_help=help_view"]
    at = ["--at", "2026-01-15,2026-03-01", "--models-dir", str(models), "--no-reasons"]
    assert cli.main(["score", "--usage", str(usage), "--churn", str(churn), *mapping, *at,
                     "--out", str(tmp_path / "from_usage.csv")]) == 0
    printed = capsys.readouterr().out
    assert "converted " in printed and "scored " in printed
    assert cli.main(["score", "--events", str(converted), *at, "--out", str(tmp_path / "from_events.csv")]) == 0
    from_usage = (tmp_path / "from_usage.csv").read_text().splitlines()
    assert len(from_usage) > 100 and from_usage == (tmp_path / "from_events.csv").read_text().splitlines()
    assert cli.main(["score", "--usage", str(usage), *at, "--out", str(tmp_path / "x.csv")]) == 2  # no churn source


def test_foreign_command_with_a_missing_column_is_one_line(tmp_path: Path, capsys) -> None:
    usage, churn = team_history(tmp_path, accounts=5, days=80)
    code = cli.main(["train", "--usage", str(usage), "--churn", str(churn), "--id-col", "account_no",
                     "--models-dir", str(tmp_path / "models"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "account_no" in err and "Traceback" not in err
    assert not (tmp_path / "models").exists() or Registry(tmp_path / "models").current() is None


# ---- who did it, what it was worth --------------------------------------------------------------
def test_user_and_value_columns(tmp_path: Path) -> None:
    """A bad optional cell costs only its field: the row still says the account was active."""
    usage = write_csv(tmp_path / "usage.csv", ["account", "occurred_at", "action", "who", "amount"], [
        ["a1", "2026-01-05 09:00:00", "signin", " u1 ", "12.5"],
        ["a1", "2026-01-06 09:00:00", "signin", "", ""],            # empty cells: no fields
        ["a1", "2026-01-07 09:00:00", "signin", "   ", "-3"],       # blank user; refunds may be negative
        ["a1", "2026-01-08 09:00:00", "signin", "42", "1,250.75"],  # thousands separator
        ["a1", "2026-01-09 09:00:00", "signin", "x" * 257, "n/a"],
        ["a1", "2026-01-10 09:00:00", "signin", "bad\x01id", "inf"],
        ["a1", "2026-01-11 09:00:00", "signin", "u2", "1e13"],
        ["a1", "2026-01-12 09:00:00", "signin", "u3", "-1e12"],     # the bound itself is allowed
    ])
    churn = write_csv(tmp_path / "churn.csv", ["account", "churn_date"], [["a1", "2026-01-11"]])
    mapping = dataclasses.replace(MAPPING, user_col="who", value_col="amount")
    stats = convert(usage, churn, tmp_path / "log.jsonl", mapping)
    inter = [r for r in lines(tmp_path / "log.jsonl") if r["source"] == "interactions"]
    assert [(r.get("user_id"), r.get("value")) for r in inter] == [
        ("u1", 12.5), (None, None), (None, -3.0), ("42", 1250.75), (None, None), (None, None), ("u2", None),
        ("u3", -1e12)]
    assert stats.interactions == 8 and not stats.usage_invalid
    assert stats.dropped == {"bad_user_id": 2, "value_not_a_number": 2, "value_out_of_range": 1}
    assert stats.examples["usage:value_not_a_number"] == ["usage.csv row 5: amount: 'n/a'",
                                                         "usage.csv row 6: amount: 'inf'"]
    assert "control characters" in stats.examples["usage:bad_user_id"][1]
    assert "value_out_of_range=1" in stats.summary()
    log = read_events(tmp_path / "log.jsonl")  # what was written passes the contract
    assert log.stats.skipped == 0
    assert [e.data.get("user_id") for e in log.events if e.source == "interactions"][:1] == ["u1"]


def test_user_and_value_columns_from_parquet(tmp_path: Path) -> None:
    """Integer user ids become digits (also when pandas made them floats); a NaN value is an empty cell."""
    t = [datetime(2026, 1, d, 9, tzinfo=UTC) for d in range(1, 5)]
    pq.write_table(pa.table({"account_id": ["p1"] * 4, "ts": pa.array(t, type=pa.timestamp("us", tz="UTC")),
                             "event": ["login"] * 4, "uid": pa.array([7, 8, None, 9], type=pa.int64()),
                             "uidf": [7.0, 8.5, 3.0, 9.0], "amount": [1.0, float("nan"), 2.0, None]}),
                   tmp_path / "usage.parquet")
    churn = write_csv(tmp_path / "churn.csv", ["account", "churn_date"], [["p1", "2026-01-03"]])
    stats = convert(tmp_path / "usage.parquet", churn, tmp_path / "a.jsonl", ForeignMapping(user_col="uid",
                                                                                          value_col="amount"))
    inter = [r for r in lines(tmp_path / "a.jsonl") if r["source"] == "interactions"]
    assert [(r.get("user_id"), r.get("value")) for r in inter] == [("7", 1.0), ("8", None), (None, 2.0), ("9", None)]
    assert stats.dropped == {}
    stats = convert(tmp_path / "usage.parquet", churn, tmp_path / "b.jsonl", ForeignMapping(user_col="uidf"))
    assert [r.get("user_id") for r in lines(tmp_path / "b.jsonl") if r["source"] == "interactions"] == \
        ["7", None, "3", "9"]
    assert stats.dropped == {"bad_user_id": 1}


def test_user_and_value_columns_must_exist(small: tuple[Path, Path], tmp_path: Path) -> None:
    usage, churn = small
    for field_name in ("user_col", "value_col"):
        with pytest.raises(ForeignLogError, match=r"usage\.csv: missing column 'nobody'"):
            convert(usage, churn, tmp_path / "x.jsonl", dataclasses.replace(MAPPING, **{field_name: "nobody"}))


# ---- type map targets and sources ---------------------------------------------------------------
def test_type_map_may_merge_the_products_own_types(small: tuple[Path, Path], tmp_path: Path) -> None:
    usage, churn = small
    mapping = dataclasses.replace(MAPPING, type_map={"signin": "login", "view_dashboard": "export_report"})
    stats = convert(usage, churn, tmp_path / "log.jsonl", mapping)
    assert stats.types == {"login": 4, "export_report": 2}
    assert not any("type map" in w for w in stats.warnings)


def test_type_map_target_that_exists_nowhere_is_refused(small: tuple[Path, Path], tmp_path: Path) -> None:
    usage, churn = small
    mapping = dataclasses.replace(MAPPING, type_map={"signin": "logn", "view_dashboard": "page_view"})
    with pytest.raises(ForeignLogError) as info:
        convert(usage, churn, tmp_path / "log.jsonl", mapping)
    message = str(info.value)
    assert "\n" not in message and "'signin'='logn'" in message and "did you mean 'login'" in message
    assert "valid targets: login, feature_use, page_view, help_view, purchase" in message
    assert "'export_report'" in message  # the log's own types are valid targets too
    assert "'view_dashboard'" not in message.split("valid targets")[0]  # a valid entry is not blamed
    assert not (tmp_path / "log.jsonl").exists() and not list(tmp_path.glob(".log.jsonl.*"))


def test_type_map_source_missing_from_the_log_is_a_warning(small: tuple[Path, Path], tmp_path: Path) -> None:
    usage, churn = small
    mapping = dataclasses.replace(MAPPING, type_map={"SignIn": "login", "sign_in": "login", "openhelp": "help_view"})
    stats = convert(usage, churn, tmp_path / "log.jsonl", mapping)
    unused = [w for w in stats.warnings if "type map" in w]
    assert len(unused) == 1 and "'sign_in', 'openhelp'" in unused[0] and "'SignIn'" not in unused[0]
    assert f"warning: {unused[0]}" in stats.summary().splitlines()


def test_bad_type_map_target_through_the_cli_is_exit_2_and_one_line(small: tuple[Path, Path], tmp_path: Path,
                                                                     capsys) -> None:
    usage, churn = small
    code = cli.main(["train", "--usage", str(usage), "--churn", str(churn), "--id-col", "account",
                     "--time-col", "occurred_at", "--type-col", "action", "--type-map", "signin=logn",
                     "--models-dir", str(tmp_path / "models"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "'signin'='logn'" in err and "valid targets: login, feature_use" in err


def test_cli_takes_user_and_value_columns() -> None:
    args = cli.build_parser().parse_args(["train", "--usage", "u.csv", "--churn", "c.csv", "--user-col", "member",
                                          "--value-col", "amount"])
    m = ForeignMapping.from_options(vars(args))
    assert (m.user_col, m.value_col) == ("member", "amount")


# ---- what the CLI prints around training --------------------------------------------------------
def test_conversion_summary_is_printed_when_training_fails(tmp_path: Path, capsys) -> None:
    usage, churn = team_history(tmp_path, accounts=5, days=80)
    code = cli.main(["train", "--usage", str(usage), "--churn", str(churn), "--id-col", "account",
                     "--time-col", "occurred_at", "--type-col", "action", "--type-map", "signin=login,nope=login",
                     "--churn-time-format", "%m/%d/%Y", "--models-dir", str(tmp_path / "models"), "--quiet"])
    out = capsys.readouterr()
    assert code == 2 and out.err.count("\n") == 1 and "Traceback" not in out.err  # training's own one-line error
    assert "converted " in out.out and "(5 accounts)" in out.out
    assert "warning: type map source 'nope' never occurs" in out.out


def test_conversion_summary_is_printed_before_a_training_crash(small: tuple[Path, Path], tmp_path: Path,
                                                               capsys, monkeypatch) -> None:
    import training.runs.from_log

    def crash(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("LightGBM fell over")

    monkeypatch.setattr(training.runs.from_log, "train_from_log", crash)
    usage, churn = small
    with pytest.raises(RuntimeError, match="LightGBM"):
        cli.main(["train", "--usage", str(usage), "--churn", str(churn), "--id-col", "account",
                  "--time-col", "occurred_at", "--type-col", "action", "--value-col", "plan_name",
                  "--models-dir", str(tmp_path / "models"), "--quiet"])
    out = capsys.readouterr().out
    assert out.startswith("converted 9 usage rows (3 accounts)") and "value_not_a_number=3" in out


def test_usage_path_prints_the_comparison_table(small: tuple[Path, Path], tmp_path: Path, capsys,
                                                monkeypatch) -> None:
    """The same table as ``--events`` (training itself is covered by the end-to-end test below)."""
    import training.runs.from_log
    from training.runs.from_log import TrainResult

    figures = {"roc_auc": 0.81, "pr_auc": 0.5, "lift_at_10": 3.2, "precision_at_10": 0.6}
    comparison = {"model": figures, "logreg": {**figures, "roc_auc": 0.7}, "counts_28d": {**figures, "roc_auc": 0.6}}

    def fake(path: Any, registry: Registry, **kwargs: Any) -> TrainResult:
        assert read_events(path).stats.skipped == 0
        return TrainResult(version="v9", promoted=False, registry_root=registry.root,
                           metrics={"test": {**figures, "rows": 10}}, thresholds={}, rows={},
                           timings={"replay_events_per_s": 1.0, "total_s": 1.0}, log_stats={"events": 10},
                           comparison=comparison)

    monkeypatch.setattr(training.runs.from_log, "train_from_log", fake)
    usage, churn = small
    code = cli.main(["train", "--usage", str(usage), "--churn", str(churn), "--id-col", "account",
                     "--time-col", "occurred_at", "--type-col", "action", "--type-map", "signin=login",
                     "--save-log", str(tmp_path / "log.jsonl"), "--models-dir", str(tmp_path / "models"), "--quiet"])
    out = capsys.readouterr().out
    assert code == 0
    converted, table, model = (out.index(s) for s in ("converted ", "test period: model vs baselines", "model v9"))
    assert converted < table < model
    assert "ROC-AUC" in out[table:model] and "0.810" in out[table:model]

    code = cli.main(["train", "--events", str(tmp_path / "log.jsonl"), "--models-dir", str(tmp_path / "models"),
                     "--quiet"])
    assert code == 0
    # table and model summary exactly as on the --events path, but for the conversion's share of the total
    usage_side = re.sub(r" \(of which conversion [0-9.]+s\)", "", out[table:])
    assert "of which conversion" in out[table:] and usage_side == capsys.readouterr().out


# ---- churn from inactivity (no churn table) -----------------------------------------------------
INACTIVE = ForeignMapping(id_col="account", time_col="occurred_at", type_col="action", inactive_days=30)


@pytest.fixture
def purchases(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "orders.csv", ["account", "occurred_at", "action"], [
        ["a", "2026-01-01 10:00:00", "buy"],
        ["a", "2026-01-03 10:00:00", "buy"],
        ["a", "2026-02-20 10:00:00", "buy"],  # 48 days after the last: a churn, then a win-back
        ["b", "2026-01-02 00:00:00", "buy"],  # never again: churned the day after
        ["c", "2026-04-20 00:00:00", "buy"],  # first seen within 30 days of as-of: nothing to label
        ["d", "2026-01-05 00:00:00", "buy"],
        ["d", "2026-04-01 00:00:00", "buy"],  # the win-back falls after the cut
        ["e", "2026-01-05 00:00:00", "buy"],
        ["e", "2026-02-01 00:00:00", "buy"],  # 27 days: no churn
        ["e", "2026-04-30 00:00:00", "buy"],  # the newest row: as-of
        ["f", "2026-03-20 00:00:00", "buy"],  # 41 days before as-of: a churn, though its gap runs past the cut
        ["g", "2026-03-25 00:00:00", "buy"],
        ["g", "2026-04-15 00:00:00", "buy"],  # within 30 days of as-of: censored, no churn
    ])


def test_inactivity_churn_is_dated_the_day_after_the_last_row(purchases: Path, tmp_path: Path) -> None:
    out = tmp_path / "log.jsonl"
    stats = convert(purchases, None, out, INACTIVE)
    records = lines(out)
    outcomes = [(r["customer_id"], r["type"], r["ts"]) for r in records if r["source"] == "outcomes"]
    assert outcomes == [
        ("b", "churned", "2026-01-03T00:00:00.000Z"),
        ("a", "churned", "2026-01-04T10:00:00.000Z"),
        ("d", "churned", "2026-01-06T00:00:00.000Z"),
        ("e", "churned", "2026-02-02T00:00:00.000Z"),  # its return on 04-30 is after the cut
        ("a", "renewed", "2026-02-20T10:00:00.000Z"),
        ("a", "churned", "2026-02-21T10:00:00.000Z"),
        ("f", "churned", "2026-03-21T00:00:00.000Z"),
    ]
    cut = "2026-03-31T00:00:00.000Z"  # as-of (the newest row) - 30 days: later rows only decide churns
    assert all(r["ts"] <= cut for r in records if r["source"] != "outcomes")
    assert {r["customer_id"] for r in records if r["source"] == "customers"} == {"a", "b", "d", "e", "f", "g"}
    assert stats.churned == 6 and stats.renewed == 1 and stats.interactions == 9 and stats.accounts == 6
    assert stats.dropped == {"usage_in_last_inactive_days": 4, "account_first_seen_in_last_inactive_days": 1,
                             "renewed_in_last_inactive_days": 2}
    assert stats.churn_path is None and stats.to_json()["labelled_until"] == cut
    first = stats.summary().splitlines()[0]
    assert first.startswith("converted 13 usage rows (6 accounts), churn = 30 days without usage, into ")
    assert "log written up to 2026-03-31 (the last 30 days only decide who churned)" in first
    assert not any("churned accounts keep using" in w for w in stats.warnings)
    log = read_events(out)
    assert log.stats.skipped == 0


def test_inactivity_respects_as_of(purchases: Path, tmp_path: Path) -> None:
    stats = convert(purchases, None, tmp_path / "log.jsonl", dataclasses.replace(INACTIVE, as_of="2026-03-01"))
    outcomes = [(r["customer_id"], r["type"], r["ts"][:10]) for r in lines(tmp_path / "log.jsonl")
                if r["source"] == "outcomes"]
    # cut 2026-01-30: a's win-back (02-20) and e's 27-day gap end after it; e's rows up to 01-05 are
    # followed by its 02-01 row, so only its own 27 days count and it has not churned
    assert outcomes == [("b", "churned", "2026-01-03"), ("a", "churned", "2026-01-04"),
                        ("d", "churned", "2026-01-06")]
    assert stats.dropped["usage_after_as_of"] == 6 and stats.labelled_until_ms == ms(2026, 1, 30)


def test_inactivity_labels_are_point_in_time(tmp_path: Path) -> None:
    """The dataset's labels come from the converted churns, and every label window it keeps is decided:
    the observation grid ends where N days of data still follow the label window."""
    from training.rows.dataset import DatasetConfig, build_dataset
    from training.rows.labels import labels_from_events

    rng = np.random.default_rng(3)
    start, days, n_days = datetime(2026, 1, 1), 200, 30
    rows, stop = [], {}
    for i in range(40):
        last = int(rng.integers(40, days)) if i % 2 else days - 1  # odd accounts stop using the product
        stop[f"acc{i}"] = last
        for d in range(0, last + 1):
            if d == last or rng.random() < 0.8:
                rows.append([f"acc{i}", (start + timedelta(days=d, hours=9)).strftime("%Y-%m-%d %H:%M:%S"), "use"])
    usage = write_csv(tmp_path / "usage.csv", ["account", "occurred_at", "action"], rows)
    out = tmp_path / "log.jsonl"
    stats = convert(usage, None, out, dataclasses.replace(INACTIVE, inactive_days=n_days))
    events = list(read_events(out).events)
    labels = labels_from_events(events)
    as_of = ms(2026, 1, 1) + (days - 1) * 86_400_000 + 9 * 3_600_000
    for cid, last in stop.items():
        last_ms = ms(2026, 1, 1) + last * 86_400_000 + 9 * 3_600_000
        if as_of - last_ms >= n_days * 86_400_000:
            assert labels.churns[cid] == [last_ms + 86_400_000]  # dated in the past of the gap
        else:
            assert cid not in labels.churns  # within N days of as-of: censored
    horizon = 14
    ds = build_dataset(events, DatasetConfig(horizon_days=horizon, cadence_days=7))
    assert ds.obs_ms.max() + horizon * 86_400_000 <= stats.labelled_until_ms + 86_400_000
    for cid, t, y in zip(ds.customer_ids, ds.obs_ms, ds.y):
        churn = labels.first_churn(cid)
        assert y == int(churn is not None and t < churn <= t + horizon * 86_400_000)
        assert churn is None or t < churn  # churned accounts leave the rows
    assert ds.y.sum() > 5


def test_inactivity_needs_exactly_one_source_of_churn(purchases: Path, small: tuple[Path, Path],
                                                      tmp_path: Path) -> None:
    _, churn = small
    with pytest.raises(ForeignLogError, match="not both"):
        convert(purchases, churn, tmp_path / "x.jsonl", INACTIVE)
    with pytest.raises(ForeignLogError, match="not neither"):
        convert(purchases, None, tmp_path / "x.jsonl", dataclasses.replace(INACTIVE, inactive_days=None))
    with pytest.raises(ForeignLogError, match=">= 1"):
        convert(purchases, None, tmp_path / "x.jsonl", dataclasses.replace(INACTIVE, inactive_days=0))
    with pytest.raises(ForeignLogError, match="spans 119 days, so --inactive-days 120 leaves no days"):
        convert(purchases, None, tmp_path / "x.jsonl", dataclasses.replace(INACTIVE, inactive_days=120))
    assert not list(tmp_path.glob("x.jsonl*")) and not list(tmp_path.glob(".x.jsonl.*"))


def test_inactivity_with_nobody_inactive_warns(tmp_path: Path) -> None:
    usage = write_csv(tmp_path / "u.csv", ["account", "occurred_at", "action"],
                      [["a", f"2026-01-{d:02d} 09:00:00", "use"] for d in range(1, 31)])
    stats = convert(usage, None, tmp_path / "log.jsonl", dataclasses.replace(INACTIVE, inactive_days=5))
    assert stats.churned == 0 and any("no account goes 5 days without usage" in w for w in stats.warnings)


def test_cli_takes_inactive_days() -> None:
    args = cli.build_parser().parse_args(["train", "--usage", "u.csv", "--inactive-days", "90"])
    assert args.churn is None and ForeignMapping.from_options(vars(args)).inactive_days == 90
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["train", "--usage", "u.csv", "--inactive-days", "0"])
