"""The versioned byte format of a service monitor's state (Faust table values).

Layout: ``b"RGSM"``, one version byte, the length of the body (4 bytes), the body
(zlib-compressed JSON). The dedupe memory is in the body as ``"dedupe": [[bucket, [id,
...]], ...]``, the ids themselves, oldest bucket first (version 2; version 1 appended CRC-32s
of the ids after the body, still read, see :func:`decode_state`). Version 3 adds a
candidate's staged rollback in progress, its count of restored ones, its per-cohort tracks
and the metrics its last inconclusive notice named (the candidate's list gains four items;
a version 2 candidate's noticed metrics are read from its per-metric alert flags), and
``"strata"``: the cohorts tracked, the stable release's reference per cohort and the open
bucket's sums per (release, cohort), the keys as a list beside a dict by index
(detectors/strata.py). Older states read as having none of these: no staged rollback in
progress, and cohorts counted from the next event on. The open bucket is kept as exact
partial sums (``accumulate.carry``), so when it closes its sums are the same as without a
round trip. Version 4 adds ``"weather"``, the stable release against its history per
metric (detectors/weather.py), ``"stable_seen"`` (the last bucket the stable served in),
``"ahead"`` (events parked far ahead of the service, detectors/ahead.py) and a candidate's
rollbacks waiting for the fleet (detectors/hold.py); older states read as having none.
Version 5 is version 4 with ``"evaluations"``: the state of the service's evaluation lane
(detectors/lanes.py), itself a version 4 state, base64-encoded; a state without a lane is
still written as version 4. Histograms (``{bin: weight}`` with integer keys) are
stored as ``{"bins": [[bin, weight], ...]}`` in insertion order, so a round trip rebuilds
the state exactly, float for float, and later decisions are the same. Nothing of River (or
any pickle) is stored.
"""

from __future__ import annotations

import zlib
from typing import Any

import orjson

from rollguard.detectors.errors import StateError

MAGIC = b"RGSM"
VERSION = 4
LANES_VERSION = 5  # a state with an evaluation lane (detectors.lanes)
_READABLE = (1, 2, 3, 4, 5)


def _entry_out(e: list[Any]) -> list[Any]:
    return [e[0], {"bins": list(e[1].items())}, *e[2:]] if type(e[1]) is dict else e


def _entry_in(e: list[Any]) -> list[Any]:
    return [e[0], {int(b): w for b, w in e[1]["bins"]}, *e[2:]] if type(e[1]) is dict else e


def _hists_out(buckets: dict[str, dict[str, list[Any]]]) -> dict[str, dict[str, list[Any]]]:
    return {release: {name: _entry_out(e) for name, e in sums.items()}
            for release, sums in buckets.items()}


def _hists_in(buckets: dict[str, dict[str, list[Any]]]) -> dict[str, dict[str, list[Any]]]:
    return {release: {name: _entry_in(e) for name, e in sums.items()}
            for release, sums in buckets.items()}


def _weather(plain: dict[str, list[Any]], how: Any) -> dict[str, list[Any]]:
    # detectors.weather: {metric: [cusum, [[bucket, entry, llr], ...], storm]}
    return {name: [w[0], [[b, how(e), llr] for b, e, llr in w[1]], *w[2:]]
            for name, w in plain.items()}


def encode_state(state: dict[str, Any]) -> bytes:
    """Serialise a monitor's plain state (see ``ServiceMonitor.to_bytes``)."""
    plain = dict(state)
    plain["refs"] = _hists_out(state["refs"])
    plain["carried"] = _hists_out(state["carried"])
    if state.get("strata"):
        strata = plain["strata"] = dict(state["strata"])
        strata["refs"] = _hists_out(strata["refs"])
        strata["carried"] = _hists_out(strata["carried"])
    if state.get("weather"):
        plain["weather"] = _weather(state["weather"], _entry_out)
    # Level 1: a checkpoint writes every changed service; level 6 took twice the CPU for
    # 6 % fewer bytes (measured on the fleet benchmark's states).
    body = zlib.compress(orjson.dumps(plain), 1)
    version = LANES_VERSION if state.get("evaluations") else VERSION
    return MAGIC + bytes([version]) + len(body).to_bytes(4, "big") + body


def _dedupe_in(raw: Any) -> list[tuple[int, list[str]]]:
    filed = []
    for bucket, ids in raw:
        if type(bucket) is not int or type(ids) is not list or not set(map(type, ids)) <= {str}:
            raise ValueError("the dedupe memory is not [[bucket, [id, ...]], ...]")
        filed.append((bucket, ids))
    return filed


def decode_state(data: bytes) -> dict[str, Any]:
    """Read bytes written by :func:`encode_state`.

    >>> decode_state(b"RGSM\\x07...")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    rollguard.detectors.errors.StateError: monitor state version 7 is not readable ... (reads 1, 2, 3, 4, 5)

    A version 1 state comes back with an empty dedupe memory: it held CRC-32s of the ids,
    which cannot be turned back into ids (nor compared with them), so duplicates of events
    seen before the upgrade are not recognised (once, for at most the lateness bound).
    """
    if len(data) < 5 or data[:4] != MAGIC:
        raise StateError("not a rollguard monitor state (bad magic bytes)")
    if data[4] not in _READABLE:
        raise StateError(f"monitor state version {data[4]} is not readable by this rollguard "
                         f"(reads {', '.join(map(str, _READABLE))})")
    try:
        size = int.from_bytes(data[5:9], "big")
        plain: dict[str, Any] = orjson.loads(zlib.decompress(data[9:9 + size]))
        plain["refs"] = _hists_in(plain["refs"])
        plain["carried"] = _hists_in(plain["carried"])
        if plain.get("strata"):
            plain["strata"]["refs"] = _hists_in(plain["strata"]["refs"])
            plain["strata"]["carried"] = _hists_in(plain["strata"]["carried"])
        if plain.get("weather"):
            plain["weather"] = _weather(plain["weather"], _entry_in)
        # Version 1: the CRC-32s after the body are dropped (see above).
        plain["dedupe"] = _dedupe_in(plain["dedupe"]) if data[4] >= 2 else []
    except (zlib.error, orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise StateError(f"monitor state is corrupt: {exc}") from exc
    return plain
