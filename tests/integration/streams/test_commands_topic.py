"""The commands topic records when the broker received each command (LogAppendTime): the
worker creates it so, and warns, naming the fix, about one created without it."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest

from rollguard.actions.receipt import LOG_APPEND_TIME
from rollguard.streams.connect import consumer, ensure_topics, prepare_topics, producer
from tests.support.runs import IsolatedRun

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("servers")]


@pytest.fixture(name="run")
async def fixture_run() -> AsyncIterator[IsolatedRun]:
    run = IsolatedRun.new("cmd-topic", partitions=1)
    yield run
    await run.delete_topics()


async def test_the_worker_creates_the_commands_topic_stamped_by_the_broker(
        run: IsolatedRun, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="rollguard.streams.connect"):
        await prepare_topics(run.settings())
    assert not caplog.records
    async with producer() as out:
        await out.send_and_wait(run.topic("commands"), b"{}", timestamp_ms=1_000)
    async with consumer(run.topic("commands"), auto_offset_reset="earliest",
                        group_id=None) as into:
        record = await into.getone()
    assert record.timestamp_type == LOG_APPEND_TIME
    assert record.timestamp != 1_000, "the broker's time, not the one the producer chose"


async def test_a_commands_topic_made_without_it_is_reported_with_the_fix(
        run: IsolatedRun, caplog: pytest.LogCaptureFixture) -> None:
    await ensure_topics({run.topic("commands"): 1})  # as by hand: the producer's time
    with caplog.at_level(logging.WARNING, logger="rollguard.streams.connect"):
        await prepare_topics(run.settings())
    [warning] = caplog.records
    assert run.topic("commands") in warning.getMessage()
    assert "--add-config message.timestamp.type=LogAppendTime" in warning.getMessage()
