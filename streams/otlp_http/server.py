"""The OTLP/HTTP receiver of ``rollguard otlp``: ``POST /v1/logs`` and ``/v1/traces``,
protobuf or JSON, answered as the OTLP specification says — 200 (with ``partial_success``
when records were left out), 400 for a body that is not a request, 401 without the bearer
token, 413 for a body over the limit, 415 for another content type, 404 and 405 — and 503
with ``Retry-After`` while Kafka does not acknowledge. A 200 is sent only once every message
of the request is acknowledged by all in-sync replicas (``acks=all``): nothing answered 200
is lost; a request answered 503 may have been written too, and be written again when the
client retries (at least once, as with the Collector)."""

from __future__ import annotations

import asyncio
import hmac
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress

import orjson
from aiohttp import web
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from google.protobuf import json_format
from google.protobuf.message import Message

from rollguard.base.errors import ConfigError, InvalidEvent, ServiceUnavailable
from rollguard.streams.connect import ensure_topics, producer
from rollguard.streams.otlp_http.bodies import (
    CONTENT_TYPES,
    JSON,
    LOGS,
    PROTOBUF,
    TRACES,
    Read,
    Signal,
    decode,
    split,
)
from rollguard.streams.otlp_http.placement import by_partition
from rollguard.streams.otlp_http.settings import OtlpSettings

log = logging.getLogger(__name__)
Placed = tuple[int | None, bytes]  # a Kafka message and its partition (None: any)
# google.rpc.Code of the error answers
INVALID_ARGUMENT, RESOURCE_EXHAUSTED, UNAVAILABLE, UNAUTHENTICATED = 3, 8, 14, 16


class Publisher:
    """Writes a request's messages to Kafka and waits for every acknowledgement."""

    def __init__(self, kafka: AIOKafkaProducer, settings: OtlpSettings) -> None:
        self.kafka = kafka
        self.settings = settings

    async def partitions(self, topic: str) -> int:
        """The topic's partition count, from the producer's metadata."""
        return len(await self.kafka.partitions_for(topic))

    async def publish(self, topic: str, messages: list[Placed]) -> None:
        """Return once all of ``messages`` (each to its partition, ``None``: the
        producer's choice) are acknowledged; ServiceUnavailable when Kafka refuses or does
        not acknowledge within the timeout."""
        deadline = asyncio.get_running_loop().time() + self.settings.ack_timeout_s
        sent: list[asyncio.Future[object]] = []
        try:
            async with asyncio.timeout_at(deadline):
                for partition, message in messages:
                    sent.append(await self.kafka.send(topic, message, partition=partition))
            done, pending = await asyncio.wait(
                sent, timeout=max(deadline - asyncio.get_running_loop().time(), 0.0))
        except (TimeoutError, KafkaError) as exc:
            _forget(sent)
            raise ServiceUnavailable("Kafka", self.settings.kafka_bootstrap,
                                     f"no acknowledgement: {exc!r}") from exc
        failed = next((f.exception() for f in done if f.exception() is not None), None)
        if pending or failed is not None:
            _forget(sent)
            raise ServiceUnavailable("Kafka", self.settings.kafka_bootstrap,
                                     f"no acknowledgement in {self.settings.ack_timeout_s:g} s"
                                     if failed is None else f"refused: {failed!r}") from failed


def _forget(futures: list[asyncio.Future[object]]) -> None:
    """Retrieve the outcome of futures no longer awaited (no 'never retrieved' warning)."""
    for future in futures:
        future.add_done_callback(lambda f: f.cancelled() or f.exception())


def status_body(content_type: str, code: int, message: str) -> tuple[bytes, str]:
    """A ``google.rpc.Status`` in the request's content type (text for others)."""
    if content_type == JSON:
        return orjson.dumps({"code": code, "message": message}), JSON
    if content_type == PROTOBUF:
        text = message.encode()
        return bytes([0x08, code, 0x12]) + _varint(len(text)) + text, PROTOBUF
    return message.encode(), "text/plain"


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def error(status: int, content_type: str, code: int, message: str,
          headers: dict[str, str] | None = None) -> web.Response:
    body, kind = status_body(content_type, code, message)
    return web.Response(status=status, body=body, content_type=kind, headers=headers)


def success(signal: Signal, content_type: str, rejected: int, why: str) -> web.Response:
    answer = signal.response()
    if rejected:
        partial = signal.partial(error_message=why)
        setattr(partial, signal.rejected_field, rejected)
        answer.partial_success.CopyFrom(partial)
    if content_type == JSON:
        body = orjson.dumps(json_format.MessageToDict(answer))
    else:
        body = answer.SerializeToString()
    return web.Response(status=200, body=body, content_type=content_type)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class InFlight:
    """The requests under way, so that a stop can wait for their answers."""

    def __init__(self) -> None:
        self.count = 0
        self.idle = asyncio.Event()
        self.idle.set()

    def wrap(self, handler: Handler) -> Handler:
        async def counted(request: web.Request) -> web.StreamResponse:
            self.count += 1
            self.idle.clear()
            try:
                return await handler(request)
            finally:
                self.count -= 1
                if not self.count:
                    self.idle.set()

        return counted


def receiver(signal: Signal, topic: str, settings: OtlpSettings,
             publisher: Publisher) -> Handler:
    """The handler of ``POST`` on ``signal.path``."""
    expected = f"Bearer {settings.token}".encode() if settings.token else None

    async def handle(request: web.Request) -> web.StreamResponse:
        kind = request.content_type
        log.debug("%s: a request of %s bytes (%s)", signal.path, request.content_length, kind)
        if expected is not None and not hmac.compare_digest(
                request.headers.get("Authorization", "").encode(), expected):
            return error(401, kind, UNAUTHENTICATED, "missing or wrong bearer token",
                         {"WWW-Authenticate": 'Bearer realm="rollguard otlp"'})
        if kind not in CONTENT_TYPES:
            return error(415, kind, INVALID_ARGUMENT, f"Content-Type must be one of "
                         f"{', '.join(CONTENT_TYPES)}, not {kind!r}")
        too_large = f"the body exceeds {settings.max_body_bytes} bytes"
        if (request.content_length or 0) > settings.max_body_bytes:
            return error(413, kind, RESOURCE_EXHAUSTED, too_large)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return error(413, kind, RESOURCE_EXHAUSTED, too_large)
        try:
            read = decode(signal, body, kind)
        except InvalidEvent as exc:
            return error(400, kind, INVALID_ARGUMENT, str(exc))
        try:
            messages, oversized = await _messages(signal, topic, read, body, kind, settings,
                                                  publisher)
            if messages and read.kept > oversized:
                await publisher.publish(topic, messages)
        except ServiceUnavailable as exc:
            return _unavailable(signal, read, kind, settings, exc)
        why = read.why or (f"a record exceeds a Kafka message ({settings.max_message_bytes} "
                           "bytes)" if oversized else "")
        return success(signal, kind, read.rejected + oversized, why)

    return handle


async def _messages(signal: Signal, topic: str, read: Read, body: bytes, kind: str,
                    settings: OtlpSettings, publisher: Publisher) -> tuple[list[Placed], int]:
    """The request's Kafka messages, each with its partition (each trace on the partition
    of :mod:`placement`, with ``by_trace``), and the count of records left out as too
    large for a message."""
    groups: dict[int | None, Message] = {None: read.request}
    if settings.by_trace:
        try:
            async with asyncio.timeout(settings.ack_timeout_s):
                count = await publisher.partitions(topic)
        except (TimeoutError, KafkaError) as exc:
            raise ServiceUnavailable("Kafka", settings.kafka_bootstrap,
                                     f"no metadata for {topic}: {exc!r}") from exc
        groups = by_partition(signal, read.request, count)
    if (len(groups) == 1 and kind == PROTOBUF and settings.encoding == "otlp_proto"
            and not read.rejected and len(body) <= settings.max_message_bytes):
        return [(next(iter(groups)), body)], 0  # already what the exporter would write
    placed: list[Placed] = []
    oversized = 0
    for partition, request in groups.items():
        parts, left = split(signal, request, settings.encoding, settings.max_message_bytes)
        placed += [(partition, part) for part in parts]
        oversized += left
    return placed, oversized


def _unavailable(signal: Signal, read: Read, kind: str, settings: OtlpSettings,
                 exc: ServiceUnavailable) -> web.Response:
    log.warning("answered 503 to %d %s records: %s", read.kept, signal.name, exc)
    return error(503, kind, UNAVAILABLE, "Kafka is unavailable; retry later",
                 {"Retry-After": str(settings.retry_after_s)})


def build_app(settings: OtlpSettings, publisher: Publisher,
              in_flight: InFlight) -> web.Application:
    app = web.Application(client_max_size=settings.max_body_bytes)
    for signal, topic in ((LOGS, settings.topic_logs), (TRACES, settings.topic_spans)):
        app.router.add_post(signal.path,
                            in_flight.wrap(receiver(signal, topic, settings, publisher)))
    return app


def tls_context(settings: OtlpSettings) -> ssl.SSLContext | None:
    if not settings.certfile or not settings.keyfile:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(settings.certfile, settings.keyfile)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"ROLLGUARD_OTLP_TLS_CERTFILE/ROLLGUARD_OTLP_TLS_KEYFILE: cannot "
                          f"load {settings.certfile}: {exc}") from exc
    return context


@contextmanager
def _quiet(name: str) -> Iterator[None]:
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


@asynccontextmanager
async def serving(settings: OtlpSettings) -> AsyncIterator[web.AppRunner]:
    """Receive OTLP/HTTP until the block ends; then stop listening, finish the requests
    under way (their answers wait for Kafka as always), and flush and stop the producer."""
    context = tls_context(settings)
    with _quiet("aiokafka"):  # a broker away at start: our one line says it, not theirs too
        await ensure_topics({settings.topic_logs: settings.partitions,
                             settings.topic_spans: settings.partitions},
                            settings.kafka_bootstrap)
    async with producer(settings.kafka_bootstrap, acks="all", enable_idempotence=True,
                        max_request_size=settings.max_message_bytes + 1024) as kafka:
        in_flight = InFlight()
        runner = web.AppRunner(build_app(settings, Publisher(kafka, settings), in_flight),
                               access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, settings.host, settings.port, ssl_context=context)
        try:
            try:
                await site.start()
            except OSError as exc:
                raise ConfigError(f"ROLLGUARD_OTLP_ADDR: cannot listen on {settings.host}:"
                                  f"{settings.port}: {exc.strerror or exc}") from exc
            yield runner
        finally:
            await site.stop()  # no new connections; the requests under way are answered
            with suppress(TimeoutError):
                await asyncio.wait_for(in_flight.idle.wait(), settings.ack_timeout_s + 60)
            await runner.cleanup()
