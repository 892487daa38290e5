"""The cost model's pricing rules (bench/cost.py): DynamoDB units and invocation counts."""

from __future__ import annotations

from bench.cost import Units, invocations_per_month, item_size, units_of


def test_item_size_counts_names_and_values() -> None:
    assert item_size({"pk": {"S": "identity#alice"}}) == 2 + 14
    assert item_size({"ok": {"BOOL": True}}) == 3


def test_batch_get_prices_found_and_missing_keys() -> None:
    params = {"RequestItems": {"t": {"Keys": [{}, {}], "ConsistentRead": True}}}
    found = {"Responses": {"t": [{"pk": {"S": "x" * 5000}}]}}  # 2 units of 4 KB, 1 missing
    assert units_of([("BatchGetItem", params, found)]) == Units(3.0, 0.0, 1)
    eventually = {"RequestItems": {"t": {"Keys": [{}], "ConsistentRead": False}}}
    assert units_of([("BatchGetItem", eventually, {})]).rru == 0.5


def test_writes_are_1kb_units() -> None:
    small = {"Item": {"pk": {"S": "lockout#a"}}}
    large = {"Item": {"pk": {"S": "x" * 1500}}}
    calls = [("PutItem", small, {}), ("PutItem", large, {}), ("DeleteItem", {}, {})]
    assert units_of(calls) == Units(0.0, 1 + 2 + 1, 3)


def test_invocations_of_a_device_that_stays_connected() -> None:
    assert invocations_per_month(300, 86400) == 30 * 288  # 8,640 (REFERENCE §12)
    assert invocations_per_month(86400, 86400) == 30  # one reconnect a day, no refresh
    assert invocations_per_month(3600, 3600) == 720  # timestamped Aliyun sessions
