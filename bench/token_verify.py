"""Token verification cost: iotauth.wire.jws vs PyJWT (cryptography), and import cost.

Prints µs per verification (parse + signature) for RS256 (2048-bit) and ES256: *cold* is the
first verification in a fresh interpreter, after the import (the key's JWK parsed, ES256's
table of 0·G … 15·G built), *warm* the median over many in one process; then the whole token path
(token_check with an in-memory JWKS and disabled-user store) per CONNECT, and the import cost
of each verifier over the authorizer's own imports. Figures only, never assertions.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from typing import Any

WARM_ROUNDS = {"RS256": 2000, "ES256": 300}


def _keys() -> dict[str, Any]:
    from tests.token_support import SigningKey

    return {"RS256": SigningKey("RS256", "r1"), "ES256": SigningKey("ES256", "e1")}


def _cold(alg: str, signing: Any, token: str) -> float:
    code = """
import json, time, sys
jwk = json.loads(sys.argv[1]); token = sys.argv[2]
from iotauth.wire import jws
t = time.perf_counter()
parsed = jws.decode_compact(token)
assert jws.verify(parsed, jws.parse_jwk(jwk))
print((time.perf_counter() - t) * 1e6)
"""
    runs = [
        float(
            subprocess.run(
                [sys.executable, "-c", code, json.dumps(signing.jwk), token],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        for _ in range(7)
    ]
    return statistics.median(runs)


def _warm(fn: Any, rounds: int) -> float:
    samples = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(rounds):
            fn()
        samples.append((time.perf_counter() - start) / rounds * 1e6)
    return statistics.median(samples)


def _import_cost(module: str) -> float:
    code = (
        # What the authorizer imported before tokens (event, store, scoping, Powertools);
        # token_check then brings jws, jwks, claims and web_user_status.
        "import time, aws_lambda_powertools, iotauth.identities.dynamodb_store,"
        " iotauth.identities.web_users, iotauth.access.scoping, iotauth.wire.aws_http;"
        f"t = time.perf_counter(); import {module};"
        "print((time.perf_counter() - t) * 1000)"
    )
    runs = [
        float(
            subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=True
            ).stdout
        )
        for _ in range(7)
    ]
    return statistics.median(runs)


def main() -> None:
    import jwt

    from iotauth.access.names import web_username
    from iotauth.connect.event import parse_connect_event
    from iotauth.connect.token_check import check_token
    from iotauth.wire import jws
    from tests.authorizer_support import connect_event
    from tests.token_support import NOW, claims, token_auth

    keys = _keys()
    print("µs per verification (parse + signature):")
    print(f"  {'alg':6} {'cold':>9} {'warm':>9} {'PyJWT warm':>11} {'token path':>11}")
    for alg, signing in keys.items():
        token = signing.sign(claims())
        key = jws.parse_jwk(signing.jwk)
        assert key is not None
        public = signing.private.public_key()

        def ours(token: str = token, key: Any = key) -> None:
            assert jws.verify(jws.decode_compact(token), key)

        def oracle(token: str = token, public: Any = public, alg: str = alg) -> None:
            jwt.decode(
                token,
                public,
                algorithms=[alg],
                options={"verify_aud": False, "verify_exp": False, "verify_iat": False},
            )

        auth, _ = token_auth(*keys.values())
        request = parse_connect_event(connect_event("$jwt", token, web_username("alice")))

        def path(request: Any = request, auth: Any = auth) -> None:
            outcome = check_token(
                request,
                auth,
                now=NOW,
                disconnect_after=86400,
                refresh_after=86400,
                time_left=lambda: 2.0,
            )
            assert outcome.reason == "allowed"

        rounds = WARM_ROUNDS[alg]
        print(
            f"  {alg:6} {_cold(alg, signing, token):9.0f} {_warm(ours, rounds):9.0f}"
            f" {_warm(oracle, rounds):11.0f} {_warm(path, rounds):11.0f}"
        )
    print("import cost over the authorizer's own imports, ms (median of 7 fresh processes):")
    ours_ms = _import_cost("iotauth.connect.token_check")
    print(f"  iotauth.wire.jws + token path modules: {ours_ms:.1f}")
    print(f"  PyJWT + cryptography (jwt.algorithms): {_import_cost('jwt, jwt.algorithms'):.1f}")
    print(
        "  (a tree without __pycache__ compiles iotauth from source on every import; the built"
        " artifact, with bytecode: ~2 ms for the token modules)"
    )


if __name__ == "__main__":
    main()
