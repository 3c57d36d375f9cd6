"""How the ``churnwatch`` command line is parsed: the parser and help-formatter classes (a user mistake is
one line; every flag's help says its default), the argument types that refuse a bad value with one line
naming it, and the flag groups several subcommands share, so they read the same everywhere."""

from __future__ import annotations

import argparse
from typing import Any

from pipeline.config.settings import Settings


MAX_TS_MS = 4_102_444_800_000  # 2100-01-01


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line instead of usage + traceback
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every flag's help ends with its default: argparse's ``(default: X)`` unless the text says it
    already. On/off switches get none, and neither do flags whose default is None: their help says
    in words what happens without them (tests/unit/apps/cli/test_entry.py checks that every flag does)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.default is None or action.default is False \
                or action.default is argparse.SUPPRESS or action.nargs == 0 or action.required:
            return text
        return text + " (default: %(default)s)"


class SubcommandAction(argparse._SubParsersAction):
    """Subcommands whose --help starts with their one-line help and shows every flag's default."""

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        kwargs.setdefault("description", kwargs.get("help"))
        kwargs.setdefault("formatter_class", HelpFormatter)
        return super().add_parser(name, **kwargs)


_SETTING_DEFAULTS = dict(Settings.documented())


def env_help(name: str, text: str) -> str:
    """Help of a flag that overrides a setting: the variable it overrides and that one's default."""
    env = f"CHURNWATCH_{name.upper()}"
    default = _SETTING_DEFAULTS[env] or "none"
    return f"{text} (env {env}; default {default})".replace("%", "%%")


# ---- argument types -----------------------------------------------------------------------------
def timestamp(text: str) -> int:
    from pipeline.core.contract import InvalidEvent, Limits, parse_ts

    try:
        value = parse_ts(text) if not text.isdigit() else int(text)
    except (InvalidEvent, OverflowError, ValueError):
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO-8601 time or epoch ms") from None
    if not Limits().min_ts_ms <= value < MAX_TS_MS:
        raise argparse.ArgumentTypeError(f"{text!r} is outside 2000-01-01 .. 2100-01-01")
    return value


def bounded(cast: type, ok: Any, rule: str) -> Any:
    """An argparse type: ``cast(text)``, refused with "must be <rule>" unless ``ok(value)``."""
    noun = "an integer" if cast is int else "a number"

    def parse(text: str) -> Any:
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {noun}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"{text!r} must be {rule}")
        return value

    return parse


positive_int = bounded(int, lambda v: v > 0, "> 0")
non_negative_int = bounded(int, lambda v: v >= 0, ">= 0")
fraction = bounded(float, lambda v: 0.0 <= v <= 1.0, "between 0 and 1")
users_flag = bounded(float, lambda v: 1.0 <= v <= 50.0, "between 1 and 50")


_top_k = bounded(int, lambda v: 1 <= v <= 47, "within 1..47")
port_number = bounded(int, lambda v: 1 <= v <= 65535, "a port within 1..65535")


def speed_value(text: str) -> float | None:
    """``--speed``: simulated seconds per wall second, > 0; ``max`` (None) sends as fast as possible.
    0 and negative numbers are refused: they used to mean "as fast as possible" without saying so."""
    if text.strip().lower() == "max":
        return None
    return bounded(float, lambda v: 0 < v < float("inf"), "> 0 (or 'max': as fast as possible)")(text)


def _vocabulary(text: str) -> int:
    from devtools.simulator import VOCAB_MAX, VOCAB_MIN

    return bounded(int, lambda v: v == 0 or VOCAB_MIN <= v <= VOCAB_MAX, f"0 or within {VOCAB_MIN}..{VOCAB_MAX}")(text)


#: Flags whose value is a path: completed with file names by the shell completion.
_PATH_DESTS = frozenset({"out", "events", "usage", "churn", "spec", "models_dir", "save_log"})


# ---- flags shared by several subcommands --------------------------------------------------------
def common_flags(sp: argparse.ArgumentParser, broker: bool = True) -> None:
    if broker:
        sp.add_argument("--broker", metavar="URL", help=env_help("broker", "kafka://host:port[,kafka://host:port…]"))
    sp.add_argument("--models-dir", metavar="DIR", help=env_help("models_dir", "model registry directory"))


def partitions_flag(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--partitions", type=positive_int, metavar="N",
                    help=env_help("partitions", "partitions of every topic created"))


def input_flags(sp: argparse.ArgumentParser) -> None:
    """--events, or a foreign log (--usage with --churn or --inactive-days): train and score read either."""
    src = sp.add_argument_group("input (either --events, or --usage with --churn)")
    src.add_argument("--events", metavar="FILE",
                     help="churnwatch event log: JSONL, CSV/TSV (.gz) or Parquet (e.g. 'churnwatch export'); no "
                          "default: this or --usage")
    src.add_argument("--usage", metavar="FILE",
                     help="foreign usage log: account id, event time, event type (docs/foreign-logs.md); no "
                          "default: this or --events")
    src.add_argument("--churn", metavar="FILE",
                     help="foreign churn dates or subscriptions table, with --usage (no default: this or "
                          "--inactive-days)")
    src.add_argument("--inactive-days", type=positive_int, metavar="N",
                     help="instead of --churn: an account N days without usage churned, dated the day after its "
                          "last row (docs/foreign-logs.md; default: none, --churn decides)")


def mapping_flags(sp: argparse.ArgumentParser) -> None:
    fm = sp.add_argument_group("foreign-log mapping (docs/foreign-logs.md)")
    unread = "default: none, not read"
    for flag, helptext in (("--id-col", "usage account column (default account_id)"),
                           ("--time-col", "usage time column (default ts)"),
                           ("--type-col", "usage event-type column (default event)"),
                           ("--time-format", "strptime format of usage times (default: recognised)"),
                           ("--feature-col", f"usage column naming the product feature ({unread})"),
                           ("--duration-col", f"usage column with a duration in seconds ({unread})"),
                           ("--user-col", f"usage column naming the user within the account, user_id ({unread})"),
                           ("--value-col", f"numeric usage column with what the event was worth, value ({unread})"),
                           ("--churn-id-col", "churn table account column (default: --id-col if the table has it, "
                                              "else account, account_id, …)"),
                           ("--churn-date-col", "churn table date column (default churn_date)"),
                           ("--start-col", "subscriptions start column (default start)"),
                           ("--end-col", "subscriptions end column (default end)"),
                           ("--churn-time-format", "strptime format of churn dates (default: recognised)"),
                           ("--tier-col", "account tier column (default: none, every account 'standard')"),
                           ("--plan-col", f"account plan column ({unread})"),
                           ("--mrr-col", f"account MRR column ({unread})"),
                           ("--save-log", "keep the converted churnwatch event log (JSONL) here (default: a "
                                          "temporary file, removed)")):
        fm.add_argument(flag, help=helptext, **({"metavar": "FILE"} if flag == "--save-log" else {}))
    fm.add_argument("--type-map", action="append",
                    help="FROM=TO[,FROM=TO…] usage types onto login, feature_use, page_view, help_view, purchase, "
                         "or onto another type of the log; repeatable (default: none, every type kept as it is)")


def spec_flags(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--top-k", type=_top_k, default=16,
                    help="event types of the log that get features of their own, by volume (default 16)")
    sp.add_argument("--spec", metavar="FILE",
                    help="feature spec JSON file to use instead of learning one (docs/features.md; default: "
                         "learnt from the log)")


def split_flags(sp: argparse.ArgumentParser, command: str) -> None:
    """--train-until, --test-from and --as-of: the same split (training.fit.split.time_split) and the
    same cut of the log (training.data.asof) on train, dataset and evaluate."""
    if command == "evaluate":
        until = ("with --events: evaluate the test period 'train --train-until DATE' would have (placed by the "
                 "default fractions)")
        test = ("with --events: evaluate from this observation date on, instead of from the model's test period "
                "(not earlier, unless --period all; default: the model's test period)")
    else:
        until = "last observation date to train on (default: the first 60 %% of the dates)"
        test = "first observation date of the test period (default: the last 20 %%)"
        if command == "dataset":
            until += "; with it or --test-from the rows get a period column (train/validation/test/purge)"
    sp.add_argument("--train-until", help=until)
    sp.add_argument("--test-from", help=test)
    sp.add_argument("--as-of", help="treat the log as exported at this time: later events are ignored and labels "
                                    "censored there" + (" (with --usage: the conversion's 'now', default the "
                                                        "newest usage time)" if command == "train" else
                                                        " (default: the whole log)"))


def label_delay_flag(sp: argparse.ArgumentParser) -> None:
    """--label-delay-days of train and dataset: both label alike."""
    sp.add_argument("--label-delay-days", type=non_negative_int, default=0, metavar="D",
                    help="a churn is known only D days after its date (inactivity churn of a converted log: its "
                         "--inactive-days; set for you with --usage --inactive-days); default 0")
