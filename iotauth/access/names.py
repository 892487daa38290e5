"""What names, client ids and principal ids may look like.

Everything that ends up inside an IoT policy resource passes through here first. IoT
policies treat ``*`` and ``?`` as IAM wildcards and ``${…}`` as policy variables, and
MQTT gives ``+``, ``#`` and ``/`` meaning in topics; none of them may ever reach a
resource from a client-controlled string, or a client could widen its own access.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

__all__ = [
    "WEB_PREFIX",
    "InvalidName",
    "check_not_reserved",
    "is_safe_client_id",
    "principal_id_for",
    "validate_client_id",
    "validate_device_name",
    "validate_username",
    "web_username",
]

# Letters, digits and a few punctuation marks that mean nothing to IAM, MQTT or ARNs.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@:-]{0,127}")
# Client ids may also carry '&' (Aliyun's "pk&dn" convention) but never wildcards,
# topic separators, '$' or white space. IoT Core caps client ids at 128 bytes.
_CLIENT_ID = re.compile(r"[A-Za-z0-9_.@:&-]{1,128}")
_PRINCIPAL = re.compile(r"[A-Za-z0-9]{1,128}")
_DIGEST = re.compile(r"[0-9a-f]{40}")  # the shape of web_username's digest form

#: Usernames of browser identities minted by the signer. Device names may not use it, so a
#: device can never share a client id or topic namespace with a web user.
WEB_PREFIX = "web-"


class InvalidName(ValueError):
    """A name, client id or grant that is not allowed; the message is safe to show."""


def validate_username(name: str, *, allow_web: bool = False) -> str:
    """Return ``name`` if it is a valid identity name, else raise :class:`InvalidName`."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidName(
            "a name is 1-128 characters of letters, digits and _ . @ : - "
            "and starts with a letter or digit"
        )
    if not allow_web and name.startswith(WEB_PREFIX):
        raise InvalidName(f"names starting with {WEB_PREFIX!r} are reserved for web identities")
    return name


def check_not_reserved(namespace_root: str, shared_roots: Iterable[str]) -> None:
    """Refuse a name whose namespace would own a topic root that is not its own.

    ``shared_roots``: the deployment's shared topic roots (the template's
    ``WebSharedTopicRoot``): a device named ``chat`` would get ``chat/#``, every room.
    IoT Core reserves every topic that starts with ``$`` (``$aws/…``); a name cannot hold
    ``$`` at all, which this checks again for names that did not pass the name rules.
    """
    if namespace_root.startswith("$"):
        raise InvalidName(f"{namespace_root!r}: topics starting with '$' are reserved by IoT Core")
    if namespace_root in shared_roots:
        raise InvalidName(
            f"{namespace_root!r} is a shared topic root of this deployment "
            "(its topics belong to everyone's rooms); choose another name"
        )


def validate_device_name(name: str) -> str:
    """A device identity name (usernames of devices and Aliyun device names)."""
    return validate_username(name)


def is_safe_client_id(client_id: object) -> bool:
    """True when ``client_id`` can be written into a policy resource as a literal."""
    return isinstance(client_id, str) and _CLIENT_ID.fullmatch(client_id) is not None


def validate_client_id(client_id: str) -> str:
    if not is_safe_client_id(client_id):
        raise InvalidName(
            "a client id is 1-128 characters of letters, digits and _ . @ : & - "
            "(no wildcards, '/', '$' or spaces)"
        )
    return client_id


def principal_id_for(username: str) -> str:
    """A stable principalId (``^[a-zA-Z0-9]{1,128}$``) for an identity.

    Derived, never the raw username: an invalid principalId breaks every connection, and
    a username may hold characters the principalId may not.
    """
    digest = hashlib.sha256(username.encode("utf-8")).hexdigest()[:40]
    principal = "id" + digest
    assert _PRINCIPAL.fullmatch(principal)
    return principal


def web_username(subject: str) -> str:
    """The identity name of a signed-in browser user, from the JWT ``sub`` claim.

    A ``sub`` that is already a safe name (a Cognito UUID) is kept readable; anything else
    (``auth0|123``, very long ids) is replaced by a digest, so the result is always safe.
    A ``sub`` spelled like a digest (40 lowercase hex digits) is digested too, so that no
    subject's readable name can equal another subject's digest name.
    """
    if not isinstance(subject, str) or not subject:
        raise InvalidName("an identity needs a non-empty subject")
    candidate = WEB_PREFIX + subject
    if len(candidate) <= 100 and _NAME.fullmatch(candidate) and not _DIGEST.fullmatch(subject):
        return candidate
    return WEB_PREFIX + hashlib.sha256(subject.encode("utf-8")).hexdigest()[:40]
