"""The small HTTP servers of the local stack (the signer's API, the chat page): a request
handler that logs request lines only, at debug, and a threaded server on 127.0.0.1 whose
handler errors go to the log.

The one reason that matters: requests carry bearer tokens, so no header is ever logged.
"""

from __future__ import annotations

import errno
import logging
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from iotauth.local import PortInUse

__all__ = ["LoggingHTTPServer", "QuietHandler", "close_http", "serve_http"]

log = logging.getLogger("iotauth.local")


class QuietHandler(BaseHTTPRequestHandler):
    server_version = "iotauth-local"

    def version_string(self) -> str:
        return self.server_version

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        # Request lines only (no headers: they hold bearer tokens).
        log.debug("%s %s", self.address_string(), format % args)

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str = "application/json",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


class LoggingHTTPServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # socketserver prints tracebacks to stderr; they belong in the log (no request data).
        log.warning("HTTP handler error", exc_info=True)


def serve_http(handler: type[QuietHandler], port: int, flag: str) -> ThreadingHTTPServer:
    try:
        server = LoggingHTTPServer(("127.0.0.1", port), handler)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise PortInUse(f"port {port} ({flag}) is already in use") from None
        raise
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name=f"iotauth-{flag}", daemon=True).start()
    return server


def close_http(server: ThreadingHTTPServer) -> None:
    server.shutdown()
    server.server_close()
