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
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Mapping

import orjson

MODEL_FILE = "model.txt"
META_FILE = "meta.json"
_VERSION_RE = re.compile(r"^v(\d+)$")


class RegistryError(RuntimeError):
    """A registry operation that cannot be done; the message is one line for the user."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


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
        try:
            name = (self.root / "CURRENT").read_text().strip()
        except FileNotFoundError:
            return None
        return name or None

    def history(self) -> list[str]:
        try:
            return [ln.strip() for ln in (self.root / "HISTORY").read_text().splitlines() if ln.strip()]
        except FileNotFoundError:
            return []

    def path(self, version: str) -> Path:
        if not _VERSION_RE.match(version):
            raise RegistryError(f"{version!r} is not a model version (expected v<number>, e.g. v3)")
        p = self.root / version
        if not p.is_dir():
            raise RegistryError(f"model {version} not found in {self.root}")
        return p

    def meta(self, version: str) -> dict[str, Any]:
        try:
            return orjson.loads((self.path(version) / META_FILE).read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            raise RegistryError(f"model {version}: unreadable {META_FILE} ({exc})") from None

    def verify(self, version: str) -> dict[str, Any]:
        """Check the model file against the content hash in its metadata; return the metadata."""
        meta = self.meta(version)
        model_path = self.path(version) / MODEL_FILE
        if not model_path.is_file():
            raise RegistryError(f"model {version}: {MODEL_FILE} is missing")
        digest = sha256_file(model_path)
        if meta.get("sha256") != digest:
            raise RegistryError(f"model {version}: {MODEL_FILE} does not match its sha256 (corrupt or edited)")
        return meta

    # ---- writing -------------------------------------------------------------------------------
    def next_version(self) -> str:
        nums = [int(v[1:]) for v in self.versions()]
        return f"v{max(nums, default=0) + 1}"

    def save(self, model_text: str, meta: Mapping[str, Any], files: Mapping[str, Path] | None = None) -> str:
        """Write a new version atomically and return its name (it is not promoted)."""
        self.root.mkdir(parents=True, exist_ok=True)
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
        self._write_pointer(version)
        with open(self.root / "HISTORY", "a") as fh:
            fh.write(version + "\n")

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
        self._write_pointer(previous)
        (self.root / "HISTORY").write_text("".join(v + "\n" for v in hist))
        return previous

    def _write_pointer(self, version: str) -> None:
        tmp = self.root / f".CURRENT.{os.getpid()}"
        tmp.write_text(version + "\n")
        os.replace(tmp, self.root / "CURRENT")
