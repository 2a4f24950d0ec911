"""Settings read from environment variables; every part of rollguard uses these."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from rollguard.base.errors import ConfigError

DEFAULT_KAFKA_BOOTSTRAP = "127.0.0.1:9092"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
SECRET_ENV = "ROLLGUARD_SECRET"
SECRET_FILE_ENV = "ROLLGUARD_SECRET_FILE"
# For a laptop only: anyone who reads this line can sign commands for a server that uses it.
# Only `rollguard demo` and the test suite use it (they set ROLLGUARD_SECRET to it and say so);
# the worker and the CLI refuse to start without a secret of their own.
DEV_SECRET = b"rollguard-dev-secret"
MAKE_SECRET = 'python -c "import secrets; print(secrets.token_hex(32))"'


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


def kafka_bootstrap() -> str:
    """``KAFKA_BOOTSTRAP``: comma-separated ``host:port`` list of Kafka brokers."""
    return _env("KAFKA_BOOTSTRAP", DEFAULT_KAFKA_BOOTSTRAP)


def secret_setting(name: str, default: str = "") -> str:
    """The variable ``name``, or the contents of the file ``{name}_FILE`` names (as secrets
    are mounted in containers; surrounding whitespace dropped); ConfigError if both are set,
    or the file cannot be read or is empty.

    >>> import os; os.environ["REDIS_URL"] = "redis://h:1/0"; secret_setting("REDIS_URL")
    'redis://h:1/0'
    >>> os.environ["REDIS_URL_FILE"] = "/nonexistent"; secret_setting("REDIS_URL")
    Traceback (most recent call last):
    ...
    rollguard.detectors.errors.ConfigError: set REDIS_URL or REDIS_URL_FILE, not both
    >>> del os.environ["REDIS_URL"], os.environ["REDIS_URL_FILE"]
    """
    value, variable = _env(name, ""), f"{name}_FILE"
    path = _env(variable, "")
    if value and path:
        raise ConfigError(f"set {name} or {variable}, not both")
    if path:
        try:
            value = Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{variable}: cannot read {path}: {exc.strerror}") from None
        if not value:
            raise ConfigError(f"{variable}: {path} is empty")
    return value or default


def redis_url() -> str:
    """``REDIS_URL`` (or the file ``REDIS_URL_FILE`` names: it carries the password): the
    Redis server holding version pointers and history."""
    return secret_setting("REDIS_URL", DEFAULT_REDIS_URL)


def secret_from_env(dev: bool = False) -> tuple[bytes, bool]:
    """The HMAC key of commands and whether it is the development secret.

    From ``ROLLGUARD_SECRET``, or the file ``ROLLGUARD_SECRET_FILE`` names (as secrets are
    mounted in containers; surrounding whitespace is dropped). Neither set: the development
    secret when ``dev`` (``rollguard --dev``), else ConfigError, which says how to make one.

    >>> import os; os.environ["ROLLGUARD_SECRET"] = "s3cret"; secret_from_env()
    (b's3cret', False)
    >>> del os.environ["ROLLGUARD_SECRET"]
    """
    value = secret_setting(SECRET_ENV)  # or the file SECRET_FILE_ENV names
    if not value and dev:
        return DEV_SECRET, True
    if not value:
        raise ConfigError(
            f"{SECRET_ENV} is not set: commands are signed with it and the worker refuses to "
            f"run without one. Make one with `{MAKE_SECRET}` and give the same value to the "
            f"worker and the CLI in {SECRET_ENV} (or in a file named by {SECRET_FILE_ENV})")
    secret = value.encode()
    return secret, secret == DEV_SECRET


@dataclass(frozen=True)
class Address:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def parse_host_port(value: str, *, setting: str, default_port: int) -> Address:
    """Parse ``host:port`` (the first of a comma-separated list).

    >>> parse_host_port("127.0.0.1:9092,other:9093", setting="KAFKA_BOOTSTRAP", default_port=9092)
    Address(host='127.0.0.1', port=9092)
    """
    first = value.split(",")[0].strip()
    if "://" in first:
        first = first.split("://", 1)[1]
    host, _, port = first.rpartition(":")
    if not host:
        host, port = first, str(default_port)
    try:
        number = int(port)
    except ValueError:
        raise ConfigError(f"{setting}: port must be a number, got {value!r}") from None
    if not host or not 0 < number < 65536:
        raise ConfigError(f"{setting}: expected host:port, got {value!r}")
    return Address(host, number)


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float | None:
    """Seconds of a duration such as ``90s``, ``10m``, ``2h`` or ``1d``; None when ``text``
    is none.

    >>> parse_duration("10m"), parse_duration("1.5h"), parse_duration("soon")
    (600.0, 5400.0, None)
    """
    value = text.strip()
    unit = _UNITS.get(value[-1:].lower())
    if unit is not None and value[:-1].replace(".", "", 1).isdigit():
        return float(value[:-1]) * unit
    return None


def kafka_address() -> Address:
    return parse_host_port(kafka_bootstrap(), setting="KAFKA_BOOTSTRAP", default_port=9092)


def redis_address() -> Address:
    """Host and port of ``REDIS_URL``.

    >>> import os; os.environ["REDIS_URL"] = "redis://localhost:6390/2"; redis_address()
    Address(host='localhost', port=6390)
    >>> os.environ["REDIS_URL"] = "rediss+cluster://a:7000,b:7001?ssl_ca_certs=/ca"
    >>> redis_address()
    Address(host='a', port=7000)
    >>> del os.environ["REDIS_URL"]
    """
    url = redis_url()
    scheme, _, rest = url.partition("://")
    if scheme in ("redis+cluster", "rediss+cluster"):  # the first seed node
        return parse_host_port(rest.split("/")[0].split("?")[0].split("@")[-1],
                               setting="REDIS_URL", default_port=6379)
    parsed = urlparse(url)
    if parsed.scheme not in ("redis", "rediss", "unix") or (
        parsed.scheme != "unix" and not parsed.hostname
    ):
        raise ConfigError(f"REDIS_URL: expected redis://host:port/db, got {parsed.scheme}://…")
    return Address(parsed.hostname or "localhost", parsed.port or 6379)


# --- Kafka security ---------------------------------------------------------------------------

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
# (variable, default, meaning): the Kafka client settings, named as Kafka users know them.
KAFKA_SECURITY_VARIABLES: tuple[tuple[str, str, str], ...] = (
    ("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT", "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"),
    ("KAFKA_SASL_MECHANISM", "PLAIN", "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"),
    ("KAFKA_SASL_USERNAME", "(none)", "SASL user"),
    ("KAFKA_SASL_PASSWORD", "(none)", "SASL password (never printed)"),
    ("KAFKA_SASL_PASSWORD_FILE", "(none)", "a file holding KAFKA_SASL_PASSWORD instead"),
    ("KAFKA_SSL_CAFILE", "(system CAs)", "PEM file of the CA that signed the brokers"),
    ("KAFKA_SSL_CERTFILE", "(none)", "PEM client certificate, for mutual TLS"),
    ("KAFKA_SSL_KEYFILE", "(none)", "PEM key of the client certificate"),
)


@dataclass(frozen=True)
class KafkaSecurity:
    """How every Kafka client of rollguard authenticates; ``from_env()`` reads and checks it.

    >>> KafkaSecurity().uses_tls, KafkaSecurity("SASL_SSL", "PLAIN", "u", "p").uses_sasl
    (False, True)
    >>> KafkaSecurity("SASL_SSL", "PLAIN", "u", "pw")
    KafkaSecurity(protocol='SASL_SSL', mechanism='PLAIN', username='u', password='***', \
cafile=None, certfile=None, keyfile=None)
    """

    protocol: str = "PLAINTEXT"
    mechanism: str = "PLAIN"
    username: str | None = None
    password: str | None = None
    cafile: str | None = None
    certfile: str | None = None
    keyfile: str | None = None

    @property
    def uses_tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    def __repr__(self) -> str:  # the password never reaches a log line or a traceback
        shown = "***" if self.password else None
        return (f"KafkaSecurity(protocol={self.protocol!r}, mechanism={self.mechanism!r}, "
                f"username={self.username!r}, password={shown!r}, cafile={self.cafile!r}, "
                f"certfile={self.certfile!r}, keyfile={self.keyfile!r})")

    def problems(self) -> list[str]:
        """What is wrong with this combination, each naming the variable to fix."""
        found = []
        if self.protocol not in PROTOCOLS:
            found.append(f"KAFKA_SECURITY_PROTOCOL: expected one of {', '.join(PROTOCOLS)}, "
                         f"got {self.protocol!r}")
        if self.uses_sasl:
            if self.mechanism not in MECHANISMS:
                found.append(f"KAFKA_SASL_MECHANISM: expected one of {', '.join(MECHANISMS)}, "
                             f"got {self.mechanism!r}")
            if not self.username or not self.password:
                found.append(f"KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD are both needed "
                             f"with KAFKA_SECURITY_PROTOCOL={self.protocol}")
        elif self.username or self.password:
            found.append(f"KAFKA_SASL_USERNAME/KAFKA_SASL_PASSWORD are set but "
                         f"KAFKA_SECURITY_PROTOCOL={self.protocol} does not use SASL "
                         f"(SASL_SSL or SASL_PLAINTEXT does)")
        tls_files = {"KAFKA_SSL_CAFILE": self.cafile, "KAFKA_SSL_CERTFILE": self.certfile,
                     "KAFKA_SSL_KEYFILE": self.keyfile}
        if not self.uses_tls and any(tls_files.values()):
            found.append(f"KAFKA_SSL_* files are set but KAFKA_SECURITY_PROTOCOL="
                         f"{self.protocol} does not use TLS (SSL or SASL_SSL does)")
        if bool(self.certfile) != bool(self.keyfile):
            found.append("KAFKA_SSL_CERTFILE and KAFKA_SSL_KEYFILE go together (mutual TLS)")
        found += [f"{name}: no such file {path!r}" for name, path in tls_files.items()
                  if path and not Path(path).is_file()]
        return found

    @classmethod
    def from_env(cls) -> KafkaSecurity:
        """The ``KAFKA_SECURITY_PROTOCOL`` ... ``KAFKA_SSL_KEYFILE`` settings, checked."""
        security = cls(
            protocol=_env("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT").upper(),
            mechanism=_env("KAFKA_SASL_MECHANISM", "PLAIN").upper(),
            username=os.environ.get("KAFKA_SASL_USERNAME") or None,
            password=secret_setting("KAFKA_SASL_PASSWORD") or None,
            cafile=_env("KAFKA_SSL_CAFILE", "") or None,
            certfile=_env("KAFKA_SSL_CERTFILE", "") or None,
            keyfile=_env("KAFKA_SSL_KEYFILE", "") or None,
        )
        problems = security.problems()
        if problems:
            raise ConfigError("; ".join(problems))
        return security

    def credential_settings(self) -> str:
        """The variables to check when the broker refuses these credentials."""
        if self.uses_sasl:
            return "KAFKA_SASL_USERNAME/KAFKA_SASL_PASSWORD"
        if self.certfile:
            return "KAFKA_SSL_CERTFILE/KAFKA_SSL_KEYFILE"
        return "KAFKA_SECURITY_PROTOCOL"
