"""How long revoking a browser user takes, on the local stack (moto, the gateway, the signer).

Each of ROUNDS rounds: alice gets a presigned URL from the signer and connects over
WebSocket; then ``iotauth users disable alice`` runs as an operator runs it (a new process:
its boto3 import is part of the time) and the clock runs from its start until all of:
the live session is gone, the SAME URL no longer opens a session (its CONNECT is refused),
and the signer refuses alice a new URL (403). ``users enable alice`` ends the round.
``--settle-seconds 0``: the second DeleteConnection pass (6 s later by default) closes
CONNECTs in flight and changes nothing measured here. Prints the median and the worst;
also how many disabled users the client role's deny list holds (the IAM quota).

In the stand-in IAM is moto, read at each upgrade: the deny applies as soon as it is written.
On AWS the same Deny waits for IAM's propagation ("a few minutes", AWS documents), so the
old-URL part of this figure is the stand-in's alone (docs/design/web-revocation.md).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Any

ROUNDS = 20
BOUND = 5.0  # the goal, seconds
_CLI = "import sys; from iotauth.cli import main; sys.exit(main(sys.argv[1:]))"


def _signer(info: Any, user: str) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        info.signer_url, headers={"Authorization": f"Bearer {info.dev_tokens[user]}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, {}


def _env(info: Any) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "IOTAUTH_"))}
    env.update(
        AWS_ENDPOINT_URL=info.aws_endpoint_url,
        AWS_REGION=info.region,
        AWS_DEFAULT_REGION=info.region,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        IOTAUTH_TABLE=info.table_name,
        IOTAUTH_CLIENT_ROLE_ARN=info.client_role_arn,
    )
    return env


def _connects(info: Any, url: str) -> bool:
    from tests.e2e.conftest import Mqtt
    from tests.e2e.test_gateway_presigned import connect_ws

    client = Mqtt("web-alice", "ws")
    try:
        return connect_ws(client, info, url)
    except OSError:
        return False
    finally:
        client.close()


def one_round(info: Any, env: dict[str, str]) -> float:
    from tests.e2e.conftest import Mqtt
    from tests.e2e.test_gateway_presigned import connect_ws

    status, answer = _signer(info, "alice")
    assert status == 200, status
    url = answer["url"]
    live = Mqtt("web-alice", "ws")
    assert connect_ws(live, info, url)
    command = [sys.executable, "-c", _CLI, "users", "disable", "alice", "--settle-seconds", "0"]
    start = time.monotonic()
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        if not live.disconnected.wait(30):
            raise RuntimeError("the session was not closed within 30 s")
        deadline = start + 30
        while _connects(info, url):  # each success is a session the next pass would close
            if time.monotonic() > deadline:
                raise RuntimeError("the old URL still opens a session after 30 s")
        # The record is written first: by now the very next request is refused.
        refused = _signer(info, "alice")[0]
        elapsed = time.monotonic() - start
        if refused != 403:
            raise RuntimeError(f"the signer answered {refused}, not 403")
    finally:
        live.close()
        process.wait(timeout=60)
    enable = [sys.executable, "-c", _CLI, "users", "enable", "alice"]
    subprocess.run(enable, env=env, check=True, capture_output=True, timeout=60)
    return elapsed


def main() -> None:
    from iotauth.identities.web_users import DENY_POLICY_BUDGET, RETAIN_SECONDS, capacity
    from iotauth.local.stack import LocalPorts, LocalStack

    # Two signer calls a round, 20 rounds in about a minute: above the default per-user limit.
    with LocalStack(
        LocalPorts.any_free(), parameters={"SignerRequestsPerUserPerMinute": "600"}
    ) as stack:
        info = stack.info
        env = _env(info)
        times = [one_round(info, env) for _ in range(ROUNDS)]
    median, worst = statistics.median(times), max(times)
    print(
        f"browser user revocation, local stand-in, {ROUNDS} rounds (command start → session "
        f"gone, same URL refused, signer 403): median {median:.2f} s, worst {worst:.2f} s "
        f"(goal {BOUND:.0f} s: {'met' if worst <= BOUND else 'NOT met'})"
    )
    print(
        f"deny list: {DENY_POLICY_BUDGET} characters hold {capacity(40)} users with a Cognito "
        f"sub (web-<uuid>), {capacity(44)} with a digest name, {capacity(100)} at the longest "
        f"name, disabled within any {RETAIN_SECONDS // 60} min (older entries are dropped)"
    )


if __name__ == "__main__":
    main()
