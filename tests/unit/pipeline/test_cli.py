"""Unit tests for pipeline.cli: argument errors are one line + exit 2, and the offline subcommands work.

No broker, worker or producer is ever started: the subcommands that would talk to Kafka are replaced
by recorders (``stub_commands``) or their network helpers are made to fail the test if reached.
"""

from __future__ import annotations

import sys
import types

import pytest

import pipeline.cli as cli
from pipeline.contract import parse_ts
from pipeline.settings import Settings
from tests.other_user import run_python, shared_dir  # noqa: F401 (shared_dir is a fixture)

NETWORK_COMMANDS = ("cmd_broker", "cmd_topics", "cmd_simulate", "cmd_worker", "cmd_alerts", "cmd_demo")


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

    for name in NETWORK_COMMANDS:
        monkeypatch.setattr(cli, name, recorder(name))
    return seen


@pytest.fixture
def no_network(monkeypatch):
    """For commands run for real: fail loudly instead of reaching for a broker."""
    import pipeline.connection
    import pipeline.topics

    def boom(*a, **k):
        raise AssertionError("the command tried to reach a broker")

    monkeypatch.setattr(pipeline.topics, "ensure_topics", boom)
    monkeypatch.setattr(pipeline.connection, "check_connection", boom)


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
    ["simulate", "--out"],
    ["simulate", "--frobnicate"],
    ["frobnicate"],
    [],
    ["--version"],
    ["topics"],
    ["topics", "delete"],
    ["topics", "create", "--partitions", "0"],
    ["broker", "--port", "-1"],
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

    monkeypatch.setattr(cli, "cmd_demo", interrupted)
    assert run(["demo"], capsys)[0] == 130


def test_os_error_is_one_line(monkeypatch, capsys):
    def fails(args):
        raise FileNotFoundError(2, "No such file or directory", "/data/out.jsonl")

    monkeypatch.setattr(cli, "cmd_simulate", fails)
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
    import pipeline.app

    monkeypatch.setattr(pipeline.app, "run_worker", lambda s: pytest.fail("worker started"))
    code, out, err = run(["worker", "--metrics-port", "70000"], capsys)
    assert_one_line_error(code, out, err)
    assert "CHURNWATCH_METRICS_PORT (--metrics-port): must be 0..65535" in err and "got 70000" in err


@pytest.mark.parametrize("argv", [["inbox", "--host", "0.0.0.0"], ["inbox", "--host", "192.168.1.20", "--port", "9000"]])
def test_inbox_on_a_public_address_needs_a_guard(argv, monkeypatch, no_network, capsys):
    code, out, err = run(argv, capsys)
    assert_one_line_error(code, out, err)
    assert "refusing to serve the inbox" in err and "CHURNWATCH_INBOX_TOKEN" in err


def test_worker_web_on_a_public_address_needs_a_guard(monkeypatch, no_network, capsys):
    import pipeline.app

    monkeypatch.setattr(pipeline.app, "run_worker", lambda s: pytest.fail("worker started"))
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
def _stub_training(monkeypatch) -> None:
    stub = types.ModuleType("training.train")

    def train_from_log(*a, **k):
        raise AssertionError("training started despite a missing event log")

    stub.train_from_log = train_from_log
    monkeypatch.setitem(sys.modules, "training.train", stub)


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
    monkeypatch.setitem(sys.modules, "training.train", None)  # makes `import training.train` fail
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
    "alerts": ["alerts"], "demo": ["demo"], "config": ["config"],
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
    for name in dir(cli):
        if name.startswith("cmd_"):
            monkeypatch.setattr(cli, name, lambda args, name=name: reached.append(name) or 0)
    monkeypatch.setenv(variable, value)
    code, out, err = run(EVERY_COMMAND[command], capsys)
    assert_one_line_error(code, out, err)
    assert err == f"churnwatch {command}: error: {fragment}" + err.split(fragment, 1)[1]
    assert reached == []


def _stub_broker(monkeypatch, observed=None, fail=None):
    """The connection check and the topic description, without a broker."""
    import pipeline.connection
    import pipeline.topics
    from pipeline.connection import Cluster

    def check(settings, timeout=None):
        if fail:
            raise pipeline.connection.ConnectError(fail)
        return Cluster(broker_ids=(1,), server="127.0.0.1:9092")

    monkeypatch.setattr(pipeline.connection, "check_connection", check)
    monkeypatch.setattr(pipeline.topics, "describe", lambda settings, names: observed(settings) if observed else {})


def test_topics_check_exits_1_and_says_what_is_wrong(monkeypatch, capsys):
    _stub_broker(monkeypatch)
    code, out, err = run(["topics", "check"], capsys)
    assert code == 1 and err == ""
    assert "churn.interactions: missing (run 'churnwatch topics create')" in out
    assert out.splitlines()[0] == "cluster: 1 broker; want replication factor 1, min.insync.replicas 1, 4 partitions"


def test_topics_check_exits_0_when_all_is_well(monkeypatch, capsys):
    from pipeline.topics import ObservedTopic, plan_topics

    def healthy(settings):
        return {t.name: ObservedTopic(t.name, t.partitions, 1, 0, dict(t.configs)) for t in plan_topics(settings, 1).topics}

    _stub_broker(monkeypatch, observed=healthy)
    code, out, err = run(["topics", "check"], capsys)
    assert code == 0 and err == "" and out.splitlines()[-1] == "all topics ok"


@pytest.mark.parametrize("argv", [["topics", "create"], ["topics", "check"], ["worker"], ["alerts"], ["inbox"],
                                  ["export", "--out", "x.jsonl"], ["simulate"]])
def test_a_failed_connection_check_is_one_line_and_nothing_else_runs(argv, monkeypatch, capsys):
    import pipeline.app

    _stub_broker(monkeypatch, fail="cannot use broker kafka://127.0.0.1:9092: 127.0.0.1:9092: connection refused")
    monkeypatch.setattr(pipeline.app, "run_worker", lambda s: pytest.fail("worker started"))
    code, out, err = run(argv, capsys)
    assert_one_line_error(code, out, err)
    assert err.endswith(": error: cannot use broker kafka://127.0.0.1:9092: 127.0.0.1:9092: connection refused\n")


def test_worker_runs_with_the_replication_resolved_from_the_cluster(monkeypatch, capsys):
    import pipeline.app
    import pipeline.topics
    from pipeline.topics import TopicReport, plan_topics

    _stub_broker(monkeypatch)
    started = []
    monkeypatch.setattr(pipeline.topics, "ensure_topics",
                        lambda settings, cluster=None: TopicReport([], {}, plan_topics(settings, 5)))
    monkeypatch.setattr(pipeline.app, "run_worker", started.append)
    assert run(["worker"], capsys)[0] == 0
    assert (started[0].replication_factor, started[0].min_insync_replicas) == (3, 2)


_CURRENT_AS_OTHER_USER = """
import sys
from pipeline.registry import Registry
from pipeline.scoring import ModelHolder
holder = ModelHolder(Registry(sys.argv[1]))
status, detail = holder.refresh()
print(status, holder.model.version if holder.model else detail)
"""


def test_models_promote_and_rollback_leave_the_current_model_readable_by_another_user(shared_dir, capsys):
    """`churnwatch models promote` / `rollback` of versions an older churnwatch left private (0700/0600),
    run under umask 077: afterwards a worker running as another user loads the current model."""
    from pipeline.registry import Registry
    from tests.other_user import umask
    from tests.unit.pipeline.test_registry import make_private, modes
    from tests.unit.pipeline.test_scoring import make_model_text, meta

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
    cfg = cli._train_config(args)
    assert (cfg.search_candidates, cfg.search_seconds, cfg.cv_folds) == (8, 30.0, 4)
    assert cfg.train_until_ms == parse_ts("2024-01-10T00:00:00Z") and cfg.test_from_ms is None
    default = cli._train_config(cli.build_parser().parse_args(["train", "--events", "x.jsonl"]))
    assert (default.search_candidates, default.cv_folds) == (0, 3)  # the search is off unless asked for
