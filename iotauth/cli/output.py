"""What every ``iotauth`` command prints, and how: ``--json``, progress, a closed pipe.

A command that prints takes ``--json`` (:func:`add_json_flag`) and hands its result to
:func:`emit`: one JSON document on stdout for scripts, or its human text. Status lines go to
stderr (:func:`note`) so that stdout stays parseable; :func:`progress` draws a bar with rate
and ETA on a terminal and a plain line every ``every`` records otherwise (logs, CI). Nothing
here is given a secret to print except where a command prints one on purpose, on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

__all__ = [
    "Progress",
    "add_json_flag",
    "emit",
    "listed_names",
    "note",
    "print_json",
    "progress",
    "progress_every",
    "silence_stdout",
    "wants_json",
]


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    """``--json``: print the result as one JSON document on stdout instead of text."""
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the result as JSON on stdout (status lines still go to stderr)",
    )


def wants_json(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "json", False))


def print_json(obj: Any) -> None:
    """``obj`` as indented JSON on stdout (non-JSON values such as datetimes as strings)."""
    print(json.dumps(obj, indent=2, default=str), flush=True)


def emit(args: argparse.Namespace, obj: Any, human: Callable[[], None] | None = None) -> None:
    """``obj`` as JSON with ``--json``; otherwise call ``human`` (which prints the text, or
    nothing when it is None: the command then says it all on stderr)."""
    if wants_json(args):
        print_json(obj)
    elif human is not None:
        human()


def note(message: str) -> None:
    """A status line for people, on stderr: never part of what a script parses."""
    print(message, file=sys.stderr, flush=True)


def silence_stdout() -> None:
    """After a BrokenPipeError: point stdout at /dev/null so that the interpreter's last
    flush at exit does not fail again (the Python docs' recipe for SIGPIPE)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # not a real file (tests) or closed already
        pass


def _format_seconds(seconds: float) -> str:
    seconds = max(0, int(seconds + 0.5))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    """Counts records done; see :func:`progress`."""

    _BAR = 24
    _REDRAW = 0.1  # seconds between two bars on a terminal

    def __init__(
        self,
        total: int | None,
        label: str,
        *,
        stream: TextIO,
        tty: bool,
        every: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = total
        self.label = label
        self.done = 0
        self._stream = stream
        self._tty = tty
        self._every = max(1, every)
        self._clock = clock
        self._start = clock()
        self._drawn_at = -1.0

    def advance(self, n: int = 1) -> None:
        """``n`` more records are done."""
        before = self.done
        self.done += n
        if self._tty:
            now = self._clock()
            if now - self._drawn_at >= self._REDRAW or self.done == self.total:
                self._drawn_at = now
                self._draw()
        elif self.done // self._every > before // self._every:
            self._line()

    def _rate(self) -> float:
        elapsed = self._clock() - self._start
        return self.done / elapsed if elapsed > 0 else 0.0

    def _counts(self) -> str:
        if self.total:
            return f"{self.done}/{self.total} ({100 * self.done // self.total}%)"
        return str(self.done)

    def _draw(self) -> None:
        rate = self._rate()
        parts = [self.label]
        if self.total:
            filled = min(self._BAR, self._BAR * self.done // self.total)
            parts.append("[" + "#" * filled + "-" * (self._BAR - filled) + "]")
        parts.append(self._counts())
        parts.append(f"{rate:.1f}/s")
        if self.total and rate > 0 and self.done < self.total:
            parts.append(f"ETA {_format_seconds((self.total - self.done) / rate)}")
        self._stream.write("\r" + " ".join(parts) + "\x1b[K")
        self._stream.flush()

    def _line(self) -> None:
        self._stream.write(f"{self.label}: {self._counts()}, {self._rate():.1f}/s\n")
        self._stream.flush()

    def finish(self) -> None:
        """The last state: the full bar and a newline, or a last plain line."""
        if self._tty:
            self._draw()
            self._stream.write("\n")
            self._stream.flush()
        elif self.done % self._every or self.done == 0:
            self._line()


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


@contextmanager
def progress(
    total: int | None, label: str, *, every: int = 100, stream: TextIO | None = None
) -> Iterator[Progress]:
    """Report progress on stderr while a block works through ``total`` records (None when
    unknown): ``with progress(len(rows), "importing") as bar: … bar.advance()``.

    On a terminal it redraws one line (bar, count, rate, ETA) at most ten times a second;
    elsewhere it writes a plain line every ``every`` records and one at the end, so logs
    stay readable. The last state is written even when the block raises."""
    out = stream if stream is not None else sys.stderr
    bar = Progress(total, label, stream=out, tty=_is_terminal(out), every=every)
    try:
        yield bar
    finally:
        bar.finish()


def progress_every(total: int) -> int:
    """The ``every`` of :func:`progress` for ``total`` records: a line per 5 %, at least 100."""
    return max(100, total // 20)


_SHOWN = 20  # names listed in one message


def listed_names(names: list[str]) -> str:
    """The first 20 of ``names``, quoted, and how many more there are."""
    shown = ", ".join(repr(n) for n in names[:_SHOWN])
    return shown + (f" … and {len(names) - _SHOWN} more" if len(names) > _SHOWN else "")
