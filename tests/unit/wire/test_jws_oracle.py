"""iotauth.wire.jws against PyJWT with cryptography (the oracle, a dev dependency only).

Both must accept every valid token with the same claims; whatever PyJWT refuses, ours must
refuse too (ours is stricter on encodings: canonical base64url, no duplicate names).
"""

from __future__ import annotations

import json
from typing import Any

import jwt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iotauth.wire import jws
from tests.token_support import SigningKey, b64url, claims

KEYS = {
    "rs2048": SigningKey("RS256", "rs2048", 2048),
    "rs3072": SigningKey("RS256", "rs3072", 3072),
    "rs4096": SigningKey("RS256", "rs4096", 4096),
    "es256": SigningKey("ES256", "es256"),
}
OTHER = {"RS256": SigningKey("RS256", "other-rsa"), "ES256": SigningKey("ES256", "other-ec")}


def _ours(token: str, signing: SigningKey) -> dict[str, Any] | None:
    try:
        parsed = jws.decode_compact(token)
    except jws.JwsError:
        return None
    key = jws.parse_jwk(signing.jwk)
    assert key is not None
    return dict(parsed.claims) if jws.verify(parsed, key) else None


def _oracle(token: str, signing: SigningKey) -> dict[str, Any] | None:
    try:
        result: dict[str, Any] = jwt.decode(
            token,
            signing.private.public_key(),
            algorithms=[signing.alg],
            options={
                "verify_signature": True,
                "verify_exp": False,
                "verify_aud": False,
                "verify_iat": False,
                "verify_nbf": False,
                "verify_iss": False,
            },
        )
    except jwt.PyJWTError:
        return None
    return result


def _agree(token: str, signing: SigningKey) -> dict[str, Any] | None:
    ours, oracle = _ours(token, signing), _oracle(token, signing)
    if oracle is None:
        assert ours is None, "accepted a token PyJWT refuses"
    if ours is not None:
        assert ours == oracle
    return ours


@pytest.mark.parametrize("name", sorted(KEYS))
def test_valid_tokens_agree(name: str) -> None:
    signing = KEYS[name]
    for extra in ({}, {"cognito:groups": ["a", "b"]}, {"aud": ["x", "y"], "n": 1.5, "u": "é"}):
        token = signing.sign(claims(**extra))
        assert _agree(token, signing) == claims(**extra)


@pytest.mark.parametrize("name", sorted(KEYS))
def test_wrong_key_agrees(name: str) -> None:
    signing = KEYS[name]
    token = OTHER[signing.alg].sign(claims())
    assert _agree(token, signing) is None


def test_wrong_alg_agrees() -> None:
    rsa_signed = KEYS["rs2048"].sign(claims())
    assert _agree(rsa_signed, KEYS["es256"]) is None
    ec_signed = KEYS["es256"].sign(claims())
    assert _agree(ec_signed, KEYS["rs2048"]) is None
    hs = jwt.encode(claims(), "a shared secret of at least 32 bytes!!", algorithm="HS256")
    assert _agree(hs, KEYS["rs2048"]) is None


def test_expired_tokens_still_verify_here() -> None:
    """Time is the token path's check (token_check), not the signature's: both agree."""
    signing = KEYS["es256"]
    token = signing.sign(claims(now=0, lifetime=1))
    assert _agree(token, signing) is not None


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(sorted(KEYS)),
    part=st.integers(min_value=0, max_value=2),
    position=st.integers(min_value=0, max_value=10_000),
    char=st.sampled_from("AQgw_-Zz09"),
)
def test_malleated_tokens_agree(name: str, part: int, position: int, char: str) -> None:
    signing = KEYS[name]
    token = signing.sign(claims())
    parts = token.split(".")
    target = parts[part]
    i = position % len(target)
    if target[i] == char:
        return
    parts[part] = target[:i] + char + target[i + 1 :]
    malleated = ".".join(parts)
    _agree(malleated, signing)


@settings(max_examples=40, deadline=None)
@given(
    name=st.sampled_from(sorted(KEYS)),
    cut=st.integers(min_value=0, max_value=600),
    junk=st.text(alphabet="AZaz09-_.=+/ ", max_size=8),
)
def test_truncated_and_extended_tokens_agree(name: str, cut: int, junk: str) -> None:
    signing = KEYS[name]
    token = signing.sign(claims())
    _agree(token[: len(token) - cut % len(token)] + junk, signing)


def test_ecdsa_high_s_twin_is_accepted_by_both() -> None:
    """(r, n - s) is a valid ECDSA signature too (RFC 7518 does not forbid it): both accept
    it. Nothing here keys on the signature's bytes (no replay cache, no negative cache on
    the token path), so the twin grants nothing the original does not."""
    signing = KEYS["es256"]
    head, body, sig = signing.sign(claims()).split(".")
    raw = jws.b64url_decode(sig)
    n = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
    twin = raw[:32] + (n - int.from_bytes(raw[32:])).to_bytes(32)
    assert _agree(f"{head}.{body}.{b64url(twin)}", signing) == claims()


def test_non_canonical_base64_is_refused() -> None:
    signing = KEYS["rs2048"]
    head, body, sig = signing.sign(claims()).split(".")
    # The last character of a 256-byte signature carries 4 unused bits: flip one of them.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(sig[-1])
    twin = sig[:-1] + alphabet[last ^ 1]
    token = f"{head}.{body}.{twin}"
    assert _ours(token, signing) is None
    _agree(token, signing)
    assert json.loads(jws.b64url_decode(body))["sub"] == "alice"
