"""Counting a guessable attempt before it is verified, and taking back only its own count.

Contract: :func:`count_first` writes one more failure, conditional on the counter's version
(re-read and retried on a lost race), and returns the state written, or None when the
username was locked meanwhile (deny unverified); :func:`undo_count` takes that one failure
back after a success, never others'. The one reason that matters: a burst of parallel
guesses that all read the counter before any wrote it would otherwise each be checked, and a
success that reset the counter would show in the lock state a guesser can probe.

Design: docs/design/lockout.md
"""

from __future__ import annotations

from iotauth.identities.lockout import (
    LockoutPolicy,
    LockoutState,
    after_failure,
    is_locked,
    without_one_failure,
)
from iotauth.identities.store import CredentialStore, StoreError

__all__ = ["SAVE_ATTEMPTS", "count_first", "undo_count"]

SAVE_ATTEMPTS = 3


def count_first(
    store: CredentialStore,
    username: str,
    state: LockoutState | None,
    now: int,
    policy: LockoutPolicy,
) -> LockoutState | None:
    """Count one failure before checking (step 3): the state written, or None (nothing
    written) when a concurrent request has locked the username since ``state`` was read."""
    for _ in range(SAVE_ATTEMPTS):
        previous = state.version if state is not None else 0
        written = after_failure(state, now, policy)
        if store.save_lockout(username, written, policy, previous):
            return written
        state = store.lookup(username).lockout  # lost a race: count on top of the winner
        if is_locked(state, now):
            return None
    raise StoreError("could not record a failed attempt")


def undo_count(
    store: CredentialStore, username: str, written: LockoutState, policy: LockoutPolicy
) -> None:
    """Take back the failure step 3 counted for an attempt that then succeeded — only that
    one: other attempts' failures stay, so nobody's success shows in the lock state a guesser
    can probe (docs/design/lockout.md). Every write is conditional on the version read (a
    delete when ours is the only failure left), so failures counted meanwhile are never lost;
    losing every race leaves one failure too many (stricter)."""
    state: LockoutState | None = written
    for _ in range(SAVE_ATTEMPTS):
        if state is None or state.window_start != written.window_start:
            return  # cleared or a new window since: ours is no longer counted
        if state.failures <= 1:  # ours alone: delete it, unless someone counted meanwhile
            done = store.clear_lockout(username, state.version)
        else:
            undone = without_one_failure(state, policy)
            done = store.save_lockout(username, undone, policy, state.version)
        if done:
            return
        state = store.lookup(username).lockout  # lost a race: take ours off the winner's
