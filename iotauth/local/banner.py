"""What ``iotauth local`` prints once everything is up: :func:`banner` of a :class:`StackInfo`.

Every listener with its port (the TLS ones by host name: IoT Core requires SNI), where the
logs go, the demo devices' secrets and the browser users' dev tokens (shown once: they live
only as long as the stack), and the one ``export`` line that points the CLI at the stand-in
(``iotauth local env`` prints it again).
"""

from __future__ import annotations

from pathlib import Path

from iotauth.local.iot_events import AUTHORIZER_NAME_PARAMETER
from iotauth.local.stack_info import StackInfo
from iotauth.local.state import shell_lines

__all__ = ["banner"]


def banner(info: StackInfo, log_file: Path | None = None) -> str:
    """What ``iotauth local`` prints once everything is up (``log_file``: where logs go)."""
    suffix = f"?{AUTHORIZER_NAME_PARAMETER}={info.authorizer_name}"
    width = max(len(n) for n in [*info.devices, *info.dev_tokens])
    device_ports = f"{info.mqtt_port}, {info.mqtts_port}"
    logs = f"{log_file}  (-v: on the terminal instead)" if log_file else "on the terminal"
    iot_note = f"\n                  not 443: {info.iot_port_note}" if info.iot_port_note else ""
    domain = info.domain
    if domain.default_authorizer:
        tls_note = f"device endpoint: default authorizer {domain.default_authorizer}"
        if domain.custom_auth_without_alpn:
            tls_note += ", ALPN optional"
        authorizer_line = (
            "Devices: MQTT username <device>, password its secret, on the device endpoint\n"
            f"({device_ports}); on iot:Data-ATS ({info.iot_port}, {info.ws_port}) the username "
            f"is <device>{suffix}."
        )
    else:
        tls_note = 'device endpoint: ALPN "mqtt"'
        authorizer_line = "Devices: MQTT username <device>" + suffix + ", password its secret."
    fixtures = []
    if info.fixtures:
        fixtures = [
            f"Fixture identities of events/authorizer: {', '.join(info.fixtures)} (test-only",
            "secrets, in events/authorizer/README.md): make invoke FN=AuthorizerFunction",
            "EVENT=events/authorizer/connect-mqtt.json INVOKE_ARGS="
            f'"--endpoint-url {info.aws_endpoint_url}"',
            "",
        ]
    lines = [
        "iotauth local stack: everything runs on 127.0.0.1; nothing talks to AWS.",
        "",
        f"  Chat page       {info.page_url}",
        f"  Signer          GET {info.signer_url}  (Authorization: Bearer <dev token>)",
        *([f"  OIDC issuer     {info.issuer_url}  (JWTs: POST /token)"] if info.issuer_url else []),
        f'  IoT endpoint    localhost:{info.iot_port}  (iot:Data-ATS: ALPN "mqtt" → MQTT, '
        f"else wss://localhost:{info.iot_port}/mqtt){iot_note}",
        f"  MQTT over WS    {info.gateway_ws_url}  (iot:Data-ATS without TLS)",
        f"  MQTT over TLS   localhost:{info.mqtts_port}  ({tls_note})",
        f"  MQTT over TCP   127.0.0.1:{info.mqtt_port}  (device endpoint without TLS)",
        f"  CA certificate  {info.ca_cert_path}  (localhost, 127.0.0.1)",
        "                  TLS needs SNI, as IoT Core does: connect to localhost, not an IP",
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
        *fixtures,
        "Point the CLI (iotauth devices …, aws dynamodb …) at this stand-in; later, in any",
        'shell: eval "$(iotauth local env)"',
        *(f"  {line}" for line in shell_lines(info.state)),
        "",
        f"Every identity is in the room {info.chat_room!r}: it publishes to",
        f"'{info.chat_room}/<its client id>' only and subscribes to '{info.chat_room}/+', so a",
        "message's topic names its sender. Each also has its own '<name>/…' topics",
        "(browser users: 'web-<name>/…').",
        "",
        "Press Ctrl-C to stop.",
    ]
    return "\n".join(lines)
