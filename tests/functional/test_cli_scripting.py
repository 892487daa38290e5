"""`iotauth` in scripts: exit statuses, ``--json``, ``--version``, a closed stdout pipe.

The lifecycle commands run against moto's DynamoDB with botocore's Stubber as IoT's data
plane (as in test_cli_revocation.py); the pipe test runs the real command in a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from iotauth import __version__
from iotauth.cli import EXIT_AWS, EXIT_DENIED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, main
from iotauth.cli import signing as signing_cli
from iotauth.identities.credentials import is_generated_shape, verify_password
from iotauth.identities.store import DynamoDBStore, StoreError
from tests.cli_support import Run

ROOT = Path(__file__).resolve().parents[2]
CLI = "import sys; from iotauth.cli import main; sys.exit(main(sys.argv[1:]))"


def test_exit_codes_are_distinct_and_documented(capsys: pytest.CaptureFixture[str]) -> None:
    assert len({EXIT_OK, EXIT_DENIED, EXIT_USAGE, EXIT_AWS, EXIT_INTERRUPTED}) == 5
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "exit status:" in out
    for code, words in ((1, "the answer is no"), (2, "usage"), (3, "AWS"), (130, "Ctrl-C")):
        assert any(line.split()[:1] == [str(code)] and words in line for line in out.splitlines())


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out == f"iotauth {__version__}\n"


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["devices", "frobnicate"])
    assert exc.value.code == EXIT_USAGE
    code = main(["sign-url", "--endpoint", "e", "--region", "r", "--at", "yesterday"])
    assert code == EXIT_USAGE and "not an ISO 8601 time" in capsys.readouterr().err


def test_aws_failures_exit_3_in_one_line(
    aws_env: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Errors no command wrapped (botocore's, the store's) still end as one line, status 3."""
    argv = ["sign-url", "--endpoint", "e.example", "--region", "us-east-1"]
    failures: list[tuple[BaseException, str]] = [
        (
            ClientError(
                {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded\nmore"}},
                "DescribeEndpoint",
            ),
            "DescribeEndpoint failed: ThrottlingException: Rate exceeded\n",
        ),
        (
            StoreError("DynamoDB Query failed: ProvisionedThroughputExceededException"),
            "DynamoDB Query failed: ProvisionedThroughputExceededException\n",
        ),
    ]
    for failure, message in failures:

        def fail(args: object, failure: BaseException = failure) -> int:
            raise failure

        monkeypatch.setattr(signing_cli, "_sign_url", fail)
        capsys.readouterr()
        code = main(argv)
        out, err = capsys.readouterr()
        assert code == EXIT_AWS and out == ""
        assert err == f"iotauth: error: {message}"

    def bug(args: object) -> int:
        raise RuntimeError("a bug")  # not an AWS error: the traceback is wanted

    monkeypatch.setattr(signing_cli, "_sign_url", bug)
    with pytest.raises(RuntimeError):
        main(argv)


def test_ctrl_c_exits_130(monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(args: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(signing_cli, "_sign_url", interrupted)
    assert main(["sign-url", "--endpoint", "e", "--region", "us-east-1"]) == EXIT_INTERRUPTED


def _run_into_closed_pipe(*argv: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone already, as `| head -1` is after its line
    try:
        return subprocess.run(
            [sys.executable, "-c", CLI, *argv],
            input=stdin,
            stdout=write_end,
            stderr=subprocess.PIPE,
            cwd=ROOT,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)


@pytest.mark.parametrize(
    ("argv", "stdin"),
    [
        (("sign-url", "--endpoint", "a-ats.iot.us-east-1.amazonaws.com", "--region",
          "us-east-1"), b""),
        (("aliyun-credentials", "--product-key", "pk", "--device-name", "d", "--client-id",
          "c", "--device-secret-stdin"), b"device secret\n"),
        (("--help",), b""),
    ],
)  # fmt: skip
def test_a_closed_stdout_ends_quietly(aws_env: None, argv: tuple[str, ...], stdin: bytes) -> None:
    done = _run_into_closed_pipe(*argv, stdin=stdin)
    assert done.returncode == 0, done.stderr
    assert done.stderr == b""  # no traceback, no "Exception ignored … BrokenPipeError"


def test_sign_url_json(aws_env: None, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["sign-url", "--endpoint", "a-ats.iot.us-east-1.amazonaws.com", "--region"]
    argv += ["us-east-1", "--at", "2025-01-01T12:00:00Z"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert main([*argv, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"url": text.strip()}


# -- the lifecycle commands' --json ----------------------------------------------------------


@pytest.fixture
def run(cli_with_table: Run) -> Run:
    return cli_with_table


def _live(stub: Stubber, client_id: str, *, live: bool = True) -> None:
    params = {"clientId": client_id, "cleanSession": False, "preventWillMessage": True}
    if live:
        stub.add_response("delete_connection", {}, params)
    else:
        stub.add_client_error(
            "delete_connection", "ResourceNotFoundException", http_status_code=404,
            expected_params=params,
        )  # fmt: skip


def test_lifecycle_json(run: Run, iot_data: Stubber) -> None:
    assert run("devices", "add", "sensor-1", "--client-id", "s1a", "--client-id", "s1b")[0] == 0
    _live(iot_data, "s1a")
    _live(iot_data, "s1b", live=False)
    code, out, err = run("devices", "disable", "sensor-1", "--json")
    assert code == 0 and "is now disabled" in err
    assert json.loads(out) == {
        "username": "sensor-1",
        "status": "disabled",
        "disconnect": "done",
        "closed": ["s1a"],
        "notConnected": ["s1b"],
        "passes": [{"closed": ["s1a"], "notConnected": ["s1b"]}],  # one: SETTLE_SECONDS is 0
        "settleSeconds": 0.0,
    }
    code, out, _ = run("devices", "enable", "sensor-1", "--json")
    assert code == 0 and json.loads(out) == {"username": "sensor-1", "status": "active"}
    _live(iot_data, "s1b", live=False)
    code, out, _ = run("devices", "disconnect", "sensor-1", "--client-id", "s1b", "--json")
    assert code == 0 and json.loads(out)["notConnected"] == ["s1b"]
    code, out, _ = run("devices", "remove", "sensor-1", "--no-disconnect", "--json")
    assert code == 0
    assert json.loads(out) == {
        "username": "sensor-1",
        "removed": True,
        "disconnect": "skipped",
        "closed": [],
        "notConnected": [],
    }
    # Without --json the text is on stderr, as before, and stdout stays empty.
    assert run("devices", "add", "sensor-2")[0] == 0
    code, out, err = run("devices", "disable", "sensor-2", "--no-disconnect")
    assert code == 0 and out == "" and "left open" in err


def test_rotate_json_carries_the_new_secret_on_stdout_only(run: Run) -> None:
    old = run("devices", "add", "sensor-3")[1].strip()
    code, out, err = run("devices", "rotate", "sensor-3", "--no-disconnect", "--json")
    assert code == 0
    answer = json.loads(out)
    secret = answer.pop("secret")
    assert is_generated_shape(secret.encode()) and secret != old and secret not in err
    assert answer == {
        "username": "sensor-3",
        "rotated": "secret",
        "disconnect": "skipped",
        "closed": [],
        "notConnected": [],
    }
    record = DynamoDBStore("iotauth-cli").get_identity("sensor-3")
    assert record is not None and verify_password(secret.encode(), record.verifier)
    assert not verify_password(old.encode(), record.verifier)
    # In text mode the secret is alone on stdout, as before.
    code, out, err = run("devices", "rotate", "sensor-3", "--no-disconnect")
    assert code == 0 and is_generated_shape(out.strip().encode()) and out.count("\n") == 1


def test_a_failed_deleteconnection_exits_3_and_still_reports(run: Run, iot_data: Stubber) -> None:
    run("devices", "add", "sensor-4")
    iot_data.add_client_error("delete_connection", "ForbiddenException", http_status_code=403)
    code, out, err = run("devices", "disable", "sensor-4", "--json")
    assert code == EXIT_AWS and "ForbiddenException" in err
    answer = json.loads(out)
    assert answer["status"] == "disabled" and answer["disconnect"] == "failed"
    assert "ForbiddenException" in answer["error"]


def test_store_answers_exit_2_and_store_failures_exit_3(
    run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = run("devices", "enable", "nobody", "--json")
    assert code == EXIT_USAGE and "no identity 'nobody'" in err
    run("devices", "add", "sensor-5")

    def throttled(self: object, *args: object, **kwargs: object) -> None:
        raise StoreError("DynamoDB PutItem failed: ThrottlingException")

    monkeypatch.setattr(DynamoDBStore, "replace_identity", throttled)
    code, out, err = run("devices", "disable", "sensor-5", "--no-disconnect", "--json")
    assert code == EXIT_AWS and out == "" and "ThrottlingException" in err
