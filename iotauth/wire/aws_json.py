"""A small AWS API client on the standard library, for the Lambda functions' few calls.

Contract: :meth:`AwsJsonClient.call` sends one JSON-protocol operation (DynamoDB's JSON 1.0,
KMS's JSON 1.1) and returns the parsed answer or raises :class:`AwsError`, whose message is
only the error code. :class:`AwsTransport` underneath signs any request (SigV4 headers),
retries what botocore's ``standard`` mode retries, and is what the signer's STS and IoT calls
use. It exists instead of botocore, whose client costs ~175 ms of cold start and has no
deadline for a whole call: here one attempt ends within ``connect_timeout + read_timeout``
and, with ``total_timeout``, the whole call within that. Design: docs/design/aws-json.md
"""

from __future__ import annotations

import json
import os
import threading
import time
import zlib
from collections.abc import Callable, Mapping
from typing import Any

from iotauth.wire.aws_config import (
    DYNAMODB,
    IOT,
    KMS,
    STS,
    Endpoint,
    Service,
    resolve_endpoint,
    resolve_region,
)
from iotauth.wire.aws_credentials import Credentials, credential_source
from iotauth.wire.aws_errors import (
    CREDENTIAL_CODES,
    THROTTLING_CODES,
    TRANSIENT_CODES,
    TRANSIENT_STATUS,
    AwsError,
    ConfigError,
)
from iotauth.wire.aws_http import (
    CAPTURED_INITS,
    STALE_CONNECTION,
    Connection,
    HttpResponse,
    ProtocolError,
    network_code,
    open_connection,
    tls_context,
)
from iotauth.wire.sigv4 import sign_request_headers

__all__ = [
    "CREDENTIAL_CODES",
    "DYNAMODB",
    "IOT",
    "KMS",
    "STS",
    "THROTTLING_BACKOFF",
    "THROTTLING_CODES",
    "TRANSIENT_CODES",
    "TRANSIENT_STATUS",
    "AwsError",
    "AwsJsonClient",
    "AwsTransport",
    "ConfigError",
    "Credentials",
    "Endpoint",
    "HttpResponse",
    "ProtocolError",
    "Service",
    "json_error_code",
    "resolve_endpoint",
    "resolve_region",
]

THROTTLING_BACKOFF = 1.0  # seconds: the backoff scale after a throttling answer


class AwsTransport:
    """Signed HTTP requests to one service endpoint, with timeouts, retries and keep-alive.

    Construction reads the configuration (region, endpoint, credentials) but opens no
    connection; one idle keep-alive connection is kept per concurrent caller.
    """

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
        source = os.environ if env is None else env
        self._credentials = credential_source(credentials, source, connect_timeout, read_timeout)
        if (
            endpoint.scheme == "https"
            and source.get("AWS_LAMBDA_INITIALIZATION_TYPE") in CAPTURED_INITS
        ):
            tls_context()  # loaded now, so that the snapshot / pre-initialised copy has it
        self._idle: list[Connection] = []
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
                code, retryable = network_code(exc), True
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
            except STALE_CONNECTION:
                if not reused:
                    raise
                conn.close()
                conn = open_connection(endpoint, self.connect_timeout, self.read_timeout)
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

    def _checkout(self) -> tuple[Connection, bool]:
        with self._idle_lock:
            if self._idle:
                return self._idle.pop(), True
        return open_connection(self.endpoint, self.connect_timeout, self.read_timeout), False


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
