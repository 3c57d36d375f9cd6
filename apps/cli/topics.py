"""``churnwatch topics create|check``: churnwatch's topics, co-partitioned and replicated, made or checked."""

from __future__ import annotations

import argparse

from apps.cli.args import common_flags, partitions_flag
from apps.cli.inputs import connected_settings


def register(sub: argparse._SubParsersAction) -> None:
    sp = sub.add_parser("topics", help="create churnwatch's topics (co-partitioned, replicated), or check them")
    sp.add_argument("action", choices=["create", "check"],
                    help="create: create the missing topics; check: report partitions, replication factor, "
                         "min.insync.replicas and co-partitioning, exit 1 when something is wrong")
    partitions_flag(sp)
    common_flags(sp)
    sp.set_defaults(func=cmd_topics)


def cmd_topics(args: argparse.Namespace) -> int:
    from pipeline.kafka import topics

    settings, cluster = connected_settings(args)
    if args.action == "check":
        report = topics.check(settings, cluster)
        print("\n".join(topics.format_report(report)))
        return 0 if report.ok else 1
    created = topics.ensure_topics(settings, cluster)
    for name in created.created:
        spec = created.plan[name]
        print(f"created {name} ({_partitions(spec.partitions)}, replication factor {spec.replication_factor}, "
              f"{topics.MIN_ISR} {spec.configs[topics.MIN_ISR]})")
    for name, parts in sorted(created.existing.items()):
        print(f"exists  {name} ({_partitions(parts)})")
    return 0


def _partitions(n: int) -> str:
    return f"{n} partition{'s' if n != 1 else ''}"
