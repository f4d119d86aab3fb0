"""Metadata filters: one small language, one Python predicate, compiled by each backend.

``department=hr``, ``doc_type=policy,faq`` (any of), ``date>=2024-01-01``, ``version!=1``.
Values are strings; a range comparison is numeric when both sides are numbers, otherwise
lexicographic (ISO dates order correctly). A list-valued field matches when any element does.
Access groups are not a metadata filter: they travel separately in :class:`Filter.groups` and
every backend applies them inside the index query.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from spravka.core.errors import InputError
from spravka.core.types import PUBLIC_GROUP

OPS = ("eq", "ne", "in", "gt", "gte", "lt", "lte")
_SYNTAX = re.compile(r"^\s*([A-Za-z_][\w.\-]*)\s*(>=|<=|!=|=|>|<)\s*(.*?)\s*$")
_SYMBOL = {"=": "eq", "!=": "ne", ">": "gt", ">=": "gte", "<": "lt", "<=": "lte"}
_FIELD = re.compile(r"^[A-Za-z_][\w.\-]*$")


@dataclass(frozen=True, slots=True)
class Condition:
    field: str
    op: str
    value: str | tuple[str, ...]

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise InputError(f"unknown filter operator '{self.op}'", hint="use one of " + ", ".join(OPS))
        if not _FIELD.match(self.field):
            raise InputError(f"invalid filter field '{self.field}'")


@dataclass(frozen=True, slots=True)
class Filter:
    conditions: tuple[Condition, ...] = ()
    #: the caller's access groups; ``None`` means unrestricted (a local administrator)
    groups: tuple[str, ...] | None = None

    def allows_groups(self, doc_groups: Iterable[str]) -> bool:
        if self.groups is None:
            return True
        return bool(set(doc_groups) & set(self.effective_groups()))

    def effective_groups(self) -> tuple[str, ...]:
        """Every caller may read public documents."""
        if self.groups is None:
            return ()
        return tuple(sorted(set(self.groups) | {PUBLIC_GROUP}))

    def matches(self, metadata: Mapping[str, Any], doc_groups: Iterable[str]) -> bool:
        return self.allows_groups(doc_groups) and all(condition_matches(c, metadata) for c in self.conditions)

    @property
    def empty(self) -> bool:
        return not self.conditions and self.groups is None


def _as_number(s: str) -> float | None:
    try:
        return float(s)
    except (TypeError, ValueError):
        return None


def compare(a: str, op: str, b: str) -> bool:
    """Range comparison shared by every backend (SQLite registers it as a function)."""
    x, y = _as_number(a), _as_number(b)
    left: Any
    right: Any
    left, right = (x, y) if x is not None and y is not None else (str(a), str(b))
    if op == "gt":
        return left > right
    if op == "gte":
        return left >= right
    if op == "lt":
        return left < right
    if op == "lte":
        return left <= right
    raise ValueError(op)


def condition_matches(c: Condition, metadata: Mapping[str, Any]) -> bool:
    raw = metadata.get(c.field)
    values = [str(v) for v in raw] if isinstance(raw, list) else ([] if raw is None else [str(raw)])
    if c.op == "eq":
        return c.value in values
    if c.op == "ne":
        return c.value not in values
    if c.op == "in":
        return any(v in c.value for v in values)
    return any(compare(v, c.op, str(c.value)) for v in values)


def parse_filters(items: Iterable[str] | Mapping[str, Any] | None, groups: Iterable[str] | None = None) -> Filter:
    """Parse CLI/API filters: ``["department=hr", "date>=2024-01-01"]`` or a mapping
    ``{"department": "hr", "doc_type": ["faq", "policy"], "date": {"gte": "2024-01-01"}}``."""
    conditions: list[Condition] = []
    if isinstance(items, Mapping):
        for key, value in items.items():
            if isinstance(value, Mapping):
                for op, operand in value.items():
                    conditions.append(Condition(str(key), str(op), _operand(op, operand)))
            elif isinstance(value, list | tuple):
                conditions.append(Condition(str(key), "in", tuple(str(v) for v in value)))
            else:
                conditions.append(Condition(str(key), "eq", str(value)))
    elif items:
        for item in items:
            m = _SYNTAX.match(item)
            if not m:
                raise InputError(f"cannot parse filter '{item}'", hint="write key=value, key>=value or key=a,b")
            key, sym, value = m.groups()
            op = _SYMBOL[sym]
            if op == "eq" and "," in value:
                conditions.append(Condition(key, "in", tuple(v.strip() for v in value.split(",") if v.strip())))
            else:
                conditions.append(Condition(key, op, value))
    grp = None if groups is None else tuple(sorted({g.strip().lower() for g in groups if g and g.strip()}))
    return Filter(tuple(conditions), grp)


def _operand(op: str, operand: Any) -> str | tuple[str, ...]:
    if op == "in":
        if not isinstance(operand, list | tuple):
            raise InputError("the 'in' operator needs a list")
        return tuple(str(v) for v in operand)
    return str(operand)
