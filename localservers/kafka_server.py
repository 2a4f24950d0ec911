"""The local Apache Kafka broker: its jars (downloaded once with Maven), a single-node KRaft
broker's properties, and formatting its storage and starting it. Standard library only.
:mod:`localservers.secure_kafka` starts its secured broker through the same functions."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from base64 import urlsafe_b64encode
from pathlib import Path

from localservers.managed import Managed, spawn
from localservers.packages import apt_install
from rollguard.base.config import Address

KAFKA_VERSION = os.environ.get("ROLLGUARD_KAFKA_VERSION", "4.4.0")
# Kafka 4.x logs through log4j2 and its jars bring slf4j 1.7: this bridge is the backend.
LOG4J_VERSION = "2.25.5"


def jar_cache() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "rollguard" / f"kafka-{KAFKA_VERSION}"


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
    host = numeric_host(address.host)
    return node_properties(host, controller, data, [
        f"listeners=PLAINTEXT://{host}:{address.port},CONTROLLER://{host}:{controller}",
        f"advertised.listeners=PLAINTEXT://{host}:{address.port}",
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name=PLAINTEXT",
    ])


def numeric_host(host: str) -> str:
    return "127.0.0.1" if host == "localhost" else host


def node_properties(host: str, controller: int, data: Path, listeners: list[str]) -> str:
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
    return start_broker(service, config, [])


def start_broker(service: Managed, config: Path, format_options: list[str]) -> int:
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
    return spawn(service, [
        "java", "-Xms256m", "-Xmx512m", "-XX:+UseG1GC",
        f"-Dlog4j2.configurationFile={service.folder / 'log4j2.yaml'}",
        "-cp", classpath, "kafka.Kafka", str(config),
    ])
