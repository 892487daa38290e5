"""Cost model of the authorizer: $ per million connected devices-month, from measured figures.

Measured here, from the real code:
- DynamoDB request units per decision: the real handler decides real CONNECTs with the real
  store (its standard-library client) against a moto server on 127.0.0.1; every call it
  makes is recorded on the way (operation, consistency, item sizes) and priced by
  DynamoDB's rules (reads: 4 KB units, strongly consistent 1 RRU, eventually 0.5; writes: 1 KB
  units; a BatchGetItem key that finds nothing still costs a minimum read).
- The handler's CPU time per decision and scheme: the real handler in-process with the
  in-memory store (Powertools logging and metrics included, output discarded), best of 5.
- Memory size: the template's ``AuthorizerFunction.MemorySize``.

Assumed (printed): Lambda gives a function CPU in proportion to memory, one vCPU at 1,769 MB,
so CPU time scales by 1769/memory at smaller sizes (arm64 cores vs this machine's x86 are
taken as equal); each DynamoDB call adds ``DYNAMODB_RTT_MS`` of wall time, billed; billed
duration rounds up to 1 ms. Prices: REFERENCE §12 (us-east-1, on-demand; check the pricing
pages before quoting).

A refresh is IoT replaying the original CONNECT (indistinguishable, docs/design/lockout.md), so it
costs what a connect costs. A device that stays connected is reconnected every
``disconnectAfterInSeconds`` and refreshed every ``refreshAfterInSeconds`` in between; a
timestamped Aliyun session is never refreshed and lasts one hour. A JWT session (token auth,
docs/design/tokens.md) lasts at most until the token expires: with the usual one-hour ID
tokens a device that stays connected reconnects hourly with a fresh token; each connect is
the JWT's signature check and one strongly consistent GetItem (the disabled-user record).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MONTH_SECONDS = 30 * 86400
LAMBDA_PER_REQUEST = 0.20 / 1e6
LAMBDA_GB_SECOND_ARM = 0.0000133334
DYNAMODB_PER_RRU = 0.125 / 1e6
DYNAMODB_PER_WRU = 0.625 / 1e6
KMS_PER_REQUEST = 0.03 / 1e4
FULL_VCPU_MB = 1769
DYNAMODB_RTT_MS = 4.0
GOAL_PER_MILLION = 15.0


@dataclass(frozen=True)
class Units:
    rru: float
    wru: float
    calls: int


def _value_size(value: dict[str, Any]) -> int:
    """DynamoDB's size of one attribute value (names are counted by the caller)."""
    ((kind, inner),) = value.items()
    if kind in ("S", "B"):
        return len(str(inner).encode("utf-8"))
    if kind == "N":
        return len(str(inner).lstrip("-").replace(".", "")) // 2 + 1 + 1
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "L":
        return 3 + sum(1 + _value_size(v) for v in inner)
    if kind == "M":
        return 3 + sum(len(k.encode()) + 1 + _value_size(v) for k, v in inner.items())
    return sum(len(str(v)) for v in inner)  # sets: close enough for these items


def item_size(item: dict[str, Any]) -> int:
    return sum(len(name.encode("utf-8")) + _value_size(value) for name, value in item.items())


def units_of(calls: list[tuple[str, dict[str, Any], dict[str, Any]]]) -> Units:
    rru = wru = 0.0
    for operation, params, response in calls:
        if operation == "BatchGetItem":
            for table, request in params["RequestItems"].items():
                per_unit = 1.0 if request.get("ConsistentRead") else 0.5
                found = response.get("Responses", {}).get(table, [])
                sizes = [item_size(i) for i in found]
                missing = len(request["Keys"]) - len(found)
                rru += per_unit * (sum(max(1, math.ceil(s / 4096)) for s in sizes) + missing)
        elif operation == "GetItem":
            per_unit = 1.0 if params.get("ConsistentRead") else 0.5
            size = item_size(response.get("Item", {}))
            rru += per_unit * max(1, math.ceil(size / 4096))
        elif operation == "PutItem":
            wru += max(1, math.ceil(item_size(params["Item"]) / 1024))
        elif operation in ("DeleteItem", "UpdateItem"):
            wru += 1  # the items here are far below 1 KB
        else:
            raise ValueError(f"unpriced operation {operation}")
    return Units(rru, wru, len(calls))


class _Recording:
    """The store's standard-library client, recording each call and its answer."""

    def __init__(self, api: Any) -> None:
        self.api = api
        self.calls: list[tuple[str, dict[str, Any], dict[str, Any]]] = []

    def call(self, operation: str, params: Any) -> dict[str, Any]:
        try:
            answer: dict[str, Any] = self.api.call(operation, params)
        except Exception:
            self.calls.append((operation, json.loads(json.dumps(params)), {}))
            raise
        self.calls.append((operation, json.loads(json.dumps(params)), answer))
        return answer


def _token_env(server: Any) -> dict[str, str]:
    from tests.token_support import AUDIENCE

    return {
        "IOTAUTH_TOKEN_ISSUER": server.issuer,
        "IOTAUTH_TOKEN_AUDIENCE": AUDIENCE,
        "IOTAUTH_TOKEN_ALGORITHMS": "RS256,ES256",
    }


def _token_server() -> tuple[Any, dict[str, Any]]:
    """A JWKS server on 127.0.0.1 and the keys it serves (RS256, ES256)."""
    from tests.token_support import JwksServer, SigningKey, jwks_body

    keys = {"RS256": SigningKey("RS256", "r1"), "ES256": SigningKey("ES256", "e1")}
    return JwksServer(jwks_body(*keys.values())).start(), keys


def _handler(env: dict[str, str]) -> Any:
    os.environ.update(env)
    from iotauth.local.lambda_host import load_handler_module

    sink = io.StringIO()
    with contextlib.redirect_stdout(sink):
        return load_handler_module("authorizer", prefix="_bench_cost")


class _Context:
    function_name = "bench"
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    aws_request_id = "bench"


def _invoke(app: Any, event: dict[str, Any]) -> dict[str, Any]:
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink):
        result: dict[str, Any] = app.lambda_handler(event, _Context())
    return result


def measure_units() -> dict[str, Units]:
    """DynamoDB units per decision for each scheme, from the real store against moto."""
    import boto3
    from moto.server import ThreadedMotoServer

    from iotauth.identities.store import DynamoDBStore
    from iotauth.identities.web_user_status import DynamoDBWebUserStatus
    from iotauth.wire.aws_json import DYNAMODB, AwsJsonClient

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        env = {
            "AWS_ENDPOINT_URL": url,
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "IOTAUTH_TABLE": "bench-cost",
        }
        admin = boto3.client(
            "dynamodb",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
        )
        store = DynamoDBStore("bench-cost", client=admin)
        store.create_table()
        secret = _add_identities(store)
        jwks, keys = _token_server()
        app = _handler({**env, **_token_env(jwks)})
        recording = _Recording(
            AwsJsonClient.from_env(DYNAMODB, env, connect_timeout=2, read_timeout=5, max_attempts=1)
        )
        app._container.update(store=DynamoDBStore("bench-cost", api=recording))
        app._container["tokens"].web_users = DynamoDBWebUserStatus("bench-cost", recording)
        found: dict[str, Units] = {}
        for name, event in _cases(time.time(), secret, jwks.issuer, keys).items():
            recording.calls.clear()
            answer = _invoke(app, event)
            assert answer["isAuthenticated"] is True, (name, answer)
            found[name] = units_of(recording.calls)
        jwks.stop()
        return found
    finally:
        server.stop()


def _cases(now: float, secret: str, issuer: str, keys: dict[str, Any]) -> dict[str, dict[str, Any]]:
    from iotauth.access.names import web_username
    from tests.authorizer_support import aliyun_event, connect_event
    from tests.token_support import claims

    tokens = {
        f"JWT {alg}": connect_event(
            "$jwt", key.sign(claims(iss=issuer, now=now)), web_username("alice")
        )
        for alg, key in keys.items()
    }
    return {
        **tokens,
        "generated secret": connect_event("sensor-1", secret, "sensor-1"),
        "chosen password": connect_event("kiosk-1", "a long chosen passphrase", "kiosk-1"),
        "aliyun (timestamped)": aliyun_event(
            "dev1", "pk1", "device-secret", timestamp=str(int(now * 1000))
        ),
    }


def _add_identities(store: Any) -> str:
    from tests.authorizer_support import (
        add_aliyun_identity,
        add_password_identity,
        add_secret_identity,
    )

    secret = add_secret_identity(store, "sensor-1")
    add_password_identity(store, "kiosk-1", "a long chosen passphrase")
    add_aliyun_identity(store, "dev1", "pk1", "device-secret")
    return secret


def measure_cpu_ms() -> dict[str, float]:
    """Wall time of the whole handler per allowed decision, per scheme (ms; the best of 5
    rounds, the least disturbed by other work on a shared machine)."""
    from iotauth.connect.authenticate import Settings
    from iotauth.connect.token_check import TokenAuth, TokenSettings
    from iotauth.identities.store import MemoryStore
    from iotauth.identities.web_user_status import MemoryWebUserStatus

    jwks, keys = _token_server()
    app = _handler({"IOTAUTH_TABLE": "bench-cpu", "AWS_REGION": "us-east-1", **_token_env(jwks)})
    store = MemoryStore()
    secret = _add_identities(store)
    app._container.update(settings=Settings(table="bench-cpu"), store=store)
    tokens = TokenAuth.build(TokenSettings.from_env(_token_env(jwks)), MemoryWebUserStatus())
    tokens.jwks.prime()
    app._container["tokens"] = tokens
    jwks.stop()  # primed: the decisions below never fetch
    found = {}
    for name, event in _cases(time.time(), secret, jwks.issuer, keys).items():
        rounds = 5 if name == "chosen password" else 200  # scrypt: ~45 ms each
        for _ in range(rounds):
            _invoke(app, event)
        samples = []
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(rounds):
                answer = _invoke(app, event)
            samples.append((time.perf_counter() - start) / rounds * 1000)
            assert answer["isAuthenticated"] is True, (name, answer)
        found[name] = min(samples)
    return found


def memory_mb() -> int:
    from iotauth.access.scoping import ArnContext
    from iotauth.local.stack import TEMPLATE_PATH
    from iotauth.local.template import Template

    doc = Template.load(TEMPLATE_PATH, ArnContext("aws", "us-east-1", "0" * 12)).document
    return int(doc["Resources"]["AuthorizerFunction"]["Properties"]["MemorySize"])


@dataclass(frozen=True)
class Decision:
    billed_ms: int
    units: Units

    def dollars(self, memory: int, *, kms: bool = False) -> float:
        gb_seconds = memory / 1024 * self.billed_ms / 1000
        return (
            LAMBDA_PER_REQUEST
            + gb_seconds * LAMBDA_GB_SECOND_ARM
            + self.units.rru * DYNAMODB_PER_RRU
            + self.units.wru * DYNAMODB_PER_WRU
            + (KMS_PER_REQUEST if kms else 0.0)
        )


def invocations_per_month(refresh: int, disconnect: int) -> float:
    """Connects + refreshes of one device that stays connected for a month."""
    connects = MONTH_SECONDS / disconnect
    refreshes_per_session = max(0, math.ceil(disconnect / refresh) - 1)
    return connects * (1 + refreshes_per_session)


def main() -> None:
    sys.path.insert(0, str(ROOT))
    memory = memory_mb()
    cpu = measure_cpu_ms()
    units = measure_units()
    scale = max(1.0, FULL_VCPU_MB / memory)
    print(
        f"authorizer {memory} MB (template): CPU measured here x{scale:.2f} (Lambda's CPU "
        f"share at {memory} MB), +{DYNAMODB_RTT_MS:.0f} ms per DynamoDB call (assumed), "
        "rounded up to 1 ms"
    )
    decisions: dict[str, Decision] = {}
    for name, found in units.items():
        billed = math.ceil(cpu[name] * scale + found.calls * DYNAMODB_RTT_MS)
        decisions[name] = Decision(billed, found)
        gb_s = memory / 1024 * billed / 1000
        print(
            f"  per connect = per refresh  {name:<21} handler {cpu[name]:7.3f} ms here; "
            f"{found.calls} DynamoDB call(s) {found.rru:g} RRU {found.wru:g} WRU; "
            f"billed {billed} ms = {gb_s:.6f} GB-s"
        )
    print("$ per million devices-month, devices that stay connected (refresh / disconnect):")
    for refresh, disconnect in ((300, 86400), (86400, 86400)):
        n = invocations_per_month(refresh, disconnect)
        for name in ("generated secret", "chosen password"):
            cost = n * decisions[name].dollars(memory) * 1e6
            mark = "  <= goal" if cost <= GOAL_PER_MILLION else ""
            print(
                f"  {refresh:>5} s / {disconnect} s  {name:<18} {n:>7,.0f} invocations "
                f"${cost:>10,.2f}{mark}"
            )
    aliyun = invocations_per_month(3600, 3600)
    cost = aliyun * decisions["aliyun (timestamped)"].dollars(memory) * 1e6
    print(f"  timestamped Aliyun, 1 h sessions  {aliyun:,.0f} invocations ${cost:,.2f}")
    kms = invocations_per_month(86400, 86400) * decisions["generated secret"].dollars(
        memory, kms=True
    )
    print(
        f"  with a KMS Decrypt per invocation (envelope-encrypted secrets, not done): "
        f"${kms * 1e6:,.2f} at 86400 s; ${aliyun * KMS_PER_REQUEST * 1e6:,.2f} extra "
        "for timestamped Aliyun"
    )
    print("$ per million connects, and per million devices-month staying connected, JWT:")
    for name in ("JWT RS256", "JWT ES256"):
        per_connect = decisions[name].dollars(memory) * 1e6
        hourly = invocations_per_month(3600, 3600) * per_connect
        daily = invocations_per_month(86400, 86400) * per_connect
        print(
            f"  {name:<10} ${per_connect:.3f} per million connects; 1 h tokens (720 connects) "
            f"${hourly:,.2f}, 24 h tokens (30) ${daily:,.2f}"
        )
    print(f"  goal: <= ${GOAL_PER_MILLION:.0f}; revocation: DeleteConnection, at once")


if __name__ == "__main__":
    main()
