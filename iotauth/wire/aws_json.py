"""A small AWS API client on the standard library, for the Lambda functions' few calls.

The contract: :meth:`AwsJsonClient.call` sends one JSON-protocol operation (DynamoDB's
JSON 1.0 ``DynamoDB_20120810.*``, KMS's JSON 1.1 ``TrentService.*``) and returns the parsed
answer or raises :class:`AwsError`, whose message is only the error code, never the
request, the answer's text or a credential. :class:`AwsTransport` underneath signs any
request (SigV4 headers, :func:`iotauth.wire.sigv4.sign_request_headers`) and is what the signer's
STS (query protocol) and IoT (REST) calls use. Configuration is AWS's standard one, from the
environment Lambda gives a function:

- credentials: ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN``,
  else the container provider (``AWS_CONTAINER_CREDENTIALS_FULL_URI`` with
  ``AWS_CONTAINER_AUTHORIZATION_TOKEN[_FILE]``, or ``…_RELATIVE_URI``), which is what a
  SnapStart function gets; those are fetched when first needed and refreshed before they
  expire;
- region: ``AWS_REGION``, else ``AWS_DEFAULT_REGION``;
- endpoint: ``AWS_ENDPOINT_URL_<SERVICE>`` (e.g. ``AWS_ENDPOINT_URL_DYNAMODB``), else
  ``AWS_ENDPOINT_URL`` (unless ``AWS_IGNORE_CONFIGURED_ENDPOINT_URLS``), else
  ``https://<prefix>.<region>.<partition suffix>`` (``-fips`` with
  ``AWS_USE_FIPS_ENDPOINT``; dual-stack endpoints are refused rather than guessed).

Failure behaviour, the reason this exists instead of botocore (whose client costs ~175 ms
of cold start): a connect timeout (TCP connect and TLS handshake together) and a read
timeout (each socket read, as botocore's), and, unlike botocore's, a deadline for the
whole exchange: one attempt ends within ``connect_timeout + read_timeout`` however slowly
a server trickles its answer; with ``total_timeout`` the whole call (every attempt and
backoff) ends within that too. ``max_attempts`` attempts in all. Name resolution
(``getaddrinfo``) is outside these bounds: the standard library cannot time it out.
Connection errors, timeouts, HTTP 500/502/503/504, a bad CRC32 (DynamoDB) and the
throttling codes botocore's ``standard`` mode retries are retried after a full-jitter
backoff (``rand × 1 s`` when throttled, else ``rand × base``; DynamoDB's base is 25 ms, as
botocore's). Anything else (a conditional check, a missing table, expired or invalid
credentials) is not retried. One keep-alive connection per concurrent caller is kept; a
reused connection that the server had closed is reopened once without counting an attempt
(within the attempt's bound). Construction reads the configuration but opens no
connection, so a client built during Lambda's init (or captured by a SnapStart snapshot)
holds no socket; the CA bundle is loaded then too when the init is captured (SnapStart,
provisioned concurrency), else by the first connection.
"""

from __future__ import annotations

import io
import json
import os
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Callable, Mapping
from typing import Any

from iotauth.wire.sigv4 import sign_request_headers

__all__ = [
    "AwsError",
    "AwsJsonClient",
    "AwsTransport",
    "ConfigError",
    "Credentials",
    "Endpoint",
    "HttpResponse",
    "Service",
    "resolve_endpoint",
    "resolve_region",
]

THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
    }
)
TRANSIENT_CODES = frozenset(
    {
        "RequestTimeout",
        "RequestTimeoutException",
        "PriorRequestNotComplete",
        "InternalServerError",
        "InternalFailure",
        "ServiceUnavailable",
    }
)
TRANSIENT_STATUS = frozenset({500, 502, 503, 504})
#: Codes meaning the credentials are expired or not valid: never retried (fail closed).
CREDENTIAL_CODES = frozenset(
    {
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "IncompleteSignature",
        "IncompleteSignatureException",
        "MissingAuthenticationToken",
        "MissingAuthenticationTokenException",
        "SignatureDoesNotMatch",
        "RequestExpired",
    }
)
THROTTLING_BACKOFF = 1.0
_REFRESH_BEFORE_EXPIRY = 300.0  # seconds: container credentials are renewed this early
_TRUE = frozenset({"true", "1", "yes"})
# Hosts an http:// container credentials URI may name (as the AWS SDKs allow).
_CONTAINER_HOSTS = frozenset({"169.254.170.2", "169.254.170.23", "fd00:ec2::23"})
_PARTITION_SUFFIXES = (
    ("cn-", "amazonaws.com.cn"),
    ("us-isob-", "sc2s.sgov.gov"),
    ("us-isof-", "csp.hci.ic.gov"),
    ("us-iso-", "c2s.ic.gov"),
    ("eu-isoe-", "cloud.adc-e.uk"),
)


class AwsError(Exception):
    """A call failed. ``str()`` is ``"<operation> failed: <code>"``: safe to log."""

    def __init__(self, operation: str, code: str, status: int | None = None) -> None:
        super().__init__(f"{operation} failed: {code}")
        self.operation = operation
        self.code = code
        self.status = status

    @property
    def credentials_rejected(self) -> bool:
        return self.code in CREDENTIAL_CODES


class ConfigError(ValueError):
    """Region, endpoint or credentials cannot be determined. The message names no secret."""


class Service:
    """How one AWS service is addressed and signed.

    (Plain classes here rather than dataclasses: creating a dataclass costs ~0.5 ms of
    import, and this module is on the authorizer's cold-start path.)
    """

    __slots__ = (
        "backoff_base",
        "check_crc32",
        "endpoint_id",
        "endpoint_prefix",
        "json_version",
        "signing_name",
        "target_prefix",
    )

    def __init__(  # noqa: PLR0917 - a record
        self,
        endpoint_id: str,  # the AWS_ENDPOINT_URL_<ID> suffix, e.g. "DYNAMODB"
        signing_name: str,  # SigV4 service name, e.g. "dynamodb"
        endpoint_prefix: str,  # host label, e.g. "dynamodb"
        target_prefix: str = "",  # JSON protocol X-Amz-Target prefix
        json_version: str = "1.0",
        backoff_base: float = 0.05,  # non-throttling backoff scale (botocore: 50 ms)
        check_crc32: bool = False,
    ) -> None:
        self.endpoint_id = endpoint_id
        self.signing_name = signing_name
        self.endpoint_prefix = endpoint_prefix
        self.target_prefix = target_prefix
        self.json_version = json_version
        self.backoff_base = backoff_base
        self.check_crc32 = check_crc32


DYNAMODB = Service(
    "DYNAMODB", "dynamodb", "dynamodb", "DynamoDB_20120810", "1.0", 0.025, check_crc32=True
)
KMS = Service("KMS", "kms", "kms", "TrentService", "1.1")
STS = Service("STS", "sts", "sts")
IOT = Service("IOT", "iot", "iot")


class Endpoint:
    __slots__ = ("base_path", "host", "port", "scheme")

    def __init__(self, scheme: str, host: str, port: int, base_path: str = "") -> None:
        self.scheme = scheme  # "https" or "http"
        self.host = host  # without brackets for IPv6
        self.port = port
        self.base_path = base_path

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Endpoint):
            return NotImplemented
        mine = (self.scheme, self.host, self.port, self.base_path)
        return mine == (other.scheme, other.host, other.port, other.base_path)

    def __hash__(self) -> int:
        return hash((self.scheme, self.host, self.port, self.base_path))

    def __repr__(self) -> str:
        return f"Endpoint({self.scheme}://{self.signed_host}{self.base_path})"

    @property
    def signed_host(self) -> str:
        """The ``Host`` header: the port only when it is not the scheme's default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"

    @classmethod
    def from_url(cls, url: str) -> Endpoint:
        from urllib.parse import urlsplit  # noqa: PLC0415 - only with an endpoint URL

        parts = urlsplit(url.strip())
        if parts.scheme not in {"https", "http"} or not parts.hostname:
            raise ConfigError("an endpoint URL must be http(s)://host[:port]")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ConfigError("an endpoint URL must not carry a query, fragment or user")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise ConfigError("an endpoint URL has an invalid port") from None
        return cls(parts.scheme, parts.hostname, port, parts.path.rstrip("/"))


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


def resolve_region(env: Mapping[str, str]) -> str:
    region = (env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "").strip()
    if not region:
        raise ConfigError("no region: set AWS_REGION or AWS_DEFAULT_REGION")
    if not all(c.isalnum() or c == "-" for c in region):
        raise ConfigError("the region name is not valid")
    return region


def resolve_endpoint(service: Service, region: str, env: Mapping[str, str]) -> Endpoint:
    if env.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "").strip().lower() not in _TRUE:
        for name in (f"AWS_ENDPOINT_URL_{service.endpoint_id}", "AWS_ENDPOINT_URL"):
            url = env.get(name, "").strip()
            if url:
                return Endpoint.from_url(url)
    if env.get("AWS_USE_DUALSTACK_ENDPOINT", "").strip().lower() in _TRUE:
        raise ConfigError("dual-stack endpoints are not supported: set AWS_ENDPOINT_URL")
    suffix = "amazonaws.com"
    for prefix, partition_suffix in _PARTITION_SUFFIXES:
        if region.startswith(prefix):
            suffix = partition_suffix
            break
    label = service.endpoint_prefix
    if env.get("AWS_USE_FIPS_ENDPOINT", "").strip().lower() in _TRUE:
        label += "-fips"
    return Endpoint("https", f"{label}.{region}.{suffix}", 443)


# -- credentials ---------------------------------------------------------------------------


class _CredentialSource:
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
        conn = _open(endpoint, *self._timeouts)
        try:
            response = conn.request("GET", path, headers, b"")
            body, status = response.body, response.status
        except (OSError, ValueError) as exc:
            raise AwsError(operation, _network_code(exc)) from None
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


# -- connections ---------------------------------------------------------------------------

_TLS: ssl.SSLContext | None = None
# Lambda init types whose init is captured and reused (AWS_LAMBDA_INITIALIZATION_TYPE): there
# the CA bundle is loaded at construction; in an on-demand init it is loaded by the first
# connection, which follows at once on the same request's path (the same total either way).
_CAPTURED_INITS = frozenset({"snap-start", "provisioned-concurrency"})
_TLS_LOCK = threading.Lock()


def _tls_context() -> ssl.SSLContext:
    # Built once per process: parsing the system CA bundle takes ~10-25 ms.
    global _TLS  # noqa: PLW0603
    with _TLS_LOCK:
        if _TLS is None:
            _TLS = ssl.create_default_context()
        return _TLS


class ProtocolError(OSError):
    """The server's answer is not HTTP/1.x as expected (retried like a connection error)."""


class _ServerClosed(ConnectionResetError):
    """The connection ended before a status line: on a reused connection, a stale one."""


_MAX_LINE = 65536
_MAX_HEADERS = 100
_MAX_BODY = 16 * 2**20


class _Reads(io.RawIOBase):
    """The connection's socket reads, each within ``read_timeout`` and none past the
    exchange's deadline: what bounds an answer that is trickled byte by byte."""

    def __init__(self, conn: _Connection) -> None:
        self._conn = conn

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        conn = self._conn
        assert conn._sock is not None
        conn._sock.settimeout(conn._left(conn._read_timeout))
        return conn._sock.recv_into(buffer)


class _Connection:
    """One HTTP/1.1 connection: TCP connect and the TLS handshake within
    ``connect_timeout``, then ``read_timeout`` per socket operation, as botocore's, and
    each exchange (connecting if needed, sending, the whole answer) within
    ``connect_timeout + read_timeout`` or the caller's earlier ``deadline``.

    The standard library's ``http.client`` would do, but it imports the ``email`` package
    (~10 ms of cold start) to parse headers; AWS's answers need only this much: a status
    line, headers, a ``Content-Length`` or chunked body, keep-alive unless told otherwise.
    """

    def __init__(self, endpoint: Endpoint, connect_timeout: float, read_timeout: float) -> None:
        self._endpoint = endpoint
        self._timeouts = (connect_timeout, read_timeout)
        self._read_timeout = read_timeout
        self._deadline = 0.0  # time.monotonic() of the current exchange's end
        self._sock: socket.socket | None = None
        self._reader: Any = None
        self.reusable = False

    def _left(self, limit: float) -> float:
        """``limit``, or less if the exchange's deadline is nearer; TimeoutError once past."""
        left = min(limit, self._deadline - time.monotonic())
        if left <= 0:
            raise TimeoutError("deadline passed")
        return left

    def close(self) -> None:
        self.reusable = False
        if self._sock is not None:
            self._reader.close()
            self._sock.close()
            self._sock = self._reader = None

    def _connect(self) -> None:
        endpoint = self._endpoint
        connect_timeout, read_timeout = self._timeouts
        # An ASCII host (every AWS one) goes to getaddrinfo and to TLS as bytes: as a str it
        # would be IDNA-encoded, which imports encodings.idna and unicodedata (~2 ms) inside
        # the first request. Same bytes either way: IDNA leaves ASCII labels as they are.
        host = endpoint.host.encode("ascii") if endpoint.host.isascii() else endpoint.host
        address = (host, endpoint.port)  # getaddrinfo takes bytes; typeshed says str only
        connected_by = time.monotonic() + connect_timeout
        timeout = self._left(connect_timeout)
        sock = socket.create_connection(address, timeout=timeout)  # type: ignore[arg-type]
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if endpoint.scheme == "https":
                # The socket's timeout bounds the whole handshake (CPython's ssl module
                # keeps one deadline across its reads and writes), here what is left.
                sock.settimeout(self._left(connected_by - time.monotonic()))
                sock = _tls_context().wrap_socket(sock, server_hostname=host)
            sock.settimeout(read_timeout)
        except BaseException:
            sock.close()
            raise
        self._sock, self._reader = sock, io.BufferedReader(_Reads(self))

    def request(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str],
        body: bytes,
        deadline: float | None = None,
    ) -> HttpResponse:
        """One exchange, ending by ``deadline`` (``time.monotonic()``) if given (class notes)."""
        budget = self._read_timeout + (self._timeouts[0] if self._sock is None else 0.0)
        own = time.monotonic() + budget
        self._deadline = own if deadline is None else min(own, deadline)
        lines = [f"{method} {target} HTTP/1.1"]
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
                raise ValueError("a header must not contain a line break")
            lines.append(f"{name}: {value}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if self._sock is None:
            self._connect()
        assert self._sock is not None
        self.reusable = False
        self._sock.settimeout(self._left(self._read_timeout))  # sendall: one total timeout
        self._sock.sendall(head + body)
        return self._read_response(method)

    def _line(self) -> bytes:
        line: bytes = self._reader.readline(_MAX_LINE + 1)
        if len(line) > _MAX_LINE:
            raise ProtocolError("line too long")
        return line

    def _read_response(self, method: str) -> HttpResponse:
        while True:
            status_line = self._line()
            if not status_line:
                raise _ServerClosed("connection closed before an answer")
            version, _, rest = status_line.decode("latin-1").partition(" ")
            code = rest[:3]
            if not version.startswith("HTTP/1.") or not code.isdigit():
                raise ProtocolError("not an HTTP/1.x status line")
            headers: dict[str, str] = {}
            for _ in range(_MAX_HEADERS + 1):
                line = self._line()
                if line in {b"\r\n", b"\n", b""}:
                    break
                name, sep, value = line.decode("latin-1").partition(":")
                if not sep:
                    raise ProtocolError("malformed header")
                headers[name.strip().lower()] = value.strip()
            else:
                raise ProtocolError("too many headers")
            status = int(code)
            if status >= 200 or status == 101:
                break  # 1xx interim answers are skipped
        keep_alive = version != "HTTP/1.0" and headers.get("connection", "").lower() != "close"
        if method == "HEAD" or status in {204, 304}:
            body = b""
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            body = self._read_chunked()
        elif "content-length" in headers:
            length = headers["content-length"]
            if not length.isdigit() or int(length) > _MAX_BODY:
                raise ProtocolError("bad Content-Length")
            body = self._read_exactly(int(length))
        else:  # delimited by the end of the connection
            body = self._reader.read(_MAX_BODY + 1)
            if len(body) > _MAX_BODY:
                raise ProtocolError("answer too large")
            keep_alive = False
        self.reusable = keep_alive
        return HttpResponse(status, headers, body)

    def _read_exactly(self, size: int) -> bytes:
        data: bytes = self._reader.read(size)
        if len(data) != size:
            raise ProtocolError("connection closed inside an answer")
        return data

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            size_text = self._line().split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise ProtocolError("bad chunk size") from None
            if size == 0:
                while self._line() not in {b"\r\n", b"\n", b""}:  # trailers
                    pass
                return b"".join(parts)
            total += size
            if total > _MAX_BODY:
                raise ProtocolError("answer too large")
            parts.append(self._read_exactly(size))
            if self._line() not in {b"\r\n", b"\n"}:
                raise ProtocolError("bad chunk end")


def _open(endpoint: Endpoint, connect_timeout: float, read_timeout: float) -> _Connection:
    return _Connection(endpoint, connect_timeout, read_timeout)


def _network_code(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return "Timeout"
    if isinstance(exc, ssl.SSLError):
        return "TLSError"
    if isinstance(exc, ConnectionRefusedError):
        return "ConnectionRefused"
    if isinstance(exc, ProtocolError):
        return "ProtocolError"
    if isinstance(exc, OSError):
        return "ConnectionError"
    return type(exc).__name__


# The server closed a kept-alive connection before this request: reopen once, for free.
_STALE = (_ServerClosed, BrokenPipeError, ConnectionResetError)


class HttpResponse:
    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers  # lower-case names
        self.body = body


class AwsTransport:
    """Signed HTTP requests to one service endpoint, with timeouts, retries and keep-alive."""

    def __init__(
        self,
        service: Service,
        *,
        region: str,
        endpoint: Endpoint,
        credentials: Credentials | None = None,
        env: Mapping[str, str] | None = None,
        connect_timeout: float,
        read_timeout: float,
        max_attempts: int,
        total_timeout: float | None = None,
        user_agent: str = "iotauth",
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if total_timeout is not None and not total_timeout > 0:
            raise ValueError("total_timeout must be positive")
        self.service = service
        self.region = region
        self.endpoint = endpoint
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_attempts = max_attempts
        self.total_timeout = total_timeout
        self._user_agent = user_agent
        if credentials is not None:
            self._credentials = _CredentialSource(
                {"AWS_ACCESS_KEY_ID": credentials.access_key,
                 "AWS_SECRET_ACCESS_KEY": credentials.secret_key,
                 "AWS_SESSION_TOKEN": credentials.token or ""},
                connect_timeout,
                read_timeout,
            )  # fmt: skip
        else:
            self._credentials = _CredentialSource(
                os.environ if env is None else env, connect_timeout, read_timeout
            )
        source = os.environ if env is None else env
        if (
            endpoint.scheme == "https"
            and source.get("AWS_LAMBDA_INITIALIZATION_TYPE") in _CAPTURED_INITS
        ):
            _tls_context()  # loaded now, so that the snapshot / pre-initialised copy has it
        self._idle: list[_Connection] = []
        self._idle_lock = threading.Lock()
        self._sleep: Callable[[float], None] = time.sleep
        self._random: Callable[[], float] = _jitter
        self._clock: Callable[[], float] = time.time

    @classmethod
    def from_env(
        cls,
        service: Service,
        env: Mapping[str, str] | None = None,
        *,
        connect_timeout: float,
        read_timeout: float,
        max_attempts: int,
        total_timeout: float | None = None,
    ) -> AwsTransport:
        """Region, endpoint and credentials from the environment; raises :class:`ConfigError`."""
        env = os.environ if env is None else env
        region = resolve_region(env)
        return cls(
            service,
            region=region,
            endpoint=resolve_endpoint(service, region, env),
            env=env,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_attempts=max_attempts,
            total_timeout=total_timeout,
        )

    def close(self) -> None:
        with self._idle_lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    # -- one request ---------------------------------------------------------------------
    def send(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        query: str = "",
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
        error_code: Callable[[HttpResponse], str] | None = None,
    ) -> HttpResponse:
        """Send (with retries) and return a 2xx answer, or raise :class:`AwsError`.

        ``path`` is URI-encoded; ``query`` is a canonical query string. ``error_code`` reads
        the error code of a non-2xx answer (default: the JSON protocols' ``__type``).
        """
        read_code = error_code or json_error_code
        total = self.total_timeout
        deadline = None if total is None else time.monotonic() + total
        attempt = 0
        while True:
            attempt += 1
            throttled = False
            try:
                response = self._send_once(method, path, query, dict(headers or {}), body, deadline)
            except AwsError as exc:  # no usable credentials: fail closed, at once
                raise AwsError(operation, exc.code) from None
            except OSError as exc:  # before ValueError: a TLS verification error is both
                code, retryable = _network_code(exc), True
            except ValueError:  # a header value with a line break (e.g. a broken token)
                raise AwsError(operation, "InvalidRequest") from None
            else:
                if 200 <= response.status < 300:
                    if self.service.check_crc32 and not _crc32_matches(response):
                        code, retryable = "CRC32Mismatch", True
                    else:
                        return response
                else:
                    code = read_code(response) or f"HTTP{response.status}"
                    throttled = code in THROTTLING_CODES or response.status == 429
                    retryable = (
                        throttled or code in TRANSIENT_CODES or response.status in TRANSIENT_STATUS
                    )
                    if code in CREDENTIAL_CODES:
                        self._credentials.forget()
                        retryable = False
                    if not retryable or attempt >= self.max_attempts:
                        raise AwsError(operation, code, response.status)
            if not retryable or attempt >= self.max_attempts:
                raise AwsError(operation, code)
            scale = THROTTLING_BACKOFF if throttled else self.service.backoff_base
            pause = self._random() * scale * 2 ** (attempt - 1)
            if deadline is not None and time.monotonic() + pause >= deadline:
                raise AwsError(operation, code)  # no time left for another attempt
            self._sleep(pause)

    def _send_once(  # noqa: PLR0917 - private
        self,
        method: str,
        path: str,
        query: str,
        headers: dict[str, str],
        body: bytes,
        deadline: float | None = None,
    ) -> HttpResponse:
        try:
            creds = self._credentials.get()
        except AwsError:
            raise AwsError("credentials", "CredentialsUnavailable") from None
        endpoint = self.endpoint
        full_path = endpoint.base_path + path
        amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self._clock()))
        host = endpoint.signed_host
        headers.update(
            sign_request_headers(
                method,
                host,
                full_path,
                query,
                headers,
                body,
                self.service.signing_name,
                self.region,
                creds.access_key,
                creds.secret_key,
                creds.token,
                amz_date,
            )
        )
        headers["Host"] = host
        headers["User-Agent"] = self._user_agent
        target = full_path + (f"?{query}" if query else "")
        conn, reused = self._checkout()
        try:
            try:
                response = conn.request(method, target, headers, body, deadline)
            except _STALE:
                if not reused:
                    raise
                conn.close()
                conn = _open(endpoint, self.connect_timeout, self.read_timeout)
                response = conn.request(method, target, headers, body, deadline)
        except BaseException:
            conn.close()
            raise
        if conn.reusable:
            with self._idle_lock:
                self._idle.append(conn)
        else:
            conn.close()
        return response

    def _checkout(self) -> tuple[_Connection, bool]:
        with self._idle_lock:
            if self._idle:
                return self._idle.pop(), True
        return _open(self.endpoint, self.connect_timeout, self.read_timeout), False


def _jitter() -> float:
    """A uniform number in [0, 1) from os.urandom: no ``random`` import, and no generator
    state that a SnapStart snapshot would hand identically to every restored copy."""
    return int.from_bytes(os.urandom(4), "big") / 2**32


def _crc32_matches(response: HttpResponse) -> bool:
    expected = response.headers.get("x-amz-crc32")
    if expected is None:
        return True
    return expected.isdigit() and int(expected) == zlib.crc32(response.body)


def _clean_code(raw: str) -> str:
    """``prefix#Code:detail`` (JSON ``__type`` or ``x-amzn-ErrorType``) → ``Code``."""
    code = raw.split(":", 1)[0].rsplit("#", 1)[-1].strip()
    return code if code.isidentifier() else "UnknownError"


def json_error_code(response: HttpResponse) -> str:
    """The error code of a JSON-protocol (or REST-JSON) error answer, '' when none."""
    header = response.headers.get("x-amzn-errortype")
    if header:
        return _clean_code(header)
    try:
        data = json.loads(response.body or b"{}")
    except ValueError:
        return ""
    if isinstance(data, dict):
        raw = data.get("__type") or data.get("code") or data.get("Code")
        if isinstance(raw, str) and raw:
            return _clean_code(raw)
    return ""


class AwsJsonClient:
    """JSON-protocol operations (``X-Amz-Target: <prefix>.<Operation>``) over a transport."""

    def __init__(self, transport: AwsTransport) -> None:
        if not transport.service.target_prefix:
            raise ValueError(f"{transport.service.signing_name} is not a JSON-protocol service")
        self.transport = transport
        service = transport.service
        self._content_type = f"application/x-amz-json-{service.json_version}"
        self._prefix = service.target_prefix

    @classmethod
    def from_env(
        cls,
        service: Service,
        env: Mapping[str, str] | None = None,
        *,
        connect_timeout: float,
        read_timeout: float,
        max_attempts: int,
        total_timeout: float | None = None,
    ) -> AwsJsonClient:
        return cls(
            AwsTransport.from_env(
                service,
                env,
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
                max_attempts=max_attempts,
                total_timeout=total_timeout,
            )
        )

    def call(self, operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """``operation`` (``"BatchGetItem"``) with ``params`` in the wire shape."""
        body = json.dumps(params, separators=(",", ":")).encode("utf-8")
        headers = {
            "Content-Type": self._content_type,
            "X-Amz-Target": f"{self._prefix}.{operation}",
        }
        response = self.transport.send(operation, "POST", "/", headers=headers, body=body)
        try:
            data = json.loads(response.body or b"{}")
        except ValueError:
            raise AwsError(operation, "MalformedResponse", response.status) from None
        if not isinstance(data, dict):
            raise AwsError(operation, "MalformedResponse", response.status)
        return data
