"""``churnwatch broker``: the embedded Kafka-protocol broker (Tansu) on loopback, until Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import threading

from apps.cli.args import port_number


def register(sub: argparse._SubParsersAction) -> None:
    sp = sub.add_parser("broker", help="run the embedded Kafka-protocol broker (Tansu) on loopback")
    sp.add_argument("--port", type=port_number, help="port to listen on (default: a free one)")
    sp.set_defaults(func=cmd_broker)


def _wait_for_signal() -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()


def cmd_broker(args: argparse.Namespace) -> int:
    from devtools.broker import EmbeddedBroker

    broker = EmbeddedBroker(port=args.port or 0).start()
    print(f"churnwatch: embedded broker listening on {broker.url} (pid {broker.pid}); Ctrl-C stops it", flush=True)
    print(f"export CHURNWATCH_BROKER={broker.url}", flush=True)
    try:
        _wait_for_signal()
    finally:
        broker.stop()
    return 0
