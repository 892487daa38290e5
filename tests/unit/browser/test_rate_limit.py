"""The per-user rate rule and limiter (iotauth.browser.rate_limit) over a fake counter."""

from __future__ import annotations

import pytest

from iotauth.access.names import web_username
from iotauth.browser.rate_limit import (
    KEY_PREFIX,
    MAX_LOCAL_CALLERS,
    PerUserRateLimiter,
    RateRule,
    RateStoreUnavailable,
    Verdict,
)

T0 = 1_800_000_000.0  # a window boundary


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeCounter:
    """The store's contract: count while below the limit; can be made to fail."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.calls: list[tuple[str, int, int]] = []
        self.failing = False

    def count(self, key: str, limit: int, expires_at: int) -> bool:
        self.calls.append((key, limit, expires_at))
        if self.failing:
            raise RateStoreUnavailable("dynamodb:UpdateItem failed (ProvisionedThroughput)")
        if self.counts.get(key, 0) >= limit:
            return False
        self.counts[key] = self.counts.get(key, 0) + 1
        return True


def test_rule_windows_keys_and_retry_after() -> None:
    rule = RateRule(12)
    assert rule.window_seconds == 60
    assert rule.window(T0) == rule.window(T0 + 59.9) == rule.window(T0 + 60) - 1
    assert rule.retry_after(T0) == 60
    assert rule.retry_after(T0 + 59.5) == 1
    assert rule.retry_after(T0 + 12.3) == 48  # rounded up: never early
    w = rule.window(T0)
    assert rule.key("0f6c1d2e-3a4b", w) == f"{KEY_PREFIX}web-0f6c1d2e-3a4b#{w}"
    # Any subject gives a bounded, safe key (a digest when the sub is not a safe name).
    odd = rule.key("auth0|" + "x" * 500, w)
    assert odd == f"{KEY_PREFIX}{web_username('auth0|' + 'x' * 500)}#{w}" and len(odd) < 80
    assert rule.key("a#1", w) != rule.key("a", w)
    assert rule.expires_at(w) == (w + 1) * 60 + 60
    with pytest.raises(ValueError):
        rule.key("", w)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("", None), ("0", None), (" 12 ", RateRule(12)), ("600", RateRule(600))],
)
def test_rule_from_env(raw: str, expected: RateRule | None) -> None:
    assert RateRule.from_env({"IOTAUTH_SIGNER_REQUESTS_PER_MINUTE": raw}) == expected


@pytest.mark.parametrize("raw", ["-1", "1.5", "ten", "10001"])
def test_rule_from_env_refuses(raw: str) -> None:
    with pytest.raises(ValueError, match="IOTAUTH_SIGNER_REQUESTS_PER_MINUTE"):
        RateRule.from_env({"IOTAUTH_SIGNER_REQUESTS_PER_MINUTE": raw})


def test_limiter_counts_per_user_and_window() -> None:
    clock, counter = Clock(T0 + 30), FakeCounter()
    limiter = PerUserRateLimiter(RateRule(2), counter, clock=clock)
    assert limiter.check("flooder") == Verdict(True)
    assert limiter.check("flooder") == Verdict(True)
    assert limiter.check("flooder") == Verdict(False, 30)
    assert limiter.check("alice") == Verdict(True)  # another user: its own count
    clock.now = T0 + 60
    assert limiter.check("flooder") == Verdict(True)  # a new window


def test_a_caller_over_the_limit_costs_no_more_store_calls_this_window() -> None:
    clock, counter = Clock(T0), FakeCounter()
    limiter = PerUserRateLimiter(RateRule(1), counter, clock=clock)
    limiter.check("flooder")
    limiter.check("flooder")  # refused by the store: remembered
    calls = len(counter.calls)
    for _ in range(100):
        assert not limiter.check("flooder").allowed
    assert len(counter.calls) == calls
    clock.now = T0 + 60
    assert limiter.check("flooder").allowed
    assert len(counter.calls) == calls + 1


def test_a_store_failure_fails_open_to_the_same_rule_in_the_container() -> None:
    clock, counter = Clock(T0 + 10), FakeCounter()
    limiter = PerUserRateLimiter(RateRule(2), counter, clock=clock)
    counter.failing = True
    assert limiter.check("flooder") == Verdict(True, degraded=True)
    assert limiter.check("flooder") == Verdict(True, degraded=True)
    assert limiter.check("flooder") == Verdict(False, 50, degraded=True)
    assert limiter.check("alice") == Verdict(True, degraded=True)
    clock.now = T0 + 60
    assert limiter.check("flooder").allowed
    counter.failing = False  # the store is back: it counts again
    assert limiter.check("flooder") == Verdict(True)


def test_the_fallback_memory_is_bounded() -> None:
    clock, counter = Clock(T0), FakeCounter()
    limiter = PerUserRateLimiter(RateRule(1), counter, clock=clock)
    counter.failing = True
    for i in range(MAX_LOCAL_CALLERS + 5):
        assert limiter.check(f"user-{i}").allowed
    assert len(limiter._local) <= MAX_LOCAL_CALLERS
