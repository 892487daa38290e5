"""Cold start of the built functions, next to bare Python, boto3 and Node.js + AWS SDK v3.

Each figure is the wall time of a fresh process and its CPU time (user + system, which other
load on the machine disturbs less), median of ``RUNS``, all rows interleaved round by round
after one warm-up round, in one run. A child stops itself as soon as it has done its part
(Python ``os._exit(0)``, Node ``process.exit(0)``): the interpreter's teardown at exit, which
a Lambda cold start never includes (the process lives on), is no part of any figure.

- ``ready``: the interpreter starts and does what its handler needs before its first AWS
  call — for iotauth's functions, importing the ``sam build`` artifact (``import app``: init
  builds settings and clients); for the baselines, importing the SDK and constructing the
  client. No request is made. Neither SDK resolves credentials before a call; iotauth's
  client reads them from the environment when it is built.
- ``+ first call``: the same, then one call (DynamoDB ``BatchGetItem`` / STS ``AssumeRole``;
  for the signer a whole ``GET /mqtt-url`` through its handler) to a stub on 127.0.0.1 over
  plain HTTP (``AWS_ENDPOINT_URL``), so lazily loaded SDK code counts, but no TLS handshake
  and no network.

Python rows run on the interpreter of ``.tools/lambda-runtime`` (python3.13 with boto3 and
botocore as the Lambda runtime provides them; bytecode as shipped). Node rows run ``node``
(the version is printed) with ``@aws-sdk/client-dynamodb`` / ``client-sts`` from
``bench/node`` (``npm ci`` on first use). The Lambda runtime's own bootstrap (Python's
``awslambdaric``, Node's runtime client) is the same for every function of a language and
is not part of any figure. Figures only: timings vary by machine and load.

``iotauth authorizer, tokens on`` is the authorizer with token auth configured
(``IOTAUTH_TOKEN_ISSUER``): its ``ready`` includes loading the token path and fetching the
issuer's JWKS (one RSA and one EC key, from the stub); its first call is a whole token
CONNECT through the handler (an RS256 ID token as the ``$jwt`` password: JWS parse and
signature, claims, the disabled-user ``GetItem``). Without a token issuer none of that code
is imported.

``IOTAUTH_BENCH_BASELINE=<git rev>`` (``make bench BASELINE=<rev>``) adds both functions as
that revision ships them, measured in the same interleaved rounds: the current artifact's
third-party packages with that revision's ``app.py`` and ``iotauth`` (less ``cli`` and
``local``), compiled the same way, so a refactor's cold start is compared before and after.
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NODE_DIR = ROOT / "bench" / "node"
BUILD = ROOT / ".aws-sam" / "build"
RUNS = 15
TABLE = "bench"
ROLE = "arn:aws:iam::123456789012:role/bench"


@dataclass
class Row:
    label: str
    argv: list[str]
    first_call: list[str] | None = None
    env: dict[str, str] = field(default_factory=dict)
    # `python -c` puts the working directory first on sys.path: never the source tree (it
    # would import iotauth from source instead of the artifact's bytecode).
    cwd: Path = BUILD
    ready: list[tuple[float, float]] = field(default_factory=list)  # (wall, cpu) seconds
    called: list[tuple[float, float]] = field(default_factory=list)


# -- what each child runs ---------------------------------------------------------------------

_CONTEXT = (
    "class C:\n"
    "    function_name='bench'; function_version='1'; memory_limit_in_mb=512\n"
    "    invoked_function_arn='arn:aws:lambda:us-east-1:123456789012:function:bench'\n"
    "    aws_request_id='bench'\n"
)
_SIGNER_EVENT = {
    "version": "2.0",
    "rawPath": "/mqtt-url",
    "headers": {"origin": "https://app.example.com"},
    "requestContext": {
        "http": {"method": "GET", "path": "/mqtt-url"},
        "requestId": "bench",
        "authorizer": {"jwt": {"claims": {"sub": "bench-user"}}},
    },
}
_KEYS = "{'bench': {'Keys': [{'pk': {'S': 'identity#bench'}}], 'ConsistentRead': True}}"
_NODE_DDB = (
    "const {DynamoDBClient, BatchGetItemCommand} = require('@aws-sdk/client-dynamodb');"
    "const c = new DynamoDBClient({});"
)
_NODE_DDB_CALL = (
    _NODE_DDB + "c.send(new BatchGetItemCommand({RequestItems: {bench: {Keys: "
    "[{pk: {S: 'identity#bench'}}], ConsistentRead: true}}}))"
    ".then(() => process.exit(0), (e) => { console.error(e.name); process.exit(1); });"
)
_NODE_STS = (
    "const {STSClient, AssumeRoleCommand} = require('@aws-sdk/client-sts');"
    "const c = new STSClient({});"
)
_NODE_STS_CALL = (
    _NODE_STS + f"c.send(new AssumeRoleCommand({{RoleArn: '{ROLE}', RoleSessionName: 'bench'}}))"
    ".then(() => process.exit(0), (e) => { console.error(e.name); process.exit(1); });"
)


_TOKEN_AUDIENCE = "bench-app"


class _TokenBench:
    """An issuer's keys (made per run, public half served by the stub) and one RS256 ID token."""

    def __init__(self) -> None:
        sys.path.insert(0, str(ROOT))
        from tests.token_support import SigningKey  # the tests' signer (PyJWT): dev only

        rsa_key, ec_key = SigningKey("RS256", "bench-r"), SigningKey("ES256", "bench-e")
        self.jwks = json.dumps({"keys": [rsa_key.jwk, ec_key.jwk]}).encode()
        self.issuer = ""  # the stub's URL, once it listens (``env``)
        self._key = rsa_key

    def env(self, endpoint: str) -> dict[str, str]:
        self.issuer = f"{endpoint}/issuer"
        return {
            "IOTAUTH_TOKEN_ISSUER": self.issuer,
            "IOTAUTH_TOKEN_JWKS_URL": f"{endpoint}/jwks.json",
            "IOTAUTH_TOKEN_AUDIENCE": _TOKEN_AUDIENCE,
            "IOTAUTH_TOKEN_ALGORITHMS": "RS256,ES256",
        }

    def connect_event(self) -> dict[str, object]:
        now = int(time.time())
        claims = {"iss": self.issuer, "aud": _TOKEN_AUDIENCE, "sub": "bench-user",
                  "iat": now, "exp": now + 3600, "token_use": "id"}  # fmt: skip
        token = self._key.sign(claims)
        return {
            "protocols": ["mqtt"],
            "protocolData": {
                "mqtt": {
                    "username": "$jwt",
                    "password": base64.b64encode(token.encode()).decode(),
                    "clientId": "web-bench-user",
                }
            },
            "connectionMetadata": {"id": "bench"},
        }


def _py(code: str) -> str:
    """``code``, then stop at once (no teardown: see the module docstring)."""
    return f"{code}\nimport os; os._exit(0)"


def baseline_artifacts(rev: str, python: str, into: Path) -> dict[str, Path]:
    """``rev``'s handler and iotauth over a copy of each current artifact, compiled as built."""
    out = {}
    for function, folder in (("AuthorizerFunction", "authorizer"), ("SignerFunction", "signer")):
        target = into / function
        shutil.copytree(BUILD / function, target)
        shutil.rmtree(target / "iotauth")
        archive = subprocess.run(
            ["git", "archive", rev, f"{folder}/app.py", "iotauth"],
            cwd=ROOT, capture_output=True, check=True,
        ).stdout  # fmt: skip
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
        shutil.move(target / folder / "app.py", target / "app.py")
        shutil.rmtree(target / folder)
        for unused in ("local", "cli"):
            shutil.rmtree(target / "iotauth" / unused, ignore_errors=True)
        (target / "app.cpython-313.pyc").unlink(missing_ok=True)
        compile_ = [python, "-m", "compileall", "-q", "-j", "0"]
        subprocess.run(
            [*compile_, "--invalidation-mode", "unchecked-hash", str(target)], check=True
        )
        out[function] = target
    return out


def rows(
    python: str,
    node: str | None,
    baseline: dict[str, Path] | None = None,
    tokens: tuple[_TokenBench, str] | None = None,
) -> list[Row]:
    authorizer = str(BUILD / "AuthorizerFunction")
    signer = str(BUILD / "SignerFunction")
    ddb_call = f"import boto3; boto3.client('dynamodb').batch_get_item(RequestItems={_KEYS})"
    sts_call = (
        f"import boto3; boto3.client('sts').assume_role(RoleArn='{ROLE}', RoleSessionName='bench')"
    )
    signer_call = (
        f"import app\n{_CONTEXT}r = app.lambda_handler({_SIGNER_EVENT!r}, C())\n"
        "assert r['statusCode'] == 200, r"
    )
    out = [
        Row("bare python3.13", [python, "-c", _py("pass")]),
        Row(
            "boto3 + DynamoDB client",
            [python, "-c", _py("import boto3; c = boto3.client('dynamodb')")],
            [python, "-c", _py(ddb_call)],
        ),
        Row(
            "boto3 + STS client",
            [python, "-c", _py("import boto3; c = boto3.client('sts')")],
            [python, "-c", _py(sts_call)],
        ),
        Row(
            "iotauth authorizer (artifact)",
            [python, "-c", _py("import app")],
            [python, "-c", _py("import app; app._container['store'].lookup('bench')")],
            {"PYTHONPATH": authorizer, "POWERTOOLS_SERVICE_NAME": "iotauth-authorizer"},
            cwd=Path(authorizer),  # as Lambda's /var/task
        ),
        Row(
            "iotauth signer (artifact)",
            [python, "-c", _py("import app")],
            [python, "-c", _py(signer_call)],
            {"PYTHONPATH": signer, "POWERTOOLS_SERVICE_NAME": "iotauth-signer"},
            cwd=Path(signer),
        ),
    ]
    if tokens is not None:
        bench, endpoint = tokens
        token_env = bench.env(endpoint)
        token_ready = (  # init fetched the issuer's two keys, once
            "import app\nj = app._container['tokens'].jwks\n"
            "assert (j.fetches, j.key_count) == (1, 2)"
        )
        token_call = (
            f"import app\n{_CONTEXT}r = app.lambda_handler({bench.connect_event()!r}, C())\n"
            "assert r['isAuthenticated'], r"
        )
        out.insert(
            4,
            Row(
                "iotauth authorizer, tokens on",
                [python, "-c", _py(token_ready)],
                [python, "-c", _py(token_call)],
                {
                    "PYTHONPATH": authorizer,
                    "POWERTOOLS_SERVICE_NAME": "iotauth-authorizer",
                    **token_env,
                },
                cwd=Path(authorizer),
            ),
        )
    for function, path in (baseline or {}).items():
        kind = "authorizer" if function == "AuthorizerFunction" else "signer"
        first = "import app; app._container['store'].lookup('bench')"
        out.append(
            Row(
                f"iotauth {kind} (baseline)",
                [python, "-c", _py("import app")],
                [python, "-c", _py(first if kind == "authorizer" else signer_call)],
                {"PYTHONPATH": str(path), "POWERTOOLS_SERVICE_NAME": f"iotauth-{kind}"},
                cwd=path,
            )
        )
    if node:
        out += [
            Row("bare node", [node, "-e", "process.exit(0)"], cwd=NODE_DIR),
            Row(
                "node + @aws-sdk/client-dynamodb",
                [node, "-e", _NODE_DDB + "process.exit(0);"],
                [node, "-e", _NODE_DDB_CALL],
                cwd=NODE_DIR,
            ),
            Row(
                "node + @aws-sdk/client-sts",
                [node, "-e", _NODE_STS + "process.exit(0);"],
                [node, "-e", _NODE_STS_CALL],
                cwd=NODE_DIR,
            ),
        ]
    return out


# -- the stub AWS endpoint --------------------------------------------------------------------

_STS_ANSWER = (
    '<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult>'
    "<Credentials><AccessKeyId>ASIABENCHBENCHBENCH1</AccessKeyId>"
    "<SecretAccessKey>benchbenchbenchbenchbenchbenchbenchbench</SecretAccessKey>"
    "<SessionToken>" + "IQoJb3JpZ2luX2VjEJr" * 30 + "</SessionToken>"
    "<Expiration>2099-01-01T00:00:00Z</Expiration></Credentials>"
    "<AssumedRoleUser><AssumedRoleId>AROABENCH:bench</AssumedRoleId>"
    "<Arn>arn:aws:sts::123456789012:assumed-role/bench/bench</Arn></AssumedRoleUser>"
    "</AssumeRoleResult><ResponseMetadata><RequestId>bench</RequestId></ResponseMetadata>"
    "</AssumeRoleResponse>"
).encode()


class _Stub(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    jwks = b'{"keys": []}'  # the token issuer's public keys (main sets them)

    def do_GET(self) -> None:
        body = self.jwks if self.path == "/jwks.json" else b"{}"
        self.send_response(200 if self.path == "/jwks.json" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.headers.get("X-Amz-Target", "").startswith("DynamoDB_"):
            body = json.dumps({"Responses": {TABLE: []}, "UnprocessedKeys": {}}).encode()
            headers = {
                "Content-Type": "application/x-amz-json-1.0",
                "x-amz-crc32": str(zlib.crc32(body)),
            }
        else:
            body, headers = _STS_ANSWER, {"Content-Type": "text/xml"}
        self.send_response(200)
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def stub_endpoint() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


# -- running ----------------------------------------------------------------------------------


def _base_env() -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG", "TMPDIR"}}
    return {
        **keep,
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "ASIABENCHBENCHBENCH0",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_SESSION_TOKEN": "bench",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
        "PYTHONDONTWRITEBYTECODE": "1",  # the artifact ships its bytecode; write nothing
        "IOTAUTH_TABLE": TABLE,
        "IOTAUTH_CLIENT_ROLE_ARN": ROLE,
        "IOTAUTH_IOT_ENDPOINT": "bench-ats.iot.us-east-1.amazonaws.com",
        "IOTAUTH_ALLOWED_ORIGINS": "https://app.example.com",
        "POWERTOOLS_METRICS_NAMESPACE": "iotauth",
    }


def _timed(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, timeout=60, check=False)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-3:]
        raise RuntimeError(f"{argv[0]} failed: {' | '.join(tail)}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def ensure_node() -> str | None:
    """``node`` with bench/node's packages installed (``npm ci`` when the lock changed)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        return None
    marker = NODE_DIR / "node_modules" / ".package-lock.json"
    lock = NODE_DIR / "package-lock.json"
    if not marker.is_file() or marker.stat().st_mtime < lock.stat().st_mtime:
        npm_ci = [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"]
        subprocess.run(npm_ci, cwd=NODE_DIR, check=True)
    return node


def runtime_python() -> str:
    sys.path.insert(0, str(ROOT))
    from tools.lambda_invoke import ensure_runtime

    return str(ensure_runtime())


def measure(table: list[Row], runs: int, endpoint: str) -> None:
    base = _base_env()
    called_env = {**base, "AWS_ENDPOINT_URL": endpoint}
    for round_ in range(runs + 1):  # round 0 warms caches and is not counted
        for row in table:
            env = {**base, **row.env}
            ready = _timed(row.argv, env, row.cwd)
            called = None
            if row.first_call:
                called = _timed(row.first_call, {**called_env, **row.env}, row.cwd)
            if round_:
                row.ready.append(ready)
                if called is not None:
                    row.called.append(called)


def _median(samples: list[tuple[float, float]], index: int) -> float:
    return statistics.median(sample[index] for sample in samples)


def report(table: list[Row], runs: int) -> None:
    figures: dict[str, dict[str, float]] = {}
    for row in table:
        figures[row.label] = {"wall": _median(row.ready, 0), "cpu": _median(row.ready, 1)}
        if row.called:
            figures[row.label] |= {"wall+": _median(row.called, 0), "cpu+": _median(row.called, 1)}

    def ms(label: str, key: str) -> str:
        value = figures[label].get(key)
        return f"{value * 1000:6.0f}" if value is not None else "     -"

    print(f"cold start of a fresh process, ms, median of {runs} (interleaved)")
    print(f"{'':34} {'ready':>13} {'+ first call':>13}")
    print(f"{'':34} {'wall':>6} {'cpu':>6} {'wall':>6} {'cpu':>6}")
    for row in table:
        cells = " ".join(ms(row.label, key) for key in ("wall", "cpu", "wall+", "cpu+"))
        print(f"{row.label:34} {cells}")
    comparisons = [
        ("iotauth authorizer (artifact)", "node + @aws-sdk/client-dynamodb", "goal <= 1.0x"),
        ("iotauth authorizer, tokens on", "node + @aws-sdk/client-dynamodb", "goal <= 1.0x"),
        ("iotauth authorizer, tokens on", "iotauth authorizer (artifact)", ""),
        ("iotauth authorizer (artifact)", "boto3 + DynamoDB client", ""),
        ("iotauth signer (artifact)", "boto3 + STS client", "goal <= 1.0x"),
        ("iotauth signer (artifact)", "node + @aws-sdk/client-sts", ""),
        ("iotauth authorizer (artifact)", "iotauth authorizer (baseline)", "no regression"),
        ("iotauth signer (artifact)", "iotauth signer (baseline)", "no regression"),
    ]
    print("ratios, ready wall / cpu; + first call wall / cpu:")
    for ours, theirs, goal in comparisons:
        if theirs not in figures:
            continue
        cells = []
        for key in ("wall", "cpu", "wall+", "cpu+"):
            mine, other = figures[ours].get(key), figures[theirs].get(key)
            cells.append(f"{mine / other:.2f}x" if mine and other else "-")
        print(f"  {ours} / {theirs}: {cells[0]} / {cells[1]}; {cells[2]} / {cells[3]}  {goal}")


def main() -> None:
    functions = ("AuthorizerFunction", "SignerFunction")
    missing = [f for f in functions if not (BUILD / f / "app.py").is_file()]
    if missing:
        print(f"cold start: no sam build artifacts ({', '.join(missing)}): run `make build` first")
        return
    python = runtime_python()
    version = subprocess.run([python, "-c", "import sys; print(sys.version.split()[0])"],
                             capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    node = ensure_node()
    node_version = "not found: Node rows skipped"
    if node:
        node_version = subprocess.run(
            [node, "--version"], capture_output=True, text=True, check=True
        ).stdout.strip()
    sdk = json.loads((NODE_DIR / "package.json").read_text())["dependencies"]
    packages = ", ".join(f"{k} {v}" for k, v in sdk.items())
    print(f"python {version} ({python}); node {node_version}; {packages}")
    rev = os.environ.get("IOTAUTH_BENCH_BASELINE", "").strip()
    with tempfile.TemporaryDirectory(prefix="iotauth-baseline-") as scratch:
        baseline = None
        if rev:
            short = ["git", "rev-parse", "--short", rev]
            done = subprocess.run(short, cwd=ROOT, capture_output=True, text=True, check=True)
            commit = done.stdout.strip()
            print(f"baseline: the artifacts as {rev} ({commit}) ships them")
            baseline = baseline_artifacts(rev, python, Path(scratch))
        token_bench = _TokenBench()
        _Stub.jwks = token_bench.jwks
        with stub_endpoint() as endpoint:
            table = rows(python, node, baseline, (token_bench, endpoint))
            measure(table, RUNS, endpoint)
    report(table, RUNS)


if __name__ == "__main__":
    main()
