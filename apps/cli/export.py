"""``churnwatch export``: the input topics dumped to an event log (JSONL, .jsonl.gz or Parquet) that
``train``, ``dataset`` and ``score`` read."""

from __future__ import annotations

import argparse
from pathlib import Path

from apps.cli.args import common_flags
from apps.cli.inputs import connected_settings


def register(sub: argparse._SubParsersAction) -> None:
    sp = sub.add_parser("export", help="dump the input topics to an event log (JSONL, .jsonl.gz or Parquet)")
    sp.add_argument("--out", required=True, metavar="FILE",
                    help="output file; the format follows the suffix: .jsonl, .jsonl.gz or .parquet")
    sp.add_argument("--format", choices=["jsonl", "parquet"],
                    help="force a format, which must agree with the suffix (default: from the suffix)")
    sp.add_argument("--quiet", action="store_true",
                    help="no progress bars (there are none unless stderr is a terminal)")
    common_flags(sp)
    sp.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from apps.bars import Bars, wanted
    from training.data.export import export_topics, output_format

    output_format(Path(args.out), args.format)  # a bad name fails before the connection
    settings, _ = connected_settings(args)
    with Bars(wanted(args.quiet)) as bars:
        stats = export_topics(settings, args.out, args.format, progress=bars.report)
    print(stats.summary())
    return 0
