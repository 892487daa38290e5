"""``iotauth local --log-file``: every log record, tracebacks included, goes to the file the
banner names; the terminal gets none (the old setup also copied errors to stderr)."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

from iotauth.cli.local import _configure_logging


def test_errors_and_thread_crashes_go_to_the_file_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "local.log"
    with path.open("a", encoding="utf-8") as log:
        handlers = _configure_logging(False, log)
        try:
            try:
                raise RuntimeError("boom in a handler")
            except RuntimeError:
                logging.getLogger("iotauth.local").exception("error while stopping")

            def crash() -> None:
                raise ValueError("boom in a thread")

            thread = threading.Thread(target=crash, name="worker")
            thread.start()
            thread.join(5)
        finally:
            for handler in handlers:
                logging.getLogger().removeHandler(handler)
            threading.excepthook = threading.__excepthook__
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""
    logged = path.read_text(encoding="utf-8")
    assert "Traceback" in logged
    assert "RuntimeError: boom in a handler" in logged
    assert "ValueError: boom in a thread" in logged and "worker" in logged
