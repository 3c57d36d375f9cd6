"""``churnwatch alerts``: alerts from the alert topic printed as they arrive, readable or as JSON lines,
optionally only some tiers or CSMs' customers."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from apps.cli.args import common_flags
from apps.cli.inputs import connected_settings


def register(sub: argparse._SubParsersAction) -> None:
    sp = sub.add_parser("alerts", help="print alerts from the alert topic as they arrive")
    sp.add_argument("--new", action="store_true", help="only alerts arriving from now on (default: from the beginning)")
    sp.add_argument("--json", action="store_true",
                    help="one JSON object a line, each alert as it is on the topic (default: readable lines)")
    sp.add_argument("--tier", action="append", metavar="TIER[,TIER…]",
                    help="only alerts of these tiers; repeat or separate by commas (default: every tier)")
    sp.add_argument("--csm", action="append", metavar="CSM[,CSM…]",
                    help="only alerts of customers of these CSMs, '-' for customers without one; repeat or "
                         "separate by commas (default: every CSM)")
    common_flags(sp)
    sp.set_defaults(func=cmd_alerts)


def cmd_alerts(args: argparse.Namespace) -> int:
    import orjson
    from rich.console import Console

    from apps.console import matches, print_alert, split_values
    from pipeline.kafka.feed import follow_raw

    tiers, csms = split_values(args.tier), split_values(args.csm)
    settings, _ = connected_settings(args)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    # wrapped at the terminal's width on a terminal; in a pipe or a file one alert line stays one line
    console = Console(soft_wrap=not sys.stdout.isatty())
    for raw, alert in follow_raw(settings, settings.alerts_topic, stop, from_beginning=not args.new):
        if not matches(alert, tiers, csms):
            continue
        if args.json:  # the record as on the topic, one a line
            line = raw if b"\n" not in raw else orjson.dumps(alert)
            sys.stdout.write(line.decode("utf-8", "replace") + "\n")
        elif isinstance(alert, dict):
            print_alert(console, alert)
        sys.stdout.flush()  # a reader at the other end of a pipe sees each alert as it comes
    return 0
