"""Which MQTT client ids an identity may connect with (pure; the policy names them too).

Contract: :func:`client_id_allowed` — one of the record's own client ids, safe, and not a
browser user's (``web-…``); :func:`any_aliyun_client_id_allowed` — the unregistered inner
ids an Aliyun device allowed ``any_client_id`` may sign. The one reason that matters: a
client id that is not the identity's could never widen access anyway (the policy names only
the identity's own client ids, as literals), but two identities on one id could kick each
other off.

Design: docs/design/order-of-checks.md
"""

from __future__ import annotations

from iotauth.access.names import WEB_PREFIX, is_safe_client_id
from iotauth.identities.records import IdentityRecord
from iotauth.wire import aliyun

__all__ = ["any_aliyun_client_id_allowed", "client_id_allowed", "default_aliyun_client_id"]


def client_id_allowed(record: IdentityRecord, client_id: str) -> bool:
    """``client_id`` is one of the record's, safe, and not a browser user's (``web-…``)."""
    return (
        client_id in record.allowed_client_ids()
        and is_safe_client_id(client_id)
        and not client_id.startswith(WEB_PREFIX)
    )


def default_aliyun_client_id(username: str) -> str | None:
    """An Aliyun device's default client id, ``pk&dn``, from its username ``dn&pk``."""
    device = aliyun.parse_username(username)
    return f"{device[1]}&{device[0]}" if device is not None else None


def any_aliyun_client_id_allowed(
    record: IdentityRecord, inner: str, any_client_id_products: frozenset[str]
) -> bool:
    """An unregistered inner id an Aliyun device may sign (its MAC or serial number).

    Only when its record (or its product, deployment-wide) allows it; never a browser
    user's ``web-…`` id, an unsafe id, or one with ``&`` — the ``pk&dn`` shape of every
    Aliyun device's default client id, so none can take another's — nor (checked by the
    caller, from the same read as the record) a client id registered to any identity.
    """
    device = record.aliyun_device
    if device is None or not (record.any_client_id or device[1] in any_client_id_products):
        return False
    return (
        is_safe_client_id(inner)
        and len(inner) <= aliyun.MAX_CLIENT_ID
        and not inner.startswith(WEB_PREFIX)
        and "&" not in inner
    )
