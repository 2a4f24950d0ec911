"""Kafka clients with errors that name the broker address instead of hanging.

Every Kafka client of rollguard (worker, emitter, CLI, ``rollguard check``, the demo) takes
its security settings from here: :func:`client_options` turns a
:class:`~rollguard.base.config.KafkaSecurity` into aiokafka's keyword arguments and
:func:`faust_credentials` into Faust's ``broker_credentials``. When a client cannot start,
:func:`diagnose` opens one connection itself to tell a refused login or certificate
(:class:`~rollguard.base.errors.AccessRefused`, naming the setting) from a broker that is away.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.conn import create_conn
from aiokafka.errors import (
    KafkaError,
    SaslAuthenticationFailed,
    TopicAlreadyExistsError,
    UnsupportedSaslMechanismError,
)
from aiokafka.helpers import create_ssl_context
from aiokafka.protocol.metadata import MetadataRequest

from rollguard.base.config import KafkaSecurity, kafka_bootstrap, parse_host_port
from rollguard.base.errors import AccessRefused, ConfigError, RollguardError, ServiceUnavailable

if TYPE_CHECKING:
    from faust.types.auth import CredentialsT

    from rollguard.streams.settings import WorkerSettings

log = logging.getLogger(__name__)

# Fail fast when nothing listens: the defaults retry for 40 s before saying anything.
CONNECT_TIMEOUT_MS = 5000


def ssl_context(security: KafkaSecurity) -> ssl.SSLContext:
    """The TLS context of ``security``: its CA file (else the system's CAs), and its client
    certificate for mutual TLS."""
    try:
        context = create_ssl_context(cafile=security.cafile, certfile=security.certfile,
                                     keyfile=security.keyfile)
    except (OSError, ssl.SSLError) as exc:
        raise AccessRefused("Kafka", kafka_bootstrap(), f"TLS files cannot be loaded: {exc}",
                            "KAFKA_SSL_CAFILE/KAFKA_SSL_CERTFILE/KAFKA_SSL_KEYFILE") from exc
    if security.cafile is None:
        context.load_default_certs()  # aiokafka's helper loads no CA without a file
    return context


def client_options(security: KafkaSecurity | None = None) -> dict[str, Any]:
    """aiokafka keyword arguments for ``security`` (default: from the environment).

    >>> client_options(KafkaSecurity())
    {'security_protocol': 'PLAINTEXT'}
    >>> sorted(client_options(KafkaSecurity("SASL_PLAINTEXT", "SCRAM-SHA-256", "u", "p")))
    ['sasl_mechanism', 'sasl_plain_password', 'sasl_plain_username', 'security_protocol']
    """
    found = security or KafkaSecurity.from_env()
    options: dict[str, Any] = {"security_protocol": found.protocol}
    if found.uses_sasl:
        options.update(sasl_mechanism=found.mechanism, sasl_plain_username=found.username,
                       sasl_plain_password=found.password)
    if found.uses_tls:
        options["ssl_context"] = ssl_context(found)
    return options


def faust_credentials(security: KafkaSecurity | None = None) -> CredentialsT | None:
    """Faust's ``broker_credentials`` for ``security`` (None: plaintext)."""
    import faust  # here: the emitter shares this module, and a serving process has no Faust

    found = security or KafkaSecurity.from_env()
    if found.uses_sasl:
        return faust.SASLCredentials(
            username=found.username, password=found.password, mechanism=found.mechanism,
            ssl_context=ssl_context(found) if found.uses_tls else None)
    if found.uses_tls:
        return faust.SSLCredentials(ssl_context(found))
    return None


async def diagnose(bootstrap: str, security: KafkaSecurity | None = None,
                   timeout_ms: int = CONNECT_TIMEOUT_MS) -> RollguardError | None:
    """Why a client could not start against the first broker of ``bootstrap``: an
    AccessRefused when it refused our login or certificate, a ServiceUnavailable when it
    is away, None when a connection with ``security`` succeeds."""
    found = security or KafkaSecurity.from_env()
    address = parse_host_port(bootstrap, setting="KAFKA_BOOTSTRAP", default_port=9092)
    options = client_options(found)
    try:
        conn = await create_conn(address.host, address.port, request_timeout_ms=timeout_ms,
                                 **options)
    except SaslAuthenticationFailed as exc:
        return AccessRefused("Kafka", str(address),
                             f"refused the SASL login of user {found.username!r} "
                             f"({found.mechanism}): {exc}", found.credential_settings())
    except UnsupportedSaslMechanismError:
        return AccessRefused("Kafka", str(address),
                             f"does not accept the SASL mechanism {found.mechanism}",
                             "KAFKA_SASL_MECHANISM")
    except ssl.SSLCertVerificationError as exc:
        return AccessRefused("Kafka", str(address),
                             f"sent a certificate we do not trust: {exc.verify_message}",
                             "KAFKA_SSL_CAFILE")
    except ssl.SSLError as exc:
        return AccessRefused("Kafka", str(address), f"ended the TLS handshake: {exc}",
                             "KAFKA_SECURITY_PROTOCOL, KAFKA_SSL_CERTFILE/KAFKA_SSL_KEYFILE")
    except (TimeoutError, KafkaError, OSError) as exc:
        refused = _refused_certificate(exc, str(address), found)
        if refused is not None:
            return refused
        if isinstance(exc, ConnectionRefusedError) or (
                isinstance(exc, OSError) and not isinstance(exc, ConnectionError)):
            return ServiceUnavailable("Kafka", str(address), str(exc) or type(exc).__name__)
        return AccessRefused("Kafka", str(address),
                             f"closed the connection during the handshake ({exc}); does it "
                             f"expect another protocol than {found.protocol}?",
                             "KAFKA_SECURITY_PROTOCOL")
    try:
        await conn.send(MetadataRequest([]))
    except (TimeoutError, KafkaError) as exc:
        return AccessRefused("Kafka", str(address),
                             f"closed the connection after the handshake ({exc}); does it "
                             f"expect a SASL login (KAFKA_SECURITY_PROTOCOL={found.protocol})?",
                             "KAFKA_SECURITY_PROTOCOL")
    finally:
        conn.close()
    return None


def _refused_certificate(exc: BaseException, address: str,
                         found: KafkaSecurity) -> AccessRefused | None:
    """The broker's TLS alert about our client certificate (none sent, or not one it
    trusts), which aiokafka reports as a closed connection caused by an SSLError."""
    cause = exc.__cause__ or exc.__context__
    reason = getattr(cause, "reason", None) or ""
    if not isinstance(cause, ssl.SSLError) or "CERTIFICATE" not in reason:
        return None
    setting = "KAFKA_SSL_CERTFILE/KAFKA_SSL_KEYFILE"
    if not found.certfile:
        return AccessRefused("Kafka", address, "requires a client certificate (mutual TLS) "
                             f"and none is set: TLS alert {reason}", setting)
    return AccessRefused("Kafka", address, f"refused our client certificate "
                         f"{found.certfile}: TLS alert {reason}; is it signed by a CA the "
                         "broker trusts?", setting)


async def start_client(client: Any, bootstrap: str, security: KafkaSecurity | None = None) -> None:
    """Start an aiokafka client; a failure is explained by :func:`diagnose`."""
    try:
        await client.start()
    except (KafkaError, OSError) as exc:
        await client.stop() if hasattr(client, "stop") else await client.close()
        reason = await diagnose(bootstrap, security)
        if reason is not None:
            raise reason from exc
        raise ServiceUnavailable("Kafka", bootstrap, str(exc) or type(exc).__name__) from exc


@asynccontextmanager
async def producer(bootstrap: str | None = None, **options: Any) -> AsyncIterator[AIOKafkaProducer]:
    """A started producer, stopped (and flushed) on exit."""
    address = bootstrap or kafka_bootstrap()
    options.setdefault("request_timeout_ms", CONNECT_TIMEOUT_MS)
    client = AIOKafkaProducer(bootstrap_servers=address, **{**client_options(), **options})
    await start_client(client, address)
    try:
        yield client
    finally:
        await client.stop()


@asynccontextmanager
async def consumer(
    *topics: str, bootstrap: str | None = None, **options: Any
) -> AsyncIterator[AIOKafkaConsumer]:
    """A started consumer subscribed to ``topics``, stopped on exit."""
    address = bootstrap or kafka_bootstrap()
    options.setdefault("request_timeout_ms", CONNECT_TIMEOUT_MS)
    client = AIOKafkaConsumer(*topics, bootstrap_servers=address,
                              **{**client_options(), **options})
    await start_client(client, address)
    try:
        yield client
    finally:
        await client.stop()


@asynccontextmanager
async def admin_client(bootstrap: str | None = None) -> AsyncIterator[AIOKafkaAdminClient]:
    """A started admin client, closed on exit; Kafka errors name the broker."""
    address = bootstrap or kafka_bootstrap()
    admin = new_admin_client(address)
    await start_client(admin, address)
    try:
        yield admin
    except KafkaError as exc:
        raise ServiceUnavailable("Kafka", address, f"{type(exc).__name__}: {exc}") from exc
    finally:
        await admin.close()


async def partition_counts(names: Iterable[str], bootstrap: str | None = None) -> dict[str, int]:
    """The partition count of each of ``names`` that exists."""
    async with admin_client(bootstrap) as admin:
        existing = set(await admin.list_topics())
        # Only topics that exist: describing a missing one makes a broker that auto-creates
        # topics create it, with its default partition count.
        wanted = [name for name in names if name in existing]
        found = await admin.describe_topics(wanted) if wanted else []
    return {t["topic"]: len(t["partitions"]) for t in found
            if t["error_code"] == 0 and t["partitions"]}


@asynccontextmanager
async def tail(*topics: str, bootstrap: str | None = None) -> AsyncIterator[AIOKafkaConsumer]:
    """A consumer of every partition of ``topics`` (no group), positioned at their ends
    before it is handed over: whatever is sent after that cannot be missed. ConfigError
    naming the first topic that does not exist."""
    from aiokafka import TopicPartition

    address = bootstrap or kafka_bootstrap()
    counts = await partition_counts(topics, address)
    for topic in topics:
        if not counts.get(topic):
            raise ConfigError(f"no topic {topic!r} at {address}: is a worker running (its "
                              "ROLLGUARD_TOPIC_* settings)?")
    async with consumer(bootstrap=address, group_id=None, enable_auto_commit=False) as into:
        partitions = [TopicPartition(t, p) for t in topics for p in range(counts[t])]
        into.assign(partitions)
        for tp, offset in (await into.end_offsets(partitions)).items():
            into.seek(tp, offset)
        yield into


async def ensure_topics(
    names: dict[str, int], bootstrap: str | None = None, replication: int = 1,
    configs: Mapping[str, Mapping[str, str]] | None = None,
) -> None:
    """Create each topic with its partition count (and its ``configs``, if any) unless it
    exists already."""
    configs = configs or {}
    async with admin_client(bootstrap) as admin:
        existing = set(await admin.list_topics())
        wanted = [NewTopic(n, p, replication, topic_configs=dict(configs.get(n, {})))
                  for n, p in names.items() if n not in existing]
        if wanted:
            # Another process may create one between the listing and now.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(wanted)


async def prepare_topics(settings: WorkerSettings) -> WorkerSettings:
    """Create the worker's topics, adopting the partition count of an events topic that
    exists already; the settings with that count (:meth:`WorkerSettings.adopting`)."""
    existing = await partition_counts([*settings.topics(), settings.topic_changelog],
                                      settings.kafka_bootstrap)
    adopted = settings.adopting(existing)
    await ensure_topics(adopted.topics(), settings.kafka_bootstrap,
                        configs=adopted.topic_configs())
    await warn_of_topic_configs(adopted.topic_configs(), settings.kafka_bootstrap)
    return adopted


async def warn_of_topic_configs(wanted: Mapping[str, Mapping[str, str]],
                                bootstrap: str | None = None) -> None:
    """Log a warning for each topic (created before, or by hand) whose settings differ
    from those the worker creates it with, and how to set them; they are not changed here
    (the only alteration every broker accepts replaces a topic's other settings too)."""
    resources = [ConfigResource(ConfigResourceType.TOPIC, topic, {name: None for name in names})
                 for topic, names in wanted.items()]
    async with admin_client(bootstrap) as admin:
        replies = await admin.describe_configs(resources)
    for reply in replies:
        for _code, _message, _type, topic, entries in reply.resources:
            for name, value, *_ in entries:
                if wanted[topic][name] != value:
                    log.warning(
                        "topic %s has %s=%s, not %s: set it with kafka-configs.sh --alter "
                        "--entity-type topics --entity-name %s --add-config %s=%s", topic, name,
                        value, wanted[topic][name], topic, name, wanted[topic][name])


def new_admin_client(bootstrap: str | None = None, **options: Any) -> AIOKafkaAdminClient:
    """An admin client (not started) with the security settings of the environment."""
    options.setdefault("request_timeout_ms", CONNECT_TIMEOUT_MS)
    return AIOKafkaAdminClient(bootstrap_servers=bootstrap or kafka_bootstrap(),
                               **{**client_options(), **options})
