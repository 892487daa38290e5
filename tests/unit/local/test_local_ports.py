"""IoT's port for the local stand-in: 443 when the process may bind it, else 8443 with the
one-line way to allow 443 (probed with a stand-in socket: tests never bind 443)."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import pytest

from iotauth.local import stack as stack_module
from iotauth.local.stack import StackInfo, _choose_iot_port, banner


class _Probe:
    def __init__(self, error: OSError | None) -> None:
        self.error = error
        self.bound: list[Any] = []

    def __call__(self, *args: Any) -> _Probe:
        return self

    def __enter__(self) -> _Probe:
        return self

    def __exit__(self, *args: Any) -> None:
        return None

    def bind(self, address: Any) -> None:
        self.bound.append(address)
        if self.error is not None:
            raise self.error


def test_443_when_bindable(monkeypatch: pytest.MonkeyPatch) -> None:
    probe = _Probe(None)
    monkeypatch.setattr(stack_module.socket, "socket", probe)
    assert _choose_iot_port(None) == (443, "")
    assert probe.bound == [("127.0.0.1", 443)]


def test_8443_with_the_way_to_allow_443(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stack_module.socket, "socket", _Probe(PermissionError(errno.EACCES, "no")))
    port, note = _choose_iot_port(None)
    assert port == 8443
    assert "setcap 'cap_net_bind_service=+ep'" in note and "ip_unprivileged_port_start" in note
    monkeypatch.setattr(stack_module.socket, "socket", _Probe(OSError(errno.EADDRINUSE, "busy")))
    assert _choose_iot_port(None) == (8443, "443 is in use")


def test_an_explicit_port_is_not_probed(monkeypatch: pytest.MonkeyPatch) -> None:
    probe = _Probe(None)
    monkeypatch.setattr(stack_module.socket, "socket", probe)
    assert _choose_iot_port(0) == (0, "")
    assert _choose_iot_port(9443) == (9443, "")
    assert probe.bound == []


def test_banner_names_every_listener_and_the_note() -> None:
    info = StackInfo(
        page_url="http://127.0.0.1:8000/",
        signer_url="http://127.0.0.1:8001/mqtt-url",
        dev_tokens={"alice": "dev-x"},
        gateway_ws_url="ws://127.0.0.1:8083/mqtt",
        authorizer_name="iotauth",
        mqtt_port=1883,
        mqtts_port=8883,
        ca_cert_path=Path("/tmp/ca.pem"),
        devices={"sensor-1": "iotsk_x"},
        ws_port=8083,
        aws_endpoint_url="http://127.0.0.1:5005",
        table_name="t",
        region="us-east-1",
        client_role_arn="arn:aws:iam::123456789012:role/r",
        chat_room="chat/lobby",
        iot_port=8443,
        iot_port_note="443 needs privileges: sudo setcap 'cap_net_bind_service=+ep' /py",
    )
    text = banner(info)
    for expected in ("localhost:8443", "8883", "1883", "ws://127.0.0.1:8083/mqtt", "setcap"):
        assert expected in text
