"""Where a running ``iotauth local`` is: a small state file, and the shell lines that point the
CLI at it (``eval "$(iotauth local env)"``).

Contract: :func:`write_state` writes ``local.json`` (owner-only) under ``$XDG_RUNTIME_DIR/
iotauth/`` or else ``~/.cache/iotauth/``: the process id, the ports, the table, region and
shared topic roots, never a secret (the stand-in's credentials are fixed fake values, in
:data:`~iotauth.local.aws_standin.FAKE_CREDENTIALS`). :func:`remove_state` removes it if it
is still this process's. :func:`read_state` returns it only while that process lives.
:func:`cli_environment` / :func:`shell_lines` are the variables the CLI needs, one
``export`` line. Cheap to import: the CLI's ``local env`` runs without the stack.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "cli_environment",
    "read_state",
    "remove_state",
    "shell_lines",
    "state_path",
    "write_state",
]

_FAKE_KEY = "testing"  # moto's; == aws_standin.FAKE_CREDENTIALS (tested), not imported: cheap


def state_path() -> Path:
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime).is_dir():
        return Path(runtime) / "iotauth" / "local.json"
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "iotauth" / "local.json"


def write_state(state: Mapping[str, Any], path: Path | None = None) -> Path:
    """Write ``state`` (plus this process's id) atomically, mode 0600; return the path."""
    path = path or state_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump({**state, "pid": os.getpid()}, out, indent=2, sort_keys=True)
    os.replace(temporary, path)
    return path


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_state(path: Path | None = None) -> dict[str, Any] | None:
    """The running stack's state, or None (no file, unreadable, or its process is gone)."""
    path = path or state_path()
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(state, dict) or not _alive(state.get("pid")):
        return None
    return state


def remove_state(path: Path | None = None) -> None:
    """Remove the state file if this process wrote it (another stack may have since)."""
    path = path or state_path()
    with contextlib.suppress(OSError, ValueError):
        if json.loads(path.read_text(encoding="utf-8")).get("pid") == os.getpid():
            path.unlink()


def cli_environment(state: Mapping[str, Any]) -> dict[str, str]:
    """The variables that point the AWS SDK and ``iotauth`` at the stand-in."""
    region = str(state["region"])
    environment = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{int(state['aws_port'])}",
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_ACCESS_KEY_ID": _FAKE_KEY,
        "AWS_SECRET_ACCESS_KEY": _FAKE_KEY,
        "IOTAUTH_TABLE": str(state["table"]),
    }
    roots = state.get("shared_topic_roots")
    if isinstance(roots, str) and roots:
        environment["IOTAUTH_SHARED_TOPIC_ROOTS"] = roots
    return environment


def shell_lines(state: Mapping[str, Any]) -> list[str]:
    """``export …`` (one line), then ``unset`` of what would send requests elsewhere."""
    pairs = " ".join(f"{k}={shlex.quote(v)}" for k, v in cli_environment(state).items())
    return [f"export {pairs}", "unset AWS_PROFILE AWS_SESSION_TOKEN"]
