"""Revocation time for devices: `iotauth devices disable` against the local stand-in while the
device is connecting, with a Lambda-like authorizer (every answer 0.15-0.4 s late, seeded).

The stand-in runs as IoT does here: the gateway waits 5 s for the authorizer, and the CLI
(a subprocess, as users run it, pointed at the stand-in) uses its default wait before the
second pass (``SETTLE_SECONDS``, 6 s). Each try: a new identity with three client ids, one
paho client per id cycling CONNECTs (connect, leave after a moment, reconnect) until the
record is written (a watcher reads it), then holding what it gets, as a device does; then
`disable`. Revocation time: command start -> the command has returned, when no session of
the identity exists (checked once the device's last CONNECTs have been answered).

Prints, for 20 tries with two passes (the default) and 20 with one pass (``--settle-seconds
0``, the old behaviour): median and worst revocation time, sessions that survived, and tries
whose second pass closed a session opened by a CONNECT in flight. Figures only.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

TRIES = 20
LATENCY = (0.15, 0.4)
CLIENT_IDS = 3
WAIT = 5.0
_CLI = "import sys; from iotauth.cli import main; sys.exit(main(sys.argv[1:]))"


@dataclass
class _Connector:
    port: int
    username: str
    secret: str
    client_id: str
    written: threading.Event
    stop: threading.Event
    rng: random.Random
    made: list[Any] = field(default_factory=list)

    def _connect(self) -> tuple[Any, threading.Event, bool]:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        answered, closed = threading.Event(), threading.Event()
        ok: list[bool] = []
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=self.client_id, reconnect_on_failure=False
        )

        def on_connect(c: Any, u: Any, f: Any, rc: Any, p: Any) -> None:
            ok.append(not rc.is_failure)
            answered.set()

        def on_disconnect(c: Any, u: Any, f: Any, rc: Any, p: Any) -> None:
            closed.set()
            answered.set()

        client.on_connect = on_connect
        client.on_disconnect = on_disconnect
        client.username_pw_set(self.username, self.secret)
        self.made.append(client)
        try:
            client.connect("127.0.0.1", self.port, keepalive=30)
        except OSError:
            return client, closed, False
        client.loop_start()
        answered.wait(WAIT)
        return client, closed, bool(ok and ok[0] and not closed.is_set())

    def run(self) -> None:
        while not self.stop.is_set():
            client, closed, ok = self._connect()
            if ok and not self.written.is_set():
                self.stop.wait(self.rng.uniform(0.0, 0.03))
            if ok and self.written.is_set():
                while not (self.stop.is_set() or closed.wait(0.05)):
                    pass
                if not closed.is_set():
                    return  # a live session when stopped: left open to be counted
            client.disconnect()
            client.loop_stop()

    def close(self) -> None:
        for client in self.made:
            client.disconnect()
            client.loop_stop()


def _watch(store: Any, name: str, written: threading.Event, stop: threading.Event) -> None:
    """Set ``written`` once the record reads disabled (a consistent read every 10 ms)."""
    while not stop.is_set():
        record = store.get_identity(name)
        if record is not None and record.status == "disabled":
            written.set()
            return
        stop.wait(0.01)


def _one_try(
    stack: Any, store: Any, env: dict[str, str], settle: float | None, n: int
) -> dict[str, Any]:
    from iotauth.identities.credentials import issue_secret
    from iotauth.identities.records import IdentityRecord

    info = stack.info
    name = f"bench-revoke-{n}-{time.monotonic_ns() % 100000}"
    ids = [f"{name}-c{i}" for i in range(CLIENT_IDS)]
    secret, verifier = issue_secret()
    now = int(time.time())
    store.add_identity(
        IdentityRecord(
            username=name,
            kind="secret",
            verifier=verifier,
            client_ids=tuple(ids),
            created_at=now,
            updated_at=now,
        )
    )
    written, stop = threading.Event(), threading.Event()
    rng = random.Random(n)
    username = f"{name}?x-amz-customauthorizer-name={info.authorizer_name}"
    connectors = [
        _Connector(info.mqtt_port, username, secret, i, written, stop, random.Random(rng.random()))
        for i in ids
    ]
    threads = [threading.Thread(target=c.run, daemon=True) for c in connectors]
    watcher = threading.Thread(target=_watch, args=(store, name, written, stop), daemon=True)
    for thread in [*threads, watcher]:
        thread.start()
    try:
        stop.wait(rng.uniform(0.4, 0.8))
        argv = ["devices", "disable", name, "--json"]
        if settle is not None:
            argv += ["--settle-seconds", f"{settle:g}"]
        start = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-c", _CLI, *argv],
            env=env,
            capture_output=True,
            timeout=60,
            check=False,
        )
        elapsed = time.monotonic() - start
        stop.set()
        for thread in [*threads, watcher]:
            thread.join(WAIT + 1)
        live = set(stack.live_client_ids()) & set(ids)
        report = json.loads(done.stdout) if done.returncode == 0 else {"passes": []}
        late = [c for p in report["passes"][1:] for c in p["closed"]]
        return {
            "seconds": elapsed,
            "survived": bool(live),
            "late": bool(late),
            "code": done.returncode,
        }
    finally:
        stop.set()
        for connector in connectors:
            connector.close()


def _summary(label: str, results: list[dict[str, Any]]) -> str:
    times = [r["seconds"] for r in results]
    failed = sum(r["code"] != 0 for r in results)
    return (
        f"{label:<30} median {statistics.median(times):5.2f} s  worst {max(times):5.2f} s  "
        f"sessions survived {sum(r['survived'] for r in results)}/{len(results)}  "
        f"closed by the 2nd pass in {sum(r['late'] for r in results)}/{len(results)}"
        + (f"  CLI failures {failed}" if failed else "")
    )


def main() -> None:
    import boto3

    from iotauth.identities.revocation import SETTLE_SECONDS
    from iotauth.identities.store import DynamoDBStore
    from iotauth.local.stack import LocalPorts, LocalStack

    out = sys.stdout  # the figures; the handlers' logs and metrics go to /dev/null
    with (
        open(os.devnull, "w", encoding="utf-8") as logs,
        contextlib.redirect_stdout(logs),
        LocalStack(
            LocalPorts.any_free(), authorizer_latency=LATENCY, latency_seed=15, handler_logs=logs
        ) as stack,
    ):
        info = stack.info
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "IOTAUTH_"))} | {
            "AWS_ENDPOINT_URL": info.aws_endpoint_url,
            "AWS_REGION": info.region,
            "AWS_DEFAULT_REGION": info.region,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "IOTAUTH_TABLE": info.table_name,
        }
        client = boto3.client(
            "dynamodb",
            endpoint_url=info.aws_endpoint_url,
            region_name=info.region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        store = DynamoDBStore(info.table_name, client=client)
        print(
            f"disable while connecting; authorizer answers {LATENCY[0]}-{LATENCY[1]} s late, "
            f"gateway waits 5 s; {TRIES} tries each; CLI as a subprocess",
            file=out,
            flush=True,
        )
        two = [_one_try(stack, store, env, None, n) for n in range(TRIES)]
        print(_summary(f"two passes ({SETTLE_SECONDS:g} s apart)", two), file=out, flush=True)
        one = [_one_try(stack, store, env, 0.0, TRIES + n) for n in range(TRIES)]
        print(_summary("one pass (--settle-seconds 0)", one), file=out, flush=True)


if __name__ == "__main__":
    main()
