"""The readers' shared core without Redis: decoded values are shared, changes still all apply."""

from __future__ import annotations

from rollguard.actions import reader_core
from rollguard.actions.reader_core import REFRESH_JITTER, ReaderCore, decoded, refresh_delay
from rollguard.actions.state import PointerState, encode


def value(epoch: int, active: str = "v1") -> bytes:
    return encode(PointerState("bot", active, "v1", epoch, {"model": f"m-{active}"}))


def reader(seen: list[int]) -> ReaderCore:
    return ReaderCore("bot", lambda s: seen.append(s.epoch), None, 5.0, None, "rollguard", 0)


def test_readers_receiving_the_same_bytes_share_one_decoded_state_and_router() -> None:
    """Hundreds of readers in a process decode a change once; each still gets its callback."""
    seen: list[int] = []
    readers = [reader(seen) for _ in range(3)]
    raw = value(4, "v2")
    for r in readers:
        r._accept(bytes(raw), authoritative=False)  # distinct bytes objects, equal contents
    assert seen == [4, 4, 4]
    assert readers[0].state is readers[1].state is readers[2].state
    assert readers[0]._router is readers[2]._router
    assert readers[1].resolve("user-1") == ("v2", {"model": "m-v2"})


def test_every_newer_change_applies_and_older_or_repeated_ones_do_not() -> None:
    """Cache hits change nothing about the epoch rules of docs/pointer-protocol.md, 4."""
    seen: list[int] = []
    r = reader(seen)
    r._accept(value(2), authoritative=True)
    r._accept(value(3, "v2"), authoritative=False)
    r._accept(value(3, "v2"), authoritative=True)  # the periodic re-read: same value
    r._accept(value(2), authoritative=False)  # an overtaken message
    r._accept(value(5), authoritative=False)
    assert seen == [2, 3, 5] and r.state.active == "v1"
    r._accept(value(4, "v2"), authoritative=True)  # the server's truth, even if older
    assert seen == [2, 3, 5, 4] and r.resolve("k")[0] == "v2"


def test_a_reader_that_may_read_a_replica_never_goes_back_to_an_older_epoch() -> None:
    """A lagging replica answers a re-read with an older epoch: ignored, as an overtaken
    message is; newer reads still apply."""
    seen: list[int] = []
    r = reader(seen)
    r.replica_reads = True
    r._accept(value(5, "v2"), authoritative=False)
    r._accept(value(4), authoritative=True)
    r._accept(value(5, "v2"), authoritative=True)
    assert seen == [5] and r.resolve("k")[0] == "v2"
    r._accept(value(6), authoritative=True)
    assert seen == [5, 6]


def test_the_shared_table_stays_small() -> None:
    for epoch in range(reader_core.DECODED_MAX * 3):
        decoded(value(epoch))
    assert 0 < len(reader_core._decoded) <= reader_core.DECODED_MAX
    assert decoded(value(7))[0].epoch == 7


def test_periodic_rereads_are_spread_but_never_later_than_the_interval() -> None:
    delays = [refresh_delay(5.0) for _ in range(2000)]
    assert all(5.0 * (1 - REFRESH_JITTER) <= d <= 5.0 for d in delays)
    assert max(delays) - min(delays) > 0.5  # spread over most of the allowed second
