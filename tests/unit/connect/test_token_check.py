"""The token path through authenticate(): where tokens arrive, what they grant, every deny."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from iotauth.access.claims import GroupGrants, WebScopeRules
from iotauth.access.names import principal_id_for, web_username
from iotauth.access.policy import PolicySet
from iotauth.connect.authenticate import Decision, Settings, authenticate
from iotauth.connect.event import parse_connect_event
from iotauth.connect.token_check import TokenAuth, TokenSettings
from iotauth.identities.store import MemoryStore
from iotauth.identities.web_user_status import MemoryWebUserStatus
from tests.authorizer_support import ARN, connect_event
from tests.token_support import (
    AUDIENCE,
    ISSUER,
    NOW,
    SigningKey,
    claims,
    token_auth,
    token_settings,
    unsigned,
)

SETTINGS = Settings(table="iotauth-test")
ALICE = web_username("alice")


@pytest.fixture(scope="module")
def rsa_key() -> SigningKey:
    return SigningKey("RS256", "r1")


@pytest.fixture(scope="module")
def ec_key() -> SigningKey:
    return SigningKey("ES256", "e1")


@pytest.fixture
def auth(rsa_key: SigningKey, ec_key: SigningKey) -> tuple[TokenAuth, dict[str, int]]:
    return token_auth(rsa_key, ec_key)


def jwt_event(token: str, client_id: str | None = ALICE, **kw: Any) -> dict[str, Any]:
    return connect_event("$jwt", token, client_id, **kw)


def decide(
    event: dict[str, Any], tokens: TokenAuth | None, now: float = NOW, **kw: Any
) -> Decision:
    return authenticate(
        parse_connect_event(event),
        MemoryStore(),
        now=now,
        settings=kw.pop("settings", SETTINGS),
        arn=ARN,
        tokens=tokens,
        **kw,
    )


def policy(decision: Decision) -> PolicySet:
    return PolicySet(decision.policy_documents)


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_a_jwt_password_connects_as_the_web_user(
    alg: str, rsa_key: SigningKey, ec_key: SigningKey, auth: tuple[TokenAuth, dict[str, int]]
) -> None:
    signing = rsa_key if alg == "RS256" else ec_key
    decision = decide(jwt_event(signing.sign(claims())), auth[0])
    assert decision.allowed and decision.reason == "allowed"
    assert decision.username == ALICE and decision.principal_id == principal_id_for(ALICE)
    assert decision.disconnect_after == 3600 and decision.refresh_after == 3600
    rules = policy(decision)
    arn = "arn:aws:iot:us-east-1:123456789012"
    assert rules.allows("iot:Connect", f"{arn}:client/{ALICE}")
    assert not rules.allows("iot:Connect", f"{arn}:client/web-bob")
    assert rules.allows("iot:Publish", f"{arn}:topic/{ALICE}/x")
    assert rules.allows("iot:Publish", f"{arn}:topic/chat/lobby/{ALICE}")
    assert not rules.allows("iot:Publish", f"{arn}:topic/chat/lobby/web-bob")
    assert auth[1]["fetches"] == 1  # fetched once (here: on first use), then cached
    decide(jwt_event(signing.sign(claims())), auth[0])
    assert auth[1]["fetches"] == 1


def test_token_auth_off_leaves_jwt_usernames_malformed(rsa_key: SigningKey) -> None:
    decision = decide(jwt_event(rsa_key.sign(claims())), None)
    assert decision.reason == "malformed-username"


def test_devices_are_untouched_by_token_auth(auth: tuple[TokenAuth, dict[str, int]]) -> None:
    decision = decide(connect_event("sensor-1", "iotsk_x", "sensor-1"), auth[0])
    assert decision.reason == "unknown-identity"
    assert auth[1]["fetches"] == 0


def _wss(token_where: str, token: str, key: str = "iotauth-token") -> dict[str, Any]:
    event = connect_event(None, None, ALICE)
    event["protocols"] = ["tls", "http", "mqtt"]
    http: dict[str, Any] = {
        "headers": {"host": "x"},
        "queryString": "?x-amz-customauthorizer-name=a",
    }
    if token_where == "top":
        event["token"] = token
    elif token_where == "header":
        http["headers"][key.title()] = token
    elif token_where == "bearer":
        http["headers"][key] = f"Bearer {token}"
    elif token_where == "query":
        http["queryString"] += f"&{key}={token}"
    elif token_where == "username":
        event["protocolData"]["mqtt"]["username"] = (
            f"any?x-amz-customauthorizer-name=a&{key}={token}"
        )
    event["protocolData"]["http"] = http
    return event


@pytest.mark.parametrize("where", ["top", "header", "bearer", "query", "username"])
def test_tokens_arrive_in_every_documented_place(
    where: str, rsa_key: SigningKey, auth: tuple[TokenAuth, dict[str, int]]
) -> None:
    decision = decide(_wss(where, rsa_key.sign(claims())), auth[0])
    assert decision.allowed, decision.reason


def test_https_publish_needs_no_client_id(
    rsa_key: SigningKey, auth: tuple[TokenAuth, dict[str, int]]
) -> None:
    event = _wss("query", rsa_key.sign(claims()))
    event["protocols"] = ["tls", "http"]
    del event["protocolData"]["mqtt"]
    assert decide(event, auth[0]).allowed


def test_two_tokens_or_a_device_password_beside_one_conflict(
    rsa_key: SigningKey, auth: tuple[TokenAuth, dict[str, int]]
) -> None:
    one, other = rsa_key.sign(claims()), rsa_key.sign(claims(sub="bob"))
    event = jwt_event(one)
    event["token"] = other
    assert decide(event, auth[0]).reason == "token-conflict"
    event["token"] = one  # the same token twice is one token
    assert decide(event, auth[0]).allowed
    device = connect_event("sensor-1", "iotsk_x", "sensor-1")
    device["token"] = one
    assert decide(device, auth[0]).reason == "token-conflict"


def test_the_client_id_is_bound_to_the_subject(
    rsa_key: SigningKey, auth: tuple[TokenAuth, dict[str, int]]
) -> None:
    token = rsa_key.sign(claims())
    for client_id in ("web-bob", "alice", ALICE + "x", None):
        decision = decide(jwt_event(token, client_id), auth[0])
        assert decision.reason in {"client-id-not-allowed", "missing-client-id"}
        assert not decision.allowed


def test_odd_subjects_get_the_signers_digest_name(
    rsa_key: SigningKey, auth: tuple[TokenAuth, dict[str, int]]
) -> None:
    username = web_username("auth0|123/#+")
    decision = decide(jwt_event(rsa_key.sign(claims(sub="auth0|123/#+")), username), auth[0])
    assert decision.allowed and decision.username == username and "#" not in username


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"iss": "https://evil.test/pool"}, "token-issuer"),
        ({"iss": None}, "token-issuer"),
        ({"aud": "another-client"}, "token-audience"),
        ({"aud": ["a", "b"]}, "token-audience"),
        ({"aud": None}, "token-audience"),
        ({"token_use": "refresh"}, "token-audience"),
        ({"exp": NOW - 61}, "token-expired"),
        ({"exp": None}, "token-malformed"),
        ({"exp": "9999999999"}, "token-malformed"),
        ({"exp": True}, "token-malformed"),
        ({"nbf": NOW + 61}, "token-not-yet-valid"),
        ({"iat": NOW + 3600}, "token-not-yet-valid"),
        ({"exp": NOW + 299}, "token-expiring"),
        ({"sub": None}, "token-subject"),
        ({"sub": ""}, "token-subject"),
        ({"sub": "x" * 256}, "token-subject"),
    ],
)
def test_claims_that_deny(
    changes: dict[str, Any],
    reason: str,
    rsa_key: SigningKey,
    auth: tuple[TokenAuth, dict[str, int]],
) -> None:
    values = claims()
    values.update(changes)
    values = {k: v for k, v in values.items() if v is not None}
    decision = decide(jwt_event(rsa_key.sign(values)), auth[0])
    assert decision.reason == reason and decision.username is None


def test_clock_skew_and_the_aud_list(
    rsa_key: SigningKey, auth: tuple[TokenAuth, dict[str, int]]
) -> None:
    ok = claims(exp=NOW + 400, nbf=NOW + 59, aud=["other", AUDIENCE])
    assert decide(jwt_event(rsa_key.sign(ok)), auth[0]).allowed
    late = claims(lifetime=3600)
    assert (
        decide(jwt_event(rsa_key.sign(late)), auth[0], now=NOW + 3600 + 59).reason
        == "token-expiring"
    )
    assert decide(jwt_event(rsa_key.sign(late)), auth[0], now=NOW + 3661).reason == "token-expired"


def test_replay_after_expiry_is_refused(
    rsa_key: SigningKey, auth: tuple[TokenAuth, dict[str, int]]
) -> None:
    token = rsa_key.sign(claims(lifetime=900))
    assert decide(jwt_event(token), auth[0]).allowed
    assert decide(jwt_event(token), auth[0], now=NOW + 900 + 61).reason == "token-expired"


def test_cognito_access_tokens_match_by_client_id(rsa_key: SigningKey) -> None:
    auth, _ = token_auth(rsa_key, settings=token_settings(audiences=(), client_ids=("app-1",)))
    access = claims(aud=None, client_id="app-1", token_use="access")
    assert decide(jwt_event(rsa_key.sign(access)), auth).allowed
    other = claims(aud=None, client_id="app-2", token_use="access")
    assert decide(jwt_event(rsa_key.sign(other)), auth).reason == "token-audience"


def test_session_is_bounded_by_the_token(
    rsa_key: SigningKey, auth: tuple[TokenAuth, dict[str, int]]
) -> None:
    decision = decide(jwt_event(rsa_key.sign(claims(lifetime=1000))), auth[0])
    assert decision.disconnect_after == 1000 and decision.refresh_after == 1000
    long = decide(jwt_event(rsa_key.sign(claims(lifetime=200_000))), auth[0])
    assert long.disconnect_after == 86400
    short = Settings(table="t", disconnect_after_seconds=600, refresh_after_seconds=300)
    bounded = decide(jwt_event(rsa_key.sign(claims())), auth[0], settings=short)
    assert (bounded.disconnect_after, bounded.refresh_after) == (600, 300)


def test_alg_confusion_is_refused(
    rsa_key: SigningKey, ec_key: SigningKey, auth: tuple[TokenAuth, dict[str, int]]
) -> None:
    hs = unsigned({"alg": "HS256", "kid": "r1"}, claims(), b"\x01" * 32)
    assert decide(jwt_event(hs), auth[0]).reason == "token-alg"
    none = unsigned({"alg": "none", "kid": "r1"}, claims(), b"\x01")
    assert decide(jwt_event(none), auth[0]).reason == "token-alg"
    # An ES256 token naming the RSA key's kid: the key's type must match the alg.
    confused = ec_key.sign(claims(), kid="r1")
    assert decide(jwt_event(confused), auth[0]).reason == "token-alg"
    # An algorithm allowed by the verifier but not pinned for this issuer.
    only_rsa, _ = token_auth(
        rsa_key, ec_key, settings=token_settings(algorithms=frozenset({"RS256"}))
    )
    assert decide(jwt_event(ec_key.sign(claims())), only_rsa).reason == "token-alg"


def test_a_forged_or_foreign_signature_is_refused(
    rsa_key: SigningKey, auth: tuple[TokenAuth, dict[str, int]]
) -> None:
    stranger = SigningKey("RS256", "r1")  # same kid, another key
    assert decide(jwt_event(stranger.sign(claims())), auth[0]).reason == "token-signature"
    head, body, _ = rsa_key.sign(claims()).split(".")
    _, other_body, sig = rsa_key.sign(claims(sub="bob")).split(".")
    assert decide(jwt_event(f"{head}.{other_body}.{_}"), auth[0]).reason == "token-signature"
    assert decide(jwt_event(f"{head}.{body}.{sig}"), auth[0]).reason == "token-signature"


@pytest.mark.parametrize(
    "kid", ["../../../etc/passwd", "https://evil.test/jwks.json", "'OR'1'='1;--", "r2"]
)
def test_unknown_kids_cost_one_rate_limited_refetch(kid: str, rsa_key: SigningKey) -> None:
    clock = {"now": float(NOW)}
    auth, calls = token_auth(rsa_key, clock=lambda: clock["now"])
    assert auth.jwks.prime() and calls["fetches"] == 1
    for _ in range(50):
        decision = decide(jwt_event(rsa_key.sign(claims(), kid=kid)), auth)
        assert decision.reason == "token-key-unknown"
    assert calls["fetches"] == 1  # primed just now: the minimum interval holds
    clock["now"] += 61
    for _ in range(50):
        decide(jwt_event(rsa_key.sign(claims(), kid=kid)), auth, now=NOW + 61)
    assert calls["fetches"] == 2  # one more, whatever the number of tokens


def test_a_token_without_kid(rsa_key: SigningKey) -> None:
    jwk = dict(rsa_key.jwk)
    del jwk["kid"]
    auth, _ = token_auth(rsa_key)
    auth.jwks._fetch = lambda url, timeout: json.dumps({"keys": [jwk]}).encode()  # type: ignore[method-assign]
    token = rsa_key.sign(claims())
    no_kid = rsa_key.sign(claims(), kid=None)
    assert decide(jwt_event(no_kid), auth).allowed
    assert decide(jwt_event(token), auth).reason == "token-key-unknown"


def test_jwks_down_denies_without_hanging(rsa_key: SigningKey) -> None:
    auth, _ = token_auth(rsa_key)

    def down(url: str, timeout: float) -> bytes:
        raise OSError("connection refused")

    auth.jwks._fetch = down  # type: ignore[method-assign]
    assert decide(jwt_event(rsa_key.sign(claims())), auth).reason == "jwks-unavailable"


def test_disabled_web_user_is_refused_with_one_read(rsa_key: SigningKey) -> None:
    users = MemoryWebUserStatus({ALICE})
    auth, _ = token_auth(rsa_key, web_users=users)
    decision = decide(jwt_event(rsa_key.sign(claims())), auth)
    assert decision.reason == "disabled" and decision.username == ALICE
    assert users.reads == 1
    users.disabled.clear()  # `users enable`: the next CONNECT, no cache in between
    assert decide(jwt_event(rsa_key.sign(claims())), auth).allowed
    users.fail = True
    assert decide(jwt_event(rsa_key.sign(claims())), auth).reason == "store-error"


def test_unverified_tokens_never_read_the_store(rsa_key: SigningKey) -> None:
    users = MemoryWebUserStatus()
    auth, _ = token_auth(rsa_key, web_users=users)
    stranger = SigningKey("RS256", "r1")
    decide(jwt_event(stranger.sign(claims())), auth)
    decide(jwt_event(rsa_key.sign(claims(iss="https://x.test"))), auth)
    assert users.reads == 0


def test_the_deadline_stops_the_read(rsa_key: SigningKey) -> None:
    users = MemoryWebUserStatus()
    auth, _ = token_auth(rsa_key, web_users=users)
    auth.jwks.prime()
    ticks = iter([0.0, 0.0, 10.0, 10.0, 10.0])
    decision = decide(jwt_event(rsa_key.sign(claims())), auth, monotonic=lambda: next(ticks))
    assert decision.reason == "store-timeout" and users.reads == 0


def _group_auth(rsa_key: SigningKey) -> TokenAuth:
    grants = GroupGrants.from_json(
        json.dumps({"admins": {"rooms": ["chat/ops"], "subscribe": ["alerts/#"]}}), ("chat",)
    )
    rules = WebScopeRules(shared_roots=("chat",), rooms=("chat/lobby",), group_grants=grants)
    return token_auth(rsa_key, settings=token_settings(rules=rules))[0]


def test_groups_grant_their_topics_and_lose_them_with_a_new_token(rsa_key: SigningKey) -> None:
    auth = _group_auth(rsa_key)
    arn = "arn:aws:iot:us-east-1:123456789012"
    admin = decide(jwt_event(rsa_key.sign(claims(**{"cognito:groups": ["admins", "x"]}))), auth)
    assert admin.allowed
    assert policy(admin).allows("iot:Publish", f"{arn}:topic/chat/ops/{ALICE}")
    assert policy(admin).allows("iot:Subscribe", f"{arn}:topicfilter/alerts/#")
    # Removed from the group: the next token (at the next connect) carries no group.
    after = decide(jwt_event(rsa_key.sign(claims(**{"cognito:groups": ["x"]}))), auth)
    assert after.allowed
    assert not policy(after).allows("iot:Publish", f"{arn}:topic/chat/ops/{ALICE}")
    assert not policy(after).allows("iot:Subscribe", f"{arn}:topicfilter/alerts/#")
    assert policy(after).allows("iot:Publish", f"{arn}:topic/chat/lobby/{ALICE}")


def test_a_long_jwt_password_is_accepted_but_bounded(
    rsa_key: SigningKey, auth: tuple[TokenAuth, dict[str, int]]
) -> None:
    padded = rsa_key.sign(claims(pad="p" * 3000))
    assert decide(jwt_event(padded), auth[0]).allowed
    event = jwt_event("a" * 70000)
    assert parse_connect_event(event).problem == "password-invalid"
    top = jwt_event(padded)
    top["token"] = "b" * 65536
    assert parse_connect_event(top).problem == "token-invalid"
    assert decide(top, auth[0]).reason == "malformed"


def test_token_bytes_never_in_the_request_repr(rsa_key: SigningKey) -> None:
    token = rsa_key.sign(claims())
    event = _wss("query", token)
    event["token"] = token
    event["protocolData"]["mqtt"]["password"] = base64.b64encode(token.encode()).decode()
    text = repr(parse_connect_event(event))
    assert token.split(".")[2] not in text and token.split(".")[1] not in text


def test_settings_from_env() -> None:
    assert TokenSettings.from_env({}) is None
    env = {
        "IOTAUTH_TOKEN_ISSUER": ISSUER,
        "IOTAUTH_TOKEN_AUDIENCE": f"{AUDIENCE}, other",
        "IOTAUTH_TOKEN_ALGORITHMS": "RS256,ES256",
        "IOTAUTH_TOKEN_GROUP_GRANTS": '{"ops": {"rooms": ["chat/ops"]}}',
        "IOTAUTH_WEB_ROOMS": "chat/lobby",
    }
    settings = TokenSettings.from_env(env)
    assert settings is not None
    assert settings.jwks_url == ISSUER + "/.well-known/jwks.json"
    assert settings.audiences == (AUDIENCE, "other")
    assert settings.rules.group_grants.groups["ops"].rooms == ("chat/ops",)
    for bad in (
        {"IOTAUTH_TOKEN_ISSUER": "http://issuer.test"},
        {"IOTAUTH_TOKEN_AUDIENCE": ""},
        {"IOTAUTH_TOKEN_ALGORITHMS": "HS256"},
        {"IOTAUTH_TOKEN_ALGORITHMS": "none"},
        {"IOTAUTH_TOKEN_KEY_NAME": "x-amz-customauthorizer-signature"},
        {"IOTAUTH_TOKEN_KEY_NAME": "a b"},
        {"IOTAUTH_TOKEN_JWKS_URL": "https://issuer.test/jwks?x=1"},
        {"IOTAUTH_TOKEN_CLOCK_SKEW_SECONDS": "3600"},
        {"IOTAUTH_TOKEN_GROUP_GRANTS": '{"ops": {"publish": ["#"]}}'},
        {"IOTAUTH_TOKEN_GROUP_GRANTS": '{"ops": {"subscribe": ["web-alice/#"]}}'},
        {"IOTAUTH_TOKEN_GROUP_GRANTS": '{"ops": {"publish": ["chat/lobby/x"]}}'},
        {"IOTAUTH_TOKEN_GROUP_GRANTS": '{"ops": {"rooms": ["elsewhere/ops"]}}'},
        {"IOTAUTH_TOKEN_GROUP_GRANTS": "[1]"},
    ):
        with pytest.raises(ValueError):
            TokenSettings.from_env({**env, **bad})
