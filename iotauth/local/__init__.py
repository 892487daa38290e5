"""The local stand-in for AWS IoT Core and the rest of iotauth (``iotauth local``).

Only these small definitions live here, so the CLI can describe its flags without
importing the broker; the stack is :mod:`iotauth.local.stack`.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LocalPorts", "PortInUse"]


class PortInUse(RuntimeError):
    """A configured port is taken; the message is one line naming the port and its flag."""


@dataclass(frozen=True, slots=True)
class LocalPorts:
    """Ports on 127.0.0.1 (0: any free port). Field names match the ``--*-port`` flags."""

    web: int = 8000
    signer: int = 8001
    aws: int = 5005
    mqtt: int = 1883
    mqtts: int = 8883
    ws: int = 8083
    issuer: int = 8002  # the local OIDC issuer (iotauth.local.oidc)
    #: IoT Core's own port: None = 443 when this process may bind it, else 8443.
    iot: int | None = None

    @classmethod
    def any_free(cls) -> LocalPorts:
        return cls(web=0, signer=0, aws=0, mqtt=0, mqtts=0, ws=0, iot=0, issuer=0)
