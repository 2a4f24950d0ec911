"""The one rule for a valid service name, shared by event validation and the Redis keys.

A service name goes inside Redis keys and a Cluster hash tag (``actions.keys``): no braces,
no spaces, no colons, nothing but ASCII letters, digits, ``.``, ``_`` and ``-``.

>>> [is_service_name(s) for s in ("support-bot", "a" * 128, "a" * 129, "x y", "chat\\n", "é")]
[True, True, False, False, False, False]

Names starting with :data:`DRILL_PREFIX` are reserved for ``rollguard drill``: every part
marks what concerns them as a drill (the audit topic, notifications, the status page,
reports), no drill pages anyone, and no drill joins the fleet's view of real services.

>>> [is_drill(s) for s in ("rollguard-drill", "rollguard-drill-eu", "support-bot", None)]
[True, True, False, False]
>>> drill_mark("rollguard-drill"), drill_mark("support-bot")
({'drill': True}, {})
"""

from __future__ import annotations

import re

# \Z, not $: "$" also matches before a trailing newline.
SERVICE_NAME = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")
SERVICE_NAME_RULE = "1-128 letters, digits, '.', '_' or '-', starting with a letter or digit"

DRILL_PREFIX = "rollguard-drill"  # the reserved names of drill services

_match = SERVICE_NAME.match


def is_service_name(name: object) -> bool:
    """True when ``name`` is a string that is a valid service name."""
    return type(name) is str and _match(name) is not None


def is_drill(service: object) -> bool:
    """True when ``service`` names a drill service (it starts with :data:`DRILL_PREFIX`)."""
    return type(service) is str and service.startswith(DRILL_PREFIX)


def drill_mark(service: object) -> dict[str, bool]:
    """What a record about ``service`` carries to say it is a drill: ``{"drill": True}``, or
    nothing for a real service."""
    return {"drill": True} if is_drill(service) else {}
