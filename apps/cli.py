"""The ``churnwatch`` command line. Every subcommand reads the same :class:`Settings` (environment
variables) and lets flags override them; user mistakes end in one line on stderr and exit code 2."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Sequence

from pipeline.config.fields import SettingsError
from pipeline.config.settings import Settings


MAX_TS_MS = 4_102_444_800_000  # 2100-01-01


class UserError(Exception):
    """Something the user can fix; printed as one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line instead of usage + traceback
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every flag's help ends with its default: argparse's ``(default: X)`` unless the text says it
    already. On/off switches get none, and neither do flags whose default is None: their help says
    in words what happens without them (tests/unit/apps/test_cli.py checks that every flag does)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.default is None or action.default is False \
                or action.default is argparse.SUPPRESS or action.nargs == 0 or action.required:
            return text
        return text + " (default: %(default)s)"


class _Subcommands(argparse._SubParsersAction):
    """Subcommands whose --help starts with their one-line help and shows every flag's default."""

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        kwargs.setdefault("description", kwargs.get("help"))
        kwargs.setdefault("formatter_class", _HelpFormatter)
        return super().add_parser(name, **kwargs)


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("churnwatch")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


_SETTING_DEFAULTS = dict(Settings.documented())


def _env_help(name: str, text: str) -> str:
    """Help of a flag that overrides a setting: the variable it overrides and that one's default."""
    env = f"CHURNWATCH_{name.upper()}"
    default = _SETTING_DEFAULTS[env] or "none"
    return f"{text} (env {env}; default {default})".replace("%", "%%")


def _settings(args: argparse.Namespace) -> Settings:
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


def _connected(args: argparse.Namespace) -> tuple[Settings, Any]:
    """The settings and the cluster they reach: a command that talks to the broker checks first that it
    can (CHURNWATCH_CONNECT_TIMEOUT_S), so a wrong address, protocol or password fails in one line."""
    from pipeline.kafka.connection import check_connection

    settings = _settings(args)
    return settings, check_connection(settings)


def _ts(text: str) -> int:
    from pipeline.core.contract import InvalidEvent, Limits, parse_ts

    try:
        value = parse_ts(text) if not text.isdigit() else int(text)
    except (InvalidEvent, OverflowError, ValueError):
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO-8601 time or epoch ms") from None
    if not Limits().min_ts_ms <= value < MAX_TS_MS:
        raise argparse.ArgumentTypeError(f"{text!r} is outside 2000-01-01 .. 2100-01-01")
    return value


def _bounded(cast: type, ok: Any, rule: str) -> Any:
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


_positive_int = _bounded(int, lambda v: v > 0, "> 0")
_non_negative_int = _bounded(int, lambda v: v >= 0, ">= 0")
_fraction = _bounded(float, lambda v: 0.0 <= v <= 1.0, "between 0 and 1")
_users = _bounded(float, lambda v: 1.0 <= v <= 50.0, "between 1 and 50")


_top_k = _bounded(int, lambda v: 1 <= v <= 47, "within 1..47")
_port = _bounded(int, lambda v: 1 <= v <= 65535, "a port within 1..65535")


def _speed(text: str) -> float | None:
    """``--speed``: simulated seconds per wall second, > 0; ``max`` (None) sends as fast as possible.
    0 and negative numbers are refused: they used to mean "as fast as possible" without saying so."""
    if text.strip().lower() == "max":
        return None
    return _bounded(float, lambda v: 0 < v < float("inf"), "> 0 (or 'max': as fast as possible)")(text)


#: Flags whose value is a path: completed with file names by the shell completion.
_PATH_DESTS = frozenset({"out", "events", "usage", "churn", "spec", "models_dir", "save_log"})


def _feature_spec(args: argparse.Namespace) -> Any:
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


def _dataset_config(args: argparse.Namespace, **overrides: Any) -> Any:
    """Dataset settings of ``train``/``dataset``: the feature settings come from the settings object,
    the same one the worker reads, so a model and the worker it is promoted to agree on them."""
    from training.rows.dataset import DatasetConfig

    values = dict(cadence_days=args.cadence_days, horizon_days=args.horizon_days,
                  label_delay_days=getattr(args, "label_delay_days", None) or 0,
                  features=_settings(args).feature_config(), **overrides)
    return DatasetConfig(**values)


def _vocabulary(text: str) -> int:
    from devtools.simulator import VOCAB_MAX, VOCAB_MIN

    return _bounded(int, lambda v: v == 0 or VOCAB_MIN <= v <= VOCAB_MAX, f"0 or within {VOCAB_MIN}..{VOCAB_MAX}")(text)


def _wait_for_signal() -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()


# ---- subcommands --------------------------------------------------------------------------------
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


def cmd_topics(args: argparse.Namespace) -> int:
    from pipeline.kafka import topics

    settings, cluster = _connected(args)
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


def _out_format(path_text: str) -> str:
    """The event-log format an ``--out`` name asks for (``jsonl``, ``csv``, ``parquet``), checked with
    its directory before any work; an unknown suffix is one line listing the known ones."""
    from training.data.logwriter import log_format
    from training.data.readers import LogFormatError

    try:
        fmt = log_format(path_text)
    except LogFormatError as exc:
        raise UserError(f"--out {exc}") from None
    parent = Path(path_text).parent
    if not parent.is_dir():
        raise UserError(f"--out {path_text}: directory {parent} does not exist")
    return fmt


def cmd_simulate(args: argparse.Namespace) -> int:
    from devtools import simulator
    from apps.bars import Bars, wanted

    extra = {} if args.users_per_account is None else {"users_per_account": args.users_per_account}
    if extra and not args.vocabulary:
        raise UserError("--users-per-account needs --vocabulary N (the fixed vocabulary has no users)")
    fmt = _out_format(args.out) if args.out else None
    if fmt not in (None, "jsonl") and args.bad_rate:
        raise UserError("--bad-rate mixes in malformed records, which only a JSONL log can hold: "
                        "use --out with .jsonl or .jsonl.gz")
    cfg = simulator.SimConfig(customers=args.customers, days=args.days, start_ms=args.start, seed=args.seed,
                              churn_rate=args.churn_rate, bad_rate=args.bad_rate, vocabulary=args.vocabulary,
                              annual_share=args.annual_share, **extra)
    settings = None
    if not args.out:
        from pipeline.kafka.topics import ensure_topics

        settings, cluster = _connected(args)
        ensure_topics(settings, cluster)
    with Bars(wanted(args.quiet)) as bars:
        records = simulator.simulate(cfg, progress=bars.report)
        if args.out:
            if fmt == "jsonl":
                counts = simulator.write_jsonl(records, Path(args.out))
            else:
                from training.data.logwriter import write_table_log

                counts = dict(write_table_log(({"source": r.source, **r.value} for r in records), Path(args.out),
                                              progress=bars.report))
            bars.stop()
            print(f"wrote {sum(counts.values())} records to {args.out} ({fmt}): "
                  + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
            return 0
        from devtools.producer import produce

        stop = threading.Event()
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        stats = produce(records, settings, speed=args.speed, stop=stop)
    print(f"sent {stats.sent} records to {settings.broker}: " + ", ".join(f"{k}={v}" for k, v in sorted(stats.by_source.items())))
    return 0


def _listenable(host: str, port: int, change: str) -> None:
    """Stop with one line saying what to ``change`` (flag, variable) when ``host:port`` cannot be listened on."""
    from apps.ports import bind_problem, shown

    problem = bind_problem(host, port)
    if problem is not None:
        raise UserError(f"cannot listen on {shown(host, port)}: {problem}; choose another port with {change}")


def _announcer(settings: Settings) -> Callable[[str], None]:
    """How the worker tells its addresses on stdout: a plain line, or with JSON logs a JSON log record
    (so that every line of its output stays one JSON object)."""
    if settings.log_format != "json":
        return lambda line: print(line, flush=True)
    from pipeline.config.logs import JsonFormatter

    formatter = JsonFormatter()

    def announce(line: str) -> None:
        record = logging.LogRecord("churnwatch.worker", logging.INFO, __file__, 0, line, None, None)
        print(formatter.format(record), flush=True)

    return announce


def cmd_worker(args: argparse.Namespace) -> int:
    from pipeline.worker.run import run_worker
    from pipeline.kafka.connection import check_connection
    from pipeline.config.logs import configure_logging
    from pipeline.kafka.topics import ensure_topics
    from pipeline.web.webauth import check_bind

    settings = _settings(args)
    configure_logging(settings.log_format, settings.log_level)  # the connection and topic checks log too
    try:
        check_bind(settings, settings.web_host, "worker web server")  # before the broker is contacted
        # before the broker and the topics: a busy port is otherwise a traceback from inside Faust
        _listenable(settings.web_host, settings.web_port, "--web-port or CHURNWATCH_WEB_PORT")
        _listenable(settings.metrics_host, settings.metrics_port,
                    "--metrics-port or CHURNWATCH_METRICS_PORT (0: any free port)")
        cluster = check_connection(settings)
        plan = ensure_topics(settings, cluster).plan
        sys.argv = [sys.argv[0], "worker"]  # Faust's Worker parses argv itself
        run_worker(settings.with_(replication_factor=plan.replication_factor,
                                  min_insync_replicas=plan.min_insync_replicas), announce=_announcer(settings))
    except _known_errors() as exc:
        if settings.log_format != "json":
            raise
        # with JSON logs the one-line error is a JSON line too (main() would print plain text)
        logging.getLogger("churnwatch.worker").error("churnwatch worker: error: %s", exc)
        return 2
    return 0


def _registry(args: argparse.Namespace):  # -> pipeline.model.registry.Registry
    from pipeline.model.registry import Registry

    return Registry(_settings(args).models_dir)


def _existing(path_text: str, what: str) -> Path:
    path = Path(path_text)
    if not path.is_file():
        raise UserError(f"{what} {path} not found")
    return path


def _print_trained(result: Any, strict: bool = False) -> int:
    """Model vs both baselines on the test period, then the summary and report path — the same for an
    event log and a converted foreign log, so the two runs read alike."""
    if result.comparison:
        from rich.console import Console

        from training.assess.report import comparison_table

        Console().print(comparison_table(result.comparison, title="test period: model vs baselines (95 % intervals)"))
    print(result.summary())
    return 2 if strict and result.not_promoted else 0


def _one_time(text: str | None, flag: str) -> int | None:
    if not text:
        return None
    times = _times(text, flag)
    if len(times) != 1:
        raise UserError(f"{flag} takes one date, e.g. {flag} 2026-05-01")
    return times[0]


def _split_times(args: argparse.Namespace, as_of: bool = True) -> dict[str, int | None]:
    """``--train-until``, ``--test-from`` and ``--as-of`` as epoch ms (None where not given); a date
    that does not parse is a one-line error. (A foreign log's ``--as-of`` is read by its conversion,
    in the formats its times may have: ``as_of=False`` leaves it out.)"""
    out = {"train_until_ms": _one_time(args.train_until, "--train-until"),
           "test_from_ms": _one_time(args.test_from, "--test-from")}
    if as_of:
        out["as_of_ms"] = _one_time(args.as_of, "--as-of")
    return out


def _train_config(args: argparse.Namespace) -> Any:
    from training.fit.train import TrainConfig

    times = _split_times(args, as_of=False)
    extra: dict[str, Any] = {}
    if args.search_seconds is not None and not args.tune:
        raise UserError("--search-seconds is the budget of --tune; give --tune too")
    if args.tune:
        from training.fit.cv import MAX_CANDIDATES

        extra["search_candidates"] = MAX_CANDIDATES
        if args.search_seconds is not None:
            extra["search_seconds"] = args.search_seconds
    if args.cv_folds is not None:
        extra["cv_folds"] = args.cv_folds
    return TrainConfig(train_until_ms=times["train_until_ms"], test_from_ms=times["test_from_ms"], **extra)


def _inputs(args: argparse.Namespace) -> tuple[Path | None, Path | None, Path | None]:
    """(event log, usage log, churn table) as given, checked before any heavy import."""
    if bool(args.events) == bool(args.usage or args.churn or args.inactive_days):
        raise UserError("give either --events LOG, or --usage FILE with --churn FILE or --inactive-days N (a foreign log)")
    if args.events:
        return _existing(args.events, "event log"), None, None
    if not args.usage or bool(args.churn) == bool(args.inactive_days):
        raise UserError("a foreign log needs --usage FILE and either --churn FILE or --inactive-days N")
    return None, _existing(args.usage, "usage log"), _existing(args.churn, "churn table") if args.churn else None


def cmd_train(args: argparse.Namespace) -> int:
    from apps.bars import Bars, wanted

    events, usage, churn = _inputs(args)
    config = _train_config(args)
    as_of_ms = _split_times(args)["as_of_ms"] if args.events else None
    bars = wanted(args.quiet)
    kwargs = dict(seed=args.seed, promote=not args.no_promote, progress=bars,
                  dataset_config=_dataset_config(args), spec=_feature_spec(args), top_k=args.top_k, strict=args.strict,
                  gate=True, force_promote=args.force_promote, config=config)
    if args.events:
        from training.fit.train import train_from_log

        result = train_from_log(events, _registry(args), as_of_ms=as_of_ms, **kwargs)
        return _print_trained(result, args.strict)
    from training.data.foreign.mapping import ForeignMapping
    from training.fit.foreign_run import train_foreign

    # The conversion summary is printed before training, so it is there even when training then fails;
    # the conversion's bars end there too, before training draws its own.
    with Bars(bars) as conversion:
        def converted(stats: Any) -> None:
            conversion.stop()
            print(stats.summary(), flush=True)

        foreign = train_foreign(usage, churn, _registry(args), ForeignMapping.from_options(vars(args)),
                                log_out=args.save_log, on_converted=converted, convert_progress=conversion.report, **kwargs)
    return _print_trained(foreign.train, args.strict)


def _times(text: str, flag: str = "--at") -> list[int]:
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


def cmd_score(args: argparse.Namespace) -> int:
    source, usage, churn = _inputs(args)
    times = _times(args.at)
    if not Path(args.out).parent.is_dir() or not args.out.lower().endswith((".parquet", ".csv", ".csv.gz")):
        raise UserError(f"--out {args.out}: scores are written as .parquet, .csv or .csv.gz into an existing directory")
    from pipeline.core.alerting import PolicyConfig
    from pipeline.core.policy import load_policy
    from pipeline.model.scoring import load_version

    settings = _settings(args)
    reg = _registry(args)
    version = args.version or reg.current()
    if version is None:
        raise UserError(f"no model in {reg.root}: train one, or name a VERSION")
    model = load_version(reg, version, timeout_s=settings.model_check_timeout_s, feature_cfg=settings.feature_config())
    policy: PolicyConfig = load_policy(settings.policy_file).alerts
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

    with read_events(source) as log:
        if not log.events:
            raise UserError(f"{source}: no valid events ({log.stats.skipped} invalid records)")
        scored = score_log(log.events, model, times, feature_cfg=settings.feature_config(), policy=policy,
                           reasons=0 if args.no_reasons else 3, labels=log.labels())
        skipped = log.stats.skipped
    fmt = write_scores(scored, args.out, version)
    bands = {b: scored.bands.count(b) for b in ("critical", "high", "low")}
    print(f"scored {len(scored):,} customer-times at {len(set(times))} time(s) with model {version}: "
          f"{bands['critical']:,} critical, {bands['high']:,} high, {bands['low']:,} low; wrote {args.out} ({fmt}); "
          f"{skipped} invalid records skipped")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    events = _existing(args.events, "event log") if args.events else None
    times = _split_times(args)
    if events is None and any(v is not None for v in times.values()):
        raise UserError("--train-until, --test-from and --as-of choose what of an event log is evaluated: give --events LOG")
    from training.fit.train import evaluate_version

    result = evaluate_version(_registry(args), args.version, events=events, out=args.out, budget=args.budget,
                              period=args.period, **times)
    result.print()
    return 2 if args.strict and result.few_churners else 0


def cmd_dataset(args: argparse.Namespace) -> int:
    from training.rows.dataset import build_dataset, dataset_format, write_dataset
    from training.data.eventlog import read_events

    source = _existing(args.events, "event log")
    try:
        dataset_format(Path(args.out))
    except ValueError as exc:  # unknown suffix, missing directory: say so before the replay, not after
        raise UserError(str(exc)) from None
    times = _split_times(args)
    log = read_events(source)
    if not log.events:
        raise UserError(f"{args.events}: no valid events ({log.stats.skipped} invalid records)")
    from training.data.asof import cut

    as_of = cut(log, times["as_of_ms"])
    log = as_of.log
    extra: dict[str, Any] = {} if args.min_history_days is None else {"min_history_days": args.min_history_days}
    if args.at:
        extra["at_ms"] = tuple(_times(args.at))
    if as_of.end_ms is not None:
        extra["log_end_ms"] = as_of.end_ms
    cfg = _dataset_config(args, **extra)
    spec = _feature_spec(args) or log.learn_spec(args.top_k)
    dataset = build_dataset(log.events, dataclasses.replace(cfg, spec=spec), labels=log.labels())
    columns, split_note = {}, ""
    if len(dataset) and (times["train_until_ms"] is not None or times["test_from_ms"] is not None):
        from training.fit.train import TrainConfig, period_labels, time_split

        split = time_split(dataset.obs_ms, cfg.purge_days, TrainConfig().fractions,
                           train_until_ms=times["train_until_ms"], test_from_ms=times["test_from_ms"])
        columns["period"] = period_labels(dataset.obs_ms, split)
        split_note = "; period column: " + ", ".join(
            f"{name} {getattr(split, name).to_json()['start'][:10]}..{getattr(split, name).to_json()['end'][:10]}"
            for name in ("train", "validation", "test"))
    fmt = write_dataset(dataset, args.out, columns=columns)
    info = dataset.summary()
    cut_note = f"; {as_of.record['events_after']:,} events after --as-of ignored" if as_of.record else ""
    print(f"wrote {info['rows']:,} rows ({info['customers']:,} customers, {info['observation_times']} observation "
          f"times {str(info['first_observation'])[:10]} .. {str(info['last_observation'])[:10]}, positive rate "
          f"{info['positive_rate']}) to {args.out} ({fmt}); {log.stats.skipped} invalid records skipped"
          f"{cut_note}{split_note}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from apps.bars import Bars, wanted
    from training.data.export import export_topics, output_format

    output_format(Path(args.out), args.format)  # a bad name fails before the connection
    settings, _ = _connected(args)
    with Bars(wanted(args.quiet)) as bars:
        stats = export_topics(settings, args.out, args.format, progress=bars.report)
    print(stats.summary())
    return 0


def cmd_inbox(args: argparse.Namespace) -> int:
    from apps.inbox.server import run_inbox
    from pipeline.web.webauth import check_bind

    check_bind(_settings(args), args.host, "inbox")  # before the broker is contacted
    _listenable(args.host, args.port, "--port")
    settings, _ = _connected(args)
    run_inbox(settings, host=args.host, port=args.port)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from pipeline.model.registry import Registry, RegistryError
    from pipeline.model.scoring import load_version

    settings = _settings(args)
    reg = Registry(settings.models_dir)
    if args.action == "list":
        try:
            current = reg.current()
        except RegistryError as exc:  # the versions can still be listed
            print(f"warning: {exc}", file=sys.stderr)
            current = None
        versions = reg.versions()
        if not versions:
            print(f"no models in {reg.root}")
        for v in versions:
            try:
                meta = reg.meta(v)
            except Exception as exc:  # a broken entry is listed, not fatal
                print(f"  {v:6} (unreadable: {exc})")
                continue
            test = (meta.get("metrics") or {}).get("test", {})
            mark = "*" if v == current else " "
            gate = meta.get("gate")
            verdict = "" if not isinstance(gate, dict) else (
                "  gate passed" if gate.get("passed") else f"  gate refused: {'; '.join(gate.get('reasons') or [])}")
            ci = ((meta.get("comparison") or {}).get("model") or {}).get("ci") or {}
            auc_ci = ci.get("roc_auc")
            span = f" ({auc_ci[0]:.3f}-{auc_ci[1]:.3f})" if isinstance(auc_ci, list) and len(auc_ci) == 2 else ""
            print(f"{mark} {v:6} created {meta.get('created', '?')[:19]}  roc_auc {test.get('roc_auc', float('nan')):.3f}{span}"
                  f"  lift@10% {test.get('lift_at_10', float('nan')):.2f}  horizon {meta.get('horizon_days', '?')}d{verdict}")
        return 0
    if args.action == "promote":
        if not args.version:
            raise UserError("models promote needs a VERSION (see 'churnwatch models list')")
        reg.promote(args.version, validate=lambda p: load_version(reg, args.version,
                                                                    timeout_s=settings.model_check_timeout_s,
                                                                    feature_cfg=settings.feature_config()))
        print(f"promoted {args.version}")
        return 0
    previous = reg.rollback()
    print(f"rolled back to {previous}")
    return 0


def cmd_alerts(args: argparse.Namespace) -> int:
    import orjson
    from rich.console import Console

    from apps.console import matches, print_alert, split_values
    from pipeline.kafka.feed import follow_raw

    tiers, csms = split_values(args.tier), split_values(args.csm)
    settings, _ = _connected(args)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    # wrapped at the terminal's width on a terminal; in a pipe or a file one alert line stays one line
    console = Console(soft_wrap=not sys.stdout.isatty())
    for raw, alert in follow_raw(settings, settings.alerts_topic, stop, from_beginning=not args.new):
        if not matches(alert, tiers, csms):
            continue
        if args.json:  # the record as on the topic, one a line
            line = raw if b"\n" not in raw else orjson.dumps(alert)
            sys.stdout.write(line.decode("utf-8", "replace") + "\n")
        elif isinstance(alert, dict):
            print_alert(console, alert)
        sys.stdout.flush()  # a reader at the other end of a pipe sees each alert as it comes
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from apps.demo import run_demo

    seconds = args.seconds if args.seconds is not None else (float(os.environ["DEMO_SECONDS"]) if os.environ.get("DEMO_SECONDS") else None)
    return run_demo(_settings(args), seconds=seconds)


def cmd_completion(args: argparse.Namespace) -> int:
    from apps.completion import script

    sys.stdout.write(script(args.shell, build_parser(), _PATH_DESTS))
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    settings = _settings(args)
    for env, default in Settings.documented():
        name = env[len("CHURNWATCH_"):].lower()
        print(f"{env:36} = {settings.shown(name) or '-':30} (default {default or '-'})")
    return 0


# ---- parser -------------------------------------------------------------------------------------
def _input_flags(sp: argparse.ArgumentParser) -> None:
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
    src.add_argument("--inactive-days", type=_positive_int, metavar="N",
                     help="instead of --churn: an account N days without usage churned, dated the day after its "
                          "last row (docs/foreign-logs.md; default: none, --churn decides)")


def _mapping_flags(sp: argparse.ArgumentParser) -> None:
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


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="churnwatch", description="Streaming churn early warning on Kafka.",
                formatter_class=_HelpFormatter)
    p.add_argument("--version", action="version", version=f"churnwatch {_version()}",
                   help="print the version and exit")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser, action=_Subcommands,
                           metavar="COMMAND")

    def _spec_flags(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--top-k", type=_top_k, default=16,
                        help="event types of the log that get features of their own, by volume (default 16)")
        sp.add_argument("--spec", metavar="FILE",
                        help="feature spec JSON file to use instead of learning one (docs/features.md; default: "
                             "learnt from the log)")

    def _split_flags(sp: argparse.ArgumentParser, command: str) -> None:
        """--train-until, --test-from and --as-of: the same split (training.fit.train.time_split) and the
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

    def common(sp: argparse.ArgumentParser, broker: bool = True) -> None:
        if broker:
            sp.add_argument("--broker", metavar="URL", help=_env_help("broker", "kafka://host:port[,kafka://host:port…]"))
        sp.add_argument("--models-dir", metavar="DIR", help=_env_help("models_dir", "model registry directory"))

    def partitions(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--partitions", type=_positive_int, metavar="N",
                        help=_env_help("partitions", "partitions of every topic created"))

    sp = sub.add_parser("broker", help="run the embedded Kafka-protocol broker (Tansu) on loopback")
    sp.add_argument("--port", type=_port, help="port to listen on (default: a free one)")
    sp.set_defaults(func=cmd_broker)

    sp = sub.add_parser("topics", help="create churnwatch's topics (co-partitioned, replicated), or check them")
    sp.add_argument("action", choices=["create", "check"],
                    help="create: create the missing topics; check: report partitions, replication factor, "
                         "min.insync.replicas and co-partitioning, exit 1 when something is wrong")
    partitions(sp)
    common(sp)
    sp.set_defaults(func=cmd_topics)

    sp = sub.add_parser("simulate", help="generate a simulated customer population's events")
    sp.add_argument("--customers", type=_positive_int, default=1000, help="customers simulated")
    sp.add_argument("--days", type=_positive_int, default=180, help="days simulated")
    sp.add_argument("--start", type=_ts, help="first simulated day (ISO-8601 or epoch ms; default: DAYS before now)")
    sp.add_argument("--seed", type=int, default=7, help="random seed: equal seeds and flags give equal events")
    sp.add_argument("--churn-rate", type=_fraction, default=0.25,
                    help="share of customers who churn within the simulated days")
    sp.add_argument("--bad-rate", type=_fraction, default=0.0,
                    help="share of malformed records mixed in (JSONL output or Kafka only)")
    sp.add_argument("--vocabulary", type=_vocabulary, default=0,
                    help="0: the fixed login/feature_use/... vocabulary; 8..25: a foreign product with that many "
                         "event types of its own, multi-user accounts and churn at renewals (docs/simulator.md)")
    sp.add_argument("--annual-share", type=_fraction, help="share of annual contracts (default: the per-plan mix)")
    sp.add_argument("--users-per-account", type=_users,
                    help="mean users per account, with --vocabulary only (default 3.5)")
    sp.add_argument("--out", metavar="FILE",
                    help="write an event log instead of producing to Kafka; the format follows the suffix: "
                         ".jsonl, .jsonl.gz, .csv, .csv.gz or .parquet (default: produce to Kafka)")
    sp.add_argument("--speed", type=_speed, default="max", metavar="X|max",
                    help="when producing: simulated seconds per wall second (86400: a day a second), > 0; "
                         "'max': as fast as possible (default: max)")
    sp.add_argument("--quiet", action="store_true", help="no progress bar (there is none unless stderr is a terminal)")
    partitions(sp)
    common(sp)
    sp.set_defaults(func=cmd_simulate)

    sp = sub.add_parser("worker", help="run a stream worker (Faust); more workers with the same settings share "
                                       "the partitions")
    sp.add_argument("--web-port", type=int, metavar="PORT",
                    help=_env_help("web_port", "the worker's web server port (customer view, /health, /ready); "
                                               "one per worker on a host"))
    sp.add_argument("--metrics-port", type=int, metavar="PORT",
                    help=_env_help("metrics_port", "Prometheus metrics port; 0: any free port, printed at start"))
    partitions(sp)
    sp.add_argument("--emit-scores", action="store_true",
                    help="publish every scoring to the scores topic (env CHURNWATCH_EMIT_SCORES)")
    sp.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
                    help=_env_help("log_level", "worker log level"))
    sp.add_argument("--log-format", choices=["text", "json"],
                    help=_env_help("log_format", "log lines as text, or json: one JSON object per line"))
    common(sp)
    sp.set_defaults(func=cmd_worker)

    sp = sub.add_parser("train", help="train a model from an event log (or a foreign usage log) into the registry")
    _input_flags(sp)
    sp.add_argument("--horizon-days", type=_positive_int, default=30, help="label: churn within this many days")
    sp.add_argument("--label-delay-days", type=_non_negative_int, default=0, metavar="D",
                    help="a churn is known only D days after its date (inactivity churn of a converted log: its "
                         "--inactive-days; set for you with --usage --inactive-days); default 0")
    sp.add_argument("--cadence-days", type=_positive_int, default=7, help="days between observation times")
    sp.add_argument("--seed", type=int, default=42, help="random seed of the split draws, LightGBM and the baselines")
    sp.add_argument("--no-promote", action="store_true", help="save the model without making it current")
    _split_flags(sp, "train")
    sp.add_argument("--cv-folds", type=_bounded(int, lambda v: 1 <= v <= 10, "within 1..10"),
                    help="rolling-origin folds that choose the number of boosting rounds (default 3; 1: early "
                         "stopping on the validation period; docs/evaluation.md)")
    sp.add_argument("--tune", action="store_true",
                    help="also score 8 LightGBM settings (the defaults + seeded draws) on the folds and keep the best "
                         "(off by default: it did not beat noise on the simulator, docs/evaluation.md)")
    sp.add_argument("--search-seconds", type=_bounded(float, lambda v: v > 0, "> 0"),
                    help="time budget of --tune: no further setting is tried after this many seconds (default 120)")
    sp.add_argument("--force-promote", action="store_true",
                    help="promote even if the promotion gate refuses (worse than the current model or a baseline)")
    sp.add_argument("--strict", action="store_true",
                    help="exit 2 when the model is not promoted; also hold it back when the test period has "
                         "fewer than 30 churners")
    sp.add_argument("--quiet", action="store_true",
                    help="no progress bars (there are none unless stderr is a terminal)")
    _mapping_flags(sp)
    _spec_flags(sp)
    common(sp, broker=False)
    sp.set_defaults(func=cmd_train)

    sp = sub.add_parser("dataset", help="write the point-in-time training dataset of an event log (Parquet/CSV)")
    sp.add_argument("--events", required=True, help="event log: JSONL, CSV/TSV (.gz) or Parquet")
    sp.add_argument("--out", required=True, help="output .parquet, .csv or .csv.gz")
    sp.add_argument("--cadence-days", type=_positive_int, default=7, help="days between observation times")
    sp.add_argument("--horizon-days", type=_positive_int, default=30, help="label: churn within this many days")
    sp.add_argument("--label-delay-days", type=_non_negative_int, default=0, metavar="D",
                    help="a churn is known only D days after its date (inactivity churn of a converted log: its "
                         "--inactive-days; set for you with --usage --inactive-days); default 0")
    sp.add_argument("--min-history-days", type=_non_negative_int, default=None,
                    help="history a customer needs to get a row (default: as train, from the first day)")
    sp.add_argument("--at", help="observe at exactly these times (comma separated), e.g. the times of a "
                                 "'churnwatch score' backtest, instead of every --cadence-days (default: every "
                                 "--cadence-days)")
    _split_flags(sp, "dataset")
    _spec_flags(sp)
    sp.set_defaults(func=cmd_dataset)

    sp = sub.add_parser("export", help="dump the input topics to an event log (JSONL, .jsonl.gz or Parquet)")
    sp.add_argument("--out", required=True, metavar="FILE",
                    help="output file; the format follows the suffix: .jsonl, .jsonl.gz or .parquet")
    sp.add_argument("--format", choices=["jsonl", "parquet"],
                    help="force a format, which must agree with the suffix (default: from the suffix)")
    sp.add_argument("--quiet", action="store_true",
                    help="no progress bars (there are none unless stderr is a terminal)")
    common(sp)
    sp.set_defaults(func=cmd_export)

    sp = sub.add_parser("inbox", help="serve the CSM inbox page (open alerts, acknowledge) from the alert topic")
    sp.add_argument("--host", default="127.0.0.1",
                    help="listen address (default loopback; any other needs CHURNWATCH_INBOX_TOKEN or "
                         "CHURNWATCH_TRUSTED_USER_HEADER)")
    sp.add_argument("--port", type=_port, default=8088, help="listen port")
    common(sp)
    sp.set_defaults(func=cmd_inbox)

    sp = sub.add_parser("evaluate", help="evaluation report of a model beside its baselines (re-draw, new log, other budget)")
    sp.add_argument("version", nargs="?", help="registry version (default: the current one)")
    sp.add_argument("--events", metavar="FILE",
                    help="score this event log (JSONL/CSV/Parquet) with the saved model and baselines (default: "
                         "re-draw the report from the version's saved test rows)")
    sp.add_argument("--period", choices=["later", "all"], default="later",
                    help="with --events: observations from the model's test period on (default), or all of them")
    sp.add_argument("--out", help="output directory (default: the version's report/ for a re-draw, else ./churnwatch-eval-VERSION)")
    sp.add_argument("--budget", type=_bounded(float, lambda v: v > 0, "> 0"),
                    help="propose per-tier thresholds for this many new alerts per week per 1,000 customers "
                         "(default: none, the thresholds chosen at training are shown)")
    _split_flags(sp, "evaluate")
    sp.add_argument("--strict", action="store_true",
                    help="exit 2 when the evaluated period has fewer than 30 churners (the figures are mostly noise)")
    common(sp, broker=False)
    sp.set_defaults(func=cmd_evaluate)

    sp = sub.add_parser("score", help="batch-score every customer at chosen times, point in time (backtest, book of business)")
    sp.add_argument("version", nargs="?", help="registry version (default: the current one)")
    _input_flags(sp)
    sp.add_argument("--at", required=True, help="times to score at, comma separated (ISO-8601 or epoch ms): "
                                                "every customer seen before and not churned by then, from the events before it")
    sp.add_argument("--out", required=True, help="output .csv, .csv.gz or .parquet")
    sp.add_argument("--no-reasons", action="store_true", help="skip the top reasons (faster on big populations)")
    _mapping_flags(sp)
    common(sp, broker=False)
    sp.set_defaults(func=cmd_score)

    sp = sub.add_parser("models", help="list, promote or roll back registry models")
    sp.add_argument("action", choices=["list", "promote", "rollback"],
                    help="list: the versions, * the current one; promote VERSION: make it current after a check; "
                         "rollback: back to the previously current version")
    sp.add_argument("version", nargs="?", help="the version to promote, e.g. v3 (no default: promote needs one)")
    common(sp, broker=False)
    sp.set_defaults(func=cmd_models)

    sp = sub.add_parser("alerts", help="print alerts from the alert topic as they arrive")
    sp.add_argument("--new", action="store_true", help="only alerts arriving from now on (default: from the beginning)")
    sp.add_argument("--json", action="store_true",
                    help="one JSON object a line, each alert as it is on the topic (default: readable lines)")
    sp.add_argument("--tier", action="append", metavar="TIER[,TIER…]",
                    help="only alerts of these tiers; repeat or separate by commas (default: every tier)")
    sp.add_argument("--csm", action="append", metavar="CSM[,CSM…]",
                    help="only alerts of customers of these CSMs, '-' for customers without one; repeat or "
                         "separate by commas (default: every CSM)")
    common(sp)
    sp.set_defaults(func=cmd_alerts)

    sp = sub.add_parser("demo", help="everything on an embedded broker: model, worker, live stream, alerts")
    sp.add_argument("--seconds", type=_bounded(float, lambda v: v > 0, "> 0"),
                    help="stop after this many seconds (env DEMO_SECONDS; default: run until Ctrl-C)")
    common(sp)
    sp.set_defaults(func=cmd_demo)

    sp = sub.add_parser("config", help="show the effective settings and their environment variables")
    common(sp)
    sp.set_defaults(func=cmd_config)

    sp = sub.add_parser("completion", help="print a shell completion script (bash, zsh or fish)")
    sp.add_argument("shell", choices=["bash", "zsh", "fish"],
                    help="the shell; e.g. 'source <(churnwatch completion bash)' (README: installing it for good)")
    sp.set_defaults(func=cmd_completion)
    return p


def _known_errors() -> tuple[type[BaseException], ...]:
    from devtools.broker import BrokerError
    from pipeline.kafka.connection import ConnectError
    from pipeline.core.policy import PolicyError
    from pipeline.model.registry import RegistryError
    from pipeline.model.scoring import ModelError
    from pipeline.kafka.topics import TopicError

    errors: list[type[BaseException]] = [UserError, SettingsError, BrokerError, RegistryError, ModelError, TopicError,
                                           PolicyError, ConnectError]
    try:  # the streaming side must still report its own errors when training cannot be imported
        from training.data.asof import AsOfError
        from training.data.export import ExportError
        from training.data.readers import LogFormatError
        from training.data.spool import SpoolError
        from training.fit.train import TrainingError

        errors += [TrainingError, LogFormatError, ExportError, SpoolError, AsOfError]
    except ImportError:
        pass
    return tuple(errors)


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
        _settings(args)
        return func(args) or 0
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `churnwatch alerts | head`: the reader has what it wanted; no message
        _silence_stdout()
        return 141
    except _known_errors() as exc:
        print(f"churnwatch {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"churnwatch {args.command}: error: {exc.strerror or exc}: {getattr(exc, 'filename', '') or ''}".rstrip(": "), file=sys.stderr)
        return 2
    finally:
        restore()


if __name__ == "__main__":
    sys.exit(main())
