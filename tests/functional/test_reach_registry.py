"""The reach registry and the schema marker (issue 14): ``devices add`` judges a record by
keyed reads whose number does not grow with the table, with the verdicts a full scan gave;
every write keeps the registry right; ``devices reindex`` builds it for an older table."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from iotauth.cli import CommandError
from iotauth.cli.devices import provision
from iotauth.identities import registry
from iotauth.identities.credentials import generate_secret, hash_generated_secret
from iotauth.identities.reach import SAMPLE_CAP, SCHEMA_KEY
from iotauth.identities.records import IdentityRecord, InvalidRecord, client_id_key
from iotauth.identities.store import DynamoDBStore, IdentityAdmin, SchemaOutdated, StoreError
from tests.cli_support import Run, cli_runner

ROOTS = ("chat",)
_VERIFIER = hash_generated_secret(generate_secret())


def device(
    name: str, *publish: str, broad: bool = False, ids: tuple[str, ...] = ()
) -> IdentityRecord:
    return IdentityRecord(
        username=name,
        kind="secret",
        verifier=_VERIFIER,
        publish=publish,
        allow_broad=broad,
        client_ids=ids,
        created_at=1,
        updated_at=1,
    )


def aliyun(dn: str, pk: str, *subscribe: str, broad: bool = False) -> IdentityRecord:
    return IdentityRecord(
        username=f"{dn}&{pk}",
        kind="aliyun",
        device_secret="s3cret",
        subscribe=subscribe,
        allow_broad=broad,
        created_at=1,
        updated_at=1,
    )


def verdict(record: IdentityRecord, others: list[IdentityRecord]) -> str:
    try:
        problems = provision.judge_record(record, others, ROOTS)
    except (CommandError, InvalidRecord):
        return "refused"
    return "warned" if problems else "accepted"


def reach_items(store: DynamoDBStore) -> dict[str, dict[str, Any]]:
    items = store.client.scan(TableName=store.table)["Items"]
    found = {i["pk"]["S"]: i for i in items if i["pk"]["S"].startswith("reach#")}
    for item in found.values():  # a sample is a set: compare it as one
        if "owners" in item:
            item["owners"] = {"SS": sorted(item["owners"]["SS"])}
    return found


def seed(store: DynamoDBStore, records: list[IdentityRecord]) -> None:
    """Identities as an older iotauth wrote them (record and client-id items, no reach
    entries), 25 a call."""
    requests: list[Any] = []
    for record in records:
        requests.append({"PutRequest": {"Item": record.to_item()}})
        for client_id in record.allowed_client_ids():
            owner = {"pk": {"S": client_id_key(client_id)}, "owner": {"S": record.username}}
            requests.append({"PutRequest": {"Item": owner}})
    for start in range(0, len(requests), 25):
        batch = {store.table: requests[start : start + 25]}
        while batch:
            batch = store.client.batch_write_item(RequestItems=batch).get("UnprocessedItems")


EXISTING = [
    device("reader", "target/#"),
    device("owner"),
    device("collector", "fleet/+/up", "fleet/in"),
    device("broad", "+/all", broad=True),
    device("ids", ids=("shared-1",)),
    aliyun("dn1", "pk1"),
    aliyun("dn2", "pk1", "/pk1/dn3/#", broad=True),
    aliyun("sink", "pk2", "/sys/+/+/thing/event/post", broad=True),
]
NEW = [
    device("target"),
    device("spy", "owner/#"),
    device("fleet"),
    device("fresh", "fresh-other/x"),
    device("cl", ids=("shared-1",)),
    device("all-seeing", "+/#"),
    device("peer", "dn1&pk1/x"),
    aliyun("dn3", "pk1"),
    aliyun("dn4", "pk1"),
    aliyun("dn5", "pk2"),
    aliyun("dn6", "pk3", "/pk1/dn1/#"),
    aliyun("dn7", "pk3", "/pk1/+/status"),
    aliyun("dn8", "pk3", "/pk3/dn8/x"),
]


@pytest.mark.parametrize("new", NEW, ids=lambda r: r.username)
def test_keyed_verdicts_are_the_full_scans(store: IdentityAdmin, new: IdentityRecord) -> None:
    for record in EXISTING:
        store.add_identity(record)
    keyed = verdict(new, store.pairing_candidates([new]))
    assert keyed == verdict(new, store.list_identities())


def test_every_write_keeps_the_registry_as_reindex_builds_it(dynamodb: DynamoDBStore) -> None:
    for record in EXISTING:
        dynamodb.add_identity(record)
    dynamodb.replace_identity(device("owner", "owner/x", "news/in"))
    dynamodb.replace_identity(device("collector", "fleet/in"))
    dynamodb.replace_identity(aliyun("dn2", "pk1", "/pk1/+/x", broad=True))
    dynamodb.remove_identity("reader")
    incremental = reach_items(dynamodb)
    report = dynamodb.reindex()
    rebuilt = reach_items(dynamodb)
    # counts that reached 0 stay as items until reindex removes them; all else is the same
    assert {k: v for k, v in incremental.items() if v.get("n", {}).get("N") != "0"} == rebuilt
    assert report["staleReachItemsRemoved"] == len(incremental) - len(rebuilt)
    assert rebuilt["reach#news"]["owners"]["SS"] == ["owner"]
    assert rebuilt["reach#/pk1/*"]["o:dn2&pk1"] == {"L": [{"S": "/pk1/+/x"}]}
    assert dynamodb.reindex()["staleReachItemsRemoved"] == 0  # idempotent
    assert reach_items(dynamodb) == rebuilt


def test_an_exact_bucket_counts_owners_it_does_not_name(dynamodb: DynamoDBStore) -> None:
    names = [f"dev-{i:02d}" for i in range(SAMPLE_CAP + 4)]
    for name in names:
        dynamodb.add_identity(device(name, "fleet/in"))
    item = reach_items(dynamodb)["reach#fleet"]
    assert item["n"] == {"N": str(len(names))} and len(item["owners"]["SS"]) == SAMPLE_CAP
    for name in item["owners"]["SS"]:
        dynamodb.remove_identity(name)  # every named owner gone; four remain, unnamed
    new = device("fleet")
    candidates = dynamodb.pairing_candidates([new])
    with pytest.raises(CommandError, match="4 other identities have grants"):
        provision.judge_record(new, candidates, ROOTS)
    assert verdict(new, dynamodb.list_identities()) == "refused"


def test_the_limits_are_clear_refusals(
    dynamodb: DynamoDBStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    many = device("many", *(f"topic-{i}/x" for i in range(120)))
    with pytest.raises(StoreError, match="DynamoDB's transactions take 100"):
        dynamodb.add_identity(many)
    monkeypatch.setattr(registry, "MAX_REACH_ITEM_BYTES", 60)
    dynamodb.add_identity(aliyun("a1", "pk1", "/pk1/+/one", broad=True))
    with pytest.raises(StoreError, match="too many identities hold grants under '/pk1/\\*'"):
        dynamodb.add_identity(aliyun("a2", "pk1", "/pk1/+/another/long/grant", broad=True))
    assert dynamodb.get_identity("a2&pk1") is None and dynamodb.get_identity("many") is None


# -- the schema marker and `devices reindex`, as an operator meets them ------------------


@pytest.fixture
def run(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Run:
    monkeypatch.setenv("IOTAUTH_TABLE", "iotauth-reach")
    monkeypatch.delenv("IOTAUTH_SHARED_TOPIC_ROOTS", raising=False)
    return cli_runner(monkeypatch, capsys)


def test_an_older_table_must_be_reindexed_once(run: Run) -> None:
    assert run("devices", "create-table")[0] == 0
    store = DynamoDBStore("iotauth-reach")
    store.client.delete_item(TableName=store.table, Key={"pk": {"S": SCHEMA_KEY}})
    # as an iotauth before the registries wrote them: a client id not registered either
    legacy = [device("reader", "target/#"), device("old", ids=("old-id",))]
    for record in legacy:
        store.client.put_item(TableName=store.table, Item=record.to_item())
    code, out, err = run("devices", "add", "target")
    assert code == 2 and out == "" and "run `iotauth devices reindex` once" in err
    with pytest.raises(SchemaOutdated):
        store.pairing_candidates([device("x")])
    code, out, err = run("devices", "reindex", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["identities"] == 2 and report["clientIdsRegistered"] == 2
    assert report["reachItems"] == 1 and report["clientIdConflicts"] == []
    code, _, err = run("devices", "add", "target")
    assert code == 2 and "'reader' has grant 'target/#'" in err
    code, _, err = run("devices", "add", "thief", "--client-id", "old-id")
    assert code == 2 and "'old-id' is already bound to identity 'old'" in err
    assert run("devices", "reindex")[0] == 0  # idempotent


def test_an_empty_table_without_the_marker_is_marked_on_first_add(run: Run) -> None:
    """As the template creates it: nothing in it, so nothing to reindex."""
    assert run("devices", "create-table")[0] == 0
    store = DynamoDBStore("iotauth-reach")
    store.client.delete_item(TableName=store.table, Key={"pk": {"S": SCHEMA_KEY}})
    assert run("devices", "add", "first")[0] == 0
    marker = store.client.get_item(TableName=store.table, Key={"pk": {"S": SCHEMA_KEY}})
    assert marker["Item"]["version"] == {"N": "1"}


# -- the cost of one `devices add` ---------------------------------------------------------


def _count_reads(store: DynamoDBStore) -> Counter[str]:
    seen: Counter[str] = Counter()

    def before_call(model: Any, params: dict[str, Any], **_: Any) -> None:
        seen[model.name] += 1
        if model.name == "BatchGetItem":
            request = json.loads(params["body"])["RequestItems"]
            seen["keys"] += sum(len(r["Keys"]) for r in request.values())
        elif model.name in ("GetItem", "Query", "Scan"):
            seen["keys"] += 1

    store.client.meta.events.register("before-call.dynamodb.*", before_call)
    return seen


@pytest.mark.parametrize("fleet", [200, 2000])
def test_add_reads_a_constant_number_of_items_whatever_the_fleet(
    dynamodb: DynamoDBStore,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    fleet: int,
) -> None:
    # every device publishes to fleet/in (one exact bucket counting them all), a few
    # Aliyun devices of one product, and a collector with a broad grant
    seed(dynamodb, [device(f"dev-{i:05d}", "fleet/in") for i in range(fleet)])
    seed(dynamodb, [aliyun(f"dn{i}", "pk1") for i in range(50)])
    seed(dynamodb, [aliyun("sink", "pk2", "/sys/+/+/thing/event/post", broad=True)])
    dynamodb.reindex()
    monkeypatch.setenv("IOTAUTH_TABLE", dynamodb.table)
    monkeypatch.setattr(provision, "open_store", lambda args: dynamodb)
    run = cli_runner(monkeypatch, capsys)
    reads = _count_reads(dynamodb)
    cases = [
        (("add", "newdev", "--publish", "fleet/in"), 0),
        (("add", "fleet"), 2),  # named like the grant every device has: refused
        (
            ("add-aliyun", "--product-key", "pk1", "--device-name", "dnx", "--allow-broad"),
            0,  # the collector's /sys/+/+/… grant reaches it: a warning
        ),
    ]
    counts = []
    for argv, code in cases:
        reads.clear()
        stdin = b"device secret" if argv[0] == "add-aliyun" else b""
        extra = ("--device-secret-stdin",) if argv[0] == "add-aliyun" else ()
        got, _, err = run("devices", *argv, *extra, stdin=stdin)
        assert got == code, err
        assert reads["Scan"] == 0 and reads["Query"] == 0
        counts.append((reads["BatchGetItem"] + reads["GetItem"], reads["keys"]))
    print(f"fleet {fleet}: (read calls, keys read) per add = {counts}")
    for calls, keys in counts:
        assert calls <= 3 and keys <= 3 * SAMPLE_CAP + 20
