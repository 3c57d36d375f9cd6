"""The quixstreams contender of ``bench_contenders.py``, and the virtualenv it runs in.

churnwatch does not depend on quixstreams, so :func:`quix_python` builds a virtualenv of the bench's own
under the cache (``<cache>/quix-venv``) the first time: quixstreams 3.x (the newest on the index), orjson, msgpack,
numpy and LightGBM at the versions the project's ``.venv`` has (so the model scores with the same
library), and churnwatch itself installed editable without its dependencies so ``pipeline.core`` and
``pipeline.model`` import. ``uv`` is used when the bench's venv has it, else ``python -m venv`` + pip.
The project's ``.venv`` is never touched.

The app (this file run by that venv's python, ``CHURN_CONTENDER_CONFIG`` naming its JSON config): an
``Application`` with its defaults (RocksDB state and changelog topics, at-least-once, 5 s commits), the
five input topics concatenated into one ``StreamingDataFrame`` (``sdf.concat``: one state store for the
customer, whichever topic the event came on; Quix then aligns the topics by message time), and one
stateful ``apply`` per message: ``contract.parse``, the state from ``state.get``, ``features.apply``,
``state.set`` of the new bytes; with ``scoring`` also one single-row LightGBM predict and an alert to the
alerts topic when the score reaches the tier's threshold (:class:`_contender_common.Work`, the Faust
contender's code). The store keeps the state bytes as they are (``RocksDBOptions`` with identity
``dumps``/``loads``): the default JSON serialiser cannot hold bytes, and a string of JSON inside JSON
would charge Quix for an encoding churnwatch does not do. One shim makes Quix run on Tansu at all
(:func:`_retention_defaults`). At module level only the standard library is
imported, so the bench imports :func:`quix_python` without quixstreams.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

QUIX = "quixstreams>=3,<4"
#: Installed in the quix venv at the project venv's versions, when it has them.
SAME_AS_PROJECT = ("orjson", "msgpack", "numpy", "lightgbm")


def default_cache() -> Path:
    """``$XDG_CACHE_HOME/churnwatch-bench`` (``~/.cache/churnwatch-bench``): kept between runs and boots."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "churnwatch-bench"


def _pins() -> list[str]:
    pins = [QUIX]
    for name in SAME_AS_PROJECT:
        try:
            pins.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pins.append(name)
    return pins


def quix_python(cache: Path, repo: Path) -> Path:
    """The interpreter of the cached quix venv, created (or brought up to date) when missing or stale."""
    venv = cache / "quix-venv"
    python = venv / "bin" / "python"
    wanted = "\n".join([*_pins(), f"-e {repo}"])
    stamp = venv / ".pins"
    if python.is_file() and stamp.is_file() and stamp.read_text() == wanted:
        return python
    print(f"  creating the quixstreams venv in {venv} (once; {', '.join(_pins())}, churnwatch --no-deps)",
          file=sys.stderr, flush=True)
    cache.mkdir(parents=True, exist_ok=True)
    base = getattr(sys, "_base_executable", sys.executable)  # the interpreter the bench's own venv is made of
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if uv:
        env = {**os.environ, "VIRTUAL_ENV": str(venv)}
        subprocess.run([uv, "venv", "-q", "--allow-existing", "--python", base, str(venv)], check=True)
        subprocess.run([uv, "pip", "install", "-q", *_pins()], check=True, env=env)
        subprocess.run([uv, "pip", "install", "-q", "--no-deps", "-e", str(repo)], check=True, env=env)
    else:
        subprocess.run([base, "-m", "venv", "--clear", str(venv)], check=True)
        pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        subprocess.run([*pip, *_pins()], check=True)
        subprocess.run([*pip, "--no-deps", "-e", str(repo)], check=True)
    stamp.write_text(wanted)
    return python


def quix_version(python: Path) -> str:
    out = subprocess.run([str(python), "-c", "import quixstreams, confluent_kafka; "
                          "print(quixstreams.__version__, confluent_kafka.libversion()[0])"],
                         capture_output=True, text=True, stdin=subprocess.DEVNULL)
    parts = out.stdout.split()
    return f"quixstreams {parts[0]}, librdkafka {parts[1]}" if len(parts) == 2 else "quixstreams (version unknown)"


# ---- the app, run inside the quix venv ------------------------------------------------------------------
def _retention_defaults() -> None:
    """Quix derives its changelog topics' retention from the input topics' ``retention.ms``, read with
    DescribeConfigs; Tansu 0.6 answers that request with no configs at all, and Quix fails with a
    ``KeyError``. Missing retention is taken as Kafka's "keep forever" (``-1``), which is what Tansu's
    memory storage does; nothing else of Quix is changed."""
    from quixstreams.models.topics.manager import TopicManager

    configure = TopicManager._configure_topic

    def _configure_topic(self: TopicManager, topic: object, broker_topic: object) -> object:
        topic = configure(self, topic, broker_topic)
        for key in ("retention.ms", "retention.bytes"):
            topic.broker_config.extra_config.setdefault(key, "-1")  # type: ignore[attr-defined]
        return topic

    TopicManager._configure_topic = _configure_topic  # type: ignore[method-assign]


def main() -> None:
    from quixstreams import Application, message_context
    from quixstreams.state.rocksdb import RocksDBOptions

    from _contender_common import Work, load_config

    _retention_defaults()
    config = load_config()
    work = Work(config)
    app = Application(
        broker_address=config["bootstrap"], consumer_group=config["app_id"], auto_offset_reset="earliest",
        state_dir=config["datadir"], loglevel="WARNING",
        rocksdb_options=RocksDBOptions(dumps=lambda v: v, loads=lambda v: v),
    )
    topics = [app.topic(name, key_deserializer="bytes", value_deserializer="bytes") for name in config["inputs"]]
    sdf = app.dataframe(topics[0])
    for topic in topics[1:]:
        sdf = sdf.concat(app.dataframe(topic))

    def process(value: bytes, state: object) -> bytes | None:
        ctx = message_context()
        folded = work.fold(ctx.topic, ctx.partition, ctx.offset, value, state.get(b"s"))  # type: ignore[attr-defined]
        if folded is None:
            return None
        state.set(b"s", folded.value)  # type: ignore[attr-defined]
        return work.score(folded)

    sdf = sdf.apply(process, stateful=True).filter(lambda alert: alert is not None)
    if config.get("scoring", True):
        sdf.to_topic(app.topic(config["alerts"], key_serializer="bytes", value_serializer="bytes"))
    app.run(sdf)


if __name__ == "__main__":
    main()
