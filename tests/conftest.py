"""Shared fixtures: integration tests need the servers that `scripts/services up` starts."""

from __future__ import annotations

import pytest

from rollguard import services


@pytest.fixture(name="servers", scope="session")
def fixture_servers() -> None:
    """Fail with a clear message (not a hang) when Kafka or Redis is not running."""
    missing = [s for s in (services.kafka(), services.redis()) if not s.answers()]
    if missing:
        names = ", ".join(f"{s.name} at {s.address}" for s in missing)
        pytest.fail(f"not answering: {names}; run `scripts/services up` (or `make test`)")
