"""Compact JWS (RFC 7515) signed RS256 or ES256, and JWK sets (RFC 7517), on the standard library.

Contract: :func:`decode_compact` splits and parses a token — strict base64url (no padding,
canonical), UTF-8 JSON objects without duplicate names, bounded sizes — or raises
:class:`JwsError`, whose ``problem`` is a fixed string, safe to log. It does not verify.
:func:`parse_jwk` / :func:`parse_jwks` turn published keys into :class:`RsaKey` /
:class:`EcKey` with bounds (RSA modulus 2048-4096 bits, odd exponent 3-65537; EC P-256 points
on the curve); a key that is not for signatures (``use``, ``key_ops``), names another
algorithm or has another ``kty`` (``oct``, ``OKP`` …) is never returned. :func:`verify` is
True only when the token's ``alg`` matches the key's type: RS256 (RSASSA-PKCS1-v1_5 with
SHA-256; the encoded message is rebuilt and compared in constant time) or ES256 (ECDSA P-256
with SHA-256, the signature as JOSE's raw ``r || s``; the curve: :mod:`iotauth.wire.p256`).
Only these two algorithms exist here: no ``none``, no HMAC, so a public key can never be
used as a shared secret.

The one reason that matters: a JOSE library (PyJWT with ``cryptography``) would add its
import to every cold start of the authorizer, which IoT Core waits for inside its 5 s;
this module costs the standard library it already imports (docs/design/tokens.md).

Design: docs/design/tokens.md
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import json
from base64 import urlsafe_b64decode, urlsafe_b64encode
from collections.abc import Mapping
from typing import Any

from iotauth.wire import p256
from iotauth.wire.frozen import Frozen
from iotauth.wire.token_size import MAX_TOKEN_CHARS

__all__ = [
    "ALGORITHMS",
    "MAX_JWKS_BYTES",
    "MAX_JWKS_KEYS",
    "MAX_TOKEN_CHARS",
    "CompactJws",
    "EcKey",
    "JsonWebKey",
    "JwsError",
    "RsaKey",
    "b64url_decode",
    "decode_compact",
    "parse_jwk",
    "parse_jwks",
    "verify",
]

_MAX_HEADER_CHARS = 1024  # the encoded protected header
_MAX_SIGNATURE_CHARS = 700  # 4096-bit RSA: 512 bytes, 683 characters
_MAX_KID_CHARS = 256
#: A JWK set's size bounds: an issuer publishes a handful of keys.
MAX_JWKS_BYTES = 64 * 1024
MAX_JWKS_KEYS = 32
ALGORITHMS = frozenset({"RS256", "ES256"})
_KTY = {"RS256": "RSA", "ES256": "EC"}

# Sets and str methods rather than regular expressions: nothing compiled at import (cold start).
_B64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def _kid_ok(kid: object) -> bool:
    """Printable ASCII without spaces, 1-256 characters: a dictionary key, nothing more."""
    return (
        isinstance(kid, str)
        and 1 <= len(kid) <= _MAX_KID_CHARS
        and kid.isascii()
        and kid.isprintable()
        and " " not in kid
    )


# RSASSA-PKCS1-v1_5: DER of DigestInfo's AlgorithmIdentifier for SHA-256 (RFC 8017 §9.2).
_SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")
_RSA_MIN_BITS, _RSA_MAX_BITS = 2048, 4096


class JwsError(ValueError):
    """A token or key that cannot be used; ``problem`` is a fixed string, safe to log."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


def b64url_decode(text: str, limit: int = MAX_TOKEN_CHARS) -> bytes:
    """Strict base64url without padding (RFC 7515 §2): only the alphabet, canonical bits."""
    if len(text) > limit or len(text) % 4 == 1 or not _B64URL.issuperset(text):
        raise JwsError("base64url")
    try:
        data = urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise JwsError("base64url") from None
    # Non-zero bits after the last byte would give two spellings of one value.
    if urlsafe_b64encode(data).rstrip(b"=").decode("ascii") != text:
        raise JwsError("base64url")
    return data


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:  # two parsers could read two different "alg"s or "sub"s
            raise JwsError("json-duplicate")
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    raise JwsError("json")  # NaN, Infinity: not JSON (RFC 8259)


def _json_object(data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(
            data.decode("utf-8"),
            object_pairs_hook=_no_duplicates,
            parse_constant=_no_constant,
        )
    except JwsError:
        raise
    except (ValueError, RecursionError):  # UnicodeDecodeError, JSONDecodeError are ValueErrors
        raise JwsError("json") from None
    if not isinstance(value, dict):
        raise JwsError("json-not-object")
    return value


class CompactJws(Frozen):
    """A parsed, not yet verified token: header, claims, what is signed and the signature."""

    __slots__ = ("alg", "claims", "header", "kid", "signature", "signing_input")
    _NOT_IN_REPR = frozenset({"signing_input", "signature"})
    header: Mapping[str, Any]
    claims: Mapping[str, Any]
    alg: str
    kid: str | None
    signing_input: bytes  # ASCII "<header>.<payload>"
    signature: bytes

    def __init__(
        self,
        *,
        header: Mapping[str, Any],
        claims: Mapping[str, Any],
        alg: str,
        kid: str | None,
        signing_input: bytes,
        signature: bytes,
    ) -> None:
        self._init(
            header=header,
            claims=claims,
            alg=alg,
            kid=kid,
            signing_input=signing_input,
            signature=signature,
        )


def decode_compact(token: str) -> CompactJws:
    """Parse ``header.payload.signature``; raises :class:`JwsError` (never verifies)."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
        raise JwsError("too-large")
    if token.count(".") != 2:  # a JWE has four dots; unsecured or detached forms are refused
        raise JwsError("not-compact-jws")
    head, payload, signature = token.split(".")
    if not head or not payload or not signature:
        raise JwsError("not-compact-jws")
    if len(head) > _MAX_HEADER_CHARS or len(signature) > _MAX_SIGNATURE_CHARS:
        raise JwsError("too-large")
    header = _json_object(b64url_decode(head))
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in ALGORITHMS:
        raise JwsError("alg")  # none, HS*, PS*, EdDSA …: never accepted
    if "crit" in header or "b64" in header:
        raise JwsError("crit")  # extensions this verifier does not implement (RFC 7515 §4.1.11)
    kid = header.get("kid")
    if kid is not None and not _kid_ok(kid):
        raise JwsError("kid")
    claims = _json_object(b64url_decode(payload))
    return CompactJws(
        header=header,
        claims=claims,
        alg=alg,
        kid=kid,
        signing_input=f"{head}.{payload}".encode("ascii"),
        signature=b64url_decode(signature, _MAX_SIGNATURE_CHARS),
    )


class RsaKey(Frozen):
    """An RSA public key for RS256."""

    __slots__ = ("e", "kid", "n", "size")
    n: int
    e: int
    size: int  # the modulus in bytes: every signature has exactly this length
    kid: str | None

    def __init__(self, n: int, e: int, kid: str | None = None) -> None:
        if not _RSA_MIN_BITS <= n.bit_length() <= _RSA_MAX_BITS or n % 2 == 0:
            raise JwsError("rsa-modulus")
        if e % 2 == 0 or not 3 <= e <= 65537:
            raise JwsError("rsa-exponent")
        self._init(n=n, e=e, size=(n.bit_length() + 7) // 8, kid=kid)

    @property
    def alg(self) -> str:
        return "RS256"


class EcKey(Frozen):
    """A P-256 public key (a point on the curve, not the point at infinity) for ES256."""

    __slots__ = ("kid", "x", "y")
    x: int
    y: int
    kid: str | None

    def __init__(self, x: int, y: int, kid: str | None = None) -> None:
        if not p256.on_curve(x, y):
            raise JwsError("ec-point")  # off the curve: invalid-curve attacks start here
        self._init(x=x, y=y, kid=kid)

    @property
    def alg(self) -> str:
        return "ES256"


JsonWebKey = RsaKey | EcKey


def _key_int(jwk: Mapping[str, Any], name: str, limit: int) -> int:
    value = jwk.get(name)
    if not isinstance(value, str) or not value:
        raise JwsError(f"jwk-{name}")
    return int.from_bytes(b64url_decode(value, limit), "big")


def parse_jwk(jwk: Mapping[str, Any]) -> JsonWebKey | None:
    """One JWK → a key, or None when it is not a signature key this verifier uses.

    Raises :class:`JwsError` for a key that claims to be one but is malformed (a modulus out
    of bounds, a point off the curve)."""
    if not isinstance(jwk, Mapping):
        return None
    use, ops = jwk.get("use"), jwk.get("key_ops")
    if use is not None and use != "sig":
        return None
    if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
        return None
    kid = jwk.get("kid")
    if kid is not None and not _kid_ok(kid):
        return None
    kty, alg = jwk.get("kty"), jwk.get("alg")
    if kty == "RSA" and alg in (None, "RS256"):
        return RsaKey(_key_int(jwk, "n", 700), _key_int(jwk, "e", 8), kid)
    if kty == "EC" and alg in (None, "ES256") and jwk.get("crv") == "P-256":
        x, y = jwk.get("x"), jwk.get("y")
        if not isinstance(x, str) or not isinstance(y, str):
            raise JwsError("jwk-ec")
        xb, yb = b64url_decode(x, 64), b64url_decode(y, 64)
        if len(xb) != 32 or len(yb) != 32:  # RFC 7518 §6.2.1.2: full length
            raise JwsError("jwk-ec")
        return EcKey(int.from_bytes(xb, "big"), int.from_bytes(yb, "big"), kid)
    return None  # oct (a shared secret), OKP, other curves or algorithms: never used


def parse_jwks(body: bytes) -> dict[str | None, JsonWebKey]:
    """A JWK set document → its usable keys by ``kid`` (None: a key without one).

    Bounded: at most :data:`MAX_JWKS_BYTES` and :data:`MAX_JWKS_KEYS` entries, else the whole
    set is refused (an issuer publishes a handful). A malformed key is skipped; a ``kid``
    given to two keys is dropped (which one signed would be a guess)."""
    if len(body) > MAX_JWKS_BYTES:
        raise JwsError("jwks-too-large")
    document = _json_object(body)
    entries = document.get("keys")
    if not isinstance(entries, list):
        raise JwsError("jwks-keys")
    if len(entries) > MAX_JWKS_KEYS:
        raise JwsError("jwks-too-many-keys")
    keys: dict[str | None, JsonWebKey] = {}
    ambiguous: set[str | None] = set()
    for entry in entries:
        try:
            key = parse_jwk(entry)
        except JwsError:
            continue
        if key is None:
            continue
        if key.kid in keys:
            ambiguous.add(key.kid)
        keys[key.kid] = key
    for kid in ambiguous:
        del keys[kid]
    return keys


def verify(jws: CompactJws, key: JsonWebKey) -> bool:
    """True when ``key`` signed ``jws`` with the token's own ``alg`` (kty must match)."""
    if jws.alg == "RS256" and isinstance(key, RsaKey):
        return _rsa_verify(key, jws.signing_input, jws.signature)
    if jws.alg == "ES256" and isinstance(key, EcKey):
        return _ec_verify(key, jws.signing_input, jws.signature)
    return False


def _rsa_verify(key: RsaKey, message: bytes, signature: bytes) -> bool:
    if len(signature) != key.size:
        return False
    s = int.from_bytes(signature, "big")
    if s >= key.n:
        return False
    encoded = pow(s, key.e, key.n).to_bytes(key.size, "big")
    digest = _SHA256_DIGEST_INFO + hashlib.sha256(message).digest()
    expected = b"\x00\x01" + b"\xff" * (key.size - 3 - len(digest)) + b"\x00" + digest
    return hmac.compare_digest(encoded, expected)


def _ec_verify(key: EcKey, message: bytes, signature: bytes) -> bool:
    if len(signature) != 64:  # JOSE: r and s, 32 bytes each, big-endian (RFC 7518 §3.4)
        return False
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:], "big")
    return p256.verify(key.x, key.y, hashlib.sha256(message).digest(), r, s)
