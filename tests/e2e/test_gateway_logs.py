"""Nothing secret reaches a log: not a device secret, a wrong password, a bearer token, a
presigned URL, its signature or its session token, at any log level."""

from __future__ import annotations

import json
import logging
import urllib.request
from collections.abc import Callable

import pytest

from iotauth.local.stack import StackInfo
from tests.e2e.conftest import Mqtt, port_of, unique, username_for, ws_path_of

pytestmark = pytest.mark.e2e


def test_no_secret_in_any_log(
    stack: StackInfo,
    add_device: Callable[..., str],
    clients: Callable[..., Mqtt],
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    secrets: list[str] = []

    name = unique("dev")
    secret = add_device(name)
    wrong = secret[:-6] + "wrong1"
    secrets += [secret, wrong]
    for transport in ("tcp", "tls", "ws"):
        ok = clients(name, transport)
        assert ok.connect(
            port_of(stack, transport),
            username=username_for(stack, name),
            password=secret,
            ca_cert=stack.ca_cert_path,
        )
        ok.close()
        bad = clients(name, transport)
        assert not bad.connect(
            port_of(stack, transport),
            username=username_for(stack, name),
            password=wrong,
            ca_cert=stack.ca_cert_path,
        )

    token = stack.dev_tokens["alice"]
    secrets.append(token)
    request = urllib.request.Request(stack.signer_url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        answer = json.loads(response.read())
    url: str = answer["url"]
    query = dict(p.split("=", 1) for p in url.split("?", 1)[1].split("&"))
    secrets += [url, query["X-Amz-Signature"], query["X-Amz-Security-Token"]]
    browser = clients(answer["clientId"], "ws")
    assert browser.connect(stack.ws_port, ws_path=ws_path_of(url))
    tampered = url.replace("X-Amz-Signature=", "X-Amz-Signature=f")
    secrets.append(tampered.split("X-Amz-Signature=")[1][:64])
    with pytest.raises(OSError):
        clients(answer["clientId"], "ws").connect(stack.ws_port, ws_path=ws_path_of(tampered))

    captured = capfd.readouterr()
    logged = "\n".join([caplog.text, captured.out, captured.err])
    assert "connect denied" in logged or "CONNECT refused" in logged  # logs were captured
    for value in secrets:
        assert value not in logged
    assert query["X-Amz-Security-Token"][:24] not in logged
