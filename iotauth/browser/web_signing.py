"""The signer's domain: a signed-in browser user's own short-lived MQTT URL (REFERENCE §6).

:meth:`WebSigner.sign_url` assumes the IoT client role with a session policy from the
caller's :class:`~iotauth.access.scoping.Scope` (:func:`~iotauth.access.scoping.session_policy`,
the authorizer's own rule) and presigns with those credentials: a URL is a bearer credential,
so it is never signed with the signer's own role. AWS only through the
:class:`CredentialIssuer` / :class:`EndpointResolver` ports.

Design: docs/design/signer.md
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from iotauth.access.claims import web_user_scope
from iotauth.access.names import web_username
from iotauth.access.scoping import (
    DEFAULT_SHARED_ROOTS,
    ArnContext,
    Scope,
    grant_reaches,
    session_policy,
    shared_roots_from_env,
    validate_room,
    validate_topic_grant,
)
from iotauth.wire.sigv4 import MAX_URL_AGE, presign_mqtt_url

__all__ = [
    "REFRESH_MARGIN",
    "CredentialIssuer",
    "DisabledUsers",
    "EndpointResolver",
    "SignedUrl",
    "SignerSettings",
    "SignerUnavailable",
    "TemporaryCredentials",
    "UserDisabled",
    "WebSigner",
    "role_session_name",
]

#: Cached credentials are replaced when less than this many seconds remain (a URL minted
#: from them stays usable for at least this long).
REFRESH_MARGIN = 300
MIN_SESSION_SECONDS = 900  # STS minimum
MAX_SESSION_SECONDS = 3600  # role chaining caps sessions at one hour

_ROLE_ARN = re.compile(r"arn:aws(-[a-z]+)*:iam::\d{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}")
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:\d{1,5})?")
_SESSION_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_+=,.@-]")


class SignerUnavailable(Exception):
    """A dependency (STS, IoT DescribeEndpoint) failed; callers answer with a generic 503."""


class UserDisabled(Exception):
    """An operator disabled this user (``iotauth users disable``): no URL; callers answer 403."""


class DisabledUsers(Protocol):
    """The operators' ``webuser#`` records (:mod:`iotauth.identities.web_users`)."""

    def is_disabled(self, username: str) -> bool:
        """True when ``username`` (a web username) is disabled, read consistently (no cache:
        a disable applies to the very next request). Raises :class:`SignerUnavailable` when
        that cannot be known: the caller then refuses (fail closed)."""
        ...


@dataclass(frozen=True, slots=True)
class TemporaryCredentials:
    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str = field(repr=False)
    expiration: datetime  # timezone-aware

    def remaining(self, now: float) -> float:
        return self.expiration.timestamp() - now


class CredentialIssuer(Protocol):
    """``sts:AssumeRole`` with an inline session policy."""

    def assume_role(
        self, *, role_arn: str, session_name: str, policy: str, duration_seconds: int
    ) -> TemporaryCredentials:
        """Raises :class:`SignerUnavailable` when credentials cannot be had."""
        ...


class EndpointResolver(Protocol):
    def data_endpoint(self) -> str:
        """The IoT data endpoint host; raises :class:`SignerUnavailable` on failure."""
        ...


def _csv(value: str | None) -> tuple[str, ...]:
    return tuple(dict.fromkeys(p.strip() for p in (value or "").split(",") if p.strip()))


def _flag(env: Mapping[str, str], name: str) -> bool:
    """A template flag: "true" or "false" (absent: false); anything else refuses to start."""
    raw = env.get(name, "").strip().lower() or "false"
    if raw not in {"true", "false"}:
        raise ValueError(f"{name} must be true or false")
    return raw == "true"


@dataclass(frozen=True, slots=True)
class SignerSettings:
    """The signer's configuration (the Lambda's environment)."""

    role_arn: str
    endpoint: str | None = None
    publish: tuple[str, ...] = ()
    subscribe: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    session_seconds: int = MIN_SESSION_SECONDS
    rooms: tuple[str, ...] = ()  # publish <room>/<client id>, subscribe <room>/+
    shared_roots: tuple[str, ...] = DEFAULT_SHARED_ROOTS
    retain: bool = False  # WebAllowRetain: iot:RetainPublish on the user's own namespace
    shared: bool = False  # WebAllowSharedSubscriptions: $share/<group>/… within it

    def __post_init__(self) -> None:
        if not _ROLE_ARN.fullmatch(self.role_arn):
            raise ValueError("IOTAUTH_CLIENT_ROLE_ARN must be an IAM role ARN")
        for topic in (*self.publish, *self.subscribe):
            validate_topic_grant(topic)
        for room in self.rooms:
            validate_room(room, self.shared_roots)
            for topic in self.publish:  # a plain grant there would let anyone post as anyone
                if grant_reaches(topic, room):
                    raise ValueError(
                        f"IOTAUTH_WEB_PUBLISH: {topic!r} reaches into the room {room!r}, "
                        "whose senders are proven by the topic"
                    )
        for origin in self.allowed_origins:
            if origin != "*" and not _ORIGIN.fullmatch(origin):
                raise ValueError(f"invalid allowed origin {origin!r}: use scheme://host[:port]")
        if not MIN_SESSION_SECONDS <= self.session_seconds <= MAX_SESSION_SECONDS:
            raise ValueError(
                f"IOTAUTH_URL_SESSION_SECONDS must be {MIN_SESSION_SECONDS}-{MAX_SESSION_SECONDS}"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SignerSettings:
        seconds = env.get("IOTAUTH_URL_SESSION_SECONDS", "").strip() or str(MIN_SESSION_SECONDS)
        if not seconds.isdigit():
            raise ValueError("IOTAUTH_URL_SESSION_SECONDS must be a number of seconds")
        return cls(
            role_arn=env.get("IOTAUTH_CLIENT_ROLE_ARN", "").strip(),
            endpoint=env.get("IOTAUTH_IOT_ENDPOINT", "").strip() or None,
            publish=_csv(env.get("IOTAUTH_WEB_PUBLISH")),
            subscribe=_csv(env.get("IOTAUTH_WEB_SUBSCRIBE")),
            allowed_origins=_csv(env.get("IOTAUTH_ALLOWED_ORIGINS")),
            session_seconds=int(seconds),
            rooms=_csv(env.get("IOTAUTH_WEB_ROOMS")),
            shared_roots=shared_roots_from_env(env),
            retain=_flag(env, "IOTAUTH_WEB_ALLOW_RETAIN"),
            shared=_flag(env, "IOTAUTH_WEB_ALLOW_SHARED_SUBSCRIPTIONS"),
        )


@dataclass(frozen=True, slots=True)
class SignedUrl:
    url: str = field(repr=False)  # a bearer credential: never logged
    client_id: str
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    expires_at: datetime
    rooms: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """The JSON body the signer returns."""
        return {
            "url": self.url,
            "clientId": self.client_id,
            "rooms": list(self.rooms),
            "topics": {"publish": list(self.publish), "subscribe": list(self.subscribe)},
            "expiresAt": self.expires_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }


def role_session_name(username: str) -> str:
    """A RoleSessionName (2-64 of ``[\\w+=,.@-]``) that names the caller in CloudTrail."""
    safe = _SESSION_NAME_UNSAFE.sub("-", username)
    if len(safe) > 64 or safe != username:
        # Keep it recognisable and unique: a readable prefix plus a digest of the original.
        digest = hashlib.sha256(username.encode("utf-8")).hexdigest()[:16]
        safe = f"{safe[:47]}-{digest}"
    return safe if len(safe) >= 2 else f"{safe}--"


class WebSigner:
    """Mints scoped presigned URLs for browser users; one instance per container."""

    def __init__(
        self,
        settings: SignerSettings,
        issuer: CredentialIssuer,
        endpoints: EndpointResolver,
        *,
        clock: Callable[[], float] = time.time,
        max_cached: int = 10_000,
        disabled: DisabledUsers | None = None,
    ) -> None:
        self._settings = settings
        self._issuer = issuer
        self._endpoints = endpoints
        self._disabled = disabled
        self._clock = clock
        self._max_cached = max_cached
        self._cache: OrderedDict[tuple[str, ArnContext], TemporaryCredentials] = OrderedDict()
        self._lock = threading.Lock()

    def scope_for(self, username: str) -> Scope:
        return web_user_scope(
            username,
            publish=self._settings.publish,
            subscribe=self._settings.subscribe,
            rooms=self._settings.rooms,
            retain=self._settings.retain,
            shared=self._settings.shared,
        )

    def sign_url(self, subject: str, arn: ArnContext) -> SignedUrl:
        """The caller's URL. ``subject`` is the verified JWT ``sub``.

        Raises :class:`~iotauth.access.names.InvalidName` (a ValueError) for an unusable subject,
        :class:`UserDisabled` for a disabled user (checked before any cached credential is
        used) and :class:`SignerUnavailable` when the check, STS or the endpoint lookup fails.
        """
        username = web_username(subject)
        if self._disabled is not None and self._disabled.is_disabled(username):
            self.forget(username)
            raise UserDisabled(username)
        scope = self.scope_for(username)
        credentials = self._credentials(username, scope, arn)
        endpoint = self._endpoints.data_endpoint()
        now = self._clock()
        try:
            url = presign_mqtt_url(
                endpoint,
                arn.region,
                credentials.access_key_id,
                credentials.secret_access_key,
                credentials.session_token,
                now=now,
            )
        except ValueError as exc:  # malformed credentials or endpoint from a dependency
            raise SignerUnavailable("cannot sign with the issued credentials") from exc
        expires = min(now + MAX_URL_AGE, credentials.expiration.timestamp())
        return SignedUrl(
            url=url,
            client_id=scope.client_ids[0],
            publish=(
                *(f"{ns}/#" for ns in scope.namespaces),
                *scope.publish,
                *(f"{room}/{scope.client_ids[0]}" for room in scope.rooms),
            ),
            subscribe=(
                *(f"{ns}/#" for ns in scope.namespaces),
                *scope.subscribe,
                *(f"{room}/+" for room in scope.rooms),
            ),
            expires_at=datetime.fromtimestamp(int(expires), UTC),
            rooms=scope.rooms,
        )

    def forget(self, username: str) -> None:
        """Drop ``username``'s cached credentials (issued before it was disabled: once it is
        enabled again, it gets new ones)."""
        with self._lock:
            for key in [k for k in self._cache if k[0] == username]:
                del self._cache[key]

    def _credentials(self, username: str, scope: Scope, arn: ArnContext) -> TemporaryCredentials:
        key = (username, arn)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None and cached.remaining(self._clock()) >= REFRESH_MARGIN:
                self._cache.move_to_end(key)
                return cached
        credentials = self._issuer.assume_role(
            role_arn=self._settings.role_arn,
            session_name=role_session_name(username),
            policy=session_policy(scope, arn),
            duration_seconds=self._settings.session_seconds,
        )
        if credentials.expiration.tzinfo is None:
            raise SignerUnavailable("credentials without a timezone-aware expiration")
        with self._lock:
            self._cache[key] = credentials
            self._cache.move_to_end(key)
            while len(self._cache) > self._max_cached:
                self._cache.popitem(last=False)
        return credentials
