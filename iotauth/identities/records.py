"""Identity records: what the table holds about one identity, validated when written.

Contract: :class:`IdentityRecord` is one ``identity#<username>`` item (kinds ``secret``,
``password``, ``aliyun``), parsed by :meth:`~IdentityRecord.from_item` and written by
:meth:`~IdentityRecord.to_item`; :meth:`~IdentityRecord.validate` refuses at write time an
unsafe name, client id or grant, a duration out of range, grants that cannot fit the
authorizer's policy documents, or a broken topic rule (:meth:`~IdentityRecord.topic_problems`,
checked again by the authorizer). Keys: :func:`identity_key`, :func:`lockout_key`,
:func:`client_id_key`. Rules between records: :mod:`iotauth.identities.pairing`.

The one reason: the table may hold only what the authorizer can enforce, so a record is
refused when written, and its topic rules are checked again at connect.

Design: docs/design/identity-store.md
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Literal

from iotauth.access.names import (
    WEB_PREFIX,
    InvalidName,
    check_not_reserved,
    is_safe_client_id,
    validate_client_id,
    validate_username,
)
from iotauth.access.scoping import (
    ArnContext,
    PolicyTooLarge,
    Scope,
    grant_problem,
    policy_documents,
    shared_roots_from_env,
    validate_room,
)
from iotauth.identities.credentials import GENERATED_PREFIX, verifier_kind
from iotauth.wire import aliyun
from iotauth.wire.frozen import Frozen

__all__ = [
    "ALIYUN_TIMED_DISCONNECT_SECONDS",
    "CLIENT_ID_PREFIX",
    "IDENTITY_PREFIX",
    "LOCKOUT_PREFIX",
    "MAX_DURATION",
    "MIN_DURATION",
    "IdentityRecord",
    "InvalidRecord",
    "aliyun_namespaces",
    "bounded_session_seconds",
    "clamp_duration",
    "client_id_key",
    "identity_key",
    "lockout_key",
]

IDENTITY_PREFIX = "identity#"
LOCKOUT_PREFIX = "lockout#"
CLIENT_ID_PREFIX = "clientid#"
MIN_DURATION = 300
MAX_DURATION = 86400
MAX_CLIENT_IDS = 32
MAX_ROOMS = 8
MAX_MQTT_CLIENT_ID = 128  # IoT Core's limit on the client id of a connection
_MAX_DEVICE_SECRET = 128

Kind = Literal["secret", "password", "aliyun"]
Status = Literal["active", "disabled"]
KINDS: tuple[Kind, ...] = ("secret", "password", "aliyun")
STATUSES: tuple[Status, ...] = ("active", "disabled")

# The longest ARN context and client id a record's policy may ever be rendered with: a
# record that fits these fits every real connection.
_WORST_ARN = ArnContext(partition="aws-iso-b", region="ap-southeast-99", account="0" * 12)
_WORST_CLIENT_ID = "x" * MAX_MQTT_CLIENT_ID


class InvalidRecord(ValueError):
    """A record that may not be written, or a stored item that is not a valid record."""


def identity_key(username: str) -> str:
    return IDENTITY_PREFIX + username


def lockout_key(username: str) -> str:
    return LOCKOUT_PREFIX + username


def client_id_key(client_id: str) -> str:
    return CLIENT_ID_PREFIX + client_id


#: Product keys that would make ``/{pk}/{dn}/*`` cover other devices' topics: product
#: ``sys`` device ``X`` would own ``/sys/X/*``, the ``/sys/{pk}/{dn}`` topics of every
#: device of a product ``X``; likewise Aliyun's ``/ota/device/…/{pk}/{dn}``,
#: ``/shadow/…/{pk}/{dn}``, ``/ext/…`` and ``/broadcast/{pk}/…`` roots. (Real Aliyun
#: product keys are 11 characters.)
RESERVED_PRODUCT_KEYS = frozenset({"sys", "ota", "shadow", "ext", "broadcast"})


def aliyun_namespaces(product_key: str, device_name: str) -> tuple[str, ...]:
    """Aliyun's topic layout: ``/{pk}/{dn}/…`` and ``/sys/{pk}/{dn}/…``."""
    if product_key in RESERVED_PRODUCT_KEYS:
        raise InvalidName(f"product key {product_key!r} is reserved (its topics would overlap)")
    return (f"/{product_key}/{device_name}", f"/sys/{product_key}/{device_name}")


# Over 200 lines: one record's fields, validation and item form stay together (cold-start path).
class IdentityRecord(Frozen):
    """One identity as stored; immutable (``record.replace(...)`` makes a changed copy)."""

    __slots__ = (
        "allow_broad",
        "allow_no_timestamp",
        "any_client_id",
        "client_id_form",
        "client_ids",
        "created_at",
        "device_secret",
        "disconnect_after",
        "kind",
        "publish",
        "refresh_after",
        "retain",
        "rooms",
        "shared",
        "status",
        "subscribe",
        "updated_at",
        "username",
        "verifier",
    )
    _NOT_IN_REPR = frozenset({"verifier", "device_secret"})

    username: str
    kind: Kind
    status: Status
    verifier: str | None  # secret / password
    device_secret: str | None  # aliyun
    client_ids: tuple[str, ...]  # extra ids; aliyun: inner ids (before '|')
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    disconnect_after: int | None
    refresh_after: int | None
    allow_no_timestamp: bool  # aliyun: accept signatures without a timestamp
    created_at: int
    updated_at: int
    rooms: tuple[str, ...]  # shared rooms: publish <room>/<client id>, subscribe <room>/+
    allow_broad: bool  # the operator accepted grants that reach beyond its own topics
    any_client_id: bool  # aliyun: any safe client id it signs (MAC/serial convention)
    client_id_form: str | None  # aliyun: the '|…|' parameters its SDK sends (aliyun.py)
    retain: bool  # iot:RetainPublish on its own namespaces (scoping.Scope)
    shared: bool  # shared subscriptions ($share/<group>/…) within its own namespaces

    def __init__(  # noqa: PLR0917 — the field order of the record, as a dataclass had it
        self,
        username: str,
        kind: Kind,
        status: Status = "active",
        verifier: str | None = None,
        device_secret: str | None = None,
        client_ids: tuple[str, ...] = (),
        publish: tuple[str, ...] = (),
        subscribe: tuple[str, ...] = (),
        disconnect_after: int | None = None,
        refresh_after: int | None = None,
        allow_no_timestamp: bool = False,
        created_at: int = 0,
        updated_at: int = 0,
        rooms: tuple[str, ...] = (),
        allow_broad: bool = False,
        any_client_id: bool = False,
        client_id_form: str | None = None,
        retain: bool = False,
        shared: bool = False,
    ) -> None:
        self._init(
            username=username,
            kind=kind,
            status=status,
            verifier=verifier,
            device_secret=device_secret,
            client_ids=client_ids,
            publish=publish,
            subscribe=subscribe,
            disconnect_after=disconnect_after,
            refresh_after=refresh_after,
            allow_no_timestamp=allow_no_timestamp,
            created_at=created_at,
            updated_at=updated_at,
            rooms=rooms,
            allow_broad=allow_broad,
            any_client_id=any_client_id,
            client_id_form=client_id_form,
            retain=retain,
            shared=shared,
        )

    # -- what the identity may use --------------------------------------------------------
    @property
    def aliyun_device(self) -> tuple[str, str] | None:
        """(device_name, product_key) of an aliyun identity."""
        return aliyun.parse_username(self.username) if self.kind == "aliyun" else None

    def allowed_client_ids(self) -> tuple[str, ...]:
        """Client ids a password identity may connect with; inner ids for aliyun.

        An Aliyun device's default is ``productKey&deviceName`` (linkkit's), never the bare
        device name: that is another device's default client id (a device with that
        username, or the same device name in another product), and sharing a client id
        lets one identity disconnect the other.
        """
        device = self.aliyun_device
        if device is not None:
            device_name, product_key = device
            return tuple(dict.fromkeys((f"{product_key}&{device_name}", *self.client_ids)))
        return self.client_ids or (self.username,)

    def namespaces(self) -> tuple[str, ...]:
        device = self.aliyun_device
        if device is not None:
            return aliyun_namespaces(device[1], device[0])
        return (self.username,)

    def room_sender(self, client_id: str) -> str:
        """The sender level of this identity's room messages on a connection with
        ``client_id`` (for Aliyun: the inner id, before '|').

        It must be a client id registered to this identity alone (unique, see
        docs/design/identity-store.md): the connection's own when it is one of the record's, else
        (an Aliyun device on an unregistered id it was allowed to sign) its default id.
        """
        allowed = self.allowed_client_ids()
        return client_id if client_id in allowed else allowed[0]

    def scope_for(self, connect_client_id: str, *, sender: str | None = None) -> Scope:
        """The scope of one connection, whose (full) client id has been checked already;
        ``sender``: see :meth:`room_sender` (default: the connection's client id)."""
        if not is_safe_client_id(connect_client_id) and self.kind != "aliyun":
            raise InvalidName("unsafe client id")
        return Scope(
            client_ids=(connect_client_id,),
            namespaces=self.namespaces(),
            publish=self.publish,
            subscribe=self.subscribe,
            rooms=self.rooms,
            senders=(sender or self.room_sender(connect_client_id),) if self.rooms else (),
            retain=self.retain,
            shared=self.shared,
        )

    # -- topic rules (write time and run time) ------------------------------------------
    def check_topics(self, shared_roots: Sequence[str]) -> None:
        """Refuse (:class:`InvalidName`) a reserved name or a room outside the shared roots.

        These hold whatever ``allow_broad`` says: a device named like a shared root would
        own every room under it, and a room is where senders are proven.
        """
        device = self.aliyun_device
        if device is None:
            check_not_reserved(self.username, shared_roots)
        for room in self.rooms:
            validate_room(room, shared_roots)

    def topic_problems(
        self, shared_roots: Sequence[str], other_namespaces: Sequence[str] = ()
    ) -> list[str]:
        """Why each extra grant is broad (:func:`iotauth.access.scoping.grant_problem`)."""
        own = self.namespaces()
        problems = [
            grant_problem(
                grant,
                shared_roots=shared_roots,
                own_namespaces=own,
                other_namespaces=[ns for ns in other_namespaces if ns not in own],
            )
            for grant in dict.fromkeys((*self.publish, *self.subscribe))
        ]
        return [p for p in problems if p is not None]

    # -- validation at write time -------------------------------------------------------
    def validate(
        self,
        shared_roots: Sequence[str] | None = None,
        *,
        check_topics: bool = True,
    ) -> IdentityRecord:
        """Return self if it may be written, else raise :class:`InvalidRecord`.

        ``shared_roots``: the deployment's (default: ``IOTAUTH_SHARED_TOPIC_ROOTS`` or the
        template's default). ``check_topics=False`` skips the topic rules, for writes that
        change nothing they judge (disable, enable, rotate of a stored record).
        """
        try:
            self._validate()
            if check_topics:
                roots = shared_roots_from_env(os.environ) if shared_roots is None else shared_roots
                self.check_topics(roots)
                problems = self.topic_problems(roots)
                if problems and not self.allow_broad:
                    raise InvalidRecord(
                        "; ".join(problems) + " (pass --allow-broad to grant it anyway)"
                    )
        except (InvalidName, PolicyTooLarge) as exc:
            raise InvalidRecord(str(exc)) from None
        return self

    def _validate(self) -> None:
        if self.kind not in KINDS:
            raise InvalidRecord(f"unknown identity kind {self.kind!r}")
        if self.status not in ("active", "disabled"):
            raise InvalidRecord(f"unknown status {self.status!r}")
        if self.kind == "aliyun":
            if self.aliyun_device is None:
                raise InvalidRecord(
                    "an Aliyun identity is deviceName&productKey: device name 1-64 of letters, "
                    "digits and _ . @ : -, product key 1-32 letters and digits"
                )
            secret = self.device_secret
            if not secret or len(secret) > _MAX_DEVICE_SECRET or not secret.isprintable():
                raise InvalidRecord("a device secret is 1-128 printable characters")
            if self.verifier is not None:
                raise InvalidRecord("an Aliyun identity has no password verifier")
            for inner in self.client_ids:
                _validate_device_client_id(inner)
                if len(inner) > aliyun.MAX_CLIENT_ID:
                    raise InvalidRecord(f"an Aliyun client id has at most {aliyun.MAX_CLIENT_ID}")
            if self.client_id_form is not None:
                try:
                    aliyun.client_id_form(self.client_id_form)
                except ValueError as exc:
                    raise InvalidRecord(str(exc)) from None
        else:
            validate_username(self.username)
            if self.username.startswith(GENERATED_PREFIX):
                raise InvalidRecord(f"names starting with {GENERATED_PREFIX!r} are reserved")
            if self.verifier is None or verifier_kind(self.verifier) != self.kind:
                raise InvalidRecord(f"a {self.kind} identity needs a {self.kind} verifier")
            if self.device_secret is not None or self.allow_no_timestamp:
                raise InvalidRecord("only Aliyun identities have a device secret")
            if self.any_client_id or self.client_id_form is not None:
                raise InvalidRecord("only Aliyun identities sign their client ids")
            for client_id in self.client_ids:
                _validate_device_client_id(client_id)
        if len(self.client_ids) > MAX_CLIENT_IDS:
            raise InvalidRecord(f"at most {MAX_CLIENT_IDS} client ids")
        for name, value in (
            ("disconnect-after", self.disconnect_after),
            ("refresh-after", self.refresh_after),
        ):
            if value is not None and not MIN_DURATION <= value <= MAX_DURATION:
                raise InvalidRecord(f"{name} must be {MIN_DURATION}-{MAX_DURATION} seconds")
        if len(self.rooms) > MAX_ROOMS:
            raise InvalidRecord(f"at most {MAX_ROOMS} rooms")
        # Grants and namespaces are validated by Scope; the size by rendering the worst case.
        policy_documents(self.scope_for(_WORST_CLIENT_ID, sender=_WORST_CLIENT_ID), _WORST_ARN)

    # -- DynamoDB items (low-level attribute values) ------------------------------------
    def to_item(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "pk": {"S": identity_key(self.username)},
            "kind": {"S": self.kind},
            "status": {"S": self.status},
            "clientIds": {"L": [{"S": c} for c in self.client_ids]},
            "publish": {"L": [{"S": t} for t in self.publish]},
            "subscribe": {"L": [{"S": t} for t in self.subscribe]},
            "createdAt": {"N": str(self.created_at)},
            "updatedAt": {"N": str(self.updated_at)},
        }
        if self.verifier is not None:
            item["verifier"] = {"S": self.verifier}
        if self.device_secret is not None:
            item["deviceSecret"] = {"S": self.device_secret}
        if self.disconnect_after is not None:
            item["disconnectAfter"] = {"N": str(self.disconnect_after)}
        if self.refresh_after is not None:
            item["refreshAfter"] = {"N": str(self.refresh_after)}
        if self.allow_no_timestamp:
            item["allowNoTimestamp"] = {"BOOL": True}
        if self.rooms:
            item["rooms"] = {"L": [{"S": r} for r in self.rooms]}
        if self.allow_broad:
            item["allowBroad"] = {"BOOL": True}
        if self.any_client_id:
            item["anyClientId"] = {"BOOL": True}
        if self.client_id_form is not None:
            item["clientIdForm"] = {"S": self.client_id_form}
        if self.retain:
            item["retain"] = {"BOOL": True}
        if self.shared:
            item["shared"] = {"BOOL": True}
        return item

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> IdentityRecord:
        """Parse a stored item; raises :class:`InvalidRecord` when it is not a record."""
        try:
            key = _s(item["pk"])
            if not key.startswith(IDENTITY_PREFIX):
                raise InvalidRecord("not an identity item")
            kind = _s(item["kind"])
            status = _s(item["status"])
            if kind not in KINDS or status not in STATUSES:
                raise InvalidRecord("unknown kind or status")
            return cls(
                username=key[len(IDENTITY_PREFIX) :],
                kind=kind,
                status=status,
                verifier=_s(item["verifier"]) if "verifier" in item else None,
                device_secret=_s(item["deviceSecret"]) if "deviceSecret" in item else None,
                client_ids=_strings(item.get("clientIds")),
                publish=_strings(item.get("publish")),
                subscribe=_strings(item.get("subscribe")),
                disconnect_after=_n(item["disconnectAfter"]) if "disconnectAfter" in item else None,
                refresh_after=_n(item["refreshAfter"]) if "refreshAfter" in item else None,
                allow_no_timestamp=item.get("allowNoTimestamp", {}).get("BOOL") is True,
                created_at=_n(item["createdAt"]) if "createdAt" in item else 0,
                updated_at=_n(item["updatedAt"]) if "updatedAt" in item else 0,
                rooms=_strings(item.get("rooms")),
                allow_broad=item.get("allowBroad", {}).get("BOOL") is True,
                any_client_id=item.get("anyClientId", {}).get("BOOL") is True,
                client_id_form=_s(item["clientIdForm"]) if "clientIdForm" in item else None,
                retain=item.get("retain", {}).get("BOOL") is True,
                shared=item.get("shared", {}).get("BOOL") is True,
            )
        except InvalidRecord:
            raise
        except (KeyError, TypeError, ValueError, AttributeError):
            raise InvalidRecord("malformed identity item") from None

    def public_view(self) -> dict[str, Any]:
        """What `iotauth devices list` shows: everything but the verifier and the secret."""
        view: dict[str, Any] = {
            "username": self.username,
            "kind": self.kind,
            "status": self.status,
            "clientIds": list(self.allowed_client_ids()),
            "publish": list(self.publish),
            "subscribe": list(self.subscribe),
            "rooms": list(self.rooms),
            "allowBroad": self.allow_broad,
            "retain": self.retain,
            "shared": self.shared,
        }
        if self.disconnect_after is not None:
            view["disconnectAfterInSeconds"] = self.disconnect_after
        if self.refresh_after is not None:
            view["refreshAfterInSeconds"] = self.refresh_after
        if self.kind == "aliyun":
            view["allowNoTimestamp"] = self.allow_no_timestamp
            view["anyClientId"] = self.any_client_id
            view["clientIdForm"] = self.client_id_form or aliyun.DEFAULT_FORM
        return view


# How long a session on time-limited (timestamped Aliyun) credentials lasts unless its
# record says otherwise; revocation takes effect at the latest then.
ALIYUN_TIMED_DISCONNECT_SECONDS = 3600


def clamp_duration(value: int) -> int:
    """A session or refresh time within IoT Core's accepted range (300–86400 s)."""
    return min(MAX_DURATION, max(MIN_DURATION, value))


def bounded_session_seconds(record: IdentityRecord, deployment_disconnect_seconds: int) -> int:
    """How long a session whose full client id revocation cannot name lasts (never refreshed).

    The one rule for the authorizer's answer and for what ``devices disable`` promises
    (:mod:`iotauth.identities.revocation`): the record's ``disconnectAfter``, else one hour
    or the deployment's default if that is shorter.
    """
    return clamp_duration(
        record.disconnect_after
        or min(ALIYUN_TIMED_DISCONNECT_SECONDS, deployment_disconnect_seconds)
    )


def _validate_device_client_id(client_id: str) -> None:
    validate_client_id(client_id)
    if client_id.startswith(WEB_PREFIX):
        # Browser users' client ids (names.web_username): a device holding one could
        # disconnect that user.
        raise InvalidName(f"client ids starting with {WEB_PREFIX!r} are reserved for web users")


def _s(value: Any) -> str:
    text = value["S"]
    if not isinstance(text, str):
        raise TypeError("expected a string")
    return text


def _n(value: Any) -> int:
    return int(value["N"])


def _strings(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    return tuple(_s(v) for v in value["L"])
