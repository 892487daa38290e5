"""What IoT Core's message broker allows, as pure functions the gateway and tests share.

Each packet's decision is made here from the connection's :class:`Grant` and the decoded
packet, with no socket in sight (``verdict = publish_verdict(...)``; the gateway carries it
out), so each IoT rule and quota (:data:`LIMITS`, IoT Core's figures) lives in one place,
testable by itself. A refused PUBLISH is never acknowledged as accepted.

Design: docs/design/standin-rules.md
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from iotauth.access.scoping import ArnContext
from iotauth.local.mqtt.codec import Connect, DecodeBudget, Properties
from iotauth.local.mqtt.reasons import Reason

__all__ = [
    "LIMITS",
    "Grant",
    "Limits",
    "Outcome",
    "Permissions",
    "PublishVerdict",
    "SubscribeVerdict",
    "connect_problem",
    "effective_keep_alive",
    "effective_session_expiry",
    "engine_subscription_options",
    "is_exact_filter",
    "publish_verdict",
    "receive_allowed",
    "retained_delivery_allowed",
    "subscribe_verdicts",
    "topic_filter_problem",
    "topic_name_problem",
    "will_allowed",
]

RESERVED_TOPIC_PREFIX = "$aws/"
SHARED_SUBSCRIPTION_PREFIX = "$share/"
_BASIC_INGEST = "$aws/rules/"
NO_PROPERTIES = Properties()


@dataclass(frozen=True, slots=True)
class Limits:
    """IoT Core's message-broker quotas (sources: docs/design/standin-rules.md)."""

    client_id_bytes: int = 128
    payload_bytes: int = 128 * 1024
    topic_bytes: int = 256
    topic_slashes: int = 7
    filters_per_subscribe: int = 8
    keep_alive_min: int = 30
    keep_alive_max: int = 1200
    topic_alias_maximum: int = 8
    receive_maximum: int = 100
    maximum_packet_size: int = 149_504
    # 8 KB of User Properties per property section, counted on the wire: each pair's
    # identifier and length prefixes too (an empty pair is 5 bytes), so the number of pairs
    # is bounded as well as their content (at most 1,638 pairs).
    user_properties_bytes: int = 8 * 1024
    session_expiry_seconds: int = 3600  # persistent sessions: 1 hour (adjustable to 7 days)

    @property
    def decode_budget(self) -> DecodeBudget:
        """What the gateway's decoder may read of a client's packet before refusing it:
        User Properties past :attr:`user_properties_bytes` (0x95), topic filters past
        :attr:`filters_per_subscribe` (0x97), a second Subscription Identifier (0x82)."""
        return DecodeBudget(self.user_properties_bytes, self.filters_per_subscribe, 1)


LIMITS = Limits()


class Permissions(Protocol):
    def allows(self, action: str, resource: str, variables: Mapping[str, str]) -> bool: ...


@dataclass(frozen=True, slots=True)
class Grant:
    """What one connection may do: its permissions, for its client id, in one account."""

    permissions: Permissions
    client_id: str
    arn: ArnContext

    @property
    def variables(self) -> dict[str, str]:
        return {"iot:ClientId": self.client_id}

    def allows(self, action: str, kind: str, name: str) -> bool:
        return self.permissions.allows(action, self.arn.resource(kind, name), self.variables)


# --- names ----------------------------------------------------------------------------------


def _slashes(topic: str) -> int:
    count = topic.count("/")
    if topic.startswith(_BASIC_INGEST):
        count -= 3  # "$aws/rules/<rule>/" is not counted (quotas page)
    return count


def topic_name_problem(topic: str, limits: Limits = LIMITS) -> Reason | None:
    """Why ``topic`` cannot be published to (MQTT rules, then IoT's quotas), or None."""
    if not topic or "+" in topic or "#" in topic:
        return Reason.TOPIC_NAME_INVALID  # [MQTT-3.3.2-1, -2]
    if len(topic.encode("utf-8")) > limits.topic_bytes or _slashes(topic) > limits.topic_slashes:
        return Reason.TOPIC_NAME_INVALID
    if topic.startswith("$") and not topic.startswith(RESERVED_TOPIC_PREFIX):
        return Reason.NOT_AUTHORIZED  # '$SYS/…' and the like: no policy can grant them
    return None


def topic_filter_problem(topic_filter: str, limits: Limits = LIMITS) -> Reason | None:
    """Why ``topic_filter`` cannot be subscribed to, or None."""
    plain = topic_filter
    if topic_filter.startswith(SHARED_SUBSCRIPTION_PREFIX):
        _, _, rest = topic_filter[len(SHARED_SUBSCRIPTION_PREFIX) :].partition("/")
        group = topic_filter[len(SHARED_SUBSCRIPTION_PREFIX) :].split("/", 1)[0]
        if not group or "+" in group or "#" in group or not rest:
            return Reason.TOPIC_FILTER_INVALID  # [MQTT-4.8.2-1, -2]
        plain = rest
    if not plain:
        return Reason.TOPIC_FILTER_INVALID
    levels = plain.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            return Reason.TOPIC_FILTER_INVALID  # [MQTT-4.7.1-1]
        if "+" in level and level != "+":
            return Reason.TOPIC_FILTER_INVALID  # [MQTT-4.7.1-2]
    if len(plain.encode("utf-8")) > limits.topic_bytes or _slashes(plain) > limits.topic_slashes:
        return Reason.TOPIC_FILTER_INVALID
    if plain.startswith("$") and not plain.startswith(RESERVED_TOPIC_PREFIX):
        return Reason.NOT_AUTHORIZED
    return None


# --- CONNECT --------------------------------------------------------------------------------


def connect_problem(packet: Connect, limits: Limits = LIMITS) -> Reason | None:
    """What is wrong with a CONNECT before anyone authenticates it, or None."""
    if packet.version not in (4, 5):
        return Reason.UNSUPPORTED_PROTOCOL_VERSION
    if not packet.client_id or len(packet.client_id.encode("utf-8")) > limits.client_id_bytes:
        # IoT needs a client id to authorize iot:Connect on; at most 128 bytes.
        return Reason.CLIENT_IDENTIFIER_NOT_VALID
    if packet.version == 5:
        if packet.properties.get("authentication_method") is not None:
            return Reason.BAD_AUTHENTICATION_METHOD  # no enhanced authentication in IoT
        if packet.properties.get("receive_maximum", 1) == 0:
            return Reason.PROTOCOL_ERROR  # [MQTT-3.1.2-... Receive Maximum 0]
        if packet.properties.get("maximum_packet_size", 1) == 0:
            return Reason.PROTOCOL_ERROR
        if _too_many_user_properties(packet.properties, limits):
            return Reason.PACKET_TOO_LARGE
    if packet.will is not None:
        if packet.will.qos == 2:
            return Reason.QOS_NOT_SUPPORTED
        if len(packet.will.payload) > limits.payload_bytes:
            return Reason.PACKET_TOO_LARGE
        if _too_many_user_properties(packet.will.properties, limits):
            return Reason.PACKET_TOO_LARGE
    return None


def will_allowed(grant: Grant, packet: Connect, limits: Limits = LIMITS) -> bool:
    """A will message needs ``iot:Publish`` (and, retained, ``iot:RetainPublish``) at
    CONNECT: IoT publishes it later on the client's behalf."""
    will = packet.will
    if will is None:
        return True
    if topic_name_problem(will.topic, limits) is not None:
        return False
    if not grant.allows("iot:Publish", "topic", will.topic):
        return False
    return not will.retain or grant.allows("iot:RetainPublish", "topic", will.topic)


def effective_keep_alive(requested: int, limits: Limits = LIMITS) -> int:
    """IoT's keep-alive for a requested value: clamped to 30-1200 s; 0 means 1200 s."""
    if requested == 0:
        return limits.keep_alive_max
    return max(limits.keep_alive_min, min(limits.keep_alive_max, requested))


def _too_many_user_properties(properties: Properties, limits: Limits) -> bool:
    """Over IoT's 8 KB, counted on the wire: an empty pair costs its 5 bytes of framing."""
    return properties.user_properties_wire_size() > limits.user_properties_bytes


# --- PUBLISH ----------------------------------------------------------------------------------


class Outcome(Enum):
    FORWARD = "forward"  # send it to the engine
    REFUSE = "refuse"  # MQTT 5 QoS 1: PUBACK with the reason code, nothing forwarded
    DISCONNECT = "disconnect"  # end the connection (MQTT 5: DISCONNECT with the reason)


@dataclass(frozen=True, slots=True)
class PublishVerdict:
    outcome: Outcome
    reason: Reason = Reason.SUCCESS
    why: str = ""

    @property
    def forward(self) -> bool:
        return self.outcome is Outcome.FORWARD


def publish_verdict(
    grant: Grant,
    *,
    version: int,
    topic: str,
    qos: int,
    retain: bool,
    payload_size: int,
    properties: Properties = NO_PROPERTIES,
    limits: Limits = LIMITS,
) -> PublishVerdict:
    """What to do with a client's PUBLISH (after topic-alias resolution)."""
    if qos == 2:
        # IoT sends no PUBACK (nor PUBREC) for QoS 2; MQTT 5 announced Maximum QoS 1, so a
        # QoS 2 PUBLISH breaks the protocol [MQTT-3.2.2-11]: 0x9B QoS not supported.
        return PublishVerdict(Outcome.DISCONNECT, Reason.QOS_NOT_SUPPORTED, "QoS 2")
    if payload_size > limits.payload_bytes:
        return PublishVerdict(Outcome.DISCONNECT, Reason.PACKET_TOO_LARGE, "payload over 128 KB")
    if _too_many_user_properties(properties, limits):
        return PublishVerdict(Outcome.DISCONNECT, Reason.PACKET_TOO_LARGE, "user properties")
    problem = topic_name_problem(topic, limits)
    if problem is None and not grant.allows("iot:Publish", "topic", topic):
        problem = Reason.NOT_AUTHORIZED
    if problem is None and retain and not grant.allows("iot:RetainPublish", "topic", topic):
        problem = Reason.NOT_AUTHORIZED
    if problem is None:
        return PublishVerdict(Outcome.FORWARD)
    why = "iot:Publish denied" if problem == Reason.NOT_AUTHORIZED else "topic name invalid"
    if retain and problem == Reason.NOT_AUTHORIZED:
        why = "iot:Publish/iot:RetainPublish denied"
    if version == 5 and qos == 1:
        return PublishVerdict(Outcome.REFUSE, problem, why)
    return PublishVerdict(Outcome.DISCONNECT, problem, why)


# --- SUBSCRIBE / deliveries ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SubscribeVerdict:
    """Per filter of one SUBSCRIBE: the SUBACK code when refused, else None (forward it)."""

    refused: tuple[int | None, ...]
    answer: bool = True  # False: send no SUBACK at all (MQTT 3.1.1 QoS 2, as IoT does)

    @property
    def forwarded(self) -> list[int]:
        return [i for i, code in enumerate(self.refused) if code is None]


def subscribe_verdicts(
    grant: Grant,
    *,
    version: int,
    filters: Sequence[tuple[str, int]],
    limits: Limits = LIMITS,
) -> SubscribeVerdict:
    """Each filter's fate: ``iot:Subscribe`` on ``topicfilter/<filter>`` (as written:
    MQTT wildcards are literal characters in a policy), IoT's filter limits."""
    if version != 5 and any(options & 0x03 == 2 for _, options in filters):
        return SubscribeVerdict(tuple(Reason.QOS_NOT_SUPPORTED for _ in filters), answer=False)
    refused: list[int | None] = []
    failure = Reason.UNSPECIFIED_ERROR  # MQTT 3.1.1's only SUBACK failure code
    for index, (topic_filter, _) in enumerate(filters):
        problem = topic_filter_problem(topic_filter, limits)
        if problem is None and index >= limits.filters_per_subscribe:
            problem = Reason.QUOTA_EXCEEDED
        if problem is None and not grant.allows("iot:Subscribe", "topicfilter", topic_filter):
            problem = Reason.NOT_AUTHORIZED
        refused.append(None if problem is None else (problem if version == 5 else failure))
    return SubscribeVerdict(tuple(refused))


def receive_allowed(grant: Grant, topic: str) -> bool:
    """``iot:Receive`` on ``topic/<topic>``: checked on every delivery, retained included."""
    return bool(topic) and grant.allows("iot:Receive", "topic", topic)


# --- retained messages on subscribe ---------------------------------------------------------
# IoT Core delivers a retained message on subscribe only to a filter that is exactly its
# topic: "To receive a retained message upon subscription, the topic filter in the
# subscription request must match the retained message topic exactly"; a wildcard filter
# gets later messages on that topic, not the retained one (developer guide, "MQTT retained
# messages": https://docs.aws.amazon.com/iot/latest/developerguide/mqtt.html#mqtt-retain).
# mosquitto sends them to every matching filter, so the gateway narrows it.

_RETAIN_HANDLING = 0x30  # MQTT 5 subscription options, bits 4-5
_NO_RETAINED_ON_SUBSCRIBE = 0x20  # Retain Handling 2


def is_exact_filter(topic_filter: str) -> bool:
    """A filter that names one topic: no ``+``/``#``, not a shared subscription."""
    return not (
        topic_filter.startswith(SHARED_SUBSCRIPTION_PREFIX)
        or "+" in topic_filter
        or "#" in topic_filter
    )


def engine_subscription_options(topic_filter: str, options: int, version: int) -> int:
    """The options the engine gets for a granted filter: an MQTT 5 filter that is not exact
    asks for no retained messages at subscribe (Retain Handling 2), so the engine sends
    them only where IoT would. MQTT 3.1.1 has no such option: see
    :func:`retained_delivery_allowed`."""
    if version == 5 and not is_exact_filter(topic_filter):
        return (options & ~_RETAIN_HANDLING) | _NO_RETAINED_ON_SUBSCRIBE
    return options


def retained_delivery_allowed(
    *, version: int, topic: str, retain: bool, exact_filters: Set[str]
) -> bool:
    """Whether a delivery may reach the client as far as retained messages go (its
    ``iot:Receive`` is checked apart).

    MQTT 3.1.1: the engine sets RETAIN only on a message sent because of a new subscription
    [MQTT-3.3.1-8, -9], so one is passed on only when the client subscribed to exactly its
    topic. MQTT 5: the engine was asked for none on other filters
    (:func:`engine_subscription_options`), and RETAIN may be a Retain-As-Published flag on a
    live message, so every delivery passes.
    """
    if version == 5 or not retain:
        return True
    return topic in exact_filters


def effective_session_expiry(requested: int, limits: Limits = LIMITS) -> int:
    """A requested MQTT 5 Session Expiry Interval, capped at the account's expiry period."""
    return min(requested, limits.session_expiry_seconds)
