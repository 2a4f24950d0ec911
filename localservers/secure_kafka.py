"""A second local broker with a ``SASL_SSL`` listener and SCRAM-SHA-512 users, and an
``SSL`` listener that requires a client certificate (mutual TLS), for testing rollguard
against a secured Kafka (``scripts/services up --secure``; the test suite starts one on
demand). Both listeners belong to one broker process: one JVM, not two.

Everything it needs is made on first start into ``.rollguard/kafka-secure/``: a self-signed
certificate that is its own CA (``ca.pem``, for clients' ``KAFKA_SSL_CAFILE``), the broker's
PKCS12 keystore and a truststore holding the certificate (the broker talks to itself over
TLS, and checks client certificates against it), a client certificate and key signed by that
CA (``client.pem``, ``client.key``), random passwords, ``client.env``: the ``KAFKA_*``
settings a SASL client connects with, and ``mtls.env``: those of a mutual-TLS client. Users
are created when the storage is formatted (``--add-scram``). Standard library (and the
``keytool`` and ``openssl`` commands) only.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import socket
import ssl
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localservers.kafka_server import node_properties, numeric_host, start_broker
from localservers.managed import (
    Managed,
    recv_exact,
    require_local,
    say_stopped,
    stop_started,
    wait_until_answers,
)
from rollguard.base.config import Address

SECURE_PORT = int(os.environ.get("ROLLGUARD_SECURE_KAFKA_PORT", "9094"))
# the controller listens on SECURE_PORT + 1
MTLS_PORT = int(os.environ.get("ROLLGUARD_SECURE_KAFKA_MTLS_PORT", str(SECURE_PORT + 2)))
MECHANISM = "SCRAM-SHA-512"
BROKER_USER = "rollguard-broker"  # the broker's own login to itself (inter-broker)
CLIENT_USER = "rollguard"


@dataclass(frozen=True)
class SecureBroker(Managed):
    """The secured broker: answers only over TLS, so its probe speaks TLS."""

    @property
    def cafile(self) -> Path:
        return self.folder / "ca.pem"

    @property
    def client_env_file(self) -> Path:
        return self.folder / "client.env"

    @property
    def mtls_env_file(self) -> Path:
        return self.folder / "mtls.env"

    @property
    def mtls_address(self) -> Address:
        return Address(self.address.host, MTLS_PORT)

    @property
    def client_cert(self) -> tuple[Path, Path]:
        """The client certificate (signed by ``ca.pem``) and its key, both PEM."""
        return self.folder / "client.pem", self.folder / "client.key"

    def answers(self) -> bool:
        """Both listeners answer: SASL_SSL, and SSL to a client with our certificate."""
        return self.sasl_answers() and tls_kafka_answers(self.mtls_address, self.cafile,
                                                         self.client_cert)

    def sasl_answers(self) -> bool:
        return self.cafile.exists() and tls_kafka_answers(self.address, self.cafile)

    def client_env(self) -> dict[str, str]:
        """``KAFKA_BOOTSTRAP`` and the ``KAFKA_*`` security settings of the client user."""
        return _read_env(self.client_env_file)

    def mtls_client_env(self) -> dict[str, str]:
        """``KAFKA_BOOTSTRAP`` (the SSL listener) and the ``KAFKA_*`` settings of a client
        that logs in with its certificate."""
        return _read_env(self.mtls_env_file)


def _read_env(path: Path) -> dict[str, str]:
    pairs = (line.partition("=") for line in path.read_text().splitlines())
    return {name: value for name, _, value in pairs if name}


def secure_kafka() -> SecureBroker:
    return SecureBroker("kafka-secure", Address("127.0.0.1", SECURE_PORT))


def tls_kafka_answers(address: Address, cafile: Path,
                      client_cert: tuple[Path, Path] | None = None,
                      timeout: float = 2.0) -> bool:
    """True when a broker answers ApiVersions over TLS (allowed before the SASL login);
    ``client_cert`` (certificate, key) for a listener that requires one."""
    client_id = b"rollguard-probe"
    body = struct.pack(">hhih", 18, 0, 1, len(client_id)) + client_id
    try:
        context = ssl.create_default_context(cafile=str(cafile))
        if client_cert is not None:
            context.load_cert_chain(*map(str, client_cert))
    except OSError:  # not made yet
        return False
    try:
        with socket.create_connection((address.host, address.port), timeout=timeout) as raw, \
                context.wrap_socket(raw, server_hostname=address.host) as sock:
            sock.sendall(struct.pack(">i", len(body)) + body)
            size = struct.unpack(">i", recv_exact(sock, 4))[0]
            payload = recv_exact(sock, size)
    except (OSError, ConnectionError):
        return False
    return struct.unpack(">ih", payload[:6]) == (1, 0)


def _make_credentials(broker: SecureBroker) -> dict[str, str]:
    """Keystore, truststore, CA file and passwords, made once; their passwords returned."""
    folder = broker.folder
    folder.mkdir(parents=True, exist_ok=True)
    # One maker at a time: two processes making stores in one folder break each other's.
    with open(folder / ".credentials.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        secrets_file = folder / "passwords.env"
        if secrets_file.exists():
            pairs = (line.partition("=") for line in secrets_file.read_text().splitlines())
            return {name: value for name, _, value in pairs if name}
        made = {name: secrets.token_hex(16) for name in ("store", "broker", "client")}
        _make_stores(broker, made["store"])
        secrets_file.write_text("".join(f"{k}={v}\n" for k, v in made.items()))
        secrets_file.chmod(0o600)
        return made


def _make_stores(broker: SecureBroker, store: str, attempts: int = 3) -> None:
    """The stores made anew, tried again on a failing ``keytool`` (a JVM that could not start
    on a loaded machine); the last failure named with keytool's own message."""
    keystore, truststore = broker.folder / "keystore.p12", broker.folder / "truststore.p12"
    quiet = {"check": True, "stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE}
    for attempt in range(1, attempts + 1):
        for path in (keystore, truststore, broker.cafile):
            path.unlink(missing_ok=True)
        try:
            _keytool(keystore, truststore, broker, store, broker.address.host, quiet)
            return
        except subprocess.CalledProcessError as exc:
            if attempt == attempts:
                # Not ``from exc``: its command line holds the store's password.
                message = (exc.stderr or b"").decode(errors="replace").strip()[-500:]
                raise RuntimeError(f"keytool {exc.cmd[1]} failed ({exc.returncode}) in "
                                   f"{broker.folder}: {message}") from None


def _keytool(keystore: Path, truststore: Path, broker: SecureBroker, store: str, host: str,
             quiet: dict[str, Any]) -> None:
    # The broker's self-signed key pair, its certificate as the CA file, and a truststore.
    subprocess.run(["keytool", "-genkeypair", "-alias", "broker", "-keyalg", "RSA",
                    "-keysize", "2048", "-validity", "3650", "-dname", "CN=localhost",
                    "-ext", f"SAN=ip:{host},dns:localhost", "-ext", "bc=ca:true",
                    "-keystore", str(keystore), "-storetype", "PKCS12",
                    "-storepass", store, "-keypass", store], **quiet)
    subprocess.run(["keytool", "-exportcert", "-rfc", "-alias", "broker",
                    "-keystore", str(keystore), "-storepass", store,
                    "-file", str(broker.cafile)], **quiet)
    subprocess.run(["keytool", "-importcert", "-noprompt", "-alias", "broker",
                    "-file", str(broker.cafile), "-keystore", str(truststore),
                    "-storetype", "PKCS12", "-storepass", store], **quiet)


def _make_client_certificate(broker: SecureBroker, store: str) -> None:
    """A client key (openssl) and its certificate signed by the broker's CA (keytool), once."""
    cert, key = broker.client_cert
    if cert.exists() and key.exists():
        return
    request = broker.folder / "client.csr"
    quiet = {"check": True, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    subprocess.run(["openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes",
                    "-subj", "/CN=rollguard-client", "-keyout", str(key),
                    "-out", str(request)], **quiet)  # type: ignore[call-overload]
    subprocess.run(["keytool", "-gencert", "-rfc", "-alias", "broker", "-validity", "3650",
                    "-ext", "EKU=clientAuth", "-keystore", str(broker.folder / "keystore.p12"),
                    "-storepass", store, "-infile", str(request),
                    "-outfile", str(cert)], **quiet)  # type: ignore[call-overload]
    key.chmod(0o600)
    request.unlink()


def secure_properties(broker: SecureBroker, passwords: dict[str, str]) -> str:
    host = numeric_host(broker.address.host)
    port, controller = broker.address.port, broker.address.port + 1
    store, folder = passwords["store"], broker.folder
    login = (f'org.apache.kafka.common.security.scram.ScramLoginModule required '
             f'username="{BROKER_USER}" password="{passwords["broker"]}";')
    mtls = broker.mtls_address.port
    return node_properties(host, controller, folder / "data", [
        f"listeners=SASL_SSL://{host}:{port},SSL://{host}:{mtls},"
        f"CONTROLLER://{host}:{controller}",
        f"advertised.listeners=SASL_SSL://{host}:{port},SSL://{host}:{mtls}",
        "listener.security.protocol.map=SASL_SSL:SASL_SSL,SSL:SSL,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name=SASL_SSL",
        # the SSL listener's clients log in with a certificate the truststore's CA signed
        "listener.name.ssl.ssl.client.auth=required",
        f"sasl.enabled.mechanisms={MECHANISM}",
        f"sasl.mechanism.inter.broker.protocol={MECHANISM}",
        f"listener.name.sasl_ssl.{MECHANISM.lower()}.sasl.jaas.config={login}",
        f"ssl.keystore.location={folder / 'keystore.p12'}",
        "ssl.keystore.type=PKCS12",
        f"ssl.keystore.password={store}",
        f"ssl.key.password={store}",
        f"ssl.truststore.location={folder / 'truststore.p12'}",
        "ssl.truststore.type=PKCS12",
        f"ssl.truststore.password={store}",
    ])


def up_secure() -> SecureBroker:
    """Make the secured broker answer (start it unless it does); return it."""
    broker = secure_kafka()
    if broker.answers():
        return broker
    if broker.sasl_answers():  # started here before it had the SSL listener: start it anew
        stop_started(broker)
    require_local(broker, "ROLLGUARD_SECURE_KAFKA_PORT")
    passwords = _make_credentials(broker)
    _make_client_certificate(broker, passwords["store"])
    config = broker.folder / "server.properties"
    config.write_text(secure_properties(broker, passwords))
    config.chmod(0o600)
    scram = [f"--add-scram={MECHANISM}=[name={user},password={passwords[key]}]"
             for user, key in ((BROKER_USER, "broker"), (CLIENT_USER, "client"))]
    pid = start_broker(broker, config, scram)
    wait_until_answers(broker, pid, 120.0)
    broker.client_env_file.write_text("".join(f"{k}={v}\n" for k, v in {
        "KAFKA_BOOTSTRAP": str(broker.address),
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_MECHANISM": MECHANISM,
        "KAFKA_SASL_USERNAME": CLIENT_USER,
        "KAFKA_SASL_PASSWORD": passwords["client"],
        "KAFKA_SSL_CAFILE": str(broker.cafile),
    }.items()))
    broker.client_env_file.chmod(0o600)
    cert, key = broker.client_cert
    broker.mtls_env_file.write_text("".join(f"{k}={v}\n" for k, v in {
        "KAFKA_BOOTSTRAP": str(broker.mtls_address),
        "KAFKA_SECURITY_PROTOCOL": "SSL",
        "KAFKA_SSL_CAFILE": str(broker.cafile),
        "KAFKA_SSL_CERTFILE": str(cert),
        "KAFKA_SSL_KEYFILE": str(key),
    }.items()))
    return broker


def report_up() -> None:
    """``scripts/services up --secure``."""
    broker = up_secure()
    print(f"{broker.name}: answering at {broker.address} (SASL_SSL; client settings in "
          f"{broker.client_env_file}) and {broker.mtls_address} (SSL with a client "
          f"certificate; settings in {broker.mtls_env_file})")


def report_down() -> None:
    """``scripts/services down --secure``: stops it only if ``up`` started it here."""
    broker = secure_kafka()
    say_stopped(broker, stop_started(broker))
