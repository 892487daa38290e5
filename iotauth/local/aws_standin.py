"""The AWS stand-in on ``aws_endpoint_url``: moto's server (DynamoDB, IAM, STS) plus IoT's
data-plane ``DeleteConnection``, for SDKs only. Which credentials moto issued, and what IAM
lets them do (presigned URLs at the gateway), is :mod:`iotauth.local.iam_principals`'s.

The one reason that matters: this endpoint holds every verifier and device secret of the
stack, so it refuses what only a browser sends (an ``Origin`` header) and other host names.
While it runs, moto's transactions back up only the items they touch
(:mod:`iotauth.local.moto_fleet`): moto's own copies whole tables, which a fleet-sized
table cannot afford.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import urllib.request
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, unquote

__all__ = [
    "ACCOUNT",
    "FAKE_CREDENTIALS",
    "REGION",
    "DeleteConnection",
    "MotoServer",
    "data_plane",
]

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
#: The fake credentials the handlers and SDKs use while the stack runs.
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


#: IoT's data plane ``DeleteConnection``: (client id, cleanSession, preventWillMessage) →
#: whether a live connection was closed.
DeleteConnection = Callable[[str, bool, bool], bool]


def data_plane(app: Any, delete_connection: Callable[[], DeleteConnection | None]) -> Any:
    """A WSGI app answering ``DELETE /connections/{clientId}`` as IoT's data plane does
    (API_iotdata_DeleteConnection), everything else by ``app`` (moto) — for SDKs only: a
    request with an ``Origin`` header or another ``Host`` gets 403 and no CORS headers."""

    def respond(start_response: Any, status: str, body: dict[str, str], error: str = "") -> Any:
        payload = json.dumps(body).encode()
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))]
        if error:
            headers.append(("x-amzn-ErrorType", error))
        start_response(status, headers)
        return [payload]

    def wsgi(environ: dict[str, Any], start_response: Any) -> Any:
        # This endpoint holds every verifier and device secret of the stack, and moto answers
        # any origin with CORS headers: refuse what only a browser sends (an Origin header) and
        # any other host name (DNS rebinding). SDKs send neither.
        host = str(environ.get("HTTP_HOST", "")).lower()
        port = str(environ.get("SERVER_PORT", ""))
        if "HTTP_ORIGIN" in environ or host not in (f"127.0.0.1:{port}", f"localhost:{port}"):
            return respond(
                start_response, "403 Forbidden", {"message": "SDK requests only"}, "AccessDenied"
            )
        path = environ.get("PATH_INFO", "")
        if environ.get("REQUEST_METHOD") != "DELETE" or not path.startswith("/connections/"):
            return app(environ, start_response)
        # The client id as sent (percent-encoded, '/' as %2F): PATH_INFO has it decoded
        # already, where an encoded '/' cannot be told from a path separator.
        raw = str(environ.get("RAW_URI") or environ.get("REQUEST_URI") or path).split("?", 1)[0]
        encoded = raw[len("/connections/") :] if raw.startswith("/connections/") else ""
        client_id = unquote(encoded, errors="strict") if "/" not in encoded else ""
        query = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
        handler = delete_connection()
        if not client_id or handler is None:
            return respond(
                start_response,
                "400 Bad Request",
                {"message": "invalid client id"},
                "InvalidRequestException",
            )
        clean = query.get("cleanSession", "false").lower() == "true"
        prevent_will = query.get("preventWillMessage", "false").lower() == "true"
        if handler(client_id, clean, prevent_will):
            return respond(start_response, "200 OK", {})
        return respond(
            start_response,
            "404 Not Found",
            {"message": "No connection found for the client id"},
            "ResourceNotFoundException",
        )

    return wsgi


class MotoServer:
    """moto's server, bound in the calling thread (so a busy port is an error, not a hang),
    with item-level transactions (:func:`~iotauth.local.moto_fleet.installed`) until
    :meth:`stop`."""

    def __init__(self, port: int, delete_connection: Callable[[], DeleteConnection | None]) -> None:
        from moto.moto_server.werkzeug_app import (  # noqa: PLC0415 - heavy, local only
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server  # noqa: PLC0415

        from iotauth.local.moto_fleet import installed  # noqa: PLC0415

        # werkzeug logs every request moto serves; only problems matter here.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._patch = contextlib.ExitStack()
        self._patch.enter_context(installed())
        try:
            self._server = make_server(
                "127.0.0.1",
                port,
                data_plane(DomainDispatcherApplication(create_backend_app), delete_connection),
                threaded=True,
                request_handler=MotoRequestHandler,
            )
        except BaseException:
            self._patch.close()
            raise
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="iotauth-moto", daemon=True
        )
        self._thread.start()
        # moto's state lives in this process: start from nothing, whatever ran before.
        self.reset()

    def reset(self) -> None:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/moto-api/reset", data=b"", method="POST"
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
            response.read()

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.reset()  # leave no credentials or tables behind for later users of moto
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        self._patch.close()
