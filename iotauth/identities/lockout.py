"""Brute-force lockout rules (pure; the store keeps the state).

Contract: ``threshold`` failures within ``window_seconds`` of the first one (a fixed window)
lock the username for ``lockout_seconds`` (:func:`after_failure`, :func:`is_locked`); an
attempt counted before it was checked that then succeeds takes back only its own count
(:func:`without_one_failure`). Every attempt is counted but one: a generated-shaped password
presented to a secret iotauth issued (:func:`iotauth.identities.credentials.lockout_exempt`,
used by :mod:`iotauth.connect.authenticate`).

The one reason that matters: a guesser sees the same lock behaviour for every name and
kind, known or unknown — but for an issued secret's name, which cannot be guessed or locked
out — and nobody's success shows in it.

Design: docs/design/lockout.md
"""

from __future__ import annotations

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


class LockoutState(Frozen):
    __slots__ = ("failures", "locked_until", "version", "window_start")
    failures: int
    window_start: int  # epoch seconds of the first failure of the window
    locked_until: int | None  # epoch seconds
    version: int  # for optimistic concurrency in the store

    def __init__(
        self, failures: int, window_start: int, locked_until: int | None = None, version: int = 0
    ) -> None:
        self._init(
            failures=failures, window_start=window_start, locked_until=locked_until, version=version
        )

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
        new = new.replace(locked_until=max(state.locked_until, locked_until or 0))
    return new


def without_one_failure(state: LockoutState, policy: LockoutPolicy) -> LockoutState:
    """``state`` minus one failure (an attempt counted before it was checked, that then
    succeeded): same window; the lock stays only if the failures left still reach it."""
    failures = max(0, state.failures - 1)
    locked_until = state.locked_until if failures >= policy.threshold else None
    return LockoutState(failures, state.window_start, locked_until, state.version + 1)
