"""deploy/requirements.lock, what the image installs, cannot drift from pyproject.toml unnoticed.

Why: the Dockerfile installs the lock alone (``pip install --require-hashes --no-deps``), so a
dependency added to pyproject.toml but not locked would be missing from the image, and a raised lower
bound would not be honoured, while every test here (run from an editable install) still passes. The
build's ``pip check`` would catch the first only when someone builds the image. `make lock` refreshes it.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "deploy" / "requirements.lock"
LOCK_INPUT = ROOT / "deploy" / "requirements.in"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
MAKEFILE = ROOT / "Makefile"


def read_lock(text: str) -> dict[str, tuple[Version, list[str]]]:
    """``{canonical name: (version, sha256 hashes)}`` of a pip requirements file with hashes."""
    entries: dict[str, tuple[Version, list[str]]] = {}
    logical = re.sub(r"\\\n", " ", text)
    for line in logical.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;]+)(?:\s*;[^-]*)?((?:\s+--hash=\S+)*)\s*$", line)
        assert m, f"not an exact pin with hashes: {line[:120]!r}"
        name = canonicalize_name(m.group(1))
        assert name not in entries, f"{name} is pinned twice"
        hashes = re.findall(r"--hash=sha256:([0-9a-f]{64})\b", m.group(3))
        entries[name] = (Version(m.group(2)), hashes)
    return entries


@pytest.fixture(scope="module")
def lock() -> dict[str, tuple[Version, list[str]]]:
    return read_lock(LOCK.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _applies(req: Requirement) -> bool:
    """Whether a requirement applies in the image (CPython 3.11 on Linux)."""
    env = {"python_version": "3.11", "python_full_version": "3.11.13", "sys_platform": "linux",
           "platform_system": "Linux", "os_name": "posix", "implementation_name": "cpython",
           "platform_python_implementation": "CPython", "extra": ""}
    return req.marker is None or req.marker.evaluate(env)


def _uncovered(requirements: list[str], lock: dict[str, tuple[Version, list[str]]]) -> list[str]:
    problems = []
    for text in requirements:
        req = Requirement(text)
        if not _applies(req):
            continue
        name = canonicalize_name(req.name)
        if name not in lock:
            problems.append(f"{req} is not in the lock")
        elif not req.specifier.contains(lock[name][0], prereleases=True):
            problems.append(f"{req} is not satisfied by the locked {name}=={lock[name][0]}")
    return problems


def test_the_lock_covers_every_dependency_of_pyproject(lock, pyproject) -> None:
    problems = _uncovered(pyproject["project"]["dependencies"], lock)
    assert not problems, "run `make lock`:\n" + "\n".join(problems)


def test_the_lock_covers_the_build_backend(lock, pyproject) -> None:
    """The image builds churnwatch with --no-build-isolation, so the backend comes from the lock too."""
    build = pyproject["build-system"]["requires"]
    problems = _uncovered(build, lock)
    assert not problems, "run `make lock`:\n" + "\n".join(problems)
    lock_input = [ln.strip() for ln in LOCK_INPUT.read_text(encoding="utf-8").splitlines()
                  if ln.strip() and not ln.startswith("#")]
    assert sorted(lock_input) == sorted(build), "deploy/requirements.in must list [build-system] requires"


def test_every_pin_is_exact_and_hashed(lock) -> None:
    assert len(lock) >= 20
    unhashed = [name for name, (_, hashes) in lock.items() if not hashes]
    assert not unhashed, f"pins without a sha256 (pip --require-hashes refuses them): {unhashed}"
    assert canonicalize_name("churnwatch") not in lock  # the project itself is installed from the source


def test_the_checker_notices_drift(lock) -> None:
    """The checks above can fail: a new dependency, a raised bound, a marker for another platform."""
    numpy = lock["numpy"][0]
    assert _uncovered(["not-a-locked-package>=1"], lock) == ["not-a-locked-package>=1 is not in the lock"]
    assert _uncovered([f"numpy>{numpy}"], lock)
    assert _uncovered([f"numpy>={numpy}", "pywin32>=300; sys_platform == 'win32'"], lock) == []
    with pytest.raises(AssertionError, match="exact pin"):
        read_lock("numpy>=2\n")


def test_the_image_installs_the_lock_with_hashes_and_nothing_else() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert re.search(r"^COPY deploy/requirements\.lock ", text, re.M)
    assert re.search(r"pip install --require-hashes --no-deps -r requirements\.lock", text)
    installs = re.findall(r"pip install ([^\n\\&]*)", text)
    assert all("--require-hashes" in i or "--no-deps" in i for i in installs), installs
    assert re.search(r"pip install --no-deps --no-build-isolation \.", text)
    assert "pip check" in text


def test_the_lock_is_resolved_for_the_images_python() -> None:
    makefile = MAKEFILE.read_text(encoding="utf-8")
    m = re.search(r"uv pip compile .*?--python-version (\d+\.\d+)", makefile, re.S)
    assert m, "the Makefile's lock target names the Python version it resolves for"
    base = re.search(r"^FROM python:(\d+\.\d+)\.\d+", DOCKERFILE.read_text(encoding="utf-8"), re.M)
    assert base and base.group(1) == m.group(1), "deploy/Dockerfile's Python and the lock's must agree"
    assert "make lock" in LOCK.read_text(encoding="utf-8").splitlines()[1]  # the header says how to refresh
