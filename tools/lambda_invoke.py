"""Invoke a ``sam build`` artifact without Docker: ``make invoke FN=<LogicalId> EVENT=<file>``.

``sam local invoke`` needs a container runtime. This runs the same built function folder
(``.aws-sam/build/<LogicalId>``) behind the Lambda Runtime Interface Emulator that ships
inside the aws-sam-cli wheel, with ``awslambdaric`` as the runtime client, on 127.0.0.1:

    aws-lambda-rie  <-- POST /2015-03-31/functions/function/invocations  (this tool)
        └─ python -m awslambdaric app.lambda_handler   (cwd and PYTHONPATH = the artifact)

The runtime client lives in a small virtual environment of its own
(``.tools/lambda-runtime``: awslambdaric and boto3, which the real Lambda runtime provides
and the artifact deliberately does not bundle). Nothing from the development venv is on
the function's path, so a module missing from the artifact fails here as it would in Lambda.

Environment variables come from the built template (Globals and the function, resolved
by :class:`iotauth.local.template.Template` with parameter defaults or ``--parameter``
overrides; a resource's ``Ref`` is its logical id, ``GetAtt X.Arn`` a stand-in ARN), then
``--env-json`` (the ``sam local invoke --env-vars`` format), then ``--env KEY=VALUE``.
``--endpoint-url`` sets ``AWS_ENDPOINT_URL`` (e.g. a moto server). An endpoint on
127.0.0.1/localhost (``--endpoint-url`` or ``AWS_ENDPOINT_URL``, e.g. ``make run``'s stand-in)
gets the stand-in's fake credentials, never the caller's real ones, and ``IOTAUTH_TABLE``
from the environment or else ``iotauth-local`` (the table ``make run`` seeds with the
``events/authorizer`` identities).

Exit status, as the ``iotauth`` CLI's: 0 when the function answered (for the authorizer:
allowed), 1 when the authorizer denied (``isAuthenticated: false``), 2 for a usage error, 3
when the function failed; the
authorizer's decision is printed on stderr. This file is a development tool: it is not part
of any Lambda artifact.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from iotauth.access.scoping import ArnContext
from iotauth.local.template import Template, TemplateError

__all__ = [
    "Emulator",
    "FunctionSpec",
    "Invocation",
    "InvokeError",
    "ensure_runtime",
    "find_rie",
    "function_spec",
    "main",
]

REPO = Path(__file__).resolve().parent.parent
BUILD_DIR = REPO / ".aws-sam" / "build"
RUNTIME_DIR = REPO / ".tools" / "lambda-runtime"
SAM_VENV = REPO / ".tools" / "sam"
INVOKE_PATH = "/2015-03-31/functions/function/invocations"
LOCAL_TABLE = "iotauth-local"  # iotauth.local.provision.TABLE_NAME
# The iotauth CLI's exit codes (iotauth.cli): 1 = the answer is no, 3 = a failure.
EXIT_DENIED = 1
EXIT_FAILED = 3
RUNTIME_PACKAGES = ("awslambdaric>=3", "boto3")

# Only these are passed through from the caller's environment (never the whole of it).
PASS_THROUGH = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_ENDPOINT_URL",
    "HOME",
    "LANG",
)


class InvokeError(Exception):
    """A problem running the emulator; the message is one line for the user."""


# ---------------------------------------------------------------- template

#: The account of the ARNs that stand in for resources (the emulator's own ARN uses another).
ACCOUNT = "123456789012"
DEFAULT_REGION = "us-east-1"


def _stand_ins(template: Template) -> dict[str, str | list[str]]:
    """What a deployed stack would give for ``Ref``/``GetAtt X.Arn`` of its resources."""
    arn = template.arn
    prefix = f"arn:{arn.partition}"
    refs: dict[str, str | list[str]] = {}
    for name, resource in template.document.get("Resources", {}).items():
        refs[name] = name  # like sam local: a resource's Ref is its logical id
        kind = resource.get("Type") if isinstance(resource, dict) else None
        if kind == "AWS::IAM::Role":
            refs[f"{name}.Arn"] = f"{prefix}:iam::{arn.account}:role/{name}"
        elif kind == "AWS::DynamoDB::Table":
            refs[f"{name}.Arn"] = f"{prefix}:dynamodb:{arn.region}:{arn.account}:table/{name}"
        elif kind == "AWS::Serverless::Function":
            refs[f"{name}.Arn"] = f"{prefix}:lambda:{arn.region}:{arn.account}:function:{name}"
    return refs


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    code_dir: Path
    handler: str
    function_name: str
    timeout: int
    memory: int
    environment: dict[str, str]


def function_spec(
    logical_id: str,
    *,
    build_dir: Path = BUILD_DIR,
    parameters: Mapping[str, str] | None = None,
    region: str | None = None,
) -> FunctionSpec:
    """What the built template says about one function, with its environment resolved.

    The environment is resolved by :class:`iotauth.local.template.Template` (the same reader
    the local stack uses): parameter defaults or ``parameters``, pseudo parameters, and
    stand-ins for the stack's resources (``Ref`` → logical id, ``GetAtt X.Arn`` → an ARN).
    """
    built = build_dir / "template.yaml"
    if not built.is_file():
        raise InvokeError(f"{built} is missing: run `sam build` (make build) first")
    region = region or os.environ.get("AWS_REGION") or DEFAULT_REGION
    try:
        template = Template.load(built, ArnContext("aws", region, ACCOUNT), parameters)
        resource = template.document["Resources"].get(logical_id)
        if not isinstance(resource, dict) or resource.get("Type") != "AWS::Serverless::Function":
            functions = [
                name
                for name, spec in template.document["Resources"].items()
                if isinstance(spec, dict) and spec.get("Type") == "AWS::Serverless::Function"
            ]
            raise InvokeError(f"no function {logical_id!r} in the template; have: {functions}")
        refs = _stand_ins(template)
        globals_ = template.document.get("Globals", {}).get("Function", {}) or {}
        props = {**globals_, **(resource.get("Properties") or {})}
        environment = template.function_environment(logical_id, refs)
        name = template.resolve(props.get("FunctionName", logical_id), refs)
    except TemplateError as exc:
        raise InvokeError(str(exc)) from None
    code_dir = build_dir / logical_id
    if not code_dir.is_dir():
        raise InvokeError(f"{code_dir} is missing: run `sam build` (make build) first")
    return FunctionSpec(
        logical_id=logical_id,
        code_dir=code_dir,
        handler=str(props.get("Handler", "app.lambda_handler")),
        function_name=str(name),
        timeout=int(props.get("Timeout", 3)),
        memory=int(props.get("MemorySize", 128)),
        environment=environment,
    )


# ---------------------------------------------------------------- runtime and emulator


def find_rie(sam_venv: Path = SAM_VENV) -> Path:
    """The emulator binary shipped in the aws-sam-cli wheel, for this machine."""
    arch = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine().lower()
    )
    if arch is None:
        raise InvokeError(f"no Runtime Interface Emulator for {platform.machine()}")
    for candidate in sorted(
        sam_venv.glob(f"lib/python3*/site-packages/samcli/local/rapid/aws-lambda-rie-{arch}")
    ):
        if os.access(candidate, os.X_OK):
            return candidate
    raise InvokeError(
        f"aws-lambda-rie-{arch} not found under {sam_venv}: install aws-sam-cli (make dev)"
    )


def ensure_runtime(runtime_dir: Path = RUNTIME_DIR, *, quiet: bool = True) -> Path:
    """The runtime's python (awslambdaric + boto3), creating the venv on first use."""
    python = runtime_dir / "bin" / "python"
    marker = runtime_dir / ".installed"
    if marker.is_file() and python.exists():
        return python
    if not python.exists():
        # From inside a venv, `-m venv` builds on the base interpreter: nothing of ours leaks in.
        subprocess.run([sys.executable, "-m", "venv", str(runtime_dir)], check=True)  # noqa: S603
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check"]
    if quiet:
        pip.append("-q")
    subprocess.run([*pip, *RUNTIME_PACKAGES], check=True)  # noqa: S603
    marker.touch()
    return python


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class Invocation:
    status: int
    body: bytes
    function_error: str | None

    def json(self) -> Any:
        return json.loads(self.body)


class Emulator:
    """One function behind the emulator on 127.0.0.1; use as a context manager."""

    def __init__(
        self,
        spec: FunctionSpec,
        *,
        env: Mapping[str, str] | None = None,
        runtime_python: Path | None = None,
        rie: Path | None = None,
        log: Any = None,
        unset: tuple[str, ...] = (),
    ) -> None:
        self.spec = spec
        self.extra_env = dict(env or {})
        self.unset = unset  # caller variables not passed through
        self.runtime_python = runtime_python or ensure_runtime()
        self.rie = rie or find_rie()
        self.log = log if log is not None else subprocess.DEVNULL
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    def environment(self, runtime_api_port: int) -> dict[str, str]:
        spec = self.spec
        env = {k: os.environ[k] for k in PASS_THROUGH if k in os.environ and k not in self.unset}
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        region = region or DEFAULT_REGION
        env.update(
            {
                "PATH": "/usr/local/bin:/usr/bin:/bin",
                "TZ": "UTC",
                "AWS_REGION": region,
                "AWS_DEFAULT_REGION": region,
                "AWS_LAMBDA_FUNCTION_NAME": spec.function_name,
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory),
                "AWS_LAMBDA_FUNCTION_TIMEOUT": str(spec.timeout),
                "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
                "LAMBDA_TASK_ROOT": str(spec.code_dir),
                "_HANDLER": spec.handler,
                # The artifact first, as /var/task is in Lambda; nothing else of the repo.
                "PYTHONPATH": str(spec.code_dir),
                "PYTHONDONTWRITEBYTECODE": "1",
                "PYTHONNOUSERSITE": "1",
            }
        )
        env.update(spec.environment)
        env.update(self.extra_env)
        return env

    def start(self, *, ready_timeout: float = 10.0) -> None:
        self.port = _free_port()
        runtime_api_port = _free_port()
        command = [
            str(self.rie),
            "--runtime-interface-emulator-address",
            f"127.0.0.1:{self.port}",
            "--runtime-api-address",
            f"127.0.0.1:{runtime_api_port}",
            str(self.runtime_python),
            "-s",
            "-m",
            "awslambdaric",
            self.spec.handler,
        ]
        self._process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            command,
            cwd=self.spec.code_dir,
            env=self.environment(runtime_api_port),
            stdout=self.log,
            stderr=self.log,
        )
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise InvokeError(f"the emulator exited with status {self._process.returncode}")
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            time.sleep(0.05)
        self.stop()
        raise InvokeError("the emulator did not start listening in time")

    def invoke(self, event: bytes, *, timeout: float | None = None) -> Invocation:
        if self._process is None:
            raise InvokeError("the emulator is not running")
        conn = http.client.HTTPConnection(
            "127.0.0.1", self.port, timeout=timeout or self.spec.timeout + 30
        )
        try:
            conn.request(
                "POST", INVOKE_PATH, body=event, headers={"Content-Type": "application/json"}
            )
            response = conn.getresponse()
            body = response.read()
            error = response.getheader("X-Amz-Function-Error")
            return Invocation(response.status, body, error)
        finally:
            conn.close()

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def __enter__(self) -> Emulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def emulated(logical_id: str, **kwargs: Any) -> Iterator[Emulator]:
    env = kwargs.pop("env", None)
    with Emulator(function_spec(logical_id, **kwargs), env=env) as emulator:
        yield emulator


# ---------------------------------------------------------------- command line


def _env_file(path: str, logical_id: str) -> dict[str, str]:
    """``sam local invoke --env-vars`` format: {"Parameters": {...}, "<LogicalId>": {...}}."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvokeError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise InvokeError(f"{path}: expected a JSON object")
    env: dict[str, str] = {}
    for section in ("Parameters", logical_id):
        values = data.get(section) or {}
        if not isinstance(values, dict):
            raise InvokeError(f"{path}: {section} must be an object")
        env.update({str(k): str(v) for k, v in values.items()})
    return env


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="lambda_invoke",
        description="Invoke a sam build artifact behind the Lambda Runtime Interface Emulator "
        "(no Docker).",
    )
    parser.add_argument("function", help="logical id, e.g. AuthorizerFunction")
    parser.add_argument("event", help="event JSON file ('-' for stdin)")
    parser.add_argument("--build-dir", default=str(BUILD_DIR))
    parser.add_argument("--env-json", help="sam local invoke --env-vars style JSON file")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument(
        "--parameter",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="template parameter override used to resolve the environment",
    )
    parser.add_argument("--endpoint-url", help="sets AWS_ENDPOINT_URL (e.g. a moto server)")
    parser.add_argument(
        "--quiet", action="store_true", help="hide the emulator's and function's logs"
    )
    return parser.parse_args(argv)


def _pairs(items: list[str], what: str) -> dict[str, str]:
    result: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvokeError(f"{what} must look like NAME=VALUE, got {item!r}")
        result[key] = value
    return result


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return host in ("127.0.0.1", "localhost", "::1")


def _local_environment(env: dict[str, str]) -> tuple[dict[str, str], tuple[str, ...]]:
    """For an endpoint on this machine: the stand-in's fake credentials (a local server never
    needs, and must never receive, real ones) and the local table, unless given."""
    local = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "IOTAUTH_TABLE": os.environ.get("IOTAUTH_TABLE") or LOCAL_TABLE,
    }
    return {**local, **env}, ("AWS_SESSION_TOKEN", "AWS_PROFILE")


def _decision(result: Invocation) -> bool | None:
    """The authorizer's decision, if this is an authorizer's answer."""
    try:
        answer = result.json()
    except ValueError:
        return None
    if isinstance(answer, dict) and isinstance(answer.get("isAuthenticated"), bool):
        return bool(answer["isAuthenticated"])
    return None


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    try:
        event = sys.stdin.buffer.read() if args.event == "-" else Path(args.event).read_bytes()
        json.loads(event)
    except OSError as exc:
        print(f"lambda_invoke: error: cannot read {args.event}: {exc.strerror}", file=sys.stderr)
        return 2
    except ValueError:
        print(f"lambda_invoke: error: {args.event} is not JSON", file=sys.stderr)
        return 2
    try:
        spec = function_spec(
            args.function,
            build_dir=Path(args.build_dir),
            parameters=_pairs(args.parameter, "--parameter"),
        )
        env: dict[str, str] = {}
        if args.env_json:
            env.update(_env_file(args.env_json, args.function))
        env.update(_pairs(args.env, "--env"))
        if args.endpoint_url:
            env["AWS_ENDPOINT_URL"] = args.endpoint_url
        unset: tuple[str, ...] = ()
        endpoint = env.get("AWS_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL", "")
        if endpoint and _is_loopback(endpoint):
            env, unset = _local_environment(env)
        log = subprocess.DEVNULL if args.quiet else sys.stderr
        runtime = ensure_runtime(quiet=True)
        with Emulator(spec, env=env, runtime_python=runtime, log=log, unset=unset) as emu:
            result = emu.invoke(event)
    except InvokeError as exc:
        print(f"lambda_invoke: error: {exc}", file=sys.stderr)
        return 2
    try:
        print(json.dumps(result.json(), indent=2, sort_keys=True))
    except ValueError:
        sys.stdout.write(result.body.decode("utf-8", "replace") + "\n")
    if result.status != 200 or result.function_error:
        print(
            f"lambda_invoke: the function failed (HTTP {result.status}, "
            f"{result.function_error or 'no error type'})",
            file=sys.stderr,
        )
        return EXIT_FAILED
    decision = _decision(result)
    if decision is not None:
        print(f"lambda_invoke: decision: {'allow' if decision else 'deny'}", file=sys.stderr)
        if not decision:
            return EXIT_DENIED
    return 0


if __name__ == "__main__":
    sys.exit(main())
