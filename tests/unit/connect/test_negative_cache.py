"""The per-container negative cache: repeats of a triple verified wrong cost nothing, and a
correct credential that was never itself presented wrong is never denied by it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from iotauth.connect.authenticate import Decision, authenticate
from iotauth.connect.event import parse_connect_event
from iotauth.connect.negative_cache import NegativeCache
from iotauth.identities import credentials
from iotauth.identities.credentials import hash_chosen_password
from iotauth.identities.store import MemoryStore
from tests.authorizer_support import (
    ARN,
    NOW,
    SETTINGS,
    add_aliyun_identity,
    add_password_identity,
    add_secret_identity,
    aliyun_event,
    connect_event,
)

RIGHT = "the right passphrase"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def scrypt_runs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    runs: list[int] = []
    real = credentials._scrypt

    def counting(password: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
        runs.append(n)
        return real(password, salt, n, r, p)

    monkeypatch.setattr(credentials, "_scrypt", counting)
    yield runs


def decide(
    store: MemoryStore, event: dict[str, Any], cache: NegativeCache, clock: Clock, **kw: Any
) -> Decision:
    return authenticate(
        parse_connect_event(event),
        store,
        now=kw.get("now", NOW),
        settings=SETTINGS,
        arn=ARN,
        monotonic=clock,
        negative_cache=cache,
    )


@pytest.mark.parametrize("name", ["bob", "nobody"])
def test_a_storm_of_the_same_bad_credentials_costs_one_check(
    name: str, scrypt_runs: list[int]
) -> None:
    store, cache, clock = MemoryStore(), NegativeCache(), Clock()
    add_password_identity(store, "bob", RIGHT)
    scrypt_runs.clear()
    before = store.calls
    wrong = connect_event(name, "a wrong passphrase", name)
    reasons = {decide(store, wrong, cache, clock).reason for _ in range(1000)}
    assert reasons == {"bad-password" if name == "bob" else "unknown-identity"}
    assert len(scrypt_runs) == 1
    assert store.calls - before == 2  # the one read and the one counted failure
    assert store.lockouts[name].failures == 1  # repeats of a known-wrong guess are not counted


def test_generated_shaped_storm_costs_one_read() -> None:
    store, cache, clock = MemoryStore(), NegativeCache(), Clock()
    add_secret_identity(store, "alice")
    before = store.calls
    for _ in range(1000):
        decide(store, connect_event("alice", "iotsk_" + "W" * 43, "alice"), cache, clock)
    assert store.calls - before == 1


def test_never_caches_an_allow(scrypt_runs: list[int]) -> None:
    store, cache, clock = MemoryStore(), NegativeCache(), Clock()
    add_password_identity(store, "bob", RIGHT)
    scrypt_runs.clear()
    right = connect_event("bob", RIGHT, "bob")
    assert all(decide(store, right, cache, clock).allowed for _ in range(3))
    assert len(scrypt_runs) == 3 and len(cache) == 0


def test_a_correct_credential_never_presented_wrong_is_not_denied() -> None:
    store, cache, clock = MemoryStore(), NegativeCache(), Clock()
    add_password_identity(store, "bob", RIGHT)
    for _ in range(3):
        decide(store, connect_event("bob", "a wrong passphrase", "bob"), cache, clock)
    assert decide(store, connect_event("bob", RIGHT, "bob"), cache, clock).allowed
    # the same password with another client id is another triple: verified, not cached
    other = connect_event("bob", "a wrong passphrase", "bob-2")
    assert decide(store, other, cache, clock).reason == "bad-password"
    assert len(cache) == 2


def test_rotation_to_a_password_presented_just_before_waits_at_most_the_ttl() -> None:
    store, cache, clock = MemoryStore(), NegativeCache(ttl_seconds=60), Clock()
    add_password_identity(store, "bob", RIGHT)
    new = connect_event("bob", "the new passphrase", "bob")
    assert decide(store, new, cache, clock).reason == "bad-password"  # too early
    record = store.identities["bob"]
    verifier = hash_chosen_password(b"the new passphrase")
    store.identities["bob"] = record.replace(verifier=verifier)  # the operator rotates
    clock.now += 59
    assert decide(store, new, cache, clock).reason == "bad-password"  # the documented bound
    clock.now += 1
    assert decide(store, new, cache, clock).allowed


def test_a_lock_is_not_cached_for_a_credential_never_verified_wrong() -> None:
    store, cache, clock = MemoryStore(), NegativeCache(), Clock()
    add_password_identity(store, "bob", RIGHT)
    for i in range(5):
        decide(store, connect_event("bob", f"guess number {i}", "bob"), cache, clock)
    right = connect_event("bob", RIGHT, "bob")
    assert decide(store, right, cache, clock).reason == "locked"
    store.clear_lockout("bob")  # `iotauth devices enable bob`
    assert decide(store, right, cache, clock).allowed


def test_a_known_wrong_credential_refused_by_a_lock_stays_cheap() -> None:
    store, cache, clock = MemoryStore(), NegativeCache(ttl_seconds=60), Clock()
    add_password_identity(store, "bob", RIGHT)
    stale = connect_event("bob", "a stale passphrase", "bob")
    assert decide(store, stale, cache, clock).reason == "bad-password"
    for i in range(5):
        decide(store, connect_event("bob", f"guess number {i}", "bob"), cache, clock)
    clock.now += 61
    assert decide(store, stale, cache, clock).reason == "locked"  # one read, re-armed
    before = store.calls
    assert {decide(store, stale, cache, clock).reason for _ in range(100)} == {"locked"}
    assert store.calls == before


def test_other_denials_are_not_cached() -> None:
    store, cache, clock = MemoryStore(), NegativeCache(), Clock()
    add_password_identity(store, "bob", RIGHT)
    store.identities["bob"] = store.identities["bob"].replace(status="disabled")
    right = connect_event("bob", RIGHT, "bob")
    assert decide(store, right, cache, clock).reason == "disabled"
    store.identities["bob"] = store.identities["bob"].replace(status="active")
    assert decide(store, right, cache, clock).allowed
    assert len(cache) == 0


def test_store_errors_are_not_cached() -> None:
    from iotauth.identities.store import StoreError

    store, cache, clock = MemoryStore(), NegativeCache(), Clock()
    add_password_identity(store, "bob", RIGHT)
    store.fail_with = StoreError("down")
    right = connect_event("bob", RIGHT, "bob")
    assert decide(store, right, cache, clock).reason == "store-error"
    store.fail_with = None
    assert decide(store, right, cache, clock).allowed


def test_aliyun_replays_of_a_wrong_signature_are_cached() -> None:
    store, cache, clock = MemoryStore(), NegativeCache(), Clock()
    add_aliyun_identity(store, "sensor1", "pk1", "s3cret")
    wrong = aliyun_event("sensor1", "pk1", "wrong")
    before = store.calls
    assert {decide(store, wrong, cache, clock).reason for _ in range(50)} == {"bad-password"}
    assert store.calls - before == 2
    assert decide(store, aliyun_event("sensor1", "pk1", "s3cret"), cache, clock).allowed


def test_bounded_and_keyed() -> None:
    cache = NegativeCache(max_entries=3)
    keys = [cache.key_for("bob", f"password {i}".encode(), "bob") for i in range(5)]
    for i, key in enumerate(keys):
        cache.record(key, "bad-password", "bob", 10.0 + i)
    assert len(cache) == 3
    assert cache.get(keys[0], 11.0) is None and cache.get(keys[4], 15.0) is not None
    # A keyed hash: 32 bytes, no credential in it, another container's key differs.
    assert len(keys[0]) == 32 and b"password" not in keys[0]
    assert NegativeCache().key_for("bob", b"password 0", "bob") != keys[0]
    assert len(cache.key_for("bob", b"pw", "client-\ud800")) == 32  # a lone surrogate
    # Length-prefixed: moving bytes between the parts gives another key.
    assert cache.key_for("ab", b"c", "d") != cache.key_for("a", b"bc", "d")
