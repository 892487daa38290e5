"""Per-container negative cache: a storm of the same bad credentials costs one check.

Contract: :class:`NegativeCache` remembers for ``ttl_seconds`` (60 s) that one exact
(username, password, client id) triple was verified and found wrong
(:data:`CACHEABLE_REASONS`), and answers a repeat with the same denial without scrypt or a
store read; a triple verified wrong within ``remember_seconds`` and now locked is re-armed.
It never holds an allow or the credentials (keys are HMACs under a per-container key);
at most ``max_entries`` (4,096), least recently used evicted first; thread-safe.

The one reason: it can only ever deny a credential that was itself presented and verified
wrong, at most ``ttl_seconds`` earlier (what the TTL bounds is rotation).

Design: docs/design/negative-cache.md
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from collections import OrderedDict

from iotauth.wire.frozen import Frozen

__all__ = ["CACHEABLE_REASONS", "CachedDenial", "NegativeCache"]

#: Denials that mean "this exact credential was verified and is wrong".
CACHEABLE_REASONS = frozenset({"bad-password", "unknown-identity"})
_REARM_REASON = "locked"


class CachedDenial(Frozen):
    __slots__ = ("reason", "username")
    reason: str
    username: str | None  # the known identity's name (as the Decision had it), else None

    def __init__(self, reason: str, username: str | None) -> None:
        self._init(reason=reason, username=username)


class _Entry:
    __slots__ = ("denial", "expires_at", "verified_at")

    def __init__(self, denial: CachedDenial, expires_at: float, verified_at: float) -> None:
        self.denial = denial
        self.expires_at = expires_at
        self.verified_at = verified_at  # when this triple was last verified wrong


class NegativeCache:
    def __init__(
        self,
        *,
        ttl_seconds: float = 60.0,
        max_entries: int = 4096,
        remember_seconds: float = 900.0,
    ) -> None:
        if not (0 < ttl_seconds <= 3600 and 1 <= max_entries <= 1_000_000):
            raise ValueError("negative cache: ttl 0-3600 s, 1-1,000,000 entries")
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self.remember_seconds = max(remember_seconds, ttl_seconds)
        self._key = secrets.token_bytes(32)
        self._entries: OrderedDict[bytes, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def key_for(self, username: str, password: bytes, client_id: str) -> bytes:
        mac = hmac.new(self._key, digestmod=hashlib.sha256)
        # Event strings may hold lone surrogates (JSON escapes): encode them, never raise.
        name, cid = (text.encode("utf-8", "surrogatepass") for text in (username, client_id))
        for part in (name, password, cid):
            mac.update(len(part).to_bytes(4, "big"))
            mac.update(part)
        return mac.digest()

    def get(self, key: bytes, now: float) -> CachedDenial | None:
        """The cached denial for ``key`` if it is still fresh at ``now`` (monotonic)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or now >= entry.expires_at or now < entry.verified_at:
                return None
            self._entries.move_to_end(key)
            return entry.denial

    def record(self, key: bytes, reason: str, username: str | None, now: float) -> None:
        """Remember the outcome of one decision for ``key`` (only denials that qualify)."""
        with self._lock:
            if reason in CACHEABLE_REASONS:
                self._entries[key] = _Entry(
                    CachedDenial(reason, username), now + self.ttl_seconds, now
                )
            elif reason == _REARM_REASON:
                entry = self._entries.get(key)
                if entry is None or not 0 <= now - entry.verified_at <= self.remember_seconds:
                    return
                entry.denial = CachedDenial(reason, username)
                entry.expires_at = now + self.ttl_seconds
            else:
                # Anything else — above all an allow — forgets the triple.
                self._entries.pop(key, None)
                return
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
