"""Brute-force lockout rules (pure; the store keeps the state).

``threshold`` failures within ``window_seconds`` of the first one lock the username for
``lockout_seconds``. While locked, every *guessable* attempt is refused — the right
password too — and not counted. A guessable attempt that succeeds takes back only its own
count (it was counted before it was checked), never others' failures, not even those
counted while it was being checked (the store's delete or write is conditional on the
version, :mod:`iotauth.connect.authenticate`). So a success (the owner's sign-in, a live session's
refresh) shows nowhere in the state a guesser can probe, and loses no guess;
a generated secret's success leaves the counter alone. Unknown usernames are
counted exactly like known ones, so the lock state says nothing about whether an identity
exists.

What is counted and locked is decided by the presented credential, never by the record
(:mod:`iotauth.connect.authenticate`): chosen-password-shaped passwords and Aliyun signatures are;
generated-shaped secrets (256 bits) are neither, so nobody can lock a device that uses a
generated secret, and a guesser sees the same lock behaviour for every name and kind.

The window is fixed (it starts at the first failure), which makes the state small and the
rule easy to state: at most ``threshold`` guesses are checked per window — the
``threshold``-th failure is counted, checked, and sets the lock — then none until the lock
ends. Guessable credentials are counted before they are checked, so parallel guesses cannot
outrun the counter.

Known and accepted consequences (docs/lockout.md):

- Anyone who knows a username that uses a *chosen* password (or an Aliyun secret) can lock
  it: ``threshold`` wrong guesses deny the real device for ``lockout_seconds`` (and can be
  repeated), and a live session of it is dropped at its next refresh, because IoT Core's
  refresh replays the original CONNECT and no documented field tells it apart from a new
  one. That is the price of stopping online guessing of guessable secrets;
  ``iotauth devices enable NAME`` lifts a lock; generated secrets are immune.
- The owner's own wrong attempts count like anyone's until the window ends, even after the
  owner signs in successfully (a success no longer resets the counter: that reset was
  observable, and it gave a guesser ``threshold`` more guesses after every refresh).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from iotauth.wire.frozen import Frozen

__all__ = ["LockoutPolicy", "LockoutState", "after_failure", "is_locked", "without_one_failure"]

# TTL deletion is lazy (DynamoDB may keep an expired item for a while); the rules below
# never trust an expired state, the slack only keeps the table tidy.
_TTL_SLACK_SECONDS = 60


class LockoutPolicy(Frozen):
    __slots__ = ("lockout_seconds", "threshold", "window_seconds")
    threshold: int
    window_seconds: int
    lockout_seconds: int

    def __init__(
        self, threshold: int = 5, window_seconds: int = 900, lockout_seconds: int = 900
    ) -> None:
        if not 1 <= threshold <= 1000:
            raise ValueError("lockout threshold must be 1-1000")
        if not 1 <= window_seconds <= 86400 or not 1 <= lockout_seconds <= 86400:
            raise ValueError("lockout durations must be 1-86400 seconds")
        self._init(
            threshold=threshold, window_seconds=window_seconds, lockout_seconds=lockout_seconds
        )


@dataclass(frozen=True, slots=True)
class LockoutState:
    failures: int
    window_start: int  # epoch seconds of the first failure of the window
    locked_until: int | None = None  # epoch seconds
    version: int = 0  # for optimistic concurrency in the store

    def expires_at(self, policy: LockoutPolicy) -> int:
        """When the state stops mattering (the store's TTL)."""
        end = max(self.window_start + policy.window_seconds, self.locked_until or 0)
        return end + _TTL_SLACK_SECONDS


def is_locked(state: LockoutState | None, now: int) -> bool:
    return state is not None and state.locked_until is not None and now < state.locked_until


def after_failure(state: LockoutState | None, now: int, policy: LockoutPolicy) -> LockoutState:
    """The state after one more failed attempt at ``now``."""
    fresh = (
        state is None
        or now >= state.window_start + policy.window_seconds
        or now < state.window_start  # clock went backwards: do not trust the old window
        or (state.locked_until is not None and now >= state.locked_until)
    )
    if fresh or state is None:
        failures, window_start = 1, now
        version = state.version + 1 if state is not None else 1
    else:
        failures, window_start, version = state.failures + 1, state.window_start, state.version + 1
    locked_until = now + policy.lockout_seconds if failures >= policy.threshold else None
    new = LockoutState(failures, window_start, locked_until, version)
    if state is not None and state.locked_until is not None and not fresh:
        # Still locked (callers do not count attempts during a lock; be safe if they do).
        new = replace(new, locked_until=max(state.locked_until, locked_until or 0))
    return new


def without_one_failure(state: LockoutState, policy: LockoutPolicy) -> LockoutState:
    """``state`` minus one failure (an attempt counted before it was checked, that then
    succeeded): same window; the lock stays only if the failures left still reach it."""
    failures = max(0, state.failures - 1)
    locked_until = state.locked_until if failures >= policy.threshold else None
    return LockoutState(failures, state.window_start, locked_until, state.version + 1)
