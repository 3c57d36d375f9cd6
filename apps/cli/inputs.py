"""What a subcommand makes of its parsed arguments: the settings (flags over the environment), the
cluster and the model registry they name, the input files, times and feature spec — each refused with
one line (:class:`UserError`) when it cannot be used, before any heavy import or long work."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from apps.cli.errors import UserError
from pipeline.config.settings import Settings


def settings_of(args: argparse.Namespace) -> Settings:
    overrides = {
        "broker": getattr(args, "broker", None),
        "partitions": getattr(args, "partitions", None),
        "metrics_port": getattr(args, "metrics_port", None),
        "web_port": getattr(args, "web_port", None),
        "models_dir": Path(args.models_dir) if getattr(args, "models_dir", None) else None,
        "emit_scores": True if getattr(args, "emit_scores", False) else None,
        "log_level": getattr(args, "log_level", None),
        "log_format": getattr(args, "log_format", None),
    }
    return Settings.from_env(**overrides)


def connected_settings(args: argparse.Namespace) -> tuple[Settings, Any]:
    """The settings and the cluster they reach: a command that talks to the broker checks first that it
    can (CHURNWATCH_CONNECT_TIMEOUT_S), so a wrong address, protocol or password fails in one line."""
    from pipeline.kafka.connection import check_connection

    settings = settings_of(args)
    return settings, check_connection(settings)


def registry_of(args: argparse.Namespace):  # -> pipeline.model.registry.Registry
    from pipeline.model.registry import Registry

    return Registry(settings_of(args).models_dir)


def listenable(host: str, port: int, change: str) -> None:
    """Stop with one line saying what to ``change`` (flag, variable) when ``host:port`` cannot be listened on."""
    from apps.ports import bind_problem, shown

    problem = bind_problem(host, port)
    if problem is not None:
        raise UserError(f"cannot listen on {shown(host, port)}: {problem}; choose another port with {change}")


def existing_path(path_text: str, what: str) -> Path:
    path = Path(path_text)
    if not path.is_file():
        raise UserError(f"{what} {path} not found")
    return path


def log_inputs(args: argparse.Namespace) -> tuple[Path | None, Path | None, Path | None]:
    """(event log, usage log, churn table) as given, checked before any heavy import."""
    if bool(args.events) == bool(args.usage or args.churn or args.inactive_days):
        raise UserError("give either --events LOG, or --usage FILE with --churn FILE or --inactive-days N (a foreign log)")
    if args.events:
        return existing_path(args.events, "event log"), None, None
    if not args.usage or bool(args.churn) == bool(args.inactive_days):
        raise UserError("a foreign log needs --usage FILE and either --churn FILE or --inactive-days N")
    return None, existing_path(args.usage, "usage log"), existing_path(args.churn, "churn table") if args.churn else None


def parse_times(text: str, flag: str = "--at") -> list[int]:
    """``--at 2026-05-01,2026-06-01T12:00:00Z``: ISO-8601 or epoch ms, comma separated."""
    from pipeline.core.contract import InvalidEvent, parse_ts

    out = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            out.append(parse_ts(int(part) if part.isdigit() else part, flag))
        except InvalidEvent as exc:
            raise UserError(f"{flag}: {exc.detail}") from None
    if not out:
        raise UserError(f"{flag} needs one or more times, e.g. {flag} 2026-05-01")
    return out


def _one_time(text: str | None, flag: str) -> int | None:
    if not text:
        return None
    times = parse_times(text, flag)
    if len(times) != 1:
        raise UserError(f"{flag} takes one date, e.g. {flag} 2026-05-01")
    return times[0]


def split_times(args: argparse.Namespace, as_of: bool = True) -> dict[str, int | None]:
    """``--train-until``, ``--test-from`` and ``--as-of`` as epoch ms (None where not given); a date
    that does not parse is a one-line error. (A foreign log's ``--as-of`` is read by its conversion,
    in the formats its times may have: ``as_of=False`` leaves it out.)"""
    out = {"train_until_ms": _one_time(args.train_until, "--train-until"),
           "test_from_ms": _one_time(args.test_from, "--test-from")}
    if as_of:
        out["as_of_ms"] = _one_time(args.as_of, "--as-of")
    return out


def feature_spec_of(args: argparse.Namespace) -> Any:
    """``--spec FILE`` as a :class:`pipeline.core.spec.FeatureSpec` (None: learn one from the log)."""
    path = getattr(args, "spec", None)
    if not path:
        return None
    import orjson

    from pipeline.core.spec import FeatureSpec, SpecError

    try:
        raw = orjson.loads(Path(path).read_bytes())
    except OSError as exc:
        raise UserError(f"--spec {path}: {exc.strerror or exc}") from None
    except orjson.JSONDecodeError as exc:
        raise UserError(f"--spec {path}: not JSON ({exc})") from None
    try:
        return FeatureSpec.from_json(raw.get("feature_spec", raw) if isinstance(raw, dict) else raw)
    except SpecError as exc:
        raise UserError(f"--spec {path}: {exc}") from None


def dataset_config_of(args: argparse.Namespace, **overrides: Any) -> Any:
    """Dataset settings of ``train``/``dataset``: the feature settings come from the settings object,
    the same one the worker reads, so a model and the worker it is promoted to agree on them."""
    from training.rows.dataset import DatasetConfig

    values = dict(cadence_days=args.cadence_days, horizon_days=args.horizon_days,
                  label_delay_days=getattr(args, "label_delay_days", None) or 0,
                  features=settings_of(args).feature_config(), **overrides)
    return DatasetConfig(**values)
