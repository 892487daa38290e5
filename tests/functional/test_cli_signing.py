"""``iotauth sign-url`` and ``iotauth aliyun-credentials`` through the real entry point."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlsplit

import pytest

from iotauth.cli import main
from iotauth.wire.sigv4 import presign_mqtt_url

ENDPOINT = "a1b2c3-ats.iot.eu-west-1.amazonaws.com"
REGION = "eu-west-1"
AK, SK = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
WHEN = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_sign_url_with_credentials_on_stdin(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The JSON `aws sts assume-role --query Credentials` prints, piped in."""
    creds = {"AccessKeyId": AK, "SecretAccessKey": SK, "SessionToken": "tok/en", "Expiration": "x"}
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(creds)))
    code, out, err = run(
        capsys,
        "sign-url",
        "--endpoint", ENDPOINT,
        "--region", REGION,
        "--credentials-stdin",
        "--at", "2025-01-02T03:04:05Z",
        "--expires", "900",
    )  # fmt: skip
    assert (code, err) == (0, "")
    assert out == presign_mqtt_url(ENDPOINT, REGION, AK, SK, "tok/en", now=WHEN, expires=900) + "\n"


def test_sign_url_from_the_standard_variables_without_botocore(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env |= {"AWS_ACCESS_KEY_ID": AK, "AWS_SECRET_ACCESS_KEY": SK, "AWS_SESSION_TOKEN": "t/k"}
    code = (
        "import sys; from iotauth.cli import main; "
        f"rc = main(['sign-url', '--endpoint', {ENDPOINT!r}, '--region', {REGION!r}, "
        f"'--at', {WHEN.isoformat()!r}]); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'boto3', 'botocore'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60,
        check=True,
    )  # fmt: skip
    url, modules = result.stdout.splitlines()
    assert url == presign_mqtt_url(ENDPOINT, REGION, AK, SK, "t/k", now=WHEN)
    assert modules == "[]"


def test_sign_url_from_the_default_chain(aws_env: None, capsys: pytest.CaptureFixture[str]) -> None:
    # aws_env puts AWS_ACCESS_KEY_ID=testing etc. in the environment.
    code, out, _ = run(
        capsys, "sign-url", "--endpoint", ENDPOINT, "--region", REGION, "--at", WHEN.isoformat()
    )
    assert code == 0
    assert out.strip() == presign_mqtt_url(
        ENDPOINT, REGION, "testing", "testing", "testing", now=WHEN
    )
    params = dict(parse_qsl(urlsplit(out.strip()).query))
    assert params["X-Amz-Security-Token"] == "testing"


@pytest.mark.parametrize(
    ("argv", "stdin", "message"),
    [
        (["--credentials-stdin"], "", "expected a JSON object"),
        (["--credentials-stdin"], json.dumps({"AccessKeyId": AK}), "SecretAccessKey"),
        (["--credentials-stdin"], SK, "expected a JSON object"),
        (["--at", "2025-01-02T03:04:05"], "", "timezone"),
        (["--at", "yesterday"], "", "ISO 8601"),
        (["--expires", "0"], "", "expires"),
    ],
)
def test_sign_url_errors_are_one_line(
    aws_env: None,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    stdin: str,
    message: str,
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code, out, err = run(capsys, "sign-url", "--endpoint", ENDPOINT, "--region", REGION, *argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("iotauth: error:") and message in err
    assert SK not in err


@pytest.mark.parametrize(
    "argv",
    [
        ["sign-url", "--endpoint", ENDPOINT, "--region", REGION, "--secret-key", SK],
        ["sign-url", "--endpoint", ENDPOINT, "--region", REGION, "--session-token", SK],
        ["sign-url", "--endpoint", ENDPOINT, "--region", REGION, "--access-key", AK],
        ["aliyun-credentials", "--product-key", "pk", "--device-name", "d", "--client-id", "c",
         "--device-secret", SK],
    ],
)  # fmt: skip
def test_secrets_on_the_command_line_are_refused(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    out, err = capsys.readouterr()
    assert out == "" and "shell history" in err and SK not in err


def test_sign_url_bad_region(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "sign-url", "--endpoint", ENDPOINT, "--region", "Mars")
    assert code == 2 and "invalid region" in err


def test_aliyun_credentials_published_example(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("secret\n"))
    code, out, err = run(
        capsys,
        "aliyun-credentials",
        "--product-key", "pk",
        "--device-name", "device",
        "--device-secret-stdin",
        "--client-id", "12345",
        "--timestamp", "789",
        "--securemode", "3",
    )  # fmt: skip
    assert (code, err) == (0, "")
    assert json.loads(out) == {
        "url": "ws://pk.iot-as-mqtt.cn-shanghai.aliyuncs.com:443",
        "clientId": "12345|securemode=3,signmethod=hmacsha1,timestamp=789|",
        "username": "device&pk",
        "password": "fafd82a3d602b37fb0fa8b7892f24a477f851a14",
    }


def test_aliyun_credentials_secret_from_stdin(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("secret\n"))
    code, out, _ = run(
        capsys,
        "aliyun-credentials",
        "--product-key", "pk",
        "--device-name", "device",
        "--device-secret-stdin",
        "--client-id", "12345",
        "--timestamp", "789",
        "--instance-id", "iot-06z00ax1o4d1z2v",
        "--signmethod", "hmacsha256",
    )  # fmt: skip
    assert code == 0
    result = json.loads(out)
    assert result["url"] == "wss://iot-06z00ax1o4d1z2v.mqtt.iothub.aliyuncs.com:443"
    assert result["clientId"] == "12345|securemode=2,signmethod=hmacsha256,timestamp=789|"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--client-id", "x" * 65, "--device-secret-stdin"], "at most 64"),
        (["--client-id", "c", "--device-secret-stdin", "--timestamp", "soon"], "digits"),
        (["--client-id", "c", "--device-secret-stdin"], "stdin"),
        (["--client-id", "c"], "--device-secret-stdin"),
    ],
)
def test_aliyun_credentials_errors(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    message: str,
) -> None:
    stdin = "s\n" if "x" * 65 in argv or "soon" in argv else ""
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code, out, err = run(
        capsys, "aliyun-credentials", "--product-key", "pk", "--device-name", "dev", *argv
    )
    assert code == 2 and out == "" and err.count("\n") == 1 and message in err


def test_region_and_instance_are_exclusive() -> None:
    argv = "aliyun-credentials --product-key pk --device-name d --device-secret-stdin"
    argv += " --client-id c --region cn-shanghai --instance-id iot-1"
    with pytest.raises(SystemExit) as exc:
        main(argv.split())
    assert exc.value.code == 2


def test_signing_commands_stay_light() -> None:
    code = (
        "import sys, iotauth.cli.signing as s; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'boto3', 'botocore'}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=60
    )
    assert out.stdout.strip() == "[]"
