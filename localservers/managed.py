"""A local server this project may start (:class:`Managed`): where its process id, log and
data live, whether it answers, and starting, waiting for and stopping its process by the id
recorded when it started. Standard library only (``scripts/services`` runs before the
virtual environment exists)."""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from rollguard.base.config import Address
from rollguard.base.errors import ServiceUnavailable

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def project_home() -> Path:
    """Where data, logs and process ids live: ``ROLLGUARD_HOME`` or ``./.rollguard``."""
    configured = os.environ.get("ROLLGUARD_HOME")
    if configured:
        return Path(configured)
    repo = Path(__file__).resolve().parents[1]
    root = repo if (repo / "pyproject.toml").exists() else Path.cwd()
    return root / ".rollguard"


# --- probes -------------------------------------------------------------------------------


def kafka_answers(address: Address, timeout: float = 2.0) -> bool:
    """True when a Kafka broker answers an ApiVersions request at ``address``."""
    client_id = b"rollguard-probe"
    body = struct.pack(">hhih", 18, 0, 1, len(client_id)) + client_id
    try:
        with socket.create_connection((address.host, address.port), timeout=timeout) as sock:
            sock.sendall(struct.pack(">i", len(body)) + body)
            header = recv_exact(sock, 4)
            size = struct.unpack(">i", header)[0]
            payload = recv_exact(sock, size)
    except OSError:
        return False
    correlation, error_code = struct.unpack(">ih", payload[:6])
    return correlation == 1 and error_code == 0


def redis_answers(address: Address, timeout: float = 2.0) -> bool:
    """True when a Redis server answers PING at ``address``."""
    try:
        with socket.create_connection((address.host, address.port), timeout=timeout) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("connection closed")
        data += chunk
    return data


# --- process bookkeeping -------------------------------------------------------------------


@dataclass(frozen=True)
class Managed:
    """A server this script may start: its name, address and files."""

    name: str
    address: Address

    @property
    def folder(self) -> Path:
        return project_home() / self.name

    @property
    def pid_file(self) -> Path:
        return self.folder / "pid"

    @property
    def log_file(self) -> Path:
        return self.folder / f"{self.name}.log"

    def started_pid(self) -> int | None:
        """The process id recorded by ``up``, if that process still runs."""
        try:
            pid = int(self.pid_file.read_text().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        return pid

    def answers(self) -> bool:
        probe = kafka_answers if self.name == "kafka" else redis_answers
        return probe(self.address)


def spawn(service: Managed, argv: list[str]) -> int:
    service.folder.mkdir(parents=True, exist_ok=True)
    with service.log_file.open("ab") as log:
        process = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # survives the shell that ran `up`
        )
    service.pid_file.write_text(str(process.pid))
    return process.pid


def wait_until_answers(service: Managed, pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.answers():
            return
        try:
            finished, _status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            finished = 0 if _alive(pid) else pid
        if finished:
            tail = _tail(service.log_file)
            raise ServiceUnavailable(service.name, str(service.address), f"exited; log:\n{tail}")
        time.sleep(0.2)
    raise ServiceUnavailable(
        service.name, str(service.address), f"no answer in {timeout:.0f}s; see {service.log_file}"
    )


def _alive(pid: int) -> bool:
    try:  # a child of this process (a test session's broker) is a zombie until reaped
        if os.waitpid(pid, os.WNOHANG)[0]:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def require_local(service: Managed, setting: str) -> None:
    if service.address.host not in LOOPBACK:
        raise ServiceUnavailable(
            service.name,
            str(service.address),
            f"not answering, and {setting} is not a loopback address this script could start",
        )


def say_stopped(service: Managed, pid: int | None) -> None:
    print(f"{service.name}: " + (f"stopped (pid {pid})" if pid else "nothing started here to stop"))


def stop_started(service: Managed, sig: signal.Signals = signal.SIGTERM) -> int | None:
    """Stop ``service`` if ``up`` started it (by recorded pid) with ``sig`` — SIGTERM, a
    controlled shutdown (SIGKILL if it still runs after 30 s), or SIGKILL, a crash — and
    wait until the process is gone; return that pid."""
    pid = service.started_pid()
    if pid is None:
        service.pid_file.unlink(missing_ok=True)
        return None
    os.kill(pid, sig)
    deadline = time.monotonic() + 30
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
    service.pid_file.unlink(missing_ok=True)
    return pid

