"""The default policy as shipped, as text or as a document, for tests that change a few fields."""

from __future__ import annotations

from importlib import resources
from typing import Any

import yaml


def default_policy_text() -> str:
    """The text of ``default_policy.yaml`` as the installed package holds it."""
    return resources.files("rollguard.detectors").joinpath("default_policy.yaml").read_text("utf-8")


def default_policy_document() -> dict[str, Any]:
    """The default policy as a fresh document (a new copy each call: change it freely)."""
    document: dict[str, Any] = yaml.safe_load(default_policy_text())
    return document
