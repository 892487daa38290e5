"""The chat page on 127.0.0.1: the files of ``web/``, ``/config.json`` (the stack's URLs and
the dev tokens) and ``/vendor/mqtt.min.js`` (from ``web/node_modules``).

Main entry: :func:`serve_web_page`. The one reason that matters: ``/config.json`` holds the dev
tokens, so it is served only to the page's own origin and never with CORS headers.
"""

from __future__ import annotations

import json
import mimetypes
from http import HTTPStatus
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar, Protocol
from urllib.parse import urlsplit

from iotauth.local.http_servers import QuietHandler, serve_http
from iotauth.local.stack_info import StackInfo

__all__ = ["PageSite", "WebPage", "serve_web_page"]


class PageSite(Protocol):
    """What the page needs from the stack: where ``web/`` is, its origins, its info."""

    @property
    def web_root(self) -> Path: ...

    @property
    def allowed_origins(self) -> frozenset[str]: ...

    @property
    def info(self) -> StackInfo: ...


class WebPage(QuietHandler):
    """The chat page: files of ``web/``, ``/config.json`` and ``/vendor/mqtt.min.js``."""

    stack: ClassVar[PageSite]
    _STATIC: ClassVar[frozenset[str]] = frozenset(
        {".html", ".js", ".css", ".png", ".svg", ".ico", ".webmanifest"}
    )

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        path = urlsplit(self.path).path
        no_store = {"Cache-Control": "no-store"}
        if path == "/config.json":
            # It holds the dev tokens: only for the page itself, asked for by its own origin
            # (a DNS-rebinding page on another name gets nothing); no CORS headers, ever.
            if not self._own_origin():
                self._send(HTTPStatus.FORBIDDEN, b"forbidden\n", "text/plain; charset=utf-8")
                return
            body = json.dumps(self.stack.info.config, indent=2).encode()
            self._send(HTTPStatus.OK, body, headers=no_store)
            return
        root = self.stack.web_root
        if path == "/vendor/mqtt.min.js":
            file = root / "node_modules" / "mqtt" / "dist" / "mqtt.min.js"
            if not file.is_file():
                text = b"mqtt.js is not installed: run `make web-deps` (npm ci in web/)\n"
                self._send(HTTPStatus.NOT_FOUND, text, "text/plain; charset=utf-8")
                return
        else:
            relative = "index.html" if path in ("", "/") else path.lstrip("/")
            file = (root / relative).resolve()
            parts = Path(relative).parts
            if (
                not file.is_relative_to(root.resolve())
                or any(p.startswith(".") or p == "node_modules" for p in parts)
                or file.suffix not in self._STATIC
                or not file.is_file()
            ):
                self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain; charset=utf-8")
                return
        content_type = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        if content_type.startswith("text/") or content_type.endswith("javascript"):
            content_type += "; charset=utf-8"
        self._send(HTTPStatus.OK, file.read_bytes(), content_type, no_store)

    def _own_origin(self) -> bool:
        """Host is the page's own (127.0.0.1 or localhost, its port); an Origin, if sent, too."""
        host = self.headers.get("Host", "")
        origin = self.headers.get("Origin")
        own = self.stack.allowed_origins
        if f"http://{host}" not in own:
            return False
        return origin is None or origin in own

    do_HEAD = do_GET  # noqa: N815 - http.server's naming


def serve_web_page(site: PageSite, port: int) -> ThreadingHTTPServer:
    """The page on ``port`` (0: any free), bound to ``site`` (two stacks may share a process)."""
    handler = type("WebPage", (WebPage,), {"stack": site})
    return serve_http(handler, port, "--web-port")
