"""Issue 9.4: client ids are unique across identities — ``clientid#<id>`` items written in
the identity's own TransactWriteItems, conditionally, in moto (and the in-memory store)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from iotauth.identities.credentials import generate_secret, hash_generated_secret
from iotauth.identities.records import IdentityRecord
from iotauth.identities.store import (
    ClientIdTaken,
    DynamoDBStore,
    IdentityAdmin,
    IdentityExists,
    MemoryStore,
)

VERIFIER = hash_generated_secret(generate_secret())


def device(name: str, *client_ids: str) -> IdentityRecord:
    return IdentityRecord(username=name, kind="secret", verifier=VERIFIER, client_ids=client_ids)


def test_a_second_identity_cannot_take_a_client_id(store: IdentityAdmin) -> None:
    store.add_identity(device("sensor-1"))  # its default client id is its name
    with pytest.raises(ClientIdTaken, match="'sensor-1' is already bound to identity 'sensor-1'"):
        store.add_identity(device("sensor-2", "sensor-1"))
    assert store.get_identity("sensor-2") is None  # nothing half-written
    assert store.client_id_owner("sensor-1") == "sensor-1"
    # An Aliyun device's inner ids share the registry.
    store.add_identity(device("sensor-3", "MAC001"))
    aliyun_dev = IdentityRecord(
        username="dn&pk1", kind="aliyun", device_secret="s", client_ids=("MAC001",)
    )
    with pytest.raises(ClientIdTaken):
        store.add_identity(aliyun_dev)
    with pytest.raises(IdentityExists):
        store.add_identity(device("sensor-1", "other-id"))
    assert store.client_id_owner("other-id") is None


def test_update_moves_and_remove_releases(store: IdentityAdmin) -> None:
    store.add_identity(device("a", "id-1", "id-2"))
    store.add_identity(device("b", "id-3"))
    record = store.get_identity("a")
    assert record is not None
    with pytest.raises(ClientIdTaken):
        store.replace_identity(record.replace(client_ids=("id-1", "id-3")))
    assert store.client_id_owner("id-3") == "b"
    assert store.get_identity("a") == record  # the refused update changed nothing
    store.replace_identity(record.replace(client_ids=("id-2", "id-4")))
    assert [store.client_id_owner(c) for c in ("id-1", "id-2", "id-4")] == [None, "a", "a"]
    store.add_identity(device("c", "id-1"))  # released, so free again
    rotated = store.get_identity("a")
    assert rotated is not None
    store.replace_identity(rotated.replace(verifier=hash_generated_secret(generate_secret())))
    assert store.client_id_owner("id-4") == "a"  # rotation keeps them
    store.remove_identity("a")
    assert store.client_id_owner("id-2") is None and store.client_id_owner("id-4") is None
    store.add_identity(device("d", "id-2", "id-4"))


def test_update_backfills_a_record_written_before_the_registry(dynamodb: DynamoDBStore) -> None:
    old = device("legacy", "old-id")
    dynamodb.client.put_item(TableName=dynamodb.table, Item=old.to_item())
    assert dynamodb.client_id_owner("old-id") is None
    dynamodb.replace_identity(old.replace(status="disabled"))
    assert dynamodb.client_id_owner("old-id") == "legacy"


@pytest.fixture
def atomic_moto(dynamodb: DynamoDBStore) -> Iterator[DynamoDBStore]:
    """moto applies a transaction as a sequence of Python steps; DynamoDB applies it
    atomically and serializably. Give moto that one guarantee (a lock around each
    request's transaction), so that what is tested is our conditions, not moto's races."""
    from moto.dynamodb.models import DynamoDBBackend

    original: Callable[..., Any] = DynamoDBBackend.transact_write_items
    lock = threading.Lock()

    def atomic(self: Any, *args: Any, **kwargs: Any) -> Any:
        with lock:
            return original(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(DynamoDBBackend, "transact_write_items", atomic)
        yield dynamodb


@pytest.mark.parametrize("backend", ["atomic_moto", "memory"])
def test_concurrent_writers_cannot_both_take_a_client_id(
    backend: str, request: pytest.FixtureRequest
) -> None:
    store: IdentityAdmin = (
        MemoryStore() if backend == "memory" else request.getfixturevalue(backend)
    )
    writers = 8
    barrier = threading.Barrier(writers, timeout=10)
    outcomes: dict[str, str] = {}

    def add(name: str) -> None:
        barrier.wait()
        try:
            store.add_identity(device(name, "shared-id"))
            outcomes[name] = "added"
        except ClientIdTaken:
            outcomes[name] = "taken"

    threads = [threading.Thread(target=add, args=(f"writer-{i}",)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(outcomes) == writers
    winners = [name for name, outcome in outcomes.items() if outcome == "added"]
    assert len(winners) == 1, outcomes
    assert store.client_id_owner("shared-id") == winners[0]
    holders = [r.username for r in store.list_identities() if "shared-id" in r.client_ids]
    assert holders == winners
