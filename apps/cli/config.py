"""``churnwatch config``: the effective settings, each beside its environment variable and default
(secrets masked)."""

from __future__ import annotations

import argparse

from apps.cli.args import common_flags
from apps.cli.inputs import settings_of
from pipeline.config.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    sp = sub.add_parser("config", help="show the effective settings and their environment variables")
    common_flags(sp)
    sp.set_defaults(func=cmd_config)


def cmd_config(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    for env, default in Settings.documented():
        name = env[len("CHURNWATCH_"):].lower()
        print(f"{env:36} = {settings.shown(name) or '-':30} (default {default or '-'})")
    return 0
