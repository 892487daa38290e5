"""Revoking a browser user against the local stack, as an operator runs it: `iotauth users
disable alice` closes alice's live session, the SAME presigned URL can no longer open one
(the stand-in checks it against moto's IAM at each upgrade, the client role's deny list
included, as IoT does against IAM), and the signer refuses her a new URL (403); `users enable`
lets her back in. Every wait is bounded (tests/e2e/conftest.py: WAIT); the time it all takes
is measured by bench/web_revocation.py."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest

from iotauth.local.stack import LocalPorts, LocalStack, StackInfo
from tests.cli_support import Run, cli_runner
from tests.e2e.conftest import WAIT, Mqtt
from tests.e2e.test_gateway_presigned import connect_ws, signed_url, signer_get
from tests.stack_support import point_cli_at

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def running() -> Iterator[LocalStack]:
    with LocalStack(LocalPorts.any_free()) as stack:
        yield stack


@pytest.fixture(scope="module")
def stack(running: LocalStack) -> StackInfo:
    return running.info


@pytest.fixture
def cli(
    stack: StackInfo, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Run:
    point_cli_at(stack, monkeypatch)
    return cli_runner(monkeypatch, capsys)


def test_disable_closes_the_session_refuses_the_old_url_and_new_urls(
    stack: StackInfo, running: LocalStack, cli: Run, clients: Callable[..., Mqtt]
) -> None:
    answer = signed_url(stack, "alice")
    url, client_id = answer["url"], answer["clientId"]
    assert client_id == "web-alice"
    live = clients(client_id, "ws")
    assert connect_ws(live, stack, url)
    assert client_id in running.live_client_ids()

    code, out, err = cli("users", "disable", "alice", "--json")  # two passes, 6 s apart
    assert code == 0, err
    result = json.loads(out)
    assert result["deny"] == "applied" and result["closed"] == ["web-alice"]
    assert live.disconnected.wait(WAIT), "the live session is still open"
    assert client_id not in running.live_client_ids()

    # The very URL alice had: the upgrade's signature is still good, her CONNECT is not.
    again = clients(client_id, "ws")
    assert not connect_ws(again, stack, url)
    assert again.connack is not None and again.connack.is_failure
    assert client_id not in running.live_client_ids()
    # No new URL: the signer reads the record on every request.
    status, headers, body = signer_get(stack, stack.dev_tokens["alice"])
    assert status == 403 and headers["Cache-Control"] == "no-store"
    assert b"X-Amz" not in body
    # bob is not affected, neither his URL nor his session.
    bob = clients("web-bob", "ws")
    assert connect_ws(bob, stack, signed_url(stack, "bob")["url"])

    code, out, err = cli("users", "enable", "alice", "--json")
    assert code == 0, err
    back = clients(client_id, "ws")
    assert connect_ws(back, stack, signed_url(stack, "alice")["url"])
    assert not bob.disconnected.is_set()


def test_show_and_list_name_the_disabled_user(stack: StackInfo, cli: Run) -> None:
    code, _, err = cli("users", "disable", "carol", "--settle-seconds", "0")
    assert code == 0, err
    assert "no live connection found" in err
    shown = json.loads(cli("users", "show", "carol", "--json")[1])
    assert shown["status"] == "disabled" and shown["inDenyList"] is True
    listed = json.loads(cli("users", "list", "--json")[1])
    assert "web-carol" in [u["username"] for u in listed["users"]]
    assert cli("users", "enable", "carol")[0] == 0
    assert json.loads(cli("users", "show", "carol", "--json")[1])["status"] == "active"
