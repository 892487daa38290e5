"""Password verifiers, and verification that costs the same whether or not the user exists.

Two kinds of password, told apart by their shape alone:

- **Generated secrets** (``iotauth devices add``): ``iotsk_`` + 43 base64url characters
  (32 random bytes, 256 bits). With that much entropy a slow hash buys nothing, so the
  verifier is a fast keyed hash: ``hmac-sha256$v1$<salt>$<HMAC-SHA256(salt, secret)>``,
  salt 16 random bytes per record. About a microsecond to check.
- **Chosen passwords** (``--password-stdin``): 12-1,024 bytes that must *not* look like a
  generated secret. Verifier ``scrypt$n=16384,r=8,p=1$<salt>$<hash>`` (32-byte hash,
  16-byte salt). Parameters: N=2^14, r=8, p=1 uses 16 MiB and, measured on the development
  machine (Python 3.13, one core), ~46 ms per check; N=2^15 took ~100 ms and N=2^17 (OWASP's
  figure for offline-attack resistance) ~430 ms. Lambda gives a 512 MB function about 0.3
  vCPU, so N=2^14 keeps a check well under a second inside the 5 s budget, while brute
  force online is stopped by the lockout (:mod:`iotauth.lockout`); the table is encrypted
  at rest. ``make bench`` prints the current figure. Verifiers record their parameters, so
  they can be raised later for new passwords without breaking old ones.

Timing: :func:`verify_password` spends a cost decided by the *presented password's shape*
only — generated-shaped → one HMAC, anything else → one scrypt with the default
parameters — whether the record exists, has the other kind, or is malformed. Comparisons
use :func:`hmac.compare_digest`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

__all__ = [
    "GENERATED_PREFIX",
    "InvalidPassword",
    "check_chosen_password",
    "generate_secret",
    "hash_chosen_password",
    "hash_generated_secret",
    "is_generated_shape",
    "verifier_kind",
    "verify_password",
]

GENERATED_PREFIX = "iotsk_"
_GENERATED = re.compile(rb"iotsk_[A-Za-z0-9_-]{43}")
_SECRET_BYTES = 32

SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
_SCRYPT_MAXMEM = 64 * 1024 * 1024
# Verifiers read from the table are bounded too: a corrupted record must not make one
# check take minutes or gigabytes.
_SCRYPT_MAX_N = 2**17
MIN_CHOSEN_BYTES = 12
MAX_CHOSEN_BYTES = 1024

_HMAC_SCHEME = "hmac-sha256"
_SCRYPT_SCHEME = "scrypt"
_DUMMY_SALT = b"\x00" * 16


class InvalidPassword(ValueError):
    """A chosen password that may not be used; the message is safe to show."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def is_generated_shape(password: bytes) -> bool:
    """True when ``password`` has the shape of a generated secret."""
    return _GENERATED.fullmatch(password) is not None


def generate_secret() -> str:
    """A new generated secret: ``iotsk_`` + base64url of 32 random bytes."""
    return GENERATED_PREFIX + _b64(secrets.token_bytes(_SECRET_BYTES))


def hash_generated_secret(secret: str) -> str:
    raw = secret.encode("ascii")
    if not is_generated_shape(raw):
        raise InvalidPassword("not a generated secret")
    salt = secrets.token_bytes(16)
    digest = hmac.new(salt, raw, hashlib.sha256).digest()
    return f"{_HMAC_SCHEME}$v1${_b64(salt)}${_b64(digest)}"


def check_chosen_password(password: bytes) -> bytes:
    """Return ``password`` if it may be used as a chosen password."""
    if len(password) < MIN_CHOSEN_BYTES:
        raise InvalidPassword(f"a chosen password needs at least {MIN_CHOSEN_BYTES} bytes")
    if len(password) > MAX_CHOSEN_BYTES:
        raise InvalidPassword(f"a chosen password has at most {MAX_CHOSEN_BYTES} bytes")
    if password.startswith(GENERATED_PREFIX.encode()):
        raise InvalidPassword(
            f"a chosen password may not start with {GENERATED_PREFIX!r} (generated secrets do)"
        )
    return password


def _scrypt(password: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, maxmem=_SCRYPT_MAXMEM, dklen=32)


def hash_chosen_password(password: bytes) -> str:
    check_chosen_password(password)
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    params = f"n={SCRYPT_N},r={SCRYPT_R},p={SCRYPT_P}"
    return f"{_SCRYPT_SCHEME}${params}${_b64(salt)}${_b64(digest)}"


def verifier_kind(verifier: str) -> str | None:
    """``"secret"`` or ``"password"`` for a well-formed verifier, else None."""
    try:
        parsed = _parse(verifier)
    except ValueError:
        return None
    return "secret" if parsed[0] == _HMAC_SCHEME else "password"


def _parse(verifier: str) -> tuple[str, tuple[int, int, int], bytes, bytes]:
    scheme, params, salt_text, hash_text = verifier.split("$")
    salt, digest = _unb64(salt_text), _unb64(hash_text)
    if len(salt) < 16 or len(digest) != 32:
        raise ValueError("bad verifier")
    if scheme == _HMAC_SCHEME and params == "v1":
        return scheme, (0, 0, 0), salt, digest
    if scheme == _SCRYPT_SCHEME:
        values = dict(item.split("=", 1) for item in params.split(","))
        n, r, p = int(values["n"]), int(values["r"]), int(values["p"])
        if not (2 <= n <= _SCRYPT_MAX_N and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 4):
            raise ValueError("bad scrypt parameters")
        if 128 * n * r * (p + 1) > _SCRYPT_MAXMEM:
            raise ValueError("scrypt parameters exceed the memory bound")
        return scheme, (n, r, p), salt, digest
    raise ValueError("unknown scheme")


def verify_password(password: bytes, verifier: str | None) -> bool:
    """Check ``password`` against ``verifier`` (None when there is no such identity).

    The work done depends only on the shape of ``password``; a missing, malformed or
    other-kind verifier costs the same as a wrong password of that shape.
    """
    generated = is_generated_shape(password)
    try:
        parsed = _parse(verifier) if verifier is not None else None
    except (ValueError, KeyError, TypeError):
        parsed = None
    if generated:
        if parsed is not None and parsed[0] == _HMAC_SCHEME:
            _, _, salt, expected = parsed
            return hmac.compare_digest(hmac.new(salt, password, hashlib.sha256).digest(), expected)
        hmac.compare_digest(hmac.new(_DUMMY_SALT, password, hashlib.sha256).digest(), b"\0" * 32)
        return False
    if len(password) > MAX_CHOSEN_BYTES:
        password = password[:MAX_CHOSEN_BYTES]  # keep the work bounded; it cannot match
        parsed = None
    if parsed is not None and parsed[0] == _SCRYPT_SCHEME:
        _, (n, r, p), salt, expected = parsed
        return hmac.compare_digest(_scrypt(password, salt, n, r, p), expected)
    hmac.compare_digest(_scrypt(password, _DUMMY_SALT, SCRYPT_N, SCRYPT_R, SCRYPT_P), b"\0" * 32)
    return False
