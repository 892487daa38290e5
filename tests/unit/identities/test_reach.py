"""The reach registry's key rules (iotauth.identities.reach) against what a grant can match
(iotauth.access.scoping.grant_reaches): a grant that can reach a namespace is filed under
one of the buckets that namespace is looked up under, and an exact bucket is reached by
every grant filed there; so keyed reads give the verdicts a full scan gave."""

from __future__ import annotations

import itertools

import pytest

from iotauth.access.scoping import grant_reaches
from iotauth.identities.credentials import generate_secret, hash_generated_secret
from iotauth.identities.pairing import pairing_problems
from iotauth.identities.reach import (
    WILD,
    candidates_among,
    grant_bucket,
    is_exact,
    namespace_buckets,
    open_reach_problems,
    reached_name,
    record_buckets,
)
from iotauth.identities.records import IdentityRecord

ROOTS = ("chat",)
# Namespaces of every shape: devices (one level), Aliyun's /pk/dn and /sys/pk/dn.
NAMESPACES = ["a", "ab", "b", "/a/b", "/a/ab", "/b/a", "/sys/a/b", "/sys/b/a", "/sys/a/ab"]
_LEVELS = ["a", "ab", "b", "sys", "+", "#", "*", "a*", "?", "a?b", ""]


def _grants() -> list[str]:
    grants: set[str] = set()
    for n in (1, 2, 3, 4):
        for levels in itertools.product(_LEVELS, repeat=n):
            path = "/".join(levels)
            grants.update({path, "/" + path})
    return sorted(g for g in grants if g and g not in {"/", "//"})


GRANTS = _grants()


def test_a_grant_that_reaches_a_namespace_is_filed_where_the_namespace_looks() -> None:
    checked = 0
    for grant in GRANTS:
        bucket = grant_bucket(grant)
        for namespace in NAMESPACES:
            reaches = grant_reaches(grant, namespace)
            if reaches:
                checked += 1
                assert bucket in namespace_buckets(namespace), (grant, namespace, bucket)
            if bucket is not None and is_exact(bucket) and bucket == namespace:
                assert reaches, (grant, namespace)
    assert checked > 1000  # the alphabet does exercise the rule


def test_buckets_and_the_name_an_exact_bucket_belongs_to() -> None:
    assert grant_bucket("fleet/telemetry") == "fleet"
    assert grant_bucket("fleet") == "fleet"
    assert grant_bucket("+/x") == WILD and grant_bucket("/+/dn/x") == WILD
    assert grant_bucket("/pk/dn/#") == "/pk/dn" and reached_name("/pk/dn") == "dn&pk"
    assert grant_bucket("/pk/+/x") == "/pk/*" and reached_name("/pk/*") is None
    assert grant_bucket("/sys/pk/dn/thing/#") == "/sys/pk/dn"
    assert reached_name("/sys/pk/dn") == "dn&pk"
    assert grant_bucket("/sys/+/+/thing/event/post") == "/sys/*"
    assert grant_bucket("/pk") is None  # reaches no namespace
    assert namespace_buckets("/pk/dn") == ["/pk/dn", "/pk/*", "*"]
    assert namespace_buckets("alice") == ["alice", "*"]


def _device(name: str, *, publish: tuple[str, ...] = (), broad: bool = False) -> IdentityRecord:
    return IdentityRecord(
        username=name,
        kind="secret",
        verifier=hash_generated_secret(generate_secret()),
        publish=publish,
        allow_broad=broad,
    )


def test_what_the_registry_files_for_a_record() -> None:
    record = _device("d1", publish=("d1/own", "fleet/in", "fleet/x/#", "+/all"), broad=True)
    # its own topics are not filed; a wildcard-rooted grant of an allow_broad record neither
    # (pairing_problems knows it matches everything and does not repeat it)
    assert record_buckets(record) == {"fleet": ("fleet/in", "fleet/x/#")}
    assert record_buckets(_device("d2", publish=("+/all",))) == {WILD: ("+/all",)}


def test_a_wildcard_inside_a_products_levels_is_judged_as_if_a_device_existed() -> None:
    alone = IdentityRecord(
        username="dn1&pk1", kind="aliyun", device_secret="s", subscribe=("/pk1/+/status",)
    )
    problems = open_reach_problems(alone, ROOTS)
    assert len(problems) == 1 and "another identity" in problems[0]
    assert "/pk1/" in problems[0]
    own = alone.replace(subscribe=("/pk1/dn1/+",))
    assert open_reach_problems(own, ROOTS) == []
    system = alone.replace(subscribe=("/sys/pk1/+/x",))  # broad anyway: the topic rules say so
    assert open_reach_problems(system, ROOTS) == []


@pytest.mark.parametrize(
    ("new", "expected"),
    [
        (_device("target"), ["reader"]),  # named like a grant's first level
        (_device("spy", publish=("owner/#",)), ["owner"]),  # a grant into a name
        (_device("quiet"), []),
    ],
)
def test_candidates_are_what_pairs_and_the_verdict_is_the_full_scans(
    new: IdentityRecord, expected: list[str]
) -> None:
    stored = [
        _device("reader", publish=("target/#",)),
        _device("owner"),
        _device("wild", publish=("+/x",)),  # written before the rule, say
        _device("broad", publish=("+/y",), broad=True),
        *(_device(f"other-{i}", publish=(f"elsewhere-{i}/x",)) for i in range(20)),
    ]
    found = candidates_among([new], stored)
    # "wild" (a wildcard-rooted grant without allow_broad) can match anyone: always read
    assert [r.username for r in found] == sorted([*expected, "wild"])
    assert bool(pairing_problems(new, found, ROOTS)) == bool(pairing_problems(new, stored, ROOTS))
