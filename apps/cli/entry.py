"""The ``churnwatch`` command line: the parser of every subcommand and :func:`main`, which runs the one
asked for. Every subcommand reads the same :class:`Settings` (environment variables) and lets flags
override them; user mistakes end in one line on stderr and exit code 2.

Each subcommand is a module of this package with ``register(sub)`` (its flags) and ``cmd_<name>(args)``;
only ``completion`` lives here, beside the parser it walks."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Callable, Sequence

from apps.cli import (alerts, broker, config, dataset, demo, evaluate, export, inbox, models, score, simulate,
                      topics, train, worker)
from apps.cli.args import HelpFormatter, Parser, _PATH_DESTS, SubcommandAction
from apps.cli.errors import known_errors
from apps.cli.inputs import settings_of

#: The subcommand modules, in the order ``churnwatch --help`` lists them (``completion`` comes last).
COMMANDS = (broker, topics, simulate, worker, train, dataset, export, inbox, evaluate, score, models, alerts,
            demo, config)


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("churnwatch")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def cmd_completion(args: argparse.Namespace) -> int:
    from apps.completion import script

    sys.stdout.write(script(args.shell, build_parser(), _PATH_DESTS))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="churnwatch", description="Streaming churn early warning on Kafka.",
                formatter_class=HelpFormatter)
    p.add_argument("--version", action="version", version=f"churnwatch {_version()}",
                   help="print the version and exit")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser, action=SubcommandAction,
                           metavar="COMMAND")
    for command in COMMANDS:
        command.register(sub)

    sp = sub.add_parser("completion", help="print a shell completion script (bash, zsh or fish)")
    sp.add_argument("shell", choices=["bash", "zsh", "fish"],
                    help="the shell; e.g. 'source <(churnwatch completion bash)' (README: installing it for good)")
    sp.set_defaults(func=cmd_completion)
    return p


#: Commands that spool an event log to a temporary directory (training.data.spool): stopped by SIGTERM, they
#: unwind like Ctrl-C, so the spool is removed instead of left in $TMPDIR.
_OFFLINE = frozenset({"train", "dataset", "score", "evaluate", "export"})


def _interrupt_on_sigterm() -> Callable[[], None]:
    """SIGTERM raises KeyboardInterrupt until the returned function restores the previous handler."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def _raise(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _raise)
    return lambda: signal.signal(signal.SIGTERM, previous)


def _silence_stdout() -> None:
    """stdout onto /dev/null, so the interpreter's final flush into a closed pipe does not complain."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):  # not a real file (tests): nothing will be flushed to a pipe
        pass


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    restore = _interrupt_on_sigterm() if args.command in _OFFLINE else (lambda: None)
    try:
        # every command reads the same settings: a bad or misspelt CHURNWATCH_* variable stops any of
        # them at once (exit 2, one line), not after a long run or only in the commands that use it
        settings_of(args)
        return func(args) or 0
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `churnwatch alerts | head`: the reader has what it wanted; no message
        _silence_stdout()
        return 141
    except known_errors() as exc:
        print(f"churnwatch {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"churnwatch {args.command}: error: {exc.strerror or exc}: {getattr(exc, 'filename', '') or ''}".rstrip(": "), file=sys.stderr)
        return 2
    finally:
        restore()
