"""The authorizer's decision: a connect request, a store, a clock, settings → a Decision.

No AWS calls of its own (the store is an interface) and no logging: the handler logs the
decision's ``reason``, which is a fixed, secret-free string.

Order of checks, chosen so that timing and lock state say nothing about which identities
exist:

1. Malformed event, missing username/password/client id, or a username that no identity
   could have → deny without touching the store.
2. One read fetches the identity and its lockout counter (and, for an Aliyun signature on a
   client id other than the device's default ``pk&dn``, that id's owner in the client-id
   registry: a third key, whatever the identity). The lockout applies to
   *guessable presentations* only — a presented password not shaped like a generated
   secret, or any Aliyun signature — decided by what was presented, never by the record's
   kind. Locked and guessable → deny (even the right password), without verifying. A
   generated-shaped presentation (``iotsk_`` + 43 base64url characters) is never locked,
   never counted: nobody can guess 256 bits, so counting it would protect nothing and would
   let anyone who knows a name lock its real device out. A guesser sees the same rule for
   every name, whatever its kind and whether it exists (docs/lockout.md).
3. A guessable presentation is counted as a failure *before* it is verified, with a
   conditional write; if that write finds the username locked meanwhile, or keeps losing
   races, deny without verifying. Otherwise a burst of parallel guesses that all read the
   counter before any of them wrote it would each be checked: the lock would bound
   nothing but the guesses that arrive after it.
4. Verify. The cost depends only on the request's shape (:mod:`iotauth.identities.credentials`;
   Aliyun usernames always cost one HMAC), never on whether the identity exists.
5. Failure → deny (a guessable one was counted in 3). Success of a guessable
   presentation → take back *its own* count from step 3 (a delete when it was the only
   one, else a write of one failure less; either conditional on the version read, re-read
   and retried when another attempt counted meanwhile), never other attempts' failures: a
   guesser probing the lock cannot tell that the owner signed in meanwhile. A generated
   secret's success writes nothing.
6. Then status, client-id binding, timestamp, policy size. A client id that is not the
   identity's, or any unsafe client id, is refused: it could never widen access anyway,
   because the policy names only the identity's own client ids, as literals.

Time: IoT Core waits 5 s for an answer. Each store call is bounded by the client's timeouts
(:mod:`iotauth.identities.store`, 1.5 s at worst), but a decision may make several
(lost races on the
counter are retried), so a slow table that still answers could add them up past 5 s.
Every decision therefore has one deadline (``Settings.store_deadline_seconds``, 2.5 s from
the start of the decision on a monotonic clock): no store call starts after it, and reaching it
denies with reason ``store-timeout`` (fail closed, like any store error).

Aliyun ``securemode``: like every ``|…|`` parameter but the timestamp it is not signed, so
it can grant nothing; a connection that reaches IoT Core is TLS whatever it says. It must
still be present and be 2 (TLS/wss) or 3 (TCP/ws), the connect modes of REFERENCE §7:
anything else (Aliyun's ``-2``/``-3`` dynamic-registration requests, typos) is refused as a
malformed client id before the store is read. The other unsigned parameters (``_v``,
``lan``, ``ext`` …, as SDKs send them) are accepted when well-formed; they stay part of the
full client id, which is what the policy's ``iot:Connect`` names, literally.

Aliyun timestamps: the documented unit is milliseconds, but the linkkit SDK sends
seconds, so a timestamp of at most 10 digits is read as seconds (10 digits of
milliseconds would be before 1970-04-27) and a longer one as milliseconds. Only digits
(at most 16) are read; anything else is out of range. The window is symmetric
(``IOTAUTH_ALIYUN_MAX_SKEW_SECONDS``, 900 by default), so a captured Aliyun password is a
bearer credential until its timestamp is that far in the past: the scheme signs nothing
that is specific to one connection. TLS keeps it from being captured on the wire.

Aliyun sessions and refresh: every ``refreshAfterInSeconds`` IoT Core calls the authorizer
again for a live connection, with the credentials of its original CONNECT. A timestamped
Aliyun password is stale once the skew window has passed, so a refresh would deny and
drop a healthy device. For those time-limited credentials the answer's
``refreshAfterInSeconds`` is therefore its ``disconnectAfterInSeconds``: the session is
never refreshed with stale credentials; it ends at disconnect time and the device (whose
SDK reconnects by itself) signs a fresh timestamp. Such a full client id also changes on
every connection, so ``DeleteConnection`` cannot name it (:mod:`iotauth.identities.revocation`), and
neither can it name an Aliyun session on an inner client id the record does not list (an
``any_client_id`` device's MAC). Disabling or removing such a device, or changing its
grants, takes effect only when its session ends, so both kinds get the same bounded
session (:func:`bounded_session_seconds`): ``disconnectAfterInSeconds`` is the record's
(300–86400) or else one hour (``ALIYUN_TIMED_DISCONNECT_SECONDS``, or the deployment's
default if that is shorter), and ``refreshAfterInSeconds`` equals it (a record's own does
not apply). Sessions revocation can name — password identities, and Aliyun sessions
without a timestamp on a listed client id — are refreshed as usual.
"""

from __future__ import annotations

import hmac
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from iotauth.access.names import (
    WEB_PREFIX,
    InvalidName,
    is_safe_client_id,
    principal_id_for,
    validate_username,
)
from iotauth.access.scoping import (
    DEFAULT_SHARED_ROOTS,
    ArnContext,
    PolicyTooLarge,
    policy_documents,
    shared_roots_from_env,
    validate_shared_root,
)
from iotauth.connect.event import ConnectRequest
from iotauth.connect.negative_cache import NegativeCache
from iotauth.identities.credentials import GENERATED_PREFIX, is_generated_shape, verify_password
from iotauth.identities.lockout import (
    LockoutPolicy,
    LockoutState,
    after_failure,
    is_locked,
    without_one_failure,
)
from iotauth.identities.records import (
    MAX_DURATION,
    MAX_MQTT_CLIENT_ID,
    MIN_DURATION,
    IdentityRecord,
    bounded_session_seconds,
    clamp_duration,
)
from iotauth.identities.store import CredentialStore, Lookup, StoreError
from iotauth.wire import aliyun
from iotauth.wire.frozen import Frozen

__all__ = ["Decision", "Settings", "authenticate"]

_DUMMY_ALIYUN_SECRET = b"\x00" * 32
# Aliyun's connect modes (REFERENCE §7): 2 = TLS / wss, 3 = TCP / ws. See the module notes.
_SECUREMODES = frozenset({"2", "3"})
_SAVE_ATTEMPTS = 3
# No store call starts later than this after the decision began. A call that starts just
# before it may still take up to 1.5 s (the client's deadline for one call, attempts
# included: iotauth.identities.store's CALL_TIMEOUT), so a decision spends at most ~4 s on the store
# however many calls lost races would need; with a cold start (runtime init and imports,
# ~0.2 s; the DynamoDB client is built at init, its first connection is made inside the
# deadline) that stays below IoT Core's 5 s with room for the invoke itself.
STORE_DEADLINE_SECONDS = 2.5
_MAX_STORE_DEADLINE_SECONDS = 4.5


@dataclass(frozen=True, slots=True)
class Settings:
    table: str
    lockout: LockoutPolicy = field(default_factory=LockoutPolicy)
    aliyun_max_skew_seconds: int = 900
    disconnect_after_seconds: int = 86400
    refresh_after_seconds: int = 86400
    # Internal, not an environment setting: see STORE_DEADLINE_SECONDS.
    store_deadline_seconds: float = STORE_DEADLINE_SECONDS
    # The deployment's shared topic roots (IOTAUTH_SHARED_TOPIC_ROOTS, the template's
    # WebSharedTopicRoot): no identity may be named like one; rooms lie under them.
    shared_roots: tuple[str, ...] = DEFAULT_SHARED_ROOTS
    # Aliyun products whose devices may all sign any safe client id (the product-wide
    # default of a record's any_client_id; IOTAUTH_ALIYUN_ANY_CLIENT_ID_PRODUCTS).
    aliyun_any_client_id_products: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if not self.table:
            raise ValueError("IOTAUTH_TABLE is required")
        deadline = self.store_deadline_seconds
        if not (math.isfinite(deadline) and 0 < deadline <= _MAX_STORE_DEADLINE_SECONDS):
            raise ValueError(f"the store deadline must be 0-{_MAX_STORE_DEADLINE_SECONDS} s")
        if not 1 <= self.aliyun_max_skew_seconds <= 86400:
            raise ValueError("IOTAUTH_ALIYUN_MAX_SKEW_SECONDS must be 1-86400")
        for value in (self.disconnect_after_seconds, self.refresh_after_seconds):
            if not MIN_DURATION <= value <= MAX_DURATION:
                raise ValueError(f"session durations must be {MIN_DURATION}-{MAX_DURATION}")
        if not self.shared_roots:
            raise ValueError("at least one shared topic root")
        for root in self.shared_roots:
            validate_shared_root(root)  # InvalidName is a ValueError
        for product_key in self.aliyun_any_client_id_products:
            if aliyun.parse_username(f"x&{product_key}") is None:
                raise ValueError("IOTAUTH_ALIYUN_ANY_CLIENT_ID_PRODUCTS: invalid product key")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """From ``IOTAUTH_*`` variables; raises ValueError on a missing or invalid value."""
        env = os.environ if env is None else env

        def number(name: str, default: int) -> int:
            raw = env.get(name, "").strip()
            if not raw:
                return default
            try:
                return int(raw)
            except ValueError:
                raise ValueError(f"{name} must be an integer") from None

        return cls(
            table=env.get("IOTAUTH_TABLE", "").strip(),
            lockout=LockoutPolicy(
                threshold=number("IOTAUTH_LOCKOUT_THRESHOLD", 5),
                window_seconds=number("IOTAUTH_LOCKOUT_WINDOW_SECONDS", 900),
                lockout_seconds=number("IOTAUTH_LOCKOUT_SECONDS", 900),
            ),
            aliyun_max_skew_seconds=number("IOTAUTH_ALIYUN_MAX_SKEW_SECONDS", 900),
            disconnect_after_seconds=number("IOTAUTH_DISCONNECT_AFTER_SECONDS", 86400),
            refresh_after_seconds=number("IOTAUTH_REFRESH_AFTER_SECONDS", 86400),
            shared_roots=shared_roots_from_env(env),
            aliyun_any_client_id_products=frozenset(
                p.strip()
                for p in env.get("IOTAUTH_ALIYUN_ANY_CLIENT_ID_PRODUCTS", "").split(",")
                if p.strip()
            ),
        )


class Decision(Frozen):
    __slots__ = (
        "allowed",
        "disconnect_after",
        "policy_documents",
        "principal_id",
        "reason",
        "refresh_after",
        "username",
    )
    allowed: bool
    reason: str  # "allowed" or why not: fixed strings, safe to log and to use as a metric
    # The identity's name, only when it exists: an unknown "username" may be a mistyped
    # password and must not reach a log.
    username: str | None
    principal_id: str | None
    policy_documents: tuple[str, ...]
    disconnect_after: int
    refresh_after: int

    def __init__(
        self,
        allowed: bool,
        reason: str,
        *,
        username: str | None = None,
        principal_id: str | None = None,
        policy_documents: tuple[str, ...] = (),
        disconnect_after: int = 0,
        refresh_after: int = 0,
    ) -> None:
        self._init(
            allowed=allowed,
            reason=reason,
            username=username,
            principal_id=principal_id,
            policy_documents=policy_documents,
            disconnect_after=disconnect_after,
            refresh_after=refresh_after,
        )

    def response(self) -> dict[str, object]:
        """The authorizer's response to IoT Core (REFERENCE §2)."""
        if not self.allowed:
            return {"isAuthenticated": False}
        return {
            "isAuthenticated": True,
            "principalId": self.principal_id,
            "policyDocuments": list(self.policy_documents),
            "disconnectAfterInSeconds": self.disconnect_after,
            "refreshAfterInSeconds": self.refresh_after,
        }


def _deny(reason: str, username: str | None = None) -> Decision:
    return Decision(allowed=False, reason=reason, username=username)


def _is_aliyun_username(username: str) -> bool:
    return "&" in username


def _username_is_possible(username: str) -> bool:
    if username.startswith(GENERATED_PREFIX):  # a secret pasted into the username field
        return False
    if _is_aliyun_username(username):
        return aliyun.parse_username(username) is not None
    try:
        validate_username(username)
    except InvalidName:
        return False
    return True


def _client_id_allowed(record: IdentityRecord, client_id: str) -> bool:
    """``client_id`` is one of the record's, safe, and not a browser user's (``web-…``)."""
    return (
        client_id in record.allowed_client_ids()
        and is_safe_client_id(client_id)
        and not client_id.startswith(WEB_PREFIX)
    )


def _default_aliyun_client_id(username: str) -> str | None:
    device = aliyun.parse_username(username)
    return f"{device[1]}&{device[0]}" if device is not None else None


def _any_aliyun_client_id_allowed(record: IdentityRecord, inner: str, settings: Settings) -> bool:
    """An unregistered inner id an Aliyun device may sign (its MAC or serial number).

    Only when its record (or its product, deployment-wide) allows it; never a browser
    user's ``web-…`` id, an unsafe id, or one with ``&`` — the ``pk&dn`` shape of every
    Aliyun device's default client id, so none can take another's — nor (checked by the
    caller, from the same read as the record) a client id registered to any identity.
    """
    device = record.aliyun_device
    if device is None or not (
        record.any_client_id or device[1] in settings.aliyun_any_client_id_products
    ):
        return False
    return (
        is_safe_client_id(inner)
        and len(inner) <= aliyun.MAX_CLIENT_ID
        and not inner.startswith(WEB_PREFIX)
        and "&" not in inner
    )


def _verify_aliyun(
    request: ConnectRequest, parsed: aliyun.AliyunClientId, record: IdentityRecord | None
) -> bool:
    """One HMAC whatever the record; True only for the right signature of an aliyun record."""
    assert request.username is not None and request.password is not None
    device = aliyun.parse_username(request.username)
    assert device is not None
    device_name, product_key = device
    secret = record.device_secret if record is not None and record.kind == "aliyun" else None
    real = secret is not None
    key = secret.encode("utf-8") if secret is not None else _DUMMY_ALIYUN_SECRET
    content = aliyun.sign_content(parsed.client_id, device_name, product_key, parsed.timestamp)
    digest = hmac.new(key, content.encode("utf-8"), aliyun.SIGN_METHODS[parsed.signmethod])
    presented = request.password.lower()
    return hmac.compare_digest(digest.hexdigest().encode("ascii"), presented) and real


def _aliyun_timestamp_ok(timestamp: str, now: float, max_skew: int) -> bool:
    if not timestamp.isdigit() or len(timestamp) > 16:
        return False
    value = int(timestamp)
    seconds = value if len(timestamp) <= 10 else value / 1000
    return abs(now - seconds) <= max_skew


class _StoreTimeout(StoreError):
    """The decision's store deadline passed before a store call (internal)."""


class _DeadlineStore:
    """The store, refusing to start a call once the decision's deadline has passed."""

    __slots__ = ("_clock", "_deadline", "_store")

    def __init__(self, store: CredentialStore, deadline: float, clock: Callable[[], float]) -> None:
        self._store, self._deadline, self._clock = store, deadline, clock

    def _check(self) -> None:
        if self._clock() >= self._deadline:
            raise _StoreTimeout("store deadline passed")

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


def _count_first(
    store: CredentialStore, username: str, state: LockoutState | None, now: int, s: Settings
) -> LockoutState | None:
    """Count one failure before checking (step 3): the state written, or None (nothing
    written) when a concurrent request has locked the username since ``state`` was read."""
    for _ in range(_SAVE_ATTEMPTS):
        previous = state.version if state is not None else 0
        written = after_failure(state, now, s.lockout)
        if store.save_lockout(username, written, s.lockout, previous):
            return written
        state = store.lookup(username).lockout  # lost a race: count on top of the winner
        if is_locked(state, now):
            return None
    raise StoreError("could not record a failed attempt")


def _undo_count(store: CredentialStore, username: str, written: LockoutState, s: Settings) -> None:
    """Take back the failure step 3 counted for an attempt that then succeeded — only that
    one: other attempts' failures stay, so nobody's success shows in the lock state a guesser
    can probe (docs/lockout.md). Every write is conditional on the version read (a delete
    when ours is the only failure left), so failures counted meanwhile are never lost;
    losing every race leaves one failure too many (stricter)."""
    state: LockoutState | None = written
    for _ in range(_SAVE_ATTEMPTS):
        if state is None or state.window_start != written.window_start:
            return  # cleared or a new window since: ours is no longer counted
        if state.failures <= 1:  # ours alone: delete it, unless someone counted meanwhile
            done = store.clear_lockout(username, state.version)
        else:
            undone = without_one_failure(state, s.lockout)
            done = store.save_lockout(username, undone, s.lockout, state.version)
        if done:
            return
        state = store.lookup(username).lockout  # lost a race: take ours off the winner's


def authenticate(
    request: ConnectRequest,
    store: CredentialStore,
    *,
    now: float,
    settings: Settings,
    arn: ArnContext,
    monotonic: Callable[[], float] = time.monotonic,
    negative_cache: NegativeCache | None = None,
) -> Decision:
    """Decide one connection attempt. Raises only on programming errors; store errors deny.

    ``now`` is the wall clock (timestamps, lockout); ``monotonic`` times the store deadline
    (``settings.store_deadline_seconds`` from this call), checked before every store call,
    and the ``negative_cache`` (the container's; None: no cache) entries.
    """
    deadline = monotonic() + settings.store_deadline_seconds
    if request.problem is not None:
        return _deny("malformed")
    username, password, client_id = request.username, request.password, request.client_id
    if not username or password is None:
        return _deny("missing-credentials")
    if not client_id:
        return _deny("missing-client-id")
    if not _username_is_possible(username):
        return _deny("malformed-username")
    aliyun_id: aliyun.AliyunClientId | None = None
    if _is_aliyun_username(username):
        aliyun_id = aliyun.parse_mqtt_client_id(client_id)
        if aliyun_id is None or aliyun_id.securemode not in _SECUREMODES:
            return _deny("malformed-client-id")

    # Repeats of a triple already verified wrong: no scrypt, no store
    # (iotauth.connect.negative_cache).
    cache_key = None
    if negative_cache is not None:
        cache_key = negative_cache.key_for(username, password, client_id)
        cached = negative_cache.get(cache_key, monotonic())
        if cached is not None:
            return _deny(cached.reason, cached.username)

    timed = _DeadlineStore(store, deadline, monotonic)
    try:
        decision = _decide(request, timed, now, settings, arn, aliyun_id)
    except _StoreTimeout:
        return _deny("store-timeout")
    except StoreError:
        return _deny("store-error")
    if negative_cache is not None and cache_key is not None:
        negative_cache.record(cache_key, decision.reason, decision.username, monotonic())
    return decision


def _decide(  # noqa: PLR0917 — private; called once, positionally
    request: ConnectRequest,
    store: CredentialStore,
    precise_now: float,
    settings: Settings,
    arn: ArnContext,
    aliyun_id: aliyun.AliyunClientId | None,
) -> Decision:
    username, password, client_id = request.username, request.password, request.client_id
    assert username is not None and password is not None and client_id is not None
    now = int(precise_now)
    # An Aliyun device signing a client id other than its default may be one allowed any
    # id: who owns that id in the registry comes with the same read (one more key).
    probe = None
    if aliyun_id is not None and aliyun_id.client_id != _default_aliyun_client_id(username):
        probe = aliyun_id.client_id
    found = store.lookup(username) if probe is None else store.lookup(username, probe)
    known = username if found.record is not None else None  # never log unknown names
    # The lockout guards guessable presentations only, told apart by the *presented*
    # credential's shape (never by the record's kind): locked → refused unverified (step 2);
    # otherwise counted before they are checked (step 3), refused if locked meanwhile.
    guessable = aliyun_id is not None or not is_generated_shape(password)
    counted = None
    if guessable and (
        is_locked(found.lockout, now)
        or (counted := _count_first(store, username, found.lockout, now, settings)) is None
    ):
        return _deny("locked", known)

    record = found.record
    if aliyun_id is not None:
        ok = _verify_aliyun(request, aliyun_id, record)
    else:
        expected_kind = record is not None and record.kind in ("secret", "password")
        ok = verify_password(password, record.verifier if record and expected_kind else None)
        ok = ok and expected_kind
    if not ok or record is None:
        if found.invalid_record:
            return _deny("invalid-record", known)
        return _deny("unknown-identity" if record is None else "bad-password", known)
    if counted is not None:
        _undo_count(store, username, counted, settings)  # step 5: only this attempt's count

    if record.status != "active":
        return _deny("disabled", known)
    sender: str | None = None
    if aliyun_id is not None:
        inner = aliyun_id.client_id
        if not (
            _client_id_allowed(record, inner)
            or (
                _any_aliyun_client_id_allowed(record, inner, settings)
                and found.client_id_owner is None  # not another identity's registered id
            )
        ):
            return _deny("client-id-not-allowed", known)
        if len(client_id) > MAX_MQTT_CLIENT_ID:
            return _deny("malformed-client-id", known)
        try:
            canonical = aliyun.canonical_client_id(
                inner,
                form=record.client_id_form,
                tls="tls" in request.protocols,
                signmethod=aliyun_id.signmethod,
                timestamp=aliyun_id.timestamp,
            )
        except ValueError:
            return _deny("invalid-record", known)
        if client_id != canonical:  # one spelling per signature (aliyun.py notes)
            return _deny("client-id-not-canonical", known)
        sender = record.room_sender(inner)
        if aliyun_id.timestamp is None:
            if not record.allow_no_timestamp:
                return _deny("timestamp-missing", known)
        elif not _aliyun_timestamp_ok(
            aliyun_id.timestamp, precise_now, settings.aliyun_max_skew_seconds
        ):
            return _deny("timestamp-out-of-range", known)
    elif not _client_id_allowed(record, client_id):
        return _deny("client-id-not-allowed", known)

    try:
        # The topic rules again (the record may predate them, or the deployment's roots
        # may have changed since it was written).
        record.check_topics(settings.shared_roots)
        if record.topic_problems(settings.shared_roots) and not record.allow_broad:
            return _deny("broad-grant", known)
        documents = policy_documents(record.scope_for(client_id, sender=sender), arn)
    except PolicyTooLarge:
        return _deny("policy-too-large", known)
    except InvalidName:  # a stored grant that is no longer valid, a reserved name
        return _deny("invalid-record", known)
    if aliyun_id is not None and (
        aliyun_id.timestamp is not None or aliyun_id.client_id not in record.allowed_client_ids()
    ):
        # Time-limited credentials, or a client id revocation cannot name: a bounded
        # session, never refreshed (see the module notes).
        disconnect = bounded_session_seconds(record, settings.disconnect_after_seconds)
        refresh = disconnect
    else:
        disconnect = record.disconnect_after or settings.disconnect_after_seconds
        refresh = record.refresh_after or settings.refresh_after_seconds
    return Decision(
        allowed=True,
        reason="allowed",
        username=username,
        principal_id=principal_id_for(username),
        policy_documents=tuple(documents),
        disconnect_after=clamp_duration(disconnect),
        refresh_after=clamp_duration(refresh),
    )
