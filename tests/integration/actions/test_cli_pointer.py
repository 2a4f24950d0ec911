"""The pointer commands of the CLI against the real Redis (click's CliRunner)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest
from click.testing import CliRunner, Result

from rollguard.actions.connect import redis_client
from rollguard.actions.keys import ServiceKeys
from rollguard.cli import main

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("servers")]

Run = Callable[..., Result]


@pytest.fixture(name="cli")
def fixture_cli(service: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Run]:
    """Run `rollguard ...` in-process; the test service's keys are deleted afterwards."""
    monkeypatch.setenv("ROLLGUARD_SECRET", "cli-test-secret")
    runner = CliRunner()
    client = redis_client()  # made now: a test may point REDIS_URL elsewhere

    def run(*args: str) -> Result:
        return runner.invoke(main, list(args), catch_exceptions=False)

    yield run
    keys = list(client.scan_iter(match=ServiceKeys.of(service).pattern))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture(name="registered")
def fixture_registered(cli: Run, service: str) -> str:
    for name, model in (("v1", "m-2.3"), ("v2", "m-2.4")):
        result = cli("release", "register", service, name, "--component", f"model={model}",
                     "--component", f"prompt=p-{name}", "--component", "index=i1")
        assert result.exit_code == 0, result.output
    assert cli("promote", service, "v1", "--by", "ann").exit_code == 0
    return service


def test_register_from_a_file_and_show_it_as_json(cli: Run, service: str, tmp_path) -> None:
    """A YAML file of components registers a release that `release show --json` returns."""
    spec = tmp_path / "v1.yaml"
    spec.write_text("components:\n  model: m-2.3\n  policy: safe-4\n")
    assert cli("release", "register", service, "v1", "--file", str(spec)).exit_code == 0
    shown = json.loads(cli("release", "show", service, "v1", "--json").stdout)
    assert shown["components"] == {"model": "m-2.3", "policy": "safe-4"}


def test_promote_partial_rollback_and_status(cli: Run, registered: str) -> None:
    """promote, then roll back only the model: status shows the derived release's versions."""
    assert cli("promote", registered, "v2", "--by", "ann").exit_code == 0
    result = cli("rollback", registered, "--component", "model", "--reason", "toxicity up")
    assert result.exit_code == 0, result.output
    status = json.loads(cli("status", registered, "--json").stdout)
    assert status["active"] == "v2~rollback(model)->v1"
    assert status["active_components"] == {"index": "i1", "model": "m-2.3", "prompt": "p-v2"}
    assert "v2~rollback(model)->v1" in cli("status", registered).stdout


def test_a_pinned_service_needs_force_and_exits_non_zero_without(
    cli: Run, registered: str
) -> None:
    """Rollback of a pinned service fails with a clear message; --force goes through."""
    assert cli("promote", registered, "v2").exit_code == 0
    assert cli("pin", registered).exit_code == 0
    refused = cli("rollback", registered)
    assert refused.exit_code == 1
    assert "pinned" in refused.stderr
    assert cli("rollback", registered, "--force").exit_code == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("status", "{missing}"), "no version pointer"),
        (("promote", "{service}", "v9"), "no release 'v9'"),
        (("rollback", "{service}", "--component", "tokenizer"), "no component 'tokenizer'"),
        (("release", "show", "{service}", "v9"), "no release 'v9'"),
        (("promote", "{service}", "v2", "--expect-epoch", "7"), "expected epoch 7"),
        (("release", "register", "{service}", "v1", "--component", "model=other"),
         "already registered with other contents"),
    ],
    ids=["unknown-service", "unknown-release", "unknown-component", "show-unknown", "conflict",
         "release-conflict"],
)
def test_errors_print_one_clear_line_and_exit_1(
    cli: Run, registered: str, args: tuple[str, ...], message: str
) -> None:
    """Unknown names and conflicts give `error: ...` on stderr and exit code 1."""
    filled = [a.format(service=registered, missing=registered + "-none") for a in args]
    result = cli(*filled)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ")
    assert message in result.stderr


def test_redis_unreachable_is_reported_with_its_address(
    cli: Run, service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With Redis down the command says where it looked and exits 1."""
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    result = cli("status", service)
    assert result.exit_code == 1
    assert "127.0.0.1:1" in result.stderr


def test_history_as_json_lists_every_command(cli: Run, registered: str) -> None:
    """history --json shows the promote, a refusal and the operator name."""
    cli("promote", registered, "v9", "--by", "bob")
    entries = json.loads(cli("history", registered, "--json").stdout)
    assert [(e["op"], e["outcome"], e["issued_by"]) for e in entries] == [
        ("promote", "applied", "ann"),
        ("promote", "refused", "bob"),
    ]
    assert "refused" in cli("history", registered).stdout


def test_without_a_secret_commands_are_refused_and_reads_work(
    cli: Run, registered: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without ROLLGUARD_SECRET a command that moves the pointer is refused, naming the
    variable; reading needs no secret."""
    monkeypatch.delenv("ROLLGUARD_SECRET")
    result = cli("pin", registered)
    assert result.exit_code == 1 and "ROLLGUARD_SECRET is not set" in result.stderr
    assert cli("status", registered).exit_code == 0
    assert "PINNED" not in cli("status", registered).stdout


def test_the_dev_secret_is_used_only_with_dev_and_with_a_warning(
    cli: Run, registered: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ROLLGUARD_SECRET")
    result = cli("--dev", "pin", registered)
    assert result.exit_code == 0 and "development secret" in result.stderr


@pytest.mark.parametrize("args", [("history", "{missing}"), ("history", "{missing}", "--json"),
                                  ("release", "list", "{missing}")])
def test_an_unknown_service_is_an_error_naming_it(cli: Run, service: str,
                                                   args: tuple[str, ...]) -> None:
    """A misspelt service name must not read as "no history" with exit code 0."""
    result = cli(*[a.format(missing=service) for a in args])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: unknown service") and service in result.stderr


def test_a_known_service_without_history_is_not_an_error(cli: Run, service: str) -> None:
    assert cli("release", "register", service, "v1", "--component", "model=m").exit_code == 0
    assert cli("history", service).exit_code == 0


def test_history_count_must_be_at_least_one(cli: Run, registered: str) -> None:
    result = cli("history", registered, "--count", "0")
    assert result.exit_code == 2 and "--count" in result.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"components:\n  model: [1, 2]\n", "component model: the version must be a string"),
     (b"model: {a: 1}\n", "component model: the version must be a string"),
     (b"model: true\n", "component model: the version must be a string"),
     (b"model: m-\xff\n", "not UTF-8"),
     (b"a: &a [x, x, x, x, x, x, x, x, x]\n" + b"".join(
         b"%s: &%s [%s]\n" % (n, n, b", ".join([b"*" + p] * 9))
         for p, n in zip([b"a", b"b", b"c", b"d", b"e", b"f", b"g", b"h"],
                         [b"b", b"c", b"d", b"e", b"f", b"g", b"h", b"i"], strict=True)),
      "expand to more than")],
    ids=["list", "mapping", "boolean", "not-utf8", "yaml-bomb"],
)
def test_a_bad_components_file_is_refused_clearly(cli: Run, service: str, tmp_path,
                                                  content: bytes, message: str) -> None:
    """Versions are strings or numbers; the file is bounded like a policy file."""
    spec = tmp_path / "components.yaml"
    spec.write_bytes(content)
    result = cli("release", "register", service, "v1", "--file", str(spec))
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert cli("release", "list", service).exit_code == 1  # nothing was registered
