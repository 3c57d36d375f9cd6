"""The naive Faust contender of ``bench_contenders.py``: one agent, one Table, one event at a time.

What a team would write first with faust-streaming and churnwatch's core: an agent over the five input
topics, a Table keyed by customer id (the default ``memory://`` store and its changelog topic), and per
event ``contract.parse``, the state read from the Table (``CustomerState.from_bytes``),
``features.apply``, the state written back (``table[cid] = state.to_bytes()``: one Table write, hence one
changelog record, per event), one single-row LightGBM predict of that customer with the registry's
promoted model, and an alert record when the score reaches the tier's threshold. The per-event work is
:class:`_contender_common.Work`, shared with the quixstreams contender.

Run by the bench with the project's ``.venv`` python: ``python bench/_contender_faust.py`` with
``CHURN_CONTENDER_CONFIG`` naming its JSON config (``app_id``, ``broker``, ``inputs``, ``alerts``,
``partitions``, ``datadir``, ``tuned`` and what :class:`Work` reads). ``tuned`` adds the fetch, poll,
buffer and producer settings of the churnwatch worker's own Faust app (``pipeline/worker/app.py``).
Stopped by the bench with SIGTERM (Faust's own graceful shutdown).
"""

from __future__ import annotations

import sys
from typing import Any

import faust

from _contender_common import Work, load_config

#: pipeline.worker.app's values for the same Faust settings (its ``_build_app``).
TUNED: dict[str, Any] = {
    "producer_linger": 0.005,
    "producer_max_batch_size": 256 * 1024,
    "broker_max_poll_records": 10_000,
    "consumer_max_fetch_size": 4 * 1024 * 1024,
    "stream_buffer_maxsize": 32_768,
}


def build(config: dict[str, Any]) -> faust.App:
    work = Work(config)
    app = faust.App(
        config["app_id"], broker=config["broker"], store="memory://", topic_partitions=config["partitions"],
        datadir=config["datadir"], web_enabled=False, consumer_auto_offset_reset="earliest", logging_config=None,
        **(TUNED if config.get("tuned") else {}),
    )
    table = app.Table("customers", default=None, key_type=bytes, value_type=bytes, partitions=config["partitions"])
    inputs = app.topic(*config["inputs"], key_serializer="raw", value_serializer="raw")
    alerts = app.topic(config["alerts"], key_serializer="raw", value_serializer="raw")

    async def process(stream: Any) -> None:
        async for event in stream.events():
            msg = event.message
            folded = work.fold(msg.topic, msg.partition, msg.offset, event.value, table.get(msg.key))
            if folded is None:
                continue
            table[msg.key] = folded.value
            alert = work.score(folded)
            if alert is not None:
                await alerts.send(key=msg.key, value=alert)

    app.agent(inputs, name="contender.process")(process)
    return app


def main() -> None:
    app = build(load_config())
    sys.argv = [sys.argv[0], "worker", "--loglevel", "warn"]
    app.main()


if __name__ == "__main__":
    main()
