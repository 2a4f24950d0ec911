"""The one rule for a valid service name, shared by event validation and the Redis keys.

A service name goes inside Redis keys and a Cluster hash tag (``actions.keys``): no braces,
no spaces, no colons, nothing but ASCII letters, digits, ``.``, ``_`` and ``-``.

>>> [is_service_name(s) for s in ("support-bot", "a" * 128, "a" * 129, "x y", "chat\\n", "é")]
[True, True, False, False, False, False]
"""

from __future__ import annotations

import re

# \Z, not $: "$" also matches before a trailing newline.
SERVICE_NAME = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")
SERVICE_NAME_RULE = "1-128 letters, digits, '.', '_' or '-', starting with a letter or digit"

_match = SERVICE_NAME.match


def is_service_name(name: object) -> bool:
    """True when ``name`` is a string that is a valid service name."""
    return type(name) is str and _match(name) is not None
