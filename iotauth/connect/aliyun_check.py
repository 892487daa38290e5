"""The authorizer's checks of an Aliyun-signed connect: signature, client id, timestamp.

Contract: :func:`verify_signature` costs one HMAC whatever the record (a dummy key when
there is no Aliyun record) and is True only for the right signature of an Aliyun record;
:func:`refusal` runs the checks that follow a verified signature, in the authorizer's
order, and returns the denial reason (None: none) and the room sender level. The one reason
that matters: the timestamp is the only signed parameter that limits a password's life, so
a timestamped password is a bearer credential within the skew window and its session is
bounded, never refreshed.

Design: docs/design/order-of-checks.md (Aliyun securemode and timestamps), docs/design/aliyun.md
"""

from __future__ import annotations

import hmac

from iotauth.connect.client_ids import any_aliyun_client_id_allowed, client_id_allowed
from iotauth.connect.event import ConnectRequest
from iotauth.identities.records import MAX_MQTT_CLIENT_ID, IdentityRecord
from iotauth.wire import aliyun

__all__ = ["SECUREMODES", "refusal", "timestamp_ok", "verify_signature"]

_DUMMY_ALIYUN_SECRET = b"\x00" * 32
# Aliyun's connect modes (REFERENCE §7): 2 = TLS / wss, 3 = TCP / ws.
SECUREMODES = frozenset({"2", "3"})


def verify_signature(
    request: ConnectRequest, parsed: aliyun.AliyunClientId, record: IdentityRecord | None
) -> bool:
    """One HMAC whatever the record; True only for the right signature of an aliyun record."""
    assert request.username is not None and request.password is not None
    device = aliyun.parse_username(request.username)
    assert device is not None
    device_name, product_key = device
    secret = record.device_secret if record is not None and record.kind == "aliyun" else None
    real = secret is not None
    key = secret.encode("utf-8") if secret is not None else _DUMMY_ALIYUN_SECRET
    content = aliyun.sign_content(parsed.client_id, device_name, product_key, parsed.timestamp)
    digest = hmac.new(key, content.encode("utf-8"), aliyun.SIGN_METHODS[parsed.signmethod])
    presented = request.password.lower()
    return hmac.compare_digest(digest.hexdigest().encode("ascii"), presented) and real


def timestamp_ok(timestamp: str, now: float, max_skew: int) -> bool:
    """At most 10 digits: seconds (the linkkit SDK's); longer: milliseconds (documented)."""
    if not timestamp.isdigit() or len(timestamp) > 16:
        return False
    value = int(timestamp)
    seconds = value if len(timestamp) <= 10 else value / 1000
    return abs(now - seconds) <= max_skew


def refusal(  # noqa: PLR0917 — one caller, in the order of its checks
    request: ConnectRequest,
    aliyun_id: aliyun.AliyunClientId,
    record: IdentityRecord,
    client_id_owner: str | None,
    now: float,
    max_skew_seconds: int,
    any_client_id_products: frozenset[str],
) -> tuple[str | None, str | None]:
    """After a verified signature: (the denial reason or None, the room sender level)."""
    client_id = request.client_id
    assert client_id is not None
    inner = aliyun_id.client_id
    if not (
        client_id_allowed(record, inner)
        or (
            any_aliyun_client_id_allowed(record, inner, any_client_id_products)
            and client_id_owner is None  # not another identity's registered id
        )
    ):
        return "client-id-not-allowed", None
    if len(client_id) > MAX_MQTT_CLIENT_ID:
        return "malformed-client-id", None
    try:
        canonical = aliyun.canonical_client_id(
            inner,
            form=record.client_id_form,
            tls="tls" in request.protocols,
            signmethod=aliyun_id.signmethod,
            timestamp=aliyun_id.timestamp,
        )
    except ValueError:
        return "invalid-record", None
    if client_id != canonical:  # one spelling per signature (aliyun.py notes)
        return "client-id-not-canonical", None
    sender = record.room_sender(inner)
    if aliyun_id.timestamp is None:
        if not record.allow_no_timestamp:
            return "timestamp-missing", sender
    elif not timestamp_ok(aliyun_id.timestamp, now, max_skew_seconds):
        return "timestamp-out-of-range", sender
    return None, sender
