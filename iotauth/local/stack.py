"""The whole product on 127.0.0.1: ``iotauth local`` / ``make run``, and the tests' fixture.

Contract: ``with LocalStack(LocalPorts.any_free()) as stack:`` (or ``start()`` / ``stop()``)
runs, on the ports of :class:`LocalPorts` (0: any free), the AWS stand-in (moto), the
gateway calling the real authorizer, the real signer behind a stand-in API Gateway, and the
chat page; :attr:`LocalStack.info` says where they are (page, signer and gateway URLs, dev
tokens, demo devices). The handlers' AWS and ``IOTAUTH_*`` variables are set while it runs
and restored by ``stop()``.

The one reason: ``template.yaml`` is the one source of truth for the functions'
environments and the client role's policies, so local runs what AWS would.

Design: docs/design/local-stack.md
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

from iotauth.access.scoping import ArnContext
from iotauth.local import LocalPorts, PortInUse
from iotauth.local.aws_standin import ACCOUNT, FAKE_CREDENTIALS, REGION, MotoServer
from iotauth.local.banner import banner
from iotauth.local.certs import generate_certificates
from iotauth.local.domain import TokenSigning
from iotauth.local.functions import (
    AUTHORIZER_FUNCTION,
    DEFAULT_TOKEN_KEY_NAME,
    SIGNER_FUNCTION,
    DelayedFunction,
    LocalFunction,
    check_latency,
    token_environment,
)
from iotauth.local.gateway import GatewayConfig, LocalGateway
from iotauth.local.gateway_thread import GatewayThread
from iotauth.local.http_servers import close_http
from iotauth.local.iam_principals import IamPrincipals
from iotauth.local.janitor import start_janitor
from iotauth.local.lambda_host import REPO_ROOT
from iotauth.local.oidc import ALGORITHMS, LocalIssuer, serve_issuer
from iotauth.local.provision import TABLE_NAME, Provisioned, chat_room, provision
from iotauth.local.signer_api import DevTokens, serve_signer_api
from iotauth.local.stack_info import StackInfo
from iotauth.local.template import Template, TemplateError
from iotauth.local.web_page import serve_web_page

__all__ = ["LocalPorts", "LocalStack", "PortInUse", "StackInfo", "TemplateError", "banner"]

log = logging.getLogger("iotauth.local")

TEMPLATE_PATH = REPO_ROOT / "template.yaml"
DEMO_USERS = ("alice", "bob")
#: The groups claim of the demo users' tokens (the local issuer's; the template's
#: TokenGroupGrants, when set, maps groups to extra grants).
DEMO_GROUPS = {"alice": ("chat-users", "staff"), "bob": ("chat-users",)}


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


def _check_all_free(ports: LocalPorts) -> None:
    for port, flag in (
        (ports.web, "--web-port"),
        (ports.signer, "--signer-port"),
        (ports.aws, "--aws-port"),
        (ports.mqtt, "--mqtt-port"),
        (ports.mqtts, "--mqtts-port"),
        (ports.ws, "--ws-port"),
        (ports.issuer, "--issuer-port"),
        (ports.iot or 0, "--iot-port"),
    ):
        _check_free(port, flag)


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


def _check_settings(function: str, module: str, settings: str) -> None:
    """Refuse, before anything is ready, a function environment its own code would refuse
    at its first call (e.g. a -p value that the template's rules allow but the function not)."""
    import importlib  # noqa: PLC0415

    parse = getattr(importlib.import_module(module), settings).from_env
    try:
        parse(os.environ)
    except ValueError as exc:
        raise TemplateError(f"{function} refuses its configuration: {exc}") from None


class _Environment:
    """Environment variables set while the stack runs (None: unset), and their undo."""

    def __init__(self) -> None:
        self._saved: dict[str, str | None] = {}

    def set(self, values: Mapping[str, str | None]) -> None:
        for name, value in values.items():
            self._saved.setdefault(name, os.environ.get(name))
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    def restore(self) -> None:
        for name, value in self._saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved.clear()


# --- the stack ----------------------------------------------------------------------------


# Over 200 lines: one lifecycle (start in order, stop in reverse) of every local component.
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
        authorizer_latency: tuple[float, float] | None = None,
        latency_seed: int | None = None,
        authorizer_timeout: float = 5.0,
        token_signing: TokenSigning | None = None,
    ) -> None:
        self.ports = ports or LocalPorts()
        # The authorizer's SigningDisabled: false (with its TokenKeyName and public keys):
        # the gateway then checks x-amz-customauthorizer-signature before calling it. None:
        # as the template's IotAuthorizer says (SigningDisabled: true).
        self.token_signing = token_signing
        self._issuer: LocalIssuer | None = None
        # (low, high) seconds added to every authorizer answer (uniform, from a Random seeded
        # with latency_seed): to make revocation races as likely as on Lambda.
        self.authorizer_latency = (
            None if authorizer_latency is None else check_latency(authorizer_latency)
        )
        self.latency_seed = latency_seed
        # How long the gateway waits for the authorizer: IoT Core's 5 s. A later answer, or
        # none, refuses the CONNECT; tests may shorten it to shorten the revocation bound.
        if not 0 < authorizer_timeout <= 5.0:
            raise ValueError("authorizer_timeout must be in (0, 5] seconds, as IoT's limit")
        self.authorizer_timeout = authorizer_timeout
        self._delayed: DelayedFunction | None = None
        self.parameters = dict(parameters or {})  # template parameter overrides
        # Where the handlers' Powertools logs go (default: stdout, as in Lambda).
        self.handler_logs = handler_logs
        self.web_root = (web_root or REPO_ROOT / "web").resolve()
        # None: the template's AuthorizerName parameter (its default unless overridden).
        self.authorizer_name = authorizer_name
        self._info: StackInfo | None = None
        self._cleanup: list[Callable[[], None]] = []
        self._env = _Environment()  # the handlers' variables, restored by stop()
        self._signer: LocalFunction | None = None
        self._authorizer: LocalFunction | None = None
        self._dev_tokens = DevTokens()
        self.allowed_origins: frozenset[str] = frozenset()
        self._gateway: GatewayThread | None = None

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
        _check_all_free(self.ports)
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> StackInfo:
        arn = ArnContext("aws", REGION, ACCOUNT)
        template = Template.load(TEMPLATE_PATH, arn, self.parameters)
        room = chat_room(template)
        authorizer_name = self.authorizer_name or template.text_parameter("AuthorizerName")
        # Whatever ends this process, the janitor removes what it made and kills the engine.
        keeper = start_janitor()
        self._cleanup.append(keeper.close)
        workdir = Path(tempfile.mkdtemp(prefix="iotauth-local-"))
        keeper.remove_on_exit(workdir)
        self._cleanup.append(lambda: shutil.rmtree(workdir, ignore_errors=True))
        aws_url, demo = self._start_aws(template, room)

        certificates = generate_certificates(workdir / "tls")
        issuer = self._start_issuer()
        token_key_name = self._token_key_name(template)
        self._env.set(
            template.function_environment("AuthorizerFunction", {"CredentialsTable": TABLE_NAME})
        )
        # The authorizer checks tokens from the local issuer (primed at its init: it is up).
        self._env.set(
            token_environment(
                issuer.url, issuer.jwks_url, issuer.audience, ALGORITHMS, token_key_name
            )
        )
        _check_settings("the authorizer", "iotauth.connect.authenticate", "Settings")
        self._authorizer = self._function(AUTHORIZER_FUNCTION, "authorizer")
        if self.authorizer_latency is not None:
            self._delayed = DelayedFunction(
                self._authorizer, self.authorizer_latency, seed=self.latency_seed
            )
        iot_port, iot_note = _choose_iot_port(self.ports.iot)
        domain = template.domain_configuration({"IotAuthorizer": authorizer_name})
        gateway = LocalGateway(
            GatewayConfig(
                authorizer=self._call_authorizer,
                authorizer_name=authorizer_name,
                arn=arn,
                certificates=certificates,
                presigned=IamPrincipals(REGION).verify,  # any principal in moto's IAM
                tcp_port=self.ports.mqtt,
                tls_port=self.ports.mqtts,
                ws_port=self.ports.ws,
                iot_port=iot_port,
                domain=domain,
                authorizer_timeout=self.authorizer_timeout,
                token_signing=self.token_signing,
            )
        )
        running = GatewayThread(gateway)
        self._cleanup.append(running.stop)
        gateway_ports = running.start()
        self._gateway = running
        # The listeners hold the key now: none stays on disk for a crash to leave behind.
        certificates.server_key.unlink(missing_ok=True)
        web_port, signer_port = self._start_http()
        self._start_signer(template, demo.role_arn, gateway_ports.ws)
        self._info = StackInfo(
            page_url=f"http://127.0.0.1:{web_port}/",
            signer_url=f"http://127.0.0.1:{signer_port}/mqtt-url",
            dev_tokens=dict(self._dev_tokens.tokens),
            gateway_ws_url=f"ws://127.0.0.1:{gateway_ports.ws}/mqtt",
            authorizer_name=authorizer_name,
            mqtt_port=gateway_ports.tcp,
            mqtts_port=gateway_ports.tls,
            ca_cert_path=certificates.ca_cert,
            devices=demo.devices,
            fixtures=demo.fixtures,
            shared_topic_roots=template.text_parameter("WebSharedTopicRoot"),
            ws_port=gateway_ports.ws,
            aws_endpoint_url=aws_url,
            table_name=TABLE_NAME,
            region=REGION,
            client_role_arn=demo.role_arn,
            chat_room=room,
            iot_port=gateway_ports.iot,
            iot_port_note=iot_note,
            domain=domain,
            issuer_url=issuer.url,
            token_endpoint=issuer.token_endpoint,
            token_audience=issuer.audience,
            token_key_name=os.environ.get("IOTAUTH_TOKEN_KEY_NAME") or DEFAULT_TOKEN_KEY_NAME,
            token_signing=self.token_signing is not None,
        )
        return self._info

    def stop(self) -> None:
        """Stop everything started so far (safe to call twice)."""
        self._info = None
        self._gateway = None
        self._delayed = None
        while self._cleanup:
            step = self._cleanup.pop()
            try:
                step()
            except Exception:  # keep stopping the rest
                log.exception("error while stopping the local stack")
        self._env.restore()

    # -- pieces -----------------------------------------------------------------------

    def _start_aws(self, template: Template, room: str) -> tuple[str, Provisioned]:
        """moto, the handlers' AWS environment pointing at it, the demo identities in it."""
        port = self.ports.aws
        try:
            moto = MotoServer(port, lambda: self._delete_connection)
        except OSError as exc:
            raise PortInUse(f"port {port} (--aws-port) is already in use: {exc}") from None
        self._cleanup.append(moto.stop)
        aws_url = f"http://127.0.0.1:{moto.port}"
        self._env.set(
            {
                **FAKE_CREDENTIALS,
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
        self._env.set({"IOTAUTH_SHARED_TOPIC_ROOTS": template.text_parameter("WebSharedTopicRoot")})
        return aws_url, provision(aws_url, template, room)

    @property
    def issuer(self) -> LocalIssuer:
        if self._issuer is None:
            raise RuntimeError("the local issuer is not running")
        return self._issuer

    def _start_issuer(self) -> LocalIssuer:
        """The local OIDC issuer, for the dev users (their dev tokens are its passwords)."""
        self._dev_tokens = DevTokens(DEMO_USERS)
        self._issuer = LocalIssuer({user: DEMO_GROUPS.get(user, ()) for user in DEMO_USERS})
        server = serve_issuer(self, self.ports.issuer)
        self._cleanup.append(lambda: close_http(server))
        return self._issuer

    def _token_key_name(self, template: Template) -> str | None:
        """The authorizer's TokenKeyName: the stand-in's signing setting, else the
        template's IotAuthorizer (None: the authorizer's own default)."""
        if self.token_signing is not None:
            return self.token_signing.token_key_name
        properties = template.resource("IotAuthorizer").get("Properties") or {}
        name = template.resolve(properties.get("TokenKeyName"))
        return name if isinstance(name, str) and name else None

    def _start_http(self) -> tuple[int, int]:
        """The page and the signer's API; returns their ports (the page's are its origins)."""
        web = serve_web_page(self, self.ports.web)
        self._cleanup.append(lambda: close_http(web))
        signer = serve_signer_api(self, self.ports.signer)
        self._cleanup.append(lambda: close_http(signer))
        web_port, signer_port = web.server_address[1], signer.server_address[1]
        self.allowed_origins = frozenset(
            {f"http://127.0.0.1:{web_port}", f"http://localhost:{web_port}"}
        )
        return web_port, signer_port

    def _start_signer(self, template: Template, role_arn: str, ws_port: int) -> None:
        self._env.set(
            template.function_environment(
                "SignerFunction",
                {
                    "IotClientRole.Arn": role_arn,
                    # The signer signs for the local gateway: ws:// on 127.0.0.1.
                    "IotDataEndpoint": f"ws://127.0.0.1:{ws_port}",
                    "AllowedOrigins": sorted(self.allowed_origins),
                    "CredentialsTable": TABLE_NAME,  # the signer's per-user rate limit
                },
            )
        )
        _check_settings("the signer", "iotauth.browser.web_signing", "SignerSettings")
        try:
            self._signer = self._function(SIGNER_FUNCTION, "signer", timeout_seconds=10)
        except FileNotFoundError as exc:
            log.warning("%s: the signer answers 503", exc)

    def _function(self, name: str, folder: str, **kwargs: Any) -> LocalFunction:
        function = LocalFunction(name, folder, logs=self.handler_logs, **kwargs)
        self._cleanup.append(function.close)
        return function

    # -- what the servers call --------------------------------------------------------

    def live_client_ids(self) -> list[str]:
        """Client ids with a live connection through the gateway (for tests)."""
        running = self._gateway
        return [] if running is None else running.live_client_ids()

    def _delete_connection(self, client_id: str, clean: bool, prevent_will: bool) -> bool:
        """IoT's DeleteConnection (on the AWS endpoint): close the connection now."""
        running = self._gateway
        if running is None:
            return False
        closed = running.delete_connection(client_id, clean, prevent_will)
        log.info("DeleteConnection %r: %s", client_id, "closed" if closed else "no connection")
        return closed

    def _call_authorizer(self, event: dict[str, Any]) -> Any:
        assert self._authorizer is not None
        if self._delayed is not None:
            return self._delayed(event)
        return self._authorizer(event)

    def call_signer(self, event: dict[str, Any]) -> dict[str, Any]:
        if self._signer is None:
            return {"statusCode": 503, "body": '{"message":"signer not available"}'}
        response: dict[str, Any] = self._signer(event)
        return response

    def user_for(self, authorization: str) -> str | None:
        """The user whose development token is in ``Authorization: Bearer …``, if any."""
        return self._dev_tokens.user_for(authorization)
