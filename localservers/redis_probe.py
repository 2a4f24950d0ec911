"""Is the Redis of ``REDIS_URL`` there? A probe that speaks what the URL says.

``scripts/services`` decides with this whether to start a local redis-server: a probe in
plaintext would call a TLS server (``rediss://``) or a cluster (``redis+cluster://``,
``rediss+cluster://``) away and try to start another on its port. It opens TLS with the
URL's ``ssl_ca_certs`` / ``ssl_certfile`` / ``ssl_keyfile`` / ``ssl_cert_reqs``, logs in with
its user and password, and sends PING to every seed node. Standard library only (it runs
before the virtual environment exists); the clients themselves are ``actions/connect.py``.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote

from rollguard.base.config import Address, parse_host_port
from rollguard.base.errors import AccessRefused, ConfigError
from rollguard.base.redact import redact

SETTING = "REDIS_URL"
SCHEMES = {"redis": (False, False), "rediss": (True, False),
           "redis+cluster": (False, True), "rediss+cluster": (True, True)}


@dataclass(frozen=True)
class RedisTarget:
    """What ``REDIS_URL`` names: seed nodes, TLS and its files, the login.

    >>> t = RedisTarget.from_url("rediss+cluster://app:pw@a:7000,b:7001?ssl_ca_certs=/ca")
    >>> t.nodes, t.tls, t.cluster, t.username, t.files["ssl_ca_certs"], t.startable
    ((Address(host='a', port=7000), Address(host='b', port=7001)), True, True, 'app', '/ca', False)
    >>> RedisTarget.from_url("redis://localhost:6390/2").startable
    True
    """

    url: str
    nodes: tuple[Address, ...]
    tls: bool = False
    cluster: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    files: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_url(cls, url: str) -> RedisTarget:
        scheme, sep, rest = url.partition("://")
        if not sep or scheme not in SCHEMES:
            raise ConfigError(f"{SETTING}: expected redis://, rediss://, redis+cluster:// or "
                              f"rediss+cluster://, got {redact(url)!r}")
        tls, cluster = SCHEMES[scheme]
        netloc, _, query = rest.partition("?")
        netloc = netloc.split("/")[0]
        userinfo, _, hosts = netloc.rpartition("@")
        user, colon, password = userinfo.partition(":")
        nodes = tuple(parse_host_port(node, setting=SETTING, default_port=6379)
                      for node in hosts.split(","))
        params = {k: v[-1] for k, v in parse_qs(query).items()}
        return cls(redact(url), nodes, tls, cluster, unquote(user) or None,
                   unquote(password) if colon else None, params)

    @property
    def startable(self) -> bool:
        """Only a plaintext single server is what ``scripts/services up`` can start."""
        return not (self.tls or self.cluster)

    @property
    def kind(self) -> str:
        return " ".join(filter(None, ("TLS" if self.tls else "plaintext",
                                      "cluster" if self.cluster else "")))

    def tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.files.get("ssl_ca_certs"))
        if self.files.get("ssl_certfile"):
            context.load_cert_chain(self.files["ssl_certfile"], self.files.get("ssl_keyfile"))
        if self.files.get("ssl_cert_reqs", "required").lower() == "none":
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        elif self.files.get("ssl_check_hostname", "true").lower() in ("false", "0", "no"):
            context.check_hostname = False
        return context


def answers(target: RedisTarget, timeout: float = 2.0) -> bool:
    """True when every seed node answers PING (over TLS and logged in, as the URL says);
    AccessRefused when a node answers but refuses the URL's login or certificate."""
    return all(_pings(target, node, timeout) for node in target.nodes)


def _pings(target: RedisTarget, node: Address, timeout: float) -> bool:
    commands = []
    if target.password is not None:
        login = [target.username, target.password] if target.username else [target.password]
        commands.append(["AUTH", *login])
    commands.append(["PING"])
    try:
        with socket.create_connection((node.host, node.port), timeout=timeout) as raw:
            sock = (target.tls_context().wrap_socket(raw, server_hostname=node.host)
                    if target.tls else raw)
            with sock:
                replies = [_ask(sock, command) for command in commands]
    except ssl.SSLCertVerificationError as exc:
        raise _refused(target, node, "sent a certificate we do not trust: "
                       f"{exc.verify_message}") from exc
    except (OSError, ConnectionError):
        return False
    refused = next((r for r in replies if r.startswith((b"-WRONGPASS", b"-NOAUTH",
                                                         b"-NOPERM"))), None)
    if refused is not None:
        raise _refused(target, node, f"refused the login: {refused[1:].decode(errors='replace')}")
    return replies[-1].startswith(b"+PONG")


def _ask(sock: socket.socket, command: list[str]) -> bytes:
    encoded = [part.encode() for part in command]
    sock.sendall(b"*%d\r\n" % len(encoded)
                 + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in encoded))
    reply = b""
    while not reply.endswith(b"\r\n"):
        chunk = sock.recv(256)
        if not chunk:
            raise ConnectionError("connection closed")
        reply += chunk
    return reply.strip()


def _refused(target: RedisTarget, node: Address, problem: str) -> AccessRefused:
    where = f"(seed node {node}) " if target.cluster else ""
    return AccessRefused("Redis", target.url, where + problem, SETTING)
