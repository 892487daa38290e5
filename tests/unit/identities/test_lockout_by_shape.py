"""The lockout exempts one presentation only: a generated-shaped password presented to a
secret iotauth issued (``devices add``/``rotate``). So a device with an issued secret cannot
be locked out by anyone, while every other name — a chosen password, a restored or imported
secret, none at all — is counted and locked alike, and a guesser observes (answers, store
traffic, verification work, lock behaviour) the same for all of those; only an issued
secret's name answers generated-shaped guesses differently (docs/design/lockout.md)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from iotauth.identities import credentials
from iotauth.identities.lockout import LockoutPolicy, LockoutState
from iotauth.identities.store import Lookup, MemoryStore
from tests.authorizer_support import (
    NOW,
    add_aliyun_identity,
    add_password_identity,
    add_restored_secret_identity,
    add_secret_identity,
    connect_event,
    decide,
)

GUESSED_SECRET = "iotsk_" + "G" * 43  # generated-shaped, wrong for everyone
GUESSED_PASSWORD = "guess number {}"  # chosen-shaped


class CountingStore(MemoryStore):
    """Records the kind of each store call (what traffic an attacker causes)."""

    def __init__(self) -> None:
        super().__init__()
        self.log: list[str] = []

    def lookup(self, username: str) -> Lookup:
        self.log.append("read")
        return super().lookup(username)

    def save_lockout(
        self, username: str, state: LockoutState, policy: LockoutPolicy, previous_version: int
    ) -> bool:
        self.log.append("write")
        return super().save_lockout(username, state, policy, previous_version)

    def clear_lockout(self, username: str, expected_version: int | None = None) -> bool:
        self.log.append("delete")
        return super().clear_lockout(username, expected_version)


@pytest.fixture
def scrypt_runs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    runs: list[int] = []
    real = credentials._scrypt

    def counting(password: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
        runs.append(n)
        return real(password, salt, n, r, p)

    monkeypatch.setattr(credentials, "_scrypt", counting)
    yield runs


def _store_with_every_kind() -> tuple[CountingStore, str]:
    store = CountingStore()
    secret = add_secret_identity(store, "with-secret")
    add_password_identity(store, "with-password", "the real chosen password")
    add_aliyun_identity(store, "dev1", "pk1", "an aliyun device secret")
    add_restored_secret_identity(store, "with-restored")
    return store, secret


def test_generated_secret_is_never_refused_because_of_others_failures() -> None:
    store, secret = _store_with_every_kind()
    for i in range(12):  # chosen-shaped guesses: counted, and they lock those guesses
        decide(store, connect_event("with-secret", GUESSED_PASSWORD.format(i), "with-secret"))
    for _ in range(20):  # generated-shaped guesses: never counted
        decide(store, connect_event("with-secret", GUESSED_SECRET, "with-secret"))
    assert store.lockouts["with-secret"].locked_until is not None  # the guessers are locked
    decision = decide(store, connect_event("with-secret", secret, "with-secret"), now=NOW + 1)
    assert decision.allowed
    # ... and its success does not pay for the attackers' counter either.
    assert store.lockouts["with-secret"].locked_until is not None


def test_generated_shaped_guesses_are_counted_except_at_an_issued_secret() -> None:
    store, _ = _store_with_every_kind()
    for _ in range(10):
        decision = decide(store, connect_event("with-secret", GUESSED_SECRET, "with-secret"))
        assert decision.reason == "bad-password"
    assert "with-secret" not in store.lockouts and "write" not in store.log
    for name in ("with-password", "with-restored", "nobody"):
        reasons = [
            decide(store, connect_event(name, GUESSED_SECRET, name), now=NOW + i).reason
            for i in range(7)
        ]
        assert reasons[5:] == ["locked", "locked"], (name, reasons)
        assert store.lockouts[name].locked_until is not None


def _observe(store: CountingStore, name: str, attempts: list[str], runs: list[int]) -> list[Any]:
    """What a guesser without the secret can see (and cause) per attempt."""
    seen = []
    for i, password in enumerate(attempts):
        store.log.clear()
        runs.clear()
        decision = decide(store, connect_event(name, password, name), now=NOW + i)
        seen.append((decision.response(), tuple(store.log), tuple(runs)))
    return seen


@pytest.mark.parametrize("shape", ["chosen", "generated"])
def test_a_guesser_observes_the_same_for_every_name_but_an_issued_secret(
    shape: str, scrypt_runs: list[int]
) -> None:
    if shape == "chosen":
        attempts = [GUESSED_PASSWORD.format(i) for i in range(7)]
    else:
        attempts = [GUESSED_SECRET] * 7
    observed = {}
    for name in ("with-secret", "with-password", "with-restored", "nobody"):
        store, _ = _store_with_every_kind()
        observed[name] = _observe(store, name, attempts, scrypt_runs)
    assert observed["with-password"] == observed["with-restored"] == observed["nobody"]
    # five are checked (one scrypt each), then the lock: a read, no work, a denial
    assert [bool(runs) for _, _, runs in observed["nobody"]] == [True] * 5 + [False] * 2
    locked_after = [response for response, log, runs in observed["nobody"] if not runs]
    assert locked_after == [{"isAuthenticated": False}] * 2
    if shape == "chosen":
        assert observed["with-secret"] == observed["nobody"]
    else:  # the one exemption: one HMAC and a read each, never a write, never a lock
        assert all(log == ("read",) and runs == () for _, log, runs in observed["with-secret"])


def test_chosen_passwords_keep_their_lockout() -> None:
    store, _ = _store_with_every_kind()
    for i in range(5):
        guess = connect_event("with-password", GUESSED_PASSWORD.format(i), "with-password")
        assert decide(store, guess, now=NOW + i).reason == "bad-password"
    right = connect_event("with-password", "the real chosen password", "with-password")
    assert decide(store, right, now=NOW + 10).reason == "locked"
    assert decide(store, right, now=NOW + 4 + 900).allowed


def test_at_most_threshold_guesses_are_checked_per_window(scrypt_runs: list[int]) -> None:
    """The lockout module's promise, counted: ``threshold`` (5) verifications, no more."""
    store, _ = _store_with_every_kind()
    scrypt_runs.clear()  # creating the password identity ran one
    for i in range(30):
        guess = connect_event("with-password", GUESSED_PASSWORD.format(i), "with-password")
        decide(store, guess, now=NOW + i)
    assert len(scrypt_runs) == 5


def test_the_owner_signing_in_between_guesses_does_not_show() -> None:
    """The guesser's sequence of answers is the same whether or not the owner of a chosen
    password signs in (or its live session refreshes) between the guesses."""

    def guesser_sees(owner_active: bool) -> list[bool]:
        store, _ = _store_with_every_kind()
        seen = []
        for i in range(7):
            guess = connect_event("with-password", GUESSED_PASSWORD.format(i), "with-password")
            seen.append(decide(store, guess, now=NOW + 2 * i).reason == "locked")
            if owner_active and i in (1, 3):
                owner = connect_event("with-password", "the real chosen password", "with-password")
                assert decide(store, owner, now=NOW + 2 * i + 1).allowed
        return seen

    assert guesser_sees(owner_active=True) == guesser_sees(owner_active=False)
    assert guesser_sees(owner_active=False) == [False] * 5 + [True] * 2
