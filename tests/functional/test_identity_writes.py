"""Operators' read-modify-writes of an identity cannot silently undo each other (review
09:53): ``replace_identity(record, expected=what was read)`` fails with "changed meanwhile;
try again" when another write came first, in moto's DynamoDB and the in-memory store."""

from __future__ import annotations

import pytest

from iotauth.identities.credentials import generate_secret, hash_generated_secret
from iotauth.identities.records import IdentityRecord
from iotauth.identities.store import DynamoDBStore, IdentityAdmin, StoreError


def _device(store: IdentityAdmin) -> IdentityRecord:
    store.add_identity(
        IdentityRecord(
            username="sensor-1",
            kind="secret",
            verifier=hash_generated_secret(generate_secret()),
            updated_at=1_700_000_000,
        )
    )
    record = store.get_identity("sensor-1")
    assert record is not None
    return record


def test_a_disable_is_not_lost_under_a_concurrent_rotate(store: IdentityAdmin) -> None:
    read_by_rotate = _device(store)
    read_by_disable = store.get_identity("sensor-1")
    assert read_by_disable is not None
    # Both in the same second: the timestamp alone would not tell the writes apart.
    now = read_by_rotate.updated_at
    store.replace_identity(
        read_by_disable.replace(status="disabled", updated_at=now), expected=read_by_disable
    )
    rotated = read_by_rotate.replace(verifier=hash_generated_secret(generate_secret()))
    with pytest.raises(StoreError, match="changed meanwhile; try again"):
        store.replace_identity(rotated.replace(updated_at=now), expected=read_by_rotate)
    stored = store.get_identity("sensor-1")
    assert stored is not None
    assert stored.status == "disabled" and stored.verifier == read_by_rotate.verifier
    # Read again, the rotate goes through.
    store.replace_identity(stored.replace(verifier=rotated.verifier), expected=stored)
    final = store.get_identity("sensor-1")
    assert final is not None and final.status == "disabled"
    assert final.verifier == rotated.verifier


def test_every_write_is_a_new_version(dynamodb: DynamoDBStore) -> None:
    record = _device(dynamodb)
    for _ in range(3):  # the same updated_at each time, as writes within one second have
        dynamodb.replace_identity(record.replace(status="disabled"), expected=record)
        newer = dynamodb.get_identity("sensor-1")
        assert newer is not None and newer.updated_at > record.updated_at
        record = newer


def test_the_write_itself_is_conditional_on_the_version_read(
    dynamodb: DynamoDBStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write landing between replace_identity's own read and its write: the table's
    condition (updatedAt as read) refuses it, whatever the caller passed."""
    stale = _device(dynamodb)
    dynamodb.replace_identity(stale.replace(status="disabled"), expected=stale)
    monkeypatch.setattr(dynamodb, "get_identity", lambda username: stale)
    with pytest.raises(StoreError, match="changed meanwhile; try again"):
        dynamodb.replace_identity(stale.replace(publish=("sensor-1/extra",)))
    monkeypatch.undo()
    stored = dynamodb.get_identity("sensor-1")
    assert stored is not None and stored.status == "disabled" and stored.publish == ()


def test_a_record_written_without_updated_at_can_still_be_replaced(
    dynamodb: DynamoDBStore,
) -> None:
    legacy = IdentityRecord(
        username="old-1", kind="secret", verifier=hash_generated_secret(generate_secret())
    )
    item = legacy.to_item()
    del item["updatedAt"]
    dynamodb.client.put_item(TableName=dynamodb.table, Item=item)
    read = dynamodb.get_identity("old-1")
    assert read is not None and read.updated_at == 0
    dynamodb.replace_identity(read.replace(status="disabled"), expected=read)
    stored = dynamodb.get_identity("old-1")
    assert stored is not None and stored.status == "disabled" and stored.updated_at == 1
