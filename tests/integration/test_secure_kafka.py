"""Against a real broker with a SASL_SSL listener and SCRAM-SHA-512 users, and an SSL
listener that requires a client certificate (mutual TLS): the worker, the emitter and
`rollguard check` work with the right settings; a client without credentials, with a wrong
password, without a client certificate or with one from another CA is refused at once with
an error naming the broker and the setting; no password or secret appears in outputs, logs
or history."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from localservers.managed import project_home
from rollguard.base.errors import AccessRefused
from rollguard.cli import main
from rollguard.demo.scenario import Scenario
from rollguard.streams.emitter import Emitter
from tests.support.e2e import new_service, scenario_events, setup_service
from tests.support.redis_servers import make_certificates
from tests.support.runs import IsolatedRun, wait_processed

pytestmark = [pytest.mark.integration]

SECRET = "secure-run-secret-4c1f"
WRONG = "wrong-password-7a2e"
REGRESSION = Scenario(rate=10.0, blip_s=0.0, duration=1200.0)
PLAINTEXT = {"KAFKA_SECURITY_PROTOCOL": "PLAINTEXT", "KAFKA_SASL_USERNAME": "",
             "KAFKA_SASL_PASSWORD": "", "KAFKA_SSL_CAFILE": ""}
NO_CLIENT_CERT = {"KAFKA_SSL_CERTFILE": "", "KAFKA_SSL_KEYFILE": ""}


@pytest.fixture(name="secured")
def fixture_secured(secure_kafka: dict[str, str],
                    monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """This process's Kafka settings point at the secured broker."""
    for name, value in secure_kafka.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ROLLGUARD_SECRET", SECRET)
    return secure_kafka


@pytest.fixture(name="mutual_tls")
def fixture_mutual_tls(mtls_kafka: dict[str, str],
                       monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """This process's Kafka settings point at the listener that requires a client
    certificate, and carry ours (no SASL login)."""
    with_settings(monkeypatch, {"KAFKA_SASL_USERNAME": "", "KAFKA_SASL_PASSWORD": "",
                                "KAFKA_SASL_MECHANISM": "", **mtls_kafka})
    monkeypatch.setenv("ROLLGUARD_SECRET", SECRET)
    return mtls_kafka


def other_ca_certificate() -> dict[str, str]:
    """A client certificate and key signed by a CA the broker does not trust."""
    folder = make_certificates(project_home() / "redis-tls")
    return {"KAFKA_SSL_CERTFILE": str(folder / "client.crt"),
            "KAFKA_SSL_KEYFILE": str(folder / "client.key")}


def with_settings(monkeypatch: pytest.MonkeyPatch, settings: dict[str, str]) -> None:
    for name, value in settings.items():
        if value:
            monkeypatch.setenv(name, value)
        else:
            monkeypatch.delenv(name, raising=False)


def test_check_passes_with_the_right_credentials_and_prints_no_secret(
        secured: dict[str, str]) -> None:
    result = CliRunner().invoke(main, ["check"])
    assert result.exit_code == 0, result.output
    assert "kafka: ok in" in result.output and secured["KAFKA_BOOTSTRAP"] in result.output
    assert secured["KAFKA_SASL_PASSWORD"] not in result.output


@pytest.mark.parametrize(("settings", "named", "said"), [
    ({"KAFKA_SASL_PASSWORD": WRONG}, "(KAFKA_SASL_USERNAME/KAFKA_SASL_PASSWORD)",
     "refused the SASL login of user 'rollguard'"),
    (PLAINTEXT, "(KAFKA_SECURITY_PROTOCOL)", "closed the connection"),
    ({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SASL_USERNAME": "", "KAFKA_SASL_PASSWORD": ""},
     "(KAFKA_SECURITY_PROTOCOL)", "expect a SASL login"),
    ({"KAFKA_SSL_CAFILE": ""}, "(KAFKA_SSL_CAFILE)", "certificate we do not trust"),
    ({"KAFKA_SASL_MECHANISM": "SCRAM-SHA-256"}, "(KAFKA_SASL_MECHANISM)", "SCRAM-SHA-256"),
], ids=["wrong-password", "no-credentials", "tls-without-login", "untrusted-ca",
        "wrong-mechanism"])
def test_a_refused_client_gets_one_clear_error_quickly(
        secured: dict[str, str], monkeypatch: pytest.MonkeyPatch, settings: dict[str, str],
        named: str, said: str) -> None:
    """`rollguard check` exits 1 within seconds with the broker and the setting named."""
    with_settings(monkeypatch, settings)
    start = time.monotonic()
    result = CliRunner().invoke(main, ["check"])
    assert result.exit_code == 1
    assert time.monotonic() - start < 15.0
    assert f"Kafka at {secured['KAFKA_BOOTSTRAP']}" in result.output
    assert named in result.output and said in result.output
    assert WRONG not in result.output and secured["KAFKA_SASL_PASSWORD"] not in result.output


def test_the_worker_stops_at_start_up_when_its_password_is_wrong(
        secured: dict[str, str], tmp_path: Path) -> None:
    """No retry loop: one line naming the broker and the setting, exit 1, no password."""
    run = IsolatedRun.new("secure-refused", partitions=1)
    start = time.monotonic()
    worker = subprocess.run(
        [sys.executable, "-m", "rollguard.cli", "worker"], capture_output=True, text=True,
        env=run.env(KAFKA_SASL_PASSWORD=WRONG), timeout=60)
    assert worker.returncode == 1
    assert time.monotonic() - start < 30.0
    assert "refused the SASL login" in worker.stderr and "KAFKA_SASL_PASSWORD" in worker.stderr
    assert WRONG not in worker.stderr + worker.stdout


def test_check_passes_with_a_client_certificate(mutual_tls: dict[str, str]) -> None:
    result = CliRunner().invoke(main, ["check"])
    assert result.exit_code == 0, result.output
    assert "kafka: ok in" in result.output and mutual_tls["KAFKA_BOOTSTRAP"] in result.output


@pytest.mark.parametrize(("settings", "said"), [
    (NO_CLIENT_CERT, "requires a client certificate (mutual TLS) and none is set"),
    ("other-ca", "refused our client certificate"),
], ids=["no-client-certificate", "certificate-of-another-ca"])
def test_a_client_without_a_trusted_certificate_gets_one_clear_error_quickly(
        mutual_tls: dict[str, str], monkeypatch: pytest.MonkeyPatch,
        settings: dict[str, str] | str, said: str) -> None:
    """`rollguard check` exits 1 within seconds naming the broker and the certificate
    settings, not the protocol."""
    with_settings(monkeypatch, other_ca_certificate() if settings == "other-ca"
                  else settings)  # type: ignore[arg-type]
    start = time.monotonic()
    result = CliRunner().invoke(main, ["check"])
    assert result.exit_code == 1
    assert time.monotonic() - start < 15.0
    assert f"Kafka at {mutual_tls['KAFKA_BOOTSTRAP']} {said}" in result.output
    assert "(KAFKA_SSL_CERTFILE/KAFKA_SSL_KEYFILE)" in result.output


async def test_the_emitter_without_a_client_certificate_is_refused_at_start(
        mutual_tls: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    with_settings(monkeypatch, NO_CLIENT_CERT)
    with pytest.raises(AccessRefused, match="KAFKA_SSL_CERTFILE/KAFKA_SSL_KEYFILE"):
        async with Emitter(f"secure-{time.monotonic_ns()}.events"):
            pass


def test_the_worker_stops_at_start_up_without_a_client_certificate(
        mutual_tls: dict[str, str]) -> None:
    run = IsolatedRun.new("mtls-refused", partitions=1)
    env = {k: v for k, v in run.env().items() if k not in NO_CLIENT_CERT}
    start = time.monotonic()
    worker = subprocess.run([sys.executable, "-m", "rollguard.cli", "worker"],
                            capture_output=True, text=True, env=env, timeout=60)
    assert worker.returncode == 1
    assert time.monotonic() - start < 30.0
    assert f"Kafka at {mutual_tls['KAFKA_BOOTSTRAP']} requires a client certificate" \
        in worker.stderr and "KAFKA_SSL_CERTFILE" in worker.stderr


def test_the_worker_refuses_to_start_without_a_secret(secured: dict[str, str]) -> None:
    run = IsolatedRun.new("secure-nosecret", partitions=1)
    env = {k: v for k, v in run.env().items() if k != "ROLLGUARD_SECRET"}
    worker = subprocess.run([sys.executable, "-m", "rollguard.cli", "worker"],
                            capture_output=True, text=True, env=env, timeout=60)
    assert worker.returncode == 1
    assert "ROLLGUARD_SECRET is not set" in worker.stderr
    assert "secrets.token_hex(32)" in worker.stderr


@pytest.fixture(name="listener", params=["secured", "mutual_tls"])
def fixture_listener(request: pytest.FixtureRequest) -> dict[str, str]:
    """Each secured listener in turn: SASL_SSL with a password, SSL with a certificate."""
    settings: dict[str, str] = request.getfixturevalue(request.param)
    return settings


@pytest.fixture(name="run")
async def fixture_run(listener: dict[str, str]) -> AsyncIterator[IsolatedRun]:
    run = IsolatedRun(IsolatedRun.new("secure").run_id, partitions=2, secret=SECRET)
    yield run
    await run.delete_topics()


async def test_a_regression_is_rolled_back_end_to_end_over_a_secured_listener(
        run: IsolatedRun, listener: dict[str, str], secure_kafka: dict[str, str]) -> None:
    """Emitter -> secured broker -> worker -> rollback in Redis, exactly once, over SASL_SSL
    and over mutual TLS; neither a Kafka password nor ROLLGUARD_SECRET is in the worker's
    log or the history."""
    service = new_service()
    store = await setup_service(run, service, canary_percent=50)
    log_path = Path(".rollguard/runs") / f"{run.run_id}.log"
    worker = run.start_worker(log_path)
    try:
        async with Emitter(run.topic("events"), linger_s=0.05) as emitter:
            for event in scenario_events(service, REGRESSION):
                emitter.emit(event["service"], event["release"], event["metrics"],
                             cohort=event.get("cohort"), event_id=event["event_id"],
                             ts=event["ts"])
            await emitter.flush()
        deadline = time.monotonic() + 90
        while (await store.read(service)).candidate is not None:
            assert time.monotonic() < deadline, "no rollback in 90 s"
            assert worker.poll() is None, log_path.read_text()[-2000:]
            await asyncio.sleep(0.2)
        await wait_processed(run)
    finally:
        worker.terminate()
        worker.wait(30)
    history = await store.history(service, count=100)
    applied = [h for h in history if h["op"] == "rollback" and h["outcome"] == "applied"]
    assert len(applied) == 1
    log = log_path.read_text()
    for secret in (secure_kafka["KAFKA_SASL_PASSWORD"], SECRET):
        assert secret not in log and secret not in str(history)
    await store.client.aclose()
