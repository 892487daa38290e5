"""Identities from other brokers' exports, validated before anything is written (pure).

Contract: :func:`parse_export` turns the text of one export (``mosquitto``, ``csv``,
``json``, ``emqx-csv``, ``emqx-json``; EMQX's algorithm given as :class:`EmqxHash`) into
:class:`IdentityRecord` s ready for the table, or into a list of errors, one per bad entry
by its line or row and field names — all or nothing. Users keep their passwords: a broker's
hash becomes a verifier the authorizer checks as it is; argon2id and bcrypt are
:class:`UnsupportedHash` (or skipped).

The one reason: an error never quotes a value of the entry — with swapped columns a name
may be a password.

Design: docs/design/import.md (user guide: docs/migrating.md)
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from iotauth.access.names import InvalidName, validate_username
from iotauth.identities.credentials import (
    GENERATED_PREFIX,
    InvalidPassword,
    hash_chosen_password,
    imported_verifier,
    normalise_verifier,
)
from iotauth.identities.records import IdentityRecord, InvalidRecord

__all__ = [
    "FORMATS",
    "EmqxHash",
    "ImportProblem",
    "Imported",
    "Skipped",
    "UnsupportedHash",
    "parse_export",
]

FORMATS = ("mosquitto", "csv", "json", "emqx-csv", "emqx-json")
MAX_ENTRIES = 100_000
_MAX_ERRORS = 50


class ImportProblem(ValueError):
    """The export cannot be imported; ``errors`` has one safe line per bad entry."""

    def __init__(self, errors: list[str]) -> None:
        shown = errors[:_MAX_ERRORS]
        more = len(errors) - len(shown)
        super().__init__("; ".join(shown) + (f"; … and {more} more" if more else ""))
        self.errors = errors


@dataclass(frozen=True, slots=True)
class EmqxHash:
    """The EMQX authenticator's ``password_hash_algorithm``."""

    name: str  # sha256 | sha512 | pbkdf2
    salt_position: str | None = None  # prefix | suffix | disable (sha256/sha512)
    mac_fun: str | None = None  # sha256 | sha512 (pbkdf2)
    iterations: int | None = None  # (pbkdf2)

    def check(self) -> None:
        if self.name in ("sha256", "sha512"):
            if self.salt_position not in ("prefix", "suffix", "disable"):
                raise ImportProblem([f"EMQX {self.name}: give the salt position"])
        elif self.name == "pbkdf2":
            if self.mac_fun not in ("sha256", "sha512") or not self.iterations:
                raise ImportProblem(["EMQX pbkdf2: give the mac function and the iterations"])
        else:
            raise ImportProblem(
                [
                    f"EMQX hash {self.name!r} cannot be verified here: sha256, sha512 and "
                    "pbkdf2 can (bcrypt needs a library; md5/sha1/plain are refused)"
                ]
            )


@dataclass(frozen=True, slots=True)
class Imported:
    record: IdentityRecord
    where: str  # "line 3", "row 2", "entry 1"
    scheme: str  # what the verifier is, for the summary
    notes: tuple[str, ...] = field(default=())
    # A plaintext ``secret`` column's value, to tell on a re-run whether a stored identity
    # is this entry (its scrypt salt differs every run); never shown.
    secret: bytes | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class Skipped:
    """An entry left out because its hash cannot be verified here (``skipped=[]``)."""

    where: str
    name: str
    scheme: str  # "argon2id", "bcrypt"


UNSUPPORTED_HINT = (
    "iotauth's authorizer cannot verify it (pure Python, no native library on its cold "
    "path) and hashes are one-way: give this user a new password or generated secret "
    "(docs/migrating.md#argon2id-and-bcrypt); --skip-unsupported imports the rest"
)


class UnsupportedHash(ValueError):
    """A well-known hash the authorizer cannot verify (argon2, bcrypt)."""

    def __init__(self, scheme: str) -> None:
        super().__init__(f"{scheme} hash: {UNSUPPORTED_HINT}")
        self.scheme = scheme


_BCRYPT = re.compile(r"\$2[abxy]\$\d\d\$[./A-Za-z0-9]{53}")


def _unsupported_scheme(text: str) -> str | None:
    for prefix in ("argon2id", "argon2i", "argon2d"):
        if text.startswith(f"${prefix}$"):
            return prefix
    if _BCRYPT.fullmatch(text):
        return "bcrypt"
    return None


def _b64std(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def _mosquitto_verifier(text: str) -> tuple[str, str]:
    """(verifier, scheme) for a Mosquitto ``$6$``/``$7$`` hash; ValueError otherwise."""
    parts = text.split("$")
    try:
        if len(parts) == 4 and parts[:2] == ["", "6"]:
            salt, digest = _b64std(parts[2]), _b64std(parts[3])
            return imported_verifier("salted-sha512", "suffix", salt, digest), "mosquitto $6$"
        if len(parts) == 5 and parts[:2] == ["", "7"] and parts[2].isdigit():
            salt, digest = _b64std(parts[3]), _b64std(parts[4])
            verifier = imported_verifier("pbkdf2-sha512", f"i={int(parts[2])}", salt, digest)
            return verifier, f"mosquitto $7$ ({int(parts[2])} iterations)"
    except (binascii.Error, ValueError) as exc:
        if isinstance(exc, InvalidPassword):
            raise ValueError(str(exc)) from None
        raise ValueError("malformed Mosquitto hash") from None
    scheme = _unsupported_scheme(text)
    if scheme is not None:
        raise UnsupportedHash(scheme)
    if text.startswith("$"):
        raise ValueError("hash: not a $6$ or $7$ Mosquitto hash (nor argon2id or bcrypt)")
    raise ValueError(
        "hash: not hashed (a plaintext password file? hash it with `mosquitto_passwd -U` "
        "first; with Mosquitto 2.1 add `-H sha512-pbkdf2`: its default, argon2id, cannot be "
        "imported)"
    )


def _words(value: Any) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        return tuple(value.split())
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ValueError("grants and client ids are strings or lists of strings")


def _record(  # noqa: PLR0917 — private; one call site
    name: str,
    kind: str,
    verifier: str,
    now: int,
    grants: Mapping[str, tuple[str, ...]],
    allow_broad: bool,
) -> IdentityRecord:
    return IdentityRecord(
        username=name,
        kind=kind,  # type: ignore[arg-type]
        verifier=verifier,
        client_ids=grants.get("client_ids", ()),
        publish=grants.get("publish", ()),
        subscribe=grants.get("subscribe", ()),
        allow_broad=allow_broad,
        created_at=now,
        updated_at=now,
    ).validate()


def _from_mosquitto(text: str) -> Iterable[tuple[str, str, dict[str, Any]]]:
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, hashed = line.partition(":")
        yield f"line {number}", name if sep else "", {"hash": hashed if sep else None}


def _from_csv(text: str) -> Iterable[tuple[str, str, dict[str, Any]]]:
    reader = csv.DictReader(io.StringIO(text))
    for number, row in enumerate(reader, 2):  # line 1 is the header
        yield f"row {number}", (row.get("name") or row.get("user_id") or "").strip(), dict(row)


def _from_json(text: str) -> Iterable[tuple[str, str, dict[str, Any]]]:
    data = json.loads(text)
    if not isinstance(data, list):
        raise ValueError("a JSON export is an array of objects")
    for number, entry in enumerate(data, 1):
        if not isinstance(entry, dict):
            yield f"entry {number}", "", {}
            continue
        name = entry.get("name", entry.get("user_id", ""))
        yield f"entry {number}", name if isinstance(name, str) else "", entry


def _generic(entry: dict[str, Any]) -> tuple[str, str, str]:
    """(kind, verifier, scheme) from a generic row: ``hash`` xor ``secret``."""
    hashed, secret = entry.get("hash") or None, entry.get("secret") or None
    if (hashed is None) == (secret is None):
        raise ValueError("give exactly one of hash and secret")
    if secret is not None:
        if not isinstance(secret, str):
            raise ValueError("secret is a string")
        return "password", hash_chosen_password(secret.encode("utf-8")), "secret (scrypt)"
    if isinstance(hashed, str) and _unsupported_scheme(hashed) is not None:
        raise UnsupportedHash(_unsupported_scheme(hashed) or "")
    if not isinstance(hashed, str):
        raise ValueError("hash is a string")
    if hashed.startswith("$"):
        verifier, scheme = _mosquitto_verifier(hashed)
        return "password", verifier, scheme
    if hashed.partition("$")[0] not in _VERIFIER_SCHEMES:
        raise ValueError("hash is neither a Mosquitto $6$/$7$ hash nor an iotauth verifier")
    try:  # within the authorizer's bounds, spelled one way; never marked issued
        kind, verifier = normalise_verifier(hashed)
    except InvalidPassword as exc:
        raise ValueError(f"hash: {exc}") from None
    return kind, verifier, f"iotauth {verifier.split('$', 1)[0]}"


_VERIFIER_SCHEMES = frozenset(
    {"hmac-sha256", "scrypt", "salted-sha256", "salted-sha512", "pbkdf2-sha256", "pbkdf2-sha512"}
)


def _emqx(entry: dict[str, Any], algorithm: EmqxHash) -> tuple[str, str, str]:
    hashed, salt = entry.get("password_hash"), entry.get("salt") or ""
    if not isinstance(hashed, str) or not hashed or not isinstance(salt, str):
        raise ValueError("password_hash (hex) is required, salt is a string")
    try:
        digest = bytes.fromhex(hashed)
    except ValueError:
        raise ValueError("password_hash is not hex") from None
    salt_bytes = salt.encode("utf-8")  # EMQX uses the salt string as it is
    if algorithm.name == "pbkdf2":
        assert algorithm.mac_fun is not None and algorithm.iterations is not None
        scheme = f"pbkdf2-{algorithm.mac_fun}"
        verifier = imported_verifier(scheme, f"i={algorithm.iterations}", salt_bytes, digest)
        return "password", verifier, f"emqx {scheme} ({algorithm.iterations} iterations)"
    position = {"prefix": "prefix", "suffix": "suffix", "disable": "none"}[
        algorithm.salt_position or ""
    ]
    verifier = imported_verifier(f"salted-{algorithm.name}", position, salt_bytes, digest)
    return "password", verifier, f"emqx {algorithm.name} (salt {position})"


def _convert(  # noqa: PLR0917 — private; one call site
    fmt: str,
    where: str,
    name: str,
    entry: dict[str, Any],
    now: int,
    publish: tuple[str, ...],
    subscribe: tuple[str, ...],
    emqx: EmqxHash | None,
    *,
    allow_broad: bool,
) -> Imported:
    notes: list[str] = []
    grants: dict[str, tuple[str, ...]] = {}
    if fmt == "mosquitto":
        if not entry.get("hash"):
            raise ValueError("no hash (expected name:$7$…)")
        verifier, scheme = _mosquitto_verifier(entry["hash"])
        kind = "password"
    elif fmt in ("csv", "json"):
        kind, verifier, scheme = _generic(entry)
        grants = {key: _words(entry.get(key)) for key in ("client_ids", "publish", "subscribe")}
    else:
        assert emqx is not None
        kind, verifier, scheme = _emqx(entry, emqx)
        superuser = entry.get("is_superuser")
        if superuser is True or str(superuser).lower() == "true":
            notes.append("EMQX superuser: imported as an ordinary identity")
    grants["publish"] = tuple(dict.fromkeys((*grants.get("publish", ()), *publish)))
    grants["subscribe"] = tuple(dict.fromkeys((*grants.get("subscribe", ()), *subscribe)))
    record = _record(name, kind, verifier, now, grants, allow_broad)
    secret = entry.get("secret") if fmt in ("csv", "json") else None
    plain = secret.encode("utf-8") if isinstance(secret, str) and secret else None
    return Imported(record, where, scheme, tuple(notes), secret=plain)


def entry_values(name: str, entry: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(field, value) for every string of an entry, and every word of each: what an error
    about it may never quote (a swapped column may hold a password where a name, a grant or
    a client id belongs)."""
    values: list[tuple[str, str]] = [("name", name)] if name else []
    for key, value in entry.items():
        items = value if isinstance(value, list) else [value]
        values += [(str(key), v) for v in items if isinstance(v, str) and v]
        if isinstance(value, str):
            values += [(str(key), word) for word in value.split()]
    return values


def redact(message: str, values: Iterable[tuple[str, str]]) -> str:
    """``message`` with every value replaced by ``<field>``: quoted (``'…'``, as the rules
    quote them) or standing alone (``bob/…``), never inside a longer word (a name
    ``plain`` leaves "plaintext" alone). Should one still be in it, the reason is withheld
    and only the fields are named."""
    values = sorted(values, key=lambda kv: -len(kv[1]))
    for key, value in values:
        message = message.replace(repr(value), f"<{key}>").replace(ascii(value), f"<{key}>")
        message = _standing_alone(value).sub(f"<{key}>", message)
    leaks = [key for key, value in values if _standing_alone(value).search(message)]
    if leaks:
        fields = ", ".join(dict.fromkeys(leaks))
        return f"invalid entry (its reason would quote a value: check the field(s) {fields})"
    return message


def _standing_alone(value: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![A-Za-z0-9_]){re.escape(value)}(?![A-Za-z0-9_])")


def is_showable_name(name: str) -> bool:
    """Whether ``name`` may be printed as a name: a valid identity name that is not shaped
    like a generated secret (a listing of skipped entries; never in an error)."""
    try:
        validate_username(name)
    except InvalidName:
        return False
    return not name.startswith(GENERATED_PREFIX)


def parse_export(
    text: str,
    fmt: str,
    *,
    now: int,
    publish: tuple[str, ...] = (),
    subscribe: tuple[str, ...] = (),
    emqx: EmqxHash | None = None,
    allow_broad: bool = False,
    skipped: list[Skipped] | None = None,
) -> list[Imported]:
    """Every identity of the export, or :class:`ImportProblem` listing every bad entry.

    ``publish``/``subscribe`` are added to every identity (e.g. a broadcast topic).
    ``allow_broad``: the records keep it, as ``devices add --allow-broad`` does. Each record
    is validated on its own here; its pairings with other identities (the table's and the
    export's) are the caller's to judge (``devices import`` does, like ``devices add``).
    ``skipped``: when given, entries whose hash cannot be verified here (argon2, bcrypt)
    are appended to it instead of being errors, so the rest can be imported.
    """
    if fmt not in FORMATS:
        raise ImportProblem([f"unknown format {fmt!r} (one of {', '.join(FORMATS)})"])
    if fmt.startswith("emqx"):
        if emqx is None:
            raise ImportProblem(["an EMQX export needs its hash algorithm (--emqx-hash …)"])
        emqx.check()
    reader = {
        "mosquitto": _from_mosquitto,
        "csv": _from_csv,
        "json": _from_json,
        "emqx-csv": _from_csv,
        "emqx-json": _from_json,
    }[fmt]
    text = text.removeprefix("\ufeff")  # a byte-order mark, as spreadsheet exports write it
    try:
        entries = list(reader(text))
    except (ValueError, csv.Error) as exc:
        raise ImportProblem([f"unreadable {fmt} export: {type(exc).__name__}"]) from None
    if len(entries) > MAX_ENTRIES:
        raise ImportProblem([f"at most {MAX_ENTRIES} identities per import"])
    if not entries:
        raise ImportProblem(["the export holds no identities"])

    imported: list[Imported] = []
    errors: list[str] = []
    seen: dict[str, str] = {}
    for where, name, entry in entries:
        if not name:
            errors.append(f"{where}: no name")
            continue
        if name in seen:
            errors.append(f"{where}: its name appears again (first at {seen[name]})")
            continue
        seen[name] = where
        try:
            imported.append(
                _convert(
                    fmt, where, name, entry, now, publish, subscribe, emqx, allow_broad=allow_broad
                )
            )
        except UnsupportedHash as exc:
            if skipped is not None:
                skipped.append(Skipped(where, name, exc.scheme))
            else:
                errors.append(f"{where}: {exc}")
        except (ValueError, InvalidRecord, InvalidName, InvalidPassword) as exc:
            # By line and field only: no value of the entry (see redact).
            errors.append(f"{where}: {redact(str(exc), entry_values(name, entry))}")
    if errors:
        raise ImportProblem(errors)
    return imported
