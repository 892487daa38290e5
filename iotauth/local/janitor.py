"""What ``iotauth local`` leaves behind if it dies: nothing, even on SIGKILL or the OOM killer.

Contract: :class:`Janitor` starts a small child (``python -I -S``, its own session, so a
terminal's Ctrl-C does not reach it) that reads instructions on a pipe from this process:
paths to remove and process groups to kill. When the pipe closes, whether because this
process stopped it or because this process died however it died (the kernel closes a dead
process's pipes), the child kills the groups still named and removes the paths still named,
then exits. A clean stop does its own cleanup first and "forgets" what it cleaned, so the
child has nothing left to do. :func:`launch_with_parent_death` is the other half: on Linux a
child started through it gets SIGKILL when the thread that started it dies (``prctl
PR_SET_PDEATHSIG``), even if the janitor itself was killed.

The one reason: the stack's temporary directories hold a TLS private key and the engine's
socket, and its engine (mosquitto) would outlive it as an orphan.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

__all__ = ["Janitor", "current", "launch_with_parent_death", "start_janitor"]

# The child: read "rm <path>", "kill <pgid>", "forget-rm <path>", "forget-kill <pgid>" lines
# until EOF, then do what is still asked. Runs with -I -S: no site, no environment, no cwd.
_CHILD = r"""
import os, shutil, signal, sys
paths, groups = [], []
for line in sys.stdin.buffer:
    verb, _, arg = line.rstrip(b"\n").decode("utf-8", "surrogateescape").partition(" ")
    if verb == "rm":
        paths.append(arg)
    elif verb == "kill":
        groups.append(int(arg))
    elif verb == "forget-rm" and arg in paths:
        paths.remove(arg)
    elif verb == "forget-kill" and int(arg) in groups:
        groups.remove(int(arg))
for group in groups:
    try:
        os.killpg(group, signal.SIGKILL)
    except OSError:
        pass
for path in paths:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            os.unlink(path)
        except OSError:
            pass
"""

# Exec argv[2:] with SIGKILL on the death of the starting thread (Linux), unless the parent
# (argv[1]) is already gone: the one race prctl leaves.
_PDEATHSIG = r"""
import ctypes, os, signal, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(1, int(signal.SIGKILL), 0, 0, 0) != 0:
    sys.exit(70)
if os.getppid() != int(sys.argv[1]):
    sys.exit(71)
os.execv(sys.argv[2], sys.argv[2:])
"""

_lock = threading.Lock()
_current: Janitor | None = None


class Janitor:
    """The child that cleans up after this process; :meth:`close` ends it (clean stop)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = subprocess.Popen(  # noqa: S603
            [sys.executable, "-I", "-S", "-c", _CHILD],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
        )

    def _send(self, verb: str, arg: str) -> None:
        if "\n" in arg:
            raise ValueError("a path with a newline cannot be handed to the janitor")
        with self._lock:
            process = self._process
            if process is None or process.stdin is None:
                return
            with contextlib.suppress(OSError):
                process.stdin.write(f"{verb} {arg}\n".encode("utf-8", "surrogateescape"))
                process.stdin.flush()

    def remove_on_exit(self, path: Path) -> None:
        self._send("rm", str(path))

    def forget_path(self, path: Path) -> None:
        self._send("forget-rm", str(path))

    def kill_on_exit(self, process_group: int) -> None:
        self._send("kill", str(process_group))

    def forget_group(self, process_group: int) -> None:
        self._send("forget-kill", str(process_group))

    def close(self) -> None:
        """End the child: it does what is still asked (nothing, after a clean stop)."""
        global _current  # noqa: PLW0603
        with _lock:
            if _current is self:
                _current = None
        with self._lock:
            process, self._process = self._process, None
        if process is None:
            return
        if process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def current() -> Janitor | None:
    """The janitor of the running stack, if one runs in this process."""
    return _current


def start_janitor() -> Janitor:
    """A new :class:`Janitor`, :func:`current` until it is closed."""
    global _current  # noqa: PLW0603 - the stack's one janitor
    keeper = Janitor()
    with _lock:
        _current = keeper
    return keeper


def launch_with_parent_death(argv: Sequence[str]) -> list[str]:
    """``argv`` to run instead so that, on Linux, the program dies with its starter."""
    if sys.platform != "linux":
        return list(argv)
    return [sys.executable, "-I", "-S", "-c", _PDEATHSIG, str(os.getpid()), *argv]
