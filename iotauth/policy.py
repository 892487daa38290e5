"""An evaluator of AWS IoT Core policy semantics.

Used by the local gateway to enforce what the authorizer returns, and by the tests to
prove what a policy allows. Semantics (AWS IoT developer guide, iot-action-resources,
pub-sub-policy, basic-policy-variables):

- nothing is allowed unless a statement allows it; an explicit Deny always wins;
- actions and resources match with IAM wildcards: ``*`` any run of characters (``/``
  included), ``?`` exactly one; actions case-insensitively, resources case-sensitively;
- MQTT ``+`` and ``#`` are literal characters in a policy;
- policy variables (``${iot:ClientId}`` …) are substituted from the connection; a
  statement whose variable has no value does not match.

It fails closed: a statement it does not understand (``Condition``, ``NotAction``,
``NotResource``, an unknown effect) never allows anything, and a Deny of that kind is
applied as if it matched.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache
from typing import Any

__all__ = ["Decision", "PolicySet", "evaluate"]

_VARIABLE = re.compile(r"\$\{([^}]*)\}")


class Decision(Enum):
    ALLOW = "allow"
    IMPLICIT_DENY = "implicit-deny"
    EXPLICIT_DENY = "explicit-deny"

    def __bool__(self) -> bool:
        return self is Decision.ALLOW


@lru_cache(maxsize=4096)
def _wildcard(pattern: str, case_insensitive: bool) -> re.Pattern[str]:
    parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL if case_insensitive else re.DOTALL)


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return value
    return []


def _substitute(pattern: str, variables: Mapping[str, str]) -> str | None:
    missing = False

    def replace(match: re.Match[str]) -> str:
        nonlocal missing
        name = match.group(1)
        if name in {"*", "?", "$"}:  # IAM's escapes for literal wildcard characters
            return {"*": "\x00star", "?": "\x00qm", "$": "\x00dollar"}[name]
        value = variables.get(name)
        if value is None:
            missing = True
            return ""
        # A substituted value is literal text: escape its wildcards.
        return value.replace("*", "\x00star").replace("?", "\x00qm")

    result = _VARIABLE.sub(replace, pattern)
    return None if missing else result


def _resource_matches(pattern: str, resource: str, variables: Mapping[str, str]) -> bool:
    substituted = _substitute(pattern, variables) if "${" in pattern else pattern
    if substituted is None:
        return False
    if "\x00" in substituted:
        # Literal '*', '?', '$' from escapes or variable values: match piecewise.
        tokens = re.split(r"(\x00star|\x00qm|\x00dollar)", substituted)
        literal = {"\x00star": "*", "\x00qm": "?", "\x00dollar": "$"}
        regex = "".join(
            re.escape(literal[t]) if t in literal else _wildcard(t, False).pattern for t in tokens
        )
        return re.fullmatch(regex, resource, re.DOTALL) is not None
    return _wildcard(substituted, False).fullmatch(resource) is not None


@dataclass(frozen=True, slots=True)
class _Statement:
    effect: str  # "Allow", "Deny" or "" when not understood
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    understood: bool


def _parse_statement(raw: Any) -> _Statement:
    if not isinstance(raw, dict):
        return _Statement("", (), (), False)
    effect = raw.get("Effect")
    actions = tuple(a for a in _as_list(raw.get("Action")) if isinstance(a, str))
    resources = tuple(r for r in _as_list(raw.get("Resource")) if isinstance(r, str))
    understood = (
        effect in {"Allow", "Deny"}
        and not ({"Condition", "NotAction", "NotResource", "NotPrincipal"} & raw.keys())
        and bool(actions)
        and bool(resources)
    )
    return _Statement(effect if isinstance(effect, str) else "", actions, resources, understood)


class PolicySet:
    """The policy documents of one connection, parsed once and evaluated many times."""

    def __init__(self, documents: Iterable[str | Mapping[str, Any]]) -> None:
        statements: list[_Statement] = []
        for document in documents:
            try:
                parsed = json.loads(document) if isinstance(document, str) else document
            except (TypeError, ValueError):
                # An unreadable document: it grants nothing.
                continue
            if not isinstance(parsed, Mapping):
                continue
            raw = parsed.get("Statement")
            for item in raw if isinstance(raw, list) else [raw]:
                statements.append(_parse_statement(item))
        self._statements = tuple(statements)

    def evaluate(
        self, action: str, resource: str, variables: Mapping[str, str] | None = None
    ) -> Decision:
        variables = variables or {}
        allowed = False
        for st in self._statements:
            if st.effect == "Deny" and not st.understood:
                # A Deny we cannot read fully is taken at its widest.
                if not st.actions or any(_wildcard(a, True).fullmatch(action) for a in st.actions):
                    return Decision.EXPLICIT_DENY
                continue
            if not st.understood:
                continue
            if not any(_wildcard(a, True).fullmatch(action) for a in st.actions):
                continue
            if not any(_resource_matches(r, resource, variables) for r in st.resources):
                continue
            if st.effect == "Deny":
                return Decision.EXPLICIT_DENY
            allowed = True
        return Decision.ALLOW if allowed else Decision.IMPLICIT_DENY

    def allows(
        self, action: str, resource: str, variables: Mapping[str, str] | None = None
    ) -> bool:
        return self.evaluate(action, resource, variables) is Decision.ALLOW


def evaluate(
    documents: Sequence[str | Mapping[str, Any]],
    action: str,
    resource: str,
    variables: Mapping[str, str] | None = None,
) -> Decision:
    """Evaluate ``action`` on ``resource`` against ``documents`` (JSON strings or dicts)."""
    return PolicySet(documents).evaluate(action, resource, variables)
