"""`iotauth devices import` rates: identities/s of a dry run and of `--apply` (16
transactions in flight, up to 25 identities each) for n generated Mosquitto ``$6$`` lines,
against a moto server on 127.0.0.1 with the stand-in's fleet-size moto changes
(:mod:`iotauth.local.moto_fleet`), and the DynamoDB requests each made per identity; then
``BENCH_IMPORT_SINGLY`` lines (default min(n, 1000)) applied one identity per transaction,
as before the grouping, for comparison in the same run.

Goal (issue 14): ≥ 1,000 identities/s dry run, ≥ 200/s applied, against the local store.
moto's transactions are not safe under concurrent requests (500s, lost rollbacks), while
DynamoDB's are serializable: :func:`serialized_moto_transactions` runs them one at a time,
as a model of DynamoDB — the CLI still has 16 requests in flight.

A test harness, not a product: figures only, never assertions.
"""

from __future__ import annotations

import base64
import contextlib
import io
import logging
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_serial = threading.Lock()


@contextlib.contextmanager
def serialized_moto_transactions() -> Iterator[None]:
    """moto's ``TransactWriteItems`` one at a time (in this process's moto server)."""
    from moto.dynamodb.models import DynamoDBBackend

    current = DynamoDBBackend.transact_write_items

    def serialized(self: Any, transact_items: list[dict[str, Any]]) -> Any:
        with _serial:
            return current(self, transact_items)

    DynamoDBBackend.transact_write_items = serialized  # type: ignore[method-assign]
    try:
        yield
    finally:
        DynamoDBBackend.transact_write_items = current  # type: ignore[method-assign]


def mosquitto_lines(n: int, prefix: str = "dev") -> str:
    """``n`` well-formed ``$6$`` lines (random hashes: for volume, not for signing in)."""
    lines = []
    for i in range(n):
        salt = base64.b64encode(os.urandom(12)).decode()
        digest = base64.b64encode(os.urandom(64)).decode()
        lines.append(f"{prefix}-{i:06d}:$6${salt}${digest}")
    return "\n".join(lines) + "\n"


def _run_cli(argv: list[str]) -> tuple[int, float, str]:
    from iotauth.cli import main

    out, err = io.StringIO(), io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, time.perf_counter() - start, err.getvalue()


@contextlib.contextmanager
def counted_requests() -> Iterator[Counter[str]]:
    """DynamoDB requests this process's moto server answers meanwhile, by operation."""
    from moto.dynamodb.responses import DynamoHandler

    counts: Counter[str] = Counter()
    current = DynamoHandler.call_action

    def counting(self: Any) -> Any:
        counts[self._get_action()] += 1
        return current(self)

    DynamoHandler.call_action = counting  # type: ignore[method-assign]
    try:
        yield counts
    finally:
        DynamoHandler.call_action = current  # type: ignore[method-assign]


def bench_import(
    endpoint: str | None, n: int, *, table: str = "bench-import", singly: int = 0
) -> dict[str, float]:
    """Time a dry run and an ``--apply`` of ``n`` generated lines into an empty ``table`` at
    ``endpoint`` (a moto server URL; None: start one here, and count its requests). Prints
    and returns the rates; with ``singly``, also an ``--apply`` of that many lines written
    one identity per transaction (as before issue 14's grouping), into a second table."""
    from iotauth.identities import bulk
    from iotauth.local.moto_fleet import installed

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = None
    if endpoint is None:
        from moto.server import ThreadedMotoServer

        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
    env = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "IOTAUTH_TABLE": table,
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    rates: dict[str, float] = {}
    try:
        with installed(), serialized_moto_transactions(), tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "passwd"
            path.write_text(mosquitto_lines(n))
            _run_cli(["devices", "create-table"])
            base = ["devices", "import", str(path), "--format", "mosquitto"]
            for label, extra in (("dry run", []), ("apply", ["--apply"])):
                with counted_requests() as counts:
                    code, seconds, err = _run_cli([*base, *extra])
                if code != 0:
                    print(f"  {label}: failed ({code}): {err.strip().splitlines()[-1:]}")
                    continue
                rates[label] = n / seconds
                print(f"  import {label:<8} {n:>6} identities in {seconds:6.2f} s: "
                      f"{n / seconds:8.0f} identities/s")  # fmt: skip
                if server is not None:
                    ops = dict(sorted(counts.items()))
                    print(f"    requests per identity: {sum(ops.values()) / n:.3f} {ops}")
            if singly:
                path.write_text(mosquitto_lines(singly, prefix="one"))
                os.environ["IOTAUTH_TABLE"] = f"{table}-singly"
                _run_cli(["devices", "create-table"])
                saved_group, bulk.GROUP_IDENTITIES = bulk.GROUP_IDENTITIES, 1
                try:
                    with counted_requests() as counts:
                        code, seconds, err = _run_cli([*base, "--apply"])
                finally:
                    bulk.GROUP_IDENTITIES = saved_group
                if code == 0:
                    rates["apply singly"] = singly / seconds
                    print(f"  import apply, one identity per transaction (before issue 14): "
                          f"{singly} in {seconds:.2f} s: {singly / seconds:.0f} identities/s, "
                          f"{sum(counts.values()) / singly:.3f} requests per identity")  # fmt: skip
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if server is not None:
            server.stop()
    return rates


def main() -> None:
    n = int(os.environ.get("BENCH_IMPORT_N", "5000"))
    singly = int(os.environ.get("BENCH_IMPORT_SINGLY", str(min(n, 1000))))
    print("devices import against moto on 127.0.0.1 (goal: dry run >= 1000/s, apply >= 200/s)")
    bench_import(None, n, singly=singly)


if __name__ == "__main__":
    main()
    sys.exit(0)
