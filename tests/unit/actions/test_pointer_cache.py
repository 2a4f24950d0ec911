"""The writer's table of decoded releases, and the worker's short-lived pointer cache."""

from __future__ import annotations

from collections.abc import Callable

from rollguard.actions import pointer
from rollguard.actions.pointer import decoded_release
from rollguard.actions.pointer_cache import PointerCache, _Entry
from rollguard.actions.releases import Release
from rollguard.actions.state import PointerState
from rollguard.base.errors import UnknownService


def test_a_stored_release_is_decoded_once_and_by_its_exact_bytes() -> None:
    raw = Release("v1", {"model": "m1"}).to_json()
    first = decoded_release(raw)
    assert first == Release("v1", {"model": "m1"})
    assert decoded_release(bytes(raw)) is first
    other = decoded_release(Release("v1", {"model": "m2"}).to_json())
    assert other.components == {"model": "m2"}  # other bytes, however named, decode anew


def test_the_release_table_stays_bounded() -> None:
    for i in range(pointer.RELEASES_CACHED + 10):
        decoded_release(Release(f"r{i}", {"model": "m"}).to_json())
    assert 0 < len(pointer._releases) <= pointer.RELEASES_CACHED


class CountingStore:
    """A store that answers from a dict and counts round trips (the cache's only dependency)."""

    def __init__(self) -> None:
        self.reads = 0
        self.pointers: dict[str, PointerState] = {}
        self.during_read: Callable[[], None] = lambda: None

    async def read(self, service: str) -> PointerState:
        self.reads += 1
        if service not in self.pointers:
            raise UnknownService(service)
        return self.pointers[service]

    async def read_many(self, services: list[str]) -> dict[str, PointerState | None]:
        self.reads += 1
        found = {s: self.pointers.get(s) for s in services}
        self.during_read()
        return found


def cache_on(store: CountingStore, now: list[float]) -> PointerCache:
    return PointerCache(store, ttl_s=1.0, idle_s=60.0,  # type: ignore[arg-type]
                        clock=lambda: now[0])


def pointer_at(service: str, epoch: int) -> PointerState:
    return PointerState(service, "v1", "v1", epoch, {})


async def test_a_pointer_read_once_is_served_from_memory_until_a_refresh() -> None:
    """The hot path never waits for Redis once a service is known; a refresh renews every
    pointer older than the TTL in one round trip."""
    store, now = CountingStore(), [0.0]
    store.pointers.update(chat=pointer_at("chat", 1), mail=pointer_at("mail", 1))
    cache = cache_on(store, now)
    assert cache.cached("chat") == (False, None)
    assert (await cache.get("chat"), await cache.get("mail")) == (pointer_at("chat", 1),
                                                                   pointer_at("mail", 1))
    store.pointers.update(chat=pointer_at("chat", 2), mail=pointer_at("mail", 2))
    now[0] = 5.0
    assert cache.cached("chat") == (True, pointer_at("chat", 1))  # stale, but no I/O
    assert await cache.refresh() == 2 and store.reads == 3  # two first reads, one refresh
    assert cache.cached("chat") == (True, pointer_at("chat", 2))
    assert cache.cached("mail") == (True, pointer_at("mail", 2))


async def test_a_refresh_reads_only_pointers_older_than_the_ttl() -> None:
    store, now = CountingStore(), [0.0]
    store.pointers["chat"] = pointer_at("chat", 1)
    cache = cache_on(store, now)
    await cache.get("chat")
    now[0] = 0.9
    assert await cache.refresh() == 0 and store.reads == 1
    now[0] = 1.0
    assert await cache.refresh() == 1


async def test_pointers_not_used_for_the_idle_time_are_dropped() -> None:
    store, now = CountingStore(), [0.0]
    store.pointers["chat"] = pointer_at("chat", 1)
    cache = cache_on(store, now)
    await cache.get("chat")
    now[0] = 61.0
    assert await cache.refresh() == 0
    assert cache.cached("chat") == (False, None)


async def test_an_entry_invalidated_during_a_refresh_is_not_overwritten_by_it() -> None:
    """A rollback the worker issued while a refresh was in flight: the refresh's older
    answer must not come back over the pointer read after the rollback."""
    store, now = CountingStore(), [0.0]
    store.pointers["chat"] = pointer_at("chat", 1)
    cache = cache_on(store, now)
    await cache.get("chat")
    now[0] = 2.0

    def flip_meanwhile() -> None:  # invalidated, then read anew by the hot path
        cache.invalidate("chat")
        cache._entries["chat"] = _Entry(pointer_at("chat", 3), 2.0, 2.0)

    store.during_read = flip_meanwhile
    await cache.refresh()
    assert cache.cached("chat") == (True, pointer_at("chat", 3))


async def test_an_unknown_service_is_cached_as_none_and_invalidate_reads_again() -> None:
    store, now = CountingStore(), [0.0]
    cache = cache_on(store, now)
    assert await cache.get("ghost") is None and await cache.get("ghost") is None
    assert store.reads == 1
    cache.invalidate("ghost")
    store.pointers["ghost"] = PointerState("ghost", "v1", "v1", 1, {})
    assert await cache.get("ghost") is not None
