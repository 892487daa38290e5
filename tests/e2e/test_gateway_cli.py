"""``iotauth local`` as a user runs it: prints where everything is, stops on a signal,
and a busy port is a one-line error."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

IOTAUTH = [sys.executable, "-c", "import sys; from iotauth.cli import main; sys.exit(main())"]
ALL_FREE = [
    f"--{name}-port=0" for name in ("iot", "web", "signer", "aws", "mqtt", "mqtts", "ws", "issuer")
]
ROOT = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "IOTAUTH_"))}
    env["PYTHONPATH"] = str(ROOT)
    return env


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_local_prints_endpoints_and_stops_cleanly(sig: signal.Signals, tmp_path: Path) -> None:
    # SIGINT: logs to a file; SIGTERM: -v, logs on the terminal.
    logging = [f"--log-file={tmp_path / 'local.log'}"] if sig == signal.SIGINT else ["-v"]
    process = subprocess.Popen(
        [*IOTAUTH, "local", *ALL_FREE, *logging],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
        cwd=ROOT,
    )
    try:
        assert process.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "Press Ctrl-C" in line:
                break
        text = "".join(lines)
        assert "Press Ctrl-C" in text, text
        labels = ("Chat page", "Signer", "IoT endpoint", "MQTT over TCP", "MQTT over TLS")
        for label in (*labels, "MQTT over WS", "CA certificate"):
            assert label in text
        assert "sensor-1" in text and "iotsk_" in text
        assert "alice" in text and "bob" in text
        logs = str(tmp_path / "local.log") if sig == signal.SIGINT else "on the terminal"
        assert f"Logs            {logs}" in text
        process.send_signal(sig)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)


def test_busy_port_is_a_one_line_error() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        busy = holder.getsockname()[1]
        result = subprocess.run(
            [*IOTAUTH, "local", *ALL_FREE, f"--web-port={busy}"],
            check=False,
            capture_output=True,
            text=True,
            env=_env(),
            cwd=ROOT,
            timeout=60,
        )
    assert result.returncode == 2
    assert result.stderr.strip() == (f"iotauth: error: port {busy} (--web-port) is already in use")
