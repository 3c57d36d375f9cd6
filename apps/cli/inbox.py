"""``churnwatch inbox``: the CSM inbox page (open alerts, acknowledge) served from the alert topic
(the page itself is :mod:`apps.inbox`)."""

from __future__ import annotations

import argparse

from apps.cli.args import _common, _port
from apps.cli.inputs import _connected, _listenable, _settings


def register(sub: argparse._SubParsersAction) -> None:
    sp = sub.add_parser("inbox", help="serve the CSM inbox page (open alerts, acknowledge) from the alert topic")
    sp.add_argument("--host", default="127.0.0.1",
                    help="listen address (default loopback; any other needs CHURNWATCH_INBOX_TOKEN or "
                         "CHURNWATCH_TRUSTED_USER_HEADER)")
    sp.add_argument("--port", type=_port, default=8088, help="listen port")
    _common(sp)
    sp.set_defaults(func=cmd_inbox)


def cmd_inbox(args: argparse.Namespace) -> int:
    from apps.inbox.server import run_inbox
    from pipeline.web.webauth import check_bind

    check_bind(_settings(args), args.host, "inbox")  # before the broker is contacted
    _listenable(args.host, args.port, "--port")
    settings, _ = _connected(args)
    run_inbox(settings, host=args.host, port=args.port)
    return 0
