"""The stand-in's item-level ``TransactWriteItems`` answers exactly as moto's own.

Every scenario runs twice against a real moto server on 127.0.0.1 (as the stand-in runs it):
once with moto's transactions (a deep copy of each table as the rollback backup), once with
:mod:`iotauth.local.moto_fleet` installed. Both must give the same answers and leave
the same items (a differential test); each scenario also states what DynamoDB does.
"""

from __future__ import annotations

import contextlib
import copy
import urllib.request
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from iotauth.local.moto_fleet import installed

HASH = "fleet"  # hash key only, as the identity table
RANGED = "ranged"  # hash + range key


def _client(url: str) -> Any:
    return boto3.client(
        "dynamodb",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def _reset(url: str) -> None:
    request = urllib.request.Request(f"{url}/moto-api/reset", data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


def _seed(client: Any) -> None:
    client.create_table(
        TableName=HASH,
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    client.create_table(
        TableName=RANGED,
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    for pk in ("a", "c", "d", "e"):
        client.put_item(TableName=HASH, Item={"pk": {"S": pk}, "v": {"N": "1"}})
    client.put_item(TableName=RANGED, Item={"pk": {"S": "r"}, "sk": {"S": "1"}, "v": {"N": "1"}})


def _put(pk: str, value: str = "2", **extra: Any) -> dict[str, Any]:
    return {"Put": {"TableName": HASH, "Item": {"pk": {"S": pk}, "v": {"N": value}}, **extra}}


def _absent() -> dict[str, str]:
    return {"ConditionExpression": "attribute_not_exists(pk)"}


def _update(pk: str, table: str = HASH, **key: str) -> dict[str, Any]:
    return {
        "Update": {
            "TableName": table,
            "Key": {"pk": {"S": pk}, **{k: {"S": v} for k, v in key.items()}},
            "UpdateExpression": "SET v = v + :one, touched = :yes",
            "ExpressionAttributeValues": {":one": {"N": "1"}, ":yes": {"BOOL": True}},
        }
    }


def _delete(pk: str, **extra: Any) -> dict[str, Any]:
    return {"Delete": {"TableName": HASH, "Key": {"pk": {"S": pk}}, **extra}}


def _check(pk: str, condition: str) -> dict[str, Any]:
    return {
        "ConditionCheck": {
            "TableName": HASH,
            "Key": {"pk": {"S": pk}},
            "ConditionExpression": condition,
        }
    }


#: name → the transactions run one after the other on the seeded tables.
SCENARIOS: dict[str, list[list[dict[str, Any]]]] = {
    # The second entry's condition fails: the first Put (of an absent item) had succeeded.
    "second condition fails": [
        [
            _put("new"),
            _put("c", **_absent()),
            _update("a"),
            _delete("d"),
            _update("r", RANGED, sk="1"),
            {
                "Put": {
                    "TableName": RANGED,
                    "Item": {"pk": {"S": "r"}, "sk": {"S": "2"}, "v": {"N": "9"}},
                }
            },
        ]
    ],
    "last condition check fails": [
        [_put("new"), _update("a"), _delete("d"), _check("e", "attribute_not_exists(pk)")]
    ],
    "all succeed": [
        [
            _put("new", **_absent()),
            _update("a"),
            _delete("d", ConditionExpression="attribute_exists(pk)"),
            _check("e", "attribute_exists(pk)"),
            _update("r", RANGED, sk="1"),
            {
                "Put": {
                    "TableName": RANGED,
                    "Item": {"pk": {"S": "r"}, "sk": {"S": "2"}, "v": {"N": "9"}},
                }
            },
        ],
        [_put("new2"), _delete("new")],
    ],
    "old values returned": [
        [_update("a"), _put("c", ReturnValuesOnConditionCheckFailure="ALL_OLD", **_absent())]
    ],
    "same item twice": [[_put("new"), _update("a"), _delete("a")]],
    "missing table": [[_put("new"), {"Put": {"TableName": "nowhere", "Item": {"pk": {"S": "x"}}}}]],
    "failure then success": [
        [_put("new"), _put("c", **_absent())],
        [_put("new", **_absent()), _update("c")],
    ],
}


def _everything(client: Any) -> dict[str, list[dict[str, Any]]]:
    tables: dict[str, list[dict[str, Any]]] = {}
    for table in (HASH, RANGED):
        items = client.scan(TableName=table, ConsistentRead=True)["Items"]
        tables[table] = sorted(items, key=lambda i: (i["pk"]["S"], i.get("sk", {}).get("S", "")))
    return tables


def _run(url: str, transactions: list[list[dict[str, Any]]]) -> dict[str, Any]:
    """Each transaction's answer, then every item of both tables."""
    _reset(url)
    client = _client(url)
    _seed(client)
    before = _everything(client)
    answers: list[Any] = []
    for items in transactions:
        try:
            client.transact_write_items(TransactItems=copy.deepcopy(items))
            answers.append("ok")
        except ClientError as exc:
            reasons = exc.response.get("CancellationReasons", [])
            answers.append((exc.response["Error"]["Code"], reasons))
    return {"before": before, "answers": answers, "after": _everything(client)}


@contextlib.contextmanager
def _mode(name: str) -> Iterator[None]:
    if name == "item-level":
        with installed():
            yield
    else:
        yield


@pytest.fixture(scope="module")
def outcomes(moto_server: str) -> dict[tuple[str, str], dict[str, Any]]:
    results = {}
    for mode in ("moto", "item-level"):
        with _mode(mode):
            for name, transactions in SCENARIOS.items():
                results[(mode, name)] = _run(moto_server, transactions)
    return results


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_item_level_answers_as_moto_does(
    outcomes: dict[tuple[str, str], dict[str, Any]], name: str
) -> None:
    assert outcomes[("item-level", name)] == outcomes[("moto", name)]


@pytest.mark.parametrize("mode", ["moto", "item-level"])
def test_a_failing_transaction_leaves_every_item_as_it_was(
    outcomes: dict[tuple[str, str], dict[str, Any]], mode: str
) -> None:
    for name in ("second condition fails", "last condition check fails", "same item twice"):
        outcome = outcomes[(mode, name)]
        assert outcome["answers"][0] != "ok"
        # "new" was absent and its Put had succeeded; "a" was updated, "d" deleted: all undone.
        assert outcome["after"] == outcome["before"], name
    code, reasons = outcomes[(mode, "second condition fails")]["answers"][0]
    assert code == "TransactionCanceledException"
    assert [r["Code"] for r in reasons] == ["None", "ConditionalCheckFailed", *["None"] * 4]


@pytest.mark.parametrize("mode", ["moto", "item-level"])
def test_a_successful_transaction_applies_everything(
    outcomes: dict[tuple[str, str], dict[str, Any]], mode: str
) -> None:
    outcome = outcomes[(mode, "all succeed")]
    assert outcome["answers"] == ["ok", "ok"]
    after = {i["pk"]["S"]: i for i in outcome["after"][HASH]}
    assert sorted(after) == ["a", "c", "e", "new2"]
    assert after["a"]["v"] == {"N": "2"} and after["a"]["touched"] == {"BOOL": True}
    assert [(i["sk"]["S"], i["v"]["N"]) for i in outcome["after"][RANGED]] == [
        ("1", "2"),
        ("2", "9"),
    ]


@pytest.mark.parametrize("mode", ["moto", "item-level"])
def test_a_refusal_returns_the_old_item_when_asked(
    outcomes: dict[tuple[str, str], dict[str, Any]], mode: str
) -> None:
    code, reasons = outcomes[(mode, "old values returned")]["answers"][0]
    assert code == "TransactionCanceledException"
    assert reasons[1]["Item"] == {"pk": {"S": "c"}, "v": {"N": "1"}}
    failed_then_ok = outcomes[(mode, "failure then success")]
    assert failed_then_ok["answers"][1] == "ok"  # "new" was really rolled back


def test_item_level_transactions_copy_no_table(
    moto_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """moto's rollback backup deep-copies each table; the stand-in's only the touched items."""
    from moto.dynamodb.models.table import Table

    copied: list[str] = []
    deepcopy = copy.deepcopy

    def counting(value: Any, *args: Any) -> Any:
        if isinstance(value, Table):
            copied.append(value.name)
        return deepcopy(value, *args)

    monkeypatch.setattr(copy, "deepcopy", counting)
    transaction = SCENARIOS["all succeed"][0]
    _run(moto_server, [transaction])
    # moto's own, for the record: the table of each entry, once per entry.
    assert sorted(copied) == sorted(op["TableName"] for e in transaction for op in e.values())
    copied.clear()
    with installed():
        outcome = _run(moto_server, [transaction])
    assert copied == []
    assert outcome["answers"] == ["ok"]


def test_installed_moto_keeps_no_item_it_no_longer_holds(moto_server: str) -> None:
    """moto registers every Item it makes (a copy, a replaced or refused one), for ever."""
    from moto.dynamodb.models.dynamo_type import Item

    transactions = SCENARIOS["failure then success"]
    _run(moto_server, transactions)
    assert len(Item.instances_tracked) > 0  # type: ignore[attr-defined]
    with installed():
        assert Item.instances_tracked == []  # type: ignore[attr-defined]
        outcome = _run(moto_server, transactions)
        assert Item.instances_tracked == []  # type: ignore[attr-defined]
    assert outcome["answers"][1] == "ok"
    assert {i["pk"]["S"] for i in outcome["after"][HASH]} == {"a", "c", "d", "e", "new"}


def test_installed_is_undone_on_exit() -> None:
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.dynamo_type import Item

    from iotauth.local import moto_fleet

    own = (DynamoDBBackend.transact_write_items, Item.__init__, Item.__new__)
    with installed(), installed():
        assert DynamoDBBackend.transact_write_items is moto_fleet.transact_write_items
        assert Item.__new__ is not own[2]
    assert (DynamoDBBackend.transact_write_items, Item.__init__, Item.__new__) == own


def _pages(client: Any, **kwargs: Any) -> list[list[str]]:
    pages, start = [], None
    while True:
        extra = {"ExclusiveStartKey": start} if start else {}
        answer = client.scan(TableName=HASH, **kwargs, **extra)
        items = answer.get("Items")
        pages.append([str(answer["Count"])] if items is None else [i["pk"]["S"] for i in items])
        start = answer.get("LastEvaluatedKey")
        if not start:
            return pages


@pytest.mark.parametrize(
    "kwargs",
    [
        {"Limit": 37},
        {"Limit": 1},
        {},
        {
            "Limit": 25,
            "FilterExpression": "begins_with(pk, :p)",
            "ExpressionAttributeValues": {":p": {"S": "identity#"}},
        },
        {"Limit": 10, "Select": "COUNT"},
    ],
)
def test_scan_pages_hold_what_moto_s_do(moto_server: str, kwargs: dict[str, Any]) -> None:
    """The stand-in's paged scan (DynamoDB-like hash order, not moto's key order) pages
    through exactly the items moto's does, each once, with moto's page sizes, before and
    after writes that add and remove keys; and its pages interleave kinds of item."""

    def run() -> list[list[list[str]]]:
        _reset(moto_server)
        client = _client(moto_server)
        _seed(client)
        for i in range(120):
            kind = "identity" if i % 3 else "clientid"
            client.put_item(TableName=HASH, Item={"pk": {"S": f"{kind}#{i:03d}"}})
        first = _pages(client, **kwargs)
        client.delete_item(TableName=HASH, Key={"pk": {"S": "identity#004"}})
        client.put_item(TableName=HASH, Item={"pk": {"S": "identity#0045"}})
        client.transact_write_items(TransactItems=[_put("identity#zz"), _delete("identity#010")])
        with pytest.raises(ClientError):  # rolled back: the new key goes, the deleted one stays
            client.transact_write_items(
                TransactItems=[
                    _put("identity#new"),
                    _delete("identity#011"),
                    _put("c", **_absent()),
                ]
            )
        return [first, _pages(client, **kwargs)]

    def flat(pages: list[list[str]]) -> list[str]:
        return [key for page in pages for key in page]

    own = run()
    with installed():
        patched = run()
    for mine, theirs in zip(patched, own, strict=True):
        if "Select" not in kwargs:  # a COUNT page holds its count, not keys
            assert len(flat(mine)) == len(set(flat(mine)))  # each item once
        assert sorted(flat(mine)) == sorted(flat(theirs))
        assert [len(p) for p in mine] == [len(p) for p in theirs] or "FilterExpression" in kwargs
    assert len(own[0]) > 1 or "Limit" not in kwargs
    if kwargs == {"Limit": 37}:
        first_page = patched[0][0]
        assert {k.split("#")[0] for k in first_page} >= {"identity", "clientid"}


def test_concurrent_writers_and_scans_all_succeed(moto_server: str) -> None:
    """16 writers (transactions of two items) and a scanner at once: every request is
    answered (moto alone answered some with HTTP 500, a dict changed during iteration), and
    every write is there afterwards."""
    from concurrent.futures import ThreadPoolExecutor

    with installed():
        _reset(moto_server)
        client = _client(moto_server)
        _seed(client)

        def writer(n: int) -> int:
            own = _client(moto_server)
            for i in range(25):
                own.transact_write_items(
                    TransactItems=[_put(f"w{n}-{i}", **_absent()), _put(f"x{n}-{i}")]
                )
            return n

        def scanner() -> int:
            own = _client(moto_server)
            return sum(len(p) for _ in range(10) for p in _pages(own, Limit=50))

        with ThreadPoolExecutor(max_workers=17) as pool:
            scans = pool.submit(scanner)
            done = sorted(pool.map(writer, range(16)))
            assert scans.result() >= 4
        assert done == list(range(16))
        keys = {key for page in _pages(client) for key in page}
        assert {f"w{n}-{i}" for n in range(16) for i in range(25)} <= keys
        assert len(keys) == 4 + 16 * 25 * 2
