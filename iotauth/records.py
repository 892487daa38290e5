"""Identity records: what the table holds about one identity, validated when written.

Table layout (shared with the template and the local gateway): partition key ``pk`` (S)
only; an identity is ``pk = "identity#<username>"``; its lockout counter is
``pk = "lockout#<username>"`` (see :mod:`iotauth.store`).

Three kinds of identity:

- ``secret``: a generated secret, verified with a keyed hash (:mod:`iotauth.credentials`);
- ``password``: a chosen password, verified with scrypt;
- ``aliyun``: an Alibaba-Cloud-style device (REFERENCE §7), username
  ``deviceName&productKey``; the device secret itself is stored (the HMAC needs it; the
  table is encrypted with KMS) and is never shown again.

A record is refused at write time (:meth:`IdentityRecord.validate`) when any name, client id
or grant is unsafe, a duration is out of range, or its grants cannot fit in the
authorizer's policy documents for the longest possible client id and ARN.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from iotauth import aliyun
from iotauth.credentials import GENERATED_PREFIX, verifier_kind
from iotauth.names import (
    WEB_PREFIX,
    InvalidName,
    is_safe_client_id,
    validate_client_id,
    validate_username,
)
from iotauth.scoping import ArnContext, PolicyTooLarge, Scope, policy_documents

__all__ = [
    "IDENTITY_PREFIX",
    "LOCKOUT_PREFIX",
    "MAX_DURATION",
    "MIN_DURATION",
    "IdentityRecord",
    "InvalidRecord",
    "aliyun_namespaces",
    "identity_key",
    "lockout_key",
]

IDENTITY_PREFIX = "identity#"
LOCKOUT_PREFIX = "lockout#"
MIN_DURATION = 300
MAX_DURATION = 86400
MAX_CLIENT_IDS = 32
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


#: Product keys that would make ``/{pk}/{dn}/*`` cover other devices' topics: product
#: ``sys`` device ``X`` would own ``/sys/X/*``, the ``/sys/{pk}/{dn}`` topics of every
#: device of a product ``X``. (Real Aliyun product keys are 11 characters.)
RESERVED_PRODUCT_KEYS = frozenset({"sys"})


def aliyun_namespaces(product_key: str, device_name: str) -> tuple[str, ...]:
    """Aliyun's topic layout: ``/{pk}/{dn}/…`` and ``/sys/{pk}/{dn}/…``."""
    if product_key in RESERVED_PRODUCT_KEYS:
        raise InvalidName(f"product key {product_key!r} is reserved (its topics would overlap)")
    return (f"/{product_key}/{device_name}", f"/sys/{product_key}/{device_name}")


@dataclass(frozen=True, slots=True)
class IdentityRecord:
    username: str
    kind: Kind
    status: Status = "active"
    verifier: str | None = field(default=None, repr=False)  # secret / password
    device_secret: str | None = field(default=None, repr=False)  # aliyun
    client_ids: tuple[str, ...] = ()  # extra ids; aliyun: inner ids (before '|')
    publish: tuple[str, ...] = ()
    subscribe: tuple[str, ...] = ()
    disconnect_after: int | None = None
    refresh_after: int | None = None
    allow_no_timestamp: bool = False  # aliyun: accept signatures without a timestamp
    created_at: int = 0
    updated_at: int = 0

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

    def scope_for(self, connect_client_id: str) -> Scope:
        """The scope of one connection, whose (full) client id has been checked already."""
        if not is_safe_client_id(connect_client_id) and self.kind != "aliyun":
            raise InvalidName("unsafe client id")
        return Scope(
            client_ids=(connect_client_id,),
            namespaces=self.namespaces(),
            publish=self.publish,
            subscribe=self.subscribe,
        )

    # -- validation at write time -------------------------------------------------------
    def validate(self) -> IdentityRecord:
        """Return self if it may be written, else raise :class:`InvalidRecord`."""
        try:
            self._validate()
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
        else:
            validate_username(self.username)
            if self.username.startswith(GENERATED_PREFIX):
                raise InvalidRecord(f"names starting with {GENERATED_PREFIX!r} are reserved")
            if self.verifier is None or verifier_kind(self.verifier) != self.kind:
                raise InvalidRecord(f"a {self.kind} identity needs a {self.kind} verifier")
            if self.device_secret is not None or self.allow_no_timestamp:
                raise InvalidRecord("only Aliyun identities have a device secret")
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
        # Grants and namespaces are validated by Scope; the size by rendering the worst case.
        policy_documents(self.scope_for(_WORST_CLIENT_ID), _WORST_ARN)

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
        }
        if self.disconnect_after is not None:
            view["disconnectAfterInSeconds"] = self.disconnect_after
        if self.refresh_after is not None:
            view["refreshAfterInSeconds"] = self.refresh_after
        if self.kind == "aliyun":
            view["allowNoTimestamp"] = self.allow_no_timestamp
        return view


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
