"""Secured and clustered redis-servers on loopback, started once per test session.

``TlsRedis``: TLS only (``--port 0``), certificates from a private CA made with ``openssl``
into ``.rollguard/redis-tls/``, and an ACL file whose ``default`` user is off.
``LoopbackCluster``: three cluster-enabled nodes joined with ``redis-cli --cluster create``;
with ``tls=True`` they speak TLS only, to clients and on the cluster bus, with the same
certificates as ``TlsRedis`` (``rediss+cluster://``).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import redis

from localservers.managed import project_home
from rollguard.ops.compose_secrets import issue, make_ca
from tests.support.ports import free_port

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"
ADMIN = ("admin", "admin-pw")


def make_certificates(folder: Path) -> Path:
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate (once)."""
    make_ca(folder, "rollguard test CA")
    issue(folder, "server", "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                            "extendedKeyUsage=serverAuth\n")
    issue(folder, "client", "extendedKeyUsage=clientAuth\n")
    return folder


def wait_ready(client: redis.Redis, ready: str = "", timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if client.ping() and (not ready or ready in client.execute_command(
                    "CLUSTER", "INFO").decode()):
                return
        except (redis.ConnectionError, redis.ResponseError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"redis-server did not become ready ({ready or 'PING'})")
        time.sleep(0.05)  # polling a starting server: there is no event to await


class TlsRedis:
    """A TLS-only redis-server whose ``default`` user is off; ``admin`` may do anything.

    ``auth_clients`` is ``optional`` (a client certificate is checked when given) or ``yes``.
    """

    def __init__(self, folder: Path | None = None, auth_clients: str = "optional") -> None:
        self.certs = make_certificates(project_home() / "redis-tls")
        self.folder = folder or self.certs / f"server-{auth_clients}"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.auth_clients = auth_clients
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, user: str, password: str, *, client_cert: bool = False, db: int = 0) -> str:
        query = f"ssl_ca_certs={self.certs / 'ca.crt'}"
        if client_cert:
            query += (f"&ssl_certfile={self.certs / 'client.crt'}"
                      f"&ssl_keyfile={self.certs / 'client.key'}")
        return f"rediss://{user}:{password}@127.0.0.1:{self.port}/{db}?{query}"

    def admin(self) -> redis.Redis:
        return redis.Redis.from_url(self.url(*ADMIN, client_cert=True))

    def start(self) -> None:
        acl = self.folder / "users.acl"
        acl.write_text(f"user default off\nuser {ADMIN[0]} on >{ADMIN[1]} ~* &* +@all\n")
        c = self.certs
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", "0", "--tls-port", str(self.port), "--bind", "127.0.0.1",
             "--tls-cert-file", str(c / "server.crt"), "--tls-key-file", str(c / "server.key"),
             "--tls-ca-cert-file", str(c / "ca.crt"), "--tls-auth-clients", self.auth_clients,
             "--aclfile", str(acl), "--dir", str(self.folder), "--save", "",
             "--appendonly", "no", "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        client = self.admin()
        wait_ready(client)
        client.close()

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


class LoopbackCluster:
    """Three primaries (no replicas) on loopback, with append-only files fsynced always, so
    a node stopped and started again comes back with every write it acknowledged; with
    ``tls``, TLS only (client certificates checked when given), the bus included."""

    def __init__(self, folder: Path, nodes: int = 3, tls: bool = False) -> None:
        self.folder = folder
        self.ports = [free_port(also_free=10000) for _ in range(nodes)]
        self.processes: dict[int, subprocess.Popen[bytes]] = {}
        self.certs = make_certificates(project_home() / "redis-tls") if tls else None

    @property
    def url(self) -> str:
        seeds = ",".join(f"127.0.0.1:{p}" for p in self.ports)
        if self.certs is None:
            return f"redis+cluster://{seeds}"
        return f"rediss+cluster://{seeds}?ssl_ca_certs={self.certs / 'ca.crt'}"

    def _tls_options(self, port: int) -> list[str]:
        if self.certs is None:
            return ["--port", str(port)]
        c = self.certs
        return ["--port", "0", "--tls-port", str(port), "--tls-cluster", "yes",
                "--tls-cert-file", str(c / "server.crt"), "--tls-key-file", str(c / "server.key"),
                "--tls-ca-cert-file", str(c / "ca.crt"), "--tls-auth-clients", "optional",
                # a node is a client on the bus: the server certificate is for servers only
                "--tls-client-cert-file", str(c / "client.crt"),
                "--tls-client-key-file", str(c / "client.key")]

    def client(self, port: int) -> redis.Redis:
        """A plain client of one node (over TLS for a TLS cluster)."""
        if self.certs is None:
            return redis.Redis(port=port)
        return redis.Redis(port=port, ssl=True, ssl_ca_certs=str(self.certs / "ca.crt"))

    def _start_node(self, port: int) -> None:
        data = self.folder / str(port)
        data.mkdir(parents=True, exist_ok=True)
        self.processes[port] = subprocess.Popen(
            [REDIS_SERVER, *self._tls_options(port), "--bind", "127.0.0.1", "--dir", str(data),
             "--cluster-enabled", "yes", "--cluster-config-file", str(data / "nodes.conf"),
             "--cluster-node-timeout", "2000", "--appendonly", "yes",
             "--appendfsync", "always", "--save", "", "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

    def start(self) -> None:
        for port in self.ports:
            self._start_node(port)
        for port in self.ports:
            client = self.client(port)
            wait_ready(client)
            client.close()
        tls = [] if self.certs is None else ["--tls", "--cacert", str(self.certs / "ca.crt")]
        subprocess.run(
            [REDIS_CLI, *tls, "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports),
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True, capture_output=True,
        )
        self.wait_ok()

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Until every node reports ``cluster_state:ok``."""
        for port in self.ports:
            client = self.client(port)
            wait_ready(client, ready="cluster_state:ok", timeout=timeout)
            client.close()

    def node_of(self, key: str) -> int:
        """The port of the node that serves ``key``."""
        client = self.client(self.ports[0])
        slot = int(client.cluster("keyslot", key))
        for start, end, primary, *_ in client.cluster("slots"):
            if start <= slot <= end:
                client.close()
                return int(primary[1])
        client.close()
        raise LookupError(key)

    def stop_node(self, port: int) -> None:
        """SIGTERM one node: it flushes its append-only file and exits."""
        process = self.processes.pop(port)
        process.terminate()
        process.wait(timeout=10)

    def start_node(self, port: int) -> None:
        """Start a stopped node again and wait until the cluster is OK."""
        self._start_node(port)
        self.wait_ok()

    def stop(self) -> None:
        for process in self.processes.values():
            process.terminate()
        for process in self.processes.values():
            process.wait(timeout=10)
        self.processes.clear()
