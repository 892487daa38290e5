"""How an import's identities are cut into transactions (:func:`iotauth.identities.bulk.groups_of`):
in order, within DynamoDB's 100 actions, never one item twice except the exact reach buckets
that one action adds up."""

from __future__ import annotations

from iotauth.identities.bulk import groups_of, touched_keys
from iotauth.identities.records import IdentityRecord


def _record(
    name: str, *, client_ids: tuple[str, ...] = (), publish: tuple[str, ...] = ()
) -> IdentityRecord:
    return IdentityRecord(
        username=name,
        kind="password",
        verifier="scrypt$x",
        client_ids=client_ids,
        publish=publish,
        created_at=1,
        updated_at=1,
    )


def _names(groups: list[list[IdentityRecord]]) -> list[list[str]]:
    return [[r.username for r in g] for g in groups]


def test_groups_keep_the_order_and_their_size() -> None:
    records = [_record(f"d{i}") for i in range(60)]
    groups = groups_of(records, 25)
    assert [len(g) for g in groups] == [25, 25, 10]
    assert [r for g in groups for r in g] == records


def test_a_client_id_claimed_twice_starts_a_new_group() -> None:
    records = [_record("a", client_ids=("x",)), _record("b", client_ids=("x",)), _record("c")]
    assert _names(groups_of(records, 25)) == [["a"], ["b", "c"]]


def test_a_default_client_id_counts_as_a_claim() -> None:
    # b's default client id is "b", which a claims too: two transactions.
    assert [r for r in _record("b").allowed_client_ids()] == ["b"]
    records = [_record("a", client_ids=("b",)), _record("b")]
    assert _names(groups_of(records, 25)) == [["a"], ["b"]]


def test_an_exact_reach_bucket_is_shared_and_counted_once() -> None:
    records = [_record(f"d{i}", publish=("fleet/in",)) for i in range(30)]
    own, joined = touched_keys(records[0])
    assert own == ["identity#d0", "clientid#d0"] and joined == ["reach#fleet"]
    assert [len(g) for g in groups_of(records, 30)] == [30]  # 60 own items + 1 shared
    # 100 actions at most: 49 identities (98 items) + the shared bucket.
    records = [_record(f"d{i}", publish=("fleet/in",)) for i in range(60)]
    assert [len(g) for g in groups_of(records, 100)] == [49, 11]


def test_a_wildcard_reach_bucket_is_its_own() -> None:
    wild = _record("dn&pk", publish=("/pk/+/status",))
    own, joined = touched_keys(wild)
    assert joined == [] and any(k.startswith("reach#") for k in own)
    other = _record("dn2&pk", publish=("/pk/+/status",))
    assert _names(groups_of([wild, other], 25)) == [["dn&pk"], ["dn2&pk"]]
