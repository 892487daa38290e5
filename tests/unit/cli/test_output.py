"""``iotauth.cli.output``: --json or text, and progress on a terminal or in a log."""

from __future__ import annotations

import argparse
import io
import json

import pytest

from iotauth.cli.output import Progress, add_json_flag, emit, progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    add_json_flag(parser)
    return parser


def test_emit_json_or_text(capsys: pytest.CaptureFixture[str]) -> None:
    result = {"username": "alice", "closed": ["a1"]}
    emit(_parser().parse_args(["--json"]), result, lambda: print("text"))
    assert json.loads(capsys.readouterr().out) == result
    emit(_parser().parse_args([]), result, lambda: print("text"))
    assert capsys.readouterr().out == "text\n"
    emit(_parser().parse_args([]), result)  # no text: the command said it on stderr
    assert capsys.readouterr().out == ""


def test_plain_lines_every_n_records_off_a_terminal() -> None:
    log = io.StringIO()
    with progress(250, "importing", every=100, stream=log) as bar:
        for _ in range(250):
            bar.advance()
    lines = log.getvalue().splitlines()
    assert [line.split(",")[0] for line in lines] == [
        "importing: 100/250 (40%)",
        "importing: 200/250 (80%)",
        "importing: 250/250 (100%)",
    ]
    assert "\r" not in log.getvalue() and "\x1b" not in log.getvalue()


def test_no_duplicate_last_line_and_unknown_totals() -> None:
    log = io.StringIO()
    with progress(None, "listing", every=2, stream=log) as bar:
        bar.advance(4)
    assert [line.split(",")[0] for line in log.getvalue().splitlines()] == ["listing: 4"]


def test_a_bar_with_rate_and_eta_on_a_terminal() -> None:
    now = [0.0]
    screen = _Terminal()
    bar = Progress(100, "importing", stream=screen, tty=True, every=10, clock=lambda: now[0])
    now[0] = 2.0
    bar.advance(10)  # 10 in 2 s: 5/s, 90 left: 18 s
    drawn = screen.getvalue()
    assert drawn.startswith("\rimporting [##") and "10/100 (10%)" in drawn
    assert "5.0/s" in drawn and "ETA 0:18" in drawn
    now[0] = 2.05
    bar.advance()  # within 0.1 s of the last bar: not redrawn
    assert screen.getvalue() == drawn
    now[0] = 20.0
    bar.advance(89)
    bar.finish()
    assert screen.getvalue().endswith("100/100 (100%) 5.0/s\x1b[K\n")


def test_the_last_state_is_written_when_the_block_fails() -> None:
    log = io.StringIO()
    with pytest.raises(RuntimeError), progress(10, "importing", every=100, stream=log) as bar:
        bar.advance(3)
        raise RuntimeError
    assert log.getvalue().startswith("importing: 3/10 (30%)")
