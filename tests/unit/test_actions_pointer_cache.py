"""The writer's table of decoded releases, and the worker's short-lived pointer cache."""

from __future__ import annotations

from actions import pointer
from actions.pointer import decoded_release
from actions.pointer_cache import PointerCache
from actions.releases import Release
from actions.state import PointerState
from rollguard.errors import UnknownService


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
    """A store that answers from a dict and counts reads (the cache's only dependency)."""

    def __init__(self) -> None:
        self.reads = 0
        self.pointers: dict[str, PointerState] = {}

    async def read(self, service: str) -> PointerState:
        self.reads += 1
        if service not in self.pointers:
            raise UnknownService(service)
        return self.pointers[service]


def cache_on(store: CountingStore, now: list[float]) -> PointerCache:
    return PointerCache(store, ttl_s=1.0, clock=lambda: now[0])  # type: ignore[arg-type]


async def test_the_pointer_cache_reads_once_per_ttl() -> None:
    """Within the TTL the cached pointer answers; after it, the store is read again."""
    store, now = CountingStore(), [0.0]
    store.pointers["chat"] = PointerState("chat", "v1", "v1", 1, {})
    cache = cache_on(store, now)
    assert (await cache.get("chat")).epoch == 1  # type: ignore[union-attr]
    store.pointers["chat"] = PointerState("chat", "v1", "v1", 2, {})
    now[0] = 0.9
    assert (await cache.get("chat")).epoch == 1  # type: ignore[union-attr]
    now[0] = 1.0
    assert (await cache.get("chat")).epoch == 2  # type: ignore[union-attr]
    assert store.reads == 2


async def test_an_unknown_service_is_cached_as_none_and_invalidate_reads_again() -> None:
    store, now = CountingStore(), [0.0]
    cache = cache_on(store, now)
    assert await cache.get("ghost") is None and await cache.get("ghost") is None
    assert store.reads == 1
    cache.invalidate("ghost")
    store.pointers["ghost"] = PointerState("ghost", "v1", "v1", 1, {})
    assert await cache.get("ghost") is not None
