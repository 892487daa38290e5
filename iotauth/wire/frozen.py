"""Immutable value classes for the authorizer's import path, without ``@dataclass``.

Contract: a subclass names its fields in ``__slots__``, annotates them, and its
``__init__`` ends with ``self._init(field=value, …)`` for every field. Its instances
then compare equal field by field (same class only), hash by their fields, have a
dataclass-like repr without the fields in ``_NOT_IN_REPR`` (secrets), and refuse assignment
and deletion with an ``AttributeError`` (as ``dataclasses.FrozenInstanceError`` is), and
``replace(**changes)`` builds a copy through ``__init__`` (so its validation runs again), as
``dataclasses.replace`` does; a subclass's ``__init__`` takes every field by its name.

Why: ``@dataclass`` writes and compiles its methods' source when the class is created, at
import, none of it kept in bytecode: ~1 ms a class, and the authorizer's cold start is its
import.
"""

from __future__ import annotations

from typing import ClassVar, Self

__all__ = ["Frozen"]


class Frozen:
    __slots__: ClassVar[tuple[str, ...]] = ()
    _NOT_IN_REPR: ClassVar[frozenset[str]] = frozenset()

    def _init(self, **values: object) -> None:
        if len(values) != len(self.__slots__):  # a name not in __slots__ fails below
            raise TypeError(f"{type(self).__name__} needs {', '.join(self.__slots__)}")
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def replace(self, **changes: object) -> Self:
        """A copy with ``changes``, built (and validated) by ``__init__``."""
        values = {name: getattr(self, name) for name in self.__slots__}
        unknown = changes.keys() - values.keys()
        if unknown:
            raise TypeError(f"{type(self).__name__} has no field {', '.join(sorted(unknown))}")
        return type(self)(**{**values, **changes})

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r} of {type(self).__name__}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r} of {type(self).__name__}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Frozen) or other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        shown = (f"{n}={getattr(self, n)!r}" for n in self.__slots__ if n not in self._NOT_IN_REPR)
        return f"{type(self).__name__}({', '.join(shown)})"
