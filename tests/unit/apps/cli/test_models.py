"""Unit tests for apps.cli.models (``churnwatch models list|promote|rollback``)."""

from __future__ import annotations

import pytest

from tests.other_user import run_python, shared_dir  # noqa: F401 (shared_dir is a fixture)
from tests.unit.apps.cli.harness import assert_one_line_error, run


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
