"""``--password-stdin`` on a terminal: typed twice without echo, and a mismatch writes nothing.

The command runs in a child process on a pseudo-terminal (``pty.fork``), against the moto
server's table, and this test types at it as a person would: it waits for each prompt, then
writes the line. What the terminal showed is everything the master side read.
"""

from __future__ import annotations

import os
import pty
import select
import sys
import time
from pathlib import Path

import pytest

from iotauth.cli import EXIT_OK, EXIT_USAGE
from iotauth.identities.store import DynamoDBStore
from tests.cli_support import Run, cli_runner

ROOT = Path(__file__).resolve().parents[2]
CLI = "import sys; from iotauth.cli import main; sys.exit(main(sys.argv[1:]))"
PASSPHRASE = "correct horse battery"

# pty.fork warns in a threaded process (moto's server): the child only execs, so no lock of
# the parent's threads is ever taken in it.
pytestmark = pytest.mark.filterwarnings("ignore:This process .* is multi-threaded")


def _type_at(argv: list[str], answers: list[tuple[bytes, bytes]]) -> tuple[int, bytes]:
    """Run the CLI on a terminal; on each prompt in ``answers`` type its line. (exit, screen)"""
    pid, fd = pty.fork()
    if pid == 0:  # the child: its stdin, stdout and stderr are the terminal
        try:
            os.chdir(ROOT)
            os.execv(sys.executable, [sys.executable, "-c", CLI, *argv])
        finally:
            os._exit(127)
    screen = b""
    pending = list(answers)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            screen += chunk
            if pending and screen.endswith(pending[0][0]):
                os.write(fd, pending.pop(0)[1])
    finally:
        os.close(fd)
        _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), screen


@pytest.fixture
def run(
    dynamodb_table: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Run:
    return cli_runner(monkeypatch, capsys)


def test_typed_twice_without_echo(run: Run, dynamodb_table: str) -> None:
    line = PASSPHRASE.encode() + b"\n"
    code, screen = _type_at(
        ["devices", "add", "carol", "--password-stdin"],
        [(b"Password: ", line), (b"Repeat: ", line)],
    )
    assert code == EXIT_OK, screen
    assert b"Password: " in screen and b"Repeat: " in screen
    assert PASSPHRASE.encode() not in screen  # not echoed, not printed
    record = DynamoDBStore(dynamodb_table).get_identity("carol")
    assert record is not None and record.kind == "password"
    code, _, _ = run(
        "authorize", "--username", "carol", "--password-stdin", stdin=PASSPHRASE.encode()
    )
    assert code == 0  # what was typed, without its newline, is the password


def test_a_mismatch_is_refused_and_writes_nothing(dynamodb_table: str) -> None:
    code, screen = _type_at(
        ["devices", "add", "carol", "--password-stdin"],
        [(b"Password: ", PASSPHRASE.encode() + b"\n"), (b"Repeat: ", b"correct horse batery\n")],
    )
    assert code == EXIT_USAGE
    assert b"differ" in screen and b"nothing was changed" in screen
    assert PASSPHRASE.encode() not in screen and b"batery" not in screen
    assert DynamoDBStore(dynamodb_table).get_identity("carol") is None


def test_a_rotated_secret_is_typed_twice_too(run: Run, dynamodb_table: str) -> None:
    assert run("devices", "add", "dave", "--password-stdin", stdin=b"the first passphrase")[0] == 0
    before = DynamoDBStore(dynamodb_table).get_identity("dave")
    code, screen = _type_at(
        ["devices", "rotate", "dave", "--password-stdin", "--no-disconnect"],
        [(b"Password: ", b"a second passphrase\n"), (b"Repeat: ", b"a third passphrase\n")],
    )
    assert code == EXIT_USAGE and b"differ" in screen
    assert DynamoDBStore(dynamodb_table).get_identity("dave") == before
