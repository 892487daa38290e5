"""The example clients (examples/) against the local stack, as a reader would run them."""

from __future__ import annotations

import importlib.util
import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from iotauth.local.stack import LocalPorts, LocalStack, StackInfo

EXAMPLES = Path(__file__).resolve().parent.parent.parent / "examples"

pytestmark = pytest.mark.e2e


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"examples_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def stack() -> Iterator[StackInfo]:
    with LocalStack(LocalPorts.any_free()) as running:
        yield running.info


def received(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


@pytest.mark.parametrize("transport", ["tcp", "tls"])
def test_device_client_round_trip(
    stack: StackInfo,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    transport: str,
) -> None:
    device, secret = next(iter(stack.devices.items()))
    monkeypatch.setenv("IOTAUTH_PASSWORD", secret)
    port = stack.tcp_port if transport == "tcp" else stack.tls_port
    tls = ["--ca-file", str(stack.ca_cert_path)] if transport == "tls" else []
    status = load("device_client").main(
        [
            "--local", "--port", str(port), *tls, "--authorizer", stack.authorizer_name,
            "--username", device, "--subscribe", f"{stack.chat_room}/+",
            "--subscribe", f"{device}/#", "--topic", f"{stack.chat_room}/{device}",
            "--message", f"hello over {transport}", "--listen", "1",
        ]
    )  # fmt: skip
    out, err = capsys.readouterr()
    assert status == 0, err
    assert f"subscribed: {stack.chat_room}/+" in err
    expected = {"topic": f"{stack.chat_room}/{device}", "payload": f"hello over {transport}"}
    assert expected in received(out)
    assert secret not in out + err


def test_device_client_wrong_password(
    stack: StackInfo, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    device, secret = next(iter(stack.devices.items()))
    monkeypatch.setattr(sys, "stdin", io.StringIO(secret + "-wrong\n"))
    status = load("device_client").main(
        ["--local", "--port", str(stack.tcp_port), "--authorizer", stack.authorizer_name,
         "--username", device, "--password-stdin"]
    )  # fmt: skip
    _, err = capsys.readouterr()
    assert status == 1
    assert "connection refused" in err


def test_device_client_foreign_topic_refused(
    stack: StackInfo, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (device, secret), (other, _) = list(stack.devices.items())[:2]
    monkeypatch.setenv("IOTAUTH_PASSWORD", secret)
    status = load("device_client").main(
        ["--local", "--port", str(stack.tcp_port), "--authorizer", stack.authorizer_name,
         "--username", device, "--subscribe", f"{other}/#", "--listen", "0"]
    )  # fmt: skip
    _, err = capsys.readouterr()
    assert status == 0
    assert f"refused: {other}/#" in err


def test_presigned_client_round_trip(
    stack: StackInfo, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IOTAUTH_TOKEN", stack.dev_tokens["alice"])
    status = load("presigned_client").main(
        ["--signer-url", stack.signer_url, "--message", "hi from a script", "--listen", "1"]
    )
    out, err = capsys.readouterr()
    assert status == 0, err
    assert "subscribed: web-alice/inbox" in err
    assert f"subscribed: {stack.chat_room}/+" in err
    messages = received(out)
    assert messages and messages[0]["topic"] == f"{stack.chat_room}/web-alice"
    assert json.loads(messages[0]["payload"]) == {"text": "hi from a script"}
    assert "X-Amz-Signature" not in out + err


def test_presigned_client_tampered_url_refused(
    stack: StackInfo, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    client = load("presigned_client")
    signed = client.fetch_signed_url(stack.signer_url, stack.dev_tokens["bob"])
    tampered = signed.url.replace("X-Amz-Signature=", "X-Amz-Signature=0")
    monkeypatch.setattr(sys, "stdin", io.StringIO(tampered + "\n"))
    with pytest.raises(SystemExit, match="connection refused"):
        client.main(["--url-stdin", "--client-id", signed.client_id])
