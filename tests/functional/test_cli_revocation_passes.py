"""`iotauth devices disable|rotate|remove|disconnect` close twice: at once and after the wait.

The table is moto's; IoT's data plane is a fake port whose session list changes between the
passes, as when a CONNECT in flight during the change opens its session after the first one
(the e2e suite runs the real race against the local stand-in).
"""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from iotauth.cli.devices import lifecycle
from iotauth.identities.revocation import SETTLE_SECONDS, RevocationError, revoke
from iotauth.identities.store import DynamoDBStore
from tests.cli_support import Run, cli_runner


class _Iot:
    """DeleteConnection on a set of live client ids; ``straggler`` opens after pass one."""

    def __init__(self) -> None:
        self.live: set[str] = set()
        self.asked: list[str] = []
        self.straggler: str | None = None
        self.fail_on_second = False

    def disconnect(self, client_id: str) -> bool:
        self.asked.append(client_id)
        second = self.asked.count(client_id) > 1
        if second and self.fail_on_second:
            raise RevocationError("iot-data DeleteConnection failed: ThrottlingException")
        if second and client_id == self.straggler:
            self.live.add(client_id)  # its session opened during the wait
        if client_id in self.live:
            self.live.discard(client_id)
            return True
        return False


@pytest.fixture
def iot(moto_aws: None, monkeypatch: pytest.MonkeyPatch) -> _Iot:
    fake = _Iot()
    monkeypatch.setattr(lifecycle, "_disconnector", lambda args: fake)
    monkeypatch.setenv("IOTAUTH_TABLE", "iotauth-cli")
    DynamoDBStore("iotauth-cli").create_table()
    return fake


@pytest.fixture
def run(iot: _Iot, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Run:
    return cli_runner(monkeypatch, capsys)


def test_disable_closes_what_opened_during_the_wait_and_reports_after(run: Run, iot: _Iot) -> None:
    run("devices", "add", "s1", "--client-id", "s1-a", "--client-id", "s1-b")
    iot.live = {"s1-a"}
    iot.straggler = "s1-b"
    code, out, err = run("devices", "disable", "s1", "--json", "--settle-seconds", "0.2")
    assert code == 0, err
    assert iot.asked == ["s1-a", "s1-b", "s1-a", "s1-b"]
    doc = json.loads(out)
    assert doc["closed"] == ["s1-a", "s1-b"] and doc["notConnected"] == []
    assert doc["passes"] == [
        {"closed": ["s1-a"], "notConnected": ["s1-b"]},
        {"closed": ["s1-b"], "notConnected": ["s1-a"]},
    ]
    assert doc["settleSeconds"] == 0.2
    # The wait is said before it happens; what was closed only after the last pass.
    assert "warning: --settle-seconds 0.2, below 6 s" in err
    assert err.index("waiting 0.2 s for CONNECTs in flight") < err.index(
        "closed live connections: s1-a, s1-b"
    )
    assert "second pass: s1-b" in err


@pytest.mark.parametrize("command", ["disable", "rotate", "remove", "disconnect"])
def test_every_revoking_command_waits_the_safe_bound_by_default(
    run: Run, iot: _Iot, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    asked: list[dict[str, Any]] = []
    real = revoke

    def no_wait(plan: Any, port: Any, **kwargs: Any) -> Any:
        asked.append(kwargs)
        return real(
            plan,
            port,
            **{**kwargs, "sleep": lambda s: None, "clock": iter([0.0, SETTLE_SECONDS]).__next__},
        )

    monkeypatch.setattr(lifecycle, "revoke", no_wait)
    run("devices", "add", "s2")
    code, _, err = run("devices", command, "s2")
    assert code == 0, err
    assert [a["settle_seconds"] for a in asked] == [SETTLE_SECONDS]
    assert "warning" not in err
    assert iot.asked == ["s2", "s2"]  # two passes


def test_settle_seconds_zero_is_one_pass_with_a_warning(run: Run, iot: _Iot) -> None:
    run("devices", "add", "s3")
    code, out, err = run("devices", "disable", "s3", "--json", "--settle-seconds", "0")
    assert code == 0
    assert iot.asked == ["s3"] and len(json.loads(out)["passes"]) == 1
    assert "warning: one pass only" in err and "may keep its session" in err


@pytest.mark.parametrize("bad", ["-1", "nan", "inf", "601", "soon"])
def test_a_settle_that_is_not_0_to_600_seconds_is_a_usage_error(
    run: Run, iot: _Iot, capsys: pytest.CaptureFixture[str], bad: str
) -> None:
    run("devices", "add", "s4")
    with pytest.raises(SystemExit) as stopped:
        run("devices", "disable", "s4", f"--settle-seconds={bad}")
    assert stopped.value.code == 2 and "--settle-seconds" in capsys.readouterr().err
    record = DynamoDBStore("iotauth-cli").get_identity("s4")
    assert record is not None and record.status == "active"  # nothing was written
    assert iot.asked == []


def test_a_failed_second_pass_exits_3_and_reports_the_first(run: Run, iot: _Iot) -> None:
    run("devices", "add", "s5")
    iot.live = {"s5"}
    iot.fail_on_second = True
    code, out, err = run("devices", "disable", "s5", "--json", "--settle-seconds", "0.1")
    assert code == 3
    doc = json.loads(out)
    assert doc["disconnect"] == "failed" and doc["closed"] == ["s5"]
    assert "ThrottlingException" in doc["error"] and "devices disconnect s5" in err


def test_the_wait_is_a_countdown_on_a_terminal(
    run: Run, iot: _Iot, monkeypatch: pytest.MonkeyPatch
) -> None:
    class _Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    run("devices", "add", "s6")
    terminal = _Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    code, _, _ = run("devices", "disable", "s6", "--settle-seconds", "1.2")
    assert code == 0
    shown = terminal.getvalue()
    assert "\rwaiting for CONNECTs in flight, seconds [" in shown
    assert "2/2 (100%)" in shown  # the full bar before the report
    assert shown.index("2/2 (100%)") < shown.index("no live connection found")


def test_help_says_what_the_wait_is_and_what_less_risks(
    run: Run, iot: _Iot, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        run("devices", "disable", "--help")
    assert stopped.value.code == 0
    flat = " ".join(capsys.readouterr().out.split())
    assert "--settle-seconds S" in flat and "IoT's 5 s authorizer limit" in flat
    assert "less risks that one keeps its session" in flat
