"""An evaluator of AWS IoT Core policy semantics: :class:`PolicySet` / :func:`evaluate`.

The local gateway enforces the authorizer's answer with it and the tests prove what a policy
allows, so it reads policies as IoT Core does (variables substituted before matching, their
``*`` then a wildcard) and fails closed on anything it does not understand; matching never
backtracks.

Design: docs/design/policy.md
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

#: The policy language version that has variables; the only other one IAM accepts.
VARIABLES_VERSION = "2012-10-17"
_PLAIN_VERSION = "2008-10-17"

_STAR = 0  # pattern token: any run of characters
_ONE = 1  # pattern token: exactly one character
_Token = int | str  # _STAR, _ONE, or one literal character
_VARIABLE = re.compile(r"\$\{([^}]*)\}|\$\(([*?$])\)")
_ESCAPES = {"*", "?", "$"}


class Decision(Enum):
    ALLOW = "allow"
    IMPLICIT_DENY = "implicit-deny"
    EXPLICIT_DENY = "explicit-deny"

    def __bool__(self) -> bool:
        return self is Decision.ALLOW


# --- wildcard matching ------------------------------------------------------------------


def _glob_tokens(text: str) -> list[_Token]:
    """``text`` read as a pattern: ``*`` and ``?`` are wildcards, the rest literal."""
    return [_STAR if c == "*" else _ONE if c == "?" else c for c in text]


@dataclass(frozen=True, slots=True)
class _Piece:
    """A run of the pattern between two ``*``: literal characters and ``?``."""

    text: str  # the literal characters, with any character where the pattern has '?'
    wild: tuple[bool, ...]  # True where the pattern has '?'
    search: re.Pattern[str] | None  # for pieces with a '?': a quantifier-free regex

    def matches_at(self, subject: str, position: int) -> bool:
        if position + len(self.text) > len(subject):
            return False
        if self.search is None:
            return subject.startswith(self.text, position)
        return self.search.match(subject, position) is not None

    def find(self, subject: str, start: int, end: int) -> int:
        """Leftmost position in [start, end - len) where the piece matches, else -1."""
        if self.search is None:
            return subject.find(self.text, start, end)
        # No quantifier: the regex engine tries each start once (no backtracking).
        found = self.search.search(subject, start, end)
        return -1 if found is None else found.start()


def _piece(tokens: Sequence[_Token]) -> _Piece:
    text = "".join("?" if t == _ONE else str(t) for t in tokens)
    wild = tuple(t == _ONE for t in tokens)
    search = None
    if any(wild):
        search = re.compile(
            "".join("." if w else re.escape(c) for c, w in zip(text, wild, strict=True)),
            re.DOTALL,
        )
    return _Piece(text, wild, search)


@dataclass(frozen=True, slots=True)
class _Glob:
    """A compiled IAM wildcard pattern."""

    pieces: tuple[_Piece, ...]  # split at '*'
    anchored: bool  # no '*' at all: the one piece is the whole subject

    @classmethod
    def compile(cls, tokens: Sequence[_Token]) -> _Glob:
        pieces: list[list[_Token]] = [[]]
        for token in tokens:
            if token == _STAR:
                pieces.append([])
            else:
                pieces[-1].append(token)
        return cls(tuple(_piece(p) for p in pieces), len(pieces) == 1)

    def matches(self, subject: str) -> bool:
        first, last = self.pieces[0], self.pieces[-1]
        if self.anchored:
            return len(subject) == len(first.text) and first.matches_at(subject, 0)
        if len(first.text) + len(last.text) > len(subject):
            return False
        if not first.matches_at(subject, 0):
            return False
        tail = len(subject) - len(last.text)
        if not last.matches_at(subject, tail):
            return False
        # Middle pieces, leftmost first: taking each as early as possible never loses a
        # match, because a '*' on either side absorbs whatever lies between.
        position = len(first.text)
        for piece in self.pieces[1:-1]:
            found = piece.find(subject, position, tail)
            if found < 0:
                return False
            position = found + len(piece.text)
        return True


@lru_cache(maxsize=4096)
def _compiled(pattern: str) -> _Glob:
    return _Glob.compile(_glob_tokens(pattern))


def _action_matches(pattern: str, action: str) -> bool:
    return _compiled(pattern.lower()).matches(action.lower())


# --- resources: variables and escapes ---------------------------------------------------


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return value
    return []


def _substituted(pattern: str, variables: Mapping[str, str]) -> list[_Token] | None:
    """``pattern`` with its variables replaced (Version 2012-10-17); None if one has no value."""
    tokens: list[_Token] = []
    position = 0
    for match in _VARIABLE.finditer(pattern):
        tokens.extend(_glob_tokens(pattern[position : match.start()]))
        position = match.end()
        name = match.group(1) if match.group(2) is None else match.group(2)
        if match.group(2) is not None or name in _ESCAPES:
            tokens.append(name)  # $(*) / ${*}: the literal character
            continue
        value = variables.get(name)
        if value is None:
            return None
        # Substituted text, then matched: its '*' and '?' are wildcards, as IoT reads them.
        tokens.extend(_glob_tokens(value))
    tokens.extend(_glob_tokens(pattern[position:]))
    return tokens


@lru_cache(maxsize=4096)
def _compiled_with(pattern: str, values: tuple[tuple[str, str], ...]) -> _Glob | None:
    tokens = _substituted(pattern, dict(values))
    return None if tokens is None else _Glob.compile(tokens)


def _resource_matches(
    pattern: str, resource: str, variables: Mapping[str, str], with_variables: bool
) -> bool:
    if not with_variables or "$" not in pattern:
        return _compiled(pattern).matches(resource)
    glob = _compiled_with(pattern, tuple(sorted(variables.items())))
    return glob is not None and glob.matches(resource)


@dataclass(frozen=True, slots=True)
class _Statement:
    effect: str  # "Allow", "Deny" or "" when not understood
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    understood: bool
    with_variables: bool = False  # the document says "Version": "2012-10-17"


def _parse_statement(raw: Any, with_variables: bool) -> _Statement:
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
    return _Statement(
        effect if isinstance(effect, str) else "", actions, resources, understood, with_variables
    )


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
            version = parsed.get("Version", _PLAIN_VERSION)
            if version not in {VARIABLES_VERSION, _PLAIN_VERSION}:
                # IAM refuses a document in a language it does not know: it grants nothing.
                continue
            raw = parsed.get("Statement")
            for item in raw if isinstance(raw, list) else [raw]:
                statements.append(_parse_statement(item, version == VARIABLES_VERSION))
        self._statements = tuple(statements)

    def evaluate(
        self, action: str, resource: str, variables: Mapping[str, str] | None = None
    ) -> Decision:
        variables = variables or {}
        allowed = False
        for st in self._statements:
            if st.effect == "Deny" and not st.understood:
                # A Deny we cannot read fully is taken at its widest.
                if not st.actions or any(_action_matches(a, action) for a in st.actions):
                    return Decision.EXPLICIT_DENY
                continue
            if not st.understood:
                continue
            if not any(_action_matches(a, action) for a in st.actions):
                continue
            if not any(
                _resource_matches(r, resource, variables, st.with_variables) for r in st.resources
            ):
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
