"""Running the ``iotauth`` CLI in-process as a user does: argv, stdin piped in, and what it
printed (captured by pytest)."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest

from iotauth.cli import main

Run = Callable[..., tuple[int, str, str]]
"""``run(*argv, stdin=b"")`` → ``(exit code, stdout, stderr)``."""


class _Stdin:
    def __init__(self, data: bytes) -> None:
        self.buffer = io.BytesIO(data)


def cli_runner(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Run:
    """A :data:`Run`: each call reads only what that command printed."""

    def call(*argv: str, stdin: bytes = b"") -> tuple[int, str, str]:
        monkeypatch.setattr("sys.stdin", _Stdin(stdin))
        capsys.readouterr()
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return call
