"""CONNECT fields as bytes: the password reaches the authorizer exactly as sent (IoT Core
passes any bytes, base64 in the event); string fields that are not UTF-8 end the connection
[MQTT-1.5.3-1] without an authorizer call, and the gateway keeps serving."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
from collections.abc import Callable

import pytest

from iotauth.local.mqtt.codec import Connect, MalformedPacket, decode_packet, split_packets
from iotauth.local.stack import StackInfo
from tests.e2e.conftest import WAIT, Mqtt, unique, username_for
from tests.e2e.test_gateway_cli import IOTAUTH, ROOT

pytestmark = pytest.mark.e2e

BINARY_PASSWORD = b"\xff\xfe\x00binary\x80password\xc3\x28"  # not UTF-8, has a NUL


def _field(data: bytes) -> bytes:
    return struct.pack("!H", len(data)) + data


def connect_packet(
    client_id: bytes,
    username: bytes | None = None,
    password: bytes | None = None,
    will: tuple[bytes, bytes] | None = None,
) -> bytes:
    flags = 0x02  # clean session
    payload = _field(client_id)
    if will is not None:
        flags |= 0x04
        payload += _field(will[0]) + _field(will[1])
    if username is not None:
        flags |= 0x80
        payload += _field(username)
    if password is not None:
        flags |= 0x40
        payload += _field(password)
    body = _field(b"MQTT") + bytes([4, flags]) + struct.pack("!H", 30) + payload
    length, encoded = len(body), bytearray()
    while True:
        byte, length = length % 128, length // 128
        encoded.append(byte | (0x80 if length else 0))
        if not length:
            break
    return bytes([0x10]) + bytes(encoded) + body


def raw_connect(port: int, packet: bytes) -> bytes:
    """The gateway's answer to ``packet``: a CONNACK's bytes, or b"" when it just closed."""
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
        sock.sendall(packet)
        answer = b""
        while len(answer) < 4:
            chunk = sock.recv(4 - len(answer))
            if not chunk:
                break
            answer += chunk
        return answer


# --- the parser --------------------------------------------------------------------------


def _decode(packet: bytes) -> Connect:
    ((first, body),) = split_packets(packet)
    decoded = decode_packet(first, body, 4)
    assert isinstance(decoded, Connect)
    return decoded


def test_connect_fields_keep_password_bytes() -> None:
    packet = connect_packet(b"c-1", b"user", BINARY_PASSWORD, will=(b"t/w", b"\xff"))
    fields = _decode(packet)
    assert fields.password == BINARY_PASSWORD
    assert BINARY_PASSWORD.hex() not in repr(fields) and "binary" not in repr(fields)
    assert _decode(connect_packet(b"c-1")).password is None
    # Not UTF-8 where MQTT requires text: client id, will topic, username.
    for bad in (
        connect_packet(b"c-\xff"),
        connect_packet(b"c", b"u\xff", b"p"),
        connect_packet(b"c", will=(b"t\xff", b"m")),
    ):
        with pytest.raises(MalformedPacket):
            _decode(bad)
    # Truncated: no complete packet, or a body shorter than its fields.
    for cut in range(len(packet)):
        assert split_packets(packet[:cut]) == []  # incomplete: nothing decoded yet
    with pytest.raises(MalformedPacket):
        decode_packet(0x10, packet[2:-1], 4)
    assert decode_packet(0x20, b"\x00\x00", 4) != _decode(packet)  # a CONNACK, not a CONNECT


# --- through the gateway ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def binary_device(stack: StackInfo) -> str:
    """An identity whose chosen password is not UTF-8, added as a user would."""
    name = unique("bin")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "IOTAUTH_"))}
    env |= {
        "PYTHONPATH": str(ROOT),
        "AWS_ENDPOINT_URL": stack.aws_endpoint_url,
        "AWS_DEFAULT_REGION": stack.region,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "IOTAUTH_TABLE": stack.table_name,
    }
    result = subprocess.run(
        [*IOTAUTH, "devices", "add", name, "--password-stdin"],
        input=BINARY_PASSWORD,
        capture_output=True,
        env=env,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == b""  # a chosen password is never echoed
    return name


def test_binary_password_reaches_the_authorizer_as_sent(
    stack: StackInfo, binary_device: str, clients: Callable[..., Mqtt]
) -> None:
    username = username_for(stack, binary_device)
    ok = clients(binary_device)
    assert ok.connect(stack.tcp_port, username=username, password=BINARY_PASSWORD)  # type: ignore[arg-type]
    ok.close()
    # The bytes' repr or a latin-1 reading is not the password.
    for wrong in (str(BINARY_PASSWORD), BINARY_PASSWORD.decode("latin-1")):
        assert not clients(binary_device).connect(stack.tcp_port, username=username, password=wrong)


@pytest.mark.parametrize(
    "packet",
    [
        connect_packet(b"dev-\xff", b"u?x-amz-customauthorizer-name=iotauth", b"password-1234"),
        connect_packet(b"dev-1", b"u\xc3\x28?x-amz-customauthorizer-name=iotauth", b"p" * 12),
        connect_packet(b"dev-1", b"u", b"p" * 12, will=(b"t/\xff", b"bye")),
    ],
    ids=["client-id", "username", "will-topic"],
)
def test_non_utf8_text_fields_close_the_connection(
    stack: StackInfo, packet: bytes, clients: Callable[..., Mqtt], binary_device: str
) -> None:
    assert raw_connect(stack.tcp_port, packet) == b""  # closed, no CONNACK
    # The gateway is unharmed: a well-formed CONNECT with the same bytes password works.
    good = connect_packet(
        binary_device.encode(), username_for(stack, binary_device).encode(), BINARY_PASSWORD
    )
    assert raw_connect(stack.tcp_port, good) == b"\x20\x02\x00\x00"
