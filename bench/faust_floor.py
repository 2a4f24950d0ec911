"""The floor of a Faust agent per message: a worker that only reads and acknowledges.

Started by ``bench.fleet_throughput`` on the same topic as the real worker (its own consumer
group), so the difference between the two is what rollguard adds per message.

    ROLLGUARD_APP_ID=x ROLLGUARD_TOPIC_EVENTS=t KAFKA_BOOTSTRAP=h:p \\
        .venv/bin/python -m bench.faust_floor
"""

from __future__ import annotations

import os
from typing import Any, cast

import faust

from rollguard.cli.worker import use_event_loop
from rollguard.streams.settings import DEFAULT_EVENT_LOOP

FETCH_BYTES_PER_PARTITION = 8 * 1024**2  # as the real worker


def create_floor_app() -> faust.App:
    app = faust.App(os.environ["ROLLGUARD_APP_ID"],
                    broker=f"kafka://{os.environ['KAFKA_BOOTSTRAP']}", store="memory://",
                    web_enabled=False, consumer_auto_offset_reset="earliest",
                    broker_commit_interval=1.0, stream_wait_empty=False,
                    topic_partitions=int(os.environ.get("ROLLGUARD_PARTITIONS", "4")),
                    datadir=os.environ.get("ROLLGUARD_DATA_DIR", ".rollguard/floor"),
                    consumer_max_fetch_size=FETCH_BYTES_PER_PARTITION)
    raw: dict[str, Any] = {"key_type": bytes, "value_type": bytes,
                           "key_serializer": "raw", "value_serializer": "raw"}
    events = app.topic(os.environ["ROLLGUARD_TOPIC_EVENTS"], **raw)

    @app.agent(events)
    async def floor(stream: faust.StreamT[bytes]) -> None:
        manual = cast(faust.Stream[bytes], stream).noack()
        async for event in manual.events():
            await manual.ack(event)

    return app


if __name__ == "__main__":
    use_event_loop(os.environ.get("ROLLGUARD_EVENT_LOOP", DEFAULT_EVENT_LOOP))
    faust.Worker(create_floor_app(), loglevel="warning", quiet=True).execute_from_commandline()
