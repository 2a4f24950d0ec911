"""Pointer readers on the real Redis: flips arrive, shares hold, restarts and lost messages heal."""

from __future__ import annotations

import asyncio
import random
import threading
import time

import pytest
import redis.asyncio as aioredis

from rollguard.actions.connect import async_redis_client
from rollguard.actions.pointer import PointerStore
from rollguard.actions.reader import PointerReader, SyncPointerReader
from rollguard.actions.state import PointerState, encode
from rollguard.base.errors import ServiceUnavailable, UnknownService
from tests.support.pointer import SECRET, Issue, command
from tests.support.private_redis import PrivateRedis

pytestmark = [pytest.mark.integration]

ARRIVAL_S = 5.0  # bound on pub/sub delivery; the waits end as soon as the event happens


class Changes:
    """An on_change callback that lets a test await a given epoch."""

    def __init__(self) -> None:
        self.seen: list[PointerState] = []
        self._cond = asyncio.Condition()

    async def __call__(self, state: PointerState) -> None:
        async with self._cond:
            self.seen.append(state)
            self._cond.notify_all()

    async def epoch(self, epoch: int) -> PointerState:
        async with self._cond:
            await asyncio.wait_for(
                self._cond.wait_for(lambda: any(s.epoch >= epoch for s in self.seen)), ARRIVAL_S
            )
            return self.seen[-1]


async def test_a_subscribed_reader_sees_a_flip(
    released: PointerStore, service: str, issue: Issue
) -> None:
    """After a promote, the reader's callback gets the new state and resolve() serves it."""
    changes = Changes()
    async with PointerReader(released.client, service, on_change=changes) as reader:
        assert reader.resolve("user-1")[0] == "v1"
        await issue("promote", release="v2")
        state = await changes.epoch(2)
        assert state.active == "v2"
        release, components = reader.resolve("user-1")
        assert (release, components["model"]) == ("v2", "m2")
        assert reader.fresh


async def test_a_reader_never_sees_a_mix_of_two_releases(
    released: PointerStore, service: str, issue: Issue
) -> None:
    """Every state a reader is handed pairs a release name with exactly that release's versions."""
    changes = Changes()
    async with PointerReader(released.client, service, on_change=changes):
        for i in range(10):
            await issue("promote", release="v2" if i % 2 == 0 else "v1")
        await changes.epoch(11)
    expected = {"v1": "m1", "v2": "m2"}
    assert all(s.active_components["model"] == expected[s.active] for s in changes.seen)


async def test_the_reader_hash_honours_a_staged_share(
    released: PointerStore, service: str, issue: Issue
) -> None:
    """With the candidate at 30%, about 30% of many random keys resolve to it, each seed alike."""
    changes = Changes()
    async with PointerReader(released.client, service, on_change=changes) as reader:
        await issue("promote", release="v2", percent=30)
        await changes.epoch(2)
        n = 4000
        sigma = (0.3 * 0.7 / n) ** 0.5
        for seed in range(20):
            rng = random.Random(seed)
            keys = [f"user-{rng.getrandbits(64):x}" for _ in range(n)]
            share = sum(reader.resolve(k)[0] == "v2" for k in keys) / n
            assert abs(share - 0.3) < 4.5 * sigma, f"seed {seed}: {share:.3f}"
            assert all(reader.resolve(k) == reader.resolve(k) for k in keys[:50])


async def test_a_reader_catches_a_change_whose_message_was_lost(
    released: PointerStore, service: str
) -> None:
    """A pointer written without a publish is picked up by the periodic re-read."""
    changes = Changes()
    async with PointerReader(
        released.client, service, on_change=changes, refresh_interval_s=0.1
    ):
        state = await released.read(service)
        moved = state.with_changes(epoch=state.epoch + 1, active="v2",
                                   active_components={"model": "m2"})
        await released.client.set(released.keys(service).pointer, encode(moved))
        assert (await changes.epoch(moved.epoch)).active == "v2"


async def test_a_reader_converges_after_the_redis_server_restarts(
    private_redis: PrivateRedis, service: str
) -> None:
    """The reader marks itself stale while the server is down and re-reads once it is back."""
    client = async_redis_client(private_redis.url)
    store = PointerStore(client, SECRET)
    await store.register_release(service, "v1", {"model": "m1"})
    await store.register_release(service, "v2", {"model": "m2"})
    await store.execute(command(service, "promote", release="v1"), time.time())
    changes = Changes()
    lost = asyncio.Event()
    reader = PointerReader(private_redis.url, service, on_change=changes,
                           on_stale=lambda exc: lost.set(), refresh_interval_s=30)
    await reader.start()
    try:
        await asyncio.to_thread(private_redis.stop)
        await asyncio.wait_for(lost.wait(), ARRIVAL_S * 3)
        assert not reader.fresh
        assert reader.resolve("user-1")[0] == "v1", "the last known pointer keeps serving"
        await asyncio.to_thread(private_redis.start)
        # Flipped as soon as the server is back, racing the reader's resubscription: either
        # the message or the re-read on resubscribe must bring the reader to epoch 2.
        outcome = await store.execute(command(service, "promote", release="v2"), time.time())
        assert outcome.epoch_after == 2, "the pointer survived the restart (append-only file)"
        assert (await changes.epoch(2)).active == "v2"
        deadline = time.monotonic() + ARRIVAL_S * 3
        while not reader.fresh and time.monotonic() < deadline:
            await asyncio.sleep(0.05)  # the reader confirms from its own task; poll its flag
        assert reader.fresh
    finally:
        await reader.stop()
        await client.aclose()


async def test_resolve_refuses_a_pointer_unconfirmed_longer_than_max_stale(
    private_redis: PrivateRedis, service: str
) -> None:
    """With max_stale_s set, resolve() raises ServiceUnavailable once Redis stays away too long."""
    client = async_redis_client(private_redis.url)
    store = PointerStore(client, SECRET)
    await store.register_release(service, "v1", {"model": "m1"})
    await store.execute(command(service, "promote", release="v1"), time.time())
    await client.aclose()
    lost = asyncio.Event()
    reader = PointerReader(private_redis.url, service, on_stale=lambda exc: lost.set(),
                           max_stale_s=0.3)
    await reader.start()
    try:
        await asyncio.to_thread(private_redis.stop)
        await asyncio.wait_for(lost.wait(), ARRIVAL_S * 3)
        deadline = time.monotonic() + ARRIVAL_S
        with pytest.raises(ServiceUnavailable, match="unconfirmed"):
            while time.monotonic() < deadline:
                reader.resolve("user-1")
                await asyncio.sleep(0.05)
    finally:
        await reader.stop()


async def test_starting_a_reader_for_an_unknown_service_fails(
    store: PointerStore, service: str
) -> None:
    """No pointer, no reader: start() raises UnknownService instead of serving nothing."""
    with pytest.raises(UnknownService):
        await PointerReader(store.client, service).start()


async def test_the_threaded_reader_sees_a_flip(
    released: PointerStore, service: str, issue: Issue
) -> None:
    """The sync reader's thread applies a published flip; resolve() then serves it."""
    arrived = threading.Event()
    reader = SyncPointerReader(
        None, service, on_change=lambda s: arrived.set() if s.epoch >= 2 else None
    )
    await asyncio.to_thread(reader.start)
    try:
        assert reader.resolve("u")[0] == "v1"
        await issue("promote", release="v2")
        assert await asyncio.to_thread(arrived.wait, ARRIVAL_S)
        assert reader.resolve("u")[0] == "v2"
    finally:
        await asyncio.to_thread(reader.stop)


async def test_async_with_starts_the_reader_and_leaving_it_ends_every_task(
    released: PointerStore, service: str
) -> None:
    """Inside ``async with PointerReader(url, ...)`` the reader resolves; after it, the reader's
    tasks are done, its subscriber is gone and the client it opened is closed."""
    async with PointerReader(None, service) as reader:
        assert reader.resolve("u")[0] == "v1"
        tasks = list(reader._tasks)
        assert tasks and not any(task.done() for task in tasks)
    assert all(task.done() for task in tasks)
    assert reader._tasks == [] and reader._subscriber is None
    assert isinstance(reader.client, aioredis.Redis)
    pool = reader.client.connection_pool
    assert not any(c.is_connected for c in pool._get_free_connections())


async def test_with_starts_the_threaded_reader_and_leaving_it_ends_its_thread(
    released: PointerStore, service: str
) -> None:
    """``with SyncPointerReader(...)`` resolves inside the block and joins its thread after."""

    def serve() -> tuple[str, threading.Thread | None]:
        with SyncPointerReader(None, service) as reader:
            assert reader._thread is not None and reader._thread.is_alive()
            return reader.resolve("u")[0], reader._thread

    release, thread = await asyncio.to_thread(serve)
    assert release == "v1" and thread is not None and not thread.is_alive()


async def test_a_reader_on_a_uvloop_event_loop_sees_a_flip(
    released: PointerStore, service: str, issue: Issue
) -> None:
    """uvloop's transports are not asyncio.Transport subclasses; the subscriber must not care."""
    uvloop = pytest.importorskip("uvloop")
    started, arrived = threading.Event(), threading.Event()

    async def serve() -> str:
        reader = PointerReader(
            None, service, on_change=lambda s: arrived.set() if s.epoch >= 2 else None
        )
        async with reader:
            started.set()
            while not arrived.is_set():
                await asyncio.sleep(0.01)
            return reader.resolve("u")[0]

    served = asyncio.create_task(asyncio.to_thread(uvloop.run, serve()))
    assert await asyncio.to_thread(started.wait, ARRIVAL_S)
    await issue("promote", release="v2")
    assert await asyncio.wait_for(served, ARRIVAL_S) == "v2"


async def test_a_plain_function_callback_needs_no_callback_task(
    released: PointerStore, service: str, issue: Issue
) -> None:
    """Only a coroutine on_change starts the task that awaits callbacks; it keeps their order."""
    seen: list[int] = []
    async with PointerReader(released.client, service, on_change=lambda s: None) as plain:
        await issue("promote", release="v2")
        while plain.state.epoch < 2:  # the change arrived and its callback ran
            await asyncio.sleep(0.01)
        assert plain._callback_task is None
    changes = Changes()
    async with PointerReader(released.client, service, on_change=changes) as reader:
        assert reader._callback_task is not None  # the initial load's callback
        await issue("promote", release="v1")
        await issue("promote", release="v2")
        await changes.epoch(4)
        seen = [s.epoch for s in changes.seen]
    assert seen == sorted(seen) and seen[-1] == 4
    assert reader._callback_task is None  # stop() ended it


async def test_stop_returns_in_bounded_time_even_if_a_task_ignores_cancellation(
    released: PointerStore, service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shutdown never hangs on a reader: a task stuck past cancellation is abandoned after
    STOP_TIMEOUT_S and the reader's connection is closed anyway."""
    import rollguard.actions.reader

    monkeypatch.setattr(rollguard.actions.reader, "STOP_TIMEOUT_S", 0.2)

    let_go = asyncio.Event()

    async def stubborn() -> None:
        while not let_go.is_set():
            try:
                await let_go.wait()
            except asyncio.CancelledError:
                continue

    reader = PointerReader(released.client, service)
    await reader.start()
    stuck = asyncio.create_task(stubborn())
    reader._tasks.append(stuck)
    started = time.monotonic()
    await asyncio.wait_for(reader.stop(), 5.0)
    assert time.monotonic() - started < 2.0
    assert reader._subscriber is None and not stuck.done()
    let_go.set()
    await stuck


FORGED_UNDONE_S = 1.0  # a message is confirmed by one GET: a round trip, well within this


async def _forge(store: PointerStore, service: str) -> tuple[int, int]:
    """Publish a change message with a far higher epoch than the pointer's (forged or
    corrupted); returns (true epoch, forged epoch)."""
    from dataclasses import replace

    from rollguard.actions.keys import ServiceKeys
    from rollguard.actions.state import decode

    raw = await store.client.get(ServiceKeys.of(service).pointer)
    assert raw is not None
    true = decode(raw)
    forged = replace(true, epoch=true.epoch + 1_000_000, active="v2")
    await store.client.publish(ServiceKeys.of(service).changes, encode(forged))
    return true.epoch, forged.epoch


async def until(check: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        await asyncio.sleep(0.01)
    return False


async def test_a_forged_change_message_is_undone_by_the_pointer_in_redis(
    released: PointerStore, service: str, issue: Issue
) -> None:
    """A message hints, Redis decides: a change message with a far higher epoch is read
    back at once and the reader returns to the pointer's epoch within a round trip (not
    at the next periodic re-read, a minute away here), so a real flip after it applies."""
    seen: list[int] = []
    async with PointerReader(released.client, service, on_change=lambda s: seen.append(s.epoch),
                             refresh_interval_s=60.0) as reader:
        true_epoch, forged_epoch = await _forge(released, service)
        assert await until(lambda: forged_epoch in seen, ARRIVAL_S)  # the hint was applied
        assert await until(lambda: reader.state.epoch == true_epoch, FORGED_UNDONE_S)
        await issue("promote", release="v2")
        assert await until(lambda: reader.state.epoch == true_epoch + 1, ARRIVAL_S)
        assert reader.state.active == "v2"


async def test_the_threaded_reader_undoes_a_forged_change_message_too(
    released: PointerStore, service: str
) -> None:
    forged_seen = threading.Event()
    reader = SyncPointerReader(
        None, service, refresh_interval_s=60.0,
        on_change=lambda s: forged_seen.set() if s.epoch > 1000 else None)
    await asyncio.to_thread(reader.start)
    try:
        true_epoch, _ = await _forge(released, service)
        assert await asyncio.to_thread(forged_seen.wait, ARRIVAL_S)
        assert await until(lambda: reader.state.epoch == true_epoch, FORGED_UNDONE_S)
    finally:
        await asyncio.to_thread(reader.stop)
