"""A CONNECT in flight during `iotauth devices disable` does not survive it (issue 15).

The race: a CONNECT whose authorizer call reads the record before the CLI's write and
answers after the CLI's DeleteConnection opens a session that DeleteConnection never saw.
The stack here delays every authorizer answer by 0.15-0.4 s (seeded; as on Lambda), and a
device cycles CONNECTs on three client ids (connect, leave after a moment, reconnect), so
CONNECTs are in flight when the record is written. From the write on, the device holds
whatever session it gets, as a device does; once the command has returned and the device's
last CONNECTs have been answered, any session of the identity is one that survived.

The bound, shortened and why that is equivalent. The CLI's second pass waits for IoT's bound:
an answer later than IoT's 5 s authorizer limit refuses the CONNECT, so every session from a
read before the write is open within 5 s + a margin (6 s, ``SETTLE_SECONDS``). The stand-in's
gateway applies the same rule with its own ``authorizer_timeout`` (a later answer, or none,
refuses the CONNECT; the session is registered on the gateway's loop as soon as the answer is
taken, before the engine handshake, and DeleteConnection ends it from then on). Here that
limit is 1 s (above the 0.4 s delay plus the handler's own few milliseconds), so the bound is
1 s + a 0.5 s margin for the gateway's loop: ``--settle-seconds 1.5`` is to this stack what
6 s is to IoT, and keeps 20 tries near a minute.
"""

from __future__ import annotations

import io
import json
import random
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from iotauth.identities.store import DynamoDBStore
from iotauth.local.stack import LocalPorts, LocalStack, StackInfo
from tests.cli_support import Run, cli_runner
from tests.e2e.conftest import WAIT, Mqtt, unique, username_for

pytestmark = pytest.mark.e2e

LATENCY = (0.15, 0.4)  # seconds added to each authorizer answer: Lambda-like
AUTHORIZER_TIMEOUT = 1.0  # the stand-in's authorizer limit (IoT: 5 s)
SETTLE = AUTHORIZER_TIMEOUT + 0.5  # the second pass's wait, derived as IoT's 5 s + 1 s
TRIES = 20
CLIENT_IDS = 3  # one connector loop per client id


@pytest.fixture(scope="module")
def running() -> Iterator[LocalStack]:
    with LocalStack(
        LocalPorts.any_free(),
        authorizer_latency=LATENCY,
        latency_seed=15,
        authorizer_timeout=AUTHORIZER_TIMEOUT,
        handler_logs=io.StringIO(),  # not on stdout, where the CLI's --json goes
    ) as stack:
        yield stack


@pytest.fixture
def written(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Set when the CLI's write of the record has returned (a probe: the CLI is unchanged)."""
    event = threading.Event()
    original = DynamoDBStore.replace_identity

    def replace_identity(self: DynamoDBStore, *args: object, **kwargs: object) -> object:
        result = original(self, *args, **kwargs)  # type: ignore[arg-type]
        event.set()
        return result

    monkeypatch.setattr(DynamoDBStore, "replace_identity", replace_identity)
    return event


@pytest.fixture
def cli(
    running: LocalStack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Run:
    stack = running.info
    for key in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "IOTAUTH_IOT_ENDPOINT"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", stack.aws_endpoint_url)
    monkeypatch.setenv("AWS_REGION", stack.region)
    monkeypatch.setenv("AWS_DEFAULT_REGION", stack.region)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("IOTAUTH_TABLE", stack.table_name)
    return cli_runner(monkeypatch, capsys)


@dataclass
class _Connector:
    """One client id's CONNECT loop (a thread): cycles before the write, holds after it."""

    stack: StackInfo
    name: str
    secret: str
    client_id: str
    written: threading.Event
    stop: threading.Event
    rng: random.Random
    made: list[Mqtt] = field(default_factory=list)
    got_in: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set():
            client = Mqtt(self.client_id)
            self.made.append(client)
            try:
                ok = client.connect(
                    self.stack.mqtt_port,
                    username=username_for(self.stack, self.name),
                    password=self.secret,
                )
            except (AssertionError, OSError):
                ok = False
            if not ok:
                client.close()
                continue
            self.got_in.set()
            if not self.written.is_set():
                # Before the change: leave after a moment and connect again, so that a
                # CONNECT is in flight most of the time.
                self.stop.wait(self.rng.uniform(0.0, 0.03))
                if not self.written.is_set():
                    client.close()
                    continue
            # From the change on: keep the session, as a device does, until it is closed.
            while not (self.stop.is_set() or client.disconnected.wait(0.05)):
                pass
            if not client.disconnected.is_set():
                return  # stopped with a live session: left open for the test to see
            client.close()


def _cli_document(out: str) -> dict[str, Any]:
    """The CLI's --json document. The handlers run in this process, and Powertools may print
    a metrics line on stdout (its auto-flush) while the CLI runs: that line is skipped."""
    kept = [line for line in out.splitlines() if not line.startswith('{"_aws"')]
    doc: dict[str, Any] = json.loads("\n".join(kept))
    return doc


def _one_try(
    running: LocalStack,
    cli: Run,
    written: threading.Event,
    settle: float,
    rng: random.Random,
) -> tuple[list[str], list[str]]:
    """(client ids with a session after the command, client ids its second pass closed)."""
    stack = running.info
    name = unique("racer")
    ids = [f"{name}-c{i}" for i in range(CLIENT_IDS)]
    code, secret, err = cli("devices", "add", name, *(a for i in ids for a in ("--client-id", i)))
    assert code == 0, err
    written.clear()
    stop = threading.Event()
    connectors = [
        _Connector(stack, name, secret.strip(), i, written, stop, random.Random(rng.random()))
        for i in ids
    ]
    threads = [threading.Thread(target=c.run, daemon=True) for c in connectors]
    for thread in threads:
        thread.start()
    try:
        for connector in connectors:  # warm: every loop cycling, CONNECTs in flight
            assert connector.got_in.wait(WAIT), "a connector never got in"
        stop.wait(rng.uniform(0.2, 0.5))
        code, out, err = cli(
            "devices", "disable", name, "--json", "--settle-seconds", f"{settle:g}"
        )
        assert code == 0, err
        report = _cli_document(out)
        stop.set()  # each loop ends once its last CONNECT is answered
        for thread in threads:
            thread.join(WAIT + 1)
            assert not thread.is_alive(), "a connector did not stop"
        live = sorted(set(running.live_client_ids()) & set(ids))
        late = [c for p in report["passes"][1:] for c in p["closed"]]
        return live, late
    finally:
        stop.set()
        for connector in connectors:
            for client in connector.made:
                client.close()


def _tries(
    running: LocalStack,
    cli: Run,
    written: threading.Event,
    settle: float,
    *,
    seed: int,
    until_live: bool = False,
) -> Iterator[tuple[list[str], list[str]]]:
    """``TRIES`` tries (``until_live``: up to the first that leaves a session)."""
    rng = random.Random(seed)
    for _ in range(TRIES):
        live, late = _one_try(running, cli, written, settle, rng)
        yield live, late
        if live and until_live:
            return


def test_one_pass_leaves_the_session_of_a_connect_in_flight(
    running: LocalStack, cli: Run, written: threading.Event
) -> None:
    """The race is real here: with one pass (the old behaviour) a session survives."""
    survived = [live for live, _ in _tries(running, cli, written, 0.0, seed=1, until_live=True)]
    assert survived[-1], f"no session survived one pass in {TRIES} tries: the race was not hit"


def test_no_session_survives_disable_whatever_was_in_flight(
    running: LocalStack, cli: Run, written: threading.Event
) -> None:
    survivors: list[list[str]] = []
    raced = 0
    for live, late in _tries(running, cli, written, SETTLE, seed=2):
        if live:
            survivors.append(live)
        raced += bool(late)
    assert not survivors, f"{len(survivors)} of {TRIES} tries left a session: {survivors}"
    # The second pass did close sessions opened by CONNECTs in flight: the race was hit.
    assert raced, f"in {TRIES} tries the second pass closed nothing: the race was not hit"


def test_the_wait_is_shown_and_the_report_comes_after_the_last_pass(
    running: LocalStack, cli: Run, clients: Callable[..., Mqtt]
) -> None:
    stack = running.info
    name = unique("waited")
    code, secret, _ = cli("devices", "add", name)
    device = clients(name)
    assert device.connect(
        stack.mqtt_port, username=username_for(stack, name), password=secret.strip()
    )
    code, _, err = cli("devices", "disable", name, "--settle-seconds", f"{SETTLE:g}")
    assert code == 0, err
    waiting = err.index("waiting 1.5 s for CONNECTs in flight")
    assert err.index(f"closed live connections: {name}") > waiting
    assert "warning: --settle-seconds 1.5, below 6 s" in err
    assert device.disconnected.is_set()
