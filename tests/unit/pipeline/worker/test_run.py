"""Running a worker: what is refused before anything is started."""

from __future__ import annotations

import pytest

pytest.importorskip("faust")

from pipeline.config.settings import Settings  # noqa: E402
from pipeline.worker.run import run_worker  # noqa: E402


def test_worker_web_refuses_a_public_bind_without_a_guard(tmp_path):
    from pipeline.config.fields import SettingsError

    settings = Settings.from_env(env={}).with_(broker="kafka://127.0.0.1:1", models_dir=tmp_path / "models",
                                               data_dir=tmp_path / "data", web_host="0.0.0.0")
    with pytest.raises(SettingsError, match="refusing to serve the worker web server on '0.0.0.0'"):
        run_worker(settings)
    assert not (tmp_path / "data").exists()  # refused before anything was started or written
