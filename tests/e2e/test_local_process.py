"""``iotauth local`` as users run it, a real process: what it leaves behind when it ends, how
``iotauth local env`` points the CLI at it, and how it refuses a bad ``-p`` value.

Guarantees under test: on SIGTERM (and Ctrl-C) the stack stops cleanly, exit 0, and removes
its engine and TLS directories and its state file (the log file stays: the banner named it).
On SIGKILL nothing of the process runs, so its janitor (a child reading a pipe the kernel
closes) kills mosquitto and removes the same directories and the state file; on Linux,
mosquitto also gets SIGKILL from the kernel (PR_SET_PDEATHSIG). The TLS private key is
removed from disk as soon as the listeners hold it, so no key file exists even meanwhile.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

IOTAUTH = str(Path(sys.executable).with_name("iotauth"))
PORTS = [f"--{n}-port=0" for n in ("web", "signer", "aws", "mqtt", "mqtts", "ws", "iot", "issuer")]
START = 90.0  # seconds: the longest a start may take on a loaded machine


def _environment(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "tmp").mkdir()
    (tmp_path / "run").mkdir(mode=0o700)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "IOTAUTH_"))}
    env.update(TMPDIR=str(tmp_path / "tmp"), XDG_RUNTIME_DIR=str(tmp_path / "run"))
    return env


def _start(env: dict[str, str], *extra: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [IOTAUTH, "local", *PORTS, *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    banner: list[str] = []
    deadline = time.monotonic() + START
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break  # it ended: the assertion below shows what it printed
        banner.append(line)
        if line.startswith("Press Ctrl-C"):
            return process, "".join(banner)
    process.kill()
    process.wait(timeout=10)
    raise AssertionError("iotauth local did not report ready:\n" + "".join(banner))


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _gone(pids: list[int], paths: list[Path], within: float = 15.0) -> bool:
    """Whether every process and path is gone, waiting for at most ``within`` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not any(_alive(p) for p in pids) and not any(p.exists() for p in paths):
            return True
        time.sleep(0.05)
    return False


def _key_material(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and b"PRIVATE KEY" in p.read_bytes()[:4096]]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
def test_nothing_is_left_behind(tmp_path: Path, how: signal.Signals) -> None:
    env = _environment(tmp_path)
    process, banner = _start(env)
    try:
        children = _children(process.pid)
        engine = [c for c in children if "mosquitto" in _command(c)]
        assert len(engine) == 1, [_command(c) for c in children]
        state = tmp_path / "run" / "iotauth" / "local.json"
        made = [p for p in (tmp_path / "tmp").iterdir() if not p.name.startswith("iotauth-run-")]
        assert sorted(p.name.split("-")[1] for p in made) == ["engine", "local"]
        assert state.is_file()
        assert _key_material(tmp_path) == []  # the listeners hold the key; the disk does not
        assert "export AWS_ENDPOINT_URL=http://127.0.0.1:" in banner
    finally:
        process.send_signal(how)
        code = process.wait(timeout=30)
    assert code == (0 if how == signal.SIGTERM else -signal.SIGKILL)
    assert _gone(children, [*made, state]), (
        [(c, _command(c)) for c in children if _alive(c)],
        [p for p in (*made, state) if p.exists()],
    )
    assert _key_material(tmp_path) == []


def test_local_env_points_the_cli_at_the_running_stack(tmp_path: Path) -> None:
    env = _environment(tmp_path)
    refused = subprocess.run(
        [IOTAUTH, "local", "env"], env=env, check=False, capture_output=True, text=True, timeout=60
    )
    assert refused.returncode == 2 and "no running `iotauth local`" in refused.stderr
    process, banner = _start(env)
    try:
        shell = subprocess.run(
            [
                "bash",
                "-c",
                f'eval "$({IOTAUTH} local env)" && {IOTAUTH} devices list --json'
                ' && echo "$AWS_ENDPOINT_URL"',
            ],
            env={**env, "AWS_PROFILE": "elsewhere"},
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert shell.returncode == 0, shell.stderr
        endpoint = shell.stdout.strip().splitlines()[-1]
        assert f"AWS (moto)      {endpoint}  " in banner
        for name in ("sensor-1", "demo-device", "demo-sensor&a1DemoPK"):
            assert name in shell.stdout
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


@pytest.mark.parametrize(
    ("parameter", "says"),
    [
        ("LockoutThreshold=1000", "out of range (MaxValue 100)"),
        ("LockoutThreshold=five", "is not a number"),
        ("Monitoring=maybe", "is not one of"),
        ("AuthorizerName=" + "a" * 129, "too long"),
        ("NoSuchParameter=1", "no parameter 'NoSuchParameter'"),
        # The old --help example: the template allows it, the signer would refuse it.
        ("WebPublishGrants=chat/lobby,chat/news", "the signer refuses its configuration"),
    ],
)
def test_a_bad_parameter_is_refused_before_ready(tmp_path: Path, parameter: str, says: str) -> None:
    env = _environment(tmp_path)
    result = subprocess.run(
        [IOTAUTH, "local", *PORTS, "-p", parameter],
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=START,
    )
    assert result.returncode == 2
    assert "Press Ctrl-C" not in result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], result.stderr
    assert list((tmp_path / "tmp").iterdir()) == []  # nothing started, nothing left


def test_the_help_example_is_accepted(tmp_path: Path) -> None:
    help_text = subprocess.run(
        [IOTAUTH, "local", "--help"], check=False, capture_output=True, text=True, timeout=60
    ).stdout
    example = help_text.split("e.g.", 1)[1].split()[0]
    process, _ = _start(_environment(tmp_path), "-p", example)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
