"""Alibaba Cloud IoT MQTT signing (REFERENCE §7), shared by the authorizer and the signer.

- ``mqttClientId = clientId + "|securemode=<m>,signmethod=<alg>[,timestamp=<ts>]|"``
- ``mqttUsername = deviceName + "&" + productKey``
- ``mqttPassword = hex(HMAC_alg(deviceSecret, content))`` where content concatenates
  ``key + value`` for clientId, deviceName, productKey and (when given) timestamp, sorted
  by key. Other ``|…|`` parameters are not signed.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

__all__ = [
    "SIGN_METHODS",
    "AliyunClientId",
    "parse_mqtt_client_id",
    "parse_username",
    "sign",
    "sign_content",
]

SIGN_METHODS = {
    "hmacsha1": hashlib.sha1,
    "hmacsha256": hashlib.sha256,
    "hmacmd5": hashlib.md5,
}
MAX_CLIENT_ID = 64

_PARAM = re.compile(r"[A-Za-z0-9_]{1,32}=[A-Za-z0-9_.-]{1,64}")
_PRODUCT_KEY = re.compile(r"[A-Za-z0-9]{1,32}")
_DEVICE_NAME = re.compile(r"[A-Za-z0-9_.@:-]{1,64}")


def sign_content(client_id: str, device_name: str, product_key: str, timestamp: str | None) -> str:
    pairs = {"clientId": client_id, "deviceName": device_name, "productKey": product_key}
    if timestamp is not None:
        pairs["timestamp"] = timestamp
    return "".join(k + pairs[k] for k in sorted(pairs))


def sign(
    device_secret: str | bytes,
    *,
    client_id: str,
    device_name: str,
    product_key: str,
    timestamp: str | None,
    signmethod: str = "hmacsha1",
) -> str:
    """The lowercase-hex MQTT password of an Aliyun device."""
    digest = SIGN_METHODS.get(signmethod)
    if digest is None:
        raise ValueError(f"unknown signmethod {signmethod!r}; use one of {sorted(SIGN_METHODS)}")
    key = device_secret.encode("utf-8") if isinstance(device_secret, str) else device_secret
    content = sign_content(client_id, device_name, product_key, timestamp)
    return hmac.new(key, content.encode("utf-8"), digest).hexdigest()


@dataclass(frozen=True, slots=True)
class AliyunClientId:
    client_id: str  # the part before '|': what the device signed
    securemode: str | None
    signmethod: str
    timestamp: str | None
    params: tuple[tuple[str, str], ...]


def parse_mqtt_client_id(mqtt_client_id: str) -> AliyunClientId | None:
    """Split ``id|k=v,k=v|``; None when it is not a well-formed Aliyun client id."""
    if not isinstance(mqtt_client_id, str) or not mqtt_client_id.endswith("|"):
        return None
    head, sep, rest = mqtt_client_id[:-1].partition("|")
    if not sep or not head or "|" in rest or len(head) > MAX_CLIENT_ID:
        return None
    items = rest.split(",") if rest else []
    if not all(_PARAM.fullmatch(item) for item in items):
        return None
    params: tuple[tuple[str, str], ...] = tuple(
        (key, value) for key, _, value in (item.partition("=") for item in items)
    )
    keys = [k for k, _ in params]
    if len(set(keys)) != len(keys):
        return None
    values: dict[str, str] = dict(params)
    signmethod = values.get("signmethod", "").lower()
    if signmethod not in SIGN_METHODS:
        return None
    return AliyunClientId(
        client_id=head,
        securemode=values.get("securemode"),
        signmethod=signmethod,
        timestamp=values.get("timestamp"),
        params=params,
    )


def parse_username(username: str) -> tuple[str, str] | None:
    """``deviceName&productKey`` → (device_name, product_key), or None."""
    device_name, sep, product_key = username.partition("&")
    if not sep or not _DEVICE_NAME.fullmatch(device_name):
        return None
    if not _PRODUCT_KEY.fullmatch(product_key):
        return None
    return device_name, product_key
