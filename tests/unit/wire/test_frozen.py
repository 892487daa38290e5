"""iotauth.wire.frozen: the value classes that replaced dataclasses on the authorizer's path keep
what the dataclasses gave: equality and hash by value, no assignment, no secret in repr."""

from __future__ import annotations

import pytest

from iotauth.access.scoping import ArnContext
from iotauth.connect.authenticate import Decision
from iotauth.connect.event import ConnectRequest
from iotauth.identities.lockout import LockoutPolicy


def test_equal_by_value_and_hashable() -> None:
    a = ArnContext("aws", "us-east-1", "123456789012")
    assert a == ArnContext(partition="aws", region="us-east-1", account="123456789012")
    assert a != ArnContext("aws", "eu-west-1", "123456789012")
    assert len({a, ArnContext("aws", "us-east-1", "123456789012")}) == 1
    assert Decision(False, "x") != LockoutPolicy()  # another class is never equal


def test_fields_cannot_be_assigned_or_deleted() -> None:
    decision = Decision(allowed=False, reason="bad-password")
    with pytest.raises(AttributeError):
        decision.allowed = True  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del decision.reason
    with pytest.raises(AttributeError):
        decision.extra = 1  # type: ignore[attr-defined]
    assert decision.allowed is False


def test_repr_names_fields_but_never_the_password() -> None:
    request = ConnectRequest(username="alice", password=b"hunter2-secret")
    text = repr(request)
    assert text.startswith("ConnectRequest(") and "username='alice'" in text
    assert "hunter2" not in text and "password" not in text


def test_validation_still_runs_at_construction() -> None:
    with pytest.raises(ValueError, match="threshold"):
        LockoutPolicy(threshold=0)
    with pytest.raises(ValueError, match="account"):
        ArnContext("aws", "us-east-1", "123")
