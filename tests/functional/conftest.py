"""Functional fixtures: the identity store, in moto's DynamoDB and in memory.

A test module that asks for ``store`` runs once against each; one that asks for
``dynamodb`` gets moto's alone (an empty table with the project's schema).
"""

from __future__ import annotations

import pytest

from iotauth.identities.store import DynamoDBStore, IdentityAdmin, MemoryStore


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
