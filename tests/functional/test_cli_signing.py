"""``iotauth sign-url`` and ``iotauth aliyun-credentials`` through the real entry point."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlsplit

import pytest

from iotauth.cli import main
from iotauth.sigv4 import presign_mqtt_url

ENDPOINT = "a1b2c3-ats.iot.eu-west-1.amazonaws.com"
REGION = "eu-west-1"
AK, SK = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
WHEN = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_sign_url_with_keys(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys,
        "sign-url",
        "--endpoint", ENDPOINT,
        "--region", REGION,
        "--access-key", AK,
        "--secret-key", SK,
        "--session-token", "tok/en",
        "--at", "2025-01-02T03:04:05Z",
        "--expires", "900",
    )  # fmt: skip
    assert (code, err) == (0, "")
    assert out == presign_mqtt_url(ENDPOINT, REGION, AK, SK, "tok/en", now=WHEN, expires=900) + "\n"


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
    ("argv", "message"),
    [
        (["--access-key", AK], "go together"),
        (["--session-token", "t"], "needs --access-key"),
        (["--access-key", AK, "--secret-key", SK, "--at", "2025-01-02T03:04:05"], "timezone"),
        (["--access-key", AK, "--secret-key", SK, "--at", "yesterday"], "ISO 8601"),
        (["--access-key", "AK/ID", "--secret-key", SK], "access key"),
        (["--access-key", AK, "--secret-key", SK, "--expires", "0"], "expires"),
    ],
)
def test_sign_url_errors_are_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = run(capsys, "sign-url", "--endpoint", ENDPOINT, "--region", REGION, *argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("iotauth: error:") and message in err
    assert SK not in err


def test_sign_url_bad_region(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "sign-url", "--endpoint", ENDPOINT, "--region", "Mars")
    assert code == 2 and "invalid region" in err


def test_aliyun_credentials_published_example(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys,
        "aliyun-credentials",
        "--product-key", "pk",
        "--device-name", "device",
        "--device-secret", "secret",
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
        (["--client-id", "x" * 65, "--device-secret", "s"], "at most 64"),
        (["--client-id", "c", "--device-secret", "s", "--timestamp", "soon"], "digits"),
        (["--client-id", "c", "--device-secret-stdin"], "stdin"),
    ],
)
def test_aliyun_credentials_errors(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    message: str,
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    code, out, err = run(
        capsys, "aliyun-credentials", "--product-key", "pk", "--device-name", "dev", *argv
    )
    assert code == 2 and out == "" and err.count("\n") == 1 and message in err


def test_region_and_instance_are_exclusive() -> None:
    argv = "aliyun-credentials --product-key pk --device-name d --device-secret s"
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
