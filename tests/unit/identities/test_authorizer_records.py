from __future__ import annotations

import pytest

from iotauth.access.scoping import MAX_POLICY_DOCUMENTS, ArnContext, policy_documents
from iotauth.identities.credentials import (
    generate_secret,
    hash_chosen_password,
    hash_generated_secret,
)
from iotauth.identities.records import IdentityRecord, InvalidRecord
from iotauth.identities.store import IdentityExists, MemoryStore


def secret_record(**fields: object) -> IdentityRecord:
    base: dict[str, object] = {
        "username": "alice",
        "kind": "secret",
        "verifier": hash_generated_secret(generate_secret()),
    }
    base.update(fields)
    return IdentityRecord(**base)  # type: ignore[arg-type]


def test_item_round_trip() -> None:
    record = secret_record(
        client_ids=("alice", "alice-2"),
        publish=("broadcast/in",),
        subscribe=("broadcast/#",),
        disconnect_after=3600,
        refresh_after=900,
        created_at=1,
        updated_at=2,
    ).validate()
    item = record.to_item()
    assert item["pk"] == {"S": "identity#alice"}
    assert IdentityRecord.from_item(item) == record


def test_aliyun_round_trip() -> None:
    record = IdentityRecord(
        username="dev1&pk1", kind="aliyun", device_secret="s", allow_no_timestamp=True
    ).validate()
    assert IdentityRecord.from_item(record.to_item()) == record
    assert record.allowed_client_ids() == ("pk1&dev1",)
    assert record.namespaces() == ("/pk1/dev1", "/sys/pk1/dev1")


def test_secrets_not_in_repr_or_public_view() -> None:
    record = IdentityRecord(username="dev1&pk1", kind="aliyun", device_secret="TOPSECRET")
    assert "TOPSECRET" not in repr(record) and "TOPSECRET" not in str(record.public_view())
    record = secret_record()
    assert record.verifier is not None
    assert record.verifier not in repr(record) and record.verifier not in str(record.public_view())


@pytest.mark.parametrize(
    "fields",
    [
        {"username": "web-alice"},
        {"username": "al/ice"},
        {"username": "alice*"},
        {"client_ids": ("alice*",)},
        {"client_ids": ("#",)},
        {"client_ids": ("a/b",)},
        {"client_ids": ("${iot:ClientId}",)},
        {"publish": ("*",)},
        {"subscribe": ("#",)},
        {"subscribe": ("x/${iot:ClientId}",)},
        {"publish": ("$share/x",)},
        {"disconnect_after": 299},
        {"refresh_after": 86401},
        {"verifier": "garbage"},
        {"verifier": hash_chosen_password(b"a chosen password")},  # kind mismatch
        {"device_secret": "x"},
        {"kind": "root"},
        {"status": "maybe"},
    ],
)
def test_invalid_records_are_refused(fields: dict[str, object]) -> None:
    with pytest.raises(InvalidRecord):
        secret_record(**fields).validate()


@pytest.mark.parametrize(
    "fields",
    [
        {"username": "dev1"},  # not deviceName&productKey
        {"username": "dev1&p-k"},
        {"device_secret": ""},
        {"device_secret": "a\nb"},
        {"client_ids": ("x" * 65,)},
        {"verifier": hash_generated_secret(generate_secret())},
    ],
)
def test_invalid_aliyun_records_are_refused(fields: dict[str, object]) -> None:
    base: dict[str, object] = {"username": "dev1&pk1", "kind": "aliyun", "device_secret": "s"}
    base.update(fields)
    with pytest.raises(InvalidRecord):
        IdentityRecord(**base).validate()  # type: ignore[arg-type]


def test_grants_that_cannot_fit_are_refused_at_write() -> None:
    many = tuple(f"broadcast/channel-{i:03d}/{'x' * 200}" for i in range(120))
    with pytest.raises(InvalidRecord, match="policy documents"):
        secret_record(subscribe=many).validate()
    store = MemoryStore()
    with pytest.raises(InvalidRecord):
        store.add_identity(secret_record(subscribe=many))
    assert store.identities == {}


def test_largest_accepted_record_fits_every_connection() -> None:
    """What the write-time check accepts renders within limits for a real ARN."""
    grants = []
    record = secret_record()
    for i in range(200):
        candidate = secret_record(subscribe=(*grants, f"b/{i:03d}/{'y' * 150}"))
        try:
            candidate.validate()
        except InvalidRecord:
            break
        grants.append(f"b/{i:03d}/{'y' * 150}")
        record = candidate
    assert len(grants) > 10
    arn = ArnContext("aws", "us-east-1", "123456789012")
    documents = policy_documents(record.scope_for("alice"), arn)
    assert len(documents) <= MAX_POLICY_DOCUMENTS
    assert all(len(d) <= 2048 for d in documents)


def test_duplicate_refused() -> None:
    store = MemoryStore()
    store.add_identity(secret_record())
    with pytest.raises(IdentityExists):
        store.add_identity(secret_record())


@pytest.mark.parametrize(
    "item",
    [
        {},
        {"pk": {"S": "lockout#alice"}, "kind": {"S": "secret"}, "status": {"S": "active"}},
        {"pk": {"S": "identity#alice"}, "kind": {"S": "root"}, "status": {"S": "active"}},
        {
            "pk": {"S": "identity#alice"},
            "kind": {"S": "secret"},
            "status": {"S": "active"},
            "clientIds": {"S": "x"},
        },
        {"pk": {"N": "1"}},
    ],
)
def test_malformed_items(item: dict[str, object]) -> None:
    with pytest.raises(InvalidRecord):
        IdentityRecord.from_item(item)
