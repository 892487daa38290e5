"""Write-time rules between records: client-id clashes and pairings, in either order.

Contract: :func:`client_id_clashes` lists the client ids of a record that another record
already lists; :func:`pairing_problems` lists the grants of a record that can match another
identity's namespace, and the other identities' grants that can match its own. Pure;
``judge_record`` (:mod:`iotauth.cli.devices.provision`) runs both for ``devices add``,
``update`` and ``import``, against the store's ``pairing_candidates``.

The one reason: only administration judges records against each other, so these live
outside :mod:`iotauth.identities.records`, which the authorizer imports at every cold start.
Admin only (never imported by the authorizer). Design: docs/design/identity-store.md
"""

from __future__ import annotations

from collections.abc import Sequence

from iotauth.access.scoping import grant_reaches, grant_within, has_wildcard_root
from iotauth.identities.records import IdentityRecord

__all__ = ["client_id_clashes", "pairing_problems"]


def pairing_problems(
    record: IdentityRecord, others: Sequence[IdentityRecord], shared_roots: Sequence[str]
) -> list[str]:
    """Pairings of a new (or changed) record with the existing identities, either order.

    - one of its grants can match another identity's namespace;
    - another identity's grant can match this record's namespace (an identity named like
      an existing grant's first level). Wildcard-rooted grants of records that were given
      ``allow_broad`` are known to match everything and are not repeated here;
    """
    others = [o for o in others if o.username != record.username]
    problems = record.topic_problems(
        shared_roots, [ns for other in others for ns in other.namespaces()]
    )
    own = record.namespaces()
    for other in others:
        theirs = other.namespaces()
        for grant in dict.fromkeys((*other.publish, *other.subscribe)):
            if other.allow_broad and has_wildcard_root(grant):
                continue
            if any(grant_within(grant, ns) for ns in theirs):
                continue
            for namespace in own:
                if grant_reaches(grant, namespace):
                    problems.append(
                        f"identity {other.username!r} has grant {grant!r}, which can match "
                        f"the topics of {record.username!r} ({namespace}/…)"
                    )
    return problems


def client_id_clashes(record: IdentityRecord, others: Sequence[IdentityRecord]) -> list[str]:
    """Client ids of ``record`` that another record lists (records written before the
    client-id registry; the registry's conditional writes catch the rest, concurrent
    writers too)."""
    mine = set(record.allowed_client_ids())
    return [
        f"client id {c!r} is already bound to identity {other.username!r}"
        for other in others
        if other.username != record.username
        for c in sorted(mine & set(other.allowed_client_ids()))
    ]
