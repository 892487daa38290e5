"""IoT Core's broker decisions as pure functions (iotauth.local.enforcement): a grant and a
packet in, a verdict out — no sockets. Policies are evaluated with iotauth.access.policy."""

from __future__ import annotations

import json

import pytest

from iotauth.access.policy import PolicySet
from iotauth.access.scoping import ArnContext
from iotauth.local.enforcement import (
    LIMITS,
    Grant,
    Outcome,
    connect_problem,
    effective_keep_alive,
    effective_session_expiry,
    publish_verdict,
    receive_allowed,
    subscribe_verdicts,
    topic_filter_problem,
    topic_name_problem,
    will_allowed,
)
from iotauth.local.mqtt.codec import Connect, Properties, Will
from iotauth.local.mqtt.reasons import Reason, v3_connack_code

ARN = ArnContext("aws", "us-east-1", "123456789012")


def grant(*statements: tuple[str, str, str], client_id: str = "dev") -> Grant:
    document = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": effect, "Action": action, "Resource": ARN.resource(*res.split(":", 1))}
            for effect, action, res in statements
        ],
    }
    return Grant(PolicySet([json.dumps(document)]), client_id, ARN)


DEV = grant(
    ("Allow", "iot:Connect", "client:dev"),
    ("Allow", "iot:Publish", "topic:dev/*"),
    ("Allow", "iot:Receive", "topic:dev/*"),
    ("Allow", "iot:Subscribe", "topicfilter:dev/*"),
    ("Allow", "iot:RetainPublish", "topic:dev/state"),
    ("Allow", "iot:Publish", "topic:$aws/things/dev/shadow/update"),
)


def publish(version: int = 5, qos: int = 1, topic: str = "dev/x", **kw: object) -> Outcome:
    values: dict[str, object] = {"retain": False, "payload_size": 10}
    values.update(kw)
    return publish_verdict(DEV, version=version, topic=topic, qos=qos, **values).outcome  # type: ignore[arg-type]


def test_publish_allowed_and_refused_by_version_and_qos() -> None:
    assert publish() is Outcome.FORWARD
    assert publish(topic="other/x") is Outcome.REFUSE  # MQTT 5 QoS 1: PUBACK 0x87
    verdict = publish_verdict(DEV, version=5, topic="other/x", qos=1, retain=False, payload_size=1)
    assert verdict.reason == Reason.NOT_AUTHORIZED and not verdict.forward
    assert publish(topic="other/x", qos=0) is Outcome.DISCONNECT
    assert publish(version=4, topic="other/x") is Outcome.DISCONNECT  # 3.1.1 cannot refuse
    for version in (4, 5):  # QoS 2 is never accepted, even where Publish is allowed
        assert publish(version=version, qos=2) is Outcome.DISCONNECT


def test_retain_needs_retain_publish() -> None:
    assert publish(topic="dev/state", retain=True) is Outcome.FORWARD
    assert publish(topic="dev/other", retain=True) is Outcome.REFUSE
    assert publish(topic="dev/other", retain=False) is Outcome.FORWARD


def test_iot_quotas_on_publish() -> None:
    assert publish(payload_size=LIMITS.payload_bytes) is Outcome.FORWARD
    big = publish_verdict(
        DEV, version=5, topic="dev/x", qos=1, retain=False, payload_size=LIMITS.payload_bytes + 1
    )
    assert (big.outcome, big.reason) == (Outcome.DISCONNECT, Reason.PACKET_TOO_LARGE)
    assert publish(topic="dev/" + "a/" * 6 + "b") is Outcome.FORWARD  # 7 slashes
    assert publish(topic="dev/" + "a/" * 7 + "b") is Outcome.REFUSE  # 8: topic name invalid
    assert publish(topic="dev/" + "x" * 253) is Outcome.REFUSE  # over 256 bytes
    users = Properties(tuple((0x26, ("k" * 100, "v" * 100)) for _ in range(42)))  # 8.4 KB
    assert publish(properties=users) is Outcome.DISCONNECT


@pytest.mark.parametrize(
    ("topic", "problem"),
    [
        ("a/b", None),
        ("", Reason.TOPIC_NAME_INVALID),
        ("a/+", Reason.TOPIC_NAME_INVALID),
        ("a/#", Reason.TOPIC_NAME_INVALID),
        ("$SYS/x", Reason.NOT_AUTHORIZED),
        ("$aws/things/t/shadow/update", None),
        ("$aws/rules/rule/" + "a/" * 7 + "b", None),  # Basic Ingest's prefix is not counted
    ],
)
def test_topic_names(topic: str, problem: Reason | None) -> None:
    assert topic_name_problem(topic) == problem


@pytest.mark.parametrize(
    ("topic_filter", "problem"),
    [
        ("a/#", None),
        ("a/+/b", None),
        ("#", None),
        ("a/#/b", Reason.TOPIC_FILTER_INVALID),
        ("a/b#", Reason.TOPIC_FILTER_INVALID),
        ("a/b+", Reason.TOPIC_FILTER_INVALID),
        ("$share/g/a/#", None),
        ("$share/g", Reason.TOPIC_FILTER_INVALID),
        ("$share/+/a", Reason.TOPIC_FILTER_INVALID),
        ("$SYS/#", Reason.NOT_AUTHORIZED),
        ("", Reason.TOPIC_FILTER_INVALID),
    ],
)
def test_topic_filters(topic_filter: str, problem: Reason | None) -> None:
    assert topic_filter_problem(topic_filter) == problem


def test_subscribe_per_filter_with_literal_wildcards() -> None:
    # 'dev/#' is allowed by topicfilter/dev/*; '#' and 'other/#' are not.
    verdict = subscribe_verdicts(
        DEV, version=5, filters=[("dev/#", 1), ("#", 1), ("other/+", 0), ("a/#/b", 1)]
    )
    assert verdict.refused == (None, 0x87, 0x87, 0x8F)
    assert verdict.forwarded == [0] and verdict.answer
    v3 = subscribe_verdicts(DEV, version=4, filters=[("dev/#", 1), ("#", 1)])
    assert v3.refused == (None, 0x80)  # MQTT 3.1.1's one failure code
    nine = subscribe_verdicts(DEV, version=5, filters=[(f"dev/{i}", 1) for i in range(9)])
    assert nine.refused[-1] == Reason.QUOTA_EXCEEDED and nine.forwarded == list(range(8))


def test_qos2_subscribe_in_mqtt311_gets_no_answer() -> None:
    assert not subscribe_verdicts(DEV, version=4, filters=[("dev/#", 2)]).answer
    assert subscribe_verdicts(DEV, version=5, filters=[("dev/#", 2)]).forwarded == [0]


def test_receive_on_every_delivery() -> None:
    assert receive_allowed(DEV, "dev/x")
    assert not receive_allowed(DEV, "other/x")
    assert not receive_allowed(DEV, "")
    deny = grant(
        ("Allow", "iot:Receive", "topic:dev/*"), ("Deny", "iot:Receive", "topic:dev/secret")
    )
    assert receive_allowed(deny, "dev/open") and not receive_allowed(deny, "dev/secret")


def test_connect_checks() -> None:
    assert connect_problem(Connect("dev", version=5)) is None
    assert connect_problem(Connect("", version=5)) == Reason.CLIENT_IDENTIFIER_NOT_VALID
    assert connect_problem(Connect("x" * 128)) is None
    assert connect_problem(Connect("x" * 129)) == Reason.CLIENT_IDENTIFIER_NOT_VALID
    assert connect_problem(Connect("dev", version=3)) == Reason.UNSUPPORTED_PROTOCOL_VERSION
    enhanced = Connect("dev", version=5, properties=Properties.of(authentication_method="SCRAM"))
    assert connect_problem(enhanced) == Reason.BAD_AUTHENTICATION_METHOD
    assert (
        connect_problem(Connect("dev", will=Will("dev/w", b"", qos=2))) == Reason.QOS_NOT_SUPPORTED
    )
    assert v3_connack_code(Reason.CLIENT_IDENTIFIER_NOT_VALID) == 2
    assert v3_connack_code(Reason.NOT_AUTHORIZED) == 5


def test_will_needs_publish_and_retain_publish() -> None:
    assert will_allowed(DEV, Connect("dev"))
    assert will_allowed(DEV, Connect("dev", will=Will("dev/status", b"gone")))
    assert not will_allowed(DEV, Connect("dev", will=Will("other/status", b"gone")))
    assert will_allowed(DEV, Connect("dev", will=Will("dev/state", b"", retain=True)))
    assert not will_allowed(DEV, Connect("dev", will=Will("dev/status", b"", retain=True)))


@pytest.mark.parametrize(
    ("requested", "effective"),
    [(0, 1200), (1, 30), (30, 30), (600, 600), (1200, 1200), (65535, 1200)],
)
def test_keep_alive_range(requested: int, effective: int) -> None:
    assert effective_keep_alive(requested) == effective


def test_client_id_variable_is_the_connections() -> None:
    templated = Grant(
        PolicySet(
            [
                json.dumps(
                    {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Action": "iot:Publish",
                                "Resource": ARN.resource("topic", "${iot:ClientId}/*"),
                            }
                        ],
                    }
                )
            ]
        ),
        "dev-7",
        ARN,
    )
    assert publish_verdict(
        templated, version=5, topic="dev-7/x", qos=1, retain=False, payload_size=1
    ).forward
    assert not publish_verdict(
        templated, version=5, topic="dev-8/x", qos=1, retain=False, payload_size=1
    ).forward


def test_session_expiry_is_capped_at_an_hour() -> None:
    assert effective_session_expiry(60) == 60
    assert effective_session_expiry(0xFFFFFFFF) == 3600
