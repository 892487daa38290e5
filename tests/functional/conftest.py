"""Functional fixtures: the identity store, in moto's DynamoDB and in memory, and the CLI.

A test module that asks for ``store`` runs once against each; one that asks for
``dynamodb`` gets moto's alone (an empty table with the project's schema); ``iot_data`` is a
stubbed DeleteConnection client and ``cli_with_table`` the ``iotauth`` command using it.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from iotauth.identities.store import DynamoDBStore, IdentityAdmin, MemoryStore
from tests.cli_support import Run, cli_runner

if TYPE_CHECKING:
    from botocore.stub import Stubber

CLI_TABLE = "iotauth-cli"


@pytest.fixture
def dynamodb(moto_aws: None) -> DynamoDBStore:
    import boto3

    store = DynamoDBStore("iotauth-functional", client=boto3.client("dynamodb"))
    store.create_table()
    return store


@pytest.fixture(params=["dynamodb", "memory"])
def store(request: pytest.FixtureRequest) -> IdentityAdmin:
    if request.param == "memory":
        return MemoryStore()
    result: IdentityAdmin = request.getfixturevalue("dynamodb")
    return result


@pytest.fixture
def iot_data(moto_aws: None) -> Iterator[Stubber]:
    """A stubbed ``iot-data`` client (DeleteConnection answers queued by the test); every
    queued answer must have been asked for."""
    import boto3
    from botocore.stub import Stubber

    client = boto3.client(
        "iot-data", endpoint_url="https://example-ats.iot.us-east-1.amazonaws.com"
    )
    stub = Stubber(client)
    with stub:
        yield stub
    stub.assert_no_pending_responses()


def stub_disconnects(monkeypatch: pytest.MonkeyPatch, module: object, stub: Stubber) -> None:
    """Make ``module``'s ``_disconnector`` use ``stub``'s client, one pass (no settle wait:
    the second pass has its own tests in test_cli_revocation_passes.py)."""
    from iotauth.cli.devices import lifecycle
    from iotauth.identities.revocation import IotDataDisconnector

    client = stub.client
    monkeypatch.setattr(
        module,
        "_disconnector",
        lambda args: IotDataDisconnector(lambda url: client, clean_session=args.clean_session),
    )
    monkeypatch.setattr(lifecycle, "SETTLE_SECONDS", 0.0)


@pytest.fixture
def cli_with_table(
    iot_data: Stubber, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Run:
    """``iotauth`` in-process on the table ``iotauth-cli`` (created), DeleteConnection stubbed."""
    from iotauth.cli.devices import lifecycle

    monkeypatch.setenv("IOTAUTH_TABLE", CLI_TABLE)
    stub_disconnects(monkeypatch, lifecycle, iot_data)
    DynamoDBStore(CLI_TABLE).create_table()
    return cli_runner(monkeypatch, capsys)


@pytest.fixture
def logs(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """The signer's log stream (a module may define its own ``logs``)."""
    import signer.app as app_module

    buffer = io.StringIO()
    monkeypatch.setattr(app_module.logger.registered_handler, "stream", buffer)
    return buffer
