"""Start, stop and check the local Apache Kafka broker and Redis server the project runs on.

Standard library only, so it works before the virtual environment exists
(``python3 -m rollguard.services up``). ``up`` reuses a server already answering at
``KAFKA_BOOTSTRAP`` / ``REDIS_URL`` (a ``docker compose up kafka redis`` for instance) and
``down`` stops only the processes ``up`` started, by the process ids it recorded. Redis is
probed as ``REDIS_URL`` says (TLS, its login, every cluster seed: :mod:`rollguard.redis_probe`);
only a plaintext single redis-server is started here, never a TLS server or a cluster.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from base64 import urlsafe_b64encode
from dataclasses import dataclass
from pathlib import Path

from rollguard import redis_probe
from rollguard.config import Address, kafka_address, redis_address, redis_url
from rollguard.errors import ConfigError, RollguardError, ServiceUnavailable

KAFKA_VERSION = os.environ.get("ROLLGUARD_KAFKA_VERSION", "4.4.0")
# Kafka 4.x logs through log4j2 and its jars bring slf4j 1.7: this bridge is the backend.
LOG4J_VERSION = "2.25.5"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def project_home() -> Path:
    """Where data, logs and process ids live: ``ROLLGUARD_HOME`` or ``./.rollguard``."""
    configured = os.environ.get("ROLLGUARD_HOME")
    if configured:
        return Path(configured)
    repo = Path(__file__).resolve().parents[1]
    root = repo if (repo / "pyproject.toml").exists() else Path.cwd()
    return root / ".rollguard"


def jar_cache() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "rollguard" / f"kafka-{KAFKA_VERSION}"


# --- probes -------------------------------------------------------------------------------


def kafka_answers(address: Address, timeout: float = 2.0) -> bool:
    """True when a Kafka broker answers an ApiVersions request at ``address``."""
    client_id = b"rollguard-probe"
    body = struct.pack(">hhih", 18, 0, 1, len(client_id)) + client_id
    try:
        with socket.create_connection((address.host, address.port), timeout=timeout) as sock:
            sock.sendall(struct.pack(">i", len(body)) + body)
            header = _recv_exact(sock, 4)
            size = struct.unpack(">i", header)[0]
            payload = _recv_exact(sock, size)
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


def _recv_exact(sock: socket.socket, size: int) -> bytes:
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


def kafka() -> Managed:
    return Managed("kafka", kafka_address())


@dataclass(frozen=True)
class RedisService(Managed):
    """The Redis of ``REDIS_URL``, probed as the URL says (TLS, login, every cluster seed):
    :mod:`rollguard.redis_probe`. Only a plaintext single server can be started here."""

    target: redis_probe.RedisTarget | None = None

    def answers(self) -> bool:
        if self.target is None:
            return redis_answers(self.address)
        return redis_probe.answers(self.target)

    @property
    def described(self) -> str:
        return self.target.url if self.target else str(self.address)


def redis() -> RedisService:
    url = redis_url()
    target = None if url.startswith("unix://") else redis_probe.RedisTarget.from_url(url)
    return RedisService("redis", redis_address(), target)


def _spawn(service: Managed, argv: list[str]) -> int:
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


def _wait_until_answers(service: Managed, pid: int, timeout: float) -> None:
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


def _require_local(service: Managed, setting: str) -> None:
    if service.address.host not in LOOPBACK:
        raise ServiceUnavailable(
            service.name,
            str(service.address),
            f"not answering, and {setting} is not a loopback address this script could start",
        )


# --- Kafka ---------------------------------------------------------------------------------

POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>rollguard</groupId><artifactId>kafka-runtime</artifactId><version>1</version>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>
      <version>{kafka}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId>
      <version>{log4j}</version></dependency>
  </dependencies>
</project>
"""

LOG4J2 = """Configuration:
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: WARN
      AppenderRef:
        - ref: STDOUT
"""


def kafka_jars() -> Path:
    """Download the broker's jars once (Maven), into a cache shared by every checkout."""
    libs = jar_cache() / "libs"
    if (libs / ".complete").exists():
        return libs
    for tool, package in (("java", "openjdk-17-jre-headless"), ("mvn", "maven")):
        if shutil.which(tool) is None:
            apt_install(package, needed_for=f"{tool} (to run the Kafka broker)")
    print(f"downloading Apache Kafka {KAFKA_VERSION} jars with Maven into {libs} ...", flush=True)
    with tempfile.TemporaryDirectory() as work:
        Path(work, "pom.xml").write_text(POM.format(kafka=KAFKA_VERSION, log4j=LOG4J_VERSION))
        staging = Path(work, "libs")
        subprocess.run(
            ["mvn", "-q", "-B", "-Dstyle.color=never", "dependency:copy-dependencies",
             "-DincludeScope=runtime",
             f"-DoutputDirectory={staging}"],
            cwd=work, check=True,
        )
        libs.parent.mkdir(parents=True, exist_ok=True)
        if libs.exists():
            shutil.rmtree(libs)
        shutil.move(str(staging), libs)
    (libs / ".complete").write_text(KAFKA_VERSION)
    return libs


def kafka_properties(address: Address, data: Path, controller: int | None = None) -> str:
    """A plaintext single-node KRaft broker; its controller listens on ``controller``
    (default: ``KAFKA_CONTROLLER_PORT``, else the port after the broker's)."""
    if controller is None:
        controller = int(os.environ.get("KAFKA_CONTROLLER_PORT", address.port + 1))
    host = _numeric(address.host)
    return _node_properties(host, controller, data, [
        f"listeners=PLAINTEXT://{host}:{address.port},CONTROLLER://{host}:{controller}",
        f"advertised.listeners=PLAINTEXT://{host}:{address.port}",
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name=PLAINTEXT",
    ])


def _numeric(host: str) -> str:
    return "127.0.0.1" if host == "localhost" else host


def _node_properties(host: str, controller: int, data: Path, listeners: list[str]) -> str:
    return "\n".join([
        "process.roles=broker,controller",
        "node.id=1",
        f"controller.quorum.voters=1@{host}:{controller}",
        *listeners,
        "controller.listener.names=CONTROLLER",
        f"log.dirs={data}",
        "num.partitions=1",
        "offsets.topic.replication.factor=1",
        "offsets.topic.num.partitions=4",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "share.coordinator.state.topic.replication.factor=1",
        "share.coordinator.state.topic.min.isr=1",
        "group.initial.rebalance.delay.ms=0",
        "auto.create.topics.enable=true",
        "",
    ])


def start_kafka(service: Managed) -> int:
    config = service.folder / "server.properties"
    service.folder.mkdir(parents=True, exist_ok=True)
    config.write_text(kafka_properties(service.address, service.folder / "data"))
    return _start_broker(service, config, [])


def _start_broker(service: Managed, config: Path, format_options: list[str]) -> int:
    """Format the node's storage once (``format_options``: SCRAM users), then start it."""
    libs = kafka_jars()
    (service.folder / "log4j2.yaml").write_text(LOG4J2)
    classpath = f"{libs}/*"
    if not (service.folder / "data" / "meta.properties").exists():
        cluster_id = urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        subprocess.run(
            ["java", "-cp", classpath, "kafka.tools.StorageTool", "format",
             # "=" joined: a random id can begin with "-", which argparse takes for an option
             f"--cluster-id={cluster_id}", "-c", str(config), *format_options],
            check=True, stdout=subprocess.DEVNULL,
        )
    return _spawn(service, [
        "java", "-Xms256m", "-Xmx512m", "-XX:+UseG1GC",
        f"-Dlog4j2.configurationFile={service.folder / 'log4j2.yaml'}",
        "-cp", classpath, "kafka.Kafka", str(config),
    ])


# --- Redis ---------------------------------------------------------------------------------


def redis_server_binary() -> str:
    """Path of ``redis-server``, installed from Debian's packages when missing."""
    found = shutil.which("redis-server")
    if found:
        return found
    apt_install("redis-server", needed_for="redis-server")
    return shutil.which("redis-server") or "/usr/bin/redis-server"


def kcat_binary() -> str:
    """Path of ``kcat`` (librdkafka's command-line client: the cross-client tests produce
    with it), installed from Debian's packages when missing."""
    found = shutil.which("kcat")
    if found:
        return found
    apt_install("kcat", needed_for="kcat")
    return shutil.which("kcat") or "/usr/bin/kcat"


def chromium_binary() -> str:
    """Path of Debian's ``chromium`` (the status page's test loads the page in it, headless),
    installed from Debian's packages when missing."""
    found = shutil.which("chromium")
    if found:
        return found
    apt_install("chromium", needed_for="chromium")
    return shutil.which("chromium") or "/usr/bin/chromium"


def apt_install(package: str, needed_for: str) -> None:
    """Install a Debian package (as root) or say exactly what is missing."""
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        raise ConfigError(f"{needed_for} is missing; install the Debian package {package}")
    print(f"installing {package} from Debian's packages ...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", package], check=True, env=env,
                   stdout=subprocess.DEVNULL)


def start_redis(service: Managed) -> int:
    binary = redis_server_binary()
    data = service.folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    return _spawn(service, [
        binary, "--bind", service.address.host, "--port", str(service.address.port),
        "--dir", str(data), "--appendonly", "yes", "--appendfsync", "everysec",
        "--save", "", "--daemonize", "no", "--protected-mode", "no",
    ])


# --- commands ------------------------------------------------------------------------------

STARTERS = {
    "kafka": (start_kafka, "KAFKA_BOOTSTRAP", 120.0),
    "redis": (start_redis, "REDIS_URL", 30.0),
}


def up() -> None:
    """Make both servers answer; start the ones that don't. Install the tools the tests
    need (kcat) where they are missing."""
    try:
        print(f"kcat: {kcat_binary()}")
    except (ConfigError, subprocess.CalledProcessError) as exc:
        print(f"kcat: not installed, the cross-client tests will fail ({exc})")
    for service in (redis(), kafka()):
        if service.answers():
            owner = "started here" if service.started_pid() else "reused"
            print(f"{service.name}: answering at {_where(service)} ({owner})")
            continue
        if isinstance(service, RedisService) and service.target and not service.target.startable:
            raise ServiceUnavailable("Redis", service.described, (
                f"not answering PING ({service.target.kind}); this script starts only a "
                "plaintext single redis-server: start this one yourself, or point REDIS_URL "
                "at redis://127.0.0.1:6379/0"))
        start, setting, timeout = STARTERS[service.name]
        _require_local(service, setting)
        pid = start(service)
        _wait_until_answers(service, pid, timeout)
        print(f"{service.name}: started at {service.address} (pid {pid}, log {service.log_file})")


def down() -> None:
    """Stop what ``up`` started (by recorded pid); leave anything else running."""
    for service in (kafka(), redis()):
        say_stopped(service, stop_started(service))


def say_stopped(service: Managed, pid: int | None) -> None:
    print(f"{service.name}: " + (f"stopped (pid {pid})" if pid else "nothing started here to stop"))


def stop_started(service: Managed) -> int | None:
    """Stop ``service`` if ``up`` started it (by recorded pid); return that pid."""
    pid = service.started_pid()
    if pid is None:
        service.pid_file.unlink(missing_ok=True)
        return None
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
    service.pid_file.unlink(missing_ok=True)
    return pid


def status() -> bool:
    """Print each server's state; True when both answer."""
    healthy = True
    for service in (kafka(), redis()):
        answering = service.answers()
        healthy &= answering
        pid = service.started_pid()
        owner = f"started here, pid {pid}" if pid else "not started here"
        state = "answering" if answering else "NOT answering"
        print(f"{service.name}: {state} at {_where(service)} ({owner})")
    return healthy


def _where(service: Managed) -> str:
    """The address, and for Redis what the probe checked (TLS, cluster seeds, login)."""
    if isinstance(service, RedisService) and service.target is not None:
        target = service.target
        checked = [target.kind] + (["logged in"] if target.password is not None else [])
        if target.cluster:
            checked.append(f"PING to {len(target.nodes)} seed node(s)")
        return f"{target.url} ({', '.join(checked)})"
    return str(service.address)


def main(argv: list[str]) -> int:
    command = argv[0] if argv else ""
    secure = "--secure" in argv[1:]  # also the SASL_SSL broker of rollguard/secure_kafka.py
    try:
        if command == "up":
            up()
            if secure:
                from rollguard.secure_kafka import report_up
                report_up()
        elif command == "down":
            down()
            if secure:
                from rollguard.secure_kafka import report_down
                report_down()
        elif command == "status":
            return 0 if status() else 1
        else:
            print("usage: services up|down|status [--secure]", file=sys.stderr)
            return 2
    except (RollguardError, subprocess.CalledProcessError) as exc:
        print(f"services {command}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
