"""iotauth.wire.jws: strict parsing, key bounds, and the attacks a verifier must refuse."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from iotauth.wire import jws
from tests.token_support import SigningKey, b64url, claims, jwks_body, unsigned


@pytest.fixture(scope="module")
def rsa_key() -> SigningKey:
    return SigningKey("RS256", "r1")


@pytest.fixture(scope="module")
def ec_key() -> SigningKey:
    return SigningKey("ES256", "e1")


def _key(signing: SigningKey) -> jws.JsonWebKey:
    key = jws.parse_jwk(signing.jwk)
    assert key is not None
    return key


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_a_valid_token_verifies(alg: str, rsa_key: SigningKey, ec_key: SigningKey) -> None:
    signing = rsa_key if alg == "RS256" else ec_key
    parsed = jws.decode_compact(signing.sign(claims()))
    assert parsed.alg == alg and parsed.kid == signing.kid
    assert parsed.claims["sub"] == "alice"
    assert jws.verify(parsed, _key(signing))


def test_the_other_keys_type_never_verifies(rsa_key: SigningKey, ec_key: SigningKey) -> None:
    assert not jws.verify(jws.decode_compact(rsa_key.sign(claims())), _key(ec_key))
    assert not jws.verify(jws.decode_compact(ec_key.sign(claims())), _key(rsa_key))


def test_alg_none_and_hmac_are_refused_before_any_key(rsa_key: SigningKey) -> None:
    for alg in ("none", "None", "HS256", "HS512", "PS256", "EdDSA", "RS384", ""):
        token = unsigned({"alg": alg, "kid": "r1"}, claims(), b"x")
        with pytest.raises(jws.JwsError) as info:
            jws.decode_compact(token)
        assert info.value.problem == "alg"
    # An unsigned token (empty signature) is not even compact JWS here.
    with pytest.raises(jws.JwsError):
        jws.decode_compact(unsigned({"alg": "none"}, claims()))


def test_hs256_with_the_rsa_public_key_as_secret_is_refused(rsa_key: SigningKey) -> None:
    """The classic confusion: an HMAC keyed with the public key a verifier holds."""
    secret = RSAAlgorithm.to_jwk(rsa_key.private.public_key()).encode()
    head = b64url(json.dumps({"alg": "HS256", "kid": "r1"}).encode())
    body = b64url(json.dumps(claims()).encode())
    mac = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    with pytest.raises(jws.JwsError):
        jws.decode_compact(f"{head}.{body}.{b64url(mac)}")
    # Relabelled RS256, the same bytes are simply a wrong signature.
    head = b64url(json.dumps({"alg": "RS256", "kid": "r1"}).encode())
    forged = jws.decode_compact(f"{head}.{body}.{b64url(mac)}")
    assert not jws.verify(forged, _key(rsa_key))


def test_a_64_kb_token_is_refused_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("decoded a token that is too large")

    monkeypatch.setattr(jws, "b64url_decode", boom)
    monkeypatch.setattr(jws.json, "loads", boom)
    big = "a" * 20000 + "." + "b" * 30000 + "." + "c" * 15536
    with pytest.raises(jws.JwsError) as info:
        jws.decode_compact(big)
    assert info.value.problem == "too-large"


@pytest.mark.parametrize(
    "token",
    [
        "",
        "a.b",
        "a.b.c.d",
        "a.b.c.d.e",  # JWE compact form
        "..",
        "eyJhbGciOiJSUzI1NiJ9..c2ln",
        "eyJhbGciOiJSUzI1NiJ9.e30.c2ln=",  # padding
        "eyJhbGciOiJSUzI1NiJ9.e30.c2l+",  # '+' is base64, not base64url
        "eyJhbGciOiJSUzI1NiJ9 .e30.c2ln",
    ],
)
def test_malformed_shapes(token: str) -> None:
    with pytest.raises(jws.JwsError):
        jws.decode_compact(token)


def test_base64url_is_canonical() -> None:
    assert jws.b64url_decode("QQ") == b"A"
    for text in ("QR", "QQ=", "Q", "Q Q"):
        with pytest.raises(jws.JwsError):
            jws.b64url_decode(text)


def test_duplicate_names_and_non_objects_are_refused() -> None:
    dup = b64url(b'{"alg":"RS256","alg":"none"}')
    with pytest.raises(jws.JwsError, match="json-duplicate"):
        jws.decode_compact(f"{dup}.e30.c2ln")
    head = b64url(b'{"alg":"RS256"}')
    for payload in (b"[]", b'"x"', b"1", b'{"exp": NaN}', b"\xff\xfe{}"):
        with pytest.raises(jws.JwsError):
            jws.decode_compact(f"{head}.{b64url(payload)}.c2ln")
    deep = b64url(b"[" * 5000 + b"]" * 5000)
    with pytest.raises(jws.JwsError):
        jws.decode_compact(f"{head}.{deep}.c2ln")


def test_crit_and_unencoded_payloads_are_refused() -> None:
    for extra in ({"crit": ["exp"]}, {"b64": False, "crit": ["b64"]}, {"b64": False}):
        head = b64url(json.dumps({"alg": "RS256", **extra}).encode())
        with pytest.raises(jws.JwsError, match="crit"):
            jws.decode_compact(f"{head}.e30.c2ln")


@pytest.mark.parametrize(
    "kid", ["../../etc/passwd", "http://evil.test/jwks", "' OR 1=1 --", "a b", "é", "k" * 257, 7]
)
def test_odd_kids_are_refused_or_kept_as_plain_strings(kid: object) -> None:
    head = b64url(json.dumps({"alg": "RS256", "kid": kid}).encode())
    token = f"{head}.e30.c2ln"
    if isinstance(kid, str) and kid.isascii() and " " not in kid and len(kid) <= 256:
        assert jws.decode_compact(token).kid == kid  # a dictionary key, nothing more
    else:
        with pytest.raises(jws.JwsError, match="kid"):
            jws.decode_compact(token)


def test_rsa_key_bounds() -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    jwk = json.loads(RSAAlgorithm.to_jwk(small.public_key()))
    with pytest.raises(jws.JwsError, match="rsa-modulus"):
        jws.parse_jwk(jwk)
    big_n = b64url((1 << 4100 | 1).to_bytes(513, "big"))
    with pytest.raises(jws.JwsError, match="rsa-modulus"):
        jws.parse_jwk({"kty": "RSA", "n": big_n, "e": "AQAB"})
    n = b64url((1 << 2047 | 12345).to_bytes(256, "big"))
    for e in ("AQ", "Ag", "AQAAAQ"):  # 1, 2 (even), 2^24+1 (too large)
        with pytest.raises(jws.JwsError, match="rsa-exponent"):
            jws.parse_jwk({"kty": "RSA", "n": n, "e": e})
    key = jws.parse_jwk({"kty": "RSA", "n": n, "e": "Aw"})  # e = 3 is allowed
    assert isinstance(key, jws.RsaKey) and key.e == 3


def test_ec_points_must_be_on_p256(ec_key: SigningKey) -> None:
    bad = dict(
        ec_key.jwk, y=b64url((int.from_bytes(jws.b64url_decode(ec_key.jwk["y"])) ^ 1).to_bytes(32))
    )
    with pytest.raises(jws.JwsError, match="ec-point"):
        jws.parse_jwk(bad)
    short = dict(ec_key.jwk, x=b64url(b"\x01" * 31))
    with pytest.raises(jws.JwsError, match="jwk-ec"):
        jws.parse_jwk(short)
    assert jws.parse_jwk(dict(ec_key.jwk, crv="P-384")) is None


def test_keys_not_for_signatures_are_never_used(rsa_key: SigningKey) -> None:
    assert jws.parse_jwk({"kty": "oct", "k": "c2VjcmV0", "kid": "r1"}) is None
    assert jws.parse_jwk({"kty": "OKP", "crv": "Ed25519", "x": "AA"}) is None
    assert jws.parse_jwk(dict(rsa_key.jwk, use="enc")) is None
    assert jws.parse_jwk(dict(rsa_key.jwk, key_ops=["encrypt"])) is None
    assert jws.parse_jwk(dict(rsa_key.jwk, key_ops=["verify"])) is not None
    assert jws.parse_jwk(dict(rsa_key.jwk, alg="RS512")) is None
    assert jws.parse_jwk(dict(rsa_key.jwk, alg="ES256")) is None  # kty must match alg


def test_jwks_bounds(rsa_key: SigningKey, ec_key: SigningKey) -> None:
    keys = jws.parse_jwks(jwks_body(rsa_key, ec_key))
    assert set(keys) == {"r1", "e1"}
    many = json.dumps({"keys": [dict(rsa_key.jwk, kid=f"k{i}") for i in range(5000)]}).encode()
    with pytest.raises(jws.JwsError, match="jwks-too-large"):
        jws.parse_jwks(many)
    slim = json.dumps(
        {"keys": [{"kty": "oct", "kid": str(i)} for i in range(jws.MAX_JWKS_KEYS + 1)]}
    )
    with pytest.raises(jws.JwsError, match="jwks-too-many-keys"):
        jws.parse_jwks(slim.encode())
    twice = json.dumps({"keys": [rsa_key.jwk, dict(ec_key.jwk, kid="r1")]}).encode()
    assert jws.parse_jwks(twice) == {}  # one kid, two keys: neither is trusted
    broken = json.dumps({"keys": [dict(rsa_key.jwk, n="!!"), ec_key.jwk]}).encode()
    assert set(jws.parse_jwks(broken)) == {"e1"}  # a malformed key is skipped
    for body in (b"{}", b'{"keys": {}}', b"[]", b"not json"):
        with pytest.raises(jws.JwsError):
            jws.parse_jwks(body)


def test_es256_signature_bounds(ec_key: SigningKey) -> None:
    token = ec_key.sign(claims())
    head, body, sig = token.split(".")
    raw = jws.b64url_decode(sig)
    n = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
    r, s = int.from_bytes(raw[:32]), int.from_bytes(raw[32:])
    key = _key(ec_key)
    for forged in (
        b"\x00" * 64,
        raw[:32] + b"\x00" * 32,
        raw + b"\x00",
        raw[:63],
        r.to_bytes(32) + (s + n).to_bytes(33)[1:] if s + n < 2**256 else raw[:32] + b"\xff" * 32,
        (r + n).to_bytes(33)[1:] + raw[32:] if r + n < 2**256 else b"\xff" * 32 + raw[32:],
    ):
        assert not jws.verify(jws.decode_compact(f"{head}.{body}.{b64url(forged)}"), key)
