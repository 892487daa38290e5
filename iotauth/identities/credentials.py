"""Password verifiers, and verification that costs the same whether or not the user exists.

Contract: generated secrets (``iotsk_`` + 43 base64url characters, 256 bits) get one salted
HMAC-SHA256; chosen passwords (12-1,024 bytes, never ``iotsk_``-shaped) get scrypt (N=2^14,
r=8, p=1, ~46 ms); imported broker hashes are kept and checked as they are. No pepper.
:func:`verify_password` spends a cost decided by the *presented password's shape* only (one
HMAC; or one scrypt plus the fixed :data:`PBKDF2_BUDGET`), whatever the record holds, and
compares with :func:`hmac.compare_digest`.

The one reason: an answer's timing must not say whether a name exists or which hash it has.

Design: docs/design/credentials.md
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

from iotauth.wire.frozen import Frozen

__all__ = [
    "GENERATED_PREFIX",
    "InvalidPassword",
    "check_chosen_password",
    "generate_secret",
    "hash_chosen_password",
    "hash_generated_secret",
    "imported_verifier",
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
    """``"secret"`` or ``"password"`` for a well-formed verifier, else None.

    Imported hashes (:func:`imported_verifier`) are chosen passwords: ``"password"``.
    """
    try:
        parsed = _parse(verifier)
    except (ValueError, KeyError, TypeError):
        return None
    return "secret" if parsed.scheme == _HMAC_SCHEME else "password"


# -- imported hashes (iotauth devices import) -----------------------------------------------
#
# Other brokers' verifiers, kept as they are so that users keep their passwords:
#   salted-sha256 / salted-sha512 $ prefix|suffix|none $ salt $ H(salt+pw) / H(pw+salt) / H(pw)
#       (Mosquitto's ``$6$`` is salted-sha512 suffix with its 12-byte salt; EMQX's sha256 /
#       sha512 with a salt position, its salt string taken literally)
#   pbkdf2-sha256 / pbkdf2-sha512 $ i=<iterations> $ salt $ PBKDF2-HMAC(pw, salt, i, len(hash))
#       (Mosquitto's ``$7$``: sha512, 64-byte output; EMQX's pbkdf2)
# Their cost per check differs with the hash and the iterations, so every chosen-shaped
# check pads PBKDF2 work up to a fixed budget per hash function (below): the work is the
# same whatever the record holds. A record whose hash needs more than the budget is refused
# at import (:class:`InvalidPassword`), never checked at a different cost.

#: PBKDF2 block-iterations spent on every chosen-shaped check, per hash function (real
#: work of an imported hash + padding). 4,096 is EMQX's default; Mosquitto's is 101.
PBKDF2_BUDGET = {"sha256": 4096, "sha512": 4096}
_SALTED = {"salted-sha256": "sha256", "salted-sha512": "sha512"}
_PBKDF2 = {"pbkdf2-sha256": "sha256", "pbkdf2-sha512": "sha512"}
_DIGEST_SIZE = {"sha256": 32, "sha512": 64}
_SALT_POSITIONS = ("prefix", "suffix", "none")
_MAX_IMPORTED_SALT = 1024
_PAD_SALT = b"iotauth-pbkdf2-pad"


def _pbkdf2_units(hash_name: str, iterations: int, dklen: int) -> int:
    blocks = -(-dklen // _DIGEST_SIZE[hash_name])
    return iterations * blocks


def imported_verifier(scheme: str, params: str, salt: bytes, digest: bytes) -> str:
    """A verifier for another broker's hash; raises :class:`InvalidPassword` if unusable."""
    verifier = f"{scheme}${params}${_b64(salt)}${_b64(digest)}"
    try:
        parsed = _parse(verifier)
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidPassword(f"unsupported {scheme} hash: {exc}") from None
    if parsed.scheme not in _SALTED and parsed.scheme not in _PBKDF2:
        raise InvalidPassword(f"not an imported hash scheme: {scheme!r}")
    return verifier


class _Parsed(Frozen):
    __slots__ = ("digest", "iterations", "position", "salt", "scheme", "scrypt")
    scheme: str
    salt: bytes
    digest: bytes
    scrypt: tuple[int, int, int]
    position: str  # salted-*
    iterations: int  # pbkdf2-*

    def __init__(
        self,
        scheme: str,
        salt: bytes,
        digest: bytes,
        *,
        scrypt: tuple[int, int, int] = (0, 0, 0),
        position: str = "",
        iterations: int = 0,
    ) -> None:
        self._init(
            scheme=scheme,
            salt=salt,
            digest=digest,
            scrypt=scrypt,
            position=position,
            iterations=iterations,
        )


def _parse(verifier: str) -> _Parsed:
    scheme, params, salt_text, hash_text = verifier.split("$")
    salt, digest = _unb64(salt_text), _unb64(hash_text)
    if scheme in _SALTED:
        if params not in _SALT_POSITIONS or len(salt) > _MAX_IMPORTED_SALT:
            raise ValueError("bad salt position or salt")
        if len(digest) != _DIGEST_SIZE[_SALTED[scheme]]:
            raise ValueError("bad digest length")
        return _Parsed(scheme, salt, digest, position=params)
    if scheme in _PBKDF2:
        key, _, value = params.partition("=")
        if key != "i" or not value.isdigit() or not 0 < len(salt) <= _MAX_IMPORTED_SALT:
            raise ValueError("bad pbkdf2 parameters")
        iterations, hash_name = int(value), _PBKDF2[scheme]
        if not 16 <= len(digest) <= 4 * _DIGEST_SIZE[hash_name] or iterations < 1:
            raise ValueError("bad pbkdf2 output length")
        if _pbkdf2_units(hash_name, iterations, len(digest)) > PBKDF2_BUDGET[hash_name]:
            raise ValueError(
                f"more than {PBKDF2_BUDGET[hash_name]} {hash_name} iterations "
                "(the authorizer spends the same work on every check)"
            )
        return _Parsed(scheme, salt, digest, iterations=iterations)
    if len(salt) < 16 or len(digest) != 32:
        raise ValueError("bad verifier")
    if scheme == _HMAC_SCHEME and params == "v1":
        return _Parsed(scheme, salt, digest)
    if scheme == _SCRYPT_SCHEME:
        values = dict(item.split("=", 1) for item in params.split(","))
        n, r, p = int(values["n"]), int(values["r"]), int(values["p"])
        if not (2 <= n <= _SCRYPT_MAX_N and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 4):
            raise ValueError("bad scrypt parameters")
        if 128 * n * r * (p + 1) > _SCRYPT_MAXMEM:
            raise ValueError("scrypt parameters exceed the memory bound")
        return _Parsed(scheme, salt, digest, scrypt=(n, r, p))
    raise ValueError("unknown scheme")


def _check_imported(parsed: _Parsed, password: bytes, pad: dict[str, int]) -> bool:
    """Check an imported hash, taking its work out of ``pad`` (the caller spends the rest)."""
    if parsed.scheme in _SALTED:
        hash_name = _SALTED[parsed.scheme]
        data = {
            "prefix": parsed.salt + password,
            "suffix": password + parsed.salt,
            "none": password,
        }[parsed.position]
        pad[hash_name] -= 1
        return hmac.compare_digest(hashlib.new(hash_name, data).digest(), parsed.digest)
    hash_name = _PBKDF2[parsed.scheme]
    dklen = len(parsed.digest)
    pad[hash_name] -= _pbkdf2_units(hash_name, parsed.iterations, dklen)
    derived = hashlib.pbkdf2_hmac(hash_name, password, parsed.salt, parsed.iterations, dklen)
    return hmac.compare_digest(derived, parsed.digest)


_DUMMY_DIGEST = b"\0" * 32
_DUMMY_SECRET_VERIFIER = f"{_HMAC_SCHEME}$v1${_b64(_DUMMY_SALT)}${_b64(_DUMMY_DIGEST)}"
_DUMMY_CHOSEN_VERIFIER = (
    f"{_SCRYPT_SCHEME}$n={SCRYPT_N},r={SCRYPT_R},p={SCRYPT_P}"
    f"${_b64(_DUMMY_SALT)}${_b64(_DUMMY_DIGEST)}"
)
_CHOSEN_SCHEMES = frozenset({_SCRYPT_SCHEME, *_SALTED, *_PBKDF2})


def _for_shape(verifier: str | None, generated: bool) -> tuple[_Parsed, bool]:
    """The record's verifier if it belongs to the presented shape's class and is well
    formed (True), else that class's dummy (False). Either way one verifier of the class is
    parsed, so a missing or other-kind record costs what a real one costs."""
    dummy = _DUMMY_SECRET_VERIFIER if generated else _DUMMY_CHOSEN_VERIFIER
    scheme = verifier.partition("$")[0] if verifier is not None else ""
    real = scheme == _HMAC_SCHEME if generated else scheme in _CHOSEN_SCHEMES
    if real:
        try:
            return _parse(verifier or ""), True
        except (ValueError, KeyError, TypeError):
            pass
    return _parse(dummy), False


def verify_password(password: bytes, verifier: str | None) -> bool:
    """Check ``password`` against ``verifier`` (None when there is no such identity).

    The work done depends only on the shape of ``password``; a missing, malformed or
    other-kind verifier costs the same as a wrong password of that shape: generated-shaped
    → one verifier parsed and one HMAC-SHA256; anything else → one verifier parsed, one
    scrypt at the default parameters (or the record's) and exactly :data:`PBKDF2_BUDGET`
    PBKDF2 block-iterations per hash, of which an imported hash's own work is a part.
    """
    generated = is_generated_shape(password)
    if not generated and len(password) > MAX_CHOSEN_BYTES:
        password = password[:MAX_CHOSEN_BYTES]  # keep the work bounded; it cannot match
        verifier = None
    parsed, real = _for_shape(verifier, generated)
    if generated:
        digest = hmac.new(parsed.salt, password, hashlib.sha256).digest()
        return hmac.compare_digest(digest, parsed.digest) and real
    pad = dict(PBKDF2_BUDGET)
    if parsed.scheme == _SCRYPT_SCHEME:
        n, r, p = parsed.scrypt
        ok = hmac.compare_digest(_scrypt(password, parsed.salt, n, r, p), parsed.digest)
    else:
        dummy = _scrypt(password, _DUMMY_SALT, SCRYPT_N, SCRYPT_R, SCRYPT_P)
        hmac.compare_digest(dummy, _DUMMY_DIGEST)
        ok = _check_imported(parsed, password, pad)
    for hash_name, remaining in pad.items():
        if remaining > 0:
            _pbkdf2_pad(hash_name, password, remaining)
    return ok and real


def _pbkdf2_pad(hash_name: str, password: bytes, iterations: int) -> None:
    hashlib.pbkdf2_hmac(hash_name, password, _PAD_SALT, iterations)
