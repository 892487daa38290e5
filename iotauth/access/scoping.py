"""The one rule that says what an identity may do on AWS IoT Core: :class:`Scope`.

:func:`policy_documents` (the authorizer's answer) and :func:`session_policy` (the signer's
STS scope-down) are both built from the same :class:`Scope`, and nothing else writes IoT
policy, so a device and a browser can never be granted by different rules.
:func:`grant_problem` judges an extra grant by what it can match, not by its spelling.

Design: docs/design/scoping.md
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from iotauth.access.names import WEB_PREFIX, InvalidName, validate_client_id
from iotauth.wire.frozen import Frozen

__all__ = [
    "DEFAULT_SHARED_ROOTS",
    "MAX_POLICY_CHARS",
    "MAX_POLICY_DOCUMENTS",
    "SHARED_PREFIX",
    "ArnContext",
    "PolicyTooLarge",
    "Scope",
    "grant_problem",
    "grant_reaches",
    "grant_reaches_prefix",
    "grant_root",
    "grant_within",
    "has_wildcard_root",
    "policy_documents",
    "policy_statements",
    "session_policy",
    "shared_roots_from_env",
    "validate_room",
    "validate_shared_root",
    "validate_topic_grant",
]

MAX_POLICY_DOCUMENTS = 10  # authorizer response: at most 10 documents ...
MAX_POLICY_CHARS = 2048  # ... of at most 2,048 characters each; STS session policy likewise
MAX_GRANT_CHARS = 256

# Topic names and filters an administrator may grant: MQTT wildcards '+'/'#' and the IAM
# wildcard '*' are allowed on purpose (the grant is the administrator's choice), policy
# variables are not.
_GRANT = re.compile(rf"[A-Za-z0-9_.@:&/*+#$-]{{1,{MAX_GRANT_CHARS}}}")
_LITERAL_PATH = re.compile(r"/?[A-Za-z0-9_.@:&-]+(/[A-Za-z0-9_.@:&-]+)*")
_SHARED_ROOT = re.compile(r"[A-Za-z0-9_.@:-]{1,128}")  # as the template's WebSharedTopicRoot
_WILDCARDS = frozenset("*?+#")
#: A shared subscription's filter: ``$share/<group>/<filter>`` (MQTT 5 §4.8.2; IoT Core
#: accepts it from MQTT 3.1.1 clients too). IoT authorizes ``iot:Subscribe`` on
#: ``topicfilter/$share/<group>/<filter>`` and ``iot:Receive`` on each delivery's topic.
SHARED_PREFIX = "$share/"
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d{1,2}|local")
_ACCOUNT = re.compile(r"\d{12}")
_PARTITION = re.compile(r"aws(-[a-z]+)*")


class PolicyTooLarge(ValueError):
    """The identity's grants cannot be expressed within IoT's policy size limits."""


def validate_topic_grant(topic: str) -> str:
    if not isinstance(topic, str) or not _GRANT.fullmatch(topic) or "${" in topic:
        raise InvalidName(
            f"a topic grant is 1-{MAX_GRANT_CHARS} characters of letters, digits, / and "
            "_ . @ : & - * + # $ (no policy variables)"
        )
    if topic.startswith("$") and not topic.startswith("$aws/"):
        raise InvalidName("topics starting with '$' are reserved; only '$aws/…' may be granted")
    if topic in {"*", "#", "/*", "/#"}:
        raise InvalidName("a grant of every topic is not allowed")
    return topic


#: The template's default ``WebSharedTopicRoot``: the root every shared room lies under.
DEFAULT_SHARED_ROOTS: tuple[str, ...] = ("chat",)
SHARED_ROOTS_ENV = "IOTAUTH_SHARED_TOPIC_ROOTS"
#: Aliyun's per-device system topic roots (``/sys/{pk}/{dn}/…``, ``/ota/device/…/{pk}/{dn}``,
#: ``/shadow/…/{pk}/{dn}``, ``/ext/…/{pk}/{dn}/…``): a grant there reaches other devices.
ALIYUN_SYSTEM_ROOTS: tuple[str, ...] = ("/sys", "/ota", "/shadow", "/ext")


def validate_shared_root(root: str) -> str:
    if not isinstance(root, str) or not _SHARED_ROOT.fullmatch(root):
        raise InvalidName(f"invalid shared topic root {root!r}: one level of letters and digits")
    return root


def shared_roots_from_env(env: Mapping[str, str]) -> tuple[str, ...]:
    """The deployment's shared topic roots (``IOTAUTH_SHARED_TOPIC_ROOTS``, comma-separated;
    default :data:`DEFAULT_SHARED_ROOTS`). Raises :class:`InvalidName` on a bad value."""
    raw = env.get(SHARED_ROOTS_ENV, "")
    roots = tuple(dict.fromkeys(r.strip() for r in raw.split(",") if r.strip()))
    return tuple(validate_shared_root(r) for r in roots) or DEFAULT_SHARED_ROOTS


def validate_room(room: str, shared_roots: Sequence[str]) -> str:
    """A room is a literal topic of at least two levels under one of the shared roots."""
    if not isinstance(room, str) or not _LITERAL_PATH.fullmatch(room) or room.startswith("/"):
        raise InvalidName(f"invalid room {room!r}: a topic without wildcards, e.g. chat/lobby")
    root, sep, _ = room.partition("/")
    if not sep or root not in shared_roots:
        raise InvalidName(
            f"room {room!r} must lie under a shared root ({', '.join(shared_roots)}/…)"
        )
    return room


# -- what a grant can match ----------------------------------------------------------------
# A grant becomes a resource pattern in which '*' matches any characters (also '/') and '?'
# one character; a subscription's '+'/'#' become '*' in its Receive resource. Treating all
# four as wildcards over-approximates what a grant reaches, which is the safe direction.


def _advance(pattern: str, states: frozenset[int], char: str) -> frozenset[int]:
    moved: set[int] = set()
    for i in states:
        if i < len(pattern):
            symbol = pattern[i]
            if symbol in "*+#":
                moved.add(i)  # a '*' absorbs the character and stays
            elif symbol in ("?", char):
                moved.add(i + 1)
    return _closure(pattern, moved)


def _closure(pattern: str, states: set[int] | frozenset[int]) -> frozenset[int]:
    todo, seen = list(states), set(states)
    while todo:
        i = todo.pop()
        if i < len(pattern) and pattern[i] in "*+#" and i + 1 not in seen:
            seen.add(i + 1)  # a '*' may also match nothing
            todo.append(i + 1)
    return frozenset(seen)


def _after(pattern: str, prefix: str) -> frozenset[int]:
    states = _closure(pattern, {0})
    for char in prefix:
        states = _advance(pattern, states, char)
        if not states:
            break
    return states


def grant_reaches_prefix(grant: str, prefix: str) -> bool:
    """True when some topic the grant can match starts with ``prefix``."""
    return bool(_after(grant, prefix))


def grant_reaches(grant: str, root: str) -> bool:
    """True when some topic the grant can match is ``root`` itself or lies under ``root/``."""
    states = _after(grant, root)
    if any(i == len(grant) for i in states):  # the whole grant matched: topic == root
        return True
    return bool(_advance(grant, states, "/")) if states else False


def grant_root(grant: str) -> str:
    """The first level of a grant (with its leading '/' for Aliyun-style topics)."""
    lead = "/" if grant.startswith("/") else ""
    return lead + grant[len(lead) :].split("/", 1)[0]


def has_wildcard_root(grant: str) -> bool:
    """The grant's first level holds a wildcard: it can match every namespace."""
    return bool(_WILDCARDS.intersection(grant_root(grant)))


def grant_within(grant: str, namespace: str) -> bool:
    """Every topic the grant can match lies under ``namespace/``."""
    literal = re.split(r"[*?+#]", grant, maxsplit=1)[0]
    return literal.startswith(namespace + "/")


def grant_problem(
    grant: str,
    *,
    shared_roots: Sequence[str],
    own_namespaces: Sequence[str] = (),
    other_namespaces: Sequence[str] = (),
) -> str | None:
    """Why ``grant`` (an extra publish or subscribe grant) is broad, or None.

    Broad: its first level is a wildcard (it can match every namespace); or it can match
    IoT's reserved ``$…`` topics, a shared root (rooms are the way into those), the
    browsers' ``web-…`` namespaces, Aliyun's per-device system topics, or one of
    ``other_namespaces``. A grant that lies wholly inside one of ``own_namespaces`` is not.
    """
    if any(grant_within(grant, ns) for ns in own_namespaces):
        return None
    if has_wildcard_root(grant):
        return f"grant {grant!r}: its first level is a wildcard, so it can match every namespace"
    if grant_reaches_prefix(grant, "$"):
        return f"grant {grant!r} can match IoT's reserved '$…' topics"
    for root in shared_roots:
        if grant_reaches(grant, root):
            return (
                f"grant {grant!r} reaches into the shared root {root!r} "
                "(a shared room is granted with --room)"
            )
    if grant_reaches_prefix(grant, WEB_PREFIX):
        return f"grant {grant!r} can match browser users' '{WEB_PREFIX}…' topics"
    for root in ALIYUN_SYSTEM_ROOTS:
        if grant_reaches(grant, root):
            return f"grant {grant!r} can match Aliyun's per-device system topics ({root}/…)"
    for namespace in other_namespaces:
        if grant_reaches(grant, namespace):
            return f"grant {grant!r} can match the topics of another identity ({namespace}/…)"
    return None


class ArnContext(Frozen):
    """Where the policy applies: ``arn:<partition>:iot:<region>:<account>:…``."""

    __slots__ = ("account", "partition", "region")
    partition: str
    region: str
    account: str

    def __init__(self, partition: str, region: str, account: str) -> None:
        if not _PARTITION.fullmatch(partition):
            raise ValueError(f"invalid partition: {partition!r}")
        if not _REGION.fullmatch(region):
            raise ValueError(f"invalid region: {region!r}")
        if not _ACCOUNT.fullmatch(account):
            raise ValueError("invalid account id: expected 12 digits")
        self._init(partition=partition, region=region, account=account)

    @classmethod
    def from_function_arn(cls, arn: str) -> ArnContext:
        """From a Lambda ARN such as ``context.invoked_function_arn``."""
        parts = arn.split(":")
        if len(parts) < 7 or parts[0] != "arn" or parts[2] != "lambda":
            raise ValueError("not a Lambda function ARN")
        return cls(partition=parts[1], region=parts[3], account=parts[4])

    def resource(self, kind: str, name: str) -> str:
        return f"arn:{self.partition}:iot:{self.region}:{self.account}:{kind}/{name}"


class Scope(Frozen):
    """What one authenticated identity may do.

    ``rooms``: shared rooms; in each it publishes as each of ``senders`` (default: its
    client ids), which must be client ids bound to this identity alone. ``retain``:
    ``iot:RetainPublish`` on its own namespaces; ``shared``: shared subscriptions
    (``$share/<group>/<filter>``) to filters within its own namespaces. Neither reaches
    extra grants or rooms.
    """

    __slots__ = (
        "client_ids",
        "namespaces",
        "publish",
        "retain",
        "rooms",
        "senders",
        "shared",
        "subscribe",
    )
    client_ids: tuple[str, ...]
    namespaces: tuple[str, ...]
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    rooms: tuple[str, ...]
    senders: tuple[str, ...]
    retain: bool
    shared: bool

    def __init__(
        self,
        client_ids: tuple[str, ...],
        namespaces: tuple[str, ...],
        *,
        publish: tuple[str, ...] = (),
        subscribe: tuple[str, ...] = (),
        rooms: tuple[str, ...] = (),
        senders: tuple[str, ...] = (),
        retain: bool = False,
        shared: bool = False,
    ) -> None:
        if not client_ids:
            raise InvalidName("an identity needs at least one client id")
        for namespace in namespaces:
            # A namespace becomes "<ns>/*": it must be a literal path, never a pattern.
            if not _LITERAL_PATH.fullmatch(namespace):
                raise InvalidName(f"invalid topic namespace: {namespace!r}")
        for topic in (*publish, *subscribe):
            validate_topic_grant(topic)
        for room in rooms:
            if not _LITERAL_PATH.fullmatch(room) or room.startswith("/"):
                raise InvalidName(f"invalid room: {room!r}")
        for sender in senders:
            # The last level of "<room>/<sender>": a literal client id, never a pattern.
            validate_client_id(sender)
        self._init(
            client_ids=client_ids,
            namespaces=namespaces,
            publish=publish,
            subscribe=subscribe,
            rooms=rooms,
            senders=senders,
            retain=retain is True,
            shared=shared is True,
        )

    @property
    def room_senders(self) -> tuple[str, ...]:
        return self.senders or self.client_ids

    @classmethod
    def for_identity(
        cls,
        username: str,
        *,
        client_ids: Iterable[str] = (),
        namespaces: Iterable[str] = (),
        publish: Iterable[str] = (),
        subscribe: Iterable[str] = (),
        rooms: Iterable[str] = (),
        retain: bool = False,
        shared: bool = False,
    ) -> Scope:
        """The default scope: client id = username, namespace = username, plus grants."""
        ids = tuple(dict.fromkeys(client_ids)) or (username,)
        for client_id in ids:
            validate_client_id(client_id)
        return cls(
            client_ids=ids,
            namespaces=tuple(dict.fromkeys(namespaces)) or (username,),
            publish=tuple(dict.fromkeys(publish)),
            subscribe=tuple(dict.fromkeys(subscribe)),
            rooms=tuple(dict.fromkeys(rooms)),
            retain=retain,
            shared=shared,
        )

    def with_client_id(self, client_id: str) -> Scope:
        """This scope narrowed to the one client id a connection actually uses."""
        if client_id not in self.client_ids:
            raise InvalidName("client id not bound to this identity")
        senders = self.senders or (client_id,)
        return Scope(
            (client_id,),
            self.namespaces,
            publish=self.publish,
            subscribe=self.subscribe,
            rooms=self.rooms,
            senders=senders,
            retain=self.retain,
            shared=self.shared,
        )


def _receive_pattern(topic_filter: str) -> str:
    # Receive is checked against the topic name of each delivery, where '+' and '#' of the
    # subscription have been replaced by real levels: widen them to the IAM wildcard.
    return re.sub(r"[+#]", "*", topic_filter)


def policy_statements(scope: Scope, arn: ArnContext) -> list[dict[str, Any]]:
    connect = [arn.resource("client", c) for c in scope.client_ids]
    publish = [arn.resource("topic", f"{ns}/*") for ns in scope.namespaces]
    publish += [arn.resource("topic", t) for t in scope.publish]
    receive = [arn.resource("topic", f"{ns}/*") for ns in scope.namespaces]
    receive += [arn.resource("topic", _receive_pattern(t)) for t in scope.subscribe]
    subscribe = [arn.resource("topicfilter", f"{ns}/*") for ns in scope.namespaces]
    subscribe += [arn.resource("topicfilter", t) for t in scope.subscribe]
    for room in scope.rooms:  # the sender is proven by the topic's last level
        publish += [arn.resource("topic", f"{room}/{s}") for s in scope.room_senders]
        receive.append(arn.resource("topic", f"{room}/*"))
        subscribe.append(arn.resource("topicfilter", f"{room}/+"))
    # Retained and shared: on its own namespaces only (see docs/design/retain-shared.md).
    retain = [arn.resource("topic", f"{ns}/*") for ns in scope.namespaces if scope.retain]
    shared = [
        arn.resource("topicfilter", f"{SHARED_PREFIX}*/{ns}/*")
        for ns in scope.namespaces
        if scope.shared
    ]
    # The group's '*' could also span levels ("$share/g/other/<ns>/x" is the filter
    # "other/<ns>/x" of another namespace): refuse every filter with a level between the
    # group and the namespace, so a shared subscription never joins another's group.
    not_shared = [
        arn.resource("topicfilter", f"{SHARED_PREFIX}*/*/{ns}/*")
        for ns in scope.namespaces
        if scope.shared
    ]
    statements = [
        ("Connect", "Allow", ["iot:Connect"], connect),
        ("Publish", "Allow", ["iot:Publish"], publish),
        ("RetainPublish", "Allow", ["iot:RetainPublish"], retain),
        ("Receive", "Allow", ["iot:Receive"], receive),
        ("Subscribe", "Allow", ["iot:Subscribe"], subscribe),
        ("SharedSubscribe", "Allow", ["iot:Subscribe"], shared),
        ("SharedElsewhere", "Deny", ["iot:Subscribe"], not_shared),
    ]
    return [
        {"Sid": sid, "Effect": effect, "Action": actions, "Resource": list(dict.fromkeys(res))}
        for sid, effect, actions, res in statements
        if res
    ]


def _dump(statements: Sequence[dict[str, Any]]) -> str:
    return json.dumps(
        {"Version": "2012-10-17", "Statement": list(statements)}, separators=(",", ":")
    )


def _split(statement: dict[str, Any]) -> list[dict[str, Any]]:
    """One statement per resource, for packing a statement too large for one document."""
    return [
        {**statement, "Sid": f"{statement['Sid']}{i}", "Resource": [r]}
        for i, r in enumerate(statement["Resource"])
    ]


def policy_documents(scope: Scope, arn: ArnContext) -> list[str]:
    """The policy documents of an authorizer response (≤10 × ≤2,048 characters)."""
    statements = policy_statements(scope, arn)
    single = _dump(statements)
    if len(single) <= MAX_POLICY_CHARS:  # the common case, and what the packing below gives
        return [single]
    pending: list[dict[str, Any]] = []
    for statement in statements:
        if len(_dump([statement])) > MAX_POLICY_CHARS:
            pending.extend(_split(statement))
        else:
            pending.append(statement)
    documents: list[str] = []
    current: list[dict[str, Any]] = []
    for statement in pending:
        if len(_dump([statement])) > MAX_POLICY_CHARS:
            raise PolicyTooLarge("a single grant does not fit in one policy document")
        if current and len(_dump([*current, statement])) > MAX_POLICY_CHARS:
            documents.append(_dump(current))
            current = []
        current.append(statement)
    if current:
        documents.append(_dump(current))
    if len(documents) > MAX_POLICY_DOCUMENTS:
        raise PolicyTooLarge(
            f"the grants need {len(documents)} policy documents; IoT accepts {MAX_POLICY_DOCUMENTS}"
        )
    return documents


def session_policy(scope: Scope, arn: ArnContext) -> str:
    """The inline STS session policy for a presigned URL: one document, ≤2,048 characters."""
    document = _dump(policy_statements(scope, arn))
    if len(document) > MAX_POLICY_CHARS:
        raise PolicyTooLarge("the session policy exceeds 2,048 characters")
    return document
