"""The reach registry's key rules: which identities a record can pair with, found by key.

Contract: a *cross* grant (not wholly inside its own identity's namespaces) is filed under
one *bucket* (:func:`grant_bucket`): its literal levels down to a namespace's depth, or
``*`` where a wildcard comes first. A grant that can reach a namespace is always filed
under one of :func:`namespace_buckets` of it, and a bucket without ``*`` is reached by
every grant filed there; :func:`reached_name` is the one identity an exact bucket can
belong to. So ``devices add`` reads a constant number of keys whatever the fleet's size.
Grants whose wildcard lies inside a product's levels (``/pk/+/…``) reach an open set of
devices: :func:`open_reach_problems` reports them (``--allow-broad`` passes them).

The one reason: a full scan per ``devices add`` costs O(fleet) reads (issue 14).
Admin only (never imported by the authorizer). Design: docs/design/identity-store.md
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from iotauth.access.scoping import grant_problem, grant_within, has_wildcard_root
from iotauth.identities.records import IdentityRecord

__all__ = [
    "REACH_PREFIX",
    "SAMPLE_CAP",
    "SCHEMA_KEY",
    "SCHEMA_VERSION",
    "WILD",
    "Candidates",
    "candidates_among",
    "cross_grants",
    "grant_bucket",
    "is_exact",
    "namespace_buckets",
    "open_reach_problems",
    "reach_key",
    "reached_name",
    "record_buckets",
]

WILD = "*"
REACH_PREFIX = "reach#"
SCHEMA_KEY = "meta#schema"
SCHEMA_VERSION = 1  # 1: the reach registry and a complete client-id registry
SAMPLE_CAP = 16  # owners an exact bucket names (it counts them all)
_WILDCARDS = frozenset("*?+#")


class Candidates(list[IdentityRecord]):
    """The stored identities some records can clash or pair with (a list of records), and
    ``unnamed``: username → problems about identities the registry counts but does not
    name (an exact bucket names at most :data:`SAMPLE_CAP` of its owners)."""

    def __init__(
        self,
        records: Iterable[IdentityRecord] = (),
        unnamed: dict[str, list[str]] | None = None,
    ) -> None:
        super().__init__(records)
        self.unnamed: dict[str, list[str]] = unnamed if unnamed is not None else {}

    def problems_for(self, record: IdentityRecord) -> list[str]:
        return list(self.unnamed.get(record.username, ()))


def reach_key(bucket: str) -> str:
    return REACH_PREFIX + bucket


def is_exact(bucket: str) -> bool:
    return bucket != WILD and not bucket.endswith("/" + WILD)


def _depth(lead: str, first: str) -> int:
    """Levels of a namespace under this first level: a device's 1, Aliyun's ``/pk/dn`` 2,
    ``/sys/pk/dn`` 3."""
    if not lead:
        return 1
    return 3 if first == "sys" else 2


def grant_bucket(grant: str) -> str | None:
    """Where a cross grant is filed; None when it can reach no namespace (``/pk`` alone)."""
    if has_wildcard_root(grant):
        return WILD
    lead = "/" if grant.startswith("/") else ""
    levels = grant[len(lead) :].split("/")
    depth = _depth(lead, levels[0])
    kept: list[str] = []
    for level in levels[:depth]:
        if _WILDCARDS.intersection(level):
            return lead + "/".join([*kept, WILD])
        kept.append(level)
    return lead + "/".join(kept) if len(kept) == depth else None


def namespace_buckets(namespace: str) -> list[str]:
    """Every bucket a grant that can reach ``namespace`` may be filed under, exact first."""
    lead = "/" if namespace.startswith("/") else ""
    levels = namespace[len(lead) :].split("/")
    found = [namespace]
    for i in range(len(levels) - 1, 0, -1):
        found.append(lead + "/".join([*levels[:i], WILD]))
    found.append(WILD)
    return found


def reached_name(bucket: str) -> str | None:
    """The username whose namespace an exact bucket is: ``u``; ``dn&pk`` for ``/pk/dn`` and
    ``/sys/pk/dn``. None for a wildcard bucket."""
    if not is_exact(bucket):
        return None
    if not bucket.startswith("/"):
        return bucket
    levels = bucket[1:].split("/")
    if levels[0] == "sys" and len(levels) == 3:
        return f"{levels[2]}&{levels[1]}"
    return f"{levels[1]}&{levels[0]}" if len(levels) == 2 else None


def cross_grants(record: IdentityRecord) -> list[str]:
    """Its grants that reach beyond its own namespaces."""
    own = record.namespaces()
    return [
        g
        for g in dict.fromkeys((*record.publish, *record.subscribe))
        if not any(grant_within(g, ns) for ns in own)
    ]


def record_buckets(record: IdentityRecord) -> dict[str, tuple[str, ...]]:
    """bucket → the record's grants filed there: what the registry holds for it. A
    wildcard-rooted grant of an ``allow_broad`` record is left out, as
    :func:`~iotauth.identities.pairing.pairing_problems` leaves it out."""
    found: dict[str, list[str]] = {}
    for grant in cross_grants(record):
        if record.allow_broad and has_wildcard_root(grant):
            continue
        bucket = grant_bucket(grant)
        if bucket is not None:
            found.setdefault(bucket, []).append(grant)
    return {b: tuple(g) for b, g in sorted(found.items())}


def open_reach_problems(record: IdentityRecord, shared_roots: Sequence[str]) -> list[str]:
    """Grants whose wildcard lies inside a product's levels (``/pk/+/…``, ``/pk/d*``): they
    can match any device of that product, present or future, which no keyed read can list.
    Judged as if such a device existed (today's full scan would refuse them as soon as one
    does)."""
    own = record.namespaces()
    problems = []
    for grant in cross_grants(record):
        bucket = grant_bucket(grant)
        if bucket is None or bucket == WILD or is_exact(bucket):
            continue
        if grant_problem(grant, shared_roots=shared_roots, own_namespaces=own) is not None:
            continue  # broad for another reason, reported by the topic rules
        prefix = bucket[: -len(WILD)]
        problems.append(
            f"grant {grant!r} can match the topics of another identity (any device under "
            f"{prefix}…, present or future)"
        )
    return problems


def candidates_among(
    records: Sequence[IdentityRecord], stored: Iterable[IdentityRecord]
) -> list[IdentityRecord]:
    """The same rules over records in hand (:class:`~iotauth.identities.store.MemoryStore`,
    tests): the stored identities ``records`` can clash or pair with, by username."""
    names: set[str] = set()
    client_ids: set[str] = set()
    buckets: set[str] = set()
    for record in records:
        names.add(record.username)
        client_ids.update(record.allowed_client_ids())
        for grant in cross_grants(record):
            bucket = grant_bucket(grant)
            name = reached_name(bucket) if bucket is not None else None
            if name is not None:
                names.add(name)
        for namespace in record.namespaces():
            buckets.update(namespace_buckets(namespace))
    return sorted(
        (
            s
            for s in stored
            if s.username in names
            or client_ids.intersection(s.allowed_client_ids())
            or buckets.intersection(record_buckets(s))
        ),
        key=lambda r: r.username,
    )
