"""`scripts/services up|status` probe the Redis of REDIS_URL as the URL says: TLS with its
CA, the login, every cluster seed; a refused login or an unstartable kind is said clearly."""

from __future__ import annotations

from pathlib import Path

import pytest

from localservers import services
from localservers.managed import redis_answers
from rollguard.base.config import Address, redis_url
from rollguard.base.errors import AccessRefused
from tests.support.ports import free_port
from tests.support.redis_servers import ADMIN, LoopbackCluster, TlsRedis

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("servers")]


@pytest.fixture(autouse=True)
def fixture_own_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Process ids and logs of anything `up` might start go to this test's folder."""
    monkeypatch.setenv("ROLLGUARD_HOME", str(tmp_path))


@pytest.fixture(name="url", params=["tls", "tls-cluster", "plaintext"])
def fixture_url(request: pytest.FixtureRequest) -> str:
    if request.param == "tls":
        server: TlsRedis = request.getfixturevalue("tls_redis")
        return server.url(*ADMIN)
    if request.param == "tls-cluster":
        cluster: LoopbackCluster = request.getfixturevalue("tls_redis_cluster")
        return cluster.url
    return redis_url()  # the shared plaintext server


def test_up_reuses_a_tls_or_cluster_redis_it_reaches_as_the_url_says(
        url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("REDIS_URL", url)
    assert services.redis().answers()
    assert services.main(["up"]) == 0
    out = capsys.readouterr().out
    redis_line = next(line for line in out.splitlines() if line.startswith("redis:"))
    assert "answering at" in redis_line and redis_line.endswith("(reused)"), out
    assert ("TLS" in redis_line) == url.startswith("rediss")
    assert ("seed node" in redis_line) == ("+cluster" in url)
    assert ADMIN[1] not in out


def test_a_plaintext_probe_would_miss_the_tls_server(tls_redis: TlsRedis) -> None:
    """What the probe did before it read the URL: a TLS server looked absent."""
    assert not redis_answers(Address("127.0.0.1", tls_redis.port))


def test_a_refused_login_stops_up_naming_redis_url_and_not_the_password(
        tls_redis: TlsRedis, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("REDIS_URL", tls_redis.url(ADMIN[0], "not-the-password-9f1"))
    with pytest.raises(AccessRefused, match=r"refused the login: WRONGPASS.*\(REDIS_URL\)"):
        services.redis().answers()
    assert services.main(["up"]) == 1
    err = capsys.readouterr().err
    assert "refused the login" in err and "not-the-password-9f1" not in err


@pytest.mark.parametrize("scheme", ["rediss", "redis+cluster", "rediss+cluster"])
def test_up_does_not_start_a_plaintext_server_for_a_tls_or_cluster_url(
        scheme: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Nothing answers: `up` says it cannot start that kind, and starts nothing."""
    monkeypatch.setenv("REDIS_URL", f"{scheme}://127.0.0.1:{free_port()}")
    assert services.main(["up"]) == 1
    assert "starts only a plaintext single redis-server" in capsys.readouterr().err
    assert not (tmp_path / "redis" / "pid").exists()
