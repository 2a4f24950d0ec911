"""The version pointer store: releases, atomic pointer commands and their audit history."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from importlib import resources
from typing import Any, ClassVar, TypeVar

import orjson
from redis.commands.core import AsyncScript

from rollguard.actions.admitted import Admitted
from rollguard.actions.commands import Command, Op, new_command, sign, sign_as
from rollguard.actions.connect import (
    PERMISSION_ERRORS,
    TRANSIENT_ERRORS,
    AsyncClient,
    AsyncRedisCluster,
    database_of,
    describe,
    unavailable,
)
from rollguard.actions.keys import ServiceKeys, namespace
from rollguard.actions.operators import OperatorKey, OperatorRegistry, Signatures
from rollguard.actions.plan import plan
from rollguard.actions.planned import Change, Plan, Refusal
from rollguard.actions.receipt import held_too_long
from rollguard.actions.releases import Release, new_release
from rollguard.actions.rollout import ramp_guard
from rollguard.actions.script import (
    Outcome,
    history_entry,
    outcome_of,
    request_digest,
    script_args,
)
from rollguard.actions.state import PointerState, decode
from rollguard.base.errors import (
    ReleaseConflict,
    ServiceUnavailable,
    UnknownRelease,
    UnknownService,
)

__all__ = ["Admitted", "Outcome", "PointerState", "PointerStore", "decoded_release"]

T = TypeVar("T")

# Commands without an expected epoch re-plan when another flip lands first; after this many
# losses in a row the last attempt becomes a compare-and-set and is reported as a conflict.
MAX_ATTEMPTS = 20
# Keys per MGET when the worker renews the pointers it holds (PointerStore.read_many).
MGET_CHUNK = 500

# Decoded releases by their exact stored bytes. Every command reads all releases of its service
# (they only accumulate), and decoding each one (JSON, name and component checks) on every
# command grew with the service's history; a release never changes, so its bytes can key it.
RELEASES_CACHED = 4096
_releases: dict[bytes | str, Release] = {}

def _lua(name: str) -> str:
    return resources.files("rollguard.actions").joinpath(f"lua/{name}").read_text(encoding="utf-8")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def decoded_release(raw: bytes | str) -> Release:
    """The release stored as ``raw``, decoded once per process (the table empties when full)."""
    release = _releases.get(raw)
    if release is None:
        release = Release.from_json(raw)
        if len(_releases) >= RELEASES_CACHED:
            _releases.clear()
        _releases[raw] = release
    return release


class PointerStore:
    """Releases, the pointer and its history for every service, in one Redis.

    Parameters
    ----------
    client
        An asyncio Redis client; the store never closes it.
    secret
        The deployment secret: rules' commands are signed with it, and operators' keys are
        derived from it (actions/operators.py).
    prefix
        The namespace of keys and channels; None: ``ROLLGUARD_NAMESPACE`` (``rollguard``).
    operator
        An operator's own key (the CLI of a person who holds no deployment secret): it
        signs what :meth:`issue` issues, and checks that operator's commands.
    """

    lua_apply: ClassVar[AsyncScript | None] = None
    lua_register: ClassVar[AsyncScript | None] = None

    def __init__(self, client: AsyncClient, secret: bytes, prefix: str | None = None,
                 operator: OperatorKey | None = None) -> None:
        if not secret:
            raise ValueError("PointerStore needs a non-empty secret")
        self.client = client
        self.secret = secret
        self.prefix = namespace(prefix)
        self.operator = operator
        self.signatures = Signatures(secret, OperatorRegistry(client, self.prefix), operator)
        # Pub/sub ignores database numbers: the changes channel names ours (actions/keys.py).
        self.db = database_of(client)
        self._register_scripts(client)

    @classmethod
    def _register_scripts(cls, client: AsyncClient) -> None:
        # Registered once; each call passes its own client, and EVALSHA reloads on NOSCRIPT.
        if cls.lua_apply is None:
            cls.lua_apply = client.register_script(_lua("apply.lua"))
        if cls.lua_register is None:
            cls.lua_register = client.register_script(_lua("register.lua"))

    def keys(self, service: str) -> ServiceKeys:
        return ServiceKeys.of(service, self.prefix, self.db)

    @property
    def address(self) -> str:
        return describe(self.client)

    async def _io(self, work: Callable[[], Awaitable[T]]) -> T:
        # One more try after a connection error: a pooled connection may predate a server
        # restart. Every call here is safe to repeat (reads, HSETNX, the idempotent script).
        for attempt in (1, 2):
            try:
                return await work()
            except (*TRANSIENT_ERRORS, *PERMISSION_ERRORS) as exc:
                failure = unavailable(exc, self.address)
                if attempt == 2 or not isinstance(failure, ServiceUnavailable):
                    raise failure from exc
        raise AssertionError("unreachable")

    # -- releases -------------------------------------------------------------------------

    async def register_release(
        self, service: str, release_name: str, components: Mapping[str, str]
    ) -> Release:
        """Register an immutable release; the same contents again is fine, others are refused."""
        keys = self.keys(service)
        release = new_release(release_name, components)
        assert self.lua_register is not None
        script = self.lua_register
        result = await self._io(
            lambda: script(
                keys=[keys.releases, keys.release_order],
                args=[release.name, release.to_json(), time.time()],
                client=self.client,
            )
        )
        if int(result) < 0:
            existing = await self.release(service, release_name)
            raise ReleaseConflict(
                f"{service}: release {release_name!r} is already registered with other contents"
                f" ({_components(existing.components)}); releases are immutable, pick a new name"
            )
        return release

    async def release(self, service: str, name: str) -> Release:
        """One release; UnknownRelease if it is not registered."""
        keys = self.keys(service)
        raw = await self._io(lambda: self.client.hget(keys.releases, name))
        if raw is None:
            raise UnknownRelease(f"{service} has no release {name!r}")
        return Release.from_json(raw)

    async def releases(self, service: str) -> list[tuple[Release, float]]:
        """Every release of ``service`` with its registration time, oldest first."""
        keys = self.keys(service)

        async def fetch() -> list[Any]:
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.hgetall(keys.releases)
                pipe.zrange(keys.release_order, 0, -1, withscores=True)
                return await pipe.execute()

        contents, order = await self._io(fetch)
        found = {_text(k): Release.from_json(v) for k, v in contents.items()}
        return [(found[_text(n)], float(t)) for n, t in order if _text(n) in found]

    # -- the pointer ----------------------------------------------------------------------

    async def read(self, service: str) -> PointerState:
        """The current pointer; UnknownService if the service has none."""
        keys = self.keys(service)
        raw = await self._io(lambda: self.client.get(keys.pointer))
        if raw is None:
            raise UnknownService(f"{service} has no version pointer (no release promoted yet)")
        return decode(raw)

    async def read_many(self, services: list[str]) -> dict[str, PointerState | None]:
        """The pointers of ``services`` in one round trip (None: the service has none)."""
        keys = [self.keys(service).pointer for service in services]

        async def fetch() -> list[Any]:
            if isinstance(self.client, AsyncRedisCluster):
                # One MGET per hash slot (each service has its own), pipelined per node.
                return await self.client.mget_nonatomic(keys)
            # MGET in chunks: one reply to parse per chunk, where a GET per key cost about
            # 4 % of the worker's CPU with 1,000 services refreshed every second.
            async with self.client.pipeline(transaction=False) as pipe:
                for first in range(0, len(keys), MGET_CHUNK):
                    pipe.mget(keys[first:first + MGET_CHUNK])
                replies = await pipe.execute()
            return [raw for reply in replies for raw in reply]

        found = await self._io(fetch)
        return {service: None if raw is None else decode(raw)
                for service, raw in zip(services, found, strict=True)}

    async def _snapshot(self, keys: ServiceKeys) -> tuple[PointerState | None, dict[str, Release]]:
        async def fetch() -> list[Any]:
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.get(keys.pointer)
                pipe.hgetall(keys.releases)
                return await pipe.execute()

        raw, contents = await self._io(fetch)
        state = None if raw is None else decode(raw)
        # Releases are immutable and only ever added, so reading them outside the script is safe.
        return state, {_text(k): decoded_release(v) for k, v in contents.items()}

    async def issue(self, service: str, op: Op, issued_by: str, now: float | None = None,
                    **fields: Any) -> Outcome:
        """Sign a new command with this store's operator key (else its secret) and execute
        it: what an operator does.

        ``fields`` are :class:`Command` fields (``release``, ``percent``, ``reason``, ...).
        """
        at = time.time() if now is None else now
        command = new_command(service, op, issued_by, at, **fields)
        if self.operator is not None:
            signed = sign_as(command, self.operator.name, self.operator.key)
        else:
            signed = sign(command, self.secret)
        return await self.execute(signed, at)

    async def admit(self, command: Command, now: float,
                    received_at: float | None = None) -> Admitted | Outcome:
        """``command`` admitted if it is current and signed with this store's secret or by
        its ``signer``, a registered operator, with their current key (which ``issued_by``
        must name); else its refusal, recorded in the service's history (when it exists).

        The one place a command's signature and expiry are checked, once per command:
        :meth:`apply` takes what it admitted, :meth:`execute` does both, and the actuator
        admits a command before it keeps it for approval or applies it. ``received_at``
        (default ``now``) is when the command was received (:mod:`rollguard.actions.receipt`): a
        command received before its expiry stays valid while it waits for Redis, however
        long (up to :data:`~rollguard.actions.receipt.MAX_HOLD_S`).
        """
        checked_at = now if received_at is None else min(received_at, now)
        problem = (await self.signatures.refusal(command, checked_at)
                   or held_too_long(checked_at, now))
        if problem is None:
            return Admitted(command, received_at)
        keys = self.keys(command.service)
        return await self._run(keys, command, now, "refuse", 0, Refusal(*problem),
                               received_at=received_at)

    async def record_refusal(self, service: str, code: str, message: str, now: float,
                             entry: Mapping[str, str]) -> Outcome:
        """Record a refusal of something that is not a readable command (a malformed one,
        a bad approval) in ``service``'s history (when the service exists)."""
        keys = self.keys(service)
        fields = [str(v) for pair in ({"at": repr(now), **entry}).items() for v in pair]
        args = script_args("refuse", 0, None, None, fields, Refusal(code, message), None,
                            keys, now, "")
        result = await self._apply(keys, "", "", args)
        return outcome_of(result, entry.get("command_id", ""), service, None)

    async def execute(self, command: Command, now: float,
                      received_at: float | None = None) -> Outcome:
        """:meth:`admit` ``command``, then :meth:`apply` it; its refusal if not admitted."""
        admitted = await self.admit(command, now, received_at)
        if isinstance(admitted, Outcome):
            return admitted
        return await self.apply(admitted, now)

    async def apply(self, admitted: Admitted, now: float) -> Outcome:
        """Plan and apply an admitted command in one atomic step; never partially applied.

        Every outcome, refusals included, is appended to the service's history (when the
        service exists). A command id runs once: a second time it is refused as ``replayed``,
        as is an idempotency key already used for another request. A command carried out
        late (see :meth:`admit`'s ``received_at``) says so in its history entry.
        """
        command, received_at = admitted.command, admitted.received_at
        keys = self.keys(command.service)
        for attempt in range(MAX_ATTEMPTS):
            state, releases = await self._snapshot(keys)
            planned = plan(state, command, releases, now)
            epoch = 0 if state is None else state.epoch
            last = attempt == MAX_ATTEMPTS - 1
            outcome = await self._run(keys, command, now, "plan", epoch, planned, strict=last,
                                      received_at=received_at)
            if outcome is not None:
                return outcome
        raise AssertionError("unreachable: the last attempt is a compare-and-set")

    async def _run(self, keys: ServiceKeys, command: Command, now: float, mode: str,
                   epoch: int, planned: Plan, strict: bool = False,
                   received_at: float | None = None) -> Any:
        expected = command.expected_epoch
        if strict and expected is None:
            expected = epoch
        change = planned if isinstance(planned, Change) else None
        request = request_digest(command)
        idem = {"command_id": command.command_id, "epoch": epoch + (1 if change else 0),
                "request": request}
        args = script_args(mode, epoch, expected, change, history_entry(command, now, received_at),
                           planned, idem, keys, now, request,
                           ramp_guard(command) if mode == "plan" else None)
        result = await self._apply(keys, command.idempotency_key, command.command_id, args)
        if _text(result[0]) == "retry":
            return None
        return outcome_of(result, command.command_id, command.service,
                        change.state if change is not None else None)

    async def _apply(self, keys: ServiceKeys, idempotency_key: str, command_id: str,
                     args: list[bytes | str | int | float]) -> Any:
        script = self.lua_apply
        assert script is not None
        return await self._io(
            lambda: script(
                keys=[keys.pointer, keys.history, keys.idempotency(idempotency_key),
                      keys.releases, keys.release_order, keys.spent(command_id)],
                args=args,
                client=self.client,
            )
        )

    # -- history --------------------------------------------------------------------------

    async def history(self, service: str, count: int = 100) -> list[dict[str, Any]]:
        """The last ``count`` history entries of ``service``, oldest first."""
        keys = self.keys(service)
        rows = await self._io(lambda: self.client.xrevrange(keys.history, count=count))
        return [_history_entry(entry_id, fields or {}) for entry_id, fields in reversed(rows or [])]


def _components(components: Mapping[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in components.items())


def _history_entry(entry_id: Any, fields: Mapping[Any, Any]) -> dict[str, Any]:
    data: dict[str, Any] = {_text(k): _text(v) for k, v in fields.items()}
    data["id"] = _text(entry_id)
    for name in ("epoch_before", "epoch_after"):
        if name in data:
            data[name] = int(data[name])
    if "at" in data:
        data["at"] = float(data["at"])
    if "command" in data:
        data["command"] = orjson.loads(data["command"])
    return data
