"""The model registry on disk: versioned directories plus a ``CURRENT`` pointer.

Layout::

    models/
      CURRENT            # name of the promoted version, replaced atomically (write + rename)
      HISTORY            # one promoted version per line, newest last (for rollback)
      v1/ model.txt meta.json report/...
      v2/ ...

It lives in ``pipeline`` (not ``training``) because running workers read it; training writes to it
through the same class. A version directory is written under a temporary name and renamed into place,
and promotion validates the model first, so a half-written or corrupt model never becomes current.

A registry is often written by one user and read by another: trained on the host by an operator, read
by a worker container running as its own unprivileged user (uid 10001) through a read-only mount. The
reader cannot fix a mode, so the writer does: a new version's directories are ``0755`` and its files
``0644`` whatever the writer's umask (``mkdtemp`` alone would leave the version ``0700``), ``CURRENT``
(and a new ``HISTORY``) are ``0644``, and promotion or rollback adds the read bits an older version may
lack. Nothing in a version is secret: a model, its metadata and its evaluation report.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any, Iterator, Mapping

import orjson

MODEL_FILE = "model.txt"
META_FILE = "meta.json"
_VERSION_RE = re.compile(r"^v(\d+)$")


class RegistryError(RuntimeError):
    """A registry operation that cannot be done; the message is one line for the user.

    Raised as such for I/O trouble (a pointer or directory that cannot be read); content problems of
    one version raise the subclass :class:`CorruptVersion`."""


class CorruptVersion(RegistryError):
    """A version whose files were read but are wrong: checksum mismatch, missing model, broken meta."""


#: Modes of what the registry writes (see the module docstring: the worker reading it may be another user).
DIR_MODE = 0o755
FILE_MODE = 0o644

#: Longest ``CURRENT`` accepted (a version name and a newline; anything longer is not a pointer).
_POINTER_MAX = 256


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _walk(top: Path) -> Iterator[tuple[Path, os.stat_result]]:
    """``top`` and everything below it, parents before children (so a caller that changes a
    directory's mode does so before its contents are listed), never following a symbolic link: a link's
    target is not the registry's to change."""

    def fail(exc: OSError) -> None:
        raise exc

    yield top, os.lstat(top)
    for dirpath, dirnames, filenames in os.walk(top, onerror=fail):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            yield path, os.lstat(path)


def set_modes(top: Path) -> None:
    """Give a tree this writer just created exactly :data:`DIR_MODE` / :data:`FILE_MODE`: a temporary
    directory is ``0700`` and ``copy2`` keeps each source file's mode, whatever the umask says."""
    for path, st in _walk(top):
        if stat.S_ISLNK(st.st_mode):
            continue
        want = DIR_MODE if stat.S_ISDIR(st.st_mode) else FILE_MODE
        if stat.S_IMODE(st.st_mode) != want:
            os.chmod(path, want)


def ensure_readable(top: Path, label: str) -> None:
    """Add the read bits for everyone (and the search bits on directories) where they are missing,
    keeping every other bit: for a version about to become current that an older churnwatch or a strict
    umask left private. A path of another user's that is already readable is left alone; one that is not
    and cannot be changed is a :class:`RegistryError`, since no worker of another user could load it."""
    try:
        for path, st in _walk(top):
            if stat.S_ISLNK(st.st_mode):
                continue
            need = 0o555 if stat.S_ISDIR(st.st_mode) else 0o444
            mode = stat.S_IMODE(st.st_mode)
            if mode & need != need:
                try:
                    os.chmod(path, mode | need)
                except OSError as exc:
                    raise RegistryError(f"{label}: {path} is not readable by other users (mode {mode:04o}, owner "
                                        f"uid {st.st_uid}) and cannot be made so: {exc.strerror or exc}") from None
    except RegistryError:
        raise
    except OSError as exc:
        raise RegistryError(f"{label}: cannot read {exc.filename or top}: {exc.strerror or exc}") from None


class Registry:
    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    # ---- reading -------------------------------------------------------------------------------
    def versions(self) -> list[str]:
        if not self.root.is_dir():
            return []
        found = [p.name for p in self.root.iterdir() if p.is_dir() and _VERSION_RE.match(p.name)]
        return sorted(found, key=lambda v: int(v[1:]))

    def current(self) -> str | None:
        """The promoted version; None when nothing is promoted (no ``CURRENT``, or an empty one).

        Raises :class:`RegistryError` when ``CURRENT`` exists but cannot be used: unreadable
        (permissions, a directory, an I/O error), not text, or not naming a version."""
        return self.pointer()[0]

    def pointer(self) -> tuple[str | None, tuple[int, ...] | None]:
        """(current version, stamp): the stamp identifies this write of ``CURRENT`` (device, inode,
        mtime, size), so a reader can tell a re-promotion from the same pointer read again."""
        path = self.root / "CURRENT"
        try:
            with open(path, "rb") as fh:
                st = os.fstat(fh.fileno())
                raw = fh.read(_POINTER_MAX + 1)
        except FileNotFoundError:
            return (None, None)
        except OSError as exc:
            raise RegistryError(f"cannot read {path}: {exc.strerror or exc}") from None
        stamp = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
        try:
            name = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise RegistryError(f"{path} is not text (undecodable bytes)") from None
        if not name:
            return (None, stamp)
        if len(raw) > _POINTER_MAX or not _VERSION_RE.match(name):
            raise RegistryError(f"{path} does not name a version (holds {name[:40]!r}; expected e.g. v3)")
        return (name, stamp)

    def history(self) -> list[str]:
        path = self.root / "HISTORY"
        try:
            return [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise RegistryError(f"cannot read {path}: {exc.strerror or exc}") from None

    def path(self, version: str) -> Path:
        if not _VERSION_RE.match(version):
            raise RegistryError(f"{version!r} is not a model version (expected v<number>, e.g. v3)")
        p = self.root / version
        if not p.is_dir():
            raise RegistryError(f"model {version} not found in {self.root}")
        return p

    def meta(self, version: str) -> dict[str, Any]:
        path = self.path(version) / META_FILE
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise CorruptVersion(f"model {version}: unreadable {META_FILE} (missing)") from None
        except OSError as exc:
            raise RegistryError(f"model {version}: unreadable {META_FILE} ({exc.strerror or exc})") from None
        try:
            meta = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise CorruptVersion(f"model {version}: unreadable {META_FILE} ({exc})") from None
        if not isinstance(meta, dict):
            raise CorruptVersion(f"model {version}: unreadable {META_FILE} (not a JSON object)")
        return meta

    def read(self, version: str) -> tuple[bytes, dict[str, Any]]:
        """The model file's bytes (read once) and the metadata, checked against each other: whoever
        loads the model should load exactly these bytes, which is what the checksum vouches for."""
        meta = self.meta(version)
        model_path = self.path(version) / MODEL_FILE
        try:
            data = model_path.read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            raise CorruptVersion(f"model {version}: {MODEL_FILE} is missing") from None
        except OSError as exc:
            raise RegistryError(f"model {version}: cannot read {MODEL_FILE} ({exc.strerror or exc})") from None
        if meta.get("sha256") != hashlib.sha256(data).hexdigest():
            raise CorruptVersion(f"model {version}: {MODEL_FILE} does not match its sha256 (corrupt or edited)")
        return data, meta

    def verify(self, version: str) -> dict[str, Any]:
        """Check the model file against the content hash in its metadata; return the metadata."""
        meta = self.meta(version)
        model_path = self.path(version) / MODEL_FILE
        if not model_path.is_file():
            raise CorruptVersion(f"model {version}: {MODEL_FILE} is missing")
        try:
            digest = sha256_file(model_path)
        except OSError as exc:
            raise RegistryError(f"model {version}: cannot read {MODEL_FILE} ({exc.strerror or exc})") from None
        if meta.get("sha256") != digest:
            raise CorruptVersion(f"model {version}: {MODEL_FILE} does not match its sha256 (corrupt or edited)")
        return meta

    # ---- writing -------------------------------------------------------------------------------
    def next_version(self) -> str:
        nums = [int(v[1:]) for v in self.versions()]
        return f"v{max(nums, default=0) + 1}"

    def save(self, model_text: str, meta: Mapping[str, Any], files: Mapping[str, Path] | None = None) -> str:
        """Write a new version atomically and return its name (it is not promoted). The version appears
        with :data:`DIR_MODE` / :data:`FILE_MODE`, readable by a worker running as another user."""
        self.root.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.mkdir(self.root)
        except FileExistsError:
            pass  # an existing root keeps the mode its owner gave it
        else:
            os.chmod(self.root, DIR_MODE)  # a root this writer creates is searchable whatever the umask
        tmp = Path(tempfile.mkdtemp(prefix=".incoming-", dir=self.root))
        try:
            (tmp / MODEL_FILE).write_text(model_text)
            if files:
                for rel, src in files.items():
                    dst = tmp / rel
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    if Path(src).is_dir():
                        shutil.copytree(src, dst)
                    else:
                        shutil.copy2(src, dst)
            for _ in range(100):
                version = self.next_version()
                full = dict(meta, version=version, sha256=sha256_file(tmp / MODEL_FILE))
                (tmp / META_FILE).write_bytes(orjson.dumps(full, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
                set_modes(tmp)
                try:
                    os.rename(tmp, self.root / version)  # fails if another writer took the name
                    return version
                except OSError:
                    continue
            raise RegistryError("could not allocate a version name")
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def promote(self, version: str, validate: Any = None) -> None:
        """Make ``version`` current. ``validate(path)`` may raise to refuse a bad model."""
        self.verify(version)
        if validate is not None:
            validate(self.path(version))
        ensure_readable(self.path(version), f"model {version}")
        self._write_pointer(version)
        history = self.root / "HISTORY"
        created = not history.exists()
        with open(history, "a") as fh:
            fh.write(version + "\n")
        if created:  # an existing HISTORY keeps the mode its creator gave it (no reader depends on it)
            os.chmod(history, FILE_MODE)

    def rollback(self) -> str:
        """Re-promote the version that was current before the present one."""
        hist = self.history()
        cur = self.current()
        while hist and hist[-1] == cur:
            hist.pop()
        if not hist:
            raise RegistryError("nothing to roll back to: no earlier promoted version")
        previous = hist[-1]
        self.verify(previous)
        ensure_readable(self.path(previous), f"model {previous}")
        self._write_pointer(previous)
        (self.root / "HISTORY").write_text("".join(v + "\n" for v in hist))
        return previous

    def _write_pointer(self, version: str) -> None:
        tmp = self.root / f".CURRENT.{os.getpid()}"
        target = self.root / "CURRENT"
        try:
            tmp.write_text(version + "\n")
            os.chmod(tmp, FILE_MODE)  # every worker reads it, whoever promoted
            os.replace(tmp, target)
        except OSError as exc:
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass
            raise RegistryError(f"cannot replace {target}: {exc.strerror or exc}") from None
