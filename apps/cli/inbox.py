"""``churnwatch inbox``: the CSM inbox page (open alerts, acknowledge) served from the alert topic
(the page itself is :mod:`apps.inbox`)."""

from __future__ import annotations

import argparse

from apps.cli.args import common_flags, port_number
from apps.cli.inputs import connected_settings, listenable, settings_of


def register(sub: argparse._SubParsersAction) -> None:
    sp = sub.add_parser("inbox", help="serve the CSM inbox page (open alerts, acknowledge) from the alert topic")
    sp.add_argument("--host", default="127.0.0.1",
                    help="listen address (default loopback; any other needs CHURNWATCH_INBOX_TOKEN or "
                         "CHURNWATCH_TRUSTED_USER_HEADER)")
    sp.add_argument("--port", type=port_number, default=8088, help="listen port")
    common_flags(sp)
    sp.set_defaults(func=cmd_inbox)


def cmd_inbox(args: argparse.Namespace) -> int:
    from apps.inbox.server import run_inbox
    from pipeline.web.webauth import check_bind

    check_bind(settings_of(args), args.host, "inbox")  # before the broker is contacted
    listenable(args.host, args.port, "--port")
    settings, _ = connected_settings(args)
    run_inbox(settings, host=args.host, port=args.port)
    return 0
