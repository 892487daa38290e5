"""Authorizer benchmarks: decisions per second per core, scrypt cost, deny times.

- Decisions/s on one core for each credential scheme, with the in-memory store: the
  decision alone (parse + authenticate + response) and the whole handler (Powertools
  logging and metrics included, output discarded).
- 1,000 identical bad CONNECTs before/after the negative cache: scrypt runs, store reads
  and writes (:mod:`iotauth.connect.negative_cache`).
- The cost of one scrypt check with the parameters in :mod:`iotauth.identities.credentials`.
- Deny time against an unresponsive store, and against a slow store whose counter writes
  keep losing races (bounded by the decision's store deadline).

Cold start (the built artifact against boto3 and Node.js) is :mod:`bench.coldstart`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
NOW = 1_700_000_000


def _rate(fn: Any, seconds: float = 1.0) -> float:
    fn()  # warm
    n = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(10):
            fn()
        n += 10
        now = time.perf_counter()
        if now >= deadline:
            return n / (now - start)


def decisions() -> None:
    from iotauth.connect.authenticate import Settings, authenticate
    from iotauth.connect.event import parse_connect_event
    from iotauth.identities.lockout import LockoutPolicy
    from iotauth.identities.store import MemoryStore
    from tests.authorizer_support import (
        ARN,
        add_aliyun_identity,
        add_password_identity,
        add_secret_identity,
        aliyun_event,
        connect_event,
    )

    store = MemoryStore()
    secret = add_secret_identity(store, "alice")
    add_password_identity(store, "carol", "a long chosen passphrase")
    add_aliyun_identity(store, "sensor1", "pk1", "device-secret")
    # Failures are counted: a huge threshold keeps the wrong-password runs from locking.
    settings = Settings(table="bench", lockout=LockoutPolicy(threshold=1000, window_seconds=1))
    cases = {
        "generated secret, allowed": connect_event("alice", secret, "alice"),
        "generated secret, wrong": connect_event("alice", "iotsk_" + "A" * 43, "alice"),
        "generated secret, unknown user": connect_event("nobody", "iotsk_" + "A" * 43, "nobody"),
        "generated-shaped, password identity": connect_event("carol", "iotsk_" + "A" * 43, "carol"),
        "aliyun hmacsha256, allowed": aliyun_event(
            "sensor1", "pk1", "device-secret", timestamp=str(NOW * 1000), signmethod="hmacsha256"
        ),
        "chosen password (scrypt), allowed": connect_event(
            "carol", "a long chosen passphrase", "carol"
        ),
    }

    def run(event: dict[str, Any]) -> Any:
        store.lockouts.clear()  # keep the wrong-password runs from locking (a dict clear)
        request = parse_connect_event(event)
        return authenticate(request, store, now=NOW, settings=settings, arn=ARN).response()

    for name, event in cases.items():
        seconds = 2.0 if "scrypt" in name else 1.0
        rate = _rate(lambda event=event: run(event), seconds)
        goal = "  (goal >= 10,000/s)" if name == "generated secret, allowed" else ""
        print(f"decision/s/core  {name:<36} {rate:>10,.0f}{goal}")

    # The whole handler, Powertools logging and metrics included (output discarded).
    spec = importlib.util.spec_from_file_location("_bench_app", ROOT / "authorizer" / "app.py")
    assert spec is not None and spec.loader is not None
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink):
        app = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(app)
    app._container.update(settings=settings, store=store)
    app._clock = lambda: float(NOW)

    class Context:
        function_name = "bench"
        function_version = "$LATEST"
        memory_limit_in_mb = 512
        invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
        aws_request_id = "bench"

    context = Context()
    for name in ("generated secret, allowed", "generated secret, wrong"):
        event = cases[name]

        def call(event: dict[str, Any] = event) -> None:
            sink.seek(0)
            sink.truncate()
            store.lockouts.clear()
            app._container.pop("negative_cache", None)  # the uncached path (see the storm)
            with contextlib.redirect_stdout(sink):
                app.lambda_handler(event, context)

        print(f"handler/s/core   {name:<36} {_rate(call):>10,.0f}")


def bad_credential_storm() -> None:
    """1,000 identical bad CONNECTs, without and with the per-container negative cache:
    scrypt runs, store reads and writes, and wall time (in-memory store)."""
    from iotauth.connect.authenticate import Settings, authenticate
    from iotauth.connect.event import parse_connect_event
    from iotauth.connect.negative_cache import NegativeCache
    from iotauth.identities import credentials
    from iotauth.identities.lockout import LockoutState
    from iotauth.identities.store import Lookup, MemoryStore
    from tests.authorizer_support import (
        ARN,
        add_aliyun_identity,
        add_password_identity,
        add_secret_identity,
        aliyun_event,
        connect_event,
    )

    counts = {"scrypt": 0, "read": 0, "write": 0}
    real_scrypt = credentials._scrypt

    def counting_scrypt(password: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
        counts["scrypt"] += 1
        return real_scrypt(password, salt, n, r, p)

    class Counting(MemoryStore):
        def lookup(self, username: str) -> Lookup:
            counts["read"] += 1
            return super().lookup(username)

        def save_lockout(self, username: str, state: LockoutState, *args: Any) -> bool:
            counts["write"] += 1
            return super().save_lockout(username, state, *args)

        def clear_lockout(self, username: str, expected_version: int | None = None) -> bool:
            counts["write"] += 1
            return super().clear_lockout(username, expected_version)

    cases = {
        "chosen password, wrong": connect_event("carol", "a wrong passphrase", "carol"),
        "unknown name, chosen-shaped": connect_event("nobody", "a wrong passphrase", "nobody"),
        "generated secret, wrong": connect_event("alice", "iotsk_" + "W" * 43, "alice"),
        "aliyun signature, wrong": aliyun_event("sensor1", "pk1", "not-the-secret"),
    }
    settings = Settings(table="bench")
    credentials._scrypt = counting_scrypt  # type: ignore[assignment]
    try:
        print("1,000 identical bad CONNECTs (lockout 5/900 s on): scrypt runs, store reads, writes")
        for name, event in cases.items():
            figures = []
            for cache in (None, NegativeCache()):
                store = Counting()
                add_secret_identity(store, "alice")
                add_password_identity(store, "carol", "a long chosen passphrase")
                add_aliyun_identity(store, "sensor1", "pk1", "device-secret")
                for key in counts:
                    counts[key] = 0
                request = parse_connect_event(event)
                start = time.perf_counter()
                for _ in range(1000):
                    authenticate(
                        request, store, now=NOW, settings=settings, arn=ARN, negative_cache=cache
                    )
                elapsed = time.perf_counter() - start
                figures.append(
                    f"{counts['scrypt']:>4} / {counts['read']:>4} / {counts['write']:>3} "
                    f"({elapsed * 1000:6.1f} ms)"
                )
            print(f"  {name:<30} before {figures[0]}   after {figures[1]}")
    finally:
        credentials._scrypt = real_scrypt  # type: ignore[assignment]


def scrypt_cost() -> None:
    from iotauth.identities import credentials

    verifier = credentials.hash_chosen_password(b"a long chosen passphrase")

    def median_ms(fn: Any) -> float:
        times = []
        for _ in range(10):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return statistics.median(times) * 1000

    n, r, p = credentials.SCRYPT_N, credentials.SCRYPT_R, credentials.SCRYPT_P
    memory = 128 * n * r / 2**20
    scrypt_only = median_ms(
        lambda: credentials._scrypt(b"a long chosen passphrase", b"s" * 16, n, r, p)
    )
    check = median_ms(lambda: credentials.verify_password(b"a long chosen passphrase", verifier))
    budget = ", ".join(f"{k} {v}" for k, v in credentials.PBKDF2_BUDGET.items())
    print(
        f"scrypt N=2^{n.bit_length() - 1} r={r} p={p} ({memory:.0f} MiB): {scrypt_only:.1f} ms; "
        f"a whole chosen-password check with the PBKDF2 budget ({budget}): {check:.1f} ms "
        "(median of 10; the same for every record kind)"
    )


def unresponsive_store() -> None:
    """A DynamoDB endpoint that accepts TCP connections and never answers."""
    import socket

    from iotauth.connect.authenticate import Settings, authenticate
    from iotauth.connect.event import parse_connect_event
    from iotauth.identities.store import DynamoDBStore
    from tests.authorizer_support import ARN, connect_event

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)  # the kernel completes handshakes; nobody ever reads
        port = server.getsockname()[1]
        fake = {
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
        }
        saved = {k: os.environ.get(k) for k in fake}
        os.environ.update(fake)
        try:
            store = DynamoDBStore.for_lambda("bench")  # built first, as at init
            request = parse_connect_event(connect_event("alice", "iotsk_" + "A" * 43, "alice"))
            start = time.perf_counter()
            decision = authenticate(
                request, store, now=time.time(), settings=Settings(table="bench"), arn=ARN
            )
            elapsed = time.perf_counter() - start
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    print(f"unresponsive store: {decision.reason} after {elapsed:.2f} s (goal <= 2 s)")


def slow_store() -> None:
    """A table that answers every call after 1.4 s (a timeout, then a slow retry) and where
    every counter write loses a race: without the decision's deadline, 7 calls (9.8 s)."""
    from iotauth.connect.authenticate import Settings, authenticate
    from iotauth.connect.event import parse_connect_event
    from iotauth.identities.lockout import LockoutPolicy, LockoutState
    from iotauth.identities.store import Lookup, MemoryStore
    from tests.authorizer_support import ARN, add_password_identity, connect_event

    delay = 1.4

    class Slow(MemoryStore):
        def lookup(self, username: str) -> Lookup:
            time.sleep(delay)
            return super().lookup(username)

        def save_lockout(
            self, username: str, state: LockoutState, policy: LockoutPolicy, previous: int
        ) -> bool:
            time.sleep(delay)
            return False

    store = Slow()
    add_password_identity(store, "carol", "a long chosen passphrase")
    request = parse_connect_event(connect_event("carol", "a long chosen passphrase", "carol"))
    start = time.perf_counter()
    decision = authenticate(request, store, now=time.time(), settings=Settings(table="b"), arn=ARN)
    elapsed = time.perf_counter() - start
    print(f"slow store ({delay} s per call, lost races): {decision.reason} after {elapsed:.2f} s")
    print("  (goal < 5 s with cold start: the deadline is 2.5 s plus at most one call)")


def main() -> None:
    sys.path.insert(0, str(ROOT))
    print(f"python {sys.version.split()[0]}, one core per figure, in-memory store")
    decisions()
    bad_credential_storm()
    scrypt_cost()
    unresponsive_store()
    slow_store()


if __name__ == "__main__":
    main()
