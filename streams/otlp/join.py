"""The evaluator join: an evaluation result made by another process finds the service,
release and time of the output it judged, by that output's span id or ``gen_ai.response.id``.

Pure and bounded: time is passed in (any clock that does not go back); an output is
remembered for ``remember_s`` (default ``window_s``; the worker's: the policy's
``evaluation_lateness_seconds``, as long as a judge's result may come after its output
and still count) and at most ``max_entries`` keys are (the oldest forgotten first); an
evaluation that arrives before its output is held, under each of its keys, for
``window_s`` and at most ``max_held`` of them (the oldest let go first). What is let go
comes back from :meth:`Join.hold` or :meth:`Join.expire` for the caller to dead-letter.

>>> join: Join[str] = Join(window_s=60, max_entries=10, max_held=10)
>>> join.hold(("s1",), "eval-a", now=0.0)
[]
>>> join.remember(("s1", "r:resp-1"), Output("chat", "v2", None, 1.5), now=1.0)
['eval-a']
>>> join.lookup(("r:resp-1",))
Output(service='chat', release='v2', cohort=None, ts=1.5)
>>> join.hold(("s9",), "eval-b", now=2.0), join.expire(now=62.5), join.lookup(("s1",))
([], ['eval-b'], None)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Output:
    """An evaluated output: its service, release, cohort and event time (unix seconds)."""

    service: str
    release: str
    cohort: Any
    ts: float


class _Held(Generic[T]):
    __slots__ = ("done", "item", "keys")

    def __init__(self, item: T, keys: tuple[str, ...]) -> None:
        self.item = item
        self.keys = keys
        self.done = False


class Join(Generic[T]):
    """Outputs by key, and the evaluations waiting for theirs; see the module docstring."""

    def __init__(self, window_s: float = 300.0, max_entries: int = 200_000,
                 max_held: int = 20_000, remember_s: float | None = None) -> None:
        self.window_s = window_s
        self.remember_s = window_s if remember_s is None else remember_s
        self.max_entries = max_entries
        self.max_held = max_held
        self._outputs: dict[str, Output] = {}
        self._seen: deque[tuple[float, str, Output]] = deque()
        self._waiting: dict[str, list[_Held[T]]] = {}
        self._held: deque[tuple[float, _Held[T]]] = deque()
        self.held = 0  # evaluations waiting now
        self.forgotten = 0  # outputs forgotten early, over max_entries

    def __len__(self) -> int:
        return len(self._outputs)

    def lookup(self, keys: Iterable[str]) -> Output | None:
        """The output remembered under the first of ``keys`` that has one."""
        outputs = self._outputs
        for key in keys:
            found = outputs.get(key)
            if found is not None:
                return found
        return None

    def remember(self, keys: Iterable[str], output: Output, now: float) -> list[T]:
        """Remember ``output`` under ``keys``; the held evaluations it resolves, once each."""
        released: list[T] = []
        for key in keys:
            self._outputs[key] = output
            self._seen.append((now, key, output))
            waiting = self._waiting.pop(key, None) if self._waiting else None
            for held in waiting or ():
                if not held.done:
                    held.done = True
                    self.held -= 1
                    released.append(held.item)
        self._forget(now)
        return released

    def hold(self, keys: tuple[str, ...], item: T, now: float) -> list[T]:
        """Hold ``item`` until one of ``keys`` is remembered; the held evaluations let go
        to stay within ``max_held`` (the oldest first)."""
        while self._held and self._held[0][1].done:  # resolved already: nothing to let go
            self._let_go_oldest()
        held = _Held(item, keys)
        for key in keys:
            self._waiting.setdefault(key, []).append(held)
        self._held.append((now, held))
        self.held += 1
        let_go: list[T] = []
        while self.held > self.max_held:
            let_go += self._let_go_oldest()
        return let_go

    def expire(self, now: float) -> list[T]:
        """Forget outputs remembered too long; the held evaluations whose window passed."""
        self._forget(now)
        let_go: list[T] = []
        cutoff = now - self.window_s
        while self._held and self._held[0][0] < cutoff:
            let_go += self._let_go_oldest()
        return let_go

    def drop_held(self) -> int:
        """Forget every held evaluation (their messages are read again after a rebalance),
        keeping the outputs; how many were held."""
        dropped = self.held
        self._waiting.clear()
        self._held.clear()
        self.held = 0
        return dropped

    def let_go_oldest(self) -> list[T]:
        """Let the oldest held evaluation go now (none: nothing held), to bound what waits."""
        while self._held:
            let_go = self._let_go_oldest()
            if let_go:
                return let_go
        return []

    def _let_go_oldest(self) -> list[T]:
        _at, held = self._held.popleft()
        for key in held.keys:
            waiting = self._waiting.get(key)
            if waiting is not None:
                waiting[:] = [other for other in waiting if other is not held]
                if not waiting:
                    del self._waiting[key]
        if held.done:
            return []
        held.done = True
        self.held -= 1
        return [held.item]

    def _forget(self, now: float) -> None:
        seen, outputs = self._seen, self._outputs
        cutoff = now - self.remember_s
        while seen and (seen[0][0] < cutoff or len(seen) > self.max_entries):
            at, key, output = seen.popleft()
            if outputs.get(key) is output:  # not remembered again since
                del outputs[key]
                if at >= cutoff:
                    self.forgotten += 1
