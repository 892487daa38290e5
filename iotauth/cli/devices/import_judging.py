"""``devices import``, judging: what the table holds for an export, and every entry judged.

Contract: :func:`read_keys` reads each entry's ``identity#`` and ``clientid#`` items in
batches (consistent ``BatchGetItem``); :func:`compare_existing` splits the names already
imported identically (skipped on a re-run) from those that exist with other contents;
:func:`judge_import` judges every entry by ``judge_record``, as ``devices add`` would,
against the table's candidates, the export's other entries and the client-id registry,
and raises CommandError listing every refusal.

The one reason: each entry is compared only with the records that can change the answer
(:class:`_Index`), so judging stays linear in the size of the file.
Design: docs/design/import.md
"""

from __future__ import annotations

import os
import re
import sys
from typing import TYPE_CHECKING, Any

from iotauth.access.scoping import grant_root, has_wildcard_root, shared_roots_from_env
from iotauth.cli import CommandError
from iotauth.cli.devices.common import run_checked
from iotauth.cli.devices.provision import judge_record
from iotauth.cli.output import progress, progress_every
from iotauth.identities.reach import Candidates
from iotauth.identities.records import (
    IdentityRecord,
    InvalidRecord,
    client_id_key,
    identity_key,
)

if TYPE_CHECKING:
    from iotauth.identities.migration import Imported
    from iotauth.identities.store import DynamoDBStore

__all__ = ["compare_existing", "judge_import", "read_keys"]


def read_keys(store: DynamoDBStore, plan: list[Imported]) -> dict[str, dict[str, Any]]:
    """The stored ``identity#…`` and ``clientid#…`` items of every entry, by key."""
    from iotauth.identities.bulk import batch_get  # noqa: PLC0415

    keys = [identity_key(i.record.username) for i in plan]
    keys += [client_id_key(c) for i in plan for c in i.record.allowed_client_ids()]
    keys = list(dict.fromkeys(keys))
    with progress(len(keys), "reading the table", every=progress_every(len(keys))) as bar:
        return batch_get(store, keys, workers=8, on_progress=bar.advance)


def _same_identity(item: Imported, stored: IdentityRecord) -> bool:
    """Whether ``stored`` is what importing ``item`` writes (a re-run of the same file)."""
    from iotauth.identities.credentials import verify_password  # noqa: PLC0415

    mine = item.record
    fields = ("kind", "status", "client_ids", "publish", "subscribe", "rooms", "allow_broad",
              "disconnect_after", "refresh_after")  # fmt: skip
    if any(getattr(mine, f) != getattr(stored, f) for f in fields):
        return False
    if item.secret is not None:  # scrypt with a fresh salt: compare by verifying
        return verify_password(item.secret, stored.verifier)
    return mine.verifier == stored.verifier


def compare_existing(
    plan: list[Imported], stored: dict[str, dict[str, Any]]
) -> tuple[set[str], list[str]]:
    """(names already imported identically, names that exist with other contents)."""
    same: set[str] = set()
    differ: list[str] = []
    for item in plan:
        found = stored.get(identity_key(item.record.username))
        if found is None:
            continue
        try:
            existing = IdentityRecord.from_item(found)
        except InvalidRecord:
            differ.append(item.record.username)
            continue
        (same.add if _same_identity(item, existing) else differ.append)(item.record.username)
    return same, differ


# -- judge: every entry as `devices add` would ---------------------------------------------


class _Index:
    """Which records can change :func:`judge_record`'s answer for a record: those whose
    namespace's first level is a literal first level of its grants, those with a grant whose
    literal first level is one of its namespaces', those with a wildcard-rooted grant (not
    ``allow_broad``: pairing_problems skips those), and those sharing a client id. A grant
    with a literal first level reaches no namespace with another first level, and a
    wildcard-rooted grant is refused whoever else exists, so the answer is the same as
    against everyone, at a fraction of the work."""

    def __init__(self, records: list[IdentityRecord]) -> None:
        self.records = records
        self.by_namespace: dict[str, list[int]] = {}
        self.by_grant: dict[str, list[int]] = {}
        self.by_client_id: dict[str, list[int]] = {}
        self.wild: list[int] = []
        for i, r in enumerate(records):
            for ns in r.namespaces():
                self.by_namespace.setdefault(grant_root(ns), []).append(i)
            wild = False
            for grant in dict.fromkeys((*r.publish, *r.subscribe)):
                if has_wildcard_root(grant):
                    wild = True
                else:
                    self.by_grant.setdefault(grant_root(grant), []).append(i)
            if wild and not r.allow_broad:
                self.wild.append(i)
            for client_id in r.allowed_client_ids():
                self.by_client_id.setdefault(client_id, []).append(i)

    def candidates(self, record: IdentityRecord) -> list[IdentityRecord]:
        found: set[int] = set(self.wild)
        for grant in (*record.publish, *record.subscribe):
            if not has_wildcard_root(grant):
                found.update(self.by_namespace.get(grant_root(grant), ()))
        for ns in record.namespaces():
            found.update(self.by_grant.get(grant_root(ns), ()))
        for client_id in record.allowed_client_ids():
            found.update(self.by_client_id.get(client_id, ()))
        return [self.records[i] for i in sorted(found)]


def _table_candidates(store: DynamoDBStore, records: list[IdentityRecord]) -> Candidates:
    """The stored identities the entries can clash or pair with: keyed, batched reads of
    the client-id and reach registries (``pairing_candidates``), never a scan."""
    found: list[Candidates] = []
    run_checked(lambda: found.append(store.pairing_candidates(records)))
    return found[0]


# Anything spelled like a name: the message's words that may be another entry's name.
_NAME_LIKE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@:&-]*")


def _unquoted(item: Imported, message: str, where: dict[str, str]) -> str:
    """``message`` about ``item`` by its line and fields only: its own name, grants and
    client ids become ``<name>``, ``<publish>`` … and another entry's name becomes that
    entry's line, so no value of the export is printed (a swapped column may hold a
    password where a name belongs). Stored identities' names stay: they are the table's."""
    from iotauth.identities.migration import redact  # noqa: PLC0415

    record = item.record
    values = [("name", record.username)]
    values += [("publish", g) for g in record.publish]
    values += [("subscribe", g) for g in record.subscribe]
    values += [("client_ids", c) for c in record.client_ids]
    words = _NAME_LIKE.findall(message)
    for word in dict.fromkeys([*words, *(w.rstrip(".:@&-") for w in words)]):
        other = where.get(word)
        if other is not None and word != record.username:
            values.append((f"the name at {other}", word))
    return f"{item.where}: {redact(message, values)}"


def judge_import(
    store: DynamoDBStore, todo: list[Imported], stored: dict[str, dict[str, Any]]
) -> list[str]:
    """Every entry judged by :func:`judge_record` against the table's identities and the
    export's other entries, plus the client-id registry (from ``stored``); raises
    CommandError listing every refusal (nothing is written), else returns the
    ``--allow-broad`` warnings."""
    if not todo:
        return []
    roots = shared_roots_from_env(os.environ)
    mine = {item.record.username for item in todo}
    table = _table_candidates(store, [item.record for item in todo])
    current = [r for r in table if r.username not in mine]
    index = _Index([*current, *(item.record for item in todo)])
    errors: list[str] = []
    warnings: list[str] = []
    where = {item.record.username: item.where for item in todo}
    with progress(len(todo), "checking", every=progress_every(len(todo))) as bar:
        for item in todo:
            bar.advance()
            record = item.record
            try:
                others = Candidates(index.candidates(record), table.unnamed)
                found = judge_record(record, others, roots)
                warnings += [_unquoted(item, p, where) for p in found]
            except CommandError as exc:
                errors.append(_unquoted(item, str(exc), where))
                continue
            for client_id in record.allowed_client_ids():  # registry items without a record
                owner_item = stored.get(client_id_key(client_id))
                if owner_item is None:
                    continue
                owner = owner_item.get("owner", {}).get("S")
                if owner != record.username:
                    errors.append(  # the owner is a stored identity's name, not the file's
                        f"{item.where}: one of its client ids (its name, or one in "
                        f"client_ids) is already registered to identity {owner!r}"
                    )
    if errors:
        for line in errors[:50]:
            print(f"  {line}", file=sys.stderr)
        raise CommandError(
            f"{len(errors)} problem(s) (listed above) — refused as `devices add` would refuse "
            "them; nothing was written"
        )
    return warnings
