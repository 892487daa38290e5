"""The token issuer's signing keys, per container: fetched at init, refreshed bounded, fail closed.

Contract: :class:`JwksCache` holds the issuer's JWK set (:func:`iotauth.wire.jws.parse_jwks`).
:meth:`JwksCache.prime` fetches it at init (Lambda's init, once); :meth:`JwksCache.key_for`
answers a token's ``kid`` from the cache and fetches again only when the keys are older than
``refresh_seconds`` or the ``kid`` is unknown — and then at most once per
``min_refetch_seconds`` whatever the tokens say, so a flood of invented ``kid``s costs one
fetch a minute, not one per CONNECT. A fetch is bounded by its own timeout and by the
decision's deadline (no fetch starts without ``MIN_FETCH_SECONDS`` left). Keys that could not
be refreshed stay usable for one more ``refresh_seconds`` (a bounded grace for an issuer
outage), then every token is refused (:class:`JwksUnavailable`). ``kid`` is only ever a
dictionary key: never a path, a URL or a query.

The one reason that matters: the JWKS endpoint is on every token's path, so it must neither
hang a CONNECT past IoT's 5 s nor be something an attacker can make the authorizer call at
will.

Design: docs/design/tokens.md
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from iotauth.wire.aws_config import Endpoint
from iotauth.wire.aws_http import open_connection
from iotauth.wire.jws import MAX_JWKS_BYTES, JsonWebKey, parse_jwks

__all__ = [
    "FETCH_TIMEOUT",
    "MIN_FETCH_SECONDS",
    "Fetch",
    "JwksCache",
    "JwksUnavailable",
    "http_fetch",
]

#: One fetch's budget (connect and read together); inside a decision also its deadline.
FETCH_TIMEOUT = 1.5
#: No fetch starts with less than this left before the decision's deadline.
MIN_FETCH_SECONDS = 0.2

#: ``fetch(url, timeout_seconds) -> body``; raises OSError/ValueError on any failure.
Fetch = Callable[[str, float], bytes]


class JwksUnavailable(Exception):
    """No usable key set (the endpoint failed, or its answer was refused); fail closed."""


def http_fetch(url: str, timeout: float) -> bytes:
    """GET ``url`` within ``timeout`` s: 200 only, no redirects, at most MAX_JWKS_BYTES.

    On the functions' own HTTP client (:mod:`iotauth.wire.aws_http`: system CA bundle, host
    name checks, one deadline however slowly the answer trickles); the connection is closed
    afterwards, so none is kept in a SnapStart snapshot."""
    endpoint = Endpoint.from_url(url)  # http(s), no query, user or fragment
    target = url.split("://", 1)[1].partition("/")[2]
    target = "/" + target
    connection = open_connection(endpoint, min(0.5, timeout), timeout)
    try:
        response = connection.request(
            "GET",
            target,
            {"Host": endpoint.signed_host, "Accept": "application/json", "Connection": "close"},
            b"",
            deadline=time.monotonic() + timeout,
        )
    finally:
        connection.close()
    if response.status != 200:
        raise OSError(f"JWKS answered {response.status}")
    if len(response.body) > MAX_JWKS_BYTES:
        raise ValueError("JWKS too large")
    return response.body


class JwksCache:
    """The container's copy of one issuer's keys (thread-safe; the local stand-in shares it)."""

    def __init__(
        self,
        url: str,
        *,
        fetch: Fetch = http_fetch,
        refresh_seconds: float = 900.0,
        min_refetch_seconds: float = 60.0,
        fetch_timeout: float = FETCH_TIMEOUT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = url
        self._fetch = fetch
        self._refresh = refresh_seconds
        self._min_refetch = min_refetch_seconds
        self._timeout = fetch_timeout
        self._clock = clock  # wall clock: a SnapStart restore must see the keys' real age
        self._keys: dict[str | None, JsonWebKey] = {}
        self._fetched_at: float | None = None  # last successful fetch
        self._attempted_at: float | None = None  # last fetch started, successful or not
        self._lock = threading.Lock()
        self.fetches = 0  # fetches started (tests, benchmarks)

    def prime(self) -> bool:
        """Fetch at init (not rate-limited); False when it failed (tokens then retry it)."""
        with self._lock:
            return self._refetch(self._timeout)

    def _refetch(self, timeout: float) -> bool:
        self._attempted_at = self._clock()
        self.fetches += 1
        try:
            keys = parse_jwks(self._fetch(self.url, timeout))
        except (OSError, ValueError):  # JwsError is a ValueError; nothing of it is kept
            return False
        self._keys, self._fetched_at = keys, self._clock()
        return True

    def _may_refetch(self, now: float) -> bool:
        return self._attempted_at is None or now - self._attempted_at >= self._min_refetch

    def key_for(self, kid: str | None, *, time_left: float) -> JsonWebKey | None:
        """The key named ``kid`` (None: the one key of a set without ``kid``s), or None when
        the issuer has no such key. Raises :class:`JwksUnavailable` when no current key set
        can be had. ``time_left``: seconds to the decision's deadline."""
        deadline = time.monotonic() + time_left
        if not self._lock.acquire(timeout=max(0.0, time_left)):
            raise JwksUnavailable("JWKS busy")
        try:
            now = self._clock()
            age = None if self._fetched_at is None else now - self._fetched_at
            stale = age is None or age >= self._refresh
            unknown = kid not in self._keys
            if (stale or unknown) and self._may_refetch(now):
                left = deadline - time.monotonic()
                if left >= MIN_FETCH_SECONDS:
                    self._refetch(min(self._timeout, left))
                    now = self._clock()
                    age = None if self._fetched_at is None else now - self._fetched_at
            if age is None or age >= 2 * self._refresh:
                raise JwksUnavailable("no current JWKS")
            return self._keys.get(kid)
        finally:
            self._lock.release()

    @property
    def key_count(self) -> int:
        return len(self._keys)
