"""iotauth.connect.jwks against a real JWKS server on 127.0.0.1: bounded, rate-limited, closed."""

from __future__ import annotations

import json
import time

import pytest

from iotauth.connect.jwks import JwksCache, JwksUnavailable, http_fetch
from iotauth.wire import jws
from tests.token_support import SigningKey, jwks_body, jwks_server


@pytest.fixture(scope="module")
def keys() -> tuple[SigningKey, SigningKey]:
    return SigningKey("RS256", "r1"), SigningKey("ES256", "e1")


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def test_http_fetch_reads_the_set(keys: tuple[SigningKey, SigningKey]) -> None:
    with jwks_server(*keys) as server:
        body = http_fetch(server.url, 1.0)
        assert set(jws.parse_jwks(body)) == {"r1", "e1"}
        assert server.requests == 1


def test_prime_then_cache_then_refresh(keys: tuple[SigningKey, SigningKey]) -> None:
    clock = Clock()
    with jwks_server(keys[0]) as server:
        cache = JwksCache(server.url, refresh_seconds=600, min_refetch_seconds=60, clock=clock)
        assert cache.prime() and server.requests == 1
        for _ in range(100):
            assert cache.key_for("r1", time_left=2.0) is not None
        assert server.requests == 1
        server.body = jwks_body(*keys)  # the issuer rotates in a new key
        clock.now += 601
        assert cache.key_for("e1", time_left=2.0) is not None
        assert server.requests == 2


def test_unknown_kid_refetches_at_most_once_per_interval(
    keys: tuple[SigningKey, SigningKey],
) -> None:
    clock = Clock()
    with jwks_server(keys[0]) as server:
        cache = JwksCache(server.url, min_refetch_seconds=60, clock=clock)
        cache.prime()
        clock.now += 61
        for i in range(1000):
            assert cache.key_for(f"invented-{i}", time_left=2.0) is None
        assert server.requests == 2  # the prime and one refetch
        server.body = jwks_body(*keys)
        assert cache.key_for("e1", time_left=2.0) is None  # still inside the interval
        clock.now += 60
        assert cache.key_for("e1", time_left=2.0) is not None
        assert server.requests == 3


def test_endpoint_down_denies(keys: tuple[SigningKey, SigningKey]) -> None:
    with jwks_server(*keys) as server:
        url = server.url
    cache = JwksCache(url, fetch_timeout=0.5)  # the server is gone: connection refused
    assert not cache.prime()
    with pytest.raises(JwksUnavailable):
        cache.key_for("r1", time_left=2.0)


@pytest.mark.parametrize("status", [404, 500, 302])
def test_non_200_answers_are_refused(status: int, keys: tuple[SigningKey, SigningKey]) -> None:
    with jwks_server(*keys) as server:
        server.status = status
        cache = JwksCache(server.url)
        assert not cache.prime()
        with pytest.raises(JwksUnavailable):
            cache.key_for("r1", time_left=2.0)


def test_a_slow_endpoint_never_outlasts_the_deadline(keys: tuple[SigningKey, SigningKey]) -> None:
    with jwks_server(*keys) as server:
        server.delay = 3.0
        cache = JwksCache(server.url, fetch_timeout=1.5)
        start = time.monotonic()
        with pytest.raises(JwksUnavailable):
            cache.key_for("r1", time_left=0.6)
        assert time.monotonic() - start < 1.0
        start = time.monotonic()
        with pytest.raises(JwksUnavailable):  # rate-limited: no second wait at all
            cache.key_for("r1", time_left=2.0)
        assert time.monotonic() - start < 0.1


def test_no_fetch_starts_without_time_left(keys: tuple[SigningKey, SigningKey]) -> None:
    with jwks_server(*keys) as server:
        cache = JwksCache(server.url)
        with pytest.raises(JwksUnavailable):
            cache.key_for("r1", time_left=0.05)
        assert server.requests == 0


def test_thousands_of_keys_are_refused_whole(keys: tuple[SigningKey, SigningKey]) -> None:
    huge = json.dumps({"keys": [dict(keys[0].jwk, kid=f"k{i}") for i in range(3000)]}).encode()
    with jwks_server(*keys) as server:
        server.body = huge
        cache = JwksCache(server.url)
        start = time.perf_counter()
        assert not cache.prime()
        assert time.perf_counter() - start < 0.5  # refused by size, nothing parsed per key
        many = json.dumps({"keys": [{"kty": "oct", "kid": str(i)} for i in range(200)]}).encode()
        server.body = many
        assert not cache.prime()


def test_stale_keys_have_a_bounded_grace(keys: tuple[SigningKey, SigningKey]) -> None:
    clock = Clock()
    with jwks_server(*keys) as server:
        cache = JwksCache(server.url, refresh_seconds=600, min_refetch_seconds=60, clock=clock)
        cache.prime()
        server.status = 503  # the issuer's endpoint fails from now on
        clock.now += 601
        assert cache.key_for("r1", time_left=2.0) is not None  # within the grace
        clock.now += 600
        with pytest.raises(JwksUnavailable):
            cache.key_for("r1", time_left=2.0)
