"""`iotauth authorize --deployed`: IoT's TestInvokeAuthorizer, against a stub of that API.

The stub (tests/iot_authorizer_stub.py) answers over HTTP via ``AWS_ENDPOINT_URL``, so the
request is checked as botocore put it on the wire: the password from stdin, base64.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest

from iotauth.cli import EXIT_AWS, EXIT_DENIED, EXIT_OK, EXIT_USAGE
from tests.cli_support import Run, cli_runner
from tests.iot_authorizer_stub import IotAuthorizerStub, iot_authorizer

__all__ = ["iot_authorizer"]  # the fixture, used by name

PASSWORD = b"a long passphrase \xff"  # not UTF-8: IoT passes bytes through
POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": "iot:Connect",
            "Resource": "arn:aws:iot:us-east-1:123456789012:client/alice",
        },
        {
            "Effect": "Allow",
            "Action": ["iot:Publish", "iot:Receive"],
            "Resource": ["arn:aws:iot:us-east-1:123456789012:topic/d/alice/*"],
        },
    ],
}
ANSWER = {
    "principalId": "iotauthalice",
    "policyDocuments": [json.dumps(POLICY)],
    "disconnectAfterInSeconds": 86400,
    "refreshAfterInSeconds": 300,
}


@pytest.fixture
def run(
    iot_authorizer: IotAuthorizerStub,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Run:
    iot_authorizer.accept("fleet-auth", "alice", PASSWORD, ANSWER)
    return cli_runner(monkeypatch, capsys)


def _deployed(run: Run, *argv: str, password: bytes = PASSWORD) -> tuple[int, str, str]:
    return run(
        "authorize", "--deployed", "--authorizer-name", "fleet-auth", "--username", "alice",
        "--password-stdin", *argv, stdin=password + b"\n",
    )  # fmt: skip


def test_allowed_is_explained(run: Run, iot_authorizer: IotAuthorizerStub) -> None:
    code, out, err = _deployed(run, "--server-name", "d-ats.iot.us-east-1.amazonaws.com")
    assert code == EXIT_OK and err == ""
    assert out.startswith("allowed: the deployed authorizer 'fleet-auth' authenticated 'alice'")
    assert "principalId: iotauthalice" in out
    assert "disconnectAfterInSeconds: 86400" in out and "refreshAfterInSeconds: 300" in out
    assert "policy 1 of 1:" in out
    assert (
        "  Allow iot:Publish, iot:Receive on arn:aws:iot:us-east-1:123456789012:topic/d/alice/*"
        in out
    )
    assert json.dumps(POLICY, indent=2) in out  # pretty-printed
    (request,) = iot_authorizer.requests
    assert request["path"] == "/authorizer/fleet-auth/test"
    assert request["body"] == {
        "mqttContext": {
            "username": "alice",
            "password": base64.b64encode(PASSWORD).decode(),  # from stdin, newline dropped
            "clientId": "alice",
        },
        "tlsContext": {"serverName": "d-ats.iot.us-east-1.amazonaws.com"},
    }
    assert "Authorization" in request["headers"]  # signed like any AWS call


def test_denied_exits_1_and_says_where_the_reason_is(run: Run) -> None:
    code, out, _ = _deployed(run, password=b"a wrong passphrase")
    assert code == EXIT_DENIED
    assert out.startswith("denied: the deployed authorizer 'fleet-auth' did not authenticate")
    assert "isAuthenticated=false" in out and "CloudWatch logs" in out
    assert "a wrong passphrase" not in out
    code, out, _ = _deployed(run, "--client-id", "bob")  # the stub knows alice/alice only
    assert code == EXIT_DENIED


def test_json_is_the_api_answer(run: Run) -> None:
    code, out, _ = _deployed(run, "--json")
    assert code == EXIT_OK and json.loads(out) == {"isAuthenticated": True, **ANSWER}
    code, out, _ = _deployed(run, "--json", password=b"wrong wrong wrong")
    assert code == EXIT_DENIED and json.loads(out) == {"isAuthenticated": False}


def test_api_failures_exit_3_and_a_missing_authorizer_2(
    run: Run, iot_authorizer: IotAuthorizerStub
) -> None:
    code, out, err = run(
        "authorize", "--deployed", "--authorizer-name", "nope", "--username", "alice",
        "--password-stdin", stdin=PASSWORD,
    )  # fmt: skip
    assert code == EXIT_DENIED  # the stub's default: an unknown authorizer denies
    iot_authorizer.fail(401, "UnauthorizedException", "not allowed\nsecond line")
    code, out, err = _deployed(run)
    assert code == EXIT_AWS and out == ""
    assert err == "iotauth: error: iot:TestInvokeAuthorizer failed: UnauthorizedException: " \
        "not allowed\n"  # fmt: skip
    iot_authorizer.fail(404, "ResourceNotFoundException", "no such authorizer")
    code, out, err = _deployed(run)
    assert code == EXIT_USAGE and "is the authorizer named 'fleet-auth'?" in err
    iot_authorizer.fail(400, "InvalidResponseException", "bad response")
    code, _, err = _deployed(run)
    assert code == EXIT_AWS and "see its logs" in err
    assert PASSWORD.decode("utf-8", "replace") not in err


def test_unreachable_endpoint_exits_3(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # discard: nothing listens
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    code, out, err = _deployed(run)
    assert code == EXIT_AWS and out == "" and err.startswith("iotauth: error:")
    assert err.count("\n") == 1


def test_the_password_never_comes_from_argv(
    run: Run, iot_authorizer: IotAuthorizerStub, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        run("authorize", "--deployed", "--username", "alice", "--password", "a long passphrase")
    assert exc.value.code == EXIT_USAGE
    err = capsys.readouterr().err
    assert "shell history" in err and "a long passphrase" not in err
    code, _, err = run("authorize", "--deployed", "--username", "alice")
    assert code == EXIT_USAGE and "--password-stdin" in err
    assert iot_authorizer.requests == []


def test_the_real_command_in_a_subprocess(iot_authorizer: IotAuthorizerStub) -> None:
    """As a script runs it: password piped in, exit status tested, nothing in argv."""
    iot_authorizer.accept("fleet-auth", "alice", PASSWORD, ANSWER)
    argv = ["authorize", "--deployed", "--authorizer-name", "fleet-auth", "--username", "alice"]
    root = Path(__file__).resolve().parents[2]
    cli = "import sys; from iotauth.cli import main; sys.exit(main(sys.argv[1:]))"
    for password, expected in ((PASSWORD, EXIT_OK), (b"not it at all", EXIT_DENIED)):
        done = subprocess.run(
            [sys.executable, "-c", cli, *argv, "--password-stdin"],
            input=password,
            capture_output=True,
            cwd=root,
            timeout=60,
            check=False,
        )
        assert done.returncode == expected, done.stderr
        assert password not in done.stdout + done.stderr
