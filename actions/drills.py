"""A drill service's record of its drills, in Redis (``rollguard drill``, rollguard/drill/):
how many were run, where the last one's events end in event time (the next one's begin
after, or the worker would count them as too late), and how the last one went.

One hash per drill service (:attr:`rollguard.actions.keys.ServiceKeys.drill`); only drill
services have one (:func:`rollguard.detectors.names.is_drill`).

>>> DrillRecord.from_fields({b"number": b"3", b"events_until": b"1790000000.5"}).number
3
>>> DrillRecord(number=3, last_result="passed").fields()["last_result"]
'passed'
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from rollguard.actions.connect import PERMISSION_ERRORS, TRANSIENT_ERRORS, AsyncClient, unavailable
from rollguard.actions.keys import ServiceKeys, namespace
from rollguard.base.errors import ConfigError
from rollguard.detectors.names import DRILL_PREFIX, is_drill


@dataclass(frozen=True)
class DrillRecord:
    """What the hash holds (zeros and "" before the first drill)."""

    number: int = 0  # drills started so far
    events_until: float = 0.0  # event time of the last drill's last event
    last_run_at: float = 0.0  # wall clock, when the last drill ended
    last_success_at: float = 0.0  # wall clock, when the last drill that passed ended
    last_result: str = ""  # "passed", or "failed at HOP: why"

    @classmethod
    def from_fields(cls, raw: dict[Any, Any]) -> DrillRecord:
        text = {(k.decode() if isinstance(k, bytes) else str(k)):
                (v.decode() if isinstance(v, bytes) else str(v)) for k, v in raw.items()}
        values: dict[str, Any] = {}
        for field in fields(cls):
            if field.name in text:
                kind = {"int": int, "float": float}.get(str(field.type), str)
                values[field.name] = kind(text[field.name])
        return cls(**values)

    def fields(self) -> dict[str, str]:
        return {k: str(v) for k, v in asdict(self).items()}


# KEYS[1] - the drill service's claim (STRING)
# ARGV[1] - the token of the drill that claimed it
# return 1 if it was that drill's and is now released, otherwise 0
LUA_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


class DrillRecords:
    """Read and write the drill records of a namespace; one drill of a service at a time."""

    def __init__(self, client: AsyncClient, prefix: str | None = None) -> None:
        self.client = client
        self.prefix = namespace(prefix)
        self._release = client.register_script(LUA_RELEASE)

    def _keys(self, service: str) -> ServiceKeys:
        if not is_drill(service):
            raise ConfigError(f"{service!r} is no drill service: its name must start with "
                              f"{DRILL_PREFIX!r}")
        return ServiceKeys.of(service, self.prefix)

    def _key(self, service: str) -> str:
        return self._keys(service).drill

    async def claim(self, service: str, token: str, ttl_s: float) -> bool:
        """Claim ``service`` for one drill (until :meth:`release`, or ``ttl_s`` if the
        drill dies); False when another drill holds it."""
        key = self._keys(service).drill_claim
        try:
            return bool(await self.client.set(key, token, nx=True, px=int(ttl_s * 1000)))
        except (*TRANSIENT_ERRORS, *PERMISSION_ERRORS) as exc:
            raise unavailable(exc) from exc

    async def release(self, service: str, token: str) -> None:
        key = self._keys(service).drill_claim
        try:
            await self._release(keys=[key], args=[token])
        except (*TRANSIENT_ERRORS, *PERMISSION_ERRORS) as exc:
            raise unavailable(exc) from exc

    async def read(self, service: str) -> DrillRecord:
        key = self._key(service)
        try:
            raw = await self.client.hgetall(key)
        except (*TRANSIENT_ERRORS, *PERMISSION_ERRORS) as exc:
            raise unavailable(exc) from exc
        return DrillRecord.from_fields(raw)

    async def write(self, service: str, record: DrillRecord) -> None:
        key = self._key(service)
        try:
            await self.client.hset(key, items=[x for pair in record.fields().items() for x in pair])
        except (*TRANSIENT_ERRORS, *PERMISSION_ERRORS) as exc:
            raise unavailable(exc) from exc
