"""Unit tests for apps.cli.entry: argument and settings errors are one line + exit 2 for every command,
exit codes of interrupts and OS errors, --version, every flag's help and default, the completion command."""

from __future__ import annotations

import pytest

import apps.cli as cli
from apps.cli import demo, entry, simulate
from tests.unit.apps.cli.harness import assert_one_line_error, free_ports, run, stub_broker

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


@pytest.mark.parametrize("argv", [
    ["topics", "create", "--broker", "localhost:9092"],
    ["topics", "create", "--partitions", "3", "--broker", "nope"],
    ["config", "--broker", "127.0.0.1:9092"],
])


def test_bad_broker_flag(argv, no_network, capsys):
    code, out, err = run(argv, capsys)
    assert_one_line_error(code, out, err)
    assert "CHURNWATCH_BROKER (--broker): must look like kafka://host:port" in err


def test_bad_environment_variable(monkeypatch, capsys):
    monkeypatch.setenv("CHURNWATCH_PARTITIONS", "four")
    code, out, err = run(["config"], capsys)
    assert_one_line_error(code, out, err)
    assert "CHURNWATCH_PARTITIONS" in err and "'four'" in err


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


@pytest.mark.parametrize("argv", [["topics", "create"], ["topics", "check"], ["worker"], ["alerts"], ["inbox"],
                                  ["export", "--out", "x.jsonl"], ["simulate"]])


def test_a_failed_connection_check_is_one_line_and_nothing_else_runs(argv, monkeypatch, capsys):
    import pipeline.worker.run

    from devtools.broker import free_port

    free_ports(monkeypatch)
    stub_broker(monkeypatch, fail="cannot use broker kafka://127.0.0.1:9092: 127.0.0.1:9092: connection refused")
    monkeypatch.setattr(pipeline.worker.run, "run_worker", lambda s: pytest.fail("worker started"))
    code, out, err = run(argv + (["--port", str(free_port())] if argv == ["inbox"] else []), capsys)
    assert_one_line_error(code, out, err)
    assert err.endswith(": error: cannot use broker kafka://127.0.0.1:9092: 127.0.0.1:9092: connection refused\n")


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
