"""A lean pub/sub subscriber for one channel: an asyncio Protocol speaking RESP2 directly.

redis-py's PubSub costs about 150 µs of Python per message on a small machine (retry, timeout
and telemetry layers); with hundreds of readers per host that alone missed the flip-latency
goal. Here a message is parsed and handed over inside the transport's read callback: no task,
no await, no allocation beyond the message itself. What remains per message and connection is
asyncio's own read path and the recv()/epoll system calls (about 15 µs on a small machine); a
plain ``loop.add_reader`` socket saved only ~2 µs of it, not worth a second TLS/unix path."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

Value = bytes | int | list[Any] | None
RECV_BUFFER = 64 * 1024


class ReplyError(Exception):
    """Redis answered ``-ERR ...`` (wrong password, ...)."""


def parse(buf: bytes | bytearray, pos: int) -> tuple[Value, int] | None:
    """One RESP2 value at ``pos``: ``(value, next position)``, or None if incomplete.

    >>> parse(b"*3\\r\\n$7\\r\\nmessage\\r\\n$2\\r\\nch\\r\\n$2\\r\\nhi\\r\\n", 0)
    ([b'message', b'ch', b'hi'], 33)
    >>> parse(b"$5\\r\\nhel", 0) is None
    True
    """
    end = buf.find(b"\r\n", pos)
    if end < 0:
        return None
    kind, line = buf[pos : pos + 1], bytes(buf[pos + 1 : end])
    pos = end + 2
    if kind == b"$":
        size = int(line)
        if size < 0:
            return None, pos
        if len(buf) < pos + size + 2:
            return None
        return bytes(buf[pos : pos + size]), pos + size + 2
    if kind == b"*":
        items: list[Any] = []
        for _ in range(int(line)):
            parsed = parse(buf, pos)
            if parsed is None:
                return None
            item, pos = parsed
            items.append(item)
        return items, pos
    if kind == b":":
        return int(line), pos
    if kind == b"+":
        return line, pos
    if kind == b"-":
        return ReplyError(line.decode(errors="replace")), pos  # type: ignore[return-value]
    raise ValueError(f"unexpected RESP type {kind!r}")


def command(*parts: str | bytes) -> bytes:
    """Encode a command as a RESP array of bulk strings.

    >>> command("SUBSCRIBE", "c")
    b'*2\\r\\n$9\\r\\nSUBSCRIBE\\r\\n$1\\r\\nc\\r\\n'
    """
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class ChannelSubscriber(asyncio.BufferedProtocol):
    """Subscribes to ``channel`` and calls ``on_subscribed()`` then ``on_message(data)``.

    ``closed`` resolves (with the cause, or None) when the connection ends.
    """

    def __init__(
        self,
        channel: str,
        on_message: Callable[[bytes], None],
        on_subscribed: Callable[[], None],
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.channel = channel.encode()
        self.on_message = on_message
        self.on_subscribed = on_subscribed
        self.auth = [a for a in (username, password) if a]
        self.closed: asyncio.Future[BaseException | None] = (
            asyncio.get_running_loop().create_future()
        )
        self.transport: asyncio.Transport | None = None
        self._buf = bytearray()
        # Reads land in one reused buffer: a plain Protocol gets a fresh 256 KiB bytes object
        # from every recv(), which cost more than parsing the message.
        self._recv = bytearray(RECV_BUFFER)
        self._view = memoryview(self._recv)
        # What a message on our channel starts with: lets the common case skip the parser.
        self._message_head = b"*3\r\n$7\r\nmessage\r\n$%d\r\n%s\r\n$" % (
            len(self.channel),
            self.channel,
        )

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not an isinstance check: uvloop's transports do not subclass asyncio.Transport.
        self.transport = cast(asyncio.Transport, transport)
        setup = command("AUTH", *self.auth) if self.auth else b""
        self.transport.write(setup + command("SUBSCRIBE", self.channel))

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        recv = self._recv
        if not self._buf and recv.startswith(self._message_head, 0, nbytes):
            # Fast path, straight from the receive buffer: exactly one whole message on our
            # channel in this read (the usual case). One copy: the payload itself.
            start = len(self._message_head)
            end = recv.find(b"\r\n", start, nbytes)
            if end > 0:
                body = end + 2
                stop = body + int(recv[start:end])
                if stop + 2 == nbytes:
                    self.on_message(bytes(self._view[body:stop]))
                    return
        self.data_received(recv[:nbytes])

    def data_received(self, data: bytes | bytearray) -> None:
        buf = self._buf
        buf += data
        pos = 0
        try:
            while (parsed := parse(buf, pos)) is not None:
                value, pos = parsed
                self._handle(value)
        except (ReplyError, ValueError) as exc:
            self._fail(exc)
            return
        del buf[:pos]

    def _handle(self, value: Any) -> None:
        if isinstance(value, ReplyError):
            raise value
        if isinstance(value, list) and len(value) == 3 and value[1] == self.channel:
            if value[0] == b"message":
                self.on_message(value[2])
            elif value[0] == b"subscribe":
                self.on_subscribed()

    def _fail(self, exc: BaseException) -> None:
        if not self.closed.done():
            self.closed.set_result(exc)
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(exc or ConnectionResetError("Redis closed the connection"))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def subscribe(
    targets: list[dict[str, Any]],
    channel: str,
    on_message: Callable[[bytes], None],
    on_subscribed: Callable[[], None],
    timeout: float = 5.0,
) -> ChannelSubscriber:
    """Connect to the first of ``targets`` that answers
    (``rollguard.actions.connect.subscriber_targets`` describes them: host and port or a unix
    path, credentials, an SSL context or None)."""
    loop = asyncio.get_running_loop()
    failure: BaseException = ConnectionError("no Redis server to subscribe to")
    for target in targets:

        def factory(target: dict[str, Any] = target) -> ChannelSubscriber:
            return ChannelSubscriber(
                channel, on_message, on_subscribed, target.get("username"), target.get("password")
            )

        if target.get("path"):
            connect = loop.create_unix_connection(factory, target["path"])
        else:
            connect = loop.create_connection(factory, target["host"], target["port"],
                                             ssl=target.get("ssl"))
        try:
            _, protocol = await asyncio.wait_for(connect, timeout)
        except (OSError, TimeoutError) as exc:
            failure = exc
            continue
        return protocol
    raise failure
