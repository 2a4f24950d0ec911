"""A local HTTP receiver standing in for Slack, a webhook or PagerDuty: it records every POST
by its path and answers with the status it is told to. The demo points ``rollguard notify``
at one to show the Slack messages of an episode; the notifier's end-to-end test makes one
refuse some requests.

It serves from a thread of its own (stdlib :mod:`http.server`), so a caller that blocks its
event loop, waiting for its child processes to exit say, still lets a notifier deliver.

>>> import urllib.request
>>> with receiving(Receiver()) as (receiver, base):
...     post = urllib.request.Request(f"{base}/slack", data=b'{"text": "hi"}')
...     with urllib.request.urlopen(post) as reply:
...         reply.status, receiver.bodies("slack")
(200, [{'text': 'hi'}])
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

Answer = Callable[[str, int], int]
"""The status to answer the ``n``-th request (from 1) on a path (without its slashes)."""
Captured = tuple[dict[str, str], bytes]  # a request's headers and body


def accept_all(path: str, n: int) -> int:
    return 200


class Receiver:
    """What was posted, by path: ``got`` the accepted requests, ``refused`` and ``calls``
    counts. ``on_post(path, body)`` is called (from the server's thread) for each accepted
    one."""

    def __init__(self, answer: Answer = accept_all,
                 on_post: Callable[[str, bytes], None] | None = None) -> None:
        self.answer, self.on_post = answer, on_post
        self.got: dict[str, list[Captured]] = {}
        self.refused: dict[str, int] = {}
        self.calls: dict[str, int] = {}
        self._lock = threading.Lock()

    def take(self, path: str, headers: dict[str, str], body: bytes) -> int:
        """Record one request; the status to answer it with."""
        with self._lock:
            self.calls[path] = self.calls.get(path, 0) + 1
            status = self.answer(path, self.calls[path])
            if status >= 300:
                self.refused[path] = self.refused.get(path, 0) + 1
            else:
                self.got.setdefault(path, []).append((headers, body))
        if status < 300 and self.on_post is not None:
            self.on_post(path, body)
        return status

    def bodies(self, path: str) -> list[Any]:
        """The accepted bodies posted to ``path``, decoded from JSON, in arrival order."""
        with self._lock:
            captured = list(self.got.get(path, []))
        return [orjson.loads(body) for _, body in captured]


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status = receiver.take(self.path.strip("/"), dict(self.headers.items()), body)
            text = b"ok" if status < 300 else b"refused on purpose"
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            self.wfile.write(text)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the demo's view, not stderr, shows what arrived."""

    return Handler


@contextlib.contextmanager
def receiving(receiver: Receiver, host: str = "127.0.0.1") -> Iterator[tuple[Receiver, str]]:
    """``receiver`` served on a free port of ``host``: yields it and its base URL."""
    server = ThreadingHTTPServer((host, 0), _handler(receiver))
    thread = threading.Thread(target=server.serve_forever, name="receiver", daemon=True)
    thread.start()
    try:
        yield receiver, f"http://{host}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
