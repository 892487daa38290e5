"""What names and client ids may look like: nothing that widens a policy gets through."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iotauth.access.names import (
    InvalidName,
    is_safe_client_id,
    principal_id_for,
    validate_client_id,
    validate_username,
    web_username,
)

UNSAFE = ["*", "?", "+", "#", "$", "/", " ", "\n", "\x00", "${", "é", "|"]


@pytest.mark.parametrize("name", ["alice", "sensor-01", "a.b_c@d:e", "A" * 128, "0x1"])
def test_valid_usernames(name: str) -> None:
    assert validate_username(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "A" * 129,
        "-alice",
        ".alice",
        "alice bob",
        "alice/bob",
        "alice*",
        "al?ce",
        "a+b",
        "a#b",
        "${iot:ClientId}",
        "web-alice",
        "ali\u0441e",
    ],
)
def test_invalid_usernames(name: str) -> None:
    with pytest.raises(InvalidName):
        validate_username(name)


def test_web_prefix_is_reserved_for_web_identities() -> None:
    assert validate_username("web-alice", allow_web=True) == "web-alice"


@pytest.mark.parametrize("bad", UNSAFE)
def test_client_ids_with_unsafe_characters_are_rejected(bad: str) -> None:
    assert not is_safe_client_id(f"dev{bad}ice")
    with pytest.raises(InvalidName):
        validate_client_id(f"dev{bad}ice")


def test_client_id_limits() -> None:
    assert is_safe_client_id("pk&device-1")
    assert is_safe_client_id("x" * 128)
    assert not is_safe_client_id("x" * 129)
    assert not is_safe_client_id("")
    assert not is_safe_client_id(None)


@given(st.text(max_size=300))
def test_principal_id_always_matches_iot_contract(name: str) -> None:
    assert re.fullmatch(r"[a-zA-Z0-9]{1,128}", principal_id_for(name))


def test_principal_ids_are_stable_and_distinct() -> None:
    assert principal_id_for("alice") == principal_id_for("alice")
    assert principal_id_for("alice") != principal_id_for("bob")


@given(st.text(min_size=1, max_size=300))
def test_web_usernames_are_always_safe_and_prefixed(sub: str) -> None:
    name = web_username(sub)
    assert name.startswith("web-")
    assert validate_username(name, allow_web=True) == name
    assert is_safe_client_id(name)


def test_web_username_keeps_readable_subjects() -> None:
    sub = "0a1b2c3d-1111-2222-3333-444455556666"
    assert web_username(sub) == f"web-{sub}"
    assert web_username("auth0|123") != web_username("auth0|124")
    assert re.fullmatch(r"web-[0-9a-f]{40}", web_username("auth0|123"))
    with pytest.raises(InvalidName):
        web_username("")


def test_web_username_digest_form_cannot_be_claimed_by_another_subject() -> None:
    victim = web_username("auth0|1234567890")  # digested
    attacker_subject = victim.removeprefix("web-")  # a sub spelled like that digest
    assert web_username(attacker_subject) != victim
    assert web_username(attacker_subject).startswith("web-")
