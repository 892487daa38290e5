"""SigV4-presigned ``wss://<endpoint>/mqtt`` URLs for AWS IoT Core (REFERENCE §5).

:func:`presign_mqtt_url` signs, :func:`verify_presigned_url` checks (never raises),
:func:`sign_request_headers` signs AWS API calls. IoT's flavour differs from generic SigV4:
only ``host`` is signed and ``X-Amz-Security-Token`` follows the signature unsigned, or IoT
rejects the URL. Standard library only, keys and encodings cached: a URL is minted on every
browser reconnect.

Design: docs/design/sigv4.md
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

__all__ = [
    "ALGORITHM",
    "CLOCK_SKEW",
    "MAX_URL_AGE",
    "SERVICE",
    "canonical_query_string",
    "canonical_request",
    "credential_scope",
    "parse_presigned_query",
    "presign_mqtt_url",
    "presign_mqtt_url_for_session",
    "presigned_credential",
    "sign_request_headers",
    "signing_key",
    "string_to_sign",
    "verify_presigned_url",
]

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "iotdevicegateway"
PATH = "/mqtt"
EMPTY_PAYLOAD_SHA256 = hashlib.sha256(b"").hexdigest()
#: How long IoT accepts a presigned URL after its X-Amz-Date (it ignores X-Amz-Expires).
MAX_URL_AGE = 900
CLOCK_SKEW = 300  # seconds a URL may be dated in the future, as AWS allows
MAX_EXPIRES = 604_800  # SigV4's own ceiling for X-Amz-Expires (7 days)
_CACHE_SIZE = 8192

# Patterns as strings, compiled on first use by `re`'s own cache: the authorizer imports
# this module for header signing only and should not pay for compiling them.
_ACCESS_KEY = r"[A-Za-z0-9]{1,128}"
_REGION = r"[a-z]{2}(-[a-z]+)+-\d{1,2}|local"
_LABEL = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
_HOST = rf"{_LABEL}(\.{_LABEL})*(:(?P<port>\d{{1,5}}))?"
_AMZ_DATE = r"\d{8}T\d{6}Z"
_SIGNATURE = r"[0-9a-f]{64}"
_DEFAULT_PORT = {"wss": "443", "ws": "80"}


# -- generic SigV4 pieces (also used to check the fast path against published vectors) ----


def _rfc3986(value: str) -> str:
    # Imported here: the authorizer loads this module for header signing only, and
    # urllib.parse (with ipaddress) is ~3 ms of its cold start. A loaded module is a dict
    # lookup away.
    from urllib.parse import quote  # noqa: PLC0415

    return quote(value, safe="-_.~")


def canonical_query_string(params: Iterable[tuple[str, str]]) -> str:
    """``k=v&…`` with keys and values RFC 3986-encoded, sorted by encoded key then value."""
    encoded = sorted((_rfc3986(k), _rfc3986(v)) for k, v in params)
    return "&".join(f"{k}={v}" for k, v in encoded)


def canonical_request(method: str, path: str, query: str, host: str) -> str:
    """A canonical request that signs the ``host`` header only and an empty payload."""
    return f"{method}\n{path}\n{query}\nhost:{host}\n\nhost\n{EMPTY_PAYLOAD_SHA256}"


def credential_scope(date: str, region: str, service: str = SERVICE) -> str:
    return f"{date}/{region}/{service}/aws4_request"


def string_to_sign(amz_date: str, scope: str, request: str) -> str:
    digest = hashlib.sha256(request.encode("utf-8")).hexdigest()
    return f"{ALGORITHM}\n{amz_date}\n{scope}\n{digest}"


@lru_cache(maxsize=_CACHE_SIZE)
def signing_key(secret_key: str, date: str, region: str, service: str = SERVICE) -> bytes:
    """``HMAC(HMAC(HMAC(HMAC("AWS4"+secret, date), region), service), "aws4_request")``."""
    key = hmac.digest(("AWS4" + secret_key).encode("utf-8"), date.encode("utf-8"), "sha256")
    for part in (region, service, "aws4_request"):
        key = hmac.digest(key, part.encode("utf-8"), "sha256")
    return key


def _signature(key: bytes, to_sign: str) -> str:
    return hmac.digest(key, to_sign.encode("utf-8"), "sha256").hex()


_UNSIGNED_HEADERS = frozenset({"user-agent", "content-length", "connection", "expect"})


def sign_request_headers(  # noqa: PLR0917 - positional mirrors the canonical request
    method: str,
    host: str,
    path: str,
    query: str,
    headers: dict[str, str],
    body: bytes,
    service: str,
    region: str,
    access_key: str,
    secret_key: str,
    session_token: str | None,
    amz_date: str,
) -> dict[str, str]:
    """The headers that sign a request with SigV4 (``Authorization`` scheme).

    ``headers`` are the request's own headers (``Content-Type``, ``X-Amz-Target`` …); every
    one of them is signed except ``User-Agent``, ``Content-Length``, ``Connection`` and
    ``Expect``, together with ``host`` (as the request sends it: with a non-default port),
    ``x-amz-date`` and, with a session token, ``x-amz-security-token`` (generic SigV4 signs
    it, unlike IoT's presigned URLs). ``path`` is already URI-encoded; ``query`` is the
    canonical query string (:func:`canonical_query_string`, empty for POST APIs).
    ``amz_date`` is ``YYYYMMDDTHHMMSSZ``. Returns ``X-Amz-Date``, ``X-Amz-Security-Token``
    (when given) and ``Authorization`` for the caller to add.
    """
    added = {"X-Amz-Date": amz_date}
    if session_token:
        added["X-Amz-Security-Token"] = session_token
    canonical: dict[str, str] = {"host": host}
    for name, value in (*headers.items(), *added.items()):
        lowered = name.lower()
        if lowered not in _UNSIGNED_HEADERS:
            canonical[lowered] = " ".join(value.split())
    names = sorted(canonical)
    signed = ";".join(names)
    header_block = "".join(f"{n}:{canonical[n]}\n" for n in names)
    payload = hashlib.sha256(body).hexdigest()
    request = f"{method}\n{path}\n{query}\n{header_block}\n{signed}\n{payload}"
    date = amz_date[:8]
    scope = credential_scope(date, region, service)
    to_sign = string_to_sign(amz_date, scope, request)
    signature = _signature(signing_key(secret_key, date, region, service), to_sign)
    added["Authorization"] = (
        f"{ALGORITHM} Credential={access_key}/{scope}, SignedHeaders={signed}, "
        f"Signature={signature}"
    )
    return added


# -- input validation, cached per distinct value ------------------------------------------


@lru_cache(maxsize=256)
def _endpoint(endpoint: str) -> tuple[str, str]:
    """``host``, ``host:port`` or ``ws[s]://host[:port][/mqtt]`` → (scheme, signed host)."""
    if not isinstance(endpoint, str):
        raise ValueError("endpoint must be a host name")
    scheme, sep, rest = endpoint.partition("://")
    if not sep:
        scheme, rest = "wss", endpoint
    scheme = scheme.lower()
    if scheme not in _DEFAULT_PORT:
        raise ValueError("endpoint scheme must be wss:// (or ws:// for a local gateway)")
    if rest.endswith(PATH):
        rest = rest[: -len(PATH)]
    match = re.fullmatch(_HOST, rest)
    if match is None or len(rest) > 253:
        raise ValueError("endpoint must be a DNS host name with an optional :port")
    host = rest.lower()
    port = match.group("port")
    if port is not None:
        if not 0 < int(port) < 65536:
            raise ValueError("endpoint port out of range")
        if port == _DEFAULT_PORT[scheme]:
            # Browsers send Host without the default port: the signed host must match.
            host = host[: -len(port) - 1]
    return scheme, host


def _check_region(region: str) -> str:
    if not isinstance(region, str) or not re.fullmatch(_REGION, region):
        raise ValueError(f"invalid region: {region!r}")
    return region


@lru_cache(maxsize=_CACHE_SIZE)
def _credential(access_key: str, date: str, region: str, service: str) -> tuple[str, str]:
    """(canonical query up to ``X-Amz-Date=``, credential scope) for one credential set."""
    if not isinstance(access_key, str) or not re.fullmatch(_ACCESS_KEY, access_key):
        raise ValueError("invalid access key id: expected 1-128 letters and digits")
    _check_region(region)
    scope = credential_scope(date, region, service)
    prefix = (
        f"X-Amz-Algorithm={ALGORITHM}&X-Amz-Credential={_rfc3986(access_key + '/' + scope)}"
        "&X-Amz-Date="
    )
    return prefix, scope


@lru_cache(maxsize=_CACHE_SIZE)
def _token_suffix(session_token: str) -> str:
    if not session_token or not session_token.isprintable():
        raise ValueError("invalid session token")
    return "&X-Amz-Security-Token=" + _rfc3986(session_token)


@lru_cache(maxsize=4)
def _amz_date(epoch_second: int) -> tuple[str, str]:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(epoch_second))
    return stamp, stamp[:8]


def _epoch_second(now: datetime | float | None) -> int:
    if now is None:
        return int(time.time())
    if isinstance(now, datetime):
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError("now must be a timezone-aware datetime (naive times are ambiguous)")
        return int(now.timestamp())
    if isinstance(now, bool) or not isinstance(now, int | float):
        raise ValueError("now must be a timezone-aware datetime or POSIX seconds")
    return int(now)


def _presign(  # noqa: PLR0917 - hot path; positional on purpose
    scheme: str,
    host: str,
    path: str,
    service: str,
    region: str,
    access_key: str,
    secret_key: str,
    session_token: str | None,
    now: datetime | float | None,
    expires: int | None,
) -> str:
    if not isinstance(secret_key, str) or not secret_key:
        raise ValueError("the secret access key must be a non-empty string")
    amz_date, date = _amz_date(_epoch_second(now))
    prefix, scope = _credential(access_key, date, region, service)
    if expires is None:
        query = prefix + amz_date + "&X-Amz-SignedHeaders=host"
    else:
        if isinstance(expires, bool) or not isinstance(expires, int):
            raise ValueError("expires must be an integer number of seconds")
        if not 0 < expires <= MAX_EXPIRES:
            raise ValueError(f"expires must be 1-{MAX_EXPIRES} seconds")
        query = f"{prefix}{amz_date}&X-Amz-Expires={expires}&X-Amz-SignedHeaders=host"
    request = f"GET\n{path}\n{query}\nhost:{host}\n\nhost\n{EMPTY_PAYLOAD_SHA256}"
    digest = hashlib.sha256(request.encode("utf-8")).hexdigest()
    to_sign = f"{ALGORITHM}\n{amz_date}\n{scope}\n{digest}"
    signature = _signature(signing_key(secret_key, date, region, service), to_sign)
    url = f"{scheme}://{host}{path}?{query}&X-Amz-Signature={signature}"
    if session_token is not None:
        if not isinstance(session_token, str):
            raise ValueError("invalid session token")
        url += _token_suffix(session_token)
    return url


def presign_mqtt_url(
    endpoint: str,
    region: str,
    access_key: str,
    secret_key: str,
    session_token: str | None = None,
    *,
    now: datetime | float | None = None,
    expires: int | None = None,
) -> str:
    """A presigned MQTT-over-WebSocket URL for AWS IoT Core.

    ``endpoint`` is the IoT data endpoint host (``xxxx-ats.iot.<region>.amazonaws.com``);
    ``ws://host:port`` is accepted for a local gateway. ``now`` (a timezone-aware datetime
    or POSIX seconds; default: the current time) makes the URL deterministic. ``expires``
    adds a signed ``X-Amz-Expires``, which IoT ignores: a URL is good for about 15 minutes
    from its date, so mint it just before connecting. Raises ValueError on invalid input.
    """
    scheme, host = _endpoint(endpoint)
    _check_region(region)
    return _presign(
        scheme, host, PATH, SERVICE, region, access_key, secret_key, session_token, now, expires
    )


def presign_mqtt_url_for_session(
    endpoint: str,
    region: str,
    session: Any = None,
    *,
    now: datetime | float | None = None,
    expires: int | None = None,
) -> str:
    """:func:`presign_mqtt_url` with credentials from a boto3/botocore session.

    Without ``session`` the default chain applies (environment, shared profile, container
    or instance role). botocore is imported only here.
    """
    _endpoint(endpoint)  # fail on bad input before searching for credentials
    _check_region(region)
    if session is None:
        import botocore.session  # noqa: PLC0415 - keep `import iotauth.wire.sigv4` light

        session = botocore.session.get_session()
    credentials = session.get_credentials()
    if credentials is None:
        raise ValueError("no AWS credentials found (environment, profile or role)")
    frozen = credentials.get_frozen_credentials()
    return presign_mqtt_url(
        endpoint,
        region,
        frozen.access_key,
        frozen.secret_key,
        frozen.token or None,
        now=now,
        expires=expires,
    )


# -- verification --------------------------------------------------------------------------


def _unquote(value: str) -> str:
    from urllib.parse import unquote  # noqa: PLC0415 - see _rfc3986

    return unquote(value, errors="strict")


def parse_presigned_query(query: str) -> dict[str, str] | None:
    """A presigned URL's query as parameters, percent-decoded; None when malformed or when a
    parameter is repeated (a duplicate is never read in the caller's favour)."""
    params: dict[str, str] = {}
    for item in query.split("&"):
        key, sep, value = item.partition("=")
        if not sep or not key:
            return None
        key, value = _unquote(key), _unquote(value)
        if key in params:
            return None
        params[key] = value
    return params


def presigned_credential(
    params: dict[str, str],
    region: str,
    now: float,
    max_age: int,
    expected_token: Callable[[str], str | None] | None,
) -> tuple[str, str, str, str] | None:
    """The checks every verifier of a presigned IoT URL shares, on its parameters: the
    signature's shape, the algorithm, ``X-Amz-Date``, the credential scope (``region``,
    ``iotdevicegateway``), the age (``CLOCK_SKEW`` early to ``max_age`` late, and
    ``X-Amz-Expires`` when present) and, with ``expected_token``, the session token (constant
    time). Pops ``X-Amz-Signature`` and ``X-Amz-Security-Token`` from ``params``, which then
    hold the signed parameters only. → ``(access_key, amz_date, scope, signature)`` or None.
    ``X-Amz-SignedHeaders`` is the caller's to judge."""
    signature = params.pop("X-Amz-Signature", "")
    token = params.pop("X-Amz-Security-Token", None)
    if not re.fullmatch(_SIGNATURE, signature) or params.get("X-Amz-Algorithm") != ALGORITHM:
        return None
    amz_date = params.get("X-Amz-Date", "")
    if not re.fullmatch(_AMZ_DATE, amz_date):
        return None
    access_key, _, scope = params.get("X-Amz-Credential", "").partition("/")
    if not re.fullmatch(_ACCESS_KEY, access_key) or scope != credential_scope(amz_date[:8], region):
        return None
    signed_at = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()
    lifetime = max_age
    if "X-Amz-Expires" in params:
        expires = params["X-Amz-Expires"]
        if not expires.isdigit() or len(expires) > 7:
            return None
        lifetime = min(lifetime, int(expires))
    if not signed_at - CLOCK_SKEW <= now <= signed_at + lifetime:
        return None
    if expected_token is not None:
        wanted = expected_token(access_key)
        if wanted is None or token is None:
            if wanted is not token:
                return None
        elif not hmac.compare_digest(wanted.encode("utf-8"), token.encode("utf-8")):
            return None
    return access_key, amz_date, scope, signature


def _verify(  # noqa: PLR0917 - private; mirrors verify_presigned_url
    url: str,
    host: str,
    region: str,
    lookup_secret: Callable[[str], str | None],
    now: datetime | float | None,
    max_age: int,
    expected_token: Callable[[str], str | None] | None,
) -> str | None:
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in _DEFAULT_PORT:
        return None
    authority, _, rest = rest.partition("/")
    path, _, query = ("/" + rest).partition("?")
    if path != PATH or "#" in query or not query:
        return None
    if _endpoint(f"{scheme}://{authority}") != _endpoint(f"{scheme}://{host}"):
        return None
    params = parse_presigned_query(query)
    if params is None or params.get("X-Amz-SignedHeaders") != "host":
        return None
    checked = presigned_credential(params, region, _epoch_second(now), max_age, expected_token)
    if checked is None:
        return None
    access_key, amz_date, scope, signature = checked
    secret = lookup_secret(access_key)
    if not isinstance(secret, str) or not secret:
        return None
    _, signed_host = _endpoint(f"{scheme}://{authority}")
    request = canonical_request("GET", PATH, canonical_query_string(params.items()), signed_host)
    key = signing_key(secret, amz_date[:8], region, SERVICE)
    expected = _signature(key, string_to_sign(amz_date, scope, request))
    if not hmac.compare_digest(expected.encode("ascii"), signature.encode("ascii")):
        return None
    return access_key


def verify_presigned_url(  # noqa: PLR0917 - the gateway's contract
    url: str,
    host: str,
    region: str,
    lookup_secret: Callable[[str], str | None],
    now: datetime | float | None = None,
    max_age: int = MAX_URL_AGE,
    *,
    expected_token: Callable[[str], str | None] | None = None,
) -> str | None:
    """The access key id that signed ``url``, or None if it is not a valid IoT URL.

    Checks the scheme, that the URL's host is ``host``, the path ``/mqtt``, the algorithm,
    ``host``-only signed headers, the credential scope (``region``, ``iotdevicegateway``, the
    date of ``X-Amz-Date``), the age (at most ``max_age`` seconds, and ``X-Amz-Expires``
    when present), then recomputes the signature with ``lookup_secret(access_key)`` and
    compares in constant time. With ``expected_token``, the URL's ``X-Amz-Security-Token``
    must equal ``expected_token(access_key)`` (None: no token). Never raises.
    """
    try:
        return _verify(url, host, region, lookup_secret, now, max_age, expected_token)
    except Exception:  # any junk input (or a failing lookup) is simply not authenticated
        return None
