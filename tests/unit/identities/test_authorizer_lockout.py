from __future__ import annotations

from iotauth.identities.lockout import LockoutPolicy, after_failure, is_locked

POLICY = LockoutPolicy(threshold=5, window_seconds=900, lockout_seconds=900)


def test_five_failures_in_window_lock() -> None:
    state = None
    for i in range(4):
        state = after_failure(state, 1000 + i, POLICY)
        assert not is_locked(state, 1000 + i)
    state = after_failure(state, 1010, POLICY)
    assert state.failures == 5
    assert is_locked(state, 1010)
    assert is_locked(state, 1010 + 899)
    assert not is_locked(state, 1010 + 900)


def test_window_expiry_starts_fresh() -> None:
    state = None
    for i in range(4):
        state = after_failure(state, 1000 + i, POLICY)
    state = after_failure(state, 1000 + 900, POLICY)
    assert state.failures == 1
    assert not is_locked(state, 1900)


def test_after_lock_expires_counting_restarts() -> None:
    state = None
    for i in range(5):
        state = after_failure(state, 1000 + i, POLICY)
    assert state is not None and state.locked_until == 1004 + 900
    state = after_failure(state, 1004 + 900, POLICY)
    assert state.failures == 1 and state.locked_until is None


def test_versions_increase_and_ttl_covers_lock() -> None:
    first = after_failure(None, 1000, POLICY)
    second = after_failure(first, 1001, POLICY)
    assert (first.version, second.version) == (1, 2)
    locked = first
    for i in range(4):
        locked = after_failure(locked, 1002 + i, POLICY)
    assert locked.locked_until is not None
    assert locked.expires_at(POLICY) > locked.locked_until


def test_clock_going_backwards_does_not_extend_window() -> None:
    state = after_failure(None, 5000, POLICY)
    assert after_failure(state, 4000, POLICY).failures == 1


def test_threshold_one() -> None:
    policy = LockoutPolicy(threshold=1, window_seconds=60, lockout_seconds=60)
    assert is_locked(after_failure(None, 0, policy), 0)
