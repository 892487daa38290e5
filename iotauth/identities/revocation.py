"""Closing an identity's live connections at once: which client ids, and the port to IoT.

Contract: :func:`plan_for` says which MQTT client ids an identity's live connections can
have (pure); :class:`Disconnector` is the port the CLI calls for each id
(:class:`IotDataDisconnector`: IoT's ``DeleteConnection``). :func:`revoke` closes them now,
waits :data:`SETTLE_SECONDS` (IoT's 5 s authorizer limit + 1 s), and closes them again, so a
CONNECT whose authorizer read the record before the write cannot keep its session; call it
only after the write that revokes has returned. Sessions it cannot name are bounded instead
(``bounded_seconds``).

The one reason: with revocation at DeleteConnection, the authorizer's refresh can be long
(86,400 s) instead of IoT re-invoking it every few minutes for every live connection.

Design: docs/design/revocation.md
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from iotauth.identities.records import IdentityRecord, bounded_session_seconds
from iotauth.wire import aliyun

__all__ = [
    "IOT_AUTHORIZER_LIMIT_SECONDS",
    "SESSION_OPEN_MARGIN_SECONDS",
    "SETTLE_SECONDS",
    "Disconnector",
    "IotDataDisconnector",
    "RevocationError",
    "RevocationPass",
    "RevocationPlan",
    "RevocationReport",
    "describe",
    "plan_for",
    "revoke",
]


# IoT Core waits at most this long for a custom authorizer's answer; a later answer, or
# none, refuses the CONNECT (REFERENCE §2). The authorizer's own store deadline is shorter.
IOT_AUTHORIZER_LIMIT_SECONDS = 5.0
# After the answer, IoT opens the session (parses the policies, registers the client id);
# that is internal work of milliseconds: 1 s covers it many times over, and the clock's
# granularity (docs/design/revocation.md).
SESSION_OPEN_MARGIN_SECONDS = 1.0
# From the first pass to the second: every authorizer call that could have read the record
# before the write has been answered, and its session opened, by then.
SETTLE_SECONDS = IOT_AUTHORIZER_LIMIT_SECONDS + SESSION_OPEN_MARGIN_SECONDS


class RevocationError(Exception):
    """DeleteConnection failed for a reason other than "no such connection" (safe to print).

    Raised out of :func:`revoke`, ``report`` is what the passes so far closed."""

    report: RevocationReport | None = None


@dataclass(frozen=True, slots=True)
class RevocationPlan:
    """The client ids to close, and how long a connection we cannot name may still last."""

    client_ids: tuple[str, ...]
    # > 0 when the identity may hold connections whose client ids cannot be enumerated;
    # such a connection ends at the latest after this many seconds.
    bounded_seconds: int = 0
    why_bounded: str = ""


@dataclass(slots=True)
class RevocationPass:
    """What one pass over the plan's client ids found."""

    closed: list[str] = field(default_factory=list)
    not_connected: list[str] = field(default_factory=list)


@dataclass(slots=True)
class RevocationReport:
    """The passes merged: ``closed`` by any pass (in order), ``not_connected`` by none."""

    closed: list[str] = field(default_factory=list)
    not_connected: list[str] = field(default_factory=list)
    plan: RevocationPlan | None = None
    passes: list[RevocationPass] = field(default_factory=list)
    settle_seconds: float = 0.0

    def _merge(self, done: RevocationPass) -> None:
        self.passes.append(done)
        for client_id in done.closed:
            if client_id not in self.closed:
                self.closed.append(client_id)
        asked = dict.fromkeys(c for p in self.passes for c in (*p.closed, *p.not_connected))
        self.not_connected = [c for c in asked if c not in self.closed]


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


def _one_pass(plan: RevocationPlan, port: Disconnector) -> RevocationPass:
    done = RevocationPass()
    for client_id in plan.client_ids:
        if port.disconnect(client_id):
            done.closed.append(client_id)
        else:
            done.not_connected.append(client_id)
    return done


def revoke(
    plan: RevocationPlan,
    port: Disconnector,
    *,
    settle_seconds: float = SETTLE_SECONDS,
    on_wait: Callable[[float], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    tick_seconds: float = 0.2,
) -> RevocationReport:
    """Close every client id of ``plan`` now and again ``settle_seconds`` later (one pass when
    0); call it after the write that revokes has returned.

    The wait is measured from the start of the first pass (so from after the write), on
    ``clock``; ``on_wait(seconds_left)`` is called before each ``sleep`` of at most
    ``tick_seconds``, and with 0.0 just before the second pass. Stops at the first error:
    :class:`RevocationError`, with ``report`` set to what the passes so far closed.
    """
    if not (math.isfinite(settle_seconds) and settle_seconds >= 0):
        raise ValueError("settle_seconds must be a finite number >= 0")
    start = clock()
    report = RevocationReport(plan=plan, settle_seconds=settle_seconds)
    try:
        report._merge(_one_pass(plan, port))
        if settle_seconds > 0:
            deadline = start + settle_seconds
            while (left := deadline - clock()) > 0:
                if on_wait is not None:
                    on_wait(left)
                sleep(min(tick_seconds, left))
            if on_wait is not None:
                on_wait(0.0)
            report._merge(_one_pass(plan, port))
    except RevocationError as exc:
        exc.report = report
        raise
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
    late = [c for p in report.passes[1:] for c in p.closed]
    if late:
        yield (
            "of which opened by a CONNECT in flight during the change, closed by the "
            "second pass: " + ", ".join(dict.fromkeys(late))
        )
    plan = report.plan
    if plan is not None and plan.bounded_seconds:
        yield (
            f"note: {plan.why_bounded}, so a connection under another client id cannot be "
            f"named; it ends within {plan.bounded_seconds} s (its disconnectAfter) and "
            "cannot reconnect"
        )
