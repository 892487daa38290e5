"""The whole product on 127.0.0.1: ``iotauth local`` / ``make run``, and the tests' fixture.

Python API (used by the end-to-end and browser tests)::

    from iotauth.local.stack import LocalPorts, LocalStack

    with LocalStack(LocalPorts.any_free()) as stack:   # or stack.start() / stack.stop()
        info = stack.info
        info.page_url          # the chat page, e.g. http://127.0.0.1:8000/
        info.signer_url        # GET this with "Authorization: Bearer <dev token>"
        info.dev_tokens        # {"alice": "...", "bob": "..."}: stand-ins for JWTs
        info.gateway_ws_url    # ws://127.0.0.1:P/mqtt
        info.authorizer_name   # for "?x-amz-customauthorizer-name=<name>"
        info.tcp_port, info.tls_port, info.ca_cert_path
        info.devices           # {"sensor-1": "<secret>", "sensor-2": "<secret>"}

Port 0 means "any free port". What runs, in process:

- moto's server (DynamoDB, IAM, STS) on ``aws_endpoint_url``, with the credential table
  created by :meth:`iotauth.identities.store.DynamoDBStore.create_table` (as ``iotauth devices
  create-table`` does), two demo devices with generated secrets, and the IoT client role the
  signer assumes;
- the local gateway (:mod:`iotauth.local.gateway`) calling the real authorizer handler
  (``authorizer/app.py``) and verifying presigned URLs against the credentials moto's STS
  issued, enforcing the session policy they were issued with;
- the real signer handler (``signer/app.py``) behind a small HTTP server that plays API
  Gateway: a development bearer token becomes the JWT claim ``sub``, CORS for the page;
- the chat page from ``web/`` with ``/config.json`` and ``/vendor/mqtt.min.js``.

``template.yaml`` is the one source of truth (:mod:`iotauth.local.template`): the IoT client
role's policies and both functions' environments (``Globals`` + their own variables: lockout
settings, the browser users' topic grants, ``POWERTOOLS_LOG_LEVEL`` …) come from it, with the
parameters' defaults unless ``parameters`` overrides them (as ``sam deploy
--parameter-overrides`` would). Only what stands in for AWS is local: the table name, the
role ARN, the gateway's endpoint and the page's origins.

The handlers read standard AWS and ``IOTAUTH_*`` environment variables: they are set while
the stack runs (endpoint → moto, fake credentials) and restored by :meth:`LocalStack.stop`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import errno
import hmac
import json
import logging
import mimetypes
import os
import secrets
import shutil
import socket
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any, ClassVar, TextIO
from urllib.parse import parse_qsl, unquote, urlsplit

from iotauth.access.scoping import ArnContext
from iotauth.local import LocalPorts, PortInUse
from iotauth.local.certs import generate_certificates
from iotauth.local.domain import NO_DOMAIN, DomainConfiguration
from iotauth.local.gateway import GatewayConfig, LocalGateway
from iotauth.local.iot_events import AUTHORIZER_NAME_PARAMETER
from iotauth.local.lambda_host import REPO_ROOT, LambdaContext, function_arn, load_handler_module
from iotauth.local.template import Template, TemplateError

__all__ = ["LocalPorts", "LocalStack", "PortInUse", "StackInfo", "TemplateError", "banner"]

log = logging.getLogger("iotauth.local")

TEMPLATE_PATH = REPO_ROOT / "template.yaml"
REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
AUTHORIZER_FUNCTION = "iotauth-authorizer"
SIGNER_FUNCTION = "iotauth-signer"
TABLE_NAME = "iotauth-local"
CLIENT_ROLE_NAME = "iotauth-iot-client"
CHAT_ROOM = "chat/lobby"  # the page's room when the template names none (WebRooms)
DEMO_DEVICES = ("sensor-1", "sensor-2")
DEMO_USERS = ("alice", "bob")
_FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


@dataclass(frozen=True, slots=True)
class StackInfo:
    page_url: str
    signer_url: str
    dev_tokens: dict[str, str]
    gateway_ws_url: str
    authorizer_name: str
    mqtt_port: int  # plain MQTT over TCP
    mqtts_port: int  # MQTT over TLS, ALPN "mqtt"
    ca_cert_path: Path
    devices: dict[str, str]
    ws_port: int  # plain MQTT over WebSocket at /mqtt
    aws_endpoint_url: str
    table_name: str
    region: str
    client_role_arn: str
    chat_room: str
    # iot:Data-ATS on IoT's port: TLS, ALPN "mqtt" → MQTT, else HTTPS/wss at /mqtt (ws_port:
    # the same without TLS). mqtts_port / mqtt_port: the device endpoint (the template's
    # IotDomainConfiguration), with and without TLS.
    iot_port: int = 0
    iot_port_note: str = ""  # why it is not 443, and how to allow 443
    domain: DomainConfiguration = NO_DOMAIN

    @property
    def tcp_port(self) -> int:
        return self.mqtt_port

    @property
    def tls_port(self) -> int:
        return self.mqtts_port

    @property
    def config(self) -> dict[str, Any]:
        """``/config.json`` for the chat page (local mode: the dev tokens are included)."""
        return {
            "mode": "local",
            "signerUrl": self.signer_url,
            "gatewayWsUrl": (
                f"{self.gateway_ws_url}?{AUTHORIZER_NAME_PARAMETER}={self.authorizer_name}"
            ),
            "authorizerName": self.authorizer_name,
            "room": self.chat_room,
            "devTokens": dict(self.dev_tokens),
        }


# --- ports ------------------------------------------------------------------------------


def _check_free(port: int, flag: str) -> None:
    if port == 0:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                raise PortInUse(f"port {port} ({flag}) is already in use") from None
            raise PortInUse(f"cannot listen on 127.0.0.1:{port} ({flag}): {exc}") from None


def _choose_iot_port(requested: int | None) -> tuple[int, str]:
    """IoT's port: 443 when this process may bind it, else 8443 (and the banner says why)."""
    if requested is not None:
        return requested, ""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", 443))
        except OSError as exc:
            if exc.errno != errno.EACCES:
                return 8443, "443 is in use"
            python = os.path.realpath(sys.executable)
            return 8443, (
                "443 needs privileges: sudo setcap 'cap_net_bind_service=+ep' "
                f"{python}  (or sudo sysctl net.ipv4.ip_unprivileged_port_start=443)"
            )
    return 443, ""


# --- moto -------------------------------------------------------------------------------


#: IoT's data plane ``DeleteConnection``: (client id, cleanSession, preventWillMessage) →
#: whether a live connection was closed.
DeleteConnection = Callable[[str, bool, bool], bool]


def _data_plane(app: Any, delete_connection: Callable[[], DeleteConnection | None]) -> Any:
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


class _MotoServer:
    """moto's server, bound in the calling thread (so a busy port is an error, not a hang)."""

    def __init__(self, port: int, delete_connection: Callable[[], DeleteConnection | None]) -> None:
        from moto.moto_server.werkzeug_app import (  # noqa: PLC0415 - heavy, local only
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server  # noqa: PLC0415

        # werkzeug logs every request moto serves; only problems matter here.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server = make_server(
            "127.0.0.1",
            port,
            _data_plane(DomainDispatcherApplication(create_backend_app), delete_connection),
            threaded=True,
            request_handler=MotoRequestHandler,
        )
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


class _IssuedCredentials:
    """Looks up the STS credentials moto issued: what IoT Core knows from AWS IAM."""

    def __init__(self, role_arn: str, region: str) -> None:
        self._role_arn = role_arn
        self._region = region

    def _assumed_role(self, access_key: str) -> Any:
        from moto.sts.models import sts_backends  # noqa: PLC0415

        role = sts_backends[ACCOUNT]["aws"].get_assumed_role_from_access_key(access_key)
        if role is None or role.role_arn != self._role_arn:
            return None
        expiration = role.expiration
        now = dt.datetime.now(dt.UTC)
        if expiration.tzinfo is None:
            now = now.replace(tzinfo=None)
        return role if now < expiration else None

    def verify(
        self, target: str, headers: Sequence[tuple[str, str]], secure: bool
    ) -> list[list[str]] | None:
        """The session policy of the credentials that signed this upgrade, if valid."""
        from iotauth.local.handshake import verify_handshake  # noqa: PLC0415

        found: dict[str, Any] = {}

        def secret(access_key: str) -> str | None:
            role = self._assumed_role(access_key)
            if role is None:
                return None
            found["role"] = role
            return str(role.secret_access_key)

        def token(access_key: str) -> str | None:
            role = self._assumed_role(access_key)
            return None if role is None else str(role.session_token)

        access_key = verify_handshake(
            target, headers, self._region, secret, token, time.time(), secure
        )
        role = found.get("role")
        if access_key is None or role is None or role.access_key_id != access_key:
            return None
        # Effective permissions: the session policy ∩ the role's own policies. A URL whose
        # credentials carry no session policy is refused: the signer always scopes them.
        if not isinstance(role.policy, str) or not role.policy:
            return None
        role_documents = self._role_policies()
        if not role_documents:
            return None
        return [[role.policy], role_documents]

    def _role_policies(self) -> list[str]:
        from moto.iam.models import iam_backends  # noqa: PLC0415

        iam = iam_backends[ACCOUNT]["aws"]
        role = iam.get_role_by_arn(self._role_arn)
        documents = [str(p) for p in role.policies.values()]
        for managed in role.managed_policies.values():
            documents += [str(v.document) for v in managed.versions if v.is_default]
        return documents


# --- the handlers -----------------------------------------------------------------------


def _redirect_logs(module: ModuleType, stream: TextIO) -> Callable[[], None]:
    """Send a handler module's Powertools logs to ``stream``; returns the undo.

    Powertools writes to ``sys.stdout`` through its own handler (as in Lambda, where stdout is
    the log). The logger is process-wide (one per service name), hence the undo.
    """
    from aws_lambda_powertools import Logger  # noqa: PLC0415

    restore: list[tuple[logging.StreamHandler[Any], Any]] = []
    for value in list(vars(module).values()):
        if isinstance(value, Logger):
            handler = value.registered_handler
            if isinstance(handler, logging.StreamHandler):
                restore.append((handler, handler.stream))
                handler.setStream(stream)

    def undo() -> None:
        for handler, previous in restore:
            handler.setStream(previous)

    return undo


def _http_api_event(
    method: str, path: str, query: str, headers: Mapping[str, str], sub: str
) -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) event, after its JWT authorizer let ``sub`` in."""
    now = time.time()
    lowered = {k.lower(): v for k, v in headers.items() if k.lower() != "authorization"}
    return {
        "version": "2.0",
        "routeKey": f"{method} {path}",
        "rawPath": path,
        "rawQueryString": query,
        "headers": lowered,
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": "local",
            "authorizer": {"jwt": {"claims": {"sub": sub}, "scopes": None}},
            "domainName": lowered.get("host", "127.0.0.1"),
            "domainPrefix": "local",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": lowered.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": f"{method} {path}",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": False,
    }


# --- HTTP: the signer's API and the page --------------------------------------------------


class _QuietHandler(BaseHTTPRequestHandler):
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


class _SignerApi(_QuietHandler):
    """Plays API Gateway in front of the signer: JWT check (dev tokens), CORS, the route."""

    stack: ClassVar[LocalStack]

    def _cors(self) -> dict[str, str]:
        origin = self.headers.get("Origin")
        if origin and origin in self.stack.allowed_origins:
            return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
        return {}

    def do_OPTIONS(self) -> None:
        cors = self._cors()
        if cors:
            cors |= {
                "Access-Control-Allow-Methods": "GET, OPTIONS",
                "Access-Control-Allow-Headers": "authorization, content-type",
                "Access-Control-Max-Age": "600",
            }
        self._send(HTTPStatus.NO_CONTENT, b"", headers=cors)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path != "/mqtt-url":
            self._send(HTTPStatus.NOT_FOUND, b'{"message":"Not Found"}', headers=self._cors())
            return
        sub = self.stack.user_for(self.headers.get("Authorization", ""))
        if sub is None:
            self._send(HTTPStatus.UNAUTHORIZED, b'{"message":"Unauthorized"}', headers=self._cors())
            return
        event = _http_api_event("GET", url.path, url.query, dict(self.headers.items()), sub)
        try:
            response = self.stack.call_signer(event)
            status = int(response.get("statusCode", 502))
            body = response.get("body") or ""
            headers = {str(k): str(v) for k, v in (response.get("headers") or {}).items()}
        except Exception as exc:  # API Gateway's answer to a failing integration
            log.warning("signer failed with %s", type(exc).__name__)
            status, body, headers = 500, '{"message":"Internal Server Error"}', {}
        for name in list(headers):
            if name.lower() in {"content-length", "connection", "transfer-encoding"}:
                del headers[name]
        content_type = headers.pop("Content-Type", headers.pop("content-type", "application/json"))
        lowered = {k.lower() for k in headers}
        headers |= {k: v for k, v in self._cors().items() if k.lower() not in lowered}
        self._send(status, body.encode("utf-8"), content_type, headers)

    do_HEAD = do_GET  # noqa: N815 - http.server's naming


class _WebPage(_QuietHandler):
    """The chat page: files of ``web/``, ``/config.json`` and ``/vendor/mqtt.min.js``."""

    stack: ClassVar[LocalStack]
    _STATIC: ClassVar[frozenset[str]] = frozenset(
        {".html", ".js", ".css", ".png", ".svg", ".ico", ".webmanifest"}
    )

    def do_GET(self) -> None:
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


class _LoggingHTTPServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # socketserver prints tracebacks to stderr; they belong in the log (no request data).
        log.warning("HTTP handler error", exc_info=True)


def _serve_http(handler: type[_QuietHandler], port: int, flag: str) -> ThreadingHTTPServer:
    try:
        server = _LoggingHTTPServer(("127.0.0.1", port), handler)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise PortInUse(f"port {port} ({flag}) is already in use") from None
        raise
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name=f"iotauth-{flag}", daemon=True).start()
    return server


# --- the stack ----------------------------------------------------------------------------


class LocalStack:
    """Everything ``make run`` starts. Start in a few seconds; stop releases every port."""

    def __init__(
        self,
        ports: LocalPorts | None = None,
        web_root: Path | None = None,
        *,
        authorizer_name: str | None = None,
        parameters: Mapping[str, str] | None = None,
        handler_logs: TextIO | None = None,
    ) -> None:
        self.ports = ports or LocalPorts()
        self.parameters = dict(parameters or {})  # template parameter overrides
        # Where the handlers' Powertools logs go (default: stdout, as in Lambda).
        self.handler_logs = handler_logs
        self.web_root = (web_root or REPO_ROOT / "web").resolve()
        # None: the template's AuthorizerName parameter (its default unless overridden).
        self.authorizer_name = authorizer_name
        self._info: StackInfo | None = None
        self._cleanup: list[Callable[[], None]] = []
        self._saved_env: dict[str, str | None] = {}
        self._signer: Callable[[Any, Any], Any] | None = None
        self._authorizer: Callable[[Any, Any], Any] | None = None
        self._dev_tokens: dict[str, str] = {}
        self.allowed_origins: frozenset[str] = frozenset()
        self._gateway: LocalGateway | None = None
        self._gateway_loop: asyncio.AbstractEventLoop | None = None

    @property
    def info(self) -> StackInfo:
        if self._info is None:
            raise RuntimeError("the local stack is not running")
        return self._info

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> StackInfo:
        if self._info is not None:
            return self._info
        ports = self.ports
        for port, flag in (
            (ports.web, "--web-port"),
            (ports.signer, "--signer-port"),
            (ports.aws, "--aws-port"),
            (ports.mqtt, "--mqtt-port"),
            (ports.mqtts, "--mqtts-port"),
            (ports.ws, "--ws-port"),
            (ports.iot or 0, "--iot-port"),
        ):
            _check_free(port, flag)
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> StackInfo:
        ports = self.ports
        arn = ArnContext("aws", REGION, ACCOUNT)
        template = Template.load(TEMPLATE_PATH, arn, self.parameters)
        chat_room = _chat_room(template)
        authorizer_name = self.authorizer_name or template.text_parameter("AuthorizerName")
        workdir = Path(tempfile.mkdtemp(prefix="iotauth-local-"))
        self._cleanup.append(lambda: shutil.rmtree(workdir, ignore_errors=True))

        try:
            moto = _MotoServer(ports.aws, lambda: self._delete_connection)
        except OSError as exc:
            raise PortInUse(f"port {ports.aws} (--aws-port) is already in use: {exc}") from None
        self._cleanup.append(moto.stop)
        aws_url = f"http://127.0.0.1:{moto.port}"
        self._set_env(
            {
                **_FAKE_CREDENTIALS,
                "AWS_SESSION_TOKEN": None,
                "AWS_PROFILE": None,
                "AWS_DEFAULT_REGION": REGION,
                "AWS_REGION": REGION,
                "AWS_ENDPOINT_URL": aws_url,
                "POWERTOOLS_METRICS_DISABLED": "true",
                "POWERTOOLS_DEV": None,
            }
        )
        # The deployment's shared roots, for the demo records' rooms (the CLI reads it too).
        self._set_env({"IOTAUTH_SHARED_TOPIC_ROOTS": template.text_parameter("WebSharedTopicRoot")})
        devices, role_arn = self._provision(aws_url, template, chat_room)

        certificates = generate_certificates(workdir / "tls")
        self._set_env(
            template.function_environment("AuthorizerFunction", {"CredentialsTable": TABLE_NAME})
        )
        self._authorizer = self._handler("authorizer")
        iot_port, iot_note = _choose_iot_port(ports.iot)
        domain = template.domain_configuration({"IotAuthorizer": authorizer_name})
        gateway = LocalGateway(
            GatewayConfig(
                authorizer=self._call_authorizer,
                authorizer_name=authorizer_name,
                arn=arn,
                certificates=certificates,
                presigned=_IssuedCredentials(role_arn, REGION).verify,
                tcp_port=ports.mqtt,
                tls_port=ports.mqtts,
                ws_port=ports.ws,
                iot_port=iot_port,
                domain=domain,
            )
        )
        gateway_ports = self._start_gateway(gateway)
        self._gateway = gateway

        # Handler classes bound to this stack (two stacks may run in one process).
        page_handler = type("WebPage", (_WebPage,), {"stack": self})
        signer_handler = type("SignerApi", (_SignerApi,), {"stack": self})
        web = _serve_http(page_handler, ports.web, "--web-port")
        self._cleanup.append(lambda: _close_http(web))
        signer = _serve_http(signer_handler, ports.signer, "--signer-port")
        self._cleanup.append(lambda: _close_http(signer))
        web_port, signer_port = web.server_address[1], signer.server_address[1]
        self.allowed_origins = frozenset(
            {f"http://127.0.0.1:{web_port}", f"http://localhost:{web_port}"}
        )

        ws_url = f"ws://127.0.0.1:{gateway_ports.ws}/mqtt"
        self._set_env(
            template.function_environment(
                "SignerFunction",
                {
                    "IotClientRole.Arn": role_arn,
                    # The signer signs for the local gateway: ws:// on 127.0.0.1.
                    "IotDataEndpoint": f"ws://127.0.0.1:{gateway_ports.ws}",
                    "AllowedOrigins": sorted(self.allowed_origins),
                },
            )
        )
        try:
            self._signer = self._handler("signer")
        except FileNotFoundError as exc:
            log.warning("%s: the signer answers 503", exc)
        self._dev_tokens = {user: f"dev-{secrets.token_urlsafe(24)}" for user in DEMO_USERS}
        self._info = StackInfo(
            page_url=f"http://127.0.0.1:{web_port}/",
            signer_url=f"http://127.0.0.1:{signer_port}/mqtt-url",
            dev_tokens=dict(self._dev_tokens),
            gateway_ws_url=ws_url,
            authorizer_name=authorizer_name,
            mqtt_port=gateway_ports.tcp,
            mqtts_port=gateway_ports.tls,
            ca_cert_path=certificates.ca_cert,
            devices=devices,
            ws_port=gateway_ports.ws,
            aws_endpoint_url=aws_url,
            table_name=TABLE_NAME,
            region=REGION,
            client_role_arn=role_arn,
            chat_room=chat_room,
            iot_port=gateway_ports.iot,
            iot_port_note=iot_note,
            domain=domain,
        )
        return self._info

    def stop(self) -> None:
        """Stop everything started so far (safe to call twice)."""
        self._info = None
        self._gateway = None
        while self._cleanup:
            step = self._cleanup.pop()
            try:
                step()
            except Exception:  # keep stopping the rest
                log.exception("error while stopping the local stack")
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env.clear()

    # -- pieces -----------------------------------------------------------------------

    def _set_env(self, values: Mapping[str, str | None]) -> None:
        for name, value in values.items():
            self._saved_env.setdefault(name, os.environ.get(name))
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    def _provision(
        self, aws_url: str, template: Template, chat_room: str
    ) -> tuple[dict[str, str], str]:
        """The credential table, the demo devices and the IoT client role, in moto."""
        import boto3  # noqa: PLC0415

        from iotauth.identities.credentials import generate_secret, hash_generated_secret  # noqa: PLC0415
        from iotauth.identities.records import IdentityRecord  # noqa: PLC0415
        from iotauth.identities.store import DynamoDBStore  # noqa: PLC0415

        session = boto3.session.Session(
            aws_access_key_id=_FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=_FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name=REGION,
        )
        store = DynamoDBStore(TABLE_NAME, client=session.client("dynamodb", endpoint_url=aws_url))
        store.create_table()
        devices: dict[str, str] = {}
        now = int(time.time())
        for name in DEMO_DEVICES:
            secret = generate_secret()
            store.add_identity(
                IdentityRecord(
                    username=name,
                    kind="secret",
                    verifier=hash_generated_secret(secret),
                    rooms=(chat_room,),
                    created_at=now,
                    updated_at=now,
                )
            )
            devices[name] = secret

        iam = session.client("iam", endpoint_url=aws_url)
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
        role = iam.create_role(
            RoleName=CLIENT_ROLE_NAME,
            AssumeRolePolicyDocument=json.dumps(trust),
            MaxSessionDuration=3600,
        )
        for policy_name, document in template.role_policies("IotClientRole").items():
            iam.put_role_policy(
                RoleName=CLIENT_ROLE_NAME,
                PolicyName=policy_name,
                PolicyDocument=json.dumps(document),
            )
        return devices, str(role["Role"]["Arn"])

    def _handler(self, folder: str) -> Callable[[Any, Any], Any]:
        module = load_handler_module(folder)
        if self.handler_logs is not None:
            self._cleanup.append(_redirect_logs(module, self.handler_logs))
        handler: Callable[[Any, Any], Any] = module.lambda_handler
        return handler

    def _start_gateway(self, gateway: LocalGateway) -> Any:
        loop = asyncio.new_event_loop()
        self._gateway_loop = loop
        thread = threading.Thread(target=loop.run_forever, name="iotauth-gateway", daemon=True)
        thread.start()

        def stop_loop() -> None:
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(gateway.stop(), loop).result(timeout=10)
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(loop.shutdown_default_executor(), loop).result(
                    timeout=10
                )
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=5)
            loop.close()

        self._cleanup.append(stop_loop)
        try:
            return asyncio.run_coroutine_threadsafe(gateway.start(), loop).result(timeout=10)
        except Exception as exc:
            if isinstance(exc.__cause__, OSError) or "address already in use" in str(exc):
                raise PortInUse(f"a gateway port is already in use: {exc}") from None
            raise

    def _on_gateway(self, coroutine: Any, timeout: float = 5.0) -> Any:
        loop = self._gateway_loop
        if loop is None or self._gateway is None:
            coroutine.close()
            raise RuntimeError("the local stack is not running")
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout)

    def live_client_ids(self) -> list[str]:
        """Client ids with a live connection through the gateway (for tests)."""
        gateway = self._gateway
        if gateway is None:
            return []

        async def ids() -> list[str]:
            return gateway.live_client_ids()

        result: list[str] = self._on_gateway(ids())
        return result

    def _delete_connection(self, client_id: str, clean: bool, prevent_will: bool) -> bool:
        """IoT's DeleteConnection (on the AWS endpoint): close the connection now."""
        gateway = self._gateway
        if gateway is None:
            return False
        closed: bool = self._on_gateway(
            gateway.delete_connection(client_id, clean_session=clean, prevent_will=prevent_will)
        )
        log.info("DeleteConnection %r: %s", client_id, "closed" if closed else "no connection")
        return closed

    def _call_authorizer(self, event: dict[str, Any]) -> Any:
        assert self._authorizer is not None
        context = LambdaContext(
            AUTHORIZER_FUNCTION, function_arn(AUTHORIZER_FUNCTION, region=REGION, account=ACCOUNT)
        )
        return self._authorizer(event, context)

    def call_signer(self, event: dict[str, Any]) -> dict[str, Any]:
        if self._signer is None:
            return {"statusCode": 503, "body": '{"message":"signer not available"}'}
        context = LambdaContext(
            SIGNER_FUNCTION,
            function_arn(SIGNER_FUNCTION, region=REGION, account=ACCOUNT),
            timeout_seconds=10,
        )
        response: dict[str, Any] = self._signer(event, context)
        return response

    def user_for(self, authorization: str) -> str | None:
        """The user whose development token is in ``Authorization: Bearer …``, if any."""
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        found = None
        for user, expected in self._dev_tokens.items():
            if hmac.compare_digest(expected.encode(), token.strip().encode()):
                found = user
        return found


def _close_http(server: ThreadingHTTPServer) -> None:
    server.shutdown()
    server.server_close()


def _chat_room(template: Template) -> str:
    """The page's room: the first of the browser users' rooms (WebRooms)."""
    for room in template.list_parameter("WebRooms"):
        if room:
            return room
    return CHAT_ROOM


def banner(info: StackInfo, log_file: Path | None = None) -> str:
    """What ``iotauth local`` prints once everything is up (``log_file``: where logs go)."""
    suffix = f"?{AUTHORIZER_NAME_PARAMETER}={info.authorizer_name}"
    width = max(len(n) for n in [*info.devices, *info.dev_tokens])
    logs = f"{log_file}  (-v: on the terminal instead)" if log_file else "on the terminal"
    iot_note = f"\n                  not 443: {info.iot_port_note}" if info.iot_port_note else ""
    domain = info.domain
    if domain.default_authorizer:
        tls_note = f"device endpoint: default authorizer {domain.default_authorizer}"
        if domain.custom_auth_without_alpn:
            tls_note += ", ALPN optional"
        authorizer_line = (
            "Devices: MQTT username <device>, password its secret, on the device endpoint\n"
            f"(1883, 8883); on iot:Data-ATS (443, ws) the username is <device>{suffix}."
        )
    else:
        tls_note = 'device endpoint: ALPN "mqtt"'
        authorizer_line = "Devices: MQTT username <device>" + suffix + ", password its secret."
    lines = [
        "iotauth local stack: everything runs on 127.0.0.1; nothing talks to AWS.",
        "",
        f"  Chat page       {info.page_url}",
        f"  Signer          GET {info.signer_url}  (Authorization: Bearer <dev token>)",
        f'  IoT endpoint    localhost:{info.iot_port}  (iot:Data-ATS: ALPN "mqtt" → MQTT, '
        f"else wss://localhost:{info.iot_port}/mqtt){iot_note}",
        f"  MQTT over WS    {info.gateway_ws_url}  (iot:Data-ATS without TLS)",
        f"  MQTT over TLS   127.0.0.1:{info.mqtts_port}  ({tls_note})",
        f"  MQTT over TCP   127.0.0.1:{info.mqtt_port}  (device endpoint without TLS)",
        f"  CA certificate  {info.ca_cert_path}  (localhost, 127.0.0.1)",
        f"  AWS (moto)      {info.aws_endpoint_url}  (table {info.table_name})",
        f"  Logs            {logs}",
        "",
        authorizer_line,
        "MQTT 3.1.1 and MQTT 5 on every listener.",
        "Secrets are shown once; they live only as long as this stack.",
        *(f"  {name:<{width}}  {secret}" for name, secret in info.devices.items()),
        "",
        "Browser users: development bearer tokens standing in for a JWT.",
        *(f"  {user:<{width}}  {token}" for user, token in info.dev_tokens.items()),
        "",
        f"Every identity is in the room {info.chat_room!r}: it publishes to",
        f"'{info.chat_room}/<its client id>' only and subscribes to '{info.chat_room}/+', so a",
        "message's topic names its sender. Each also has its own '<name>/…' topics",
        "(browser users: 'web-<name>/…').",
        "",
        "Press Ctrl-C to stop.",
    ]
    return "\n".join(lines)
