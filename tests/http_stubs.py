"""A scripted HTTP server on 127.0.0.1 (a free port) for fault tests: each request gets the
next scripted answer (the last one repeats), or a callable that misbehaves as it likes."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

__all__ = ["Answer", "Scripted", "Start", "scripted"]

Answer = tuple[int, dict[str, str], bytes]


class Scripted(http.server.BaseHTTPRequestHandler):
    """Answers each request with the next scripted answer (the last one repeats)."""

    protocol_version = "HTTP/1.1"
    script: list[Answer | Callable[[Scripted], None]]
    requests: list[dict[str, str]]

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.requests.append(dict(self.headers.items()))
        step = self.script[min(len(self.requests), len(self.script)) - 1]
        if callable(step):
            step(self)
            return
        status, headers, body = step
        self.send_response(status)
        for name, value in {"Content-Length": str(len(body)), **headers}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST

    def log_message(self, format: str, *args: Any) -> None:
        pass


Start = Callable[..., tuple[str, list[dict[str, str]]]]


@pytest.fixture
def scripted() -> Iterator[Start]:
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(*script: Answer | Callable[[Scripted], None]) -> tuple[str, list[dict[str, str]]]:
        requests: list[dict[str, str]] = []
        handler = type("Scripted", (Scripted,), {"script": list(script), "requests": requests})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}", requests

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()
