"""The stand-in's authorizer latency: a seeded random delay after the handler's answer."""

from __future__ import annotations

from typing import Any

import pytest

from iotauth.local.functions import DelayedFunction, parse_latency


def test_the_answer_comes_after_the_handler_ran_by_a_seeded_delay_in_range() -> None:
    events: list[str] = []

    def handler(event: dict[str, Any]) -> str:
        events.append("ran")
        return "allow"

    def delays(seed: int) -> list[float]:
        slept: list[float] = []

        def sleep(seconds: float) -> None:
            events.append("slept")
            slept.append(seconds)

        delayed = DelayedFunction(handler, (0.15, 0.4), seed=seed, sleep=sleep)
        assert [delayed({}) for _ in range(50)] == ["allow"] * 50
        return slept

    first = delays(15)
    assert all(0.15 <= d <= 0.4 for d in first)
    assert first == delays(15) != delays(16)  # repeatable from its seed
    assert events[:2] == ["ran", "slept"]  # the record is read first, the answer comes late


@pytest.mark.parametrize(
    ("text", "expected"), [("0.15-0.4", (0.15, 0.4)), ("0.2", (0.2, 0.2)), ("0-0", (0.0, 0.0))]
)
def test_latency_ranges_parse(text: str, expected: tuple[float, float]) -> None:
    assert parse_latency(text) == expected


@pytest.mark.parametrize("text", ["", "a-b", "0.4-0.15", "-1", "0-5", "nan-1", "1-inf"])
def test_a_latency_that_is_no_range_below_iots_limit_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_latency(text)
