"""Closing an identity's live connections at once: which client ids, and the port to IoT.

Contract: :func:`plan_for` says, for an identity record, which MQTT client ids its live
connections can have — pure, no AWS. :class:`Disconnector` is the port the CLI calls for
each id; :class:`IotDataDisconnector` implements it with IoT's data-plane
``DeleteConnection`` (boto3 ``iot-data``), which closes a connection at once (REFERENCE §11).
:func:`revoke` runs a plan through a port and reports what it closed.

The one reason that matters: with revocation at DeleteConnection, the authorizer's refresh
can be long (86,400 s) — IoT re-invoking it every few minutes for every live connection was
the only other way to make ``disable`` take effect, and it was most of the cost.

Aliyun sessions with a timestamp, or on an inner id the record does not list, cannot be
named; they are bounded instead (``bounded_seconds``, from
:func:`iotauth.identities.records.bounded_session_seconds`).

Design: docs/design/revocation.md
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from iotauth.identities.records import IdentityRecord, bounded_session_seconds
from iotauth.wire import aliyun

__all__ = [
    "Disconnector",
    "IotDataDisconnector",
    "RevocationError",
    "RevocationPlan",
    "RevocationReport",
    "describe",
    "plan_for",
    "revoke",
]


class RevocationError(Exception):
    """DeleteConnection failed for a reason other than "no such connection" (safe to print)."""


@dataclass(frozen=True, slots=True)
class RevocationPlan:
    """The client ids to close, and how long a connection we cannot name may still last."""

    client_ids: tuple[str, ...]
    # > 0 when the identity may hold connections whose client ids cannot be enumerated;
    # such a connection ends at the latest after this many seconds.
    bounded_seconds: int = 0
    why_bounded: str = ""


@dataclass(slots=True)
class RevocationReport:
    closed: list[str] = field(default_factory=list)
    not_connected: list[str] = field(default_factory=list)
    plan: RevocationPlan | None = None


def _aliyun_spellings(record: IdentityRecord, inner: str) -> list[str]:
    """The full ids the authorizer accepts for ``inner`` without a timestamp (one per
    transport and sign method, in the record's client-id form)."""
    try:
        return [
            aliyun.canonical_client_id(
                inner, form=record.client_id_form, tls=tls, signmethod=method, timestamp=None
            )
            for tls in (True, False)
            for method in sorted(aliyun.SIGN_METHODS)
        ]
    except ValueError:  # an invalid form: the authorizer accepts no connection under it
        return []


def plan_for(
    record: IdentityRecord, *, deployment_disconnect_seconds: int = 86400
) -> RevocationPlan:
    """Which client ids ``record``'s live connections can have (see the module notes)."""
    ids = list(record.allowed_client_ids())
    if record.kind != "aliyun":
        return RevocationPlan(tuple(ids))  # it may use exactly these (authenticate.py)
    # Aliyun: the inner ids themselves (harmless if unused), and the full ids of
    # connections without a timestamp, which are fixed strings.
    candidates = list(ids)
    if record.allow_no_timestamp:
        for inner in ids:
            candidates.extend(_aliyun_spellings(record, inner))
    bounded = bounded_session_seconds(record, deployment_disconnect_seconds)
    why = "an Aliyun client id carries the connection's signed timestamp"
    if record.any_client_id:
        why = "it may connect with any client id it signs"
    return RevocationPlan(tuple(dict.fromkeys(candidates)), bounded, why)


class Disconnector(Protocol):
    def disconnect(self, client_id: str) -> bool:
        """Close ``client_id``'s connection: True if one was closed, False if none was live.

        Raises :class:`RevocationError` on any other failure.
        """
        ...


def revoke(plan: RevocationPlan, port: Disconnector) -> RevocationReport:
    """Close every client id of ``plan``; stops at the first error (raised)."""
    report = RevocationReport(plan=plan)
    for client_id in plan.client_ids:
        if port.disconnect(client_id):
            report.closed.append(client_id)
        else:
            report.not_connected.append(client_id)
    return report


class IotDataDisconnector:
    """``DeleteConnection`` on the account's data endpoint (boto3 ``iot-data``).

    ``endpoint_url`` is ``https://<iot:Data-ATS host>``; when None, boto3's own
    configuration decides (``AWS_ENDPOINT_URL``/``AWS_ENDPOINT_URL_IOT_DATA``, as the local
    stand-in sets it). ``clean_session``: also discard the client's persistent session;
    the will message is suppressed (a revoked client gets no last word).
    """

    def __init__(
        self,
        client_factory: Callable[[str | None], Any],
        endpoint_url: str | None = None,
        *,
        clean_session: bool = False,
    ) -> None:
        self._factory = client_factory
        self._endpoint_url = endpoint_url
        self._clean_session = clean_session
        self._client: Any = None

    def disconnect(self, client_id: str) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

        try:
            if self._client is None:
                self._client = self._factory(self._endpoint_url)
            self._client.delete_connection(
                clientId=client_id,
                cleanSession=self._clean_session,
                preventWillMessage=True,
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "ResourceNotFoundException":
                return False
            raise RevocationError(f"iot-data DeleteConnection failed: {code or 'error'}") from None
        except BotoCoreError as exc:
            raise RevocationError(f"iot-data DeleteConnection failed: {exc}") from None
        return True


def describe(report: RevocationReport) -> Iterable[str]:
    """Lines for the operator: what was closed, what was not live, what is bounded."""
    if report.closed:
        yield "closed live connections: " + ", ".join(report.closed)
    else:
        yield "no live connection found for its client ids"
    plan = report.plan
    if plan is not None and plan.bounded_seconds:
        yield (
            f"note: {plan.why_bounded}, so a connection under another client id cannot be "
            f"named; it ends within {plan.bounded_seconds} s (its disconnectAfter) and "
            "cannot reconnect"
        )
