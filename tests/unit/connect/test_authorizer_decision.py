"""The authorizer's decision against the in-memory store (no AWS)."""

from __future__ import annotations

import json

import pytest

from iotauth.access.names import principal_id_for
from iotauth.access.policy import PolicySet
from iotauth.connect.authenticate import Settings
from iotauth.identities.lockout import LockoutPolicy
from iotauth.identities.store import MemoryStore, StoreError
from tests.authorizer_support import (
    ARN,
    NOW,
    SETTINGS,
    add_aliyun_identity,
    add_password_identity,
    add_secret_identity,
    aliyun_event,
    connect_event,
    decide,
)


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


def test_generated_secret_allows_with_scoped_policy(store: MemoryStore) -> None:
    secret = add_secret_identity(store, "alice")
    decision = decide(store, connect_event("alice", secret, "alice"))
    assert decision.allowed and decision.reason == "allowed"
    response = decision.response()
    assert response["isAuthenticated"] is True
    assert response["principalId"] == principal_id_for("alice")
    assert response["disconnectAfterInSeconds"] == 86400
    assert response["refreshAfterInSeconds"] == 86400  # revocation is DeleteConnection, not refresh
    documents = response["policyDocuments"]
    assert isinstance(documents, list) and all(isinstance(d, str) for d in documents)
    policy = PolicySet(documents)
    assert policy.allows("iot:Connect", ARN.resource("client", "alice"))
    assert policy.allows("iot:Publish", ARN.resource("topic", "alice/telemetry"))
    assert policy.allows("iot:Subscribe", ARN.resource("topicfilter", "alice/#"))
    text = json.dumps(documents)
    assert secret not in text and "iot:*" not in text and '"*"' not in text


def test_deny_response_is_only_is_authenticated_false(store: MemoryStore) -> None:
    add_secret_identity(store, "alice")
    decision = decide(store, connect_event("alice", "iotsk_" + "B" * 43, "alice"))
    assert decision.response() == {"isAuthenticated": False}
    assert decision.reason == "bad-password"


def test_chosen_password(store: MemoryStore) -> None:
    add_password_identity(store, "bob", "a long chosen password")
    assert decide(store, connect_event("bob", "a long chosen password", "bob")).allowed
    assert decide(store, connect_event("bob", "another password!", "bob")).reason == "bad-password"


def test_kind_mismatch_is_bad_password(store: MemoryStore) -> None:
    secret = add_secret_identity(store, "alice")
    add_aliyun_identity(store, "dev1", "pk1", secret)
    # The generated secret presented to a password record, the device secret as a password.
    assert not decide(
        store, connect_event("dev1&pk1", secret, "pk1&dev1|securemode=2,signmethod=hmacsha1|")
    ).allowed


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        ({"protocols": 1}, "malformed"),
        (connect_event(None, "x", "alice"), "missing-credentials"),
        (connect_event("alice", None, "alice"), "missing-credentials"),
        (connect_event("alice", "pw", None), "missing-client-id"),
        (connect_event("alice", "pw", ""), "missing-client-id"),
        (connect_event("al ice", "pw", "alice"), "malformed-username"),
        (connect_event("web-x", "pw", "web-x"), "malformed-username"),
        (connect_event("dev&pk", "pw", "plain-id"), "malformed-client-id"),
    ],
)
def test_malformed_requests_deny_without_store(
    store: MemoryStore, event: object, reason: str
) -> None:
    decision = decide(store, event)
    assert not decision.allowed and decision.reason == reason
    assert store.calls == 0


def test_unknown_user_is_denied_and_counted(store: MemoryStore) -> None:
    decision = decide(store, connect_event("ghost", "a guessed password", "ghost"))
    assert decision.reason == "unknown-identity"
    assert store.lockouts["ghost"].failures == 1


def test_disabled_identity(store: MemoryStore) -> None:
    secret = add_secret_identity(store, "alice")
    store.identities["alice"] = store.identities["alice"].replace(status="disabled")
    assert decide(store, connect_event("alice", secret, "alice")).reason == "disabled"


@pytest.mark.parametrize(
    "client_id", ["bob", "alice*", "*", "+", "#", "alice/x", "$alice", "alice?", "ALICE", "alice "]
)
def test_client_id_bound_to_identity(store: MemoryStore, client_id: str) -> None:
    secret = add_secret_identity(store, "alice")
    add_secret_identity(store, "bob")
    decision = decide(store, connect_event("alice", secret, client_id))
    assert decision.reason == "client-id-not-allowed"


def test_listed_client_ids(store: MemoryStore) -> None:
    secret = add_secret_identity(store, "alice", client_ids=("alice-1", "alice-2"))
    assert decide(store, connect_event("alice", secret, "alice-2")).allowed
    # Listing ids replaces the default.
    assert not decide(store, connect_event("alice", secret, "alice")).allowed
    decision = decide(store, connect_event("alice", secret, "alice-1"))
    policy = PolicySet(decision.policy_documents)
    assert policy.allows("iot:Connect", ARN.resource("client", "alice-1"))
    assert not policy.allows("iot:Connect", ARN.resource("client", "alice-2"))  # narrowed


def test_record_durations_and_grants(store: MemoryStore) -> None:
    secret = add_secret_identity(
        store,
        "alice",
        subscribe=("broadcast/news",),
        publish=("$aws/things/alice/shadow/update",),
        disconnect_after=3600,
        refresh_after=600,
        allow_broad=True,  # a grant into IoT's reserved $aws/… topics needs it
    )
    decision = decide(store, connect_event("alice", secret, "alice"))
    assert (decision.disconnect_after, decision.refresh_after) == (3600, 600)
    policy = PolicySet(decision.policy_documents)
    assert policy.allows("iot:Subscribe", ARN.resource("topicfilter", "broadcast/news"))
    assert policy.allows("iot:Receive", ARN.resource("topic", "broadcast/news"))
    assert not policy.allows("iot:Publish", ARN.resource("topic", "broadcast/news"))
    assert policy.allows("iot:Publish", ARN.resource("topic", "$aws/things/alice/shadow/update"))


def test_lockout_after_five_failures_even_right_password(store: MemoryStore) -> None:
    """Chosen passwords (guessable) lock; generated secrets never do (test_lockout_by_shape)."""
    add_password_identity(store, "alice", "the right passphrase")
    right = connect_event("alice", "the right passphrase", "alice")
    wrong = connect_event("alice", "a wrong passphrase", "alice")
    for i in range(5):
        assert decide(store, wrong, now=NOW + i).reason == "bad-password"
    assert decide(store, right, now=NOW + 10).reason == "locked"
    assert decide(store, right, now=NOW + 4 + 900).allowed
    assert "alice" not in store.lockouts  # success resets


def test_success_takes_back_only_its_own_count(store: MemoryStore) -> None:
    """A success is counted first and then uncounted; the failures before it stay (a reset
    would show a guesser that the owner signed in: test_lockout_by_shape)."""
    add_password_identity(store, "alice", "the right passphrase")
    wrong = connect_event("alice", "a wrong passphrase", "alice")
    for i in range(4):
        decide(store, connect_event("alice", f"wrong passphrase {i}", "alice"), now=NOW + i)
    right = connect_event("alice", "the right passphrase", "alice")
    assert decide(store, right, now=NOW + 5).allowed
    assert store.lockouts["alice"].failures == 4
    assert decide(store, wrong, now=NOW + 6).reason == "bad-password"  # the 5th: checked, locks
    assert decide(store, right, now=NOW + 7).reason == "locked"


def test_unknown_users_lock_like_known_ones(store: MemoryStore) -> None:
    add_secret_identity(store, "alice")
    for name in ("alice", "ghost"):
        reasons = [
            decide(store, connect_event(name, "a guessed password", name), now=NOW + i).reason
            for i in range(6)
        ]
        assert reasons[-1] == "locked"
        assert sum(r == "locked" for r in reasons) == 1


def test_configurable_lockout(store: MemoryStore) -> None:
    settings = SETTINGS.replace(
        lockout=LockoutPolicy(threshold=2, window_seconds=60, lockout_seconds=300)
    )
    wrong = connect_event("ghost", "a guessed password", "ghost")
    assert decide(store, wrong, settings=settings).reason == "unknown-identity"
    assert decide(store, wrong, settings=settings).reason == "unknown-identity"
    assert decide(store, wrong, settings=settings).reason == "locked"


def test_concurrent_failure_is_counted_on_top(store: MemoryStore) -> None:
    """A lost race on the counter re-reads and counts again (optimistic versioning)."""
    add_secret_identity(store, "alice")
    original = store.save_lockout
    raced = {"done": False}

    def racing_save(username, state, policy, previous_version):  # type: ignore[no-untyped-def]
        if not raced["done"]:
            raced["done"] = True
            original(username, state, policy, previous_version)  # another request wins
        return original(username, state, policy, previous_version)

    store.save_lockout = racing_save  # type: ignore[method-assign]
    decide(store, connect_event("alice", "a guessed password", "alice"))
    assert store.lockouts["alice"].failures == 2


def test_store_error_denies(store: MemoryStore) -> None:
    secret = add_secret_identity(store, "alice")
    store.fail_with = StoreError("throttled")
    decision = decide(store, connect_event("alice", secret, "alice"))
    assert not decision.allowed and decision.reason == "store-error"


def test_settings_from_env() -> None:
    settings = Settings.from_env(
        {
            "IOTAUTH_TABLE": "t",
            "IOTAUTH_LOCKOUT_THRESHOLD": "3",
            "IOTAUTH_REFRESH_AFTER_SECONDS": "600",
        }
    )
    assert settings.lockout.threshold == 3 and settings.refresh_after_seconds == 600
    for bad in (
        {},
        {"IOTAUTH_TABLE": "t", "IOTAUTH_REFRESH_AFTER_SECONDS": "299"},
        {"IOTAUTH_TABLE": "t", "IOTAUTH_DISCONNECT_AFTER_SECONDS": "86401"},
        {"IOTAUTH_TABLE": "t", "IOTAUTH_LOCKOUT_THRESHOLD": "five"},
    ):
        with pytest.raises(ValueError):
            Settings.from_env(bad)


# -- Aliyun ------------------------------------------------------------------------------


@pytest.mark.parametrize("signmethod", ["hmacsha1", "hmacsha256", "hmacmd5"])
@pytest.mark.parametrize("upper", [False, True])
def test_aliyun_signed(store: MemoryStore, signmethod: str, upper: bool) -> None:
    add_aliyun_identity(store, "sensor1", "pk1", "s3cret")
    event = aliyun_event("sensor1", "pk1", "s3cret", signmethod=signmethod, upper=upper)
    decision = decide(store, event)
    assert decision.allowed, decision.reason
    policy = PolicySet(decision.policy_documents)
    full_client_id = event["protocolData"]["mqtt"]["clientId"]
    assert policy.allows("iot:Connect", ARN.resource("client", full_client_id))
    assert not policy.allows("iot:Connect", ARN.resource("client", "pk1&sensor1"))
    assert policy.allows("iot:Publish", ARN.resource("topic", "/pk1/sensor1/user/update"))
    assert policy.allows("iot:Subscribe", ARN.resource("topicfilter", "/sys/pk1/sensor1/thing/#"))
    assert not policy.allows("iot:Publish", ARN.resource("topic", "/pk1/sensor2/user/update"))


def test_aliyun_linkkit_seconds_and_default_ids(store: MemoryStore) -> None:
    add_aliyun_identity(store, "sensor1", "pk1", "s3cret")
    assert decide(store, aliyun_event("sensor1", "pk1", "s3cret", timestamp=str(NOW))).allowed
    # The bare device name is not a default: another identity may own it (see
    # tests/unit/access/test_identity_isolation.py).
    for other in ("sensor1", "other"):
        denied = decide(store, aliyun_event("sensor1", "pk1", "s3cret", client_id=other))
        assert denied.reason == "client-id-not-allowed"


def test_aliyun_listed_client_id(store: MemoryStore) -> None:
    add_aliyun_identity(store, "sensor1", "pk1", "s3cret", client_ids=("AA-BB-CC-DD-EE-FF",))
    assert decide(
        store, aliyun_event("sensor1", "pk1", "s3cret", client_id="AA-BB-CC-DD-EE-FF")
    ).allowed


@pytest.mark.parametrize("skew", [-901, 901, 10**6])
def test_aliyun_stale_timestamp(store: MemoryStore, skew: int) -> None:
    add_aliyun_identity(store, "sensor1", "pk1", "s3cret")
    event = aliyun_event("sensor1", "pk1", "s3cret", timestamp=str((NOW + skew) * 1000))
    assert decide(store, event).reason == "timestamp-out-of-range"


def test_aliyun_timestamp_within_skew(store: MemoryStore) -> None:
    add_aliyun_identity(store, "sensor1", "pk1", "s3cret")
    event = aliyun_event("sensor1", "pk1", "s3cret", timestamp=str((NOW - 899) * 1000))
    assert decide(store, event).allowed


def test_aliyun_no_timestamp_needs_opt_in(store: MemoryStore) -> None:
    add_aliyun_identity(store, "sensor1", "pk1", "s3cret")
    add_aliyun_identity(store, "sensor2", "pk1", "s3cret", allow_no_timestamp=True)
    assert decide(store, aliyun_event("sensor1", "pk1", "s3cret", timestamp=None)).reason == (
        "timestamp-missing"
    )
    assert decide(store, aliyun_event("sensor2", "pk1", "s3cret", timestamp=None)).allowed


def test_aliyun_wrong_secret_and_unknown_device_counted(store: MemoryStore) -> None:
    add_aliyun_identity(store, "sensor1", "pk1", "s3cret")
    assert decide(store, aliyun_event("sensor1", "pk1", "wrong")).reason == "bad-password"
    assert decide(store, aliyun_event("sensor9", "pk1", "s3cret")).reason == "unknown-identity"
    assert store.lockouts["sensor1&pk1"].failures == 1
    assert store.lockouts["sensor9&pk1"].failures == 1


def test_aliyun_signature_binds_client_id(store: MemoryStore) -> None:
    """A signature for one client id does not work with another."""
    add_aliyun_identity(store, "sensor1", "pk1", "s3cret", client_ids=("other",))
    event = aliyun_event("sensor1", "pk1", "s3cret")
    mqtt = event["protocolData"]["mqtt"]
    mqtt["clientId"] = mqtt["clientId"].replace("pk1&sensor1|", "other|")
    assert decide(store, event).reason == "bad-password"


@pytest.mark.parametrize(
    "client_id",
    [
        "pk1&sensor1|securemode=2,signmethod=hmacsha1,timestamp=1*|",
        "pk1&sensor1|securemode=2,signmethod=hmacsha9|",
        "pk1&sensor1|securemode=2,signmethod=hmacsha1",
        "pk1&sensor1|securemode=2,signmethod=hmacsha1,x=${iot:ClientId}|",
        "pk1&*|securemode=2,signmethod=hmacsha1|",
        "p/k|signmethod=hmacsha1|",
    ],
)
def test_aliyun_malformed_client_ids(store: MemoryStore, client_id: str) -> None:
    add_aliyun_identity(store, "sensor1", "pk1", "s3cret", allow_no_timestamp=True)
    event = connect_event("sensor1&pk1", "00" * 20, client_id)
    assert not decide(store, event).allowed


@pytest.mark.parametrize(
    ("securemode", "reason"),
    [("2", "allowed"), ("3", "client-id-not-canonical"), ("-2", "malformed-client-id")],
)
def test_aliyun_securemode(store: MemoryStore, securemode: str, reason: str) -> None:
    """securemode is not signed and grants nothing; only the connect modes 2/3 parse
    (-2/-3 are Aliyun's dynamic-registration requests, never a connect), and over TLS
    (every IoT Core connection) only 2 is the canonical spelling (aliyun.py notes)."""
    add_aliyun_identity(store, "sensor1", "pk1", "s3cret")
    decision = decide(store, aliyun_event("sensor1", "pk1", "s3cret", securemode=securemode))
    assert decision.reason == reason
    if reason == "malformed-client-id":
        assert store.calls == 1  # refused before the store is read (the add was the one call)


def test_aliyun_securemode_is_required(store: MemoryStore) -> None:
    add_aliyun_identity(store, "sensor1", "pk1", "s3cret")
    event = aliyun_event("sensor1", "pk1", "s3cret")
    mqtt = event["protocolData"]["mqtt"]
    mqtt["clientId"] = mqtt["clientId"].replace("securemode=2,", "")
    assert decide(store, event).reason == "malformed-client-id"


def test_unknown_names_are_not_carried_for_logging(store: MemoryStore) -> None:
    secret = add_secret_identity(store, "alice")
    assert decide(store, connect_event("ghost", secret, "ghost")).username is None
    assert decide(store, connect_event("alice", "iotsk_" + "G" * 43, "alice")).username == "alice"
    # A generated secret pasted into the username field never reaches the store.
    decision = decide(store, connect_event(secret, secret, "alice"))
    assert decision.reason == "malformed-username" and decision.username is None


# -- Aliyun sessions: time-limited credentials are never replayed on a refresh --------------


def test_aliyun_timestamped_refresh_is_the_disconnect(store: MemoryStore) -> None:
    """IoT Core refreshes with the original CONNECT's credentials, whose timestamp is stale
    after the skew window: a timestamped Aliyun session is never refreshed, it ends (and the
    device reconnects with a fresh timestamp) at disconnect time, one hour by default."""
    add_aliyun_identity(store, "sensor1", "pk1", "s3cret")
    response = decide(store, aliyun_event("sensor1", "pk1", "s3cret")).response()
    assert response["disconnectAfterInSeconds"] == 3600
    assert response["refreshAfterInSeconds"] == 3600
    seconds = decide(store, aliyun_event("sensor1", "pk1", "s3cret", timestamp=str(NOW)))
    assert (seconds.disconnect_after, seconds.refresh_after) == (3600, 3600)


def test_aliyun_timestamped_record_durations(store: MemoryStore) -> None:
    add_aliyun_identity(store, "sensor1", "pk1", "s3cret", disconnect_after=7200, refresh_after=600)
    add_aliyun_identity(store, "sensor2", "pk1", "s3cret", refresh_after=600)
    one = decide(store, aliyun_event("sensor1", "pk1", "s3cret"))
    assert (one.disconnect_after, one.refresh_after) == (7200, 7200)
    two = decide(store, aliyun_event("sensor2", "pk1", "s3cret"))
    assert (two.disconnect_after, two.refresh_after) == (3600, 3600)


def test_aliyun_timestamped_honours_a_shorter_deployment_default(store: MemoryStore) -> None:
    add_aliyun_identity(store, "sensor1", "pk1", "s3cret")
    short = SETTINGS.replace(disconnect_after_seconds=1800)
    decision = decide(store, aliyun_event("sensor1", "pk1", "s3cret"), settings=short)
    assert (decision.disconnect_after, decision.refresh_after) == (1800, 1800)


def test_aliyun_without_timestamp_refreshes_as_usual(store: MemoryStore) -> None:
    """Credentials without a timestamp do not expire: the usual refresh re-checks them."""
    add_aliyun_identity(store, "sensor2", "pk1", "s3cret", allow_no_timestamp=True)
    decision = decide(store, aliyun_event("sensor2", "pk1", "s3cret", timestamp=None))
    assert (decision.disconnect_after, decision.refresh_after) == (86400, 86400)
