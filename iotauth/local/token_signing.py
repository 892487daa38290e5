"""IoT Core's token-signature check, for an authorizer with signing enabled.

With ``SigningDisabled: false`` IoT Core itself verifies, before it invokes the authorizer,
that ``x-amz-customauthorizer-signature`` is the base64 of an RSA SHA-256 (PKCS #1 v1.5)
signature of the token (the value under ``TokenKeyName``) by the private key of one of the
authorizer's ``TokenSigningPublicKeys`` (custom-auth.html, "Signing the token":
``openssl dgst -sha256 -sign``). A caller without a token, without a signature or with one
that does not verify is refused, and the Lambda is never invoked; a verified one reaches it
with ``token`` and ``signatureVerified: true`` in the event.

:class:`TokenVerifier` does that check (the gateway and HTTPS publish share it);
:func:`signed_token` is its one entry for a connection. Stand-in only: it uses
``cryptography``, which no Lambda artifact ships. Tokens and signatures are never logged.
"""

from __future__ import annotations

import base64
import binascii
import logging

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from iotauth.local.domain import TokenSigning
from iotauth.local.iot_events import ConnectionInfo, token_and_signature

__all__ = ["SignedToken", "TokenVerifier", "signed_token"]

log = logging.getLogger("iotauth.local.gateway")

MIN_KEY_BITS = 2048  # config-custom-auth.html: "Its minimum length is 2,048 bits"
MAX_SIGNATURE_CHARS = 2560  # TestInvokeAuthorizer's tokenSignature limit
MAX_TOKEN_CHARS = 6144  # TestInvokeAuthorizer's token limit


class TokenVerifier:
    """The public keys of one authorizer's ``TokenSigningPublicKeys``, loaded once."""

    def __init__(self, signing: TokenSigning) -> None:
        self.token_key_name = signing.token_key_name
        keys: list[rsa.RSAPublicKey] = []
        for name, pem in signing.public_keys.items():
            try:
                key = serialization.load_pem_public_key(pem.encode("ascii"))
            except (ValueError, UnsupportedAlgorithm, UnicodeEncodeError):
                raise ValueError(
                    f"TokenSigningPublicKeys {name!r} is not a PEM public key"
                ) from None
            if not isinstance(key, rsa.RSAPublicKey) or key.key_size < MIN_KEY_BITS:
                raise ValueError(f"TokenSigningPublicKeys {name!r} is not an RSA key of 2048+ bits")
            keys.append(key)
        self._keys = tuple(keys)

    def verify(self, token: str, signature: str) -> bool:
        """Whether ``signature`` (base64) signs ``token`` under one of the keys. Never raises."""
        if not token or len(token) > MAX_TOKEN_CHARS or len(signature) > MAX_SIGNATURE_CHARS:
            return False
        try:
            raw = base64.b64decode(signature, validate=True)
            message = token.encode("utf-8")
        except (binascii.Error, ValueError):
            return False
        for key in self._keys:
            try:
                key.verify(raw, message, padding.PKCS1v15(), hashes.SHA256())
            except InvalidSignature:
                continue
            return True
        return False


class SignedToken:
    """The outcome of the check: refused, or the token the event carries (None: no signing)."""

    __slots__ = ("allowed", "token")

    def __init__(self, allowed: bool, token: str | None = None) -> None:
        self.allowed = allowed
        self.token = token

    @property
    def signature_verified(self) -> bool:
        return self.token is not None


def signed_token(
    verifier: TokenVerifier | None, username: str | None, conn: ConnectionInfo, what: str
) -> SignedToken:
    """IoT's check before the authorizer: allowed with no token when signing is off, else
    allowed only with a token whose signature verifies (``what`` names it in the log)."""
    if verifier is None:
        return SignedToken(True)
    token, signature = token_and_signature(username, conn, verifier.token_key_name)
    if token is None or signature is None:
        log.info("refused without calling the authorizer: no signed token, %s", what)
        return SignedToken(False)
    if not verifier.verify(token, signature):
        log.info("refused without calling the authorizer: token signature not valid, %s", what)
        return SignedToken(False)
    return SignedToken(True, token)
