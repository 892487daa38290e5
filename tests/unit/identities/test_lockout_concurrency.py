"""Lockout under concurrency: a guess that is in flight when the lock lands must not be
checked, or a burst of parallel guesses would get far more than ``threshold`` answers."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from iotauth.connect.authenticate import Decision
from iotauth.identities.lockout import LockoutPolicy, LockoutState
from iotauth.identities.store import Lookup, MemoryStore
from tests.authorizer_support import (
    NOW,
    add_aliyun_identity,
    add_password_identity,
    add_secret_identity,
    aliyun_event,
    connect_event,
    decide,
)

RIGHT = "a long chosen password"


class PausingStore(MemoryStore):
    """The first lookup made by the thread named "slow" pauses after reading, until told."""

    def __init__(self) -> None:
        super().__init__()
        self.read = threading.Event()
        self.resume = threading.Event()
        self._paused = False

    def lookup(self, username: str) -> Lookup:
        result = super().lookup(username)
        if threading.current_thread().name == "slow" and not self._paused:
            self._paused = True
            self.read.set()
            assert self.resume.wait(10)
        return result


def _in_flight_while(store: PausingStore, event: dict[str, Any], meanwhile: Any) -> Decision:
    out: list[Decision] = []
    slow = threading.Thread(name="slow", target=lambda: out.append(decide(store, event)))
    slow.start()
    assert store.read.wait(10)
    try:
        meanwhile()
    finally:
        store.resume.set()
        slow.join(10)
    assert out, "the in-flight request did not finish"
    return out[0]


def test_right_password_in_flight_when_the_lock_lands_is_refused() -> None:
    store = PausingStore()
    add_password_identity(store, "bob", RIGHT)
    wrong = connect_event("bob", "not the password!", "bob")

    def five_wrong_guesses() -> None:
        for i in range(5):
            assert decide(store, wrong, now=NOW + i).reason == "bad-password"

    decision = _in_flight_while(store, connect_event("bob", RIGHT, "bob"), five_wrong_guesses)
    assert decision.reason == "locked"


def test_aliyun_signature_in_flight_when_the_lock_lands_is_refused() -> None:
    store = PausingStore()
    add_aliyun_identity(store, "sensor1", "pk1", "s3cret")
    wrong = aliyun_event("sensor1", "pk1", "wrong")

    def five_wrong_guesses() -> None:
        for _ in range(5):
            assert decide(store, wrong).reason == "bad-password"

    decision = _in_flight_while(store, aliyun_event("sensor1", "pk1", "s3cret"), five_wrong_guesses)
    assert decision.reason == "locked"


@pytest.mark.parametrize("right", [True, False])
def test_guessable_attempts_are_counted_before_they_are_checked(right: bool) -> None:
    store = MemoryStore()
    add_password_identity(store, "bob", RIGHT)
    seen: list[int] = []

    def save(username: str, state: Any, policy: Any, previous_version: int) -> bool:
        seen.append(state.failures)
        return MemoryStore.save_lockout(store, username, state, policy, previous_version)

    store.save_lockout = save  # type: ignore[method-assign]
    decision = decide(store, connect_event("bob", RIGHT if right else "nope, not it!", "bob"))
    assert decision.allowed is right
    assert seen == [1]  # one write, before verifying; none after
    assert ("bob" in store.lockouts) is not right  # a success clears it


def test_generated_secrets_pay_no_write_on_success() -> None:
    store = MemoryStore()
    secret = add_secret_identity(store, "alice")
    before = store.calls
    assert decide(store, connect_event("alice", secret, "alice")).allowed
    assert store.calls - before == 1  # the one read


def test_attempt_that_cannot_be_counted_is_not_checked() -> None:
    store = MemoryStore()
    add_password_identity(store, "bob", RIGHT)
    store.save_lockout = lambda *a, **k: False  # type: ignore[method-assign]  # always loses
    decision = decide(store, connect_event("bob", RIGHT, "bob"))
    assert not decision.allowed and decision.reason == "store-error"


def test_a_success_uncounts_itself_on_top_of_a_concurrent_failure() -> None:
    """The undo of a success's own count is conditional: a guess that lands in between is
    kept (re-read, then one failure fewer), never erased."""
    store = MemoryStore()
    add_password_identity(store, "bob", RIGHT)
    for i in range(2):
        decide(store, connect_event("bob", f"wrong guess {i}", "bob"), now=NOW + i)
    real_save = MemoryStore.save_lockout
    raced = {"done": False}

    def save(username: str, state: Any, policy: Any, previous_version: int) -> bool:
        if state.failures == 2 and not raced["done"]:  # the undo (3 → 2): a guess lands first
            raced["done"] = True
            current = store.lockouts[username]
            real_save(store, username, current.replace(failures=4, version=current.version + 1),
                      policy, current.version)  # fmt: skip
        return real_save(store, username, state, policy, previous_version)

    store.save_lockout = save  # type: ignore[method-assign]
    assert decide(store, connect_event("bob", RIGHT, "bob"), now=NOW + 5).allowed
    assert raced["done"] and store.lockouts["bob"].failures == 3


class GuessesDuringTheOwnersCheck(MemoryStore):
    """``guesses`` wrong guesses land (counted, checked) after the owner's attempt counted
    itself (step 3) and before its undo (step 5) reaches the store — while its scrypt ran."""

    def __init__(self, guesses: int) -> None:
        super().__init__()
        self.guesses, self.armed = guesses, False

    def _guesses_land(self) -> None:
        if self.armed:
            self.armed = False
            for i in range(self.guesses):
                guess = connect_event("owner", f"guess number {i:04d}", "owner")
                assert decide(self, guess).reason == "bad-password"

    def clear_lockout(self, username: str, expected_version: int | None = None) -> bool:
        self._guesses_land()
        return super().clear_lockout(username, expected_version)

    def save_lockout(
        self, username: str, state: LockoutState, policy: LockoutPolicy, previous_version: int
    ) -> bool:
        if state.failures < previous_failures(self, username):  # an undo
            self._guesses_land()
        return super().save_lockout(username, state, policy, previous_version)


def previous_failures(store: MemoryStore, username: str) -> int:
    current = store.lockouts.get(username)
    return current.failures if current is not None else 0


@pytest.mark.parametrize("owner_failures_before", [0, 2])
def test_an_owners_success_keeps_the_guesses_counted_during_its_check(
    owner_failures_before: int,
) -> None:
    """Review 09:50: the undo of the owner's own count (a delete when it was the only one, a
    write of one fewer otherwise) must not wipe failures a parallel burst counted meanwhile:
    at most ``threshold`` guesses are checked per window, owner sign-ins or not."""
    store = GuessesDuringTheOwnersCheck(guesses=2)
    add_password_identity(store, "owner", RIGHT)
    for i in range(owner_failures_before):
        assert decide(store, connect_event("owner", f"owner's typo {i}", "owner")).reason == (
            "bad-password"
        )
    store.armed = True
    assert decide(store, connect_event("owner", RIGHT, "owner")).allowed
    assert not store.armed  # the guesses did land in between
    assert store.lockouts["owner"].failures == owner_failures_before + 2  # all kept, ours gone
    left = 5 - owner_failures_before - 2  # threshold 5
    reasons = [
        decide(store, connect_event("owner", f"again {i:04d} guess", "owner")).reason
        for i in range(4)
    ]
    assert reasons == ["bad-password"] * left + ["locked"] * (4 - left)
