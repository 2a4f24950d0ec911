"""Share the fleet's moves between workers (see :mod:`rollguard.detectors.fleet`).

Each worker holds some of the services; a fleet-wide incident is seen only when every
worker knows every service's moves. Moves told by this worker's monitors are sent to the
fleet topic (``{app_id}-fleet``, one partition, kept 6 hours); every worker reads the whole
topic with a consumer outside the consumer group (each must see all of it) and adds what it
reads to its view. A restarted worker reads the topic from the start, so it knows the
moves of the last hours again. Moves are facts with a key (service, metric, start): the
view ignores one it has, its own included.
"""

from __future__ import annotations

import asyncio
import logging

import faust
import orjson
from aiokafka.errors import KafkaError

from rollguard.base.errors import AccessRefused, ServiceUnavailable
from rollguard.detectors.fleet import FleetView, Move
from rollguard.streams.connect import consumer

log = logging.getLogger(__name__)


def encode(move: Move) -> bytes:
    """A move as the fleet topic carries it: ``[service, metric, start]`` in JSON."""
    return orjson.dumps(move.to_list())


def decode(value: bytes | None) -> Move | None:
    """The move of a fleet-topic value; None (logged) for anything else."""
    try:
        return Move.from_list(orjson.loads(value or b""))
    except (orjson.JSONDecodeError, TypeError, ValueError) as exc:
        log.warning("fleet: a value that is not a move was skipped: %s", exc)
        return None


async def share(view: FleetView, topic: faust.TopicT) -> None:
    """Send the moves this worker's monitors told since the last call."""
    if not view.outbox:
        return
    moves, view.outbox = view.outbox, []
    for move in moves:
        await topic.send(key=move.service.encode(), value=encode(move))


async def hear(view: FleetView, topic: str, bootstrap: str) -> None:
    """Read the whole fleet topic into ``view``, for as long as the worker runs; a lost
    connection is retried (the worker goes on meanwhile with what it knows)."""
    while True:
        try:
            async with consumer(topic, bootstrap=bootstrap, group_id=None,
                                auto_offset_reset="earliest",
                                enable_auto_commit=False) as reader:
                async for record in reader:
                    move = decode(record.value)
                    if move is not None:
                        view.add(move)
        except (KafkaError, OSError, ServiceUnavailable, AccessRefused) as exc:
            log.warning("fleet: reading %s failed (%s); again in 5 s", topic, exc)
            await asyncio.sleep(5.0)
