"""``rollguard otlp``'s settings: every one an environment variable with a default, checked
at start with a one-line error naming the variable. The bearer token is never printed:
not by ``--help`` (which shows defaults only), not in ``repr``, not in an error."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rollguard.base.config import (
    KAFKA_SECURITY_VARIABLES,
    KafkaSecurity,
    kafka_bootstrap,
    secret_setting,
)
from rollguard.base.errors import ConfigError
from rollguard.streams.settings import (
    DEFAULT_OTLP_ENCODING,
    DEFAULT_OTLP_LOGS,
    DEFAULT_OTLP_SPANS,
    _get,
    _otlp_encoding,
    _seconds,
    host_port,
)

DEFAULT_ADDR = "127.0.0.1:4318"  # OTLP/HTTP's port
DEFAULT_MAX_BODY = 20 * 1024 * 1024  # as the Collector's OTLP receiver
DEFAULT_MAX_MESSAGE = 1_000_000  # as the Collector's kafka exporter (producer.max_message_bytes)

VARIABLES: tuple[tuple[str, str, str], ...] = (
    ("ROLLGUARD_OTLP_ADDR", DEFAULT_ADDR, "host:port receiving OTLP/HTTP"),
    ("ROLLGUARD_OTLP_TLS_CERTFILE", "(none: plain HTTP)", "PEM certificate (chain) to serve HTTPS"),
    ("ROLLGUARD_OTLP_TLS_KEYFILE", "(none)", "PEM key of that certificate"),
    ("ROLLGUARD_OTLP_TOKEN", "(none: no login)",
     "bearer token every request must carry (Authorization: Bearer ...; never printed)"),
    ("ROLLGUARD_OTLP_TOKEN_FILE", "(none)", "a file holding ROLLGUARD_OTLP_TOKEN instead"),
    ("ROLLGUARD_OTLP_MAX_BODY_BYTES", str(DEFAULT_MAX_BODY),
     "largest request body, after decompression (larger: 413)"),
    ("ROLLGUARD_OTLP_MAX_MESSAGE_BYTES", str(DEFAULT_MAX_MESSAGE),
     "largest Kafka message; a larger request is split into several"),
    ("ROLLGUARD_OTLP_ACK_TIMEOUT_S", "5",
     "seconds to wait for Kafka's acknowledgement before answering 503"),
    ("ROLLGUARD_OTLP_RETRY_AFTER_S", "2", "Retry-After of a 503 answer"),
    ("ROLLGUARD_OTLP_PARTITIONS", "4", "partitions of an OTLP topic created at start"),
    ("ROLLGUARD_OTLP_BY_TRACE", "true",
     "write each trace to the partition the Collector's exporter keyed by trace id picks, so "
     "a span and its evaluation reach one worker (false: wherever the producer puts them)"),
    ("ROLLGUARD_TOPIC_OTLP_LOGS", DEFAULT_OTLP_LOGS,
     "topic of the logs (evaluation results), as the worker reads them"),
    ("ROLLGUARD_TOPIC_OTLP_SPANS", DEFAULT_OTLP_SPANS,
     "topic of the spans (GenAI outputs), as the worker reads them"),
    ("ROLLGUARD_OTLP_ENCODING", DEFAULT_OTLP_ENCODING,
     "encoding of both topics, as the Collector's kafka exporter writes: otlp_proto or "
     "otlp_json"),
    ("KAFKA_BOOTSTRAP", "127.0.0.1:9092", "Kafka brokers, host:port[,host:port]"),
    *KAFKA_SECURITY_VARIABLES,
)


def _whole(name: str, default: int, least: int = 1) -> int:
    raw = _get(name, str(default))
    if not raw.isdigit() or int(raw) < least:
        raise ConfigError(f"{name}: must be a whole number ≥ {least}, got {raw!r}")
    return int(raw)


def _flag(name: str, default: bool) -> bool:
    raw = _get(name, "true" if default else "false").lower()
    if raw not in ("true", "false"):
        raise ConfigError(f"{name}: must be true or false, got {raw!r}")
    return raw == "true"


def _file(name: str) -> str | None:
    path = _get(name, "")
    if path and not Path(path).is_file():
        raise ConfigError(f"{name}: no such file {path!r}")
    return path or None


@dataclass(frozen=True)
class OtlpSettings:
    """All of ``rollguard otlp``'s settings; ``from_env()`` reads and checks them."""

    host: str = "127.0.0.1"
    port: int = 4318
    certfile: str | None = None
    keyfile: str | None = None
    token: str | None = field(default=None, repr=False)  # never in a repr
    max_body_bytes: int = DEFAULT_MAX_BODY
    max_message_bytes: int = DEFAULT_MAX_MESSAGE
    ack_timeout_s: float = 5.0
    retry_after_s: int = 2
    partitions: int = 4
    by_trace: bool = True
    topic_logs: str = DEFAULT_OTLP_LOGS
    topic_spans: str = DEFAULT_OTLP_SPANS
    encoding: str = DEFAULT_OTLP_ENCODING
    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_security: KafkaSecurity = field(default_factory=KafkaSecurity)

    @property
    def url(self) -> str:
        scheme = "https" if self.certfile else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    @classmethod
    def from_env(cls) -> OtlpSettings:
        address = host_port("ROLLGUARD_OTLP_ADDR", _get("ROLLGUARD_OTLP_ADDR", DEFAULT_ADDR))
        if address is None:  # unreachable: _get falls back to the default
            raise ConfigError("ROLLGUARD_OTLP_ADDR: must be host:port")
        certfile = _file("ROLLGUARD_OTLP_TLS_CERTFILE")
        keyfile = _file("ROLLGUARD_OTLP_TLS_KEYFILE")
        if bool(certfile) != bool(keyfile):
            raise ConfigError("ROLLGUARD_OTLP_TLS_CERTFILE and ROLLGUARD_OTLP_TLS_KEYFILE "
                              "go together")
        return cls(
            host=address[0], port=address[1], certfile=certfile, keyfile=keyfile,
            token=secret_setting("ROLLGUARD_OTLP_TOKEN") or None,
            max_body_bytes=_whole("ROLLGUARD_OTLP_MAX_BODY_BYTES", DEFAULT_MAX_BODY),
            max_message_bytes=_whole("ROLLGUARD_OTLP_MAX_MESSAGE_BYTES", DEFAULT_MAX_MESSAGE,
                                     least=1024),
            ack_timeout_s=_seconds("ROLLGUARD_OTLP_ACK_TIMEOUT_S", "5", least=0.1),
            retry_after_s=_whole("ROLLGUARD_OTLP_RETRY_AFTER_S", 2),
            partitions=_whole("ROLLGUARD_OTLP_PARTITIONS", 4),
            by_trace=_flag("ROLLGUARD_OTLP_BY_TRACE", True),
            topic_logs=_get("ROLLGUARD_TOPIC_OTLP_LOGS", DEFAULT_OTLP_LOGS),
            topic_spans=_get("ROLLGUARD_TOPIC_OTLP_SPANS", DEFAULT_OTLP_SPANS),
            encoding=_otlp_encoding(),
            kafka_bootstrap=kafka_bootstrap(),
            kafka_security=KafkaSecurity.from_env(),
        )
