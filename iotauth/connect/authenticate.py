"""The authorizer's decision: a connect request, a store, a clock, settings → a Decision.

Contract: :func:`authenticate` decides one connection attempt and raises only on
programming errors: a store error, or the decision's store deadline (``Settings``, 2.5 s),
denies. It makes no AWS call of its own (the store is an interface) and does not log: the
handler logs the decision's ``reason``, a fixed, secret-free string.

The one reason that matters: the order of checks is chosen so that timing and lock state
say nothing about which identities exist — the cost and the lockout depend only on the
request's shape, except for the one exemption: a generated-shaped password presented to a
secret iotauth issued (one HMAC, never counted; docs/design/lockout.md).

Design: docs/design/order-of-checks.md, docs/design/lockout.md
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from iotauth.access.names import InvalidName, principal_id_for, validate_username
from iotauth.access.scoping import (
    DEFAULT_SHARED_ROOTS,
    ArnContext,
    PolicyTooLarge,
    policy_documents,
    shared_roots_from_env,
    validate_shared_root,
)
from iotauth.connect import aliyun_check
from iotauth.connect.client_ids import client_id_allowed, default_aliyun_client_id
from iotauth.connect.event import ConnectRequest
from iotauth.connect.lockout_count import count_first, undo_count
from iotauth.connect.negative_cache import NegativeCache
from iotauth.connect.store_deadline import DeadlineStore, StoreTimeout
from iotauth.identities.credentials import GENERATED_PREFIX, lockout_exempt, verify_password
from iotauth.identities.lockout import LockoutPolicy, is_locked
from iotauth.identities.records import (
    MAX_DURATION,
    MIN_DURATION,
    bounded_session_seconds,
    clamp_duration,
)
from iotauth.identities.store import CredentialStore, StoreError
from iotauth.wire import aliyun
from iotauth.wire.frozen import Frozen

if TYPE_CHECKING:  # the token path is imported only where token auth is on (_decide_token)
    from iotauth.connect.token_check import TokenAuth

__all__ = ["Decision", "Settings", "authenticate"]

# No store call starts later than this after the decision began: with one call's worst case
# (1.5 s) and a cold start, a decision stays below IoT Core's 5 s
# (docs/design/order-of-checks.md).
STORE_DEADLINE_SECONDS = 2.5
_MAX_STORE_DEADLINE_SECONDS = 4.5


class Settings(Frozen):
    """The authorizer's configuration (``from_env``); validated when built."""

    __slots__ = (
        "aliyun_any_client_id_products",
        "aliyun_max_skew_seconds",
        "disconnect_after_seconds",
        "lockout",
        "refresh_after_seconds",
        "shared_roots",
        "store_deadline_seconds",
        "table",
    )
    table: str
    lockout: LockoutPolicy
    aliyun_max_skew_seconds: int
    disconnect_after_seconds: int
    refresh_after_seconds: int
    # Internal, not an environment setting: see STORE_DEADLINE_SECONDS.
    store_deadline_seconds: float
    # The deployment's shared topic roots (IOTAUTH_SHARED_TOPIC_ROOTS, the template's
    # WebSharedTopicRoot): no identity may be named like one; rooms lie under them.
    shared_roots: tuple[str, ...]
    # Aliyun products whose devices may all sign any safe client id (the product-wide
    # default of a record's any_client_id; IOTAUTH_ALIYUN_ANY_CLIENT_ID_PRODUCTS).
    aliyun_any_client_id_products: frozenset[str]

    def __init__(  # noqa: PLR0917 — the settings' field order
        self,
        table: str,
        lockout: LockoutPolicy | None = None,
        aliyun_max_skew_seconds: int = 900,
        disconnect_after_seconds: int = 86400,
        refresh_after_seconds: int = 86400,
        store_deadline_seconds: float = STORE_DEADLINE_SECONDS,
        shared_roots: tuple[str, ...] = DEFAULT_SHARED_ROOTS,
        aliyun_any_client_id_products: frozenset[str] = frozenset(),
    ) -> None:
        self._init(
            table=table,
            lockout=LockoutPolicy() if lockout is None else lockout,
            aliyun_max_skew_seconds=aliyun_max_skew_seconds,
            disconnect_after_seconds=disconnect_after_seconds,
            refresh_after_seconds=refresh_after_seconds,
            store_deadline_seconds=store_deadline_seconds,
            shared_roots=shared_roots,
            aliyun_any_client_id_products=aliyun_any_client_id_products,
        )
        self._check()

    def _check(self) -> None:
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


def authenticate(
    request: ConnectRequest,
    store: CredentialStore,
    *,
    now: float,
    settings: Settings,
    arn: ArnContext,
    monotonic: Callable[[], float] = time.monotonic,
    negative_cache: NegativeCache | None = None,
    tokens: TokenAuth | None = None,
) -> Decision:
    """Decide one connection attempt. Raises only on programming errors; store errors deny.

    ``tokens``: the container's token auth (None: off). A request carrying a token (or
    the username ``$jwt``) takes the token path (:func:`_decide_token`) instead.

    ``now`` is the wall clock (timestamps, lockout); ``monotonic`` times the store deadline
    (``settings.store_deadline_seconds`` from this call), checked before every store call,
    and the ``negative_cache`` (the container's; None: no cache) entries.
    """
    deadline = monotonic() + settings.store_deadline_seconds
    if request.problem is not None:
        return _deny("malformed")
    if tokens is not None:
        from iotauth.connect import token_check  # noqa: PLC0415 — token auth on: loaded

        if token_check.wants_token(request, tokens):
            time_left = lambda: deadline - monotonic()  # noqa: E731
            return _decide_token(request, tokens, now, settings, arn, time_left)
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
        if aliyun_id is None or aliyun_id.securemode not in aliyun_check.SECUREMODES:
            return _deny("malformed-client-id")

    # Repeats of a triple already verified wrong: no scrypt, no store
    # (iotauth.connect.negative_cache).
    cache_key = None
    if negative_cache is not None:
        cache_key = negative_cache.key_for(username, password, client_id)
        cached = negative_cache.get(cache_key, monotonic())
        if cached is not None:
            return _deny(cached.reason, cached.username)

    timed = DeadlineStore(store, deadline, monotonic)
    try:
        decision = _decide(request, timed, now, settings, arn, aliyun_id)
    except StoreTimeout:
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
    if aliyun_id is not None and aliyun_id.client_id != default_aliyun_client_id(username):
        probe = aliyun_id.client_id
    found = store.lookup(username) if probe is None else store.lookup(username, probe)
    known = username if found.record is not None else None  # never log unknown names
    record = found.record
    verifier = None
    if record is not None and record.kind in ("secret", "password"):
        verifier = record.verifier
    # The lockout guards every presentation but one: a generated-shaped password to a
    # record whose secret iotauth itself issued (256 random bits: counting those would
    # only let anyone lock the device out). Restored and imported secrets, chosen
    # passwords, unknown names and Aliyun signatures are guessable: locked → refused
    # unverified (step 2); otherwise counted before they are checked (step 3), refused if
    # locked meanwhile (docs/design/lockout.md).
    guessable = aliyun_id is not None or not lockout_exempt(password, verifier)
    counted = None
    if guessable and (
        is_locked(found.lockout, now)
        or (counted := count_first(store, username, found.lockout, now, settings.lockout)) is None
    ):
        return _deny("locked", known)

    if aliyun_id is not None:
        ok = aliyun_check.verify_signature(request, aliyun_id, record)
    else:
        ok = verify_password(password, verifier) and verifier is not None
    if not ok or record is None:
        if found.invalid_record:
            return _deny("invalid-record", known)
        return _deny("unknown-identity" if record is None else "bad-password", known)
    if counted is not None:
        undo_count(store, username, counted, settings.lockout)  # step 5: only this attempt's count

    if record.status != "active":
        return _deny("disabled", known)
    sender: str | None = None
    if aliyun_id is not None:
        refused, sender = aliyun_check.refusal(
            request,
            aliyun_id,
            record,
            found.client_id_owner,
            precise_now,
            settings.aliyun_max_skew_seconds,
            settings.aliyun_any_client_id_products,
        )
        if refused is not None:
            return _deny(refused, known)
    elif not client_id_allowed(record, client_id):
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
        # session, never refreshed (docs/design/order-of-checks.md).
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


def _decide_token(  # noqa: PLR0917 — private; called once, positionally
    request: ConnectRequest,
    tokens: TokenAuth,
    now: float,
    settings: Settings,
    arn: ArnContext,
    time_left: Callable[[], float],
) -> Decision:
    """The token path (docs/design/tokens.md): no lockout (nothing to guess: a signature),
    no negative cache (a disable or a key rotation must apply to the next attempt)."""
    from iotauth.connect import token_check  # noqa: PLC0415 — imported by the caller already

    outcome = token_check.check_token(
        request,
        tokens,
        now=now,
        disconnect_after=settings.disconnect_after_seconds,
        refresh_after=settings.refresh_after_seconds,
        time_left=time_left,
    )
    if outcome.scope is None or outcome.username is None or outcome.reason != "allowed":
        return _deny(outcome.reason, outcome.username)
    scope = outcome.scope
    try:
        if request.client_id is not None:
            scope = scope.with_client_id(request.client_id)
        documents = policy_documents(scope, arn)
    except PolicyTooLarge:
        return _deny("policy-too-large", outcome.username)
    except InvalidName:
        return _deny("client-id-not-allowed", outcome.username)
    return Decision(
        allowed=True,
        reason="allowed",
        username=outcome.username,
        principal_id=principal_id_for(outcome.username),
        policy_documents=tuple(documents),
        disconnect_after=clamp_duration(outcome.disconnect_after),
        refresh_after=clamp_duration(outcome.refresh_after),
    )
