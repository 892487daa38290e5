"""iotauth.browser.web_signing with in-memory fakes of STS and the endpoint lookup."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from iotauth.access.names import web_username
from iotauth.access.policy import PolicySet
from iotauth.access.scoping import ArnContext
from iotauth.browser.web_signing import (
    REFRESH_MARGIN,
    SignerSettings,
    SignerUnavailable,
    TemporaryCredentials,
    WebSigner,
    role_session_name,
)
from iotauth.wire.sigv4 import verify_presigned_url

ARN = ArnContext("aws", "eu-west-1", "123456789012")
ROLE = "arn:aws:iam::123456789012:role/iotauth-web-client"
ENDPOINT = "a1b2c3-ats.iot.eu-west-1.amazonaws.com"
SUB = "0f6c1d2e-3a4b-4c5d-8e9f-0a1b2c3d4e5f"
T0 = 1_750_000_000.0


def iot(kind: str, name: str) -> str:
    return ARN.resource(kind, name)


@dataclass
class Clock:
    now: float = T0

    def __call__(self) -> float:
        return self.now


@dataclass
class FakeSts:
    clock: Clock
    calls: list[dict[str, Any]] = field(default_factory=list)
    fail: bool = False

    def assume_role(
        self, *, role_arn: str, session_name: str, policy: str, duration_seconds: int
    ) -> TemporaryCredentials:
        if self.fail:
            raise SignerUnavailable("sts down")
        n = len(self.calls)
        self.calls.append(
            {
                "role_arn": role_arn,
                "session_name": session_name,
                "policy": policy,
                "duration_seconds": duration_seconds,
            }
        )
        return TemporaryCredentials(
            access_key_id=f"ASIAFAKE{n:08d}",
            secret_access_key=f"secret-{n}",
            session_token=f"token+/{n}=",
            expiration=datetime.fromtimestamp(self.clock.now + duration_seconds, UTC),
        )


@dataclass
class FakeEndpoints:
    endpoint: str = ENDPOINT
    calls: int = 0
    fail: bool = False

    def data_endpoint(self) -> str:
        self.calls += 1
        if self.fail:
            raise SignerUnavailable("iot down")
        return self.endpoint


def make(**settings: Any) -> tuple[WebSigner, FakeSts, FakeEndpoints, Clock]:
    clock = Clock()
    sts, endpoints = FakeSts(clock), FakeEndpoints()
    config = SignerSettings(role_arn=ROLE, **settings)
    return WebSigner(config, sts, endpoints, clock=clock), sts, endpoints, clock


def test_signed_url_result_shape() -> None:
    signer, sts, _, _ = make(publish=("chat/lobby",), subscribe=("chat/lobby", "news/#"))
    result = signer.sign_url(SUB, ARN).as_dict()
    user = f"web-{SUB}"
    assert result["clientId"] == user
    assert result["topics"] == {
        "publish": [f"{user}/#", "chat/lobby"],
        "subscribe": [f"{user}/#", "chat/lobby", "news/#"],
    }
    assert result["expiresAt"] == datetime.fromtimestamp(T0 + 900, UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    assert result["url"].startswith(f"wss://{ENDPOINT}/mqtt?")
    assert sts.calls[0]["role_arn"] == ROLE
    assert sts.calls[0]["duration_seconds"] == 900
    assert "X-Amz" not in repr(signer.sign_url(SUB, ARN))


def test_url_is_signed_with_the_issued_credentials() -> None:
    signer, _, _, clock = make()
    url = signer.sign_url(SUB, ARN).url
    secrets = {"ASIAFAKE00000000": "secret-0"}
    tokens = {"ASIAFAKE00000000": "token+/0="}
    assert (
        verify_presigned_url(
            url, ENDPOINT, "eu-west-1", secrets.get, clock.now, expected_token=tokens.get
        )
        == "ASIAFAKE00000000"
    )


def test_session_policy_grants_only_the_callers_client_and_topics() -> None:
    signer, sts, _, _ = make(publish=("chat/lobby",), subscribe=("chat/+",))
    signer.sign_url(SUB, ARN)
    policy = sts.calls[0]["policy"]
    assert len(policy) <= 2048
    p = PolicySet([policy])
    me = web_username(SUB)
    other = web_username("someone-else")
    assert p.allows("iot:Connect", iot("client", me))
    for client in (other, "*", "+", f"{me}x", "web-", "demo-device"):
        assert not p.allows("iot:Connect", iot("client", client)), client
    assert p.allows("iot:Publish", iot("topic", f"{me}/chat"))
    assert p.allows("iot:Receive", iot("topic", f"{me}/a/b"))
    assert p.allows("iot:Subscribe", iot("topicfilter", f"{me}/#"))
    assert p.allows("iot:Publish", iot("topic", "chat/lobby"))
    assert p.allows("iot:Subscribe", iot("topicfilter", "chat/+"))
    assert p.allows("iot:Receive", iot("topic", "chat/lobby"))
    assert not p.allows("iot:Publish", iot("topic", "chat/other"))
    for topic in (f"{other}/chat", "devices/x", "$aws/things/x/shadow/update"):
        assert not p.allows("iot:Publish", iot("topic", topic)), topic
        assert not p.allows("iot:Receive", iot("topic", topic)), topic
    assert not p.allows("iot:Subscribe", iot("topicfilter", "#"))
    assert not p.allows("iot:Subscribe", iot("topicfilter", f"{other}/#"))
    assert not p.allows("iot:Connect", "arn:aws:iot:us-east-1:123456789012:client/" + me)
    assert not p.allows("iot:DeleteThing", "*")


def test_credentials_are_cached_per_caller_until_five_minutes_remain() -> None:
    signer, sts, endpoints, clock = make()
    first = signer.sign_url(SUB, ARN)
    clock.now += 60
    second = signer.sign_url(SUB, ARN)
    assert len(sts.calls) == 1
    assert first.url != second.url  # a fresh signature each time, same credentials
    assert second.expires_at.timestamp() == T0 + 900  # capped by the credentials
    signer.sign_url("another-user", ARN)
    assert len(sts.calls) == 2
    clock.now = T0 + 900 - REFRESH_MARGIN - 1  # 301 s left: still used
    signer.sign_url(SUB, ARN)
    assert len(sts.calls) == 2
    clock.now = T0 + 900 - REFRESH_MARGIN + 1  # 299 s left: renewed
    renewed = signer.sign_url(SUB, ARN)
    assert len(sts.calls) == 3
    assert renewed.expires_at.timestamp() == int(clock.now) + 900
    assert endpoints.calls == 5  # the port itself caches the endpoint


def test_failures_raise_unavailable_and_are_not_cached() -> None:
    signer, sts, endpoints, _ = make()
    sts.fail = True
    with pytest.raises(SignerUnavailable):
        signer.sign_url(SUB, ARN)
    sts.fail = False
    endpoints.fail = True
    with pytest.raises(SignerUnavailable):
        signer.sign_url(SUB, ARN)
    endpoints.fail = False
    assert signer.sign_url(SUB, ARN).client_id == web_username(SUB)


def test_cache_is_bounded() -> None:
    clock = Clock()
    sts = FakeSts(clock)
    signer = WebSigner(
        SignerSettings(role_arn=ROLE), sts, FakeEndpoints(), clock=clock, max_cached=2
    )
    for user in ("a1", "b2", "c3", "a1"):
        signer.sign_url(user, ARN)
    assert len(sts.calls) == 4  # a1 was evicted by c3


def test_unusual_subjects_get_safe_names() -> None:
    signer, sts, _, _ = make()
    result = signer.sign_url("auth0|1234567890", ARN)
    assert re.fullmatch(r"web-[0-9a-f]{40}", result.client_id)
    assert re.fullmatch(r"[\w+=,.@-]{2,64}", sts.calls[0]["session_name"])
    with pytest.raises(ValueError):
        signer.sign_url("", ARN)


@pytest.mark.parametrize(
    "name",
    ["web-0f6c1d2e-3a4b-4c5d-8e9f-0a1b2c3d4e5f", "web-a:b", "x" * 100, "w", "web-é"],
)
def test_role_session_name(name: str) -> None:
    session = role_session_name(name)
    assert re.fullmatch(r"[A-Za-z0-9_+=,.@-]{2,64}", session)
    if re.fullmatch(r"[\w+=,.@-]{2,64}", name, re.ASCII):
        assert session == name
    assert role_session_name(name) == session


def test_settings_from_env() -> None:
    settings = SignerSettings.from_env(
        {
            "IOTAUTH_CLIENT_ROLE_ARN": ROLE,
            "IOTAUTH_IOT_ENDPOINT": "",
            "IOTAUTH_WEB_PUBLISH": "chat/lobby, chat/lobby ,",
            "IOTAUTH_WEB_SUBSCRIBE": "chat/lobby,news/#",
            "IOTAUTH_ALLOWED_ORIGINS": "https://app.example.com,http://localhost:8080",
            "IOTAUTH_URL_SESSION_SECONDS": "1200",
        }
    )
    assert settings.endpoint is None
    assert settings.publish == ("chat/lobby",)
    assert settings.subscribe == ("chat/lobby", "news/#")
    assert settings.allowed_origins == ("https://app.example.com", "http://localhost:8080")
    assert settings.session_seconds == 1200
    assert SignerSettings.from_env({"IOTAUTH_CLIENT_ROLE_ARN": ROLE}).session_seconds == 900


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"IOTAUTH_CLIENT_ROLE_ARN": "not-an-arn"},
        {"IOTAUTH_WEB_PUBLISH": "#"},
        {"IOTAUTH_WEB_SUBSCRIBE": "a/${iot:ClientId}"},
        {"IOTAUTH_ALLOWED_ORIGINS": "app.example.com"},
        {"IOTAUTH_URL_SESSION_SECONDS": "600"},
        {"IOTAUTH_URL_SESSION_SECONDS": "7200"},
        {"IOTAUTH_URL_SESSION_SECONDS": "15m"},
    ],
)
def test_settings_reject_bad_env(env: dict[str, str]) -> None:
    full = {"IOTAUTH_CLIENT_ROLE_ARN": ROLE, **env} if env else {}
    with pytest.raises(ValueError):
        SignerSettings.from_env(full)


def test_credentials_repr_hides_secrets() -> None:
    creds = TemporaryCredentials("ASIAX", "s3cr3t", "t0k3n", datetime.now(UTC))
    assert "s3cr3t" not in repr(creds) and "t0k3n" not in repr(creds)


def test_rooms_prove_the_sender_in_the_session_policy_and_the_answer() -> None:
    signer, sts, _, _ = make(rooms=("chat/lobby",))
    me = web_username(SUB)
    result = signer.sign_url(SUB, ARN).as_dict()
    assert result["rooms"] == ["chat/lobby"]
    assert f"chat/lobby/{me}" in result["topics"]["publish"]
    assert "chat/lobby/+" in result["topics"]["subscribe"]
    p = PolicySet([sts.calls[0]["policy"]])
    assert p.allows("iot:Publish", iot("topic", f"chat/lobby/{me}"))
    assert not p.allows("iot:Publish", iot("topic", f"chat/lobby/{web_username('bob')}"))
    assert not p.allows("iot:Publish", iot("topic", "chat/lobby/sensor-1"))
    assert p.allows("iot:Subscribe", iot("topicfilter", "chat/lobby/+"))
    assert p.allows("iot:Receive", iot("topic", "chat/lobby/sensor-1"))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"rooms": ("chat/lobby",), "publish": ("chat/lobby/*",)}, "reaches into the room"),
        ({"rooms": ("chat/lobby",), "publish": ("chat/#",)}, "reaches into the room"),
        ({"rooms": ("elsewhere/lobby",)}, "shared root"),
        ({"rooms": ("chat/+",)}, "invalid room"),
    ],
)
def test_signer_settings_refuse_rooms_that_could_be_forged(
    settings: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        SignerSettings(role_arn=ROLE, **settings)


def test_signer_settings_from_env_read_rooms_and_roots() -> None:
    env = {
        "IOTAUTH_CLIENT_ROLE_ARN": ROLE,
        "IOTAUTH_WEB_ROOMS": "plaza/main, plaza/side",
        "IOTAUTH_SHARED_TOPIC_ROOTS": "plaza",
    }
    settings = SignerSettings.from_env(env)
    assert settings.rooms == ("plaza/main", "plaza/side")
    assert settings.shared_roots == ("plaza",)
