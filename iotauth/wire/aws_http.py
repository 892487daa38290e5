"""One keep-alive HTTP/1.1 connection to an AWS endpoint, with deadlines: the client's transport.

Contract: :meth:`Connection.request` sends one request and reads the whole answer
(:class:`HttpResponse`) within ``connect_timeout + read_timeout`` or the caller's earlier
deadline, however slowly the server trickles it; TLS uses the system CA bundle with host
name checking (:func:`tls_context`, loaded once per process). It exists instead of
``http.client`` for cold start. Design: docs/design/aws-json.md
"""

from __future__ import annotations

import io
import socket
import ssl
import threading
import time
from collections.abc import Mapping
from typing import Any

from iotauth.wire.aws_config import Endpoint

__all__ = [
    "CAPTURED_INITS",
    "STALE_CONNECTION",
    "Connection",
    "HttpResponse",
    "ProtocolError",
    "network_code",
    "open_connection",
    "tls_context",
]

_TLS: ssl.SSLContext | None = None
# Lambda init types whose init is captured and reused (AWS_LAMBDA_INITIALIZATION_TYPE): there
# the CA bundle is loaded at construction; in an on-demand init it is loaded by the first
# connection, which follows at once on the same request's path (the same total either way).
CAPTURED_INITS = frozenset({"snap-start", "provisioned-concurrency"})
_TLS_LOCK = threading.Lock()


def tls_context() -> ssl.SSLContext:
    # Built once per process: parsing the system CA bundle takes ~10-25 ms.
    global _TLS  # noqa: PLW0603
    with _TLS_LOCK:
        if _TLS is None:
            _TLS = ssl.create_default_context()
        return _TLS


class ProtocolError(OSError):
    """The server's answer is not HTTP/1.x as expected (retried like a connection error)."""


class ServerClosed(ConnectionResetError):
    """The connection ended before a status line: on a reused connection, a stale one."""


# The server closed a kept-alive connection before this request: reopen once, for free.
STALE_CONNECTION = (ServerClosed, BrokenPipeError, ConnectionResetError)

_MAX_LINE = 65536
_MAX_HEADERS = 100
_MAX_BODY = 16 * 2**20


class HttpResponse:
    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers  # lower-case names
        self.body = body


class _Reads(io.RawIOBase):
    """The connection's socket reads, each within ``read_timeout`` and none past the
    exchange's deadline: what bounds an answer that is trickled byte by byte."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        conn = self._conn
        assert conn._sock is not None
        conn._sock.settimeout(conn._left(conn._read_timeout))
        return conn._sock.recv_into(buffer)


class Connection:
    """One HTTP/1.1 connection: TCP connect and the TLS handshake within
    ``connect_timeout``, then ``read_timeout`` per socket operation, as botocore's, and
    each exchange (connecting if needed, sending, the whole answer) within
    ``connect_timeout + read_timeout`` or the caller's earlier ``deadline``.

    Only what AWS's answers need: a status line, headers, a ``Content-Length`` or chunked
    body, keep-alive unless told otherwise (why not ``http.client``: the design notes).
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
                sock = tls_context().wrap_socket(sock, server_hostname=host)
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
                raise ServerClosed("connection closed before an answer")
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


def open_connection(endpoint: Endpoint, connect_timeout: float, read_timeout: float) -> Connection:
    return Connection(endpoint, connect_timeout, read_timeout)


def network_code(exc: BaseException) -> str:
    """The error code for a failed exchange: ``Timeout``, ``TLSError``, ``ConnectionRefused``…"""
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
