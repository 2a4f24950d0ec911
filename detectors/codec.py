"""The versioned byte format of a service monitor's state (Faust table values).

Layout: ``b"RGSM"``, one version byte, then zlib-compressed JSON. The open bucket is kept
as the metrics of its events (summed when it closes, as without a round trip). Histograms
(``{bin: weight}`` with integer keys) are stored as ``[[bin, weight], ...]`` in insertion
order and the dedupe memory as packed 32-bit integers, so a round trip rebuilds the state
exactly, float for float, and later decisions are the same. Nothing of River (or any
pickle) is stored.
"""

from __future__ import annotations

import base64
import zlib
from array import array
from typing import Any

import orjson

from rollguard.errors import StateError

MAGIC = b"RGSM"
VERSION = 1


def _hists_out(buckets: dict[str, dict[str, list[Any]]]) -> dict[str, dict[str, list[Any]]]:
    return {
        release: {name: [e[0], list(e[1].items()), *e[2:]] if type(e[1]) is dict else e
                  for name, e in sums.items()}
        for release, sums in buckets.items()
    }


def _hists_in(buckets: dict[str, dict[str, list[Any]]]) -> dict[str, dict[str, list[Any]]]:
    return {
        release: {name: [e[0], {int(b): w for b, w in e[1]}, *e[2:]] if type(e[1]) is list
                  else e for name, e in sums.items()}
        for release, sums in buckets.items()
    }


def encode_state(state: dict[str, Any]) -> bytes:
    """Serialise a monitor's plain state (see ``ServiceMonitor.to_bytes``)."""
    plain = dict(state)
    plain["refs"] = _hists_out(state["refs"])
    plain["seen"] = base64.b64encode(array("I", state["seen"]).tobytes()).decode()
    return MAGIC + bytes([VERSION]) + zlib.compress(orjson.dumps(plain), 6)


def decode_state(data: bytes) -> dict[str, Any]:
    """Read bytes written by :func:`encode_state`.

    >>> decode_state(b"RGSM\\x07...")
    Traceback (most recent call last):
    ...
    rollguard.errors.StateError: monitor state version 7 is not readable by this rollguard (reads 1)
    """
    if len(data) < 5 or data[:4] != MAGIC:
        raise StateError("not a rollguard monitor state (bad magic bytes)")
    if data[4] != VERSION:
        raise StateError(f"monitor state version {data[4]} is not readable by this rollguard "
                         f"(reads {VERSION})")
    try:
        plain: dict[str, Any] = orjson.loads(zlib.decompress(data[5:]))
        plain["refs"] = _hists_in(plain["refs"])
        seen = array("I")
        seen.frombytes(base64.b64decode(plain["seen"]))
        plain["seen"] = seen.tolist()
    except (zlib.error, orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise StateError(f"monitor state is corrupt: {exc}") from exc
    return plain
