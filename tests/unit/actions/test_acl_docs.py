"""The ACL lines users paste from the docs are the rules the suite runs the parts with."""

from __future__ import annotations

from pathlib import Path

import pytest

from rollguard.actions.acl import (
    CLUSTER_DISCOVERY,
    acl_line,
    observer_rules,
    reader_rules,
    writer_rules,
)

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("doc", ["docs/secured-servers.md", "docs/pointer-protocol.md"])
def test_the_documented_acl_lines_are_the_tested_rules(doc: str) -> None:
    text = (ROOT / doc).read_text(encoding="utf-8")
    assert acl_line("rollguard-reader-support-bot", "READER_PASSWORD",
                    reader_rules("support-bot")) in text
    assert acl_line("rollguard-writer", "WRITER_PASSWORD", writer_rules()) in text
    assert " ".join(CLUSTER_DISCOVERY) in text


def test_the_documented_observer_line_is_the_tested_rule() -> None:
    """The status page's and the reports' read-only user, as docs/secured-servers.md gives it."""
    text = (ROOT / "docs/secured-servers.md").read_text(encoding="utf-8")
    assert acl_line("rollguard-observer", "OBSERVER_PASSWORD", observer_rules()) in text
