"""Presigned-URL cost: iotauth.wire.sigv4 vs botocore vs awscrt, and import cost.

Prints µs per URL, same credentials every time and rotating over 1,000 credential sets (as a
signer serving many browser users does), with ratios to awscrt (C). Goals: ≤1.0× awscrt with
the same credentials, ≤2.0× rotating; importing iotauth.wire.sigv4 ≤30 ms over a bare
interpreter. Figures only, never assertions: timings vary by machine.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from urllib.parse import quote

ENDPOINT = "a1b2c3d4e5f6g7-ats.iot.eu-west-1.amazonaws.com"
REGION = "eu-west-1"
SETS = 1000
TOKEN_CHARS = 690  # a typical STS session token

Creds = tuple[str, str, str]  # access key id, secret, session token


def credential_sets(n: int) -> list[Creds]:
    token = ("IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQD+abc/def=" * 12)[:TOKEN_CHARS]
    return [
        (f"ASIA{i:016d}", f"secret/{i:08d}+wJalrXUtnFEMIK7MDENGbPxRfiCY", f"{token[:-8]}{i:08d}")
        for i in range(n)
    ]


def iotauth_signer() -> Callable[[Creds], str]:
    from iotauth.wire.sigv4 import presign_mqtt_url

    def sign(creds: Creds) -> str:
        return presign_mqtt_url(ENDPOINT, REGION, *creds)

    return sign


def iotauth_cold_signer() -> Callable[[Creds], str]:
    from iotauth.wire import sigv4

    def sign(creds: Creds) -> str:
        sigv4.signing_key.cache_clear()
        sigv4._credential.cache_clear()
        sigv4._token_suffix.cache_clear()
        return sigv4.presign_mqtt_url(ENDPOINT, REGION, *creds)

    return sign


def botocore_signer() -> Callable[[Creds], str]:
    from botocore.auth import SigV4QueryAuth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    auths: dict[str, SigV4QueryAuth] = {}

    def sign(creds: Creds) -> str:
        ak, sk, token = creds
        auth = auths.get(ak)
        if auth is None:
            auth = auths[ak] = SigV4QueryAuth(Credentials(ak, sk), "iotdevicegateway", REGION)
        request = AWSRequest(method="GET", url=f"https://{ENDPOINT}/mqtt")
        auth.add_auth(request)
        return "wss" + request.prepare().url[5:] + "&X-Amz-Security-Token=" + quote(token, "")

    return sign


def awscrt_signer() -> Callable[[Creds], str]:
    from awscrt import auth, http

    providers: dict[str, auth.AwsCredentialsProvider] = {}

    def sign(creds: Creds) -> str:
        ak, sk, token = creds
        provider = providers.get(ak)
        if provider is None:
            provider = providers[ak] = auth.AwsCredentialsProvider.new_static(ak, sk, token)
        config = auth.AwsSigningConfig(
            signature_type=auth.AwsSignatureType.HTTP_REQUEST_QUERY_PARAMS,
            credentials_provider=provider,
            region=REGION,
            service="iotdevicegateway",
            omit_session_token=True,
        )
        request = http.HttpRequest("GET", "/mqtt", http.HttpHeaders([("host", ENDPOINT)]))
        signed = auth.aws_sign_request(request, config).result()
        return f"wss://{ENDPOINT}{signed.path}"

    return sign


def per_url_us(sign: Callable[[Creds], str], sets: list[Creds]) -> float:
    n = len(sets)
    rounds = max(1, 10_000 // n)
    for creds in sets[: min(n, 200)]:  # warm up code paths (and, for one set, caches)
        sign(creds)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(rounds):
            for creds in sets:
                sign(creds)
        best = min(best, (time.perf_counter() - start) / (rounds * n))
    return best * 1e6


def import_cost_ms(module: str, runs: int = 7) -> float:
    """Median extra time to import ``module`` in a fresh interpreter."""
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)  # .pyc warm-up
    samples = [
        float(
            subprocess.run(
                [sys.executable, "-c", code], check=True, capture_output=True, text=True
            ).stdout
        )
        for _ in range(runs)
    ]
    return statistics.median(samples) * 1000


def main() -> None:
    one = credential_sets(1)
    many = credential_sets(SETS)
    signers = {
        "iotauth": iotauth_signer(),
        "botocore": botocore_signer(),
        "awscrt": awscrt_signer(),
    }
    same = {name: per_url_us(sign, one) for name, sign in signers.items()}
    rotating = {name: per_url_us(sign, many) for name, sign in signers.items()}
    cold = per_url_us(iotauth_cold_signer(), many[:200])
    print(f"presigned wss:// URL, {TOKEN_CHARS}-char session token, µs per URL (best of 3)")
    print(f"{'':10} {'same creds':>12} {'vs awscrt':>10} {f'{SETS} sets':>12} {'vs awscrt':>10}")
    for name in signers:
        print(
            f"{name:10} {same[name]:12.1f} {same[name] / same['awscrt']:9.2f}x "
            f"{rotating[name]:12.1f} {rotating[name] / rotating['awscrt']:9.2f}x"
        )
    print(f"iotauth with every cache cleared per URL: {cold:.1f} µs")
    print("goals: iotauth ≤1.0x awscrt (same creds), ≤2.0x awscrt (rotating)")
    print("import cost over a bare interpreter, median of 7 fresh processes:")
    for module in ("iotauth.wire.sigv4", "botocore.auth", "awscrt.auth"):
        print(f"  {module:14} {import_cost_ms(module):7.1f} ms")
    print("goal: iotauth.wire.sigv4 ≤30 ms")


if __name__ == "__main__":
    main()
