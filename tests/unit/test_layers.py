"""The layers of the code base, read from the imports: what may import what, no cycles, small modules.

The README's Layout section draws the packages as floors. A newcomer can trust that picture only if the
code keeps to it, so these tests read every import (module-level and the lazy ones inside functions)
with :mod:`ast` — nothing is imported or run — and fail with the offending file and line when:

* a package imports one it must not (a floor importing one above it, the pure core importing an I/O
  library, the stream half importing the offline half);
* modules import each other in a cycle, even through a function-level import (a cycle dodged by a lazy
  import is still a cycle a reader has to untangle);
* a module outgrows what one reads in one sitting.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("apps", "devtools", "pipeline", "training")

#: package -> the packages it may import (its own modules are always allowed). The longest matching
#: prefix of a module's name decides its package. Read it bottom-up: the core imports nothing of ours.
ALLOWED: dict[str, set[str]] = {
    "pipeline.core": set(),
    "pipeline.config": {"pipeline.core"},
    "pipeline.model": {"pipeline.core"},
    "pipeline.kafka": {"pipeline.core", "pipeline.config"},
    "pipeline.web": {"pipeline.core", "pipeline.config"},
    "pipeline.worker": {"pipeline.core", "pipeline.config", "pipeline.model", "pipeline.kafka", "pipeline.web"},
    "training.data": {"pipeline.core", "pipeline.config", "pipeline.kafka"},
    "training.rows": {"pipeline.core", "training.data"},
    "training.assess": {"pipeline.core", "pipeline.config", "pipeline.model", "pipeline.kafka", "training.data", "training.rows"},
    "training.fit": {"pipeline.core", "pipeline.model", "training.data", "training.rows", "training.assess"},
    "training.report": {"pipeline.core", "pipeline.model", "training.rows", "training.assess", "training.fit"},
    "training.runs": {"pipeline.core", "pipeline.config", "pipeline.model", "training.data", "training.rows",
                      "training.assess", "training.fit", "training.report"},
    "devtools": {"pipeline.core", "pipeline.config", "pipeline.kafka"},
    "apps": {"pipeline", "training", "devtools"},
}

#: Libraries that do I/O, keep time or talk to Kafka: the pure core must not need any of them, so the stream and
#: training can run it and a unit test can call it without a broker.
NOT_IN_CORE = {"faust", "mode", "kafka", "aiokafka", "aiohttp", "prometheus_client", "lightgbm", "duckdb",
               "pyarrow", "socket", "subprocess", "asyncio", "threading", "time", "os", "pathlib", "shutil",
               "tempfile", "logging"}

#: One module is one concept; past this many lines it holds several (tests are not counted).
MAX_LINES = 450


@dataclass(frozen=True)
class Import:
    source: str  #: dotted name of the importing module
    target: str  #: dotted name of the imported module (ours), or the top-level name of a library
    line: int
    ours: bool


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of ``name`` that is one of our modules (``a.b.func`` -> ``a.b``)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports(modules: dict[str, Path]) -> list[Import]:
    found: list[Import] = []
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    here = name.split(".") if is_package else name.split(".")[:-1]
                    here = here[:len(here) - node.level + 1]
                    base = ".".join(here + ([base] if base else []))
                targets = [f"{base}.{a.name}" for a in node.names] if base else []
            for t in targets:
                top = t.split(".")[0]
                if top in PACKAGES:
                    mod = _resolve(t, modules)
                    if mod and mod != name:
                        found.append(Import(name, mod, node.lineno, True))
                else:
                    found.append(Import(name, top, node.lineno, False))
    return found


def _package_of(module: str) -> str:
    best = ""
    for pkg in ALLOWED:
        if (module == pkg or module.startswith(pkg + ".")) and len(pkg) > len(best):
            best = pkg
    return best


MODULES = _modules()
IMPORTS = _imports(MODULES)


def _where(i: Import) -> str:
    return f"{MODULES[i.source].relative_to(ROOT)}:{i.line} imports {i.target}"


def test_every_module_belongs_to_a_layer() -> None:
    assert [m for m in MODULES if m not in PACKAGES and not _package_of(m)] == []


def test_no_package_imports_a_layer_it_must_not() -> None:
    wrong = []
    for i in IMPORTS:
        if not i.ours:
            continue
        src, dst = _package_of(i.source), _package_of(i.target)
        if src == dst or not src or i.target in PACKAGES:
            continue
        if not any(dst == a or dst.startswith(a + ".") for a in ALLOWED[src]):
            wrong.append(_where(i))
    assert wrong == []


def test_the_core_uses_no_io_library() -> None:
    wrong = [_where(i) for i in IMPORTS if not i.ours and i.target in NOT_IN_CORE
             and _package_of(i.source) == "pipeline.core"]
    assert wrong == []


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_no_modules_import_each_other_in_a_cycle() -> None:
    edges: dict[str, set[str]] = defaultdict(set)
    for i in IMPORTS:
        # A package's face re-exports its modules; importing through it is importing them.
        if i.ours and not (MODULES[i.source].name == "__init__.py" and i.target.startswith(i.source + ".")):
            edges[i.source].add(i.target)
    assert _cycles(edges) == []


def test_no_packages_import_each_other_in_a_cycle() -> None:
    edges: dict[str, set[str]] = defaultdict(set)
    for i in IMPORTS:
        if i.ours and _package_of(i.source) != _package_of(i.target):
            edges[_package_of(i.source)].add(_package_of(i.target))
    assert _cycles(edges) == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_is_small_enough_to_read_in_one_sitting(module: str) -> None:
    lines = MODULES[module].read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_LINES, f"{MODULES[module].relative_to(ROOT)} has {lines} lines"


def test_cycle_finder_finds_a_cycle_and_only_that() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_relative_and_lazy_imports_are_read() -> None:
    sample = {i.target for i in IMPORTS if i.source == "apps.cli" or i.source.startswith("apps.cli.")}
    assert any(t.startswith("training.") for t in sample), "the CLI's lazy imports of training were not seen"
