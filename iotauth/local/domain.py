"""IoT Core's endpoint settings (a domain configuration) and the choice of authorizer.

Modelled on ``AWS::IoT::DomainConfiguration`` / CreateDomainConfiguration (REFERENCE §11):
``AuthorizerConfig {DefaultAuthorizerName, AllowAuthorizerOverride}``,
``AuthenticationType`` and ``ApplicationProtocol``. Without one, an endpoint has no default
authorizer and port + ALPN decide the protocol (custom auth over MQTT/TLS needs ALPN
``mqtt``). With ``CUSTOM_AUTH`` (or ``CUSTOM_AUTH_X509``) and ``SECURE_MQTT``, MQTT with
custom authentication works without ALPN (iot-custom-endpoints-configurable.html): that is
what unmodified fleets such as Aliyun LinkKit devices, which send no ALPN, need.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["NO_DOMAIN", "DomainConfiguration"]

_CUSTOM_AUTH_TYPES = frozenset({"CUSTOM_AUTH", "CUSTOM_AUTH_X509"})


@dataclass(frozen=True, slots=True)
class DomainConfiguration:
    default_authorizer: str | None = None
    allow_authorizer_override: bool = False
    authentication_type: str = "DEFAULT"
    application_protocol: str = "DEFAULT"

    @property
    def custom_auth_without_alpn(self) -> bool:
        """MQTT/TLS with custom authentication whatever the ALPN (or none)."""
        return (
            self.authentication_type in _CUSTOM_AUTH_TYPES
            and self.application_protocol == "SECURE_MQTT"
        )

    def authorizer_for(self, requested: str | None, known: frozenset[str]) -> str | None:
        """The authorizer serving a CONNECT that named ``requested`` (None: named none).

        A named, existing authorizer is used when no default is set or the default may be
        overridden. Otherwise the default serves it — also when the name cannot be an
        authorizer, as SDK v1's mangled ``NAME?SDK=Python&Version=…`` — and without a default
        such a CONNECT is refused (None).
        """
        overridable = self.default_authorizer is None or self.allow_authorizer_override
        if requested is not None and requested in known and overridable:
            return requested
        if self.default_authorizer is not None and self.default_authorizer in known:
            return self.default_authorizer
        return None


NO_DOMAIN = DomainConfiguration()
