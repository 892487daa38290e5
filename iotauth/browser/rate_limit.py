"""The signer's per-caller rate limit: a fixed window per signed-in user, counted in DynamoDB.

The rule (:class:`RateRule`): at most ``limit`` requests per caller per ``window_seconds``;
the window is ``floor(now / window_seconds)``; the counter's key is
``ratelimit#<web username>#<window>`` (the username is :func:`iotauth.access.names.web_username`
of the verified JWT ``sub``: bounded and safe); the item expires (TTL) a minute after its
window. Over the limit the answer is 429 with ``Retry-After`` = the seconds left in the window.

:class:`PerUserRateLimiter` applies it through the :class:`RateCounter` port (one conditional
``UpdateItem`` in :mod:`iotauth.browser.aws_adapters`). A caller found over the limit is
remembered in the container until its window ends, so a flood's further requests cost no
DynamoDB call (a fixed window's count never goes down). When the store fails the limiter
fails open *to a per-container count of the same rule*: no outage of the counter locks
everyone out, and a flood stays bounded by the rule in each container, by the HTTP API's
route throttle and by the signer's reserved concurrency.

Design: docs/design/signer.md
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from typing import Protocol

from iotauth.access.names import web_username
from iotauth.wire.frozen import Frozen

__all__ = [
    "KEY_PREFIX",
    "LIMIT_VARIABLE",
    "PerUserRateLimiter",
    "RateCounter",
    "RateRule",
    "RateStoreUnavailable",
    "Verdict",
]

KEY_PREFIX = "ratelimit#"
LIMIT_VARIABLE = "IOTAUTH_SIGNER_REQUESTS_PER_MINUTE"
MAX_LIMIT = 10_000
EXPIRY_GRACE = 60  # seconds a window's counter outlives it (TTL deletes it later still)
MAX_LOCAL_CALLERS = 10_000  # callers remembered per container per window


class RateStoreUnavailable(Exception):
    """The counter store failed (timeout, throttled, denied); the message names no value."""


class RateCounter(Protocol):
    def count(self, key: str, limit: int, expires_at: int) -> bool:
        """Count one request under ``key`` if fewer than ``limit`` are counted: True when
        counted, False when the limit was reached. Raises :class:`RateStoreUnavailable`."""
        ...


class Verdict(Frozen):
    __slots__ = ("allowed", "degraded", "retry_after")
    allowed: bool
    retry_after: int  # seconds (when not allowed)
    degraded: bool  # counted in the container only: the store failed

    def __init__(self, allowed: bool, retry_after: int = 0, degraded: bool = False) -> None:
        self._init(allowed=allowed, retry_after=retry_after, degraded=degraded)


class RateRule(Frozen):
    __slots__ = ("limit", "window_seconds")
    limit: int  # requests per caller per window
    window_seconds: int

    def __init__(self, limit: int, window_seconds: int = 60) -> None:
        if not 1 <= limit <= MAX_LIMIT:
            raise ValueError(f"{LIMIT_VARIABLE} must be 1-{MAX_LIMIT} (0 turns the limit off)")
        if not 1 <= window_seconds <= 3600:
            raise ValueError("the rate window must be 1-3600 seconds")
        self._init(limit=limit, window_seconds=window_seconds)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RateRule | None:
        """The rule of ``IOTAUTH_SIGNER_REQUESTS_PER_MINUTE``; None when unset or 0 (off)."""
        raw = env.get(LIMIT_VARIABLE, "").strip()
        if not raw:
            return None
        if not raw.isdigit():
            raise ValueError(f"{LIMIT_VARIABLE} must be a whole number of requests")
        return cls(int(raw)) if int(raw) else None

    def window(self, now: float) -> int:
        return int(now // self.window_seconds)

    def retry_after(self, now: float) -> int:
        """Whole seconds until the current window ends (at least 1)."""
        end = (self.window(now) + 1) * self.window_seconds
        return max(1, math.ceil(end - now))

    def key(self, subject: str, window: int) -> str:
        """The counter's partition key; unique per (caller, window): the window, last, has
        no ``#``. Raises InvalidName (ValueError) for an empty subject."""
        return f"{KEY_PREFIX}{web_username(subject)}#{window}"

    def expires_at(self, window: int) -> int:
        return (window + 1) * self.window_seconds + EXPIRY_GRACE


class PerUserRateLimiter:
    """One per container: the rule through the store, with the over-limit memory and the
    per-container fallback described in the module docstring."""

    def __init__(
        self,
        rule: RateRule,
        counter: RateCounter,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.rule = rule
        self._counter = counter
        self._clock = clock
        self._lock = threading.Lock()
        self._window = -1
        self._over: set[str] = set()  # keys found over the limit in this window
        self._local: dict[str, int] = {}  # the fallback's counts in this window

    def check(self, subject: str) -> Verdict:
        """Count one request of ``subject`` (the verified ``sub``) and say whether it may go on."""
        rule = self.rule
        now = self._clock()
        window = rule.window(now)
        key = rule.key(subject, window)
        with self._lock:
            if window != self._window:
                self._window, self._over, self._local = window, set(), {}
            if key in self._over:
                return Verdict(False, rule.retry_after(now))
        try:
            counted = self._counter.count(key, rule.limit, rule.expires_at(window))
        except RateStoreUnavailable:
            return self._count_locally(key, window, now)
        if counted:
            return Verdict(True)
        with self._lock:
            if window == self._window and len(self._over) < MAX_LOCAL_CALLERS:
                self._over.add(key)
        return Verdict(False, rule.retry_after(now))

    def _count_locally(self, key: str, window: int, now: float) -> Verdict:
        with self._lock:
            if window != self._window:  # the window turned while the store was asked
                return Verdict(True, degraded=True)
            if key not in self._local and len(self._local) >= MAX_LOCAL_CALLERS:
                self._local.clear()  # bounded memory; the route throttle still bounds all
            seen = self._local.get(key, 0)
            if seen >= self.rule.limit:
                return Verdict(False, self.rule.retry_after(now), degraded=True)
            self._local[key] = seen + 1
        return Verdict(True, degraded=True)
