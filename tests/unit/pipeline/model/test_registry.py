"""The on-disk model registry: versions, atomic promotion, rollback, corruption detection."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path
from typing import Any

import orjson
import pytest

from pipeline.model import registry as registry_module
from pipeline.model.registry import META_FILE, MODEL_FILE, CorruptVersion, Registry, RegistryError, sha256_file
from tests.other_user import NOBODY, run_python, shared_dir, umask  # noqa: F401 (shared_dir is a fixture)

META = {"features": ["a", "b"], "horizon_days": 30}


def leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.name.startswith("."))


def test_save_writes_numbered_versions_with_a_content_hash(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "models")
    assert reg.versions() == [] and reg.current() is None
    v1 = reg.save("model one", META)
    v2 = reg.save("model two", META)
    assert (v1, v2) == ("v1", "v2") and reg.versions() == ["v1", "v2"]
    meta = reg.meta("v2")
    assert meta["version"] == "v2" and meta["horizon_days"] == 30
    assert meta["sha256"] == sha256_file(reg.path("v2") / MODEL_FILE)
    assert (reg.path("v1") / MODEL_FILE).read_text() == "model one"
    assert reg.current() is None  # saving never promotes
    assert leftovers(reg.root) == []


def test_versions_sort_numerically(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    for _ in range(11):
        reg.save("m", META)
    assert reg.versions()[-2:] == ["v10", "v11"]
    assert reg.next_version() == "v12"


def test_save_copies_extra_files(tmp_path: Path) -> None:
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "roc.png").write_bytes(b"png")
    (tmp_path / "metrics.json").write_text("{}")
    reg = Registry(tmp_path / "models")
    v = reg.save("m", META, files={"metrics.json": tmp_path / "metrics.json", "report": tmp_path / "report"})
    assert (reg.path(v) / "metrics.json").read_text() == "{}"
    assert (reg.path(v) / "report" / "roc.png").read_bytes() == b"png"


def test_a_failed_save_leaves_nothing_behind(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "models")
    with pytest.raises(OSError):
        reg.save("m", META, files={"missing.json": tmp_path / "does-not-exist.json"})
    assert reg.versions() == [] and leftovers(reg.root) == []


def test_concurrent_saves_get_distinct_versions(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "models")
    names: list[str] = []
    lock = threading.Lock()

    def save(i: int) -> None:
        v = Registry(reg.root).save(f"model {i}", META)
        with lock:
            names.append(v)

    threads = [threading.Thread(target=save, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(names, key=lambda v: int(v[1:])) == [f"v{i}" for i in range(1, 9)]
    for v in names:
        reg.verify(v)  # each directory is complete and self-consistent


def test_promote_and_rollback(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    for i in range(3):
        reg.save(f"m{i}", META)
    reg.promote("v1")
    reg.promote("v2")
    reg.promote("v3")
    assert reg.current() == "v3" and reg.history() == ["v1", "v2", "v3"]
    assert reg.rollback() == "v2" and reg.current() == "v2"
    assert reg.rollback() == "v1" and reg.current() == "v1"
    with pytest.raises(RegistryError, match="nothing to roll back"):
        reg.rollback()
    assert reg.current() == "v1"


def test_rollback_skips_repeated_promotions_of_the_current_version(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    reg.save("a", META)
    reg.save("b", META)
    reg.promote("v1")
    reg.promote("v2")
    reg.promote("v2")
    assert reg.rollback() == "v1"


def test_promote_refuses_a_corrupt_model_and_keeps_the_pointer(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    reg.save("good", META)
    reg.save("will be edited", META)
    reg.promote("v1")
    (reg.path("v2") / MODEL_FILE).write_text("edited after saving")
    with pytest.raises(RegistryError, match="sha256"):
        reg.promote("v2")
    assert reg.current() == "v1" and reg.history() == ["v1"]


def test_promote_refuses_what_the_validator_refuses(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    reg.save("m", META)

    def refuse(path: Path) -> None:
        raise ValueError(f"not loadable: {path.name}")

    with pytest.raises(ValueError, match="not loadable: v1"):
        reg.promote("v1", validate=refuse)
    assert reg.current() is None


def test_verify_reports_missing_and_unreadable_files(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    reg.save("m", META)
    reg.save("m", META)
    (reg.path("v1") / MODEL_FILE).unlink()
    with pytest.raises(RegistryError, match="missing"):
        reg.verify("v1")
    (reg.path("v2") / META_FILE).write_text("{broken")
    with pytest.raises(RegistryError, match="unreadable"):
        reg.verify("v2")
    with pytest.raises(RegistryError, match="not a model version"):
        reg.path("../etc")
    with pytest.raises(RegistryError, match="not found"):
        reg.path("v9")


def test_pointer_is_replaced_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """CURRENT is written to a temporary file and renamed over the old one: a crash mid-write leaves
    the previous pointer intact, never a half-written one."""
    reg = Registry(tmp_path)
    reg.save("a", META)
    reg.save("b", META)
    reg.promote("v1")
    real_replace = os.replace

    def crash(src: str | os.PathLike, dst: str | os.PathLike) -> None:
        raise OSError("simulated crash before rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(RegistryError, match="cannot replace .*CURRENT: simulated crash"):
        reg.promote("v2")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".CURRENT")] == []  # no litter
    monkeypatch.setattr(os, "replace", real_replace)
    assert reg.current() == "v1"
    assert (tmp_path / "CURRENT").read_text() == "v1\n"
    reg.promote("v2")
    assert reg.current() == "v2"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".CURRENT")] == []


def test_meta_is_plain_json(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    v = reg.save("m", {**META, "nested": {"x": [1.5, 2.5]}})
    assert orjson.loads((reg.path(v) / META_FILE).read_bytes())["nested"] == {"x": [1.5, 2.5]}


# ---- a pointer or a version that cannot be read -------------------------------------------------------
def test_current_is_none_without_a_pointer_and_an_error_for_a_broken_one(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    assert reg.current() is None and Registry(tmp_path / "missing").current() is None
    current = tmp_path / "CURRENT"
    current.write_text("\n")
    assert reg.current() is None  # empty: nothing promoted
    current.write_text("v2\n")
    assert reg.current() == "v2"
    for content, fragment in ((b"\xff\xfe\n", "not text"), (b"latest\n", "does not name a version"),
                              (b"v1" * 200, "does not name a version")):
        current.write_bytes(content)
        with pytest.raises(RegistryError, match=fragment):
            reg.current()
    current.unlink()
    current.mkdir()
    with pytest.raises(RegistryError, match="cannot read .*CURRENT: Is a directory"):
        reg.current()
    (tmp_path / "file").write_text("x")
    with pytest.raises(RegistryError, match="cannot read"):
        Registry(tmp_path / "file").current()  # the registry path is a file


def test_the_pointer_stamp_changes_with_every_promotion(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    reg.save("a", META)
    reg.promote("v1")
    first = reg.pointer()
    assert first[0] == "v1" and reg.pointer() == first  # read twice: the same write
    reg.promote("v1")
    again = reg.pointer()
    assert again[0] == "v1" and again[1] != first[1]  # re-promotion: a new file (write + rename)


def test_read_returns_the_verified_bytes_and_tells_io_from_content_trouble(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    reg.save("model one", META)
    data, meta = reg.read("v1")
    assert data == b"model one" and meta["sha256"] == sha256_file(reg.path("v1") / MODEL_FILE)
    (reg.path("v1") / MODEL_FILE).write_text("model one, edited")
    with pytest.raises(CorruptVersion, match="sha256"):
        reg.read("v1")
    (reg.path("v1") / MODEL_FILE).unlink()
    with pytest.raises(CorruptVersion, match="missing"):
        reg.read("v1")
    (reg.path("v1") / META_FILE).write_text("[1, 2]")
    with pytest.raises(CorruptVersion, match="not a JSON object"):
        reg.read("v1")
    (reg.path("v1") / META_FILE).unlink()
    (reg.path("v1") / META_FILE).mkdir()
    with pytest.raises(RegistryError, match="unreadable meta.json") as err:
        reg.read("v1")
    assert not isinstance(err.value, CorruptVersion)  # I/O, not content
    with pytest.raises(RegistryError, match="not found") as err:
        reg.read("v2")
    assert not isinstance(err.value, CorruptVersion)


def test_promoting_over_a_directory_named_current_is_one_clean_error(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    reg.save("a", META)
    (tmp_path / "CURRENT").mkdir()
    with pytest.raises(RegistryError, match="cannot replace .*CURRENT"):
        reg.promote("v1")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".CURRENT")] == []


# ---- modes: a registry written by one user, read by another -----------------------------------------
def modes(root: Path) -> dict[str, int]:
    """``{relative path: permission bits}`` of everything under ``root`` (``.`` is the root itself)."""
    found = {".": stat.S_IMODE(root.stat().st_mode)}
    for path in root.rglob("*"):
        found[path.relative_to(root).as_posix()] = stat.S_IMODE(path.lstat().st_mode)
    return found


def make_private(path: Path) -> None:
    """What a version written by an older churnwatch (or by hand under umask 077) looks like."""
    for p in [path, *path.rglob("*")]:
        p.chmod(0o700 if p.is_dir() else 0o600)


def test_a_saved_version_is_readable_by_everyone_whatever_the_umask(tmp_path: Path) -> None:
    report = tmp_path / "src" / "report"
    report.mkdir(parents=True)
    (report / "roc.png").write_bytes(b"png")
    (report / "roc.png").chmod(0o600)
    report.chmod(0o700)
    (tmp_path / "src" / "tool.sh").write_text("#!/bin/sh\n")
    (tmp_path / "src" / "tool.sh").chmod(0o750)
    root = tmp_path / "new" / "models"
    with umask(0o077):
        reg = Registry(root)
        v = reg.save("m", META, files={"report": report, "tool.sh": tmp_path / "src" / "tool.sh"})
        reg.promote(v)
    found = modes(root)
    assert found == {
        ".": 0o755, "CURRENT": 0o644, "HISTORY": 0o644,
        v: 0o755, f"{v}/{MODEL_FILE}": 0o644, f"{v}/{META_FILE}": 0o644,
        f"{v}/report": 0o755, f"{v}/report/roc.png": 0o644, f"{v}/tool.sh": 0o644,
    }, {k: oct(m) for k, m in found.items()}


def test_an_existing_root_keeps_its_mode(tmp_path: Path) -> None:
    root = tmp_path / "models"
    root.mkdir(mode=0o750)
    root.chmod(0o750)
    Registry(root).save("m", META)
    assert stat.S_IMODE(root.stat().st_mode) == 0o750


def test_promote_and_rollback_make_a_private_version_readable_and_keep_other_bits(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    reg.save("one", META)
    reg.save("two", META)
    make_private(reg.path("v1"))
    (reg.path("v1") / MODEL_FILE).chmod(0o660)  # a group-writable file stays group-writable
    with umask(0o077):
        reg.promote("v1")
    found = modes(tmp_path)
    assert found["v1"] == 0o755 and found[f"v1/{META_FILE}"] == 0o644 and found[f"v1/{MODEL_FILE}"] == 0o664
    assert found["CURRENT"] == 0o644
    reg.promote("v2")
    make_private(reg.path("v1"))
    with umask(0o077):
        assert reg.rollback() == "v1"
    found = modes(tmp_path)
    assert found["v1"] == 0o755 and found[f"v1/{MODEL_FILE}"] == 0o644 and found["CURRENT"] == 0o644


def test_a_private_version_that_cannot_be_made_readable_is_not_promoted(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Another user's private file (chmod refused): a clear error, and the pointer does not move."""
    reg = Registry(tmp_path)
    reg.save("one", META)
    reg.save("two", META)
    reg.promote("v1")
    (reg.path("v2") / MODEL_FILE).chmod(0o600)

    def refuse(path: Any, mode: int) -> None:
        raise PermissionError(1, "Operation not permitted", str(path))

    monkeypatch.setattr(registry_module.os, "chmod", refuse)
    with pytest.raises(RegistryError, match=r"model v2: .*model\.txt is not readable by other users \(mode 0600"):
        reg.promote("v2")
    assert reg.current() == "v1" and reg.history() == ["v1"]


_LOAD_AS_OTHER_USER = """
import os, sys
from pathlib import Path
import numpy as np
from pipeline.model.registry import Registry
from pipeline.model.scoring import ModelHolder

private = Path(sys.argv[2]) / "secret.txt"
try:
    private.read_bytes()
    print("could read a 0600 file of root's", file=sys.stderr)
    sys.exit(3)
except PermissionError:
    pass
holder = ModelHolder(Registry(sys.argv[1]))  # what a worker does on every poll
status, detail = holder.refresh()
if status != "loaded":
    print(status, detail, file=sys.stderr)
    sys.exit(1)
score = holder.model.predict(np.zeros((1, len(holder.model.features))))
print(os.geteuid(), holder.model.version, float(score[0]))
"""


def test_a_worker_running_as_another_user_loads_a_model_saved_under_a_strict_umask(shared_dir: Path,
                                                                                    tmp_path: Path) -> None:
    """The compose worker (uid 10001) reading a host-trained registry: written here by root with umask
    077 through churnwatch's own save and promote, loaded by ``ModelHolder`` in a child running as
    nobody (65534), as a worker loads it."""
    from tests.unit.pipeline.model.test_scoring import make_model_text
    from tests.unit.pipeline.model.test_scoring import meta as model_meta

    control = tmp_path / "control"  # under root's 0700 tmp: proves the child really is another user
    control.mkdir()
    (control / "secret.txt").write_text("root only")
    (control / "secret.txt").chmod(0o600)
    root = shared_dir / "models"
    with umask(0o077):
        reg = Registry(root)
        v = reg.save(make_model_text(), model_meta())
        reg.promote(v)
    proc = run_python(_LOAD_AS_OTHER_USER, str(root), str(control))
    assert proc.returncode == 0, proc.stderr[-3000:]
    uid, version, score = proc.stdout.split()
    assert (int(uid), version) == (NOBODY, v) and 0.0 <= float(score) <= 1.0
