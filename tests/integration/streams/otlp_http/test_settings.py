"""``rollguard otlp``'s bearer token, TLS and settings: the token is required and never
printed; HTTPS with the SDK exporter trusting the certificate; a bad setting or a Kafka that
does not answer at start is one line naming it."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import orjson
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from rollguard.streams.otlp_http.bodies import LOGS, count_records
from tests.support.otel import Receiver, evaluation, export, otlp_command, running_otlp, tail
from tests.support.ports import free_port

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("servers")]

TOKEN = "otlp-token-6f1e0c2b9a"


@pytest.fixture(name="certificate", scope="module")
def fixture_certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (its own CA) and its key."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


@pytest.fixture(name="secured", scope="module")
def fixture_secured(certificate: tuple[Path, Path],
                    tmp_path_factory: pytest.TempPathFactory) -> Iterator[Receiver]:
    """HTTPS, and a bearer token read from a file. The SDK exporter's certificate_file is
    overridden by REQUESTS_CA_BUNDLE and CURL_CA_BUNDLE (requests prefers them to a
    session's CA file): they are unset for these tests."""
    token_file = tmp_path_factory.mktemp("token") / "token"
    token_file.write_text(TOKEN + "\n")
    cert, key = certificate
    with running_otlp(ROLLGUARD_OTLP_TLS_CERTFILE=str(cert), ROLLGUARD_OTLP_TLS_KEYFILE=str(key),
                      ROLLGUARD_OTLP_TOKEN_FILE=str(token_file)) as receiver, \
            pytest.MonkeyPatch.context() as patch:
        patch.delenv("REQUESTS_CA_BUNDLE", raising=False)
        patch.delenv("CURL_CA_BUNDLE", raising=False)
        yield receiver


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"},
                                     {"Authorization": TOKEN}])
def test_a_request_without_the_token_is_refused(secured: Receiver, certificate: tuple[Path, Path],
                                                headers: dict[str, str]) -> None:
    sent = evaluation()
    assert export(secured.url, sent, headers=headers, certificate_file=str(certificate[0]),
                  timeout=10) == (False, False)
    assert secured.process.poll() is None


async def test_the_sdk_over_https_with_the_token_is_written(
        secured: Receiver, certificate: tuple[Path, Path]) -> None:
    sent = evaluation()
    async with tail(secured.topic_logs) as logs:
        assert await asyncio.to_thread(
            export, secured.url, sent, headers={"Authorization": f"Bearer {TOKEN}"},
            certificate_file=str(certificate[0])) == (True, True)
        await logs.until(lambda v: sent.marker.encode() in v)
    assert TOKEN not in secured.printed()


def run_otlp(env: dict[str, str], timeout: float = 60) -> tuple[int, str]:
    process = otlp_command(env)
    out, _ = process.communicate(timeout=timeout)
    return process.returncode, out


@pytest.mark.parametrize(("env", "expected"), [
    ({"ROLLGUARD_OTLP_ADDR": "localhost"}, "ROLLGUARD_OTLP_ADDR: must be host:port"),
    ({"ROLLGUARD_OTLP_TLS_CERTFILE": "/nonexistent/cert.pem",
      "ROLLGUARD_OTLP_TLS_KEYFILE": "/nonexistent/key.pem"},
     "ROLLGUARD_OTLP_TLS_CERTFILE: no such file '/nonexistent/cert.pem'"),
    ({"ROLLGUARD_OTLP_ENCODING": "protobuf"}, "ROLLGUARD_OTLP_ENCODING: must be one of"),
    ({"ROLLGUARD_OTLP_TOKEN_FILE": "/nonexistent/token", "ROLLGUARD_OTLP_TOKEN": ""},
     "ROLLGUARD_OTLP_TOKEN_FILE: cannot read"),
    ({"KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}"}, "Kafka is not reachable at 127.0.0.1:"),
])
def test_a_bad_setting_is_one_line(env: dict[str, str], expected: str) -> None:
    code, out = run_otlp({"ROLLGUARD_OTLP_ADDR": f"127.0.0.1:{free_port()}",
                          "ROLLGUARD_OTLP_TOKEN": TOKEN, **env})
    assert code == 1
    assert out.startswith(f"error: {expected}"), out
    assert out.count("\n") == 1, out
    assert TOKEN not in out


def test_an_address_in_use_is_one_line(secured: Receiver) -> None:
    address = secured.url.split("://")[1]
    code, out = run_otlp({"ROLLGUARD_OTLP_ADDR": address})
    assert (code, out.count("\n")) == (1, 1), out
    assert out.startswith(f"error: ROLLGUARD_OTLP_ADDR: cannot listen on {address}"), out


def test_help_shows_defaults_never_the_token() -> None:
    out = subprocess.run([sys.executable, "-m", "rollguard.cli", "otlp", "--help"],
                         env={"ROLLGUARD_OTLP_TOKEN": TOKEN, "PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True, check=True).stdout
    assert "ROLLGUARD_OTLP_TOKEN" in out
    assert TOKEN not in out


async def test_sigterm_answers_the_request_under_way_once_kafka_has_it() -> None:
    """SIGTERM while a 5 MB JSON request is being read and decoded (seconds of work): the
    request is still answered 200, its four messages are on Kafka, the command exits 0."""
    marker = uuid.uuid4().hex
    record = {"eventName": "e", "spanId": "eee19b7ec3c1b174",
              "attributes": [{"key": "m", "value": {"stringValue": marker}}]}
    body = orjson.dumps({"resourceLogs": [{"scopeLogs": [{"logRecords": [record] * 40000}]}]})
    with running_otlp("--loglevel", "debug",
                      ROLLGUARD_OTLP_MAX_MESSAGE_BYTES="600000") as receiver:
        async with tail(receiver.topic_logs) as logs, aiohttp.ClientSession() as session:
            answering = asyncio.create_task(session.post(
                f"{receiver.url}/v1/logs", data=body, headers={"Content-Type": "application/json"}))
            assert await asyncio.to_thread(receiver.wait_for, "/v1/logs: a request of")
            receiver.process.send_signal(signal.SIGTERM)
            async with await answering as answer:
                assert (answer.status, await answer.read()) == (200, b"{}")
            seen = 0
            while seen < 40000:
                value = await logs.until(lambda v: marker.encode() in v)
                seen += count_records(LOGS, ExportLogsServiceRequest.FromString(value))
        assert await asyncio.to_thread(receiver.process.wait, 30) == 0
