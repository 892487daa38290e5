"""SNI on the gateway's TLS listeners, as IoT Core requires it.

IoT Core picks the endpoint by the SNI host name; a TLS client that connects to an IP
address sends none, and the handshake fails. The stand-in refuses it the same way on both
TLS listeners (the device endpoint's MQTT/TLS and the IoT port) with one log line; with SNI
``localhost`` (the certificate's name) a client connects. The plain listeners (MQTT over
TCP, WebSocket without TLS) have no TLS and are unaffected.
"""

from __future__ import annotations

import logging
import socket
import ssl
import time
from collections.abc import Callable

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from iotauth.local.gateway.tls import has_host_name
from iotauth.local.stack import StackInfo
from tests.e2e.conftest import WAIT, Mqtt, port_of, unique, username_for

pytestmark = pytest.mark.e2e

MakeClient = Callable[..., Mqtt]
REFUSED = "TLS handshake refused: no SNI host name"


def _tls_handshake(port: int, ca_cert: str, server_hostname: str) -> str | None:
    """The negotiated ALPN protocol after a TLS handshake with ``server_hostname`` (an IP
    address: Python's ssl then sends no SNI, as every TLS stack does)."""
    context = ssl.create_default_context(cafile=ca_cert)
    context.set_alpn_protocols(["mqtt"])
    with (
        socket.create_connection(("127.0.0.1", port), timeout=WAIT) as raw,
        context.wrap_socket(raw, server_hostname=server_hostname) as tls,
    ):
        return tls.selected_alpn_protocol()


def _wait_for_log(caplog: pytest.LogCaptureFixture, text: str, count: int) -> int:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        found = sum(text in record.getMessage() for record in caplog.records)
        if found >= count:
            return found
        time.sleep(0.05)
    return sum(text in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize("listener", ["tls", "iot"])
def test_tls_without_sni_is_refused_with_one_log_line(
    stack: StackInfo, caplog: pytest.LogCaptureFixture, listener: str
) -> None:
    caplog.set_level(logging.INFO)
    port = stack.mqtts_port if listener == "tls" else stack.iot_port
    # The certificate covers 127.0.0.1 too: the only thing missing is SNI.
    with pytest.raises((ssl.SSLError, ConnectionError)):
        _tls_handshake(port, str(stack.ca_cert_path), "127.0.0.1")
    assert _wait_for_log(caplog, REFUSED, 1) == 1
    # With SNI the same handshake completes.
    assert _tls_handshake(port, str(stack.ca_cert_path), "localhost") == "mqtt"
    assert _wait_for_log(caplog, REFUSED, 2) == 1


def test_paho_by_ip_address_is_refused_and_by_host_name_connects(
    stack: StackInfo, add_device: Callable[..., str], clients: MakeClient
) -> None:
    name = unique("dev-sni")
    secret = add_device(name)
    by_ip = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=name, reconnect_on_failure=False)
    context = ssl.create_default_context(cafile=str(stack.ca_cert_path))
    context.set_alpn_protocols(["mqtt"])
    by_ip.tls_set_context(context)
    by_ip.username_pw_set(username_for(stack, name), secret)
    with pytest.raises((ssl.SSLError, ConnectionError)):
        by_ip.connect("127.0.0.1", stack.mqtts_port, keepalive=30)

    by_name = clients(name, "tls")  # connects to localhost: SNI "localhost"
    assert by_name.connect(
        stack.mqtts_port,
        username=username_for(stack, name),
        password=secret,
        ca_cert=stack.ca_cert_path,
    )


@pytest.mark.parametrize("transport", ["tcp", "ws"])
def test_plain_listeners_are_unaffected(
    stack: StackInfo, add_device: Callable[..., str], clients: MakeClient, transport: str
) -> None:
    name = unique("dev-plain")
    secret = add_device(name)
    client = clients(name, transport)  # by IP address, no TLS
    assert client.connect(
        port_of(stack, transport), username=username_for(stack, name), password=secret
    )


@pytest.mark.parametrize(
    ("server_name", "names_a_host"),
    [(None, False), ("", False), ("127.0.0.1", False), ("::1", False), ("localhost", True)],
)
def test_what_counts_as_a_host_name(server_name: str | None, names_a_host: bool) -> None:
    assert has_host_name(server_name) is names_a_host
