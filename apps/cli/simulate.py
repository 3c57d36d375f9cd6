"""``churnwatch simulate``: a simulated customer population's events, produced to Kafka or written to
an event log (JSONL, CSV or Parquet)."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from apps.cli.args import (common_flags, fraction, partitions_flag, positive_int, speed_value, timestamp, users_flag,
                           _vocabulary)
from apps.cli.errors import UserError
from apps.cli.inputs import connected_settings


def register(sub: argparse._SubParsersAction) -> None:
    sp = sub.add_parser("simulate", help="generate a simulated customer population's events")
    sp.add_argument("--customers", type=positive_int, default=1000, help="customers simulated")
    sp.add_argument("--days", type=positive_int, default=180, help="days simulated")
    sp.add_argument("--start", type=timestamp, help="first simulated day (ISO-8601 or epoch ms; default: DAYS before now)")
    sp.add_argument("--seed", type=int, default=7, help="random seed: equal seeds and flags give equal events")
    sp.add_argument("--churn-rate", type=fraction, default=0.25,
                    help="share of customers who churn within the simulated days")
    sp.add_argument("--bad-rate", type=fraction, default=0.0,
                    help="share of malformed records mixed in (JSONL output or Kafka only)")
    sp.add_argument("--vocabulary", type=_vocabulary, default=0,
                    help="0: the fixed login/feature_use/... vocabulary; 8..25: a foreign product with that many "
                         "event types of its own, multi-user accounts and churn at renewals (docs/simulator.md)")
    sp.add_argument("--annual-share", type=fraction, help="share of annual contracts (default: the per-plan mix)")
    sp.add_argument("--users-per-account", type=users_flag,
                    help="mean users per account, with --vocabulary only (default 3.5)")
    sp.add_argument("--out", metavar="FILE",
                    help="write an event log instead of producing to Kafka; the format follows the suffix: "
                         ".jsonl, .jsonl.gz, .csv, .csv.gz or .parquet (default: produce to Kafka)")
    sp.add_argument("--speed", type=speed_value, default="max", metavar="X|max",
                    help="when producing: simulated seconds per wall second (86400: a day a second), > 0; "
                         "'max': as fast as possible (default: max)")
    sp.add_argument("--quiet", action="store_true", help="no progress bar (there is none unless stderr is a terminal)")
    partitions_flag(sp)
    common_flags(sp)
    sp.set_defaults(func=cmd_simulate)


def _out_format(path_text: str) -> str:
    """The event-log format an ``--out`` name asks for (``jsonl``, ``csv``, ``parquet``), checked with
    its directory before any work; an unknown suffix is one line listing the known ones."""
    from training.data.logwriter import log_format
    from training.data.readers import LogFormatError

    try:
        fmt = log_format(path_text)
    except LogFormatError as exc:
        raise UserError(f"--out {exc}") from None
    parent = Path(path_text).parent
    if not parent.is_dir():
        raise UserError(f"--out {path_text}: directory {parent} does not exist")
    return fmt


def cmd_simulate(args: argparse.Namespace) -> int:
    from apps.bars import Bars, wanted
    from devtools import simulator

    extra = {} if args.users_per_account is None else {"users_per_account": args.users_per_account}
    if extra and not args.vocabulary:
        raise UserError("--users-per-account needs --vocabulary N (the fixed vocabulary has no users)")
    fmt = _out_format(args.out) if args.out else None
    if fmt not in (None, "jsonl") and args.bad_rate:
        raise UserError("--bad-rate mixes in malformed records, which only a JSONL log can hold: "
                        "use --out with .jsonl or .jsonl.gz")
    cfg = simulator.SimConfig(customers=args.customers, days=args.days, start_ms=args.start, seed=args.seed,
                              churn_rate=args.churn_rate, bad_rate=args.bad_rate, vocabulary=args.vocabulary,
                              annual_share=args.annual_share, **extra)
    settings = None
    if not args.out:
        from pipeline.kafka.topics import ensure_topics

        settings, cluster = connected_settings(args)
        ensure_topics(settings, cluster)
    with Bars(wanted(args.quiet)) as bars:
        records = simulator.simulate(cfg, progress=bars.report)
        if args.out:
            if fmt == "jsonl":
                counts = simulator.write_jsonl(records, Path(args.out))
            else:
                from training.data.logwriter import write_table_log

                counts = dict(write_table_log(({"source": r.source, **r.value} for r in records), Path(args.out),
                                              progress=bars.report))
            bars.stop()
            print(f"wrote {sum(counts.values())} records to {args.out} ({fmt}): "
                  + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
            return 0
        from devtools.producer import produce

        stop = threading.Event()
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        stats = produce(records, settings, speed=args.speed, stop=stop)
    print(f"sent {stats.sent} records to {settings.broker}: " + ", ".join(f"{k}={v}" for k, v in sorted(stats.by_source.items())))
    return 0
