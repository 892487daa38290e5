"""Reading the table a page at a time: identities by paged Scan, counts, lockout items by key.

Contract: :func:`identity_pages` yields the identity items of a ``Scan`` one page
(``Limit``, ``ExclusiveStartKey``) at a time, in the table's order, filtered in the table by
username prefix and stored status; :func:`count_identities` counts them (``Select=COUNT``);
:func:`lockout_pages` pages through the few ``lockout#`` items alone. By key
(``BatchGetItem``, 100 keys a call): :func:`lockout_states`, :func:`identities_by_name`,
:func:`registry_owners` (``clientid#`` items). :func:`encode_token`/:func:`decode_token`
turn a position (a ``LastEvaluatedKey``, or the key of the last item shown) into an opaque
token and back, refusing anything that is not one. :func:`wire_store` is a store for these
reads on the project's standard-library client (:mod:`iotauth.wire.aws_json`) when the
environment alone configures AWS, or None (then botocore's, for profiles, SSO and the rest).

The one reason that matters: at 100,000 identities a full Scan held in memory is minutes
and megabytes before the first line; a page answers at once and memory stays one page.
A read through :func:`wire_store` imports no boto3 (~0.4 s of a ``devices list``).
Administration only; the authorizer never imports this.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, cast

from iotauth.identities.bulk import batch_get
from iotauth.identities.dynamodb_store import (
    ADMIN_CONNECT_TIMEOUT,
    ADMIN_MAX_ATTEMPTS,
    ADMIN_READ_TIMEOUT,
    DynamoDBStore,
    _lockout_from_item,
)
from iotauth.identities.lockout import LockoutState
from iotauth.identities.records import (
    CLIENT_ID_PREFIX,
    LOCKOUT_PREFIX,
    IdentityRecord,
    InvalidRecord,
    identity_key,
    lockout_key,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

__all__ = [
    "DEFAULT_PAGE",
    "MAX_PAGE",
    "IdentityPage",
    "InvalidToken",
    "LockoutPage",
    "count_identities",
    "decode_token",
    "encode_token",
    "identities_by_name",
    "identity_pages",
    "lockout_pages",
    "lockout_states",
    "position_after",
    "registry_owners",
    "wire_store",
]

DEFAULT_PAGE = 1000  # items evaluated per Scan call (DynamoDB also stops at 1 MB)
MAX_PAGE = 10000
_MAX_TOKEN = 4096
# Every item's key is "<kind>#…" (identity#, lockout#, clientid#, the registries'): a Scan
# may stop at any of them.
_ITEM_KEY = re.compile(r"[a-z]{1,16}#.{0,2040}", re.DOTALL)


class InvalidToken(ValueError):
    """A ``--next`` token that this module did not make (or that was cut short)."""


class IdentityPage:
    """One Scan page: its identity ``records`` in the table's order, the keys of identity
    items that could not be read (``unreadable``), and where the next page starts
    (``last_key``; None: this was the last page)."""

    __slots__ = ("last_key", "records", "unreadable")

    def __init__(
        self,
        records: list[IdentityRecord],
        last_key: dict[str, Any] | None,
        unreadable: list[str],
    ) -> None:
        self.records = records
        self.last_key = last_key
        self.unreadable = unreadable


def position_after(record: IdentityRecord) -> dict[str, Any]:
    """The ``ExclusiveStartKey`` that resumes a Scan right after ``record``'s item."""
    return {"pk": {"S": identity_key(record.username)}}


def encode_token(key: dict[str, Any]) -> str:
    """An opaque, URL-safe token for a Scan position (no padding)."""
    raw = json.dumps(key, separators=(",", ":"), sort_keys=True).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_token(token: str) -> dict[str, Any]:
    """The Scan position of a token :func:`encode_token` made; InvalidToken otherwise."""
    text = token.strip()
    if not text or len(text) > _MAX_TOKEN:
        raise InvalidToken("not a token that `devices list` printed (empty or too long)")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        key = json.loads(raw.decode("utf-8"))
    except (binascii.Error, ValueError):  # UnicodeDecodeError and JSONDecodeError too
        raise InvalidToken("not a token that `devices list` printed") from None
    pk = key.get("pk", {}).get("S") if isinstance(key, dict) and len(key) == 1 else None
    if (
        not isinstance(pk, str)
        or len(key["pk"]) != 1
        or not _ITEM_KEY.fullmatch(pk)
        or not pk.isprintable()
    ):
        raise InvalidToken("not a token that `devices list` printed")
    return {"pk": {"S": pk}}


def _filter(prefix: str, status: str | None) -> dict[str, Any]:
    expression = "begins_with(pk, :p)"
    names: dict[str, str] = {}
    values: dict[str, Any] = {":p": {"S": identity_key(prefix)}}
    if status is not None:
        expression += " AND #s = :s"
        names["#s"] = "status"  # a reserved word in DynamoDB expressions
        values[":s"] = {"S": status}
    params: dict[str, Any] = {"FilterExpression": expression, "ExpressionAttributeValues": values}
    if names:
        params["ExpressionAttributeNames"] = names
    return params


def identity_pages(
    store: DynamoDBStore,
    *,
    prefix: str = "",
    status: str | None = None,
    start: dict[str, Any] | None = None,
    page_size: int = DEFAULT_PAGE,
    page_sizes: Callable[[int], int] | None = None,
) -> Iterator[IdentityPage]:
    """Identity pages from ``start`` (None: the beginning) to the end of the table.

    ``prefix``: usernames starting with it; ``status``: the stored status (``active``,
    ``disabled``). Both are FilterExpressions: the table still reads every item, but only
    matches cross the wire. ``page_size`` items are evaluated per call; ``page_sizes``,
    when given, is asked before each call with the number of records yielded so far (a
    caller that needs only a few asks for small pages)."""
    params: dict[str, Any] = {"TableName": store.table, **_filter(prefix, status)}
    if start is not None:
        params["ExclusiveStartKey"] = start
    yielded = 0
    while True:
        size = page_sizes(yielded) if page_sizes is not None else page_size
        params["Limit"] = max(1, min(MAX_PAGE, size))
        page = store._call("scan", **params)
        records: list[IdentityRecord] = []
        unreadable: list[str] = []
        for item in page.get("Items", []):
            try:
                records.append(IdentityRecord.from_item(item))
            except InvalidRecord:
                unreadable.append(str(item.get("pk", {}).get("S", "?")))
        last = page.get("LastEvaluatedKey")
        yielded += len(records)
        yield IdentityPage(records, last, unreadable)
        if not last:
            return
        params["ExclusiveStartKey"] = last


def count_identities(
    store: DynamoDBStore,
    *,
    prefix: str = "",
    status: str | None = None,
    on_page: Callable[[int], None] | None = None,
) -> int:
    """How many identity items match (``Select=COUNT``, paged: nothing but counts cross the
    wire); ``on_page(n)`` after each page with its count."""
    params: dict[str, Any] = {
        "TableName": store.table,
        "Select": "COUNT",
        **_filter(prefix, status),
    }
    total = 0
    while True:
        page = store._call("scan", **params)
        count = int(page.get("Count", 0))
        total += count
        if on_page is not None:
            on_page(count)
        last = page.get("LastEvaluatedKey")
        if not last:
            return total
        params["ExclusiveStartKey"] = last


def lockout_states(store: DynamoDBStore, usernames: Iterable[str]) -> dict[str, LockoutState]:
    """The lockout counters of ``usernames`` that have one (consistent, by key; an
    unreadable counter reads as a current lock, as the authorizer treats it)."""
    names = list(dict.fromkeys(usernames))
    if not names:
        return {}
    items = batch_get(store, (lockout_key(n) for n in names))
    states: dict[str, LockoutState] = {}
    for name in names:
        item = items.get(lockout_key(name))
        if item is not None:
            states[name] = _lockout_from_item(item)
    return states


class LockoutPage:
    """One Scan page of ``lockout#`` items: ``(username, state, key)`` of each, in the
    table's order (``key``: the item's, a position to resume after), and ``last_key``."""

    __slots__ = ("last_key", "states")

    def __init__(
        self,
        states: list[tuple[str, LockoutState, dict[str, Any]]],
        last_key: dict[str, Any] | None,
    ) -> None:
        self.states = states
        self.last_key = last_key


def lockout_pages(
    store: DynamoDBStore,
    *,
    prefix: str = "",
    start: dict[str, Any] | None = None,
    page_size: int | None = None,
) -> Iterator[LockoutPage]:
    """The lockout counters of usernames starting with ``prefix``, a page at a time (few
    items: a counter exists only after a failure and expires with its window or lock, so
    by default a page is DynamoDB's own, 1 MB of items read)."""
    params: dict[str, Any] = {
        "TableName": store.table,
        "FilterExpression": "begins_with(pk, :p)",
        "ExpressionAttributeValues": {":p": {"S": lockout_key(prefix)}},
    }
    if page_size is not None:
        params["Limit"] = max(1, min(MAX_PAGE, page_size))
    if start is not None:
        params["ExclusiveStartKey"] = start
    while True:
        page = store._call("scan", **params)
        states = []
        for item in page.get("Items", []):
            key = item.get("pk", {}).get("S")
            if isinstance(key, str) and key.startswith(LOCKOUT_PREFIX):
                states.append(
                    (key[len(LOCKOUT_PREFIX) :], _lockout_from_item(item), {"pk": {"S": key}})
                )
        last = page.get("LastEvaluatedKey")
        yield LockoutPage(states, last)
        if not last:
            return
        params["ExclusiveStartKey"] = last


def identities_by_name(store: DynamoDBStore, usernames: Iterable[str]) -> dict[str, IdentityRecord]:
    """The readable identity records of ``usernames`` that exist (consistent, by key)."""
    names = list(dict.fromkeys(usernames))
    items = batch_get(store, (identity_key(n) for n in names)) if names else {}
    found: dict[str, IdentityRecord] = {}
    for name in names:
        item = items.get(identity_key(name))
        if item is None:
            continue
        try:
            found[name] = IdentityRecord.from_item(item)
        except InvalidRecord:
            continue
    return found


def registry_owners(store: DynamoDBStore, client_ids: Iterable[str]) -> dict[str, str | None]:
    """Who the ``clientid#`` registry says owns each of ``client_ids`` (None: no item)."""
    ids = list(dict.fromkeys(client_ids))
    items = batch_get(store, (CLIENT_ID_PREFIX + c for c in ids)) if ids else {}
    owners: dict[str, str | None] = {}
    for client_id in ids:
        item = items.get(CLIENT_ID_PREFIX + client_id)
        if item is None:
            owners[client_id] = None
            continue
        owner = item.get("owner", {}).get("S")
        owners[client_id] = owner if isinstance(owner, str) else "?"  # unreadable
    return owners


# -- the standard-library client for reads -------------------------------------------------

# Environment settings that only botocore honours: with any of them set, botocore reads;
# a CA bundle and proxies only for an endpoint where they would apply (TLS; not loopback).
_BOTOCORE_ONLY = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_USE_DUALSTACK_ENDPOINT")
_TLS_ONLY = ("AWS_CA_BUNDLE",)
_PROXIES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")
_LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")
# A failed exchange of the standard-library client → the botocore exception it would be.
_NETWORK_ERRORS = {
    "ConnectionRefused": "EndpointConnectionError",
    "ConnectionError": "EndpointConnectionError",
    "ProtocolError": "EndpointConnectionError",
    "Timeout": "ReadTimeoutError",
    "TLSError": "SSLError",
}


class _WireClient:
    """The few botocore ``DynamoDB`` client methods the store's reads call
    (``client.scan(**params)``, ``batch_get_item`` …), on the standard-library client, raising
    what botocore raises (``ClientError`` with the error code, ``EndpointConnectionError``
    …), so that :meth:`DynamoDBStore._call` and every caller read them as before."""

    def __init__(self, api: Any) -> None:
        self._api = api

    def __getattr__(self, operation: str) -> Callable[..., dict[str, Any]]:
        if operation.startswith("_"):
            raise AttributeError(operation)
        wire = "".join(part.title() for part in operation.split("_"))  # batch_get_item → …

        def call(**params: Any) -> dict[str, Any]:
            from iotauth.wire.aws_json import AwsError  # noqa: PLC0415

            try:
                result: dict[str, Any] = self._api.call(wire, params)
            except AwsError as exc:
                raise _botocore_error(exc, wire, self._api) from None
            return result

        return call


def _botocore_error(exc: Any, operation: str, api: Any) -> Exception:
    import botocore.exceptions as errors  # noqa: PLC0415 - ~7 ms: its exceptions only

    network = _NETWORK_ERRORS.get(exc.code) if exc.status is None else None
    if network is None:
        error = {"Error": {"Code": exc.code, "Message": ""}}
        if exc.status is not None:
            error["ResponseMetadata"] = {"HTTPStatusCode": exc.status}
        return errors.ClientError(error, operation)  # type: ignore[arg-type]
    endpoint = api.transport.endpoint
    url = f"{endpoint.scheme}://{endpoint.signed_host}{endpoint.base_path}"
    if network == "SSLError":
        return errors.SSLError(endpoint_url=url, error=exc.code)
    if network == "ReadTimeoutError":
        return errors.ReadTimeoutError(endpoint_url=url, error=exc.code)
    return errors.EndpointConnectionError(endpoint_url=url, error=exc.code)


class _WireStore(DynamoDBStore):
    """A :class:`DynamoDBStore` whose ``client`` is a :class:`_WireClient`: the same calls
    and errors as through botocore, without importing it (its exceptions aside)."""

    @property
    def client(self) -> DynamoDBClient:
        return cast("DynamoDBClient", _WireClient(self.api))


def wire_store(
    table: str,
    *,
    region: str | None = None,
    profile: str | None = None,
    env: Mapping[str, str] | None = None,
) -> DynamoDBStore | None:
    """A store for reads on the standard-library client, or None when the environment does
    not configure AWS by itself and botocore must read (the caller then uses botocore).

    Only for credentials in the environment (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``
    and maybe a session token: botocore's first source too), a region from ``region`` or
    ``AWS_REGION``/``AWS_DEFAULT_REGION``, and an endpoint from ``AWS_ENDPOINT_URL[_DYNAMODB]``
    or the region's own; None with a profile (``profile``, ``AWS_PROFILE``: SSO, assumed
    roles, credential processes), a CA bundle for a TLS endpoint, a proxy for one that is
    not loopback, or an AWS config file that may name an endpoint, none of which that
    client reads."""
    source = os.environ if env is None else env
    if profile or any(source.get(name) for name in _BOTOCORE_ONLY):
        return None
    if not (source.get("AWS_ACCESS_KEY_ID") and source.get("AWS_SECRET_ACCESS_KEY")):
        return None
    if _config_names_endpoint(source):
        return None
    from iotauth.wire.aws_json import DYNAMODB, AwsJsonClient, ConfigError  # noqa: PLC0415

    settings = dict(source)
    if region:
        settings["AWS_REGION"] = region
    try:
        api = AwsJsonClient.from_env(
            DYNAMODB,
            settings,
            connect_timeout=ADMIN_CONNECT_TIMEOUT,
            read_timeout=ADMIN_READ_TIMEOUT,
            max_attempts=ADMIN_MAX_ATTEMPTS,
        )
    except ConfigError:  # no region, or an endpoint it cannot use: botocore says why
        return None
    endpoint = api.transport.endpoint
    if endpoint.scheme == "https" and any(source.get(name) for name in _TLS_ONLY):
        return None
    if endpoint.host not in _LOOPBACK and any(source.get(name) for name in _PROXIES):
        return None
    return _WireStore(table, api=api)


def _config_names_endpoint(env: Mapping[str, str]) -> bool:
    """Whether the AWS config file (``AWS_CONFIG_FILE`` or ``~/.aws/config``) may set an
    endpoint or a CA bundle, which only botocore reads (unreadable: assume it does)."""
    path = env.get("AWS_CONFIG_FILE") or os.path.join(os.path.expanduser("~"), ".aws", "config")
    try:
        with open(path, encoding="utf-8", errors="replace") as config:
            text = config.read()
    except FileNotFoundError:
        return False
    except OSError:
        return True
    return any(word in text for word in ("endpoint_url", "ca_bundle", "services"))
