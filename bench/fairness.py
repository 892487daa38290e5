"""Fairness at the signer: one user flooding while others call at a normal rate.

The real signer handler (``signer/app.py``) in this process, its rate-limit counters in
DynamoDB and its STS calls on a moto server on 127.0.0.1 (over real HTTP, the handler's own
standard-library client). Time is simulated: requests are scheduled on a virtual clock (the
limiter's, and a model of the HTTP API's route throttle: a token bucket of 20 rps, burst 50,
one for every caller), so minutes of traffic run in seconds and the figures do not depend on
this machine's speed; each handler call's latency is real (wall clock), moto included.

Scenarios (bounded: a few virtual minutes, at most a few thousand handler calls):
  flood 10x   one user at 10x the per-user limit, 5 users at half of it, limit on
  limit off   the same traffic with the per-user limit turned off (what it changes)
  flood 5xR   one user at 5x the route ceiling (beyond what the per-user limit can bound)

Prints, per scenario, the other users' success rate (goal >= 99% in "flood 10x"), how the
flooder was answered (served / 429 from the signer / 429 from the route throttle) and p50/p99
latency of the handler's answers. Figures only, never assertions.
"""

from __future__ import annotations

import heapq
import json
import os
import statistics
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

LIMIT = 12  # per user per minute: the template's default (SignerRequestsPerUserPerMinute)
ROUTE_RATE, ROUTE_BURST = 20.0, 50.0  # the HTTP API's DefaultRouteSettings
OTHERS = 5
T0 = 1_800_000_007.0  # virtual start, inside a window


@dataclass
class TokenBucket:
    """API Gateway's throttle as documented: a token bucket, one token per request."""

    rate: float
    burst: float
    tokens: float = field(init=False)
    at: float = field(init=False, default=T0)

    def __post_init__(self) -> None:
        self.tokens = self.burst

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


@dataclass
class Result:
    outcomes: dict[str, Counter[str]] = field(default_factory=dict)
    latency_ms: dict[str, list[float]] = field(default_factory=dict)

    def add(self, user: str, outcome: str, ms: float | None) -> None:
        self.outcomes.setdefault(user, Counter())[outcome] += 1
        if ms is not None:
            self.latency_ms.setdefault(outcome, []).append(ms)


@contextmanager
def aws_on_moto() -> Iterator[str]:
    """A moto server on 127.0.0.1, this process's AWS environment pointing at it."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request lines
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    saved = dict(os.environ)
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": f"http://{host}:{port}",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "POWERTOOLS_LOG_LEVEL": "ERROR",  # the signer's info lines would swamp the figures
        }
    )
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        os.environ.pop(key, None)
    try:
        yield f"http://{host}:{port}"
    finally:
        os.environ.clear()
        os.environ.update(saved)
        server.stop()


def _signer(limit: int, table: str, role: str) -> tuple[Any, Any]:
    """A cold ``signer.app`` container configured with ``limit`` (0: off)."""
    os.environ.update(
        {
            "IOTAUTH_CLIENT_ROLE_ARN": role,
            "IOTAUTH_IOT_ENDPOINT": "bench-ats.iot.us-east-1.amazonaws.com",
            "IOTAUTH_TABLE": table,
            "IOTAUTH_SIGNER_REQUESTS_PER_MINUTE": str(limit),
        }
    )
    import signer.app as app_module  # its init reads the environment above

    app_module._container.clear()
    app_module._app()
    return app_module, app_module._container["app"][2]


def _schedule(flood_rps: float, others_rps: float, seconds: float) -> list[tuple[float, str]]:
    arrivals = [(T0 + i / flood_rps, "flooder") for i in range(int(seconds * flood_rps))]
    for u in range(OTHERS):
        phase = (u + 0.5) / (OTHERS * others_rps)  # spread over the period
        n = int(seconds * others_rps)
        arrivals += [(T0 + phase + i / others_rps, f"user-{u}") for i in range(n)]
    heapq.heapify(arrivals)
    return [heapq.heappop(arrivals) for _ in range(len(arrivals))]


def run(
    limit: int, flood_rps: float, others_rps: float, seconds: float, tag: str, role: str
) -> Result:
    from tests.conftest import FakeLambdaContext  # the shared fake context (an ARN)

    event_path = os.path.join(os.path.dirname(__file__), "..", "events", "signer", "mqtt-url.json")
    with open(event_path, encoding="utf-8") as handle:
        template_event = json.load(handle)
    app_module, limiter = _signer(limit, TABLE, role)
    virtual = [T0]
    if limiter is not None:
        limiter._clock = lambda: virtual[0]
    bucket = TokenBucket(ROUTE_RATE, ROUTE_BURST)
    context = FakeLambdaContext()
    result = Result()
    for at, user in _schedule(flood_rps, others_rps, seconds):
        virtual[0] = at
        if not bucket.take(at):
            result.add(user, "429 route", None)  # API Gateway: the function never runs
            continue
        event = json.loads(json.dumps(template_event))
        event["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] = f"{tag}-{user}"
        start = time.perf_counter()
        answer = app_module.lambda_handler(event, context)
        ms = (time.perf_counter() - start) * 1000
        outcome = {200: "200", 429: "429 signer"}.get(answer["statusCode"], "error")
        result.add(user, outcome, ms)
    return result


def _windows(seconds: float) -> int:
    return int((T0 + seconds) // 60) - int(T0 // 60) + 1


def _pct(values: list[float], q: float) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def update_item_latency(n: int = 200) -> list[float]:
    """One counter's conditional UpdateItem alone (the limiter's cost on an allowed request)."""
    from iotauth.browser.aws_adapters import DynamoDBRateCounter

    counter = DynamoDBRateCounter.from_env(TABLE)
    out = []
    for i in range(n):
        start = time.perf_counter()
        counter.count(f"ratelimit#web-bench-{i % 20}#1", 1_000_000, 0)
        out.append((time.perf_counter() - start) * 1000)
    return out


def report(name: str, result: Result, seconds: float, limit: int = LIMIT) -> None:
    flood = result.outcomes.get("flooder", Counter())
    others: Counter[str] = Counter()
    for user, outcomes in result.outcomes.items():
        if user != "flooder":
            others.update(outcomes)
    total_others = sum(others.values())
    ok = others["200"] / total_others if total_others else float("nan")
    n_flood = sum(flood.values())
    print(f"-- {name} ({seconds:.0f} virtual s)")
    print(
        f"  other users : {others['200']}/{total_others} served = {ok:.2%}"
        f"  (429 signer {others['429 signer']}, 429 route {others['429 route']})"
    )
    if n_flood:
        print(
            f"  flooder     : {n_flood} requests: served {flood['200']}"
            f" ({flood['200'] / (seconds / 60):.1f}/min; "
            + (f"at most {limit} per window, {_windows(seconds)} windows" if limit else "no limit")
            + f"), 429 signer {flood['429 signer']}"
            f" ({flood['429 signer'] / n_flood:.1%}), 429 route {flood['429 route']}"
            f" ({flood['429 route'] / n_flood:.1%})"
        )
    for outcome in ("200", "429 signer"):
        values = result.latency_ms.get(outcome, [])
        if values:
            print(
                f"  latency {outcome:<10}: n={len(values)} p50 {_pct(values, 50):.2f} ms"
                f"  p99 {_pct(values, 99):.2f} ms"
            )


TABLE = "iotauth-bench-fairness"


def main() -> None:
    import boto3

    from iotauth.identities.store import DynamoDBStore

    with aws_on_moto():
        DynamoDBStore(TABLE).create_table()
        role = boto3.client("iam").create_role(
            RoleName="iotauth-bench-web",
            AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
        )["Role"]["Arn"]
        per_user = LIMIT / 60
        normal = per_user / 2  # a page asking for a URL every 10 s: half its limit
        print(
            f"per-user limit {LIMIT}/min; route throttle {ROUTE_RATE:.0f} rps, burst"
            f" {ROUTE_BURST:.0f}; {OTHERS} other users at {normal * 60:.0f}/min each"
        )
        raw = update_item_latency()
        print(
            f"one conditional UpdateItem on moto (127.0.0.1): p50 {_pct(raw, 50):.2f} ms,"
            f" p99 {_pct(raw, 99):.2f} ms (n={len(raw)})"
        )
        seconds = 300.0
        report(
            "flood 10x the per-user limit",
            run(LIMIT, 10 * per_user, normal, seconds, "a", role),
            seconds,
        )
        report(
            "same traffic, per-user limit off",
            run(0, 10 * per_user, normal, seconds, "b", role),
            seconds,
            limit=0,
        )
        seconds = 60.0
        report(
            "flood 5x the route ceiling (100 rps): beyond the per-user bound",
            run(LIMIT, 5 * ROUTE_RATE, normal, seconds, "c", role),
            seconds,
        )


if __name__ == "__main__":
    main()
