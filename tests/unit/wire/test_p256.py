"""iotauth.wire.p256 against cryptography's ECDSA (OpenSSL: the oracle, a dev dependency).

Every signature cryptography makes verifies; every tampered one (r, s, digest or key
changed, s negated, out of range) gets the same answer from both; the NAF digits rebuild
their scalar; and the per-key table cache stays right when it is evicted.
"""

from __future__ import annotations

import hashlib
import itertools
import secrets

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    Prehashed,
    decode_dss_signature,
    encode_dss_signature,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from iotauth.wire import p256

_PREHASHED = ec.ECDSA(Prehashed(hashes.SHA256()))


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _xy(key: ec.EllipticCurvePrivateKey) -> tuple[int, int]:
    numbers = key.public_key().public_numbers()
    return numbers.x, numbers.y


def _sign(key: ec.EllipticCurvePrivateKey, digest: bytes) -> tuple[int, int]:
    return decode_dss_signature(key.sign(digest, _PREHASHED))


def _oracle(key: ec.EllipticCurvePrivateKey, digest: bytes, r: int, s: int) -> bool:
    if not (0 < r < p256.N and 0 < s < p256.N):
        return False  # DER cannot carry these to OpenSSL as a valid signature either
    try:
        key.public_key().verify(encode_dss_signature(r, s), digest, _PREHASHED)
    except InvalidSignature:
        return False
    return True


KEYS = [_key() for _ in range(4)]


@settings(max_examples=60, deadline=None)
@given(key_index=st.integers(0, len(KEYS) - 1), message=st.binary(max_size=64))
def test_every_signature_the_oracle_makes_verifies(key_index: int, message: bytes) -> None:
    key = KEYS[key_index]
    digest = hashlib.sha256(message).digest()
    r, s = _sign(key, digest)
    assert p256.verify(*_xy(key), digest, r, s)
    assert p256.verify(*_xy(key), digest, r, p256.N - s)  # the high-s twin: ECDSA accepts it


@settings(max_examples=80, deadline=None)
@given(
    key_index=st.integers(0, len(KEYS) - 1),
    message=st.binary(max_size=32),
    change=st.sampled_from(["r", "s", "digest", "key", "r+1", "s=0", "r=n", "swap"]),
    bit=st.integers(0, 255),
)
def test_tampered_signatures_get_the_oracles_answer(
    key_index: int, message: bytes, change: str, bit: int
) -> None:
    key = KEYS[key_index]
    digest = hashlib.sha256(message).digest()
    r, s = _sign(key, digest)
    checked_key = key
    if change == "r":
        r ^= 1 << bit
    elif change == "s":
        s ^= 1 << bit
    elif change == "digest":
        digest = bytes(b ^ (1 << (bit % 8)) if i == bit // 8 else b for i, b in enumerate(digest))
    elif change == "key":
        checked_key = KEYS[(key_index + 1) % len(KEYS)]
    elif change == "r+1":
        r += 1
    elif change == "s=0":
        s = 0
    elif change == "r=n":
        r = p256.N
    else:
        r, s = s, r
    expected = _oracle(checked_key, digest, r, s)
    assert p256.verify(*_xy(checked_key), digest, r, s) is expected
    assert expected is False


def test_wrong_lengths_and_ranges_are_refused() -> None:
    key = KEYS[0]
    digest = hashlib.sha256(b"x").digest()
    r, s = _sign(key, digest)
    assert not p256.verify(*_xy(key), digest[:31], r, s)
    assert not p256.verify(*_xy(key), digest, 0, s)
    assert not p256.verify(*_xy(key), digest, r, p256.N + s)


@pytest.mark.parametrize("width", [2, 5, 7])
def test_naf_digits_rebuild_the_scalar(width: int) -> None:
    naf = p256._naf
    for k in [1, 2, 3, p256.N - 1, (1 << 256) - 1, *(secrets.randbelow(p256.N) for _ in range(50))]:
        digits = naf(k, width)
        assert sum(d << i for i, d in enumerate(digits)) == k
        assert all(d == 0 or (d % 2 and abs(d) < 1 << (width - 1)) for d in digits)
        nonzero = [i for i, d in enumerate(digits) if d]
        assert all(b - a >= width for a, b in itertools.pairwise(nonzero))


def test_the_key_table_cache_is_bounded_and_stays_right_after_eviction() -> None:
    digest = hashlib.sha256(b"rotation").digest()
    many = [_key() for _ in range(70)]  # more than the cache holds
    for key in many:
        assert p256.verify(*_xy(key), digest, *_sign(key, digest))
    assert len(p256._Q_TABLES) <= 64
    first = many[0]  # evicted and rebuilt
    assert p256.verify(*_xy(first), digest, *_sign(first, digest))
    assert not p256.verify(*_xy(first), digest, *_sign(many[1], digest))


def test_points_off_the_curve_are_not_on_it() -> None:
    x, y = _xy(KEYS[0])
    assert p256.on_curve(x, y)
    assert p256.on_curve(p256.GX, p256.GY)
    assert not p256.on_curve(x, y + 1)
    assert not p256.on_curve(x, y + p256.P)  # not reduced
    assert not p256.on_curve(0, 0)
