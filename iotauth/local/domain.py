"""IoT Core's endpoint settings (a domain configuration) and the choice of authorizer.

Modelled on ``AWS::IoT::DomainConfiguration`` / CreateDomainConfiguration (REFERENCE §11):
``AuthorizerConfig {DefaultAuthorizerName, AllowAuthorizerOverride}``,
``AuthenticationType`` and ``ApplicationProtocol``. Without one, an endpoint has no default
authorizer and port + ALPN decide the protocol (custom auth over MQTT/TLS needs ALPN
``mqtt``). With ``CUSTOM_AUTH`` (or ``CUSTOM_AUTH_X509``) and ``SECURE_MQTT``, MQTT with
custom authentication works without ALPN (iot-custom-endpoints-configurable.html): that is
what unmodified fleets such as Aliyun LinkKit devices, which send no ALPN, need.

:class:`TokenSigning` is the authorizer's side (``AWS::IoT::Authorizer`` with
``SigningDisabled: false``, its ``TokenKeyName`` and ``TokenSigningPublicKeys``): IoT then
checks ``x-amz-customauthorizer-signature`` over the token before it calls the function
(custom-auth.html, config-custom-auth.html; :mod:`iotauth.local.token_signing`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["NO_DOMAIN", "DomainConfiguration", "TokenSigning"]

_CUSTOM_AUTH_TYPES = frozenset({"CUSTOM_AUTH", "CUSTOM_AUTH_X509"})
_TOKEN_KEY_NAME = re.compile(r"[a-zA-Z0-9_-]{1,128}")  # AuthorizerDescription.tokenKeyName
_PUBLIC_KEY_NAME = re.compile(r"[a-zA-Z0-9:_-]{1,128}")  # tokenSigningPublicKeys' keys


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


@dataclass(frozen=True, slots=True)
class TokenSigning:
    """An authorizer with token signing enabled (``SigningDisabled: false``).

    ``token_key_name``: the header, query parameter or MQTT-username query parameter that
    holds the token; ``public_keys``: ``TokenSigningPublicKeys``, name → PEM public key (RSA,
    2,048 bits or more). A caller whose ``x-amz-customauthorizer-signature`` does not verify
    under one of them is refused without invoking the authorizer.
    """

    token_key_name: str
    public_keys: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _TOKEN_KEY_NAME.fullmatch(self.token_key_name):
            raise ValueError("TokenKeyName is 1-128 of letters, digits, '_' and '-'")
        if not self.public_keys:
            raise ValueError("token signing needs at least one TokenSigningPublicKeys entry")
        for name, pem in self.public_keys.items():
            if not _PUBLIC_KEY_NAME.fullmatch(name) or len(pem) > 5120:
                raise ValueError(f"TokenSigningPublicKeys: a bad key name or value ({name!r})")
