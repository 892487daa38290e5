"""``make invoke`` against ``make run``: the built authorizer, behind the Lambda Runtime
Interface Emulator, answers the ``events/authorizer`` fixtures from the stand-in's table,
which the stack seeds with the identities they name; ``tools/lambda_invoke.py`` exits 0 on
an allow and 1 on a deny (as `iotauth authorize`), printing the decision.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from iotauth.local.stack import StackInfo

ROOT = Path(__file__).resolve().parent.parent.parent
BUILD = ROOT / ".aws-sam" / "build"
EVENTS = ROOT / "events" / "authorizer"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.sam,
    pytest.mark.skipif(
        not (BUILD / "template.yaml").is_file(), reason=".aws-sam/build is missing: make build"
    ),
]


@pytest.mark.parametrize(
    ("event", "code", "decision"),
    [
        ("connect-mqtt.json", 0, "allow"),
        ("connect-wss.json", 0, "allow"),
        ("wrong-password.json", 1, "deny"),
        ("unknown-user.json", 1, "deny"),
    ],
)
def test_make_invoke_answers_from_the_running_stack(
    stack: StackInfo,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    event: str,
    code: int,
    decision: str,
) -> None:
    from tools.lambda_invoke import main

    # As a developer's shell may be: real-looking credentials that must not reach the function.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAREALLOOKING")
    monkeypatch.setenv("AWS_PROFILE", "production")
    monkeypatch.delenv("IOTAUTH_TABLE", raising=False)
    argv = ["AuthorizerFunction", str(EVENTS / event), "--quiet"]
    assert main([*argv, "--endpoint-url", stack.aws_endpoint_url]) == code
    out, err = capsys.readouterr()
    assert json.loads(out)["isAuthenticated"] is (decision == "allow")
    assert f"lambda_invoke: decision: {decision}" in err
