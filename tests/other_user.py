"""Run Python code as another user, to prove that a registry one user wrote another user can read.

Why: the compose workers run as uid 10001 and read a registry the operator trained on the host through
a read-only mount; a version directory left ``0700`` by ``mkdtemp`` cannot be read there. The tests run
as root in CI, so they can start a child with ``user=``/``group=`` (``nobody``, 65534) and load the model
with churnwatch's own loader in it.

The child needs an interpreter, churnwatch's dependencies and churnwatch itself that the other user can
read. The test interpreter is tried first; a virtualenv made from an interpreter under ``/root`` (mode
0700, e.g. pyenv's) cannot be started by another user, so the system interpreter of the same version is
tried next, with this virtualenv's ``site-packages`` and the repository on ``PYTHONPATH``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

REPO = Path(__file__).resolve().parents[1]
NOBODY = 65534


def _can_start(argv: list[str], env: dict[str, str], uid: int) -> bool:
    code = "import lightgbm, orjson, pipeline.model.scoring"
    try:
        proc = subprocess.run([*argv, "-c", code], env=env, cwd="/", user=uid, group=uid, extra_groups=[],
                              capture_output=True, timeout=60)
    except OSError:  # the interpreter itself cannot be executed by that user
        return False
    return proc.returncode == 0


def python_for(uid: int = NOBODY) -> tuple[list[str], dict[str, str]]:
    """(interpreter argv, environment) with which ``uid`` can import churnwatch; skips the test when the
    suite is not run as root (only root may start a process as another user) or no interpreter fits."""
    if os.geteuid() != 0:
        pytest.skip("needs root: only root can start the child process as another user (uid 65534)")
    base = {k: v for k, v in os.environ.items() if not k.startswith(("CHURNWATCH_", "PYTHON"))}
    base.update(HOME="/", OMP_NUM_THREADS="1")
    own = dict(base, PYTHONPATH=str(REPO))
    if _can_start([sys.executable], own, uid):
        return [sys.executable], own
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site = sysconfig.get_paths()["purelib"]
    shared = dict(base, PYTHONPATH=os.pathsep.join([str(REPO), site]))
    for candidate in (f"/usr/bin/{version}", f"/usr/local/bin/{version}"):
        if Path(candidate).is_file() and _can_start([candidate, "-s"], shared, uid):
            return [candidate, "-s"], shared
    pytest.skip(f"no Python interpreter that uid {uid} can start with churnwatch importable: {sys.executable} "
                f"and /usr/bin/{version} were tried (is {REPO} or {site} under a directory only root can enter?)")


def run_python(code: str, *args: str, uid: int = NOBODY, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """Run ``code`` with ``python -c`` (``args`` in ``sys.argv[1:]``) as ``uid`` (group ``uid``, no
    supplementary groups)."""
    argv, env = python_for(uid)
    return subprocess.run([*argv, "-c", code, *args], env=env, cwd="/", user=uid, group=uid, extra_groups=[],
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A fresh directory any user can enter (pytest's ``tmp_path`` lies under a ``0700`` directory of
    root's), standing for the host directory mounted into the container; removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="churnwatch-shared-"))
    try:
        os.chmod(path, 0o755)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextmanager
def umask(mask: int) -> Iterator[None]:
    """Run a block under ``mask`` (a writer with a strict umask, e.g. 077), then restore the old one."""
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)
