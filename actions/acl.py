"""The least Redis ACL permissions each part of rollguard needs, as rules for ``ACL SETUSER``
or an ACL file's ``user`` line (docs/pointer-protocol.md, section 9, shows them).

Commands a Lua script runs are checked against the caller's permissions too, so a writer
needs the commands inside ``actions/lua/*.lua`` and the approvals' script as well as EVALSHA.

>>> reader_rules("support-bot")  # doctest: +NORMALIZE_WHITESPACE
['resetkeys', 'resetchannels', '-@all', '~rollguard:{support-bot}:pointer',
 '&rollguard:{support-bot}:changes:0', '+get', '+subscribe']
>>> acl_line("reader", "PASSWORD", reader_rules("support-bot"))[:30]
'user reader on >PASSWORD reset'
"""

from __future__ import annotations

from rollguard.actions.keys import PREFIX, ServiceKeys

# A cluster client learns the slot map and where each command keeps its keys (COMMAND)
# before its first command, and the map again after a MOVED.
CLUSTER_DISCOVERY = ("+cluster|slots", "+cluster|shards", "+cluster|nodes", "+command")
# What the writers call: reads and the pending hash directly, the rest inside the scripts.
WRITER_COMMANDS = (
    "+get", "+mget", "+hget", "+hgetall", "+hset", "+zrange", "+xrevrange", "+ping",
    "+evalsha", "+script|load",
    # run by actions/lua/apply.lua, register.lua and the approvals' take
    "+set", "+exists", "+xadd", "+hsetnx", "+zadd", "+publish", "+hdel", "+time",
    # `rollguard check`'s round trip on its own throw-away key and channel
    "+del", "+subscribe",
)


def reader_rules(service: str, prefix: str = PREFIX, cluster: bool = False, db: int = 0,
                 ) -> list[str]:
    """A serving process that follows ``service``: GET its pointer, SUBSCRIBE its channel
    (which names the reader's database ``db``: actions/keys.py)."""
    keys = ServiceKeys.of(service, prefix, db)
    rules = ["resetkeys", "resetchannels", "-@all", f"~{keys.pointer}", f"&{keys.changes}",
             "+get", "+subscribe"]
    return rules + list(CLUSTER_DISCOVERY if cluster else ())


def writer_rules(prefix: str = PREFIX, cluster: bool = False) -> list[str]:
    """The worker (monitor and actuator) and the CLI: every key and channel under ``prefix``."""
    rules = ["resetkeys", "resetchannels", "-@all", f"~{prefix}:*", f"&{prefix}:*",
             *WRITER_COMMANDS]
    return rules + list(CLUSTER_DISCOVERY if cluster else ())


# What the status page and the reports read: pointers (GET, MGET), history (XREVRANGE),
# approvals waiting (HGETALL), and SCAN for the services that have a pointer.
OBSERVER_COMMANDS = ("+get", "+mget", "+hgetall", "+xrevrange", "+scan", "+ping")


def observer_rules(prefix: str = PREFIX, cluster: bool = False) -> list[str]:
    """``rollguard web`` and ``rollguard report``: read every key under ``prefix``, no writes."""
    rules = ["resetkeys", "resetchannels", "-@all", f"~{prefix}:*", *OBSERVER_COMMANDS]
    return rules + list(CLUSTER_DISCOVERY if cluster else ())


def acl_line(user: str, password: str, rules: list[str]) -> str:
    """An ACL file line (``user NAME on >PASSWORD RULES...``)."""
    return " ".join(["user", user, "on", f">{password}", *rules])
