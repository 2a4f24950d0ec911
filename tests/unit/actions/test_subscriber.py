"""The RESP2 subscriber's parsing, fed bytes directly (no sockets)."""

from __future__ import annotations

import pytest

from rollguard.actions.subscriber import ChannelSubscriber, command


def frames(*payloads: bytes, channel: str = "ch") -> bytes:
    return b"".join(command("message", channel, p) for p in payloads)


@pytest.fixture(name="received")
async def fixture_received() -> tuple[ChannelSubscriber, list[bytes], list[str]]:
    got: list[bytes] = []
    events: list[str] = []
    sub = ChannelSubscriber("ch", got.append, lambda: events.append("subscribed"))
    return sub, got, events


@pytest.mark.parametrize("cut", [1, 5, 13, 20, 27, 40])
async def test_a_message_split_across_reads_arrives_once_and_whole(received, cut: int) -> None:
    """However TCP splits the bytes, the payload comes out whole, exactly once."""
    sub, got, _ = received
    data = frames(b'{"epoch":7}')
    sub.data_received(data[:cut])
    sub.data_received(data[cut:])
    assert got == [b'{"epoch":7}']


async def test_several_replies_in_one_read_are_all_handled_in_order(received) -> None:
    """A confirmation, two messages and one on another channel in one read."""
    sub, got, events = received
    confirmation = b"*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n"
    sub.data_received(confirmation + frames(b"a", b"b\r\nc") + frames(b"x", channel="other"))
    assert events == ["subscribed"]
    assert got == [b"a", b"b\r\nc"]


async def test_an_error_reply_closes_the_subscriber_with_the_cause(received) -> None:
    """`-WRONGPASS ...` ends the subscription and says why."""
    sub, _, _ = received
    sub.data_received(b"-WRONGPASS invalid username-password pair\r\n")
    assert "WRONGPASS" in str(sub.closed.result())


def receive(sub: ChannelSubscriber, data: bytes) -> None:
    """What the event loop does with a read: fill get_buffer(), then buffer_updated(n)."""
    buffer = sub.get_buffer(-1)
    buffer[: len(data)] = data
    sub.buffer_updated(len(data))


async def test_reads_through_the_receive_buffer_take_whole_messages_and_pieces(
    received,
) -> None:
    """One whole message per read (the fast path), a message in two reads, two in one read."""
    sub, got, _ = received
    receive(sub, frames(b'{"epoch":1}'))
    data = frames(b'{"epoch":2}')
    receive(sub, data[:30])  # the buffer still holds the longer first message beyond byte 30
    receive(sub, data[30:])
    receive(sub, frames(b'{"epoch":3}', b'{"epoch":4}'))
    receive(sub, frames(b"x", channel="other"))
    assert got == [b'{"epoch":1}', b'{"epoch":2}', b'{"epoch":3}', b'{"epoch":4}']
    assert all(type(payload) is bytes for payload in got)


@pytest.mark.parametrize("cut", [1, 10, 21, 25, 29])
async def test_a_short_read_is_not_taken_for_a_whole_message(received, cut: int) -> None:
    """Bytes left in the reused buffer by an earlier read never complete a later one."""
    sub, got, _ = received
    receive(sub, frames(b'{"epoch":1}'))
    data = frames(b'{"epoch":2}')
    receive(sub, data[:cut])
    assert got == [b'{"epoch":1}']
    receive(sub, data[cut:])
    assert got == [b'{"epoch":1}', b'{"epoch":2}']
