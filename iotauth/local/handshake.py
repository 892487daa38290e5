"""Verifying a SigV4-presigned WebSocket upgrade the way AWS IoT Core accepts it.

:func:`verify_handshake` → the access key id, or None; it never raises. Real clients sign
more than iotauth's signer does (extra signed headers, a Host with or without its default
port), and IoT accepts both, so the stand-in must too. The presigned-URL checks themselves
are :mod:`iotauth.wire.sigv4`'s; this module only adds the handshake's rules.

Design: docs/design/standin-rules.md
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Iterable

from iotauth.wire.sigv4 import (
    CLOCK_SKEW,
    EMPTY_PAYLOAD_SHA256,
    MAX_URL_AGE,
    SERVICE,
    canonical_query_string,
    parse_presigned_query,
    presigned_credential,
    signing_key,
    string_to_sign,
)

__all__ = ["CLOCK_SKEW", "canonical_header_value", "verify_handshake"]

_PATH = "/mqtt"
_HEADER_NAME = re.compile(r"[a-z0-9!#$%&'*+.^_`|~-]+")
_SPACES = re.compile(r"\s+")

#: Looks up the secret key of an access key id (None: unknown or expired credentials).
SecretLookup = Callable[[str], str | None]


def canonical_header_value(values: Iterable[str]) -> str:
    """SigV4's canonical value of a header sent with ``values`` (in order)."""
    return ",".join(_SPACES.sub(" ", value.strip()) for value in values)


def _hosts(host: str, secure: bool) -> list[str]:
    """The Host values a signature may have been computed over: as sent, and with or
    without the scheme's default port."""
    host = host.strip().lower()
    default = ":443" if secure else ":80"
    if host.endswith(default):
        return [host, host[: -len(default)]]
    if host and ":" not in host.rsplit("]", 1)[-1]:
        return [host, host + default]
    return [host]


def verify_handshake(  # noqa: PLR0917 - one check after another, fail closed
    target: str,
    headers: Iterable[tuple[str, str]],
    region: str,
    lookup_secret: SecretLookup,
    expected_token: SecretLookup | None,
    now: float,
    secure: bool,
) -> str | None:
    """The access key id that signed this upgrade request, or None.

    ``target`` is the request line's path and query; ``headers`` the request's headers
    (name, value) as sent; ``expected_token(access_key)`` the session token issued with the
    key (None: none), compared in constant time.
    """
    try:
        return _verify(target, list(headers), region, lookup_secret, expected_token, now, secure)
    except Exception:  # junk of any kind, or a failing lookup: not authenticated
        return None


def _verify(  # noqa: PLR0917
    target: str,
    headers: list[tuple[str, str]],
    region: str,
    lookup_secret: SecretLookup,
    expected_token: SecretLookup | None,
    now: float,
    secure: bool,
) -> str | None:
    path, _, raw_query = target.partition("?")
    if path != _PATH or not raw_query or "#" in raw_query:
        return None
    params = parse_presigned_query(raw_query)
    if params is None:
        return None
    signed_names = params.get("X-Amz-SignedHeaders", "").split(";")
    if (
        "host" not in signed_names
        or signed_names != sorted(set(signed_names))
        or not all(_HEADER_NAME.fullmatch(name) for name in signed_names)
    ):
        return None
    checked = presigned_credential(params, region, now, MAX_URL_AGE, expected_token)
    if checked is None:
        return None
    access_key, amz_date, scope, signature = checked
    sent: dict[str, list[str]] = {}
    for name, value in headers:
        sent.setdefault(name.lower(), []).append(value)
    if any(name not in sent for name in signed_names) or len(sent.get("host", [])) != 1:
        return None
    secret = lookup_secret(access_key)
    if not isinstance(secret, str) or not secret:
        return None
    key = signing_key(secret, amz_date[:8], region, SERVICE)
    query = canonical_query_string(params.items())
    others = [f"{name}:{canonical_header_value(sent[name])}\n" for name in signed_names]
    host_index = signed_names.index("host")
    matched = False
    for host in _hosts(sent["host"][0], secure):
        lines = list(others)
        lines[host_index] = f"host:{host}\n"
        request = (
            f"GET\n{_PATH}\n{query}\n{''.join(lines)}\n{';'.join(signed_names)}\n"
            f"{EMPTY_PAYLOAD_SHA256}"
        )
        expected = hmac.digest(
            key, string_to_sign(amz_date, scope, request).encode("utf-8"), hashlib.sha256
        ).hex()
        # Every candidate is computed and compared: the time taken does not say which.
        matched |= hmac.compare_digest(expected.encode("ascii"), signature.encode("ascii"))
    return access_key if matched else None
