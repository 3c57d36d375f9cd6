"""The documentation that users rely on stays in step with the code."""

from __future__ import annotations

import re
from pathlib import Path

from pipeline.config.settings import Settings
from pipeline.core.features import FEATURES

ROOT = Path(__file__).resolve().parents[2]


def _catalogue_names() -> set[str]:
    """The built-in features' table (before the learnt spec's section)."""
    text = (ROOT / "docs" / "features.md").read_text().split("## Feature spec")[0]
    names: set[str] = set()
    for cell in re.findall(r"^\| `([^`]+)` \|", text, flags=re.M):
        m = re.match(r"^(.*)\{([\d,]+)\}(.*)$", cell)
        if m:
            names |= {f"{m.group(1)}{w}{m.group(3)}" for w in m.group(2).split(",")}
        else:
            names.add(cell)
    return names


def test_every_feature_is_in_the_catalogue_and_nothing_else() -> None:
    assert _catalogue_names() == set(FEATURES)


def test_every_spec_feature_has_a_row_in_the_catalogue() -> None:
    """Each row of the spec table is a name pattern; every name a spec compiles to matches one, and
    every pattern is used."""
    from pipeline.core.spec import FeatureSpec, compile_spec

    text = (ROOT / "docs" / "features.md").read_text().split("## Feature spec")[1]
    patterns = {}
    for cell in re.findall(r"^\| `([^`]+)` \|", text, flags=re.M):
        regex = re.escape(cell)
        for part in ("n", "a", "b"):
            regex = regex.replace(re.escape("{" + part + "}"), "[a-z0-9_]+")
        for part in ("w", "m", "s", "h"):
            regex = regex.replace(re.escape("{" + part + "}"), "[0-9]+")
        patterns[cell] = re.compile(f"^{regex}$")
    spec = FeatureSpec(types=("post_created", "like"), ratios=(("like", "post_created"),), users=True, values=True)
    names = compile_spec(spec).names[len(FEATURES):]
    used: set[str] = set()
    for name in names:
        hits = [cell for cell, rx in patterns.items() if rx.match(name)]
        assert hits, name
        used |= set(hits)
    assert used == set(patterns), set(patterns) - used


def test_readme_starts_with_the_two_commands() -> None:
    head = (ROOT / "README.md").read_text().split("---")[0]
    commands = re.findall(r"^make \w+", head, flags=re.M)
    assert commands == ["make demo", "make test"]


def test_readme_documents_every_setting() -> None:
    readme = (ROOT / "README.md").read_text()
    for env, _ in Settings.documented():
        short = "_" + env.split("_", 1)[1]
        assert env in readme or f"`{short}`" in readme or short in readme, env


def test_readme_settings_table_is_the_generated_one() -> None:
    """The table is written by ``python -m pipeline.config.settings_table --readme`` from the field descriptions."""
    from pipeline.config.settings_table import README_BEGIN, README_END, markdown_table

    readme = (ROOT / "README.md").read_text()
    assert readme.count(README_BEGIN) == 1 and readme.count(README_END) == 1
    table = readme.split(README_BEGIN, 1)[1].split(README_END, 1)[0].strip("\n") + "\n"
    assert table == markdown_table(), "README settings table is stale: run python -m pipeline.config.settings_table --readme"
    for name, field in Settings.model_fields.items():
        assert field.description, f"CHURNWATCH_{name.upper()} has no description"


def test_every_command_and_worker_flag_is_in_the_readme() -> None:
    import argparse

    from apps.cli import build_parser

    readme = (ROOT / "README.md").read_text()
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert [name for name in sub.choices if f"`churnwatch {name}" not in readme] == []
    worker = sub.choices["worker"]
    flags = [f for a in worker._actions for f in a.option_strings if f.startswith("--") and f != "--help"]
    assert [f for f in flags if f not in readme] == []
    assert "churnwatch completion bash >" in readme and "churnwatch --version" in readme


def _layout_paths() -> list[str]:
    """The folders the README's Layout section draws, as paths (nesting by indentation)."""
    block = (ROOT / "README.md").read_text().split("## Layout", 1)[1].split("```", 2)[1]
    paths: list[str] = []
    stack: list[tuple[int, str]] = []
    for line in block.splitlines():
        m = re.match(r"^( *)([a-z_]+/)(?:\s|$)", line)
        if not m:
            continue
        depth = len(m.group(1))
        while stack and stack[-1][0] >= depth:
            stack.pop()
        path = (stack[-1][1] if stack else "") + m.group(2)
        stack.append((depth, path))
        paths.append(path)
    return paths


def test_readme_layout_draws_every_package_and_nothing_else() -> None:
    """Every Python package of the code (a folder with ``__init__.py``) is drawn, and every drawn folder
    exists, so the picture a newcomer starts from is the tree."""
    drawn = _layout_paths()
    assert len(drawn) == len(set(drawn)), drawn
    assert [p for p in drawn if not (ROOT / p).is_dir()] == []
    packages = {str(p.parent.relative_to(ROOT)) + "/" for top in ("apps", "devtools", "pipeline", "training")
                for p in (ROOT / top).rglob("__init__.py")}
    assert packages - set(drawn) == set()
    for top in ("models/", "deploy/", "tests/", "bench/", "docs/"):
        assert top in drawn
