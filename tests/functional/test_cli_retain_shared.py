"""`devices add|update|show` with --retain / --shared, against moto's DynamoDB: the flags are
kept on the record, shown, diffed like the other fields, and withdrawing one closes the
identity's live sessions (access shrank); the authorizer's answer grants them."""

from __future__ import annotations

import json

from botocore.stub import Stubber

from iotauth.access.policy import PolicySet
from iotauth.identities.store import DynamoDBStore
from tests.cli_support import Run
from tests.functional import test_cli_show_update_list as show_update

# That module's fixtures (the moto table and the CLI runner, DeleteConnection stubbed).
iot_data = show_update.iot_data
run = show_update.run
table = show_update.table
_expect = show_update._expect


def _policy(run: Run, name: str, secret: str) -> tuple[PolicySet, str]:
    """The authorizer's policies for ``name``, and the ARN prefix they are written for."""
    code, out, err = run(
        "authorize", "--username", name, "--password-stdin", "--json", stdin=secret.encode()
    )
    assert code == 0, err
    answer = json.loads(out)
    documents = answer["policyDocuments"]
    connect = json.loads(documents[0])["Statement"][0]["Resource"][0]
    return PolicySet(documents), connect.split("client/")[0]


def test_add_keeps_and_shows_both_flags(run: Run, table: DynamoDBStore) -> None:
    secret = run("devices", "add", "pump-1", "--retain", "--shared")[1].strip()
    record = table.get_identity("pump-1")
    assert record is not None and record.retain and record.shared
    code, out, _ = run("devices", "show", "pump-1", "--json")
    assert code == 0
    view = json.loads(out)
    assert view["retain"] is True and view["shared"] is True
    code, out, _ = run("devices", "show", "pump-1")
    assert "retain:" in out and "yes (retained messages on its own topics)" in out
    policy, arn = _policy(run, "pump-1", secret)
    assert policy.allows("iot:RetainPublish", f"{arn}topic/pump-1/state")
    assert policy.allows("iot:Subscribe", f"{arn}topicfilter/$share/g/pump-1/#")
    assert not policy.allows("iot:RetainPublish", f"{arn}topic/pump-2/state")

    run("devices", "add", "pump-2")
    code, out, _ = run("devices", "show", "pump-2", "--json")
    assert json.loads(out)["retain"] is False and json.loads(out)["shared"] is False


def test_update_diffs_grows_and_shrinks(run: Run, table: DynamoDBStore, iot_data: Stubber) -> None:
    run("devices", "add", "pump-3")
    code, out, err = run("devices", "update", "pump-3", "--retain", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["changed"] == {"retain": [False, True]}
    assert result["disconnect"] == "not needed"  # access only grew
    assert "retain: false → true" in err
    record = table.get_identity("pump-3")
    assert record is not None and record.retain and not record.shared

    code, out, err = run("devices", "update", "pump-3", "--shared", "--no-retain", "--dry-run")
    assert code == 0 and "retain withdrawn" in err and "dry run" in err
    stored = table.get_identity("pump-3")
    assert stored is not None and stored.retain and not stored.shared  # nothing written

    _expect(iot_data, "pump-3", live=True)
    code, out, err = run("devices", "update", "pump-3", "--shared", "--no-retain", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["changed"] == {"retain": [True, False], "shared": [False, True]}
    assert "retain withdrawn" in err and "closing its live sessions" in err
    record = table.get_identity("pump-3")
    assert record is not None and not record.retain and record.shared

    code, _, err = run("devices", "update", "pump-3", "--shared")
    assert code == 0 and "nothing to change" in err
