"""Whether a browser user is disabled, for the authorizer's token path: one keyed read.

Contract: :class:`WebUserStatus` is the port (``is_disabled(web username) -> bool``, any
failure a :class:`~iotauth.identities.store.StoreError` whose message names no value);
:class:`DynamoDBWebUserStatus` reads ``webuser#<web username>`` — the item ``iotauth users
disable`` writes (:mod:`iotauth.identities.web_users`) — with one strongly consistent
``GetItem`` on the authorizer's own standard-library client, projecting ``status`` (1 RRU);
:class:`MemoryWebUserStatus` is the same for tests and the benchmarks. Anything but a
readable ``active`` status on an existing item counts as disabled, as the signer reads it.

The one reason that matters: a token stays valid until it expires, so a disable must reach
the very next CONNECT; a cache or an eventually consistent read would let it through.

Design: docs/design/tokens.md, docs/design/web-revocation.md
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from iotauth.identities.store import StoreError
from iotauth.identities.web_users import disabled_in, status_read
from iotauth.wire.aws_json import AwsError, AwsJsonClient

__all__ = ["DynamoDBWebUserStatus", "MemoryWebUserStatus", "WebUserStatus"]


class WebUserStatus(Protocol):
    def is_disabled(self, username: str) -> bool:
        """True when ``username`` (a web username) is disabled; StoreError when unknown."""
        ...


class DynamoDBWebUserStatus:
    """``GetItem`` of ``webuser#…`` in ``table``, consistently, never cached."""

    def __init__(self, table: str, api: AwsJsonClient) -> None:
        self.table = table
        self._api = api

    def is_disabled(self, username: str) -> bool:
        try:
            answer: Any = self._api.call("GetItem", status_read(self.table, username))
        except AwsError as exc:
            raise StoreError(f"DynamoDB GetItem failed ({exc.code})") from None
        except ValueError:  # ConfigError, or a name that cannot be a key
            raise StoreError("DynamoDB GetItem not possible") from None
        return disabled_in(answer)


class MemoryWebUserStatus:
    """The disabled web usernames in a set; ``fail`` makes every read a StoreError."""

    def __init__(self, disabled: Iterable[str] = ()) -> None:
        self.disabled = set(disabled)
        self.fail = False
        self.reads = 0

    def is_disabled(self, username: str) -> bool:
        self.reads += 1
        if self.fail:
            raise StoreError("web user store unavailable")
        return username in self.disabled
