"""One deadline per decision for the store: a slow-but-answering table cannot make a decision
outlast IoT Core's 5-second budget, however many calls (lost conditional writes retry)."""

from __future__ import annotations

from typing import Any

import pytest

from iotauth.connect.authenticate import STORE_DEADLINE_SECONDS, Decision, Settings, authenticate
from iotauth.connect.event import parse_connect_event
from iotauth.identities.lockout import LockoutPolicy, LockoutState
from iotauth.identities.store import Lookup, MemoryStore
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

RIGHT = "a long chosen password"


class FakeClock:
    """A monotonic clock that moves only when the store says a call took time."""

    def __init__(self, start: float = 5000.0) -> None:
        self.now = start
        self.start = start

    def __call__(self) -> float:
        return self.now

    @property
    def elapsed(self) -> float:
        return self.now - self.start


class SlowStore(MemoryStore):
    """Every call answers, after ``delay`` seconds of the fake clock; ``lose_writes``: every
    conditional write loses a race (another request keeps writing first)."""

    def __init__(self, clock: FakeClock, delay: float, *, lose_writes: bool = False) -> None:
        super().__init__()
        self.clock = clock
        self.delay = delay
        self.lose_writes = lose_writes
        self.started: list[float] = []  # elapsed time at the start of each call

    def _answer_slowly(self) -> None:
        self.started.append(self.clock.elapsed)
        self.clock.now += self.delay

    # The authorizer's three calls are slow; administration (test setup) is not.
    def lookup(self, username: str) -> Lookup:
        self._answer_slowly()
        return super().lookup(username)

    def save_lockout(
        self, username: str, state: LockoutState, policy: LockoutPolicy, previous_version: int
    ) -> bool:
        self._answer_slowly()
        if self.lose_writes:
            return False
        return super().save_lockout(username, state, policy, previous_version)

    def clear_lockout(self, username: str, expected_version: int | None = None) -> bool:
        self._answer_slowly()
        return super().clear_lockout(username, expected_version)


def _decide(
    store: SlowStore, event: dict[str, Any], settings: Settings = SETTINGS, now: float = NOW
) -> Decision:
    return authenticate(
        parse_connect_event(event),
        store,
        now=now,
        settings=settings,
        arn=ARN,
        monotonic=store.clock,
    )


def test_default_deadline_is_well_inside_iot_budget() -> None:
    assert SETTINGS.store_deadline_seconds == STORE_DEADLINE_SECONDS
    # The last call may start just before the deadline and take ~1.5 s (iotauth.identities.store).
    assert STORE_DEADLINE_SECONDS + 1.5 <= 4.0


def test_lost_races_on_a_slow_store_end_at_the_deadline() -> None:
    """Without a deadline: 1 read + 3 x (write + re-read) = 7 calls x 1.4 s = 9.8 s. With it:
    the calls starting at 0 and 1.4 s; the re-read due at 2.8 s is not made."""
    clock = FakeClock()
    store = SlowStore(clock, 1.4, lose_writes=True)
    add_password_identity(store, "bob", RIGHT)
    decision = _decide(store, connect_event("bob", RIGHT, "bob"))
    assert not decision.allowed and decision.reason == "store-timeout"
    assert decision.response() == {"isAuthenticated": False}
    # No call starts at or after the deadline, so the decision ends within one call of it.
    assert all(t < SETTINGS.store_deadline_seconds for t in store.started)
    assert clock.elapsed <= SETTINGS.store_deadline_seconds + 1.4
    assert store.started == pytest.approx([0.0, 1.4])


def test_aliyun_lost_races_end_at_the_deadline() -> None:
    clock = FakeClock()
    store = SlowStore(clock, 1.4, lose_writes=True)
    add_aliyun_identity(store, "sensor1", "pk1", "s3cret")
    decision = _decide(store, aliyun_event("sensor1", "pk1", "s3cret"))
    assert decision.reason == "store-timeout"
    assert clock.elapsed <= SETTINGS.store_deadline_seconds + 1.4


def test_slow_store_within_the_deadline_still_allows() -> None:
    """Read, count first, clear: three calls of 0.8 s start before 2.5 s."""
    clock = FakeClock()
    store = SlowStore(clock, 0.8)
    add_password_identity(store, "bob", RIGHT)
    decision = _decide(store, connect_event("bob", RIGHT, "bob"))
    assert decision.allowed, decision.reason
    assert len(store.started) == 3


def test_the_clear_after_success_is_bounded_too() -> None:
    """The third call (clearing the counter) would start at 2.6 s: fail closed."""
    clock = FakeClock()
    store = SlowStore(clock, 1.3)
    add_password_identity(store, "bob", RIGHT)
    decision = _decide(store, connect_event("bob", RIGHT, "bob"))
    assert not decision.allowed and decision.reason == "store-timeout"
    assert decision.username is None  # a timeout carries no name to the logs


def test_a_generated_secret_needs_one_call() -> None:
    clock = FakeClock()
    store = SlowStore(clock, 2.4)
    secret = add_secret_identity(store, "alice")
    assert _decide(store, connect_event("alice", secret, "alice")).allowed


def test_deadline_counts_from_the_start_of_each_decision() -> None:
    clock = FakeClock(start=10**6)
    store = SlowStore(clock, 0.8)
    add_password_identity(store, "bob", RIGHT)
    for _ in range(3):  # 2.4 s of store time each, 7.2 s in all: each decision has its own
        assert _decide(store, connect_event("bob", RIGHT, "bob")).allowed


def test_deadline_is_configurable_internally() -> None:
    clock = FakeClock()
    store = SlowStore(clock, 0.8)
    add_password_identity(store, "bob", RIGHT)
    tight = SETTINGS.replace(store_deadline_seconds=1.0)
    assert _decide(store, connect_event("bob", RIGHT, "bob"), tight).reason == "store-timeout"


@pytest.mark.parametrize("seconds", [0.0, -1.0, 4.6, float("nan")])
def test_deadline_must_leave_room_in_the_budget(seconds: float) -> None:
    with pytest.raises(ValueError):
        Settings(table="t", store_deadline_seconds=seconds)


def test_from_env_uses_the_default_deadline() -> None:
    assert Settings.from_env({"IOTAUTH_TABLE": "t"}).store_deadline_seconds == 2.5
