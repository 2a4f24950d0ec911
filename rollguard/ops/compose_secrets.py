"""The secret files of ``docker-compose.secure.yml``: a private CA, server certificates for
Kafka and Redis, SCRAM and Redis ACL passwords, and the rollguard secret.

``python3 -m rollguard.ops.compose_secrets [FOLDER]`` (default ``./secrets``) makes, once:

- ``ca.crt`` / ``ca.key``: the CA (keep ``ca.key`` offline; only ``ca.crt`` is mounted);
- ``kafka/``: the broker's PKCS12 keystore and its password file, ``ca.crt`` (the broker's
  PEM truststore) and ``kafka_server_jaas.conf`` (the broker's own SCRAM login);
- ``redis/``: the server certificate and key, and ``users.acl``: ``default`` off, the writer
  (worker, actuator, CLI) and a reader of ``support-bot`` with the rules of
  :mod:`rollguard.actions.acl`;
- one file per secret a rollguard container reads through ``*_FILE`` variables:
  ``rollguard-secret``, ``kafka-rollguard-password``, ``redis-url-writer``; and the
  passwords the Kafka formatter adds as SCRAM users.

Standard library and ``openssl``; nothing is printed but file names.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from pathlib import Path

from rollguard.actions.acl import acl_line, reader_rules, writer_rules

SCRAM_USERS = ("broker", "rollguard")  # the broker's own login, and every rollguard part
READER_SERVICE = "support-bot"  # the demo's service: its serving processes read only it
WRITER = "rollguard-writer"
READER = f"rollguard-reader-{READER_SERVICE}"
REDIS_TLS_PORT = 6380


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_ca(folder: Path, name: str = "rollguard CA") -> None:
    """``ca.crt`` and ``ca.key`` in ``folder`` unless there."""
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "ca.crt").exists():
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650",
                 "-subj", f"/CN={name}", "-keyout", str(folder / "ca.key"),
                 "-out", str(folder / "ca.crt"))


def issue(folder: Path, name: str, extensions: str, out: Path | None = None) -> Path:
    """``{name}.crt`` and ``{name}.key`` (in ``out``, default ``folder``) signed by the CA in
    ``folder``, with ``extensions`` (openssl's ``-extfile`` lines); the certificate's path."""
    target = out or folder
    target.mkdir(parents=True, exist_ok=True)
    cert, key = target / f"{name}.crt", target / f"{name}.key"
    if cert.exists():
        return cert
    ext, request = folder / f"{name}.ext", folder / f"{name}.csr"
    ext.write_text(extensions)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN=rollguard-{name}",
             "-keyout", str(key), "-out", str(request))
    _openssl("x509", "-req", "-days", "3650", "-in", str(request), "-CA", str(folder / "ca.crt"),
             "-CAkey", str(folder / "ca.key"), "-CAcreateserial", "-extfile", str(ext),
             "-out", str(cert))
    ext.unlink()
    request.unlink()
    return cert


def server_extensions(host: str) -> str:
    return f"subjectAltName=DNS:{host},DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"


def _secret(path: Path, value: str | None = None) -> str:
    """The value in ``path``, written (mode 0600) from ``value`` or at random if missing."""
    if not path.exists():
        path.write_text((value or secrets.token_hex(24)) + "\n")
        path.chmod(0o600)
    return path.read_text().strip()


def make_secrets(folder: Path) -> list[Path]:
    """Every file docker-compose.secure.yml mounts, made unless there; their paths."""
    make_ca(folder)
    kafka, redis = folder / "kafka", folder / "redis"
    for sub in (kafka, redis):
        sub.mkdir(parents=True, exist_ok=True)
    _secret(folder / "rollguard-secret")
    passwords = {user: _secret(folder / f"kafka-{user}-password") for user in SCRAM_USERS}
    store = _secret(kafka / "store-password")
    issue(folder, "kafka", server_extensions("kafka"), out=kafka)
    if not (kafka / "kafka.p12").exists():
        _openssl("pkcs12", "-export", "-name", "kafka", "-in", str(kafka / "kafka.crt"),
                 "-inkey", str(kafka / "kafka.key"), "-out", str(kafka / "kafka.p12"),
                 "-passout", f"pass:{store}")
    (kafka / "ca.crt").write_bytes((folder / "ca.crt").read_bytes())
    _secret(kafka / "kafka_server_jaas.conf",
            "KafkaServer {\n  org.apache.kafka.common.security.scram.ScramLoginModule required\n"
            f'  username="broker" password="{passwords["broker"]}";\n}};')
    issue(folder, "redis", server_extensions("redis"), out=redis)
    (redis / "ca.crt").write_bytes((folder / "ca.crt").read_bytes())
    writer_pw, reader_pw = (_secret(folder / f"redis-{who}-password") for who in ("writer",
                                                                                   "reader"))
    _secret(redis / "users.acl", "\n".join([
        "user default off",
        acl_line(WRITER, writer_pw, writer_rules()),
        acl_line(READER, reader_pw, reader_rules(READER_SERVICE)),
    ]))
    _secret(folder / "redis-url-writer", redis_url(WRITER, writer_pw))
    _secret(folder / "redis-url-reader", redis_url(READER, reader_pw))
    return sorted(p for p in folder.rglob("*") if p.is_file())


def redis_url(user: str, password: str) -> str:
    """The URL a container in the compose network reaches Redis with (TLS, the mounted CA)."""
    return (f"rediss://{user}:{password}@redis:{REDIS_TLS_PORT}/0"
            "?ssl_ca_certs=/run/secrets/ca.crt")


def main(argv: list[str]) -> int:
    folder = Path(argv[0] if argv else "secrets")
    for path in make_secrets(folder):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
