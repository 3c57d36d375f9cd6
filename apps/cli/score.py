"""``churnwatch score``: every customer batch-scored at chosen times, point in time, by a registry model
(a backtest, or the book of business today), from an event log or a converted foreign log."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from apps.cli.args import common_flags, input_flags, mapping_flags
from apps.cli.errors import UserError
from apps.cli.inputs import log_inputs, registry_of, settings_of, parse_times


def register(sub: argparse._SubParsersAction) -> None:
    sp = sub.add_parser("score", help="batch-score every customer at chosen times, point in time (backtest, book of business)")
    sp.add_argument("version", nargs="?", help="registry version (default: the current one)")
    input_flags(sp)
    sp.add_argument("--at", required=True, help="times to score at, comma separated (ISO-8601 or epoch ms): "
                                                "every customer seen before and not churned by then, from the events before it")
    sp.add_argument("--out", required=True, help="output .csv, .csv.gz or .parquet")
    sp.add_argument("--no-reasons", action="store_true", help="skip the top reasons (faster on big populations)")
    mapping_flags(sp)
    common_flags(sp, broker=False)
    sp.set_defaults(func=cmd_score)


def cmd_score(args: argparse.Namespace) -> int:
    source, usage, churn = log_inputs(args)
    times = parse_times(args.at)
    if not Path(args.out).parent.is_dir() or not args.out.lower().endswith((".parquet", ".csv", ".csv.gz")):
        raise UserError(f"--out {args.out}: scores are written as .parquet, .csv or .csv.gz into an existing directory")
    from pipeline.config.policy_file import load_policy
    from pipeline.core.alerting import AlertConfig
    from pipeline.model.scoring import load_version

    settings = settings_of(args)
    reg = registry_of(args)
    version = args.version or reg.current()
    if version is None:
        raise UserError(f"no model in {reg.root}: train one, or name a VERSION")
    model = load_version(reg, version, timeout_s=settings.model_check_timeout_s, feature_cfg=settings.feature_config())
    policy: AlertConfig = load_policy(settings.policy_file).alerts
    if source is not None:
        return _score_log(args, source, model, version, times, settings, policy)
    import tempfile

    from training.data.foreign.convert import convert
    from training.data.foreign.mapping import ForeignMapping

    with tempfile.TemporaryDirectory(prefix="churnwatch-foreign-") as tmp:
        converted = Path(args.save_log) if args.save_log else Path(tmp) / "converted.jsonl"
        stats = convert(usage, churn, converted, ForeignMapping.from_options(vars(args)))
        stats.temporary = not args.save_log
        print(stats.summary(), flush=True)
        return _score_log(args, converted, model, version, times, settings, policy)


def _score_log(args: argparse.Namespace, source: Path, model: Any, version: str, times: list[int],
               settings: Any, policy: Any) -> int:
    from training.assess.backtest import score_log, write_scores
    from training.data.eventlog import read_events
    from training.rows.labels import labels_from_events

    with read_events(source) as log:
        if not log.events:
            raise UserError(f"{source}: no valid events ({log.stats.skipped} invalid records)")
        scored = score_log(log.events, model, times, feature_cfg=settings.feature_config(), policy=policy,
                           reasons=0 if args.no_reasons else 3, labels=labels_from_events(log.outcomes))
        skipped = log.stats.skipped
    fmt = write_scores(scored, args.out, version)
    bands = {b: scored.bands.count(b) for b in ("critical", "high", "low")}
    print(f"scored {len(scored):,} customer-times at {len(set(times))} time(s) with model {version}: "
          f"{bands['critical']:,} critical, {bands['high']:,} high, {bands['low']:,} low; wrote {args.out} ({fmt}); "
          f"{skipped} invalid records skipped")
    return 0
