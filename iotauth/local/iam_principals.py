"""Who signed a presigned upgrade, and what IAM lets them do: the stand-in's IAM, read from moto.

Contract: :meth:`IamPrincipals.verify` is a
:data:`~iotauth.local.gateway.config.PresignedVerifier`. It accepts a SigV4-presigned
``/mqtt`` upgrade signed by **any** IAM principal of the AWS stand-in (moto, in this
process), as IoT Core accepts any principal whose policies allow the actions:

- a role session: credentials from STS ``AssumeRole`` (``ASIA…``, with their session token,
  until they expire) of a role that exists in moto's IAM;
- an IAM user: an ``Active`` access key from ``CreateAccessKey`` (``AKIA…``, no session
  token: a URL that carries one is refused).

It returns the policy sets whose intersection is the principal's effective permissions
(:func:`find_principal`): its identity policies (inline and attached managed policies'
default versions; a user's groups' too), the role's permissions boundary when it has one,
and the STS session policy when the session has one. The gateway evaluates each set with
:class:`~iotauth.access.policy.PolicySet` and needs every one to allow, so an explicit Deny
in any of them wins. Anything unknown, expired, inactive or unreadable is refused (``None``);
it never raises, and never logs a secret, a token or the URL (only ARNs).

Not modelled: service control policies, resource policies, ``AssumeRole``'s ``PolicyArns``
(moto drops them: pass the session policy inline), users' permissions boundaries (moto keeps
none), ``GetSessionToken`` / ``GetFederationToken`` credentials, other accounts' principals.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from iotauth.local.aws_standin import ACCOUNT

__all__ = ["IamPrincipals", "Principal", "find_principal"]

log = logging.getLogger("iotauth.local.gateway")

_PARTITION = "aws"


@dataclass(frozen=True, slots=True)
class Principal:
    """An IAM principal as IoT Core knows it from a signature's access key id."""

    arn: str  # the role's or the user's ARN
    secret_key: str = field(repr=False)
    session_token: str | None = field(repr=False)  # None: long-term keys (an IAM user)
    #: Each a list of policy documents (JSON); effective permissions: their intersection.
    policy_sets: tuple[tuple[str, ...], ...]


def _default_document(managed: Any) -> str | None:
    for version in list(managed.versions):
        if version.is_default:
            return str(version.document)
    return None


def _documents(holder: Any) -> list[str] | None:
    """``holder``'s inline and attached managed policies (None: one is unreadable)."""
    documents = [str(p) for p in list(holder.policies.values())]
    for managed in list(holder.managed_policies.values()):
        document = _default_document(managed)
        if document is None:
            return None
        documents.append(document)
    return documents


def _policy_sets(
    identity: Iterable[str], boundary: str | None, session: str | None
) -> tuple[tuple[str, ...], ...] | None:
    identity = tuple(identity)
    if not identity:
        return None  # nothing allowed: refuse now rather than at every packet
    sets = [identity]
    if boundary is not None:
        sets.append((boundary,))
    if session is not None:
        sets.append((session,))
    return tuple(sets)


def _expired(expiration: dt.datetime, now: dt.datetime) -> bool:
    if expiration.tzinfo is None:
        now = now.replace(tzinfo=None)
    return not now < expiration


def _role_session(access_key: str, now: dt.datetime) -> Principal | None:
    from moto.iam.models import iam_backends  # noqa: PLC0415 - heavy, local only
    from moto.sts.models import sts_backends  # noqa: PLC0415

    session = sts_backends[ACCOUNT][_PARTITION].get_assumed_role_from_access_key(access_key)
    if session is None or _expired(session.expiration, now):
        return None
    iam = iam_backends[ACCOUNT][_PARTITION]
    # moto's AssumeRole does not need the role to exist; IAM would not have issued these.
    role = next((r for r in list(iam.roles.values()) if r.arn == session.role_arn), None)
    if role is None:
        return None
    identity = _documents(role)
    boundary: str | None = None
    if role.permissions_boundary_arn:
        managed = iam.managed_policies.get(role.permissions_boundary_arn)
        boundary = None if managed is None else _default_document(managed)
        if boundary is None:
            return None  # a boundary we cannot read: fail closed
    policy = session.policy if isinstance(session.policy, str) and session.policy else None
    sets = None if identity is None else _policy_sets(identity, boundary, policy)
    if sets is None:
        log.info("presigned URL refused: role %s has no identity policy", role.arn)
        return None
    return Principal(
        str(role.arn), str(session.secret_access_key), str(session.session_token), sets
    )


def _user(access_key: str) -> Principal | None:
    from moto.iam.models import iam_backends  # noqa: PLC0415 - heavy, local only

    iam = iam_backends[ACCOUNT][_PARTITION]
    for user in list(iam.users.values()):
        key = next((k for k in list(user.access_keys) if k.access_key_id == access_key), None)
        if key is None:
            continue
        if key.status != "Active":
            return None
        documents = _documents(user)
        for group in list(iam.groups.values()):
            if user in list(group.users):
                found = _documents(group)
                documents = None if documents is None or found is None else documents + found
        sets = None if documents is None else _policy_sets(documents, None, None)
        if sets is None:
            log.info("presigned URL refused: user %s has no identity policy", user.arn)
            return None
        return Principal(str(user.arn), str(key.secret_access_key), None, sets)
    return None


def find_principal(access_key: str, now: dt.datetime | None = None) -> Principal | None:
    """The principal moto issued ``access_key`` to, with its policy sets; None: none valid
    (unknown, expired or inactive credentials, a role IAM does not hold, no policy)."""
    now = now or dt.datetime.now(dt.UTC)
    try:
        return _role_session(access_key, now) or _user(access_key)
    except Exception:  # moto's state changing under us, or anything else: refused
        log.warning("presigned URL refused: looking up its credentials failed")
        return None


class IamPrincipals:
    """Presigned upgrades signed by any principal of the AWS stand-in (``region``'s scope)."""

    def __init__(self, region: str) -> None:
        self._region = region

    def verify(
        self, target: str, headers: Sequence[tuple[str, str]], secure: bool
    ) -> list[list[str]] | None:
        """The policy sets of the principal that signed this upgrade, or None to refuse it."""
        from iotauth.local.handshake import verify_handshake  # noqa: PLC0415

        found: dict[str, Principal | None] = {}

        def principal(access_key: str) -> Principal | None:
            if access_key not in found:  # moto is read once per upgrade
                found[access_key] = find_principal(access_key)
            return found[access_key]

        def secret(access_key: str) -> str | None:
            who = principal(access_key)
            return None if who is None else who.secret_key

        def token(access_key: str) -> str | None:
            who = principal(access_key)
            return None if who is None else who.session_token

        # ``token`` says None for a user's long-term keys: a URL must then carry no token.
        # For unknown keys ``secret`` refuses first, whatever ``token`` said.
        access_key = verify_handshake(
            target, headers, self._region, secret, token, time.time(), secure
        )
        who = found.get(access_key) if access_key is not None else None
        if who is None:
            return None
        log.debug("presigned upgrade signed by %s", who.arn)
        return [list(documents) for documents in who.policy_sets]
