"""Alibaba Cloud IoT MQTT signing (REFERENCE §7): the authorizer checks it, the CLI signs.

:func:`sign` / :func:`mqtt_credentials` produce a device's MQTT credentials,
:func:`parse_mqtt_client_id` / :func:`parse_username` read them back. The ``|…|`` client id
parameters are not signed, so the authorizer accepts exactly one spelling per signature
(:func:`canonical_client_id`): otherwise a replayed password could connect beside the device.

Design: docs/design/aliyun.md
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time

from iotauth.wire.frozen import Frozen

__all__ = [
    "CLIENT_ID_FORMS",
    "DEFAULT_FORM",
    "SIGN_METHODS",
    "AliyunClientId",
    "MqttCredentials",
    "canonical_client_id",
    "client_id_form",
    "mqtt_credentials",
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
# Only mqtt_credentials (the CLI, the local stand-in) checks these: patterns that re
# compiles (and caches) at their first use, not at the authorizer's import.
# What may stand before the '|': no '|', ',', '=' or white space, which would change the
# meaning of the extension parameters.
_CLIENT_ID = r"[A-Za-z0-9_.@:&-]+"
_REGION = r"[a-z]{2}-[a-z]+(-\d{1,2})?"
_INSTANCE_ID = r"[A-Za-z0-9][A-Za-z0-9-]{0,63}"
_TIMESTAMP = r"\d{1,20}"
_SCHEMES = {2: "wss", 3: "ws"}  # securemode 2 = WebSocket over TLS, 3 = plain WebSocket


#: ``|…|`` parameters as SDKs send them; ``{securemode}``, ``{signmethod}`` and
#: ``{timestamp}`` are filled in. ``aliyun``: Alibaba Cloud's documented form (and what
#: :func:`mqtt_credentials` produces); ``linkkit``: aliyun-iot-linkkit 1.2.13 (Python),
#: read from its ``__config_mqtt_client_internal``.
CLIENT_ID_FORMS = {
    "aliyun": "securemode={securemode},signmethod={signmethod},timestamp={timestamp}",
    "linkkit": (
        "securemode={securemode},signmethod={signmethod},ext=1,_ss=1,lan=Python,"
        "_v=1.2.13,timestamp={timestamp}"
    ),
}
DEFAULT_FORM = "aliyun"
_SLOTS = {"securemode": "{securemode}", "signmethod": "{signmethod}", "timestamp": "{timestamp}"}
_LITERAL_PARAM = re.compile(r"[A-Za-z0-9_]{1,32}=[A-Za-z0-9_.-]{1,64}")


def client_id_form(value: str) -> str:
    """The template of a form name or an operator's template; ValueError when invalid.

    A template is ``k=v`` items separated by ',' in the SDK's order, with
    ``securemode={securemode}`` and ``signmethod={signmethod}`` exactly once and
    ``timestamp={timestamp}`` at most once; every other value is literal.
    """
    template = CLIENT_ID_FORMS.get(value, value)
    if not isinstance(template, str) or len(template) > 512:
        raise ValueError("invalid client id form")
    seen: set[str] = set()
    for item in template.split(","):
        key, _, val = item.partition("=")
        if key in _SLOTS:
            if val != _SLOTS[key] or key in seen:
                raise ValueError(f"client id form: {key}={_SLOTS[key]} must appear once")
            seen.add(key)
        elif not _LITERAL_PARAM.fullmatch(item) or key in seen:
            raise ValueError(f"client id form: invalid or repeated parameter {item!r}")
        else:
            seen.add(key)
    if not {"securemode", "signmethod"} <= seen:
        raise ValueError("client id form: needs securemode={securemode},signmethod={signmethod}")
    return template


def canonical_client_id(
    inner: str,
    *,
    form: str | None,
    tls: bool,
    signmethod: str,
    timestamp: str | None,
) -> str:
    """The one MQTT client id accepted for these signed values (docs/design/aliyun.md)."""
    items = []
    for item in client_id_form(form or DEFAULT_FORM).split(","):
        if item == "timestamp={timestamp}":
            if timestamp is not None:
                items.append(f"timestamp={timestamp}")
        elif item == "securemode={securemode}":
            items.append(f"securemode={2 if tls else 3}")
        elif item == "signmethod={signmethod}":
            items.append(f"signmethod={signmethod.lower()}")
        else:
            items.append(item)
    return f"{inner}|{','.join(items)}|"


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


class AliyunClientId(Frozen):
    __slots__ = ("client_id", "params", "securemode", "signmethod", "timestamp")
    client_id: str  # the part before '|': what the device signed
    securemode: str | None
    signmethod: str
    timestamp: str | None
    params: tuple[tuple[str, str], ...]

    def __init__(
        self,
        client_id: str,
        securemode: str | None,
        signmethod: str,
        timestamp: str | None,
        params: tuple[tuple[str, str], ...],
    ) -> None:
        self._init(
            client_id=client_id,
            securemode=securemode,
            signmethod=signmethod,
            timestamp=timestamp,
            params=params,
        )


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


class MqttCredentials(Frozen):
    """What an MQTT client needs to connect to Aliyun IoT over WebSocket."""

    __slots__ = ("client_id", "password", "url", "username")
    _NOT_IN_REPR = frozenset({"password"})
    url: str
    client_id: str  # the full mqttClientId, ``id|securemode=…,signmethod=…,timestamp=…|``
    username: str
    password: str

    def __init__(self, url: str, client_id: str, username: str, password: str) -> None:
        self._init(url=url, client_id=client_id, username=username, password=password)

    def as_dict(self) -> dict[str, str]:
        return {
            "url": self.url,
            "clientId": self.client_id,
            "username": self.username,
            "password": self.password,
        }


def mqtt_credentials(
    product_key: str,
    device_name: str,
    device_secret: str,
    client_id: str,
    *,
    timestamp: int | str | None = None,
    signmethod: str = "hmacsha1",
    securemode: int = 2,
    region: str = "cn-shanghai",
    instance_id: str | None = None,
) -> MqttCredentials:
    """The ws/wss connect parameters of an Aliyun IoT device (REFERENCE §7).

    ``timestamp`` defaults to the current time in milliseconds (Aliyun's documentation;
    linkkit sends seconds). ``securemode`` 2 gives ``wss://`` and 3 ``ws://``, port 443 both.
    The host is the legacy public ``<productKey>.iot-as-mqtt.<region>.aliyuncs.com``, or
    ``<instanceId>.mqtt.iothub.aliyuncs.com`` when ``instance_id`` is given (region is then
    not used). Raises ValueError on invalid input.
    """
    if not isinstance(product_key, str) or not _PRODUCT_KEY.fullmatch(product_key):
        raise ValueError("invalid product key: 1-32 letters and digits")
    if not isinstance(device_name, str) or not _DEVICE_NAME.fullmatch(device_name):
        raise ValueError("invalid device name: 1-64 letters, digits and _ . @ : -")
    if not isinstance(device_secret, str) or not device_secret:
        raise ValueError("the device secret must be a non-empty string")
    if not isinstance(client_id, str) or not client_id:
        raise ValueError("the client id must be a non-empty string")
    if len(client_id) > MAX_CLIENT_ID:
        raise ValueError(f"the client id must be at most {MAX_CLIENT_ID} characters")
    if not re.fullmatch(_CLIENT_ID, client_id):
        raise ValueError("invalid client id: letters, digits and _ . @ : & - only")
    method = signmethod.lower() if isinstance(signmethod, str) else ""
    if method not in SIGN_METHODS:
        raise ValueError(f"unknown signmethod {signmethod!r}; use one of {sorted(SIGN_METHODS)}")
    scheme = _SCHEMES.get(securemode) if not isinstance(securemode, bool) else None
    if scheme is None:
        raise ValueError("securemode must be 2 (wss) or 3 (ws)")
    if timestamp is None:
        timestamp = str(time.time_ns() // 1_000_000)
    elif isinstance(timestamp, bool) or not isinstance(timestamp, int | str):
        raise ValueError("timestamp must be digits")
    timestamp = str(timestamp)
    if not re.fullmatch(_TIMESTAMP, timestamp):
        raise ValueError("timestamp must be digits")
    if instance_id is not None:
        if not isinstance(instance_id, str) or not re.fullmatch(_INSTANCE_ID, instance_id):
            raise ValueError("invalid instance id")
        host = f"{instance_id}.mqtt.iothub.aliyuncs.com"
    else:
        if not isinstance(region, str) or not re.fullmatch(_REGION, region):
            raise ValueError(f"invalid region: {region!r}")
        host = f"{product_key}.iot-as-mqtt.{region}.aliyuncs.com"
    password = sign(
        device_secret,
        client_id=client_id,
        device_name=device_name,
        product_key=product_key,
        timestamp=timestamp,
        signmethod=method,
    )
    return MqttCredentials(
        url=f"{scheme}://{host}:443",
        client_id=f"{client_id}|securemode={securemode},signmethod={method},timestamp={timestamp}|",
        username=f"{device_name}&{product_key}",
        password=password,
    )
