"""What a connection may do, and until when: the grant from its CONNECT, refreshed when due.

:class:`Authorization` turns a CONNECT into a :class:`ConnectionGrant`: a presigned
WebSocket connection brings its verified policies; any other one gets the custom authorizer's
answer (called off the event loop, within ``authorizer_timeout``). Either way the grant must
allow ``iot:Connect`` and the will. After ``refreshAfterInSeconds`` the authorizer is asked
again on the connection's next action; a refusal, or a policy that no longer allows
``iot:Connect``, ends the grant.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from iotauth.access.policy import PolicySet
from iotauth.access.scoping import ArnContext
from iotauth.local import enforcement
from iotauth.local.domain import NO_DOMAIN, DomainConfiguration
from iotauth.local.enforcement import Grant
from iotauth.local.gateway.config import MAX_CONNECTION_SECONDS, GatewayConfig
from iotauth.local.iot_events import (
    AuthorizerGrant,
    ConnectionInfo,
    authorizer_event,
    parse_authorizer_response,
    requested_authorizer,
)
from iotauth.local.mqtt.codec import Connect
from iotauth.local.token_signing import TokenVerifier, signed_token

__all__ = ["AllOf", "Authorization", "ConnectionGrant", "HoldsGrant"]

log = logging.getLogger("iotauth.local.gateway")


class AllOf:
    """Permissions that need every policy set to allow (session policy ∩ role policy)."""

    def __init__(self, sets: Iterable[PolicySet]) -> None:
        self._sets = tuple(sets)

    def allows(self, action: str, resource: str, variables: Mapping[str, str]) -> bool:
        return bool(self._sets) and all(s.allows(action, resource, variables) for s in self._sets)


@dataclass(slots=True)
class ConnectionGrant:
    """What one connection may do, and until when."""

    kind: str  # "custom-auth" or "sigv4"
    client_id: str
    connection_id: str
    policies: AllOf
    disconnect_at: float
    refresh_at: float | None = None
    event: dict[str, Any] | None = None  # the CONNECT event, replayed on refresh
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def enforcement(self, arn: ArnContext) -> Grant:
        return Grant(self.policies, self.client_id, arn)


class HoldsGrant(Protocol):
    """A connection, as far as its grant goes (``None``: it has none, or lost it)."""

    grant: ConnectionGrant | None


class Authorization:
    """Grants for CONNECTs, and their refresh, under one gateway's configuration."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        signing = config.token_signing
        self.token_verifier = None if signing is None else TokenVerifier(signing)

    async def call_authorizer(self, event: dict[str, Any]) -> AuthorizerGrant | None:
        loop = asyncio.get_running_loop()
        try:
            response = await asyncio.wait_for(
                loop.run_in_executor(None, self.config.authorizer, event),
                timeout=self.config.authorizer_timeout,
            )
        except TimeoutError:
            log.warning("authorizer timed out (connection %s)", event["connectionMetadata"]["id"])
            return None
        except Exception as exc:  # a failing authorizer refuses the connection
            log.warning(
                "authorizer failed with %s (connection %s)",
                type(exc).__name__,
                event["connectionMetadata"]["id"],
            )
            return None
        grant = parse_authorizer_response(response)
        if grant is None and isinstance(response, Mapping) and response.get("isAuthenticated"):
            log.warning("authorizer response rejected: it breaks IoT Core's response rules")
        return grant

    async def authorize(
        self,
        connect: Connect,
        info: ConnectionInfo,
        presigned: AllOf | None,
        endpoint: DomainConfiguration = NO_DOMAIN,
    ) -> ConnectionGrant | None:
        """The connection's grant, or ``None`` to refuse its CONNECT."""
        client_id = connect.client_id
        connection_id = str(uuid.uuid4())
        now = self.config.clock()
        what = f"client {client_id!r} via {info.transport} (connection {connection_id})"
        if presigned is not None:
            grant = ConnectionGrant(
                kind="sigv4",
                client_id=client_id,
                connection_id=connection_id,
                policies=presigned,
                disconnect_at=now + MAX_CONNECTION_SECONDS,
            )
        else:
            username = connect.username
            requested = requested_authorizer(username, info)
            chosen = endpoint.authorizer_for(requested, frozenset({self.config.authorizer_name}))
            if chosen is None:
                log.info("CONNECT refused: no such custom authorizer, %s", what)
                return None
            signed = signed_token(self.token_verifier, username, info, what)
            if not signed.allowed:  # IoT checks the token signature before the authorizer
                return None
            event = authorizer_event(
                info,
                username=username,
                password=connect.password,
                client_id=client_id,
                connection_id=connection_id,
                token=signed.token,
                signature_verified=signed.signature_verified,
            )
            answer = await self.call_authorizer(event)
            if answer is None:
                # No username: for an unknown identity it may be a mistyped password (the
                # authorizer logs names only for identities it knows).
                log.info("CONNECT refused by the authorizer: %s", what)
                return None
            grant = ConnectionGrant(
                kind="custom-auth",
                client_id=client_id,
                connection_id=connection_id,
                policies=AllOf([PolicySet(answer.policy_documents)]),
                disconnect_at=now + answer.disconnect_after,
                refresh_at=now + answer.refresh_after,
                event=event,
            )
        checks = grant.enforcement(self.config.arn)
        if not checks.allows("iot:Connect", "client", client_id):
            log.info("CONNECT refused: policy does not allow iot:Connect, %s", what)
            return None
        if not enforcement.will_allowed(checks, connect, self.config.limits):
            log.info("CONNECT refused: will topic not allowed, %s", what)
            return None
        return grant

    async def current(self, session: HoldsGrant) -> ConnectionGrant | None:
        """The session's grant if still valid, refreshed through the authorizer when due."""
        grant = session.grant
        if grant is None:
            return None
        now = self.config.clock()
        if now >= grant.disconnect_at:
            return None
        if grant.refresh_at is None or now < grant.refresh_at or grant.event is None:
            return grant
        async with grant.lock:
            if grant.refresh_at is not None and self.config.clock() >= grant.refresh_at:
                answer = await self.call_authorizer(grant.event)
                if answer is None:
                    log.info("refresh refused (connection %s)", grant.connection_id)
                    session.grant = None
                    return None
                now = self.config.clock()
                grant.policies = AllOf([PolicySet(answer.policy_documents)])
                grant.refresh_at = now + answer.refresh_after
                if not grant.enforcement(self.config.arn).allows(
                    "iot:Connect", "client", grant.client_id
                ):
                    log.info(
                        "refreshed policy denies iot:Connect (connection %s)", grant.connection_id
                    )
                    session.grant = None
                    return None
        return grant
