"""The decision's store deadline: no store call starts after it (fail closed).

Contract: :class:`DeadlineStore` wraps a :class:`~iotauth.identities.store.CredentialStore`
and raises :class:`StoreTimeout` (a StoreError) instead of starting a call once the
monotonic clock has reached the deadline; the decision then denies with reason
``store-timeout``. The one reason that matters: each call is bounded by the client's
timeouts, but a decision may make several (lost races on the lockout counter are retried),
and together they must stay under IoT Core's 5 s.

Design: docs/design/order-of-checks.md
"""

from __future__ import annotations

from collections.abc import Callable

from iotauth.identities.lockout import LockoutPolicy, LockoutState
from iotauth.identities.store import CredentialStore, Lookup, StoreError

__all__ = ["DeadlineStore", "StoreTimeout"]


class StoreTimeout(StoreError):
    """The decision's store deadline passed before a store call (internal)."""


class DeadlineStore:
    """The store, refusing to start a call once the decision's deadline has passed."""

    __slots__ = ("_clock", "_deadline", "_store")

    def __init__(self, store: CredentialStore, deadline: float, clock: Callable[[], float]) -> None:
        self._store, self._deadline, self._clock = store, deadline, clock

    def _check(self) -> None:
        if self._clock() >= self._deadline:
            raise StoreTimeout("store deadline passed")

    def lookup(self, username: str, client_id: str | None = None) -> Lookup:
        self._check()
        if client_id is None:
            return self._store.lookup(username)
        return self._store.lookup(username, client_id)

    def save_lockout(
        self, username: str, state: LockoutState, policy: LockoutPolicy, previous_version: int
    ) -> bool:
        self._check()
        return self._store.save_lockout(username, state, policy, previous_version)

    def clear_lockout(self, username: str, expected_version: int | None = None) -> bool:
        self._check()
        return self._store.clear_lockout(username, expected_version)
