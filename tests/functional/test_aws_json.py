"""The authorizer's stdlib DynamoDB client (iotauth.wire.aws_json) over real HTTP.

Against moto's server on 127.0.0.1: the store's three calls, error mapping, the standard
configuration. Against small local servers that misbehave (a closed port, a server that
accepts and never answers, 5xx, throttling, expired credentials, a bad CRC32, a dropped
keep-alive connection): which calls are retried, and that the authorizer denies. Elapsed
times are printed, not asserted (pytest-timeout guards against a hang).
"""

from __future__ import annotations

import json
import socket
import time
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from iotauth.connect.authenticate import Settings, authenticate
from iotauth.connect.event import parse_connect_event
from iotauth.identities.credentials import hash_generated_secret
from iotauth.identities.lockout import LockoutPolicy, LockoutState
from iotauth.identities.records import IdentityRecord
from iotauth.identities.store import (
    CALL_TIMEOUT,
    CONNECT_TIMEOUT,
    MAX_ATTEMPTS,
    READ_TIMEOUT,
    CredentialStore,
    DynamoDBStore,
    MemoryStore,
    StoreError,
    TableMissing,
)
from iotauth.wire.aws_json import (
    DYNAMODB,
    KMS,
    AwsError,
    AwsJsonClient,
    AwsTransport,
    ConfigError,
    Credentials,
    Endpoint,
    resolve_endpoint,
    resolve_region,
)
from tests.authorizer_support import ARN, connect_event
from tests.http_stubs import Answer, Scripted

SECRET = "iotsk_TEST-ONLY_awsjson-devic_secret_not-for-pro1"
POLICY = LockoutPolicy()
# A call that fails every attempt: attempts x (connect + read) + backoff, with margin.
CALL_BUDGET = MAX_ATTEMPTS * (CONNECT_TIMEOUT + READ_TIMEOUT) + 1.0


# -- against moto's server ---------------------------------------------------------------


@pytest.fixture
def store(dynamodb_table: str) -> DynamoDBStore:
    store = DynamoDBStore.for_lambda(dynamodb_table)
    admin = DynamoDBStore(dynamodb_table)  # botocore, as the CLI
    admin.add_identity(
        IdentityRecord(username="alice", kind="secret", verifier=hash_generated_secret(SECRET))
    )
    return store


def test_lookup_reads_identity_and_counter(store: DynamoDBStore) -> None:
    lookup = store.lookup("alice")
    assert lookup.record is not None and lookup.record.username == "alice"
    assert lookup.lockout is None
    assert store.lookup("nobody").record is None


def test_conditional_counter_writes(store: DynamoDBStore) -> None:
    first = LockoutState(failures=1, window_start=100, locked_until=None, version=1)
    assert store.save_lockout("alice", first, POLICY, 0)
    assert not store.save_lockout("alice", first, POLICY, 0)  # exists: the race is lost
    second = LockoutState(failures=2, window_start=100, locked_until=999, version=2)
    assert not store.save_lockout("alice", second, POLICY, 7)  # wrong version
    assert store.save_lockout("alice", second, POLICY, 1)
    lockout = store.lookup("alice").lockout
    assert lockout == second
    store.clear_lockout("alice")
    assert store.lookup("alice").lockout is None
    store.clear_lockout("alice")  # deleting nothing is fine


@pytest.mark.parametrize("kind", ["stdlib", "memory"])
def test_conditional_counter_delete(store: DynamoDBStore, kind: str) -> None:
    """The authorizer's undo deletes the counter only at the version it wrote (and the
    in-memory store of the unit tests behaves the same)."""
    subject: CredentialStore = store if kind == "stdlib" else MemoryStore()
    state = LockoutState(failures=1, window_start=100, locked_until=None, version=3)
    assert subject.save_lockout("alice", state, POLICY, 0)
    assert not subject.clear_lockout("alice", 2)  # counted again meanwhile: kept
    assert subject.lookup("alice").lockout == state
    assert subject.clear_lockout("alice", 3)
    assert subject.lookup("alice").lockout is None
    assert not subject.clear_lockout("alice", 3)  # nothing at that version any more
    assert subject.clear_lockout("alice")  # unconditional (`devices enable`)


def test_missing_table(moto_endpoint: str) -> None:
    with pytest.raises(TableMissing):
        DynamoDBStore.for_lambda("no-such-table").lookup("alice")


def test_the_authorizer_decides_through_it(store: DynamoDBStore) -> None:
    request = parse_connect_event(connect_event("alice", SECRET, "alice"))
    decision = authenticate(request, store, now=time.time(), settings=Settings("t"), arn=ARN)
    assert decision.allowed, decision.reason


def test_endpoint_for_the_service_wins(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, dynamodb_table: str
) -> None:
    """AWS_ENDPOINT_URL_DYNAMODB over AWS_ENDPOINT_URL (which here points nowhere)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", moto_endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{_closed_port()}")
    assert DynamoDBStore.for_lambda(dynamodb_table).lookup("x").record is None


def test_kms_json_1_1(moto_endpoint: str) -> None:
    """The same client speaks KMS (JSON 1.1): encrypt with boto3, decrypt with ours."""
    import base64

    import boto3

    kms = boto3.client("kms")
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    blob = kms.encrypt(KeyId=key, Plaintext=b"s3cret")["CiphertextBlob"]
    client = AwsJsonClient.from_env(KMS, connect_timeout=1, read_timeout=2, max_attempts=2)
    answer = client.call("Decrypt", {"CiphertextBlob": base64.b64encode(blob).decode()})
    assert base64.b64decode(answer["Plaintext"]) == b"s3cret"
    with pytest.raises(AwsError) as failed:
        client.call("Decrypt", {"CiphertextBlob": base64.b64encode(b"junk" * 10).decode()})
    assert failed.value.code in {"InvalidCiphertextException", "NotFoundException"}
    assert "junk" not in str(failed.value)


# -- configuration -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("region", "env", "url"),
    [
        ("eu-west-1", {}, "https://dynamodb.eu-west-1.amazonaws.com"),
        ("cn-north-1", {}, "https://dynamodb.cn-north-1.amazonaws.com.cn"),
        ("us-gov-west-1", {}, "https://dynamodb.us-gov-west-1.amazonaws.com"),
        ("us-iso-east-1", {}, "https://dynamodb.us-iso-east-1.c2s.ic.gov"),
        ("us-isob-east-1", {}, "https://dynamodb.us-isob-east-1.sc2s.sgov.gov"),
        ("us-east-1", {"AWS_USE_FIPS_ENDPOINT": "true"}, "https://dynamodb-fips.us-east-1.amazonaws.com"),
        ("us-east-1", {"AWS_ENDPOINT_URL": "http://localhost:8000"}, "http://localhost:8000"),
        (
            "us-east-1",
            {"AWS_ENDPOINT_URL": "http://a:1", "AWS_ENDPOINT_URL_DYNAMODB": "https://b"},
            "https://b:443",
        ),
        (
            "us-east-1",
            {"AWS_ENDPOINT_URL": "http://a:1", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true"},
            "https://dynamodb.us-east-1.amazonaws.com",
        ),
    ],
)  # fmt: skip
def test_endpoint_resolution(region: str, env: dict[str, str], url: str) -> None:
    endpoint = resolve_endpoint(DYNAMODB, region, env)
    expected = Endpoint.from_url(url)
    assert endpoint == expected


def test_region_from_lambda_variables() -> None:
    assert resolve_region({"AWS_REGION": "eu-west-3", "AWS_DEFAULT_REGION": "x-1"}) == "eu-west-3"
    assert resolve_region({"AWS_DEFAULT_REGION": "ap-south-1"}) == "ap-south-1"
    with pytest.raises(ConfigError):
        resolve_region({})
    with pytest.raises(ConfigError):
        resolve_region({"AWS_REGION": "eu-west-1/../x"})


@pytest.mark.parametrize(
    "env",
    [
        {"AWS_REGION": "us-east-1"},  # no credentials at all
        {"AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": "SK"},  # no region
        {"AWS_REGION": "us-east-1", "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://10.1.2.3/c"},
        {"AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": "SK",
         "AWS_ENDPOINT_URL": "ftp://x"},
        {"AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": "SK",
         "AWS_USE_DUALSTACK_ENDPOINT": "true"},
    ],
)  # fmt: skip
def test_misconfiguration_is_a_config_error(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        AwsJsonClient.from_env(DYNAMODB, env, connect_timeout=1, read_timeout=1, max_attempts=1)


# -- misbehaving servers -----------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _error(status: int, code: str) -> Answer:
    body = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": "x"})
    return status, {"Content-Type": "application/x-amz-json-1.0"}, body.encode()


def _ok(payload: dict[str, Any] | None = None, crc: int | None = None) -> Answer:
    body = json.dumps(payload or {"Responses": {"t": []}}).encode()
    return 200, {"x-amz-crc32": str(zlib.crc32(body) if crc is None else crc)}, body


@pytest.fixture
def lambda_env(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], DynamoDBStore]:
    def store_at(url: str) -> DynamoDBStore:
        monkeypatch.setenv("AWS_ENDPOINT_URL", url)
        return DynamoDBStore.for_lambda("t")

    return store_at


def _deny_timed(store: DynamoDBStore) -> tuple[str, float]:
    request = parse_connect_event(connect_event("alice", SECRET, "alice"))
    started = time.perf_counter()
    decision = authenticate(request, store, now=time.time(), settings=Settings("t"), arn=ARN)
    elapsed = time.perf_counter() - started
    assert not decision.allowed
    assert decision.response() == {"isAuthenticated": False}
    return decision.reason, elapsed


@pytest.mark.timeout(10)
def test_closed_port_denies(lambda_env: Callable[[str], DynamoDBStore]) -> None:
    store = lambda_env(f"http://127.0.0.1:{_closed_port()}")
    reason, elapsed = _deny_timed(store)
    assert reason == "store-error"
    print(f"closed port: denied in {elapsed:.3f} s")


class _Silent:
    """Accepts connections (and counts them), reads nothing, never answers."""

    def __init__(self) -> None:
        import threading

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.1)
        self.port: int = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for conn in self.accepted:
            conn.close()
        self.sock.close()


@pytest.fixture
def silent() -> Iterator[_Silent]:
    server = _Silent()
    yield server
    server.close()


@pytest.mark.timeout(10)
def test_silent_server_denies_after_both_attempts(
    lambda_env: Callable[[str], DynamoDBStore], silent: _Silent
) -> None:
    """Each attempt connects, sends and waits one read timeout; then the store call fails
    and the authorizer denies."""
    store = lambda_env(f"http://127.0.0.1:{silent.port}")
    reason, elapsed = _deny_timed(store)
    assert reason == "store-error"
    assert len(silent.accepted) == MAX_ATTEMPTS  # a fresh connection per attempt
    print(f"silent server: denied in {elapsed:.3f} s (budget {CALL_BUDGET:.1f} s)")


@pytest.mark.timeout(10)
def test_silent_tls_server_fails_each_handshake(aws_env: None, silent: _Silent) -> None:
    """Over https the handshake is part of connecting: a server that never speaks TLS."""
    transport = AwsTransport(
        DYNAMODB,
        region="us-east-1",
        endpoint=Endpoint("https", "127.0.0.1", silent.port),
        credentials=Credentials("AK", "SK"),
        connect_timeout=CONNECT_TIMEOUT,
        read_timeout=READ_TIMEOUT,
        max_attempts=MAX_ATTEMPTS,
    )
    started = time.perf_counter()
    with pytest.raises(AwsError) as failed:
        AwsJsonClient(transport).call("BatchGetItem", {})
    elapsed = time.perf_counter() - started
    assert failed.value.code == "Timeout"
    assert len(silent.accepted) == MAX_ATTEMPTS
    assert transport._idle == []  # a timed-out connection is never kept
    print(f"silent TLS server: failed in {elapsed:.3f} s")


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    "answer",
    [
        _error(500, "InternalServerError"),
        (503, {}, b"<html>busy</html>"),
        _error(400, "ThrottlingException"),
        _error(400, "ProvisionedThroughputExceededException"),
        _error(400, "RequestLimitExceeded"),
        _ok(crc=1),
    ],
    ids=["500", "503-html", "throttling", "provisioned-throughput", "request-limit", "crc32"],
)
def test_retried_errors_are_tried_twice_then_deny(
    scripted: Callable[..., tuple[str, list[dict[str, str]]]],
    lambda_env: Callable[[str], DynamoDBStore],
    answer: Answer,
) -> None:
    url, requests = scripted(answer)
    reason, elapsed = _deny_timed(lambda_env(url))
    assert reason == "store-error"
    assert len(requests) == MAX_ATTEMPTS
    print(f"{answer[0]}: denied in {elapsed:.3f} s")


@pytest.mark.timeout(10)
def test_one_throttle_then_an_answer_is_a_normal_decision(
    scripted: Callable[..., tuple[str, list[dict[str, str]]]],
    lambda_env: Callable[[str], DynamoDBStore],
) -> None:
    url, requests = scripted(_error(400, "ThrottlingException"), _ok())
    reason, _ = _deny_timed(lambda_env(url))
    assert reason == "unknown-identity"  # the retry answered: an unknown user, counted
    assert len(requests) >= 2


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    "code",
    [
        "ExpiredTokenException",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "AccessDeniedException",
        "ValidationException",
    ],
)
def test_rejected_credentials_and_client_errors_are_not_retried(
    scripted: Callable[..., tuple[str, list[dict[str, str]]]],
    lambda_env: Callable[[str], DynamoDBStore],
    code: str,
) -> None:
    url, requests = scripted(_error(400, code))
    store = lambda_env(url)
    with pytest.raises(StoreError) as failed:
        store.lookup("alice")
    assert str(failed.value) == f"DynamoDB BatchGetItem failed: {code}"
    assert len(requests) == 1
    assert _deny_timed(store)[0] == "store-error"


@pytest.mark.timeout(10)
def test_a_dropped_keep_alive_connection_is_reopened(
    scripted: Callable[..., tuple[str, list[dict[str, str]]]],
    lambda_env: Callable[[str], DynamoDBStore],
) -> None:
    """The server closes the idle connection after the first answer (as load balancers
    do): the next call reopens it without spending its second attempt."""

    def drop(handler: Scripted) -> None:
        handler.close_connection = True  # no answer: the client sees the connection close

    url, requests = scripted(_ok(), drop, _ok())
    store = lambda_env(url)
    assert store.lookup("alice").record is None
    assert store.lookup("alice").record is None
    assert len(requests) == 3


@pytest.mark.timeout(10)
def test_one_connection_is_kept_alive(
    scripted: Callable[..., tuple[str, list[dict[str, str]]]],
    lambda_env: Callable[[str], DynamoDBStore],
) -> None:
    url, requests = scripted(_ok())
    store = lambda_env(url)
    for _ in range(3):
        store.lookup("alice")
    assert len(requests) == 3
    assert len(store.api.transport._idle) == 1


# -- container credentials (what a SnapStart function gets) ------------------------------


@pytest.mark.timeout(10)
def test_container_credentials_are_fetched_signed_with_and_renewed(
    scripted: Callable[..., tuple[str, list[dict[str, str]]]],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
) -> None:
    soon = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 60))
    first = {"AccessKeyId": "ASIAFIRST", "SecretAccessKey": "s1", "Token": "t1", "Expiration": soon}
    second = dict(first, AccessKeyId="ASIASECOND", Token="t2", Expiration="2999-01-01T00:00:00Z")
    creds_url, creds_requests = scripted(
        (200, {}, json.dumps(first).encode()), (200, {}, json.dumps(second).encode())
    )
    api_url, api_requests = scripted(_ok())
    token_file = tmp_path / "token"
    token_file.write_text("container-auth-token\n")
    env = {
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": api_url,
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": f"{creds_url}/2021-04-23/credentials",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(token_file),
    }
    client = AwsJsonClient.from_env(
        DYNAMODB, env, connect_timeout=1, read_timeout=1, max_attempts=1
    )
    assert creds_requests == []  # nothing fetched at construction (Lambda init, snapshot)
    client.call("BatchGetItem", {})
    # The first set expires within the refresh margin: the next call renews it.
    client.call("BatchGetItem", {})
    client.call("BatchGetItem", {})
    assert [r["Authorization"] for r in creds_requests] == ["container-auth-token"] * 2
    keys = [r["Authorization"].split("Credential=")[1].split("/")[0] for r in api_requests]
    assert keys == ["ASIAFIRST", "ASIASECOND", "ASIASECOND"]
    assert [r["X-Amz-Security-Token"] for r in api_requests] == ["t1", "t2", "t2"]


@pytest.mark.timeout(10)
def test_unavailable_container_credentials_fail_the_call(
    scripted: Callable[..., tuple[str, list[dict[str, str]]]],
) -> None:
    creds_url, _ = scripted((500, {}, b"oops"))
    api_url, api_requests = scripted(_ok())
    env = {
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": api_url,
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": creds_url,
    }
    client = AwsJsonClient.from_env(
        DYNAMODB, env, connect_timeout=1, read_timeout=1, max_attempts=2
    )
    with pytest.raises(AwsError) as failed:
        client.call("BatchGetItem", {})
    assert failed.value.code == "CredentialsUnavailable"
    assert api_requests == []


# -- the HTTP/1.1 exchange itself --------------------------------------------------------


def _raw(data: bytes) -> Callable[[Scripted], None]:
    def write(handler: Scripted) -> None:
        handler.wfile.write(data)
        handler.wfile.flush()
        handler.close_connection = True

    return write


_BODY = b'{"Responses":{"t":[]}}'


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\n" + _BODY[:5] + b"\r\n" + f"{len(_BODY) - 5:x}".encode() + b"\r\n"
        + _BODY[5:] + b"\r\n0\r\nX-Trailer: y\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: "
        + str(len(_BODY)).encode() + b"\r\n\r\n" + _BODY,
        b"HTTP/1.0 200 OK\r\n\r\n" + _BODY,  # delimited by the end of the connection
        b"HTTP/1.1 200 OK\r\nConnection: close\r\ncontent-length: "
        + str(len(_BODY)).encode() + b"\r\n\r\n" + _BODY,
    ],
    ids=["chunked", "interim-100", "http-1.0-until-close", "connection-close"],
)  # fmt: skip
def test_answers_in_every_http_1_1_framing_are_read(
    scripted: Callable[..., tuple[str, list[dict[str, str]]]],
    lambda_env: Callable[[str], DynamoDBStore],
    answer: bytes,
) -> None:
    url, requests = scripted(_raw(answer))
    store = lambda_env(url)
    for _ in range(2):  # a closed connection is not reused
        assert store.lookup("alice").record is None
    assert len(requests) == 2


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    "answer",
    [
        b"SSH-2.0-OpenSSH_9.6\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{}",  # cut short
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n" + b"X-A: b\r\n" * 101 + b"\r\n",
        b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * 70000 + b"\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nnot-json",
    ],
    ids=["not-http", "short-body", "bad-length", "many-headers", "long-line", "bad-chunk", "junk"],
)
def test_malformed_answers_deny(
    scripted: Callable[..., tuple[str, list[dict[str, str]]]],
    lambda_env: Callable[[str], DynamoDBStore],
    answer: bytes,
) -> None:
    url, _ = scripted(_raw(answer))
    with pytest.raises(StoreError):
        lambda_env(url).lookup("alice")
    reason, _ = _deny_timed(lambda_env(url))
    assert reason == "store-error"


class _Trickle:
    """A whole, valid answer written one byte per ``pause`` after ``fast`` bytes (review
    09:49): each read gets a byte well within the read timeout, so only a deadline for the
    whole exchange ends it. ``sent`` has, per request, how many bytes went out before the
    client hung up."""

    def __init__(self, fast: int, pause: float = 0.1) -> None:
        body = _BODY + b" " * 40  # trailing white space: still the same JSON
        self.answer = (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.0\r\n"
            + f"x-amz-crc32: {zlib.crc32(body)}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        self.fast, self.pause = fast, pause
        self.sent: list[int] = []

    def __call__(self, handler: Scripted) -> None:
        handler.close_connection = True
        index = len(self.sent)
        self.sent.append(0)
        try:
            handler.wfile.write(self.answer[: self.fast])
            handler.wfile.flush()
            self.sent[index] = self.fast
            for i in range(self.fast, len(self.answer)):
                time.sleep(self.pause)
                handler.wfile.write(self.answer[i : i + 1])
                handler.wfile.flush()
                self.sent[index] = i + 1
        except OSError:  # the client gave up: what this server is here to see
            pass

    def cut_short(self) -> bool:
        return bool(self.sent) and all(n < len(self.answer) for n in self.sent)


@pytest.mark.timeout(20)
def test_a_trickled_answer_denies_within_the_call_deadline(
    scripted: Callable[..., tuple[str, list[dict[str, str]]]],
    lambda_env: Callable[[str], DynamoDBStore],
) -> None:
    """Without a deadline per exchange the complete (slow) answer was read and the decision
    made ~10 s later (past IoT's 5 s); now the call ends at CALL_TIMEOUT and denies."""
    trickle = _Trickle(fast=60)  # the status line and headers at once, then the body
    url, requests = scripted(trickle)
    store = lambda_env(url)
    with pytest.raises(StoreError, match="Timeout"):
        store.lookup("alice")
    assert trickle.cut_short()  # the client hung up before the answer was complete
    assert 1 <= len(requests) <= MAX_ATTEMPTS
    reason, elapsed = _deny_timed(lambda_env(url))
    assert reason == "store-error"
    assert trickle.cut_short()
    print(f"trickled answer: denied in {elapsed:.3f} s (call timeout {CALL_TIMEOUT} s)")


@pytest.mark.timeout(20)
@pytest.mark.parametrize("fast", [0, 60], ids=["status-line", "body"])
def test_each_attempt_ends_within_connect_plus_read_timeout(
    scripted: Callable[..., tuple[str, list[dict[str, str]]]], aws_env: None, fast: int
) -> None:
    """Without ``total_timeout`` too: one attempt is one bounded exchange, whichever part of
    the answer (a line read by readline, a body read to its length) is trickled."""
    trickle = _Trickle(fast=fast)
    url, requests = scripted(trickle)
    transport = AwsTransport(
        DYNAMODB,
        region="us-east-1",
        endpoint=Endpoint.from_url(url),
        credentials=Credentials("AK", "SK"),
        connect_timeout=CONNECT_TIMEOUT,
        read_timeout=READ_TIMEOUT,
        max_attempts=1,
    )
    with pytest.raises(AwsError) as failed:
        AwsJsonClient(transport).call("BatchGetItem", {})
    assert failed.value.code == "Timeout"
    assert len(requests) == 1 and trickle.cut_short()
    assert transport._idle == []  # a timed-out connection is never kept


def test_header_values_cannot_inject_lines(
    scripted: Callable[..., tuple[str, list[dict[str, str]]]], aws_env: None
) -> None:
    url, requests = scripted(_ok())
    env = {"AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": "AK",
           "AWS_SECRET_ACCESS_KEY": "SK", "AWS_SESSION_TOKEN": "tok\r\nX-Evil: 1"}  # fmt: skip
    client = AwsJsonClient.from_env(
        DYNAMODB, env, connect_timeout=1, read_timeout=1, max_attempts=1
    )
    with pytest.raises(AwsError) as failed:
        client.call("BatchGetItem", {})
    assert failed.value.code == "InvalidRequest"
    assert requests == []


@pytest.mark.parametrize(
    ("init_type", "loaded"),
    [("on-demand", False), (None, False), ("snap-start", True), ("provisioned-concurrency", True)],
)
def test_the_ca_bundle_is_loaded_at_init_when_the_init_is_captured(
    monkeypatch: pytest.MonkeyPatch, init_type: str | None, loaded: bool
) -> None:
    from iotauth.wire import aws_http

    monkeypatch.setattr(aws_http, "_TLS", None)
    env = {"AWS_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": "SK"}
    if init_type:
        env["AWS_LAMBDA_INITIALIZATION_TYPE"] = init_type
    AwsJsonClient.from_env(DYNAMODB, env, connect_timeout=1, read_timeout=1, max_attempts=1)
    assert (aws_http._TLS is not None) is loaded


@pytest.fixture
def tls_server(tmp_path: Any) -> Iterator[tuple[int, Any]]:
    """An HTTPS server on 127.0.0.1 answering `{}` with a certificate of a local CA."""
    import http.server
    import ssl
    import threading

    from iotauth.local.certs import generate_certificates

    files = generate_certificates(tmp_path)

    class Answer(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            body = b'{"Responses":{"t":[]}}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(files.server_cert, files.server_key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1], files
    finally:
        server.shutdown()
        server.server_close()


def _https_client(port: int, host: str = "localhost") -> AwsJsonClient:
    transport = AwsTransport(
        DYNAMODB,
        region="us-east-1",
        endpoint=Endpoint("https", host, port),
        credentials=Credentials("AK", "SK"),
        connect_timeout=CONNECT_TIMEOUT,
        read_timeout=READ_TIMEOUT,
        max_attempts=MAX_ATTEMPTS,
    )
    return AwsJsonClient(transport)


@pytest.mark.timeout(10)
def test_an_untrusted_certificate_is_refused(tls_server: tuple[int, Any]) -> None:
    """The server's CA is not in the system trust store: no request is answered."""
    port, _ = tls_server
    with pytest.raises(AwsError) as failed:
        _https_client(port).call("BatchGetItem", {})
    assert failed.value.code == "TLSError"


@pytest.mark.timeout(10)
def test_a_trusted_certificate_is_accepted(
    tls_server: tuple[int, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same server once its CA is trusted (the process-wide context, as SSL_CERT_FILE
    would make it): TLS, SNI and host name checks pass, the answer is read."""
    import ssl

    from iotauth.wire import aws_http

    port, files = tls_server
    monkeypatch.setattr(aws_http, "_TLS", ssl.create_default_context(cafile=str(files.ca_cert)))
    assert _https_client(port).call("BatchGetItem", {}) == {"Responses": {"t": []}}


@pytest.mark.timeout(10)
def test_a_trusted_certificate_for_another_host_name_is_refused(
    tls_server: tuple[int, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Host name checking stays on: the trusted certificate names localhost and 127.0.0.1, so
    the same server reached as ``127.1`` (which resolves to 127.0.0.1) is not answered."""
    import ssl

    from iotauth.wire import aws_http

    port, files = tls_server
    monkeypatch.setattr(aws_http, "_TLS", ssl.create_default_context(cafile=str(files.ca_cert)))
    assert _https_client(port, "localhost").call("BatchGetItem", {}) == {"Responses": {"t": []}}
    with pytest.raises(AwsError) as failed:
        _https_client(port, "127.1").call("BatchGetItem", {})
    assert failed.value.code == "TLSError"
