"""moto's DynamoDB at fleet size: changes installed while a stand-in's moto server runs.

Contract: :func:`installed` puts on moto, until it exits, a :func:`transact_write_items`
that answers exactly as moto's own (same checks, order and cancellation reasons, all or
nothing) but backs up only the items it touches; untracked items with interned attribute
names; :func:`paged_scan` in DynamoDB's hash order without a sort per page; kept parses of
condition expressions and method lists; and one DynamoDB request at a time.

The one reason: every iotauth write is a transaction, so with moto's own each write cost
O(table) time and leaked O(table) memory: 0.5 s per write at 10,000 items, and an import of
10,000 users grew the stand-in past 20 GB.

Design: docs/design/local-store.md
"""

from __future__ import annotations

import bisect
import contextlib
import copy
import json
import sys
import threading
import zlib
from collections.abc import Iterator
from typing import Any

__all__ = ["installed", "paged_scan", "transact_write_items"]

_lock = threading.Lock()
_requests = threading.RLock()  # one DynamoDB request at a time, while installed
_installs = 0
_undo: list[Any] = []  # what installing replaced, put back by the last to leave


class _Backup:
    """The touched items as they were before the transaction: (table, hash, range) → item
    (a deep copy) or None (absent), and each table's stream length."""

    def __init__(self) -> None:
        self._items: dict[tuple[int, Any, Any], tuple[Any, Any, Any, Any, bool]] = {}
        self._streams: dict[int, tuple[Any, int]] = {}

    def keep(self, backend: Any, table_name: str, key: dict[str, Any]) -> None:
        table = backend.get_table(table_name)
        hash_value, range_value = backend.get_keys_value(table, key)
        slot = (id(table), hash_value, range_value)
        if slot in self._items:
            return
        current = table.get_item(hash_value, range_value)
        had_rows = hash_value in table.items  # range-key tables: a dict of rows per hash
        self._items[slot] = (table, hash_value, range_value, copy.deepcopy(current), had_rows)
        shard = table.stream_shard
        if shard is not None and id(table) not in self._streams:
            self._streams[id(table)] = (shard, len(shard.items))

    def restore(self) -> None:
        """Put every touched item back as it was (deleting those that were absent), and each
        table's scan order with them."""
        for table, hash_value, range_value, old, had_rows in self._items.values():
            if range_value is not None:
                rows = table.items[hash_value]
                if old is None:
                    rows.pop(range_value, None)
                else:
                    rows[range_value] = old
                if not rows and not had_rows:
                    del table.items[hash_value]
            elif old is None:
                table.items.pop(hash_value, None)
                _followed(table, hash_value, added=False)
            else:
                table.items[hash_value] = old
                _followed(table, hash_value, added=True)
        for shard, length in self._streams.values():
            del shard.items[length:]


def transact_write_items(  # noqa: PLR0915 - moto's loop, kept whole to compare
    self: Any, transact_items: list[dict[str, Any]]
) -> None:
    """moto 5.2's ``DynamoDBBackend.transact_write_items``, with an item-level backup.

    The loop is moto's, step for step (the differential test runs both on the same
    transactions); only the backup and the rollback differ, and one case moto leaves half
    done (an entry naming two operations, raised outside its rollback) is rolled back too.
    """
    get_filter_expression = _parsed_condition
    from moto.dynamodb.exceptions import (  # noqa: PLC0415 - moto only in the stand-in
        ConditionalCheckFailed,
        MockValidationException,
        MultipleTransactionsException,
        TooManyTransactionsException,
        TransactionCanceledException,
        TransactWriteSingleOpException,
    )

    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    backup = _Backup()
    target_items: set[tuple[str, str]] = set()

    def check_unicity(table_name: str, key: dict[str, Any]) -> None:
        item = (str(table_name), str(dict(sorted(key.items()))))
        if item in target_items:
            raise MultipleTransactionsException()
        target_items.add(item)

    errors: list[tuple[str | None, str | None, dict[str, Any] | None]] = []
    for item in transact_items:
        original_item: dict[str, Any] | None = None
        if len(list(item.keys())) > 1:
            backup.restore()  # moto raises here with the tables as they are; so do we
            raise TransactWriteSingleOpException
        try:
            op_type, op = next(iter(item.items()))
            if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
                raise ValueError("Unsupported transaction operation")
            table_name = op["TableName"]
            condition_expression = op.get("ConditionExpression")
            names = op.get("ExpressionAttributeNames")
            values = op.get("ExpressionAttributeValues")
            return_on_failure = op.get("ReturnValuesOnConditionCheckFailure")
            if op_type == "Put":
                attrs = op["Item"]
                table = self.get_table(table_name)
                key = {table.hash_key_attr: attrs[table.hash_key_attr]}
                if table.range_key_attr is not None:
                    key[table.range_key_attr] = attrs[table.range_key_attr]
            else:
                key = op["Key"]
            check_unicity(table_name, key)
            backup.keep(self, table_name, key)
            current = self.get_item(table_name, key)
            if condition_expression is not None:
                condition_op = get_filter_expression(condition_expression, names, values)
                if not condition_op.expr(current):
                    if return_on_failure == "ALL_OLD" and current:
                        original_item = current.to_json()["Attributes"]
                    raise ConditionalCheckFailed(item=original_item)
            if op_type == "Put":
                self.put_item(
                    table_name,
                    op["Item"],
                    condition_expression=condition_expression,
                    expression_attribute_names=names,
                    expression_attribute_values=values,
                )
            elif op_type == "Delete":
                self.delete_item(
                    table_name,
                    key,
                    condition_expression=condition_expression,
                    expression_attribute_names=names,
                    expression_attribute_values=values,
                )
            elif op_type == "Update":
                self.update_item(
                    table_name,
                    key,
                    update_expression=op["UpdateExpression"],
                    condition_expression=condition_expression,
                    expression_attribute_names=names,
                    expression_attribute_values=values,
                )
            errors.append((None, None, None))
        except (MultipleTransactionsException, MockValidationException):
            backup.restore()
            raise
        except ConditionalCheckFailed as exc:
            errors.append(("ConditionalCheckFailed", str(exc.message), original_item))
        except Exception as exc:
            errors.append((type(exc).__name__, str(exc), original_item))
    if any(code is not None for code, _, _ in errors):
        backup.restore()
        raise TransactionCanceledException(errors)


def _position(value: str) -> tuple[int, str]:
    """Where a key stands in a scan: by a hash of it, as DynamoDB's partitions order items."""
    return zlib.crc32(value.encode()), value


def _key_order(table: Any) -> tuple[list[Any], list[Any]]:
    """(scan positions, hash keys) in scan order: built at a table's first write (or first
    scan: ~0.5 s at 200,000 items), then kept in step by each put and delete of a key
    (:func:`_followed`)."""
    cached = table.__dict__.get("_iotauth_key_order")
    if cached is not None and cached[0] is table.items and len(cached[1]) == len(table.items):
        return cached[1], cached[2]
    keys = sorted(table.items, key=lambda k: _position(k.value))
    values = [_position(k.value) for k in keys]
    table.__dict__["_iotauth_key_order"] = (table.items, values, keys)
    return values, keys


def _followed(table: Any, key: Any, added: bool) -> None:
    """Keep a built order in step with one key added or removed (a list insert: O(n)
    pointer moves, microseconds, where a rebuild sorts the table)."""
    if table.hash_key_type != "S" or table.range_key_attr:
        return
    cached = table.__dict__.get("_iotauth_key_order")
    if cached is None or cached[0] is not table.items:
        _key_order(table)  # built while the table is small, then kept in step (key included)
        return
    values, keys = cached[1], cached[2]
    position = _position(key.value)
    i = bisect.bisect_left(values, position)
    present = i < len(values) and values[i] == position
    if added and not present:
        values.insert(i, position)
        keys.insert(i, key)
    elif not added and present:
        del values[i]
        del keys[i]


def paged_scan(  # noqa: PLR0917 - moto's Table.scan signature
    self: Any,
    filters: dict[str, Any],
    limit: int,
    exclusive_start_key: dict[str, Any] | None,
    filter_expression: Any = None,
    index_name: str | None = None,
    consistent_read: bool = False,
    projection_expression: list[list[str]] | None = None,
    segments: tuple[Any, Any] = (None, None),
) -> tuple[list[Any], int, dict[str, Any] | None]:
    """moto's ``Table.scan`` for a string-keyed, hash-key-only table without index or
    segments, in O(page + log table) a page instead of O(table · log table); anything else:
    moto's own."""
    own = _own_scan[0]
    plain = self.hash_key_type == "S" and not self.range_key_attr and not index_name
    if not plain or segments != (None, None) or filters:
        return own(  # type: ignore[no-any-return]
            self, filters, limit, exclusive_start_key, filter_expression, index_name,
            consistent_read, projection_expression, segments,
        )  # fmt: skip
    from moto.dynamodb.models.table import RESULT_SIZE_LIMIT  # noqa: PLC0415

    values, keys = _key_order(self)
    start = 0
    if exclusive_start_key is not None:
        start_value = exclusive_start_key[self.hash_key_attr]["S"]
        start = bisect.bisect_right(values, _position(start_value))
    results: list[Any] = []
    result_size = scanned = 0
    last_evaluated_key = None
    for key in keys[start:]:
        item = self.items.get(key)
        if item is None:  # deleted by a concurrent request after the order was taken
            continue
        if len(results) == limit or result_size + item.size() > RESULT_SIZE_LIMIT:
            last_evaluated_key = self._get_last_evaluated_key(results[-1], index_name)
            break
        results.append(copy.deepcopy(item))
        result_size += item.size()
        scanned += 1
    if filter_expression is not None:
        results = [item for item in results if filter_expression.expr(item)]
    if projection_expression:
        results = [r.project(projection_expression) for r in results]
    return results, scanned, last_evaluated_key


_own_scan: list[Any] = []
_parses: dict[tuple[Any, ...], Any] = {}
_MAX_PARSES = 4096


def _parsed_condition(expr: str | None, names: Any, values: Any) -> Any:
    """moto's ``get_filter_expression``, remembered by its inputs (bounded)."""
    from moto.dynamodb.comparisons import get_filter_expression  # noqa: PLC0415

    key = (
        expr,
        json.dumps(names, sort_keys=True) if names else None,
        json.dumps(values, sort_keys=True) if values else None,
    )
    parsed = _parses.get(key)
    if parsed is None:
        parsed = get_filter_expression(expr, names, values)
        if len(_parses) >= _MAX_PARSES:
            _parses.clear()
        _parses[key] = parsed
    return parsed


def _untracked_new(cls: type, *args: Any, **kwargs: Any) -> Any:
    """``Item.__new__`` without moto's registry of every instance ever made."""
    return object.__new__(cls)


_MISSING = object()


def _swap(steps: list[tuple[Any, str, Any]], owner: Any, name: str, new: Any) -> Any:
    """Set ``owner.name`` to ``new``, noting how to put the old value back; returns it."""
    old = owner.__dict__.get(name, _MISSING) if isinstance(owner, type) else getattr(owner, name)
    steps.append((owner, name, old))
    setattr(owner, name, new)
    return getattr(owner, name) if old is _MISSING else old


def _install() -> None:
    import moto.backends as moto_backends  # noqa: PLC0415
    import moto.core.responses as core_responses  # noqa: PLC0415
    import moto.dynamodb.models.table as tables  # noqa: PLC0415
    from moto.dynamodb import models  # noqa: PLC0415
    from moto.dynamodb.models.dynamo_type import Item  # noqa: PLC0415
    from moto.dynamodb.responses import DynamoHandler  # noqa: PLC0415

    steps: list[tuple[Any, str, Any]] = []
    own_call = DynamoHandler.call_action
    own_init = Item.__init__
    own_put, own_delete = tables.Table.put_item, tables.Table.delete_item
    own_names = core_responses.method_names_from_class  # type: ignore[attr-defined]
    names_of: dict[object, list[str]] = {}
    _own_scan[:] = [tables.Table.scan]
    modules = tuple(moto_backends.list_of_moto_modules())  # a listdir + stats, every request

    def one_at_a_time(self: Any) -> Any:
        with _requests:
            return own_call(self)

    def method_names(clazz: object) -> list[str]:
        if clazz not in names_of:
            names_of[clazz] = own_names(clazz)
        return names_of[clazz]

    def put_item(self: Any, *args: Any, **kwargs: Any) -> Any:
        item = own_put(self, *args, **kwargs)  # raises before writing, or writes
        _followed(self, item.hash_key, added=True)
        return item

    def delete_item(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        item = own_delete(self, hash_key, *args, **kwargs)
        if item is not None:
            _followed(self, hash_key, added=False)
        return item

    def interned_init(self: Any, hash_key: Any, range_key: Any, attrs: dict[str, Any]) -> None:
        own_init(self, hash_key, range_key, {sys.intern(k): v for k, v in attrs.items()})

    for owner, name, new in (
        (moto_backends, "list_of_moto_modules", lambda: modules),
        (core_responses, "method_names_from_class", method_names),
        (models, "get_filter_expression", _parsed_condition),
        (tables, "get_filter_expression", _parsed_condition),
        (DynamoHandler, "call_action", one_at_a_time),
        (tables.Table, "put_item", put_item),
        (tables.Table, "delete_item", delete_item),
        (tables.Table, "scan", paged_scan),
        (models.DynamoDBBackend, "transact_write_items", transact_write_items),
        (Item, "__init__", interned_init),
        (Item, "__new__", staticmethod(_untracked_new)),
    ):
        _swap(steps, owner, name, new)
    Item.instances_tracked.clear()  # type: ignore[attr-defined]

    def undo() -> None:
        _parses.clear()
        for owner, name, old in reversed(steps):
            if old is _MISSING:
                delattr(owner, name)
            else:
                setattr(owner, name, old)

    _undo.append(undo)


@contextlib.contextmanager
def installed() -> Iterator[None]:
    """Both changes on moto while this runs (nested and concurrent uses share one install;
    the last to leave puts moto's own back)."""
    global _installs  # noqa: PLW0603 - one install per process, counted

    with _lock:
        if _installs == 0:
            _install()
        _installs += 1
    try:
        yield
    finally:
        with _lock:
            _installs -= 1
            if _installs == 0:
                _undo.pop()()
