"""Nothing secret reaches a log: not a device secret, a wrong password, a bearer token, a
presigned URL, its signature or its session token, at any log level, nor the log file of
``iotauth local``."""

from __future__ import annotations

import json
import logging
import re
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from iotauth.local.stack import StackInfo
from tests.e2e.conftest import Mqtt, port_of, unique, username_for, ws_path_of
from tests.e2e.test_gateway_cli import ALL_FREE, IOTAUTH, ROOT
from tests.e2e.test_gateway_cli import _env as cli_env

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


def _banner_value(text: str, pattern: str) -> str:
    found = re.search(pattern, text, re.MULTILINE)
    assert found, f"{pattern!r} not in the banner:\n{text}"
    return found.group(1)


def test_iotauth_local_logs_to_its_file_only(tmp_path: Path) -> None:
    """``iotauth local``: the terminal shows the banner; the handlers' Powertools logs and the
    gateway's go to the log file, INFO included, with no secret in it."""
    log_file = tmp_path / "run" / "local.log"
    process = subprocess.Popen(
        [*IOTAUTH, "local", *ALL_FREE, f"--log-file={log_file}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
        cwd=ROOT,
    )
    secrets: list[str] = []
    try:
        assert process.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "Press Ctrl-C" not in "".join(lines[-1:]):
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
        text = "".join(lines)
        assert "Press Ctrl-C" in text, text
        assert f"Logs            {log_file}" in text
        assert not [line for line in lines if line.lstrip().startswith("{")]  # no JSON logs

        tcp_port = int(_banner_value(text, r"MQTT over TCP\s+127\.0\.0\.1:(\d+)"))
        secret = _banner_value(text, r"^\s+sensor-1\s+(\S+)$")
        token = _banner_value(text, r"^\s+alice\s+(\S+)$")
        signer_url = _banner_value(text, r"Signer\s+GET (\S+)")
        authorizer = _banner_value(text, r"customauthorizer-name=([\w=,@-]+)")
        wrong = secret[:-6] + "wrong1"
        secrets += [secret, wrong, token]
        username = f"sensor-1?x-amz-customauthorizer-name={authorizer}"
        for password, expected in ((secret, True), (wrong, False)):
            client = Mqtt("sensor-1", "tcp")
            try:
                assert client.connect(tcp_port, username=username, password=password) is expected
            finally:
                client.close()
        request = urllib.request.Request(signer_url, headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            url = json.loads(response.read())["url"]
        secrets += [url, url.split("X-Amz-Signature=")[1][:64]]

        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0
        assert process.stderr is not None
        stderr = process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)

    assert str(log_file) in stderr  # "stopping… (logs: …)"
    assert (log_file.stat().st_mode & 0o777) == 0o600
    logged = log_file.read_text(encoding="utf-8")
    records = [json.loads(line) for line in logged.splitlines() if line.startswith("{")]
    services = {r.get("service") for r in records}
    assert {"iotauth-authorizer", "iotauth-signer"} <= services  # Powertools, INFO level
    assert {"connect allowed", "connect denied"} <= {r.get("message") for r in records}
    assert "CONNECT refused by the authorizer" in logged  # the gateway's own log
    for value in secrets:
        assert value not in logged
        assert value not in stderr
