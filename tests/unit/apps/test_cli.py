"""Unit tests for apps.cli (the parser, main and every subcommand module): argument errors are one line + exit 2, and the offline subcommands work.

No broker, worker or producer is ever started: the subcommands that would talk to Kafka are replaced
by recorders (``stub_commands``) or their network helpers are made to fail the test if reached.
"""

from __future__ import annotations

import sys
import types

import pytest

import apps.cli as cli
from apps.cli import alerts, broker, demo, entry, simulate, topics, train, worker
from pipeline.core.contract import parse_ts
from pipeline.config.settings import Settings
from tests.other_user import run_python, shared_dir  # noqa: F401 (shared_dir is a fixture)
from tests.unit.pipeline.config.test_logs import restore_logging  # noqa: F401 (a fixture: json logs change hooks)

NETWORK_COMMANDS = {"cmd_broker": broker, "cmd_topics": topics, "cmd_simulate": simulate, "cmd_worker": worker,
                    "cmd_alerts": alerts, "cmd_demo": demo}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    import os

    for name in list(os.environ):
        if name.startswith("CHURNWATCH_") or name == "DEMO_SECONDS":
            monkeypatch.delenv(name)


@pytest.fixture
def calls(monkeypatch) -> list:
    """Replace every command that could touch the network with a recorder."""
    seen: list = []

    def recorder(name):
        def run(args):
            seen.append((name, args))
            return 0
        return run

    for name, module in NETWORK_COMMANDS.items():
        monkeypatch.setattr(module, name, recorder(name))
    return seen


@pytest.fixture
def no_network(monkeypatch):
    """For commands run for real: fail loudly instead of reaching for a broker."""
    import pipeline.kafka.connection
    import pipeline.kafka.topics

    def boom(*a, **k):
        raise AssertionError("the command tried to reach a broker")

    monkeypatch.setattr(pipeline.kafka.topics, "ensure_topics", boom)
    monkeypatch.setattr(pipeline.kafka.connection, "check_connection", boom)


def free_ports(monkeypatch) -> None:
    """A free web port and any metrics port for a worker started here (the defaults may be in use)."""
    from devtools.broker import free_port

    monkeypatch.setenv("CHURNWATCH_WEB_PORT", str(free_port()))
    monkeypatch.setenv("CHURNWATCH_METRICS_PORT", "0")


def run(argv, capsys) -> tuple[int, str, str]:
    try:
        code = cli.main(argv)
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, out: str, err: str) -> None:
    assert code == 2
    assert out == ""
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert err.startswith("churnwatch")
    assert "error" in err and "Traceback" not in err


# ---- argument errors ---------------------------------------------------------------------------------
BAD_ARGS = [
    ["simulate", "--customers", "-5"],
    ["simulate", "--customers", "0"],
    ["simulate", "--customers", "many"],
    ["simulate", "--days", "0"],
    ["simulate", "--bad-rate", "2"],
    ["simulate", "--bad-rate", "-0.1"],
    ["simulate", "--churn-rate", "half"],
    ["simulate", "--start", "yesterday"],
    ["simulate", "--start", "-5"],
    ["simulate", "--seed", "1.5"],
    ["simulate", "--speed", "fast"],
    ["simulate", "--speed", "0"],
    ["simulate", "--speed", "-86400"],
    ["simulate", "--speed", "inf"],
    ["simulate", "--speed", "nan"],
    ["simulate", "--out"],
    ["simulate", "--frobnicate"],
    ["frobnicate"],
    [],
    ["topics"],
    ["topics", "delete"],
    ["topics", "create", "--partitions", "0"],
    ["broker", "--port", "-1"],
    ["broker", "--port", "70000"],
    ["inbox", "--port", "99999"],
    ["inbox", "--port", "0"],
    ["inbox", "--port", "http"],
    ["worker", "--web-port", "http"],
    ["completion"],
    ["completion", "tcsh"],
    ["alerts", "--json", "yes"],
    ["evaluate", "--budget", "0"],
    ["worker", "--log-level", "LOUD"],
    ["worker", "--metrics-port", "http"],
    ["train"],
    ["train", "--events", "x.jsonl", "--horizon-days", "0"],
    ["train", "--events", "x.jsonl", "--cv-folds", "0"],
    ["train", "--events", "x.jsonl", "--tune", "--search-seconds", "-5"],
    ["models"],
    ["models", "purge"],
    ["models", "list", "v1", "extra"],
    ["alerts", "--new", "yes"],
    ["demo", "--seconds", "soon"],
]


@pytest.mark.parametrize("argv", BAD_ARGS, ids=[" ".join(a) or "<none>" for a in BAD_ARGS])
def test_bad_arguments_give_one_line_and_exit_2(argv, calls, capsys):
    assert_one_line_error(*run(argv, capsys))
    assert calls == []


def test_error_line_names_the_problem(calls, capsys):
    _, _, err = run(["simulate", "--customers", "-5"], capsys)
    assert "--customers" in err and "'-5' must be > 0" in err
    _, _, err = run(["simulate", "--bad-rate", "2"], capsys)
    assert "--bad-rate" in err and "between 0 and 1" in err
    _, _, err = run(["frobnicate"], capsys)
    assert "frobnicate" in err and "invalid choice" in err


@pytest.mark.parametrize("start", ["0001-01-01T00:00:00+01:00", "99999999999999999999", "1999-06-01"])
def test_out_of_range_start_is_an_argument_error(start, calls, capsys):
    assert_one_line_error(*run(["simulate", "--start", start, "--out", "x.jsonl"], capsys))


def test_valid_arguments_reach_the_command(calls, capsys):
    code, _, _ = run(["simulate", "--customers", "10", "--days", "5", "--bad-rate", "0.1", "--churn-rate", "1",
                      "--start", "2024-01-01T00:00:00+01:00", "--seed", "3", "--out", "log.jsonl"], capsys)
    assert code == 0
    ((name, args),) = calls
    assert name == "cmd_simulate"
    assert (args.customers, args.days, args.bad_rate, args.churn_rate, args.seed, args.out) == (10, 5, 0.1, 1.0, 3, "log.jsonl")
    assert args.start == parse_ts("2023-12-31T23:00:00Z")
    calls.clear()
    run(["simulate", "--start", "1704067200000"], capsys)
    assert calls[0][1].start == 1_704_067_200_000


def test_interrupt_exits_130(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(demo, "cmd_demo", interrupted)
    assert run(["demo"], capsys)[0] == 130


def test_os_error_is_one_line(monkeypatch, capsys):
    def fails(args):
        raise FileNotFoundError(2, "No such file or directory", "/data/out.jsonl")

    monkeypatch.setattr(simulate, "cmd_simulate", fails)
    code, out, err = run(["simulate", "--out", "/data/out.jsonl"], capsys)
    assert_one_line_error(code, out, err)
    assert err == "churnwatch simulate: error: No such file or directory: /data/out.jsonl\n"


# ---- settings errors surface as one line too ---------------------------------------------------------------
@pytest.mark.parametrize("argv", [
    ["topics", "create", "--broker", "localhost:9092"],
    ["topics", "create", "--partitions", "3", "--broker", "nope"],
    ["config", "--broker", "127.0.0.1:9092"],
])
def test_bad_broker_flag(argv, no_network, capsys):
    code, out, err = run(argv, capsys)
    assert_one_line_error(code, out, err)
    assert "CHURNWATCH_BROKER (--broker): must look like kafka://host:port" in err


def test_bad_metrics_port_stops_the_worker_before_it_starts(monkeypatch, no_network, capsys):
    import pipeline.worker.run

    monkeypatch.setattr(pipeline.worker.run, "run_worker", lambda s: pytest.fail("worker started"))
    code, out, err = run(["worker", "--metrics-port", "70000"], capsys)
    assert_one_line_error(code, out, err)
    assert "CHURNWATCH_METRICS_PORT (--metrics-port): must be 0..65535" in err and "got 70000" in err


@pytest.mark.parametrize("argv", [["inbox", "--host", "0.0.0.0"], ["inbox", "--host", "192.168.1.20", "--port", "9000"]])
def test_inbox_on_a_public_address_needs_a_guard(argv, monkeypatch, no_network, capsys):
    code, out, err = run(argv, capsys)
    assert_one_line_error(code, out, err)
    assert "refusing to serve the inbox" in err and "CHURNWATCH_INBOX_TOKEN" in err


def test_worker_web_on_a_public_address_needs_a_guard(monkeypatch, no_network, capsys):
    import pipeline.worker.run

    monkeypatch.setattr(pipeline.worker.run, "run_worker", lambda s: pytest.fail("worker started"))
    monkeypatch.setenv("CHURNWATCH_WEB_HOST", "0.0.0.0")  # no_network: refused before the connection check
    code, out, err = run(["worker"], capsys)
    assert_one_line_error(code, out, err)
    assert "refusing to serve the worker web server on '0.0.0.0'" in err


def test_bad_environment_variable(monkeypatch, capsys):
    monkeypatch.setenv("CHURNWATCH_PARTITIONS", "four")
    code, out, err = run(["config"], capsys)
    assert_one_line_error(code, out, err)
    assert "CHURNWATCH_PARTITIONS" in err and "'four'" in err


# ---- train -------------------------------------------------------------------------------------------
def _stub_training(monkeypatch, train: bool = True) -> None:
    """training.fit.train replaced by a module with only its error class (which main() reports), and
    with ``train`` a train_from_log that fails the test if reached."""
    stub = types.ModuleType("training.fit.train")
    stub.TrainingError = type("TrainingError", (Exception,), {})

    def train_from_log(*a, **k):
        raise AssertionError("training started despite a missing event log")

    if train:
        stub.train_from_log = train_from_log
    monkeypatch.setitem(sys.modules, "training.fit.train", stub)


@pytest.mark.parametrize("events", ["/nonexistent", "/nonexistent/events.jsonl"])
def test_train_with_missing_event_log(events, monkeypatch, tmp_path, capsys):
    _stub_training(monkeypatch)
    code, out, err = run(["train", "--events", events, "--models-dir", str(tmp_path)], capsys)
    assert_one_line_error(code, out, err)
    assert events in err and "not found" in err


def test_train_with_a_directory_as_event_log(monkeypatch, tmp_path, capsys):
    _stub_training(monkeypatch)
    code, out, err = run(["train", "--events", str(tmp_path)], capsys)
    assert_one_line_error(code, out, err)


def test_train_checks_the_event_log_before_importing_training(monkeypatch, tmp_path, capsys):
    _stub_training(monkeypatch, train=False)  # importing anything of training.fit.train but its error fails
    code, out, err = run(["train", "--events", "/nonexistent", "--models-dir", str(tmp_path)], capsys)
    assert_one_line_error(code, out, err)


SPLIT_FLAG_ERRORS = [
    (["dataset", "--out", "{tmp}/rows.csv", "--as-of", "soon"], "--as-of"),
    (["dataset", "--out", "{tmp}/rows.csv", "--train-until", "2024-13-01"], "--train-until"),
    (["evaluate", "--models-dir", "{tmp}", "--test-from", "yesterday"], "--test-from"),
    (["evaluate", "--models-dir", "{tmp}", "--as-of", "2024-01-01,2024-02-01"], "--as-of takes one date"),
    (["train", "--models-dir", "{tmp}", "--as-of", "soon"], "--as-of"),
    (["train", "--models-dir", "{tmp}", "--search-seconds", "5"], "give --tune too"),
]


@pytest.mark.parametrize("argv,fragment", SPLIT_FLAG_ERRORS, ids=[" ".join(a[0][:1] + a[0][-2:]) for a in SPLIT_FLAG_ERRORS])
def test_bad_split_flags_are_one_line_before_any_work(argv, fragment, tmp_path, capsys):
    log = tmp_path / "log.jsonl"
    log.write_text("")  # exists; never read: the flags are checked first
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv] + ["--events", str(log)]
    code, out, err = run(argv, capsys)
    assert_one_line_error(code, out, err)
    assert fragment in err


def test_evaluate_split_flags_need_an_event_log(tmp_path, capsys):
    code, out, err = run(["evaluate", "--models-dir", str(tmp_path), "--test-from", "2024-01-01"], capsys)
    assert_one_line_error(code, out, err)
    assert "give --events LOG" in err


# ---- models ------------------------------------------------------------------------------------------
def test_models_list_on_an_empty_registry(tmp_path, capsys):
    code, out, err = run(["models", "list", "--models-dir", str(tmp_path)], capsys)
    assert code == 0 and err == ""
    assert out == f"no models in {tmp_path}\n"


def test_models_list_on_a_missing_directory(tmp_path, capsys):
    missing = tmp_path / "not-there"
    code, out, _ = run(["models", "list", "--models-dir", str(missing)], capsys)
    assert code == 0 and "no models" in out
    assert not missing.exists()  # listing does not create the registry


def test_models_dir_from_environment(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("CHURNWATCH_MODELS_DIR", str(tmp_path / "envreg"))
    _, out, _ = run(["models", "list"], capsys)
    assert out == f"no models in {tmp_path / 'envreg'}\n"


@pytest.mark.parametrize(("argv", "fragment"), [
    (["models", "promote"], "needs a VERSION"),
    (["models", "promote", "v1"], "not found"),
    (["models", "promote", "latest"], "not a model version"),
    (["models", "rollback"], "nothing to roll back"),
])
def test_models_errors_on_an_empty_registry(argv, fragment, tmp_path, capsys):
    code, out, err = run(argv + ["--models-dir", str(tmp_path)], capsys)
    assert_one_line_error(code, out, err)
    assert fragment in err


# ---- config ------------------------------------------------------------------------------------------
def test_config_prints_every_variable_with_effective_value(monkeypatch, capsys):
    monkeypatch.setenv("CHURNWATCH_PARTITIONS", "7")
    code, out, err = run(["config", "--broker", "kafka://flag:1"], capsys)
    assert code == 0 and err == ""
    lines = {line.split()[0]: line for line in out.splitlines()}
    assert list(lines) == [env for env, _ in Settings.documented()]
    assert lines["CHURNWATCH_PARTITIONS"].split()[2] == "7"
    assert "(default 4)" in lines["CHURNWATCH_PARTITIONS"]
    assert lines["CHURNWATCH_BROKER"].split()[2] == "kafka://flag:1"
    assert lines["CHURNWATCH_TOPIC_PREFIX"].split()[2] == "churn."


def test_config_does_not_print_secrets(monkeypatch, capsys):
    for name, value in {"SECURITY_PROTOCOL": "SASL_SSL", "SASL_MECHANISM": "PLAIN", "SASL_USERNAME": "svc",
                        "SASL_PASSWORD": "s3cret-pw", "SSL_CERTFILE": "/c.pem", "SSL_KEY_PASSWORD": "s3cret-key",
                        "WEBHOOK_URL": "https://hooks.example/s3cret-hook", "INBOX_TOKEN": "s3cret-inbox-token-16+"}.items():
        monkeypatch.setenv(f"CHURNWATCH_{name}", value)
    code, out, _ = run(["config"], capsys)
    assert code == 0
    lines = {line.split()[0]: line for line in out.splitlines()}
    for name in ("SASL_PASSWORD", "SSL_KEY_PASSWORD", "WEBHOOK_URL", "INBOX_TOKEN"):
        assert lines[f"CHURNWATCH_{name}"].split()[2] == "********"
    assert "s3cret" not in out
    assert lines["CHURNWATCH_SASL_USERNAME"].split()[2] == "svc"
    assert lines["CHURNWATCH_SECURITY_PROTOCOL"].split()[2] == "SASL_SSL"


# ---- every command: settings first, broker commands check the connection first --------------------------
EVERY_COMMAND = {
    "broker": ["broker"], "topics": ["topics", "create"], "simulate": ["simulate", "--out", "x.jsonl"],
    "worker": ["worker"], "train": ["train", "--events", "x.jsonl"],
    "dataset": ["dataset", "--events", "x.jsonl", "--out", "x.parquet"], "export": ["export", "--out", "x.jsonl"],
    "inbox": ["inbox"], "evaluate": ["evaluate"],
    "score": ["score", "--events", "x.jsonl", "--at", "2024-01-01", "--out", "x.csv"], "models": ["models", "list"],
    "alerts": ["alerts"], "demo": ["demo"], "config": ["config"], "completion": ["completion", "bash"],
}


def test_every_command_is_listed_here():
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if getattr(a, "choices", None) and "worker" in a.choices)
    assert set(sub.choices) == set(EVERY_COMMAND)


@pytest.mark.parametrize("command", sorted(EVERY_COMMAND))
@pytest.mark.parametrize(("variable", "value", "fragment"), [
    ("CHURNWATCH_LOG_LEVEL", "LOUD", "CHURNWATCH_LOG_LEVEL: must be one of DEBUG, INFO"),
    ("CHURNWATCH_SECURITY_PROTOCOL", "TLS-PLEASE", "CHURNWATCH_SECURITY_PROTOCOL: must be one of PLAINTEXT, SSL"),
    ("CHURNWATCH_PARTITON", "3", "CHURNWATCH_PARTITON: not a churnwatch setting: did you mean CHURNWATCH_PARTITIONS?"),
])
def test_a_bad_setting_stops_every_command_before_it_runs(command, variable, value, fragment, monkeypatch, capsys):
    reached = []
    for module in (*entry.COMMANDS, entry):
        for name in dir(module):
            if name.startswith("cmd_"):
                monkeypatch.setattr(module, name, lambda args, name=name: reached.append(name) or 0)
    monkeypatch.setenv(variable, value)
    code, out, err = run(EVERY_COMMAND[command], capsys)
    assert_one_line_error(code, out, err)
    assert err == f"churnwatch {command}: error: {fragment}" + err.split(fragment, 1)[1]
    assert reached == []


def _stub_broker(monkeypatch, observed=None, fail=None):
    """The connection check and the topic description, without a broker."""
    import pipeline.kafka.connection
    import pipeline.kafka.topics
    from pipeline.kafka.connection import Cluster

    def check(settings, timeout=None):
        if fail:
            raise pipeline.kafka.connection.ConnectError(fail)
        return Cluster(broker_ids=(1,), server="127.0.0.1:9092")

    monkeypatch.setattr(pipeline.kafka.connection, "check_connection", check)
    monkeypatch.setattr(pipeline.kafka.topics, "describe", lambda settings, names: observed(settings) if observed else {})


def test_topics_check_exits_1_and_says_what_is_wrong(monkeypatch, capsys):
    _stub_broker(monkeypatch)
    code, out, err = run(["topics", "check"], capsys)
    assert code == 1 and err == ""
    assert "churn.interactions: missing (run 'churnwatch topics create')" in out
    assert out.splitlines()[0] == "cluster: 1 broker; want replication factor 1, min.insync.replicas 1, 4 partitions"


def test_topics_check_exits_0_when_all_is_well(monkeypatch, capsys):
    from pipeline.kafka.topics import ObservedTopic, plan_topics

    def healthy(settings):
        return {t.name: ObservedTopic(t.name, t.partitions, 1, 0, dict(t.configs)) for t in plan_topics(settings, 1).topics}

    _stub_broker(monkeypatch, observed=healthy)
    code, out, err = run(["topics", "check"], capsys)
    assert code == 0 and err == "" and out.splitlines()[-1] == "all topics ok"


@pytest.mark.parametrize("argv", [["topics", "create"], ["topics", "check"], ["worker"], ["alerts"], ["inbox"],
                                  ["export", "--out", "x.jsonl"], ["simulate"]])
def test_a_failed_connection_check_is_one_line_and_nothing_else_runs(argv, monkeypatch, capsys):
    import pipeline.worker.run

    from devtools.broker import free_port

    free_ports(monkeypatch)
    _stub_broker(monkeypatch, fail="cannot use broker kafka://127.0.0.1:9092: 127.0.0.1:9092: connection refused")
    monkeypatch.setattr(pipeline.worker.run, "run_worker", lambda s: pytest.fail("worker started"))
    code, out, err = run(argv + (["--port", str(free_port())] if argv == ["inbox"] else []), capsys)
    assert_one_line_error(code, out, err)
    assert err.endswith(": error: cannot use broker kafka://127.0.0.1:9092: 127.0.0.1:9092: connection refused\n")


def test_worker_runs_with_the_replication_resolved_from_the_cluster(monkeypatch, capsys):
    import pipeline.worker.run
    import pipeline.kafka.topics
    from pipeline.kafka.topics import TopicReport, plan_topics

    _stub_broker(monkeypatch)
    free_ports(monkeypatch)
    started = []
    monkeypatch.setattr(pipeline.kafka.topics, "ensure_topics",
                        lambda settings, cluster=None: TopicReport([], {}, plan_topics(settings, 5)))
    monkeypatch.setattr(pipeline.worker.run, "run_worker", lambda settings, announce=None: started.append(settings))
    assert run(["worker"], capsys)[0] == 0
    assert (started[0].replication_factor, started[0].min_insync_replicas) == (3, 2)


_CURRENT_AS_OTHER_USER = """
import sys
from pipeline.model.registry import Registry
from pipeline.model.scoring import ModelHolder
holder = ModelHolder(Registry(sys.argv[1]))
status, detail = holder.refresh()
print(status, holder.model.version if holder.model else detail)
"""


def test_models_promote_and_rollback_leave_the_current_model_readable_by_another_user(shared_dir, capsys):
    """`churnwatch models promote` / `rollback` of versions an older churnwatch left private (0700/0600),
    run under umask 077: afterwards a worker running as another user loads the current model."""
    from pipeline.model.registry import Registry
    from tests.other_user import umask
    from tests.unit.pipeline.model.test_registry import make_private, modes
    from tests.unit.pipeline.model.test_scoring import make_model_text, meta

    root = shared_dir / "models"
    reg = Registry(root)
    for seed in (1, 2):
        reg.save(make_model_text(seed=seed), meta())
        make_private(reg.path(f"v{seed}"))
    with umask(0o077):
        assert run(["models", "promote", "v1", "--models-dir", str(root)], capsys)[:2] == (0, "promoted v1\n")
    assert modes(root)["v1"] == 0o755 and modes(root)["v1/model.txt"] == 0o644 and modes(root)["CURRENT"] == 0o644
    proc = run_python(_CURRENT_AS_OTHER_USER, str(root))
    assert (proc.returncode, proc.stdout) == (0, "loaded v1\n"), proc.stderr[-2000:]

    with umask(0o077):
        assert run(["models", "promote", "v2", "--models-dir", str(root)], capsys)[0] == 0
    make_private(reg.path("v1"))
    with umask(0o077):
        assert run(["models", "rollback", "--models-dir", str(root)], capsys)[:2] == (0, "rolled back to v1\n")
    assert modes(root)["v1/meta.json"] == 0o644 and modes(root)["CURRENT"] == 0o644
    proc = run_python(_CURRENT_AS_OTHER_USER, str(root))
    assert (proc.returncode, proc.stdout) == (0, "loaded v1\n"), proc.stderr[-2000:]


# ---- a real offline command --------------------------------------------------------------------------
def test_simulate_to_a_file(tmp_path, no_network, capsys):
    out_file = tmp_path / "events.jsonl"
    code, out, err = run(["simulate", "--customers", "3", "--days", "3", "--start", "2024-01-01",
                          "--out", str(out_file)], capsys)
    assert code == 0 and err == ""
    assert out.startswith("wrote ") and str(out_file) in out
    written = int(out.split()[1])
    assert written > 0
    assert sum(1 for _ in out_file.open()) == written


@pytest.mark.parametrize("extra", [[], ["--churn", "c.csv", "--inactive-days", "30"]])
def test_a_foreign_log_needs_exactly_one_churn_source(extra, monkeypatch, tmp_path, capsys):
    _stub_training(monkeypatch)
    usage = tmp_path / "u.csv"
    usage.write_text("account_id,ts,event\na,2026-01-01,post\n")
    code, out, err = run(["train", "--usage", str(usage), *extra, "--models-dir", str(tmp_path)], capsys)
    assert_one_line_error(code, out, err)
    assert "--inactive-days" in err


def test_tune_and_cv_flags_reach_the_training_config():
    args = cli.build_parser().parse_args(["train", "--events", "x.jsonl", "--tune", "--search-seconds", "30",
                                          "--cv-folds", "4", "--train-until", "2024-01-10"])
    cfg = train._train_config(args)
    assert (cfg.search_candidates, cfg.search_seconds, cfg.cv_folds) == (8, 30.0, 4)
    assert cfg.train_until_ms == parse_ts("2024-01-10T00:00:00Z") and cfg.test_from_ms is None
    default = train._train_config(cli.build_parser().parse_args(["train", "--events", "x.jsonl"]))
    assert (default.search_candidates, default.cv_folds) == (0, 3)  # the search is off unless asked for


# ---- --version, help text, completion ------------------------------------------------------------------
def test_version_prints_the_package_version_and_exits_0(capsys):
    from importlib import metadata

    code, out, err = run(["--version"], capsys)
    assert (code, out, err) == (0, f"churnwatch {metadata.version('churnwatch')}\n", "")


def _every_parser():
    """(name, parser) of the top level and of every subcommand."""
    import argparse

    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return [("churnwatch", parser)] + [(f"churnwatch {name}", sp) for name, sp in sub.choices.items()]


def test_every_flag_has_help_and_says_its_default():
    """Every argument of every command has help text; every one that takes a value and is not required
    says its default — argparse's '(default: X)' or the help's own words ('default: …', 'no default: …')."""
    import argparse

    missing, no_default = [], []
    for name, parser in _every_parser():
        formatter = parser._get_formatter()
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            label = f"{name} {'/'.join(action.option_strings) or action.dest}"
            if not (action.help or "").strip():
                missing.append(label)
                continue
            text = formatter._get_help_string(action) % {**vars(action), "default": action.default}
            if action.nargs != 0 and not action.required and "default" not in text:
                no_default.append(label)
        parser.format_help()  # a stray % in a help text would raise here
    assert missing == [], f"flags without help: {missing}"
    assert no_default == [], f"flags whose help does not say their default: {no_default}"


def test_help_shows_the_defaults(capsys):
    code, out, _ = run(["simulate", "--help"], capsys)
    assert code == 0
    flat = " ".join(out.split())
    assert "--customers CUSTOMERS customers simulated (default: 1000)" in flat
    assert "(default: max)" in flat
    code, out, _ = run(["worker", "--help"], capsys)
    flat = " ".join(out.split())
    assert "--web-port PORT" in flat and "(env CHURNWATCH_WEB_PORT; default 6066)" in flat
    assert "(env CHURNWATCH_METRICS_PORT; default 9108)" in flat and "0: any free port" in flat


def test_completion_prints_a_script_for_each_shell(capsys):
    for shell, marker in (("bash", "complete -o default -F _churnwatch churnwatch"),
                          ("zsh", "#compdef churnwatch"), ("fish", "complete -c churnwatch")):
        code, out, err = run(["completion", shell], capsys)
        assert code == 0 and err == "" and marker in out
        for command in EVERY_COMMAND:
            assert command in out, (shell, command)


# ---- ports --------------------------------------------------------------------------------------------
@pytest.fixture
def listening():
    """A socket listening on a free loopback port (what another worker or program would hold)."""
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    yield sock.getsockname()[1]
    sock.close()


@pytest.mark.parametrize(("flag", "names"), [
    ("--web-port", "--web-port or CHURNWATCH_WEB_PORT"),
    ("--metrics-port", "--metrics-port or CHURNWATCH_METRICS_PORT (0: any free port)"),
])
def test_a_busy_worker_port_is_one_line_before_the_broker_is_reached(flag, names, listening, monkeypatch,
                                                                      no_network, capsys):
    import pipeline.worker.run

    free_ports(monkeypatch)
    monkeypatch.setattr(pipeline.worker.run, "run_worker", lambda *a, **k: pytest.fail("worker started"))
    code, out, err = run(["worker", flag, str(listening)], capsys)
    assert_one_line_error(code, out, err)
    assert err == (f"churnwatch worker: error: cannot listen on 127.0.0.1:{listening}: address already in use; "
                   f"choose another port with {names}\n")


def test_a_busy_inbox_port_is_one_line_before_anything_is_announced(listening, monkeypatch, no_network, capsys):
    import apps.inbox.server

    monkeypatch.setattr(apps.inbox.server, "run_inbox", lambda *a, **k: pytest.fail("inbox started"))
    code, out, err = run(["inbox", "--port", str(listening)], capsys)
    assert_one_line_error(code, out, err)
    assert err == (f"churnwatch inbox: error: cannot listen on 127.0.0.1:{listening}: address already in use; "
                   f"choose another port with --port\n")


def test_web_port_flag_and_metrics_port_0_reach_the_worker(monkeypatch, capsys):
    import pipeline.worker.run
    import pipeline.kafka.topics
    from devtools.broker import free_port
    from pipeline.kafka.topics import TopicReport, plan_topics

    _stub_broker(monkeypatch)
    monkeypatch.setattr(pipeline.kafka.topics, "ensure_topics",
                        lambda settings, cluster=None: TopicReport([], {}, plan_topics(settings, 1)))
    started = []
    monkeypatch.setattr(pipeline.worker.run, "run_worker", lambda settings, announce=None: started.append((settings, announce)))
    port = free_port()
    assert run(["worker", "--web-port", str(port), "--metrics-port", "0"], capsys)[0] == 0
    settings, announce = started[0]
    assert (settings.web_port, settings.metrics_port) == (port, 0)
    announce("churnwatch worker: metrics on http://127.0.0.1:40001/metrics")
    assert capsys.readouterr().out == "churnwatch worker: metrics on http://127.0.0.1:40001/metrics\n"


def test_an_out_of_range_web_port_names_flag_and_variable(no_network, capsys):
    code, out, err = run(["worker", "--web-port", "70000"], capsys)
    assert_one_line_error(code, out, err)
    assert "CHURNWATCH_WEB_PORT (--web-port): must be 1..65535" in err


@pytest.mark.parametrize("broker", ["kafka://127.0.0.1:abc", "kafka://127.0.0.1:9092,kafka://h2:x1"])
def test_a_broker_port_that_is_not_a_number_is_one_line(broker, monkeypatch, no_network, capsys):
    code, out, err = run(["alerts", "--broker", broker], capsys)
    assert_one_line_error(code, out, err)
    assert "CHURNWATCH_BROKER (--broker): port" in err and "is not a number" in err
    monkeypatch.setenv("CHURNWATCH_BROKER", broker)
    code, out, err = run(["alerts"], capsys)
    assert_one_line_error(code, out, err)
    assert "CHURNWATCH_BROKER: port" in err and "is not a number" in err


def _silent_listener():
    """A loopback port that accepts connections and never answers (a broker that hangs)."""
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    return sock


@pytest.mark.parametrize("kind", ["refused", "silent"])
def test_alerts_with_the_broker_down_is_one_line_within_the_connection_timeout(kind):
    """A real ``churnwatch alerts`` process, nothing mocked: one line, exit 2, within the timeout."""
    import subprocess
    import time

    from devtools.broker import free_port

    holder = _silent_listener() if kind == "silent" else None
    port = holder.getsockname()[1] if holder else free_port()
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("CHURNWATCH_")}
    env.update(CHURNWATCH_BROKER=f"kafka://127.0.0.1:{port}", CHURNWATCH_CONNECT_TIMEOUT_S="2")
    t0 = time.monotonic()
    try:
        proc = subprocess.run([sys.executable, "-m", "apps.cli", "alerts"], env=env, capture_output=True,
                              text=True, timeout=60, stdin=subprocess.DEVNULL)
    finally:
        if holder:
            holder.close()
    elapsed = time.monotonic() - t0
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    expected = "connection refused" if kind == "refused" else "no Kafka answer within 2 s (CHURNWATCH_CONNECT_TIMEOUT_S)"
    assert proc.stderr.startswith(f"churnwatch alerts: error: cannot use broker kafka://127.0.0.1:{port}: ")
    assert expected in proc.stderr
    assert elapsed < 2 + 15, f"took {elapsed:.1f}s"  # the timeout plus the interpreter's start


# ---- simulate: --speed, --out formats ------------------------------------------------------------------
def test_speed_max_is_as_fast_as_possible_and_a_number_is_a_pace(calls, capsys):
    run(["simulate"], capsys)
    run(["simulate", "--speed", "max"], capsys)
    run(["simulate", "--speed", "MAX"], capsys)
    run(["simulate", "--speed", "86400"], capsys)
    assert [args.speed for _, args in calls] == [None, None, None, 86400.0]


def test_speed_0_says_how_to_ask_for_as_fast_as_possible(calls, capsys):
    code, out, err = run(["simulate", "--speed", "0"], capsys)
    assert_one_line_error(code, out, err)
    assert "--speed: '0' must be > 0 (or 'max': as fast as possible)" in err


@pytest.mark.parametrize("name", ["events.txt", "events.json.bz2", "events", "events.tsv"])
def test_simulate_refuses_an_output_name_it_cannot_write(name, tmp_path, no_network, capsys):
    code, out, err = run(["simulate", "--customers", "3", "--days", "3", "--out", str(tmp_path / name)], capsys)
    assert_one_line_error(code, out, err)
    assert "use one of .jsonl, .jsonl.gz, .csv, .csv.gz, .parquet" in err
    assert list(tmp_path.iterdir()) == []


def test_simulate_refuses_a_missing_directory_and_bad_records_in_a_table(tmp_path, no_network, capsys):
    code, out, err = run(["simulate", "--out", str(tmp_path / "no" / "events.jsonl")], capsys)
    assert_one_line_error(code, out, err)
    assert "does not exist" in err
    code, out, err = run(["simulate", "--bad-rate", "0.01", "--out", str(tmp_path / "events.csv")], capsys)
    assert_one_line_error(code, out, err)
    assert "only a JSONL log can hold" in err


@pytest.mark.parametrize("name", ["events.jsonl.gz", "events.csv", "events.csv.gz", "events.parquet"])
def test_simulate_writes_the_format_its_suffix_names(name, tmp_path, no_network, capsys):
    """The file is in the format of its name (not JSONL called .csv) and reads back to the same events
    as the JSONL log of the same simulation."""
    import gzip

    from training.data.eventlog import read_events

    flags = ["simulate", "--customers", "20", "--days", "40", "--start", "2024-01-01", "--vocabulary", "10"]
    assert run(flags + ["--out", str(tmp_path / "ref.jsonl")], capsys)[0] == 0
    code, out, err = run(flags + ["--out", str(tmp_path / name)], capsys)
    assert code == 0 and err == ""
    head = (tmp_path / name).read_bytes()[:4]
    if name.endswith(".gz"):
        assert head[:2] == b"\x1f\x8b"
        head = gzip.open(tmp_path / name).read(4)
    if ".csv" in name:
        assert head == b"sour"  # the header row: source,event_id,...
    elif name.endswith(".parquet"):
        assert head == b"PAR1"
    else:
        assert head[:1] == b"{"

    def events(path):
        with read_events(path) as log:
            return [(e.source, e.event_id, e.customer_id, e.ts_ms, e.type, e.data) for e in log.events], log.stats.skipped

    assert events(tmp_path / name) == events(tmp_path / "ref.jsonl")
    assert out.startswith("wrote ") and f"({'parquet' if 'parquet' in name else 'csv' if 'csv' in name else 'jsonl'})" in out


# ---- alerts: --json, --tier, --csm, no hard wrap ------------------------------------------------------
def _alert(n: int, tier: str, csm: str | None, reason: str = "logins fell from 20 to 2 a week") -> dict:
    return {"alert_id": f"a{n}", "customer_id": f"cust-{n}", "tier": tier, "csm": csm, "band": "high",
            "score": 0.8, "threshold": 0.5, "trigger": "score", "model_version": "v1", "kind": "model",
            "event_time": "2026-05-01T00:00:00Z", "reasons": [{"text": reason}], "play": "call them"}


@pytest.fixture
def alert_topic(monkeypatch):
    """``churnwatch alerts`` reading these alerts (raw bytes as on the topic) instead of a broker."""
    import orjson

    import pipeline.kafka.feed

    alerts = [_alert(1, "vip", "Ana"), _alert(2, "standard", None), _alert(3, "VIP", "bob"),
              _alert(4, "smb", "ana", reason="x" * 150)]
    raw = [orjson.dumps(a) for a in alerts]
    raw[2] = raw[2].replace(b'"score":', b'"score" :')  # spacing as some producer wrote it: kept as is
    _stub_broker(monkeypatch)

    def follow_raw(settings, topic, stop, from_beginning=True, poll_ms=200):
        assert topic == settings.alerts_topic
        for value in raw:
            yield value, orjson.loads(value)

    monkeypatch.setattr(pipeline.kafka.feed, "follow_raw", follow_raw)
    return raw


def test_alerts_json_prints_each_alert_as_on_the_topic(alert_topic, capsys):
    code, out, err = run(["alerts", "--json"], capsys)
    assert code == 0 and err == ""
    assert out.encode().splitlines() == alert_topic


@pytest.mark.parametrize(("flags", "ids"), [
    (["--tier", "vip"], ["a1", "a3"]),
    (["--tier", "vip,smb"], ["a1", "a3", "a4"]),
    (["--tier", "standard", "--tier", "SMB"], ["a2", "a4"]),
    (["--csm", "ana"], ["a1", "a4"]),
    (["--csm", "-"], ["a2"]),
    (["--csm", "ana,-", "--tier", "vip"], ["a1"]),
    (["--tier", "enterprise"], []),
])
def test_alerts_tier_and_csm_filters(flags, ids, alert_topic, capsys):
    import orjson

    code, out, _ = run(["alerts", "--json", *flags], capsys)
    assert code == 0
    assert [orjson.loads(line)["alert_id"] for line in out.splitlines()] == ids
    code, out, _ = run(["alerts", *flags], capsys)
    assert [line.split()[3] for line in out.splitlines() if " ALERT " in line] == [f"cust-{i[1:]}" for i in ids]


def test_alerts_are_not_hard_wrapped_when_stdout_is_not_a_terminal(alert_topic, capsys):
    code, out, _ = run(["alerts", "--tier", "smb"], capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("2026-05-01 ALERT HIGH") and "model v1)" in lines[0]
    assert lines[1] == "    - " + "x" * 150  # one line, far past 80 columns
    assert lines[2] == "    play: call them" and len(lines) == 3
    assert "\x1b[" not in out  # no colour codes in a pipe either


# ---- progress bars: on a terminal only ----------------------------------------------------------------
def _on_terminal(argv: list[str], tmp_path) -> tuple[int, str, str]:
    """``churnwatch ARGV`` as a process whose stderr is a terminal (a pty) and stdout a pipe:
    (exit code, stdout, what the terminal showed)."""
    import os
    import pty
    import subprocess
    import threading

    master, slave = pty.openpty()
    shown = bytearray()

    def drain() -> None:  # the bars redraw ten times a second: keep the pty from filling up
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                return
            if not chunk:
                return
            shown.extend(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHURNWATCH_")}
    env.update(COLUMNS="120", TERM="xterm")
    try:
        proc = subprocess.run([sys.executable, "-m", "apps.cli", *argv], stdout=subprocess.PIPE, stderr=slave,
                              stdin=subprocess.DEVNULL, env=env, cwd=tmp_path, timeout=300)
    finally:
        os.close(slave)
        reader.join(10)
        os.close(master)
    return proc.returncode, proc.stdout.decode(), shown.decode(errors="replace")


def test_simulate_draws_a_bar_on_a_terminal_and_none_with_quiet_or_in_a_pipe(tmp_path):
    import subprocess

    flags = ["simulate", "--customers", "50", "--days", "30", "--start", "2024-01-01"]
    code, out, screen = _on_terminal(flags + ["--out", "a.csv"], tmp_path)
    assert code == 0 and out.startswith("wrote ")
    assert "simulating days" in screen and "32/32" in screen and "writing a.csv" in screen and "100%" in screen
    code, out, screen = _on_terminal(flags + ["--out", "b.jsonl", "--quiet"], tmp_path)
    assert code == 0 and out.startswith("wrote ") and screen == ""
    proc = subprocess.run([sys.executable, "-m", "apps.cli", *flags, "--out", str(tmp_path / "c.jsonl")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stderr == ""


def test_train_shows_the_reading_of_the_log_before_the_replay(tmp_path):
    from devtools import simulator as sim

    sim.write_jsonl(sim.simulate(sim.SimConfig(customers=120, days=220, start_ms=1_704_067_200_000, seed=3)),
                    tmp_path / "history.jsonl")
    code, out, screen = _on_terminal(["train", "--events", "history.jsonl", "--models-dir", "models", "--cv-folds", "1"],
                                     tmp_path)
    assert code == 0, out + screen
    reading, replay = screen.find("reading history.jsonl"), screen.find("replaying events")
    assert 0 <= reading < replay, screen[-2000:]


def test_the_worker_announces_its_addresses_as_a_json_line_with_json_logs(monkeypatch, capsys, restore_logging):
    import json

    import pipeline.worker.run
    import pipeline.kafka.topics
    from pipeline.kafka.topics import TopicReport, plan_topics

    _stub_broker(monkeypatch)
    free_ports(monkeypatch)
    monkeypatch.setattr(pipeline.kafka.topics, "ensure_topics",
                        lambda settings, cluster=None: TopicReport([], {}, plan_topics(settings, 1)))
    monkeypatch.setattr(pipeline.worker.run, "run_worker",
                        lambda settings, announce=None: announce("churnwatch worker: metrics on http://h:1/metrics"))
    code, out, _ = run(["worker", "--log-format", "json"], capsys)
    assert code == 0
    record = json.loads(out)
    assert (record["level"], record["logger"], record["message"]) == (
        "INFO", "churnwatch.worker", "churnwatch worker: metrics on http://h:1/metrics")


def test_a_busy_worker_port_with_json_logs_is_one_json_line(listening, monkeypatch, no_network, capfd,
                                                           restore_logging):
    import json

    free_ports(monkeypatch)
    # the log handler writes to the process's stderr: captured at the file descriptor
    code, out, err = run(["worker", "--log-format", "json", "--web-port", str(listening)], capfd)
    assert code == 2 and out == ""
    record = json.loads(err.strip().splitlines()[-1])
    assert record["message"] == (f"churnwatch worker: error: cannot listen on 127.0.0.1:{listening}: address "
                                 f"already in use; choose another port with --web-port or CHURNWATCH_WEB_PORT")
