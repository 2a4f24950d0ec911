"""A destination's queue: backoff, a bounded backlog, and a digest after a long outage."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rollguard.notify.episodes import Episode, Message
from rollguard.notify.notices import Page, read_record
from rollguard.notify.outbox import Digest, Outbox, retry_delay
from tests.support.notify_records import alert


def message(service: str = "chat", pages: tuple[Page, ...] = (), at: float = 0.0) -> Message:
    notice = read_record(alert(at, service=service))
    assert notice is not None
    return Message(Episode(service, "v2", 0.0), (notice,), pages, 0, first=True)


@pytest.mark.parametrize("attempt, expected", [(0, 0.0), (1, 1.0), (2, 2.0), (3, 4.0),
                                               (7, 60.0), (1000, 60.0)])
def test_retries_back_off_doubling_up_to_a_cap(attempt: int, expected: float) -> None:
    assert retry_delay(attempt, base_s=1.0, cap_s=60.0) == expected


@given(st.integers(1, 200), st.floats(0.0, 0.999))
def test_a_retry_waits_between_half_the_backoff_and_the_cap(attempt: int, spread: float) -> None:
    full = retry_delay(attempt, 0.5, 30.0)
    assert full / 2 <= retry_delay(attempt, 0.5, 30.0, spread) <= full <= 30.0


def drain(box: Outbox, now: float, receiver_up_at: float) -> list[object]:
    """Run a sender on a fake clock: attempts fail until ``receiver_up_at``."""
    delivered: list[object] = []
    while len(box):
        item = box.ready(now)
        if item is None:
            now = box.next_attempt_at() or now
            continue
        if now < receiver_up_at:
            box.failed(now)
        else:
            delivered.append(item)
            box.delivered(now)
    return delivered


def test_a_receiver_down_for_an_hour_gets_one_digest_not_the_backlog() -> None:
    box = Outbox(capacity=1000, base_s=1.0, cap_s=60.0, summarise_after_s=60.0)
    for second in range(0, 3600, 10):
        box.put(message(service=f"s{second % 3}", at=second), now=second)
        while box.ready(second) is not None:  # the receiver is down all hour
            box.failed(second)
    (digest,) = drain(box, 3600.0, receiver_up_at=3600.0)
    assert isinstance(digest, Digest)
    assert digest.count == 360 and box.stats.summarised >= 360
    assert sorted(m.episode.service for m in digest.latest) == ["s0", "s1", "s2"]
    assert box.stats.failed > 0 and box.stats.sent == 1


def test_a_short_failure_delivers_each_message_after_the_retry() -> None:
    box = Outbox(base_s=1.0, summarise_after_s=60.0)
    first, second = message("a"), message("b")
    box.put(first, now=0.0)
    box.put(second, now=0.0)
    assert drain(box, 0.0, receiver_up_at=3.0) == [first, second]
    assert (box.stats.sent, box.stats.failed) == (2, 2)


def test_a_full_queue_is_summarised_instead_of_growing() -> None:
    box = Outbox(capacity=5)
    for i in range(50):
        box.put(message(f"s{i}"), now=0.0)
        assert len(box) < 5


def test_a_digest_keeps_each_episodes_last_page_action() -> None:
    box = Outbox(capacity=2)
    box.put(message(pages=("trigger",)), now=0.0)
    box.put(message(pages=("resolve",)), now=1.0)
    digest = box.ready(1.0)
    assert isinstance(digest, Digest)
    assert [m.pages for m in digest.latest] == [("resolve",)]


def test_a_message_refused_for_good_is_dropped_and_counted() -> None:
    box = Outbox()
    box.put(message(), now=0.0)
    box.rejected(now=0.0)
    assert len(box) == 0 and box.stats.rejected == 1
