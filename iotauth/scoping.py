"""The one rule that says what an identity may do on AWS IoT Core.

The authorizer turns a :class:`Scope` into the policy documents it returns to IoT Core; the
signer turns the same :class:`Scope` into the STS session policy of a browser's presigned
URL; the local gateway and the tests evaluate what these produce. Nothing else writes
IoT policy.

Rules:
- ``iot:Connect`` only on the identity's own client ids, as literals (never
  ``${iot:ClientId}``: a client could pick another's id and kick it off).
- ``iot:Publish``/``iot:Receive`` on ``topic/<namespace>/*`` and ``iot:Subscribe`` on
  ``topicfilter/<namespace>/*`` for each namespace (the username by default).
- Extra grants from the identity's record: topics it may publish to, topic filters it may
  subscribe to (and receive from).
- No ``iot:*``, no ``*`` resource.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from iotauth.names import InvalidName, validate_client_id

__all__ = [
    "MAX_POLICY_CHARS",
    "MAX_POLICY_DOCUMENTS",
    "ArnContext",
    "PolicyTooLarge",
    "Scope",
    "policy_documents",
    "policy_statements",
    "session_policy",
    "validate_topic_grant",
]

MAX_POLICY_DOCUMENTS = 10  # authorizer response: at most 10 documents ...
MAX_POLICY_CHARS = 2048  # ... of at most 2,048 characters each; STS session policy likewise
MAX_GRANT_CHARS = 256

# Topic names and filters an administrator may grant: MQTT wildcards '+'/'#' and the IAM
# wildcard '*' are allowed on purpose (the grant is the administrator's choice), policy
# variables are not.
_GRANT = re.compile(rf"[A-Za-z0-9_.@:&/*+#$-]{{1,{MAX_GRANT_CHARS}}}")
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


@dataclass(frozen=True, slots=True)
class ArnContext:
    """Where the policy applies: ``arn:<partition>:iot:<region>:<account>:…``."""

    partition: str
    region: str
    account: str

    def __post_init__(self) -> None:
        if not _PARTITION.fullmatch(self.partition):
            raise ValueError(f"invalid partition: {self.partition!r}")
        if not _REGION.fullmatch(self.region):
            raise ValueError(f"invalid region: {self.region!r}")
        if not _ACCOUNT.fullmatch(self.account):
            raise ValueError("invalid account id: expected 12 digits")

    @classmethod
    def from_function_arn(cls, arn: str) -> ArnContext:
        """From a Lambda ARN such as ``context.invoked_function_arn``."""
        parts = arn.split(":")
        if len(parts) < 7 or parts[0] != "arn" or parts[2] != "lambda":
            raise ValueError("not a Lambda function ARN")
        return cls(partition=parts[1], region=parts[3], account=parts[4])

    def resource(self, kind: str, name: str) -> str:
        return f"arn:{self.partition}:iot:{self.region}:{self.account}:{kind}/{name}"


@dataclass(frozen=True, slots=True)
class Scope:
    """What one authenticated identity may do."""

    client_ids: tuple[str, ...]
    namespaces: tuple[str, ...]
    publish: tuple[str, ...] = field(default=())
    subscribe: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.client_ids:
            raise InvalidName("an identity needs at least one client id")
        for namespace in self.namespaces:
            # A namespace becomes "<ns>/*": it must be a literal path, never a pattern.
            if not re.fullmatch(r"/?[A-Za-z0-9_.@:&-]+(/[A-Za-z0-9_.@:&-]+)*", namespace):
                raise InvalidName(f"invalid topic namespace: {namespace!r}")
        for topic in (*self.publish, *self.subscribe):
            validate_topic_grant(topic)

    @classmethod
    def for_identity(
        cls,
        username: str,
        *,
        client_ids: Iterable[str] = (),
        namespaces: Iterable[str] = (),
        publish: Iterable[str] = (),
        subscribe: Iterable[str] = (),
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
        )

    def with_client_id(self, client_id: str) -> Scope:
        """This scope narrowed to the one client id a connection actually uses."""
        if client_id not in self.client_ids:
            raise InvalidName("client id not bound to this identity")
        return Scope((client_id,), self.namespaces, self.publish, self.subscribe)


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
    statements = [
        ("Connect", ["iot:Connect"], connect),
        ("Publish", ["iot:Publish"], publish),
        ("Receive", ["iot:Receive"], receive),
        ("Subscribe", ["iot:Subscribe"], subscribe),
    ]
    return [
        {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": list(dict.fromkeys(res))}
        for sid, actions, res in statements
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
