"""``churnwatch demo``: everything on an embedded broker — model, worker, live stream, alerts (the run
itself is :mod:`apps.demo`)."""

from __future__ import annotations

import argparse
import os

from apps.cli.args import bounded, common_flags
from apps.cli.inputs import settings_of


def register(sub: argparse._SubParsersAction) -> None:
    sp = sub.add_parser("demo", help="everything on an embedded broker: model, worker, live stream, alerts")
    sp.add_argument("--seconds", type=bounded(float, lambda v: v > 0, "> 0"),
                    help="stop after this many seconds (env DEMO_SECONDS; default: run until Ctrl-C)")
    common_flags(sp)
    sp.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from apps.demo import run_demo

    seconds = args.seconds if args.seconds is not None else (float(os.environ["DEMO_SECONDS"]) if os.environ.get("DEMO_SECONDS") else None)
    return run_demo(settings_of(args), seconds=seconds)
