"""AWS credentials for the client: from the environment, or fetched from Lambda's container
credentials endpoint and renewed before they expire.

Contract: :meth:`CredentialSource.get` returns :class:`Credentials` or raises
:class:`~iotauth.wire.aws_errors.AwsError` whose code names the failure, never a secret;
:meth:`CredentialSource.forget` drops fetched ones that AWS rejected. Environment ones are
``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN``; else the container
provider (what a SnapStart function gets). Design: docs/design/aws-json.md
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping

from iotauth.wire.aws_config import Endpoint
from iotauth.wire.aws_errors import AwsError, ConfigError
from iotauth.wire.aws_http import network_code, open_connection

__all__ = ["CredentialSource", "Credentials", "credential_source"]

_REFRESH_BEFORE_EXPIRY = 300.0  # seconds: container credentials are renewed this early
# Hosts an http:// container credentials URI may name (as the AWS SDKs allow).
_CONTAINER_HOSTS = frozenset({"169.254.170.2", "169.254.170.23", "fd00:ec2::23"})


class Credentials:
    """AWS credentials; no ``repr`` of their values."""

    __slots__ = ("access_key", "expires_at", "secret_key", "token")

    def __init__(
        self,
        access_key: str,
        secret_key: str,
        token: str | None = None,
        expires_at: float | None = None,  # POSIX seconds; None: does not expire
    ) -> None:
        self.access_key = access_key
        self.secret_key = secret_key
        self.token = token
        self.expires_at = expires_at


def credential_source(
    credentials: Credentials | None,
    env: Mapping[str, str],
    connect_timeout: float,
    read_timeout: float,
) -> CredentialSource:
    """``credentials`` as given, else those ``env`` names (raises :class:`ConfigError`)."""
    if credentials is not None:
        return CredentialSource(
            {"AWS_ACCESS_KEY_ID": credentials.access_key,
             "AWS_SECRET_ACCESS_KEY": credentials.secret_key,
             "AWS_SESSION_TOKEN": credentials.token or ""},
            connect_timeout,
            read_timeout,
        )  # fmt: skip
    return CredentialSource(env, connect_timeout, read_timeout)


class CredentialSource:
    """Environment credentials (fixed) or the container endpoint (fetched, renewed)."""

    def __init__(
        self,
        env: Mapping[str, str],
        connect_timeout: float,
        read_timeout: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: Credentials | None = None
        self._timeouts = (connect_timeout, read_timeout)
        access = env.get("AWS_ACCESS_KEY_ID", "").strip()
        secret = env.get("AWS_SECRET_ACCESS_KEY", "").strip()
        if access and secret:
            token = env.get("AWS_SESSION_TOKEN") or env.get("AWS_SECURITY_TOKEN") or None
            self._cached = Credentials(access, secret, token.strip() if token else None)
            self._url: str | None = None
            return
        full = env.get("AWS_CONTAINER_CREDENTIALS_FULL_URI", "").strip()
        relative = env.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "").strip()
        if full:
            self._url = full
        elif relative:
            self._url = "http://169.254.170.2" + relative
        else:
            raise ConfigError(
                "no AWS credentials: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a container "
                "credentials URI"
            )
        endpoint = Endpoint.from_url(self._url)
        if endpoint.scheme == "http" and not _container_host_allowed(endpoint.host):
            raise ConfigError("a container credentials URI over http must be a local address")
        self._endpoint = endpoint
        self._auth_token = env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN", "").strip()
        self._auth_file = env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "").strip()

    def get(self) -> Credentials:
        cached = self._cached
        if cached is not None and (
            cached.expires_at is None or cached.expires_at - self._clock() > _REFRESH_BEFORE_EXPIRY
        ):
            return cached
        with self._lock:
            cached = self._cached
            if cached is not None and (
                cached.expires_at is None
                or cached.expires_at - self._clock() > _REFRESH_BEFORE_EXPIRY
            ):
                return cached
            self._cached = self._fetch()
            return self._cached

    def forget(self) -> None:
        """Called when AWS rejected the credentials: fetch again next time (if fetched)."""
        if self._url is not None:
            self._cached = None

    def _fetch(self) -> Credentials:
        operation = "credentials"
        token = self._auth_token
        if self._auth_file:
            try:
                with open(self._auth_file, encoding="utf-8") as f:
                    token = f.read().strip()
            except OSError:
                raise AwsError(operation, "TokenFileUnreadable") from None
        if any(c in token for c in "\r\n"):
            raise AwsError(operation, "InvalidAuthorizationToken")
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = token
        endpoint = self._endpoint
        from urllib.parse import urlsplit  # noqa: PLC0415

        parts = urlsplit(self._url or "")
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers["Host"] = endpoint.signed_host
        conn = open_connection(endpoint, *self._timeouts)
        try:
            response = conn.request("GET", path, headers, b"")
            body, status = response.body, response.status
        except (OSError, ValueError) as exc:
            raise AwsError(operation, network_code(exc)) from None
        finally:
            conn.close()
        if status != 200:
            raise AwsError(operation, f"HTTP{status}", status)
        try:
            data = json.loads(body)
            expiration = data.get("Expiration")
            return Credentials(
                data["AccessKeyId"],
                data["SecretAccessKey"],
                data.get("Token") or None,
                _parse_iso8601(expiration) if expiration else None,
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            raise AwsError(operation, "MalformedCredentials") from None


def _container_host_allowed(host: str) -> bool:
    if host == "localhost" or host in _CONTAINER_HOSTS:
        return True
    import ipaddress  # noqa: PLC0415 - container credentials only

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _parse_iso8601(value: str) -> float:
    from datetime import datetime  # noqa: PLC0415 - only for container credentials

    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
