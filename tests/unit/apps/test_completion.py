"""Unit tests for apps.completion: the scripts are accepted by their shells and complete for real.

bash is always there; zsh and fish are Debian packages (DEBIAN_TEST_PACKAGES in the Makefile, installed
by `make test`): their tests are skipped on a machine without them.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

import apps.cli as cli
from apps.cli.args import _PATH_DESTS
from apps.completion import describe, script

COMMANDS = ["broker", "topics", "simulate", "worker", "train", "dataset", "export", "inbox", "evaluate", "score",
            "models", "alerts", "demo", "config", "completion"]


def _script(shell: str, tmp_path: Path) -> Path:
    path = tmp_path / f"churnwatch.{shell}"
    path.write_text(script(shell, cli.build_parser(), _PATH_DESTS))
    return path


def test_describe_lists_every_subcommand_with_its_flags_and_choices():
    top, commands = describe(cli.build_parser(), _PATH_DESTS)
    assert [c.name for c in commands] == COMMANDS
    assert {n for o in top for n in o.names} == {"-h", "--help", "--version"}
    by_name = {c.name: c for c in commands}
    worker = {n: o for o in by_name["worker"].options for n in o.names}
    assert worker["--log-level"].choices == ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
    assert worker["--web-port"].takes_value and not worker["--emit-scores"].takes_value
    assert {n: o for o in by_name["train"].options for n in o.names}["--events"].path
    assert by_name["topics"].positional_choices == ["create", "check"]
    assert by_name["completion"].positional_choices == ["bash", "zsh", "fish"]


def _bash_complete(path: Path, words: list[str]) -> list[str]:
    """What bash's completion function offers for ``words`` (the last one being completed)."""
    quoted = " ".join(f"'{w}'" for w in words)
    program = (f"source {path}\nCOMP_WORDS=({quoted})\nCOMP_CWORD={len(words) - 1}\n"
               f"_churnwatch\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n")
    proc = subprocess.run(["bash", "--norc", "--noprofile", "-c", program], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return [line for line in proc.stdout.splitlines() if line]


def test_bash_accepts_the_script_and_completes(tmp_path):
    path = _script("bash", tmp_path)
    proc = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert _bash_complete(path, ["churnwatch", ""]) == COMMANDS + ["-h", "--help", "--version"]
    assert _bash_complete(path, ["churnwatch", "wor"]) == ["worker"]
    assert _bash_complete(path, ["churnwatch", "worker", "--web"]) == ["--web-port"]
    assert _bash_complete(path, ["churnwatch", "worker", "--log-level", "W"]) == ["WARNING"]
    assert _bash_complete(path, ["churnwatch", "topics", "c"]) == ["create", "check"]
    assert _bash_complete(path, ["churnwatch", "completion", "f"]) == ["fish"]
    assert _bash_complete(path, ["churnwatch", "alerts", "--"]) == [
        "--help", "--new", "--json", "--tier", "--csm", "--broker", "--models-dir"]
    # a flag that takes a value offers nothing of its own: bash's default (file names) applies
    assert _bash_complete(path, ["churnwatch", "train", "--events", ""]) == []


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh not installed (Debian package zsh; make test installs it)")
def test_zsh_accepts_the_script_and_loads_it(tmp_path):
    path = _script("zsh", tmp_path)
    proc = subprocess.run(["zsh", "-n", str(path)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    # sourced after compinit it registers itself for churnwatch
    program = f"autoload -U compinit && compinit -u -D\nsource {path}\nprint -r -- $_comps[churnwatch]"
    proc = subprocess.run(["zsh", "-f", "-c", program], capture_output=True, text=True, timeout=60,
                          env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "_churnwatch"


@pytest.mark.skipif(shutil.which("fish") is None, reason="fish not installed (Debian package fish; make test installs it)")
def test_fish_accepts_the_script_and_completes(tmp_path):
    path = _script("fish", tmp_path)
    proc = subprocess.run(["fish", "-n", str(path)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr

    def complete(line: str) -> list[str]:
        program = f"source {path}; complete -C '{line}'"
        out = subprocess.run(["fish", "--no-config", "-c", program], capture_output=True, text=True, timeout=60,
                             env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
        assert out.returncode == 0, out.stderr
        return [row.split("\t")[0] for row in out.stdout.splitlines()]

    assert set(complete("churnwatch ")) == set(COMMANDS)
    assert complete("churnwatch wor") == ["worker"]
    assert set(complete("churnwatch worker --log-level ")) == {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
    assert {"--web-port", "--metrics-port", "--emit-scores"} <= set(complete("churnwatch worker --"))
    assert set(complete("churnwatch topics ")) >= {"create", "check"}
