"""The authorizer's token path: an identity provider's JWT → a web user's scope, or a reason.

Contract: :class:`TokenSettings` (``IOTAUTH_TOKEN_*``; ``from_env`` gives None when
``IOTAUTH_TOKEN_ISSUER`` is empty: token auth off) and :class:`TokenAuth` (settings, the
issuer's :class:`~iotauth.connect.jwks.JwksCache`, the disabled-user reads) are built at init.
:func:`find_token` says where a request's token is — the MQTT password when the username is
:data:`JWT_USERNAME` (``$jwt``, which no identity can be named: names start with a letter
or digit), the event's ``token``, or the configured key name in the HTTP headers, the query
string or the MQTT username's query; two different ones are a conflict.
:func:`check_token` verifies it and returns a :class:`TokenOutcome`: ``reason`` ``allowed``
with the scope and session bounds, or a fixed deny reason. Checks run cheapest first —
shape, ``alg`` pinned to the configured ones, ``iss``, ``aud``/``client_id``, ``exp``/``nbf``/
``iat`` within the skew, ``sub``, then the key (JWKS, bounded) and the signature — and only a
verified token reaches the one keyed read (a disabled ``webuser#``). The session never
outlives the token: ``disconnectAfter`` = min(the deployment's, ``exp`` − now), refused when
fewer than 300 s (IoT's minimum) are left. No AWS call here but that read, through the port.

The one reason that matters: a token is a bearer credential minted elsewhere, so everything
it may do is decided here from settings and verified claims, and every failure denies.

Design: docs/design/tokens.md, docs/design/order-of-checks.md
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from iotauth.access.claims import GroupGrants, WebScopeRules, scope_for_claims
from iotauth.access.names import InvalidName, web_username
from iotauth.access.scoping import Scope, shared_roots_from_env
from iotauth.connect.event import JWT_USERNAME, ConnectRequest
from iotauth.connect.jwks import Fetch, JwksCache, JwksUnavailable
from iotauth.identities.records import MAX_DURATION, MIN_DURATION
from iotauth.identities.store import StoreError
from iotauth.identities.web_user_status import WebUserStatus
from iotauth.wire import jws
from iotauth.wire.frozen import Frozen

__all__ = [
    "DEFAULT_KEY_NAME",
    "JWT_USERNAME",
    "RESERVED_KEY_NAMES",
    "TokenAuth",
    "TokenOutcome",
    "TokenSettings",
    "check_token",
    "find_token",
    "wants_token",
]

#: The token's key name (the IoT authorizer's ``TokenKeyName``) by default.
DEFAULT_KEY_NAME = "iotauth-token"
#: Names IoT Core gives meaning to: never a token key name.
RESERVED_KEY_NAMES = frozenset({"x-amz-customauthorizer-name", "x-amz-customauthorizer-signature"})
# Patterns, compiled (by re's cache) only when token auth is configured.
_KEY_NAME = r"[A-Za-z0-9_-]{1,128}"  # as CreateAuthorizer's tokenKeyName
_URL = r"https://[^\s?#]+|http://(127\.0\.0\.1|localhost)(:\d{1,5})?(/[^\s?#]*)?"
_MAX_SUBJECT_CHARS = 255
_MAX_AUDIENCES = 50
_TOKEN_USES = frozenset({"id", "access"})


def _csv(value: str | None) -> tuple[str, ...]:
    return tuple(dict.fromkeys(p.strip() for p in (value or "").split(",") if p.strip()))


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower() or "false"
    if raw not in {"true", "false"}:
        raise ValueError(f"{name} must be true or false")
    return raw == "true"


class TokenSettings(Frozen):
    """Token auth's configuration; validated when built (ValueError, no secret in it)."""

    __slots__ = (
        "algorithms",
        "audiences",
        "client_ids",
        "clock_skew_seconds",
        "issuer",
        "jwks_min_refetch_seconds",
        "jwks_refresh_seconds",
        "jwks_url",
        "key_name",
        "rules",
    )
    issuer: str
    audiences: tuple[str, ...]
    client_ids: tuple[str, ...]  # Cognito access tokens: `client_id` instead of `aud`
    jwks_url: str
    algorithms: frozenset[str]
    key_name: str
    clock_skew_seconds: int
    jwks_refresh_seconds: int
    jwks_min_refetch_seconds: int
    rules: WebScopeRules

    def __init__(
        self,
        *,
        issuer: str,
        rules: WebScopeRules,
        audiences: tuple[str, ...] = (),
        client_ids: tuple[str, ...] = (),
        jwks_url: str = "",
        algorithms: frozenset[str] = frozenset({"RS256"}),
        key_name: str = DEFAULT_KEY_NAME,
        clock_skew_seconds: int = 60,
        jwks_refresh_seconds: int = 900,
        jwks_min_refetch_seconds: int = 60,
    ) -> None:
        if not re.fullmatch(_URL, issuer):
            raise ValueError("IOTAUTH_TOKEN_ISSUER must be an https:// URL")
        jwks_url = jwks_url or issuer.rstrip("/") + "/.well-known/jwks.json"
        if not re.fullmatch(_URL, jwks_url):
            raise ValueError("IOTAUTH_TOKEN_JWKS_URL must be an https:// URL without a query")
        if not audiences and not client_ids:
            raise ValueError("IOTAUTH_TOKEN_AUDIENCE or IOTAUTH_TOKEN_CLIENT_IDS is required")
        if not algorithms or not algorithms <= jws.ALGORITHMS:
            raise ValueError("IOTAUTH_TOKEN_ALGORITHMS: RS256 and/or ES256")
        if not re.fullmatch(_KEY_NAME, key_name) or key_name.lower() in RESERVED_KEY_NAMES:
            raise ValueError("IOTAUTH_TOKEN_KEY_NAME: letters, digits, _ and -, not reserved")
        if not 0 <= clock_skew_seconds <= 300:
            raise ValueError("IOTAUTH_TOKEN_CLOCK_SKEW_SECONDS must be 0-300")
        if not 60 <= jwks_refresh_seconds <= 86400:
            raise ValueError("IOTAUTH_TOKEN_JWKS_REFRESH_SECONDS must be 60-86400")
        if not 1 <= jwks_min_refetch_seconds <= jwks_refresh_seconds:
            raise ValueError("IOTAUTH_TOKEN_JWKS_MIN_REFETCH_SECONDS must be 1-refresh")
        self._init(
            issuer=issuer,
            audiences=audiences,
            client_ids=client_ids,
            jwks_url=jwks_url,
            algorithms=algorithms,
            key_name=key_name,
            clock_skew_seconds=clock_skew_seconds,
            jwks_refresh_seconds=jwks_refresh_seconds,
            jwks_min_refetch_seconds=jwks_min_refetch_seconds,
            rules=rules,
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> TokenSettings | None:
        """None when ``IOTAUTH_TOKEN_ISSUER`` is empty; raises ValueError when invalid."""
        issuer = env.get("IOTAUTH_TOKEN_ISSUER", "").strip()
        if not issuer:
            return None

        def number(name: str, default: int) -> int:
            raw = env.get(name, "").strip()
            if not raw:
                return default
            if not raw.isdigit():
                raise ValueError(f"{name} must be a whole number")
            return int(raw)

        roots = shared_roots_from_env(env)
        try:
            rules = WebScopeRules(
                shared_roots=roots,
                publish=_csv(env.get("IOTAUTH_WEB_PUBLISH")),
                subscribe=_csv(env.get("IOTAUTH_WEB_SUBSCRIBE")),
                rooms=_csv(env.get("IOTAUTH_WEB_ROOMS")),
                groups_claim=env.get("IOTAUTH_TOKEN_GROUPS_CLAIM", "").strip() or "cognito:groups",
                group_grants=GroupGrants.from_json(
                    env.get("IOTAUTH_TOKEN_GROUP_GRANTS", ""), roots
                ),
                # The signer's flags, so a token's scope is its presigned URL's.
                retain=_flag(env, "IOTAUTH_WEB_ALLOW_RETAIN"),
                shared=_flag(env, "IOTAUTH_WEB_ALLOW_SHARED_SUBSCRIPTIONS"),
            )
        except InvalidName as exc:  # the message names grants and rooms, never a secret
            raise ValueError(f"token grants: {exc}") from None
        return cls(
            issuer=issuer,
            rules=rules,
            audiences=_csv(env.get("IOTAUTH_TOKEN_AUDIENCE")),
            client_ids=_csv(env.get("IOTAUTH_TOKEN_CLIENT_IDS")),
            jwks_url=env.get("IOTAUTH_TOKEN_JWKS_URL", "").strip(),
            algorithms=frozenset(_csv(env.get("IOTAUTH_TOKEN_ALGORITHMS")) or ("RS256",)),
            key_name=env.get("IOTAUTH_TOKEN_KEY_NAME", "").strip() or DEFAULT_KEY_NAME,
            clock_skew_seconds=number("IOTAUTH_TOKEN_CLOCK_SKEW_SECONDS", 60),
            jwks_refresh_seconds=number("IOTAUTH_TOKEN_JWKS_REFRESH_SECONDS", 900),
            jwks_min_refetch_seconds=number("IOTAUTH_TOKEN_JWKS_MIN_REFETCH_SECONDS", 60),
        )


class TokenAuth:
    """One container's token auth: its settings, the issuer's keys, disabled-user reads."""

    __slots__ = ("jwks", "settings", "web_users")

    def __init__(self, settings: TokenSettings, jwks: JwksCache, web_users: WebUserStatus) -> None:
        self.settings, self.jwks, self.web_users = settings, jwks, web_users

    @classmethod
    def build(
        cls,
        settings: TokenSettings,
        web_users: WebUserStatus,
        *,
        fetch: Fetch | None = None,
    ) -> TokenAuth:
        """With the issuer's JWKS cache (not fetched yet: :meth:`JwksCache.prime`)."""
        kwargs: dict[str, Any] = {} if fetch is None else {"fetch": fetch}
        cache = JwksCache(
            settings.jwks_url,
            refresh_seconds=settings.jwks_refresh_seconds,
            min_refetch_seconds=settings.jwks_min_refetch_seconds,
            **kwargs,
        )
        return cls(settings, cache, web_users)


class TokenOutcome(Frozen):
    """``reason`` ``allowed`` with ``scope`` and the session's bounds, or why not.
    ``username``: the web username, only once the token is verified (safe to log)."""

    __slots__ = ("disconnect_after", "reason", "refresh_after", "scope", "username")
    reason: str
    username: str | None
    scope: Scope | None
    disconnect_after: int
    refresh_after: int

    def __init__(
        self,
        reason: str,
        username: str | None = None,
        scope: Scope | None = None,
        disconnect_after: int = 0,
        refresh_after: int = 0,
    ) -> None:
        self._init(
            reason=reason,
            username=username,
            scope=scope,
            disconnect_after=disconnect_after,
            refresh_after=refresh_after,
        )


def _strip_bearer(value: str) -> str:
    return value[7:].strip() if value[:7].lower() == "bearer " else value


def find_token(request: ConnectRequest, key_name: str) -> tuple[str | None, str | None]:
    """(the request's token, None), (None, None) when it has none, or (None, a deny reason)."""
    found: set[str] = set()
    for candidate in (
        request.token,
        request.headers.get(key_name.lower()),
        request.query.get(key_name),
        request.username_params.get(key_name),
    ):
        if candidate:
            found.add(_strip_bearer(candidate))
    if request.username == JWT_USERNAME:
        if not request.password:
            return None, "missing-credentials"
        try:
            found.add(request.password.decode("ascii"))
        except UnicodeDecodeError:
            return None, "token-malformed"
    elif found and request.password is not None:
        return None, "token-conflict"  # a device password beside a token: which one counts?
    if len(found) > 1:
        return None, "token-conflict"
    return (found.pop() if found else None), None


def wants_token(request: ConnectRequest, tokens: TokenAuth | None) -> bool:
    """Whether the request takes the token path (never when token auth is off)."""
    if tokens is None:
        return False
    if request.username == JWT_USERNAME or request.token:
        return True
    key = tokens.settings.key_name
    return bool(
        request.headers.get(key.lower())
        or request.query.get(key)
        or request.username_params.get(key)
    )


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _claims_problem(claims: Mapping[str, Any], settings: TokenSettings, now: float) -> str | None:
    if claims.get("iss") != settings.issuer:
        return "token-issuer"
    audience = claims.get("aud")
    audiences = [audience] if isinstance(audience, str) else audience
    matched = False
    if isinstance(audiences, list) and len(audiences) <= _MAX_AUDIENCES:
        matched = any(isinstance(a, str) and a in settings.audiences for a in audiences)
    if not matched:
        client_id = claims.get("client_id")
        matched = isinstance(client_id, str) and client_id in settings.client_ids
    use = claims.get("token_use")
    if not matched or (use is not None and use not in _TOKEN_USES):
        return "token-audience"
    skew = settings.clock_skew_seconds
    expires = _number(claims.get("exp"))
    if expires is None:
        return "token-malformed"  # a token without an expiry would be valid for ever
    if now > expires + skew:
        return "token-expired"
    for name in ("nbf", "iat"):
        if name in claims:
            moment = _number(claims[name])
            if moment is None:
                return "token-malformed"
            if moment > now + skew:
                return "token-not-yet-valid"
    if expires - now < MIN_DURATION:
        return "token-expiring"  # IoT cannot end a session sooner than 300 s
    subject = claims.get("sub")
    if not isinstance(subject, str) or not 1 <= len(subject) <= _MAX_SUBJECT_CHARS:
        return "token-subject"
    return None


def check_token(
    request: ConnectRequest,
    tokens: TokenAuth,
    *,
    now: float,
    disconnect_after: int,
    refresh_after: int,
    time_left: Callable[[], float],
) -> TokenOutcome:
    """Verify the request's token (see the module's contract); never raises for a bad
    token, an unreachable JWKS or a failed disabled-user read: each is a deny reason.

    ``disconnect_after``/``refresh_after``: the deployment's session bounds; ``time_left``:
    seconds to the decision's deadline (no JWKS fetch or store read starts after it)."""
    settings = tokens.settings
    token, problem = find_token(request, settings.key_name)
    if problem is not None:
        return TokenOutcome(problem)
    if token is None:
        return TokenOutcome("missing-credentials")
    try:
        parsed = jws.decode_compact(token)
    except jws.JwsError as exc:
        return TokenOutcome("token-alg" if exc.problem == "alg" else "token-malformed")
    if parsed.alg not in settings.algorithms:
        return TokenOutcome("token-alg")
    problem = _claims_problem(parsed.claims, settings, now)
    if problem is not None:
        return TokenOutcome(problem)

    try:
        key = tokens.jwks.key_for(parsed.kid, time_left=time_left())
    except JwksUnavailable:
        return TokenOutcome("jwks-unavailable")
    if key is None:
        return TokenOutcome("token-key-unknown")
    if key.alg != parsed.alg:  # a key of another type: alg confusion
        return TokenOutcome("token-alg")
    if not jws.verify(parsed, key):
        return TokenOutcome("token-signature")

    claims = parsed.claims
    try:
        scope = scope_for_claims(claims, settings.rules)
    except InvalidName:
        return TokenOutcome("token-subject")
    username = web_username(claims["sub"])
    client_id = request.client_id
    if (client_id is not None or "mqtt" in request.protocols) and client_id != username:
        return TokenOutcome("client-id-not-allowed", username)
    if time_left() <= 0:
        return TokenOutcome("store-timeout", username)
    try:
        if tokens.web_users.is_disabled(username):
            return TokenOutcome("disabled", username)
    except StoreError:
        return TokenOutcome("store-error", username)
    remaining = int(float(claims["exp"]) - now)
    disconnect = max(MIN_DURATION, min(disconnect_after, remaining, MAX_DURATION))
    return TokenOutcome(
        "allowed",
        username,
        scope,
        disconnect_after=disconnect,
        refresh_after=max(MIN_DURATION, min(refresh_after, disconnect)),
    )
