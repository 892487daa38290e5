"""The local stand-in at fleet size: ``iotauth local`` (a real process, as ``make run`` runs it)
holding ``IOTAUTH_BENCH_FLEET`` identities (default 100,000; two items each).

Prints: the stand-in's RSS before and after seeding (and after the rest), the seeding rate
(``BatchWriteItem`` of the items ``devices add`` writes), ``iotauth devices list --limit 100``
time (on the CLI's standard-library client, then through botocore for comparison), the
CLI's start-up, the DynamoDB requests one ``devices add`` and an import's ``--apply`` make
per identity at that size (counted by a proxy between the CLI and the stand-in), and
``devices import`` rates, dry run and ``--apply``, for ``IOTAUTH_BENCH_IMPORT`` (default
2,000) generated Mosquitto ``$7$`` lines.
A row whose flag the CLI refuses prints "n/a (not implemented)".

A test harness, not a product: figures only, no goal, never assertions.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import http.server
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar

PORTS = [f"--{n}-port=0" for n in ("web", "signer", "aws", "mqtt", "mqtts", "ws", "iot")]
IOTAUTH = str(Path(sys.executable).with_name("iotauth"))


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _start(env: dict[str, str]) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    process = subprocess.Popen(
        [IOTAUTH, "local", *PORTS],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line or line.startswith("Press Ctrl-C"):
            break
    state_file = Path(env["XDG_RUNTIME_DIR"]) / "iotauth" / "local.json"
    state: dict[str, Any] = json.loads(state_file.read_text())
    return process, state


def _seed(client: Any, table: str, count: int) -> float:
    from iotauth.identities.credentials import generate_secret, hash_generated_secret
    from iotauth.identities.records import IdentityRecord, client_id_key

    verifier = hash_generated_secret(generate_secret())  # one hash: seeding, not hashing
    now = int(time.time())
    batch: list[dict[str, Any]] = []
    start = time.perf_counter()
    for i in range(count):
        record = IdentityRecord(
            username=f"fleet-{i:06d}",
            kind="secret",
            verifier=verifier,
            rooms=("chat/lobby",),
            created_at=now,
            updated_at=now,
        )
        batch.append({"PutRequest": {"Item": record.to_item()}})
        for client_id in record.allowed_client_ids():
            item = {"pk": {"S": client_id_key(client_id)}, "owner": {"S": record.username}}
            batch.append({"PutRequest": {"Item": item}})
        if len(batch) >= 24 or i == count - 1:
            pending: dict[str, Any] = {table: batch}
            while pending:
                pending = client.batch_write_item(RequestItems=pending)["UnprocessedItems"]
            batch = []
    return time.perf_counter() - start


class _Counting(http.server.BaseHTTPRequestHandler):
    """Forwards to the stand-in, counting DynamoDB operations by ``X-Amz-Target``."""

    target_port = 0
    counts: ClassVar[Counter[str]] = Counter()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        operation = self.headers.get("X-Amz-Target", "?").rsplit(".", 1)[-1]
        type(self).counts[operation] += 1
        upstream = http.client.HTTPConnection("127.0.0.1", self.target_port, timeout=120)
        headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
        headers["Host"] = f"127.0.0.1:{self.target_port}"
        upstream.request("POST", self.path, body=body, headers=headers)
        answer = upstream.getresponse()
        payload = answer.read()
        self.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        upstream.close()

    def log_message(self, *args: Any) -> None:
        pass


def _cli(env: dict[str, str], *argv: str, stdin: bytes = b"") -> tuple[int, float, str]:
    start = time.perf_counter()
    result = subprocess.run(
        [IOTAUTH, *argv], env=env, input=stdin, check=False, capture_output=True, timeout=3600
    )
    return result.returncode, time.perf_counter() - start, result.stderr.decode(errors="replace")


def _refused(code: int, stderr: str) -> bool:
    return code == 2 and ("unrecognized arguments" in stderr or "invalid choice" in stderr)


def _mosquitto_lines(count: int, prefix: str) -> str:
    lines = []
    for i in range(count):
        salt = os.urandom(12)
        digest = hashlib.pbkdf2_hmac("sha512", f"pw-{i}".encode(), salt, 101)
        encoded = [base64.b64encode(x).decode() for x in (salt, digest)]
        lines.append(f"{prefix}-{i:05d}:$7$101${encoded[0]}${encoded[1]}")
    return "\n".join(lines) + "\n"


def main() -> None:
    import boto3

    count = int(os.environ.get("IOTAUTH_BENCH_FLEET", "100000"))
    imports = int(os.environ.get("IOTAUTH_BENCH_IMPORT", "2000"))
    with tempfile.TemporaryDirectory(prefix="iotauth-bench-fleet-") as scratch:
        root = Path(scratch)
        (root / "run").mkdir(mode=0o700)
        (root / "tmp").mkdir()
        base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "IOTAUTH_"))}
        env = {**base, "XDG_RUNTIME_DIR": str(root / "run"), "TMPDIR": str(root / "tmp")}
        process, state = _start(env)
        try:
            from iotauth.local.state import cli_environment

            cli_env = {**env, **cli_environment(state)}
            client = boto3.client(
                "dynamodb",
                endpoint_url=cli_env["AWS_ENDPOINT_URL"],
                region_name=cli_env["AWS_REGION"],
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            )
            pid = int(state["pid"])
            before = _rss_mb(pid)
            seconds = _seed(client, cli_env["IOTAUTH_TABLE"], count)
            after = _rss_mb(pid)
            print(f"fleet: {count:,} identities ({2 * count:,} items) in iotauth local (pid {pid})")
            print(f"  RSS before seeding          {before:8.1f} MB")
            per_item = (after - before) * 1024 * 1024 / (2 * count)
            print(f"  RSS after seeding           {after:8.1f} MB  ({per_item:.0f} B/item)")
            rate = count / seconds
            print(f"  seeding (BatchWriteItem)    {rate:8.0f} identities/s ({seconds:.1f} s)")

            # The first Scan after seeding builds the stand-in's scan order (once per process,
            # then kept in step by writes); the process's own start-up is the CLI's.
            for label in ("first", "again"):
                argv = ("devices", "list", "--limit", "100", "--json")
                code, took, err = _cli(cli_env, *argv)
                row = f"{took:.2f} s (exit {code})"
                row = "n/a (not implemented)" if _refused(code, err) else row
                print(f"  devices list --limit 100 ({label}) {row}")
            # The same listing through botocore (as for a user whose AWS config file names
            # the endpoint: only botocore reads it), for comparison in the same run.
            config = root / "aws-config"
            config.write_text(f"[default]\nendpoint_url = {cli_env['AWS_ENDPOINT_URL']}\n")
            boto_env = {**cli_env, "AWS_CONFIG_FILE": str(config)}
            code, took, err = _cli(boto_env, "devices", "list", "--limit", "100", "--json")
            print(f"  devices list --limit 100 (botocore) {took:.2f} s (exit {code})")
            code, took, err = _cli(cli_env, "--version")
            print(f"  the CLI's own start-up       {took:.2f} s (iotauth --version)")
            code, took, err = _cli(cli_env, "devices", "list", "--help")
            print(f"  the CLI's devices list --help {took:.2f} s")

            proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Counting)
            _Counting.target_port = int(state["aws_port"])
            threading.Thread(target=proxy.serve_forever, daemon=True).start()
            counted = {**cli_env, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{proxy.server_address[1]}"}
            _Counting.counts.clear()
            code, took, err = _cli(counted, "devices", "add", "fleet-extra")
            ops = dict(sorted(_Counting.counts.items()))
            print(f"  devices add at this size    {took:.2f} s (exit {code}), requests {ops}")
            # What an import's --apply sends per identity (a smaller export, through the
            # counting proxy: the rates below are measured without it).
            counted_export = root / "passwd-counted"
            counted_export.write_text(_mosquitto_lines(500, "counted"), encoding="utf-8")
            _Counting.counts.clear()
            argv = ["devices", "import", "--format", "mosquitto", "--apply", str(counted_export)]
            code, took, err = _cli(counted, *argv)
            ops = dict(sorted(_Counting.counts.items()))
            per = sum(ops.values()) / 500
            print(f"  import --apply requests     {per:.3f} per identity (500 lines, exit {code}): "
                  f"{ops}")  # fmt: skip
            proxy.shutdown()
            proxy.server_close()

            export = root / "passwd"
            export.write_text(_mosquitto_lines(imports, "imported"), encoding="utf-8")
            for label, extra in (("dry run", []), ("--apply", ["--apply"])):
                argv = ["devices", "import", "--format", "mosquitto", *extra, str(export)]
                code, took, err = _cli(cli_env, *argv)
                row = f"{imports / took:8.0f} lines/s ({took:.1f} s, exit {code})"
                row = "n/a (not implemented)" if _refused(code, err) else row
                print(f"  import {label:<8} {imports:>6,}   {row}")
            print(f"  RSS at the end              {_rss_mb(pid):8.1f} MB")
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


if __name__ == "__main__":
    main()
