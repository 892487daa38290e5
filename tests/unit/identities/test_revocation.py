"""Which client ids an operator's revocation closes, and the DeleteConnection adapter's shape."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from iotauth.connect.authenticate import Decision, Settings
from iotauth.identities.credentials import hash_generated_secret
from iotauth.identities.records import IdentityRecord
from iotauth.identities.revocation import (
    IOT_AUTHORIZER_LIMIT_SECONDS,
    SETTLE_SECONDS,
    IotDataDisconnector,
    RevocationError,
    RevocationPlan,
    describe,
    plan_for,
    revoke,
)
from iotauth.identities.store import MemoryStore
from iotauth.wire import aliyun
from tests.authorizer_support import NOW, add_aliyun_identity, connect_event, decide

VERIFIER = hash_generated_secret("iotsk_" + "A" * 43)


def _device(**fields: Any) -> IdentityRecord:
    return IdentityRecord(username="sensor-1", kind="secret", verifier=VERIFIER, **fields)


def _aliyun(**fields: Any) -> IdentityRecord:
    return IdentityRecord(username="dev1&pk1", kind="aliyun", device_secret="s3cret", **fields)


def test_password_identity_closes_exactly_its_client_ids() -> None:
    assert plan_for(_device()) == RevocationPlan(("sensor-1",))
    plan = plan_for(_device(client_ids=("sensor-1-a", "sensor-1-b")))
    assert plan.client_ids == ("sensor-1-a", "sensor-1-b")
    assert plan.bounded_seconds == 0  # nothing it can connect with is left out


def test_timestamped_aliyun_is_bounded_by_its_session() -> None:
    plan = plan_for(_aliyun(client_ids=("AA:BB:CC",)))
    assert plan.client_ids == ("pk1&dev1", "AA:BB:CC")
    assert plan.bounded_seconds == 3600 and "timestamp" in plan.why_bounded
    assert plan_for(_aliyun(disconnect_after=600)).bounded_seconds == 600
    short = plan_for(_aliyun(), deployment_disconnect_seconds=900)
    assert short.bounded_seconds == 900


def test_aliyun_without_timestamp_closes_the_spellings_sdks_send() -> None:
    plan = plan_for(_aliyun(allow_no_timestamp=True))
    assert "pk1&dev1|securemode=2,signmethod=hmacsha1|" in plan.client_ids
    assert "pk1&dev1|securemode=3,signmethod=hmacsha256|" in plan.client_ids
    assert len(plan.client_ids) == len(set(plan.client_ids)) == 1 + 2 * 3


class _Port:
    def __init__(self, live: set[str], fail_on: str | None = None) -> None:
        self.live, self.fail_on = live, fail_on
        self.asked: list[str] = []

    def disconnect(self, client_id: str) -> bool:
        self.asked.append(client_id)
        if client_id == self.fail_on:
            raise RevocationError("boom")
        if client_id in self.live:
            self.live.discard(client_id)
            return True
        return False


def test_revoke_reports_closed_and_absent() -> None:
    port = _Port({"b"})
    report = revoke(RevocationPlan(("a", "b")), port, settle_seconds=0)
    assert (report.closed, report.not_connected) == (["b"], ["a"])
    assert len(report.passes) == 1  # 0: one pass, the caller asked for it
    lines = list(describe(report))
    assert lines == ["closed live connections: b"]
    bounded = revoke(RevocationPlan(("a",), 3600, "why"), _Port(set()), settle_seconds=0)
    lines = list(describe(bounded))
    assert lines[0] == "no live connection found for its client ids"
    assert "3600 s" in lines[1]
    with pytest.raises(RevocationError):
        revoke(RevocationPlan(("a", "b")), _Port(set(), fail_on="a"), settle_seconds=0)


class _Clock:
    """A fake monotonic clock that only ``sleep`` moves; ``at`` runs a step at a time."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []
        self.steps: list[tuple[float, Any]] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.slept.append(seconds)
        self.now += seconds
        for when, step in list(self.steps):
            if self.now >= when:
                self.steps.remove((when, step))
                step()


def test_the_default_wait_is_iots_authorizer_limit_and_a_margin() -> None:
    assert IOT_AUTHORIZER_LIMIT_SECONDS == 5.0
    assert SETTLE_SECONDS > IOT_AUTHORIZER_LIMIT_SECONDS


def test_a_session_opened_during_the_wait_is_closed_by_the_second_pass() -> None:
    """The race: a CONNECT that read the old record opens its session after the first pass."""
    clock = _Clock()
    port = _Port({"a"})
    clock.steps.append((103.0, lambda: port.live.add("b")))  # the straggler's session
    waits: list[float] = []
    report = revoke(
        RevocationPlan(("a", "b")),
        port,
        clock=clock,
        sleep=clock.sleep,
        on_wait=waits.append,
    )
    assert port.asked == ["a", "b", "a", "b"]  # two passes, the second one after the bound
    assert clock.now == pytest.approx(100.0 + SETTLE_SECONDS)
    assert [(p.closed, p.not_connected) for p in report.passes] == [
        (["a"], ["b"]),
        (["b"], ["a"]),
    ]
    assert (report.closed, report.not_connected) == (["a", "b"], [])
    assert report.settle_seconds == SETTLE_SECONDS
    assert waits[0] == pytest.approx(SETTLE_SECONDS) and waits[-1] == 0.0
    assert waits == sorted(waits, reverse=True)  # a countdown
    assert max(clock.slept) <= 0.2  # the caller hears from it at least 5 times a second
    assert next(iter(describe(report))) == "closed live connections: a, b"
    assert "second pass: b" in list(describe(report))[1]


def test_the_wait_counts_from_the_first_pass_not_from_its_end() -> None:
    """A slow first pass (many ids) does not add to the wait: the bound runs from the write."""
    clock = _Clock()

    class _Slow(_Port):
        def disconnect(self, client_id: str) -> bool:
            if len(self.asked) < 3:
                clock.now += 1.0  # three slow DeleteConnections in the first pass
            return super().disconnect(client_id)

    revoke(RevocationPlan(("a", "b", "c")), _Slow(set()), clock=clock, sleep=clock.sleep)
    assert sum(clock.slept) == pytest.approx(SETTLE_SECONDS - 3.0)


def test_a_failed_pass_stops_and_says_what_was_closed() -> None:
    clock = _Clock()
    port = _Port({"a"})

    def fail_later() -> None:
        port.fail_on = "b"

    clock.steps.append((101.0, fail_later))
    with pytest.raises(RevocationError) as raised:
        revoke(RevocationPlan(("a", "b")), port, clock=clock, sleep=clock.sleep)
    assert raised.value.report is not None
    assert raised.value.report.closed == ["a"]  # the first pass; the second failed
    first = _Port(set(), fail_on="a")
    with pytest.raises(RevocationError):
        revoke(RevocationPlan(("a",)), first, clock=clock, sleep=clock.sleep)
    assert first.asked == ["a"]  # no wait after a failed first pass


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_a_wait_that_is_no_number_of_seconds_is_refused(bad: float) -> None:
    port = _Port(set())
    with pytest.raises(ValueError, match="settle_seconds"):
        revoke(RevocationPlan(("a",)), port, settle_seconds=bad)
    assert port.asked == []


@pytest.fixture
def iot_data(aws_env: None) -> tuple[Any, Stubber]:
    client = boto3.client(
        "iot-data", endpoint_url="https://example-ats.iot.us-east-1.amazonaws.com"
    )
    return client, Stubber(client)


def test_adapter_sends_deleteconnection_as_iot_expects(iot_data: tuple[Any, Stubber]) -> None:
    client, stub = iot_data
    params = {
        "clientId": "pk1&dev1|securemode=2,signmethod=hmacsha1|",
        "cleanSession": False,
        "preventWillMessage": True,
    }
    stub.add_response("delete_connection", {}, params)
    stub.add_client_error(
        "delete_connection",
        "ResourceNotFoundException",
        http_status_code=404,
        expected_params={**params, "clientId": "gone"},
    )
    stub.add_client_error("delete_connection", "ForbiddenException", http_status_code=403)
    made: list[str | None] = []

    def factory(url: str | None) -> Any:
        made.append(url)
        return client

    port = IotDataDisconnector(factory, "https://h")
    with stub:
        assert port.disconnect(str(params["clientId"])) is True
        assert port.disconnect("gone") is False
        with pytest.raises(RevocationError, match="ForbiddenException"):
            port.disconnect("x")
        stub.assert_no_pending_responses()
    assert made == ["https://h"]  # one client, created on first use


def test_client_id_is_percent_encoded_in_the_path(aws_env: None) -> None:
    """What goes on the wire (the stand-in and IoT read the id from the path)."""
    client = boto3.client("iot-data", endpoint_url="https://h.example")
    sent: list[str] = []

    def capture(request: Any, **_: Any) -> Any:
        sent.append(request.url)
        raise RuntimeError("stop before sending")

    client.meta.events.register("before-send.iot-data.DeleteConnection", capture)
    with pytest.raises(RuntimeError):
        client.delete_connection(
            clientId="pk&dn|securemode=2,signmethod=hmacsha1|",
            cleanSession=False,
            preventWillMessage=True,
        )
    assert sent == [
        "https://h.example/connections/pk%26dn%7Csecuremode%3D2%2Csignmethod%3Dhmacsha1%7C"
        "?cleanSession=false&preventWillMessage=true"
    ]


def test_identities_allowed_any_client_id_are_bounded() -> None:
    """An Aliyun `any_client_id` device may sign ids no record lists: they cannot be named."""
    plan = plan_for(_aliyun(any_client_id=True))
    assert plan.bounded_seconds == 3600 and "any client id" in plan.why_bounded
    # A password identity may use exactly its listed ids (authenticate.py): nothing bounded.
    assert plan_for(_device(client_ids=("sensor-1",))).bounded_seconds == 0


# -- the plan against what the authorizer really accepts (review 09:47) -------------------

_LINKKIT_PARAMS = "securemode={m},signmethod={s},ext=1,_ss=1,lan=Python,_v=1.2.13"


def _no_timestamp_connect(
    store: MemoryStore, client_id: str, params: str, *, tls: bool = True
) -> tuple[str, Decision]:
    method = params.split("signmethod=")[1].split(",", maxsplit=1)[0]
    password = aliyun.sign(
        "s3cret",
        client_id=client_id,
        device_name="dev1",
        product_key="pk1",
        timestamp=None,
        signmethod=method,
    )
    full_id = f"{client_id}|{params}|"
    event = connect_event(
        "dev1&pk1", password, full_id, suffix="?x-amz-customauthorizer-name=iotauth"
    )
    if not tls:
        event["protocols"] = ["mqtt"]  # the local stand-in's plain ports (securemode=3)
    return full_id, decide(store, event)


def _unbounded_or_named(plan: RevocationPlan, full_id: str, decision: Decision) -> None:
    """Every accepted session is either closed by the plan or ends within its bound."""
    assert decision.allowed, decision.reason
    if full_id in plan.client_ids:
        return
    assert plan.bounded_seconds > 0
    assert decision.disconnect_after == decision.refresh_after == plan.bounded_seconds


@pytest.mark.parametrize(
    ("tls", "mode", "method"),
    [(True, "2", "hmacsha1"), (True, "2", "hmacsha256"), (False, "3", "hmacmd5")],
)
def test_plan_names_the_linkkit_form_ids_the_authorizer_accepts(
    tls: bool, mode: str, method: str
) -> None:
    store = MemoryStore()
    add_aliyun_identity(
        store, "dev1", "pk1", "s3cret", allow_no_timestamp=True, client_id_form="linkkit"
    )
    params = _LINKKIT_PARAMS.format(m=mode, s=method)
    full_id, decision = _no_timestamp_connect(store, "pk1&dev1", params, tls=tls)
    assert decision.allowed, decision.reason
    plan = plan_for(store.identities["dev1&pk1"])
    assert full_id in plan.client_ids  # DeleteConnection closes it at once
    # ... so the session itself is refreshed as usual (the deployment's default).
    assert decision.disconnect_after == decision.refresh_after == 86400


def test_an_unlisted_client_id_without_timestamp_gets_the_bounded_session() -> None:
    store = MemoryStore()
    add_aliyun_identity(store, "dev1", "pk1", "s3cret", allow_no_timestamp=True, any_client_id=True)
    full_id, decision = _no_timestamp_connect(store, "AA-BB-CC", "securemode=2,signmethod=hmacsha1")
    plan = plan_for(store.identities["dev1&pk1"])
    assert full_id not in plan.client_ids  # no record lists AA-BB-CC
    assert plan.bounded_seconds == 3600
    _unbounded_or_named(plan, full_id, decision)
    assert decision.disconnect_after == 3600  # not the deployment's 86400
    # The record's own bound, and a shorter deployment default, apply to both alike.
    short = Settings(table="t", disconnect_after_seconds=900, refresh_after_seconds=900)
    event = connect_event(
        "dev1&pk1",
        aliyun.sign(
            "s3cret", client_id="AA-BB-CC", device_name="dev1", product_key="pk1", timestamp=None
        ),
        full_id,
        suffix="?x-amz-customauthorizer-name=iotauth",
    )
    decision = decide(store, event, settings=short)
    plan = plan_for(store.identities["dev1&pk1"], deployment_disconnect_seconds=900)
    _unbounded_or_named(plan, full_id, decision)
    assert plan.bounded_seconds == 900


@pytest.mark.parametrize("form", [None, "linkkit"])
@pytest.mark.parametrize("inner", ["pk1&dev1", "AA-BB-CC", "SERIAL-9"])
@pytest.mark.parametrize("with_timestamp", [False, True])
def test_every_accepted_session_is_named_or_bounded(
    form: str | None, inner: str, with_timestamp: bool
) -> None:
    store = MemoryStore()
    add_aliyun_identity(
        store,
        "dev1",
        "pk1",
        "s3cret",
        allow_no_timestamp=True,
        any_client_id=True,
        client_id_form=form,
        client_ids=("SERIAL-9",),
        disconnect_after=1200 if inner == "SERIAL-9" else None,
    )
    record = store.identities["dev1&pk1"]
    timestamp = str(NOW * 1000) if with_timestamp else None
    full_id = aliyun.canonical_client_id(
        inner, form=form, tls=True, signmethod="hmacsha1", timestamp=timestamp
    )
    password = aliyun.sign(
        "s3cret", client_id=inner, device_name="dev1", product_key="pk1", timestamp=timestamp
    )
    event = connect_event(
        "dev1&pk1", password, full_id, suffix="?x-amz-customauthorizer-name=iotauth"
    )
    decision = decide(store, event)
    _unbounded_or_named(plan_for(record), full_id, decision)
