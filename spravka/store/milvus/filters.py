"""Filters compiled into Milvus boolean expressions, with only *positive* array predicates.

Milvus Lite 2.5 has no ``not`` and no element-wise comparison on arrays, and Milvus JSON
comparisons of mixed types are brittle, so every chunk carries ``fkv``, an array of tokens:

* ``field=value`` for every value of the filter view (``eq``: ``array_contains``; ``in``:
  ``array_contains_any``);
* ``field#<hash of the sorted value set>`` and ``@<hash of the sorted field names>``.

``ne`` (the field lacks the value) becomes "the chunk's value set for the field is one of the sets
that lack it, or its field set is one of those without the field"; a range becomes "one of the
values that satisfy it" (decided with :func:`spravka.core.filters.compare` itself, so numeric
vs lexicographic order is exactly Python's). The sets, field sets and values that occur in a
collection (its *facets*) are kept in the SQLite side database, union-only: a stale facet names a
token no chunk has, which matches nothing, so a superset is always correct.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from spravka.core.filters import Filter, compare

#: an expression no chunk matches (ids are non-negative)
NOTHING = "id < 0"
_MAX_TOKEN = 400


def _h(obj: object) -> str:
    return hashlib.blake2b(
        json.dumps(obj, ensure_ascii=False, sort_keys=True).encode(), digest_size=8
    ).hexdigest()


def value_token(key: str, value: str) -> str:
    token = f"{key}={value}"
    if len(token.encode()) > _MAX_TOKEN:
        token = f"{key}=#{_h(value)}"
    return token


def set_token(key: str, values: Iterable[str]) -> str:
    return f"{key}#{_h(sorted(set(values)))}"


def keys_token(keys: Iterable[str]) -> str:
    return f"@{_h(sorted(set(keys)))}"


def row_tokens(view: Mapping[str, Sequence[str]]) -> list[str]:
    """The ``fkv`` array of a chunk whose filter view is ``view``."""
    tokens = [value_token(k, v) for k, vs in view.items() for v in dict.fromkeys(vs)]
    tokens += [set_token(k, vs) for k, vs in view.items()]
    tokens.append(keys_token(view.keys()))
    return tokens


@dataclass
class Facets:
    """What occurs in a collection: value sets per field, field sets, values per field."""

    sets: dict[str, list[frozenset[str]]] = field(default_factory=dict)
    keysets: list[frozenset[str]] = field(default_factory=list)
    values: dict[str, list[str]] = field(default_factory=dict)


def facet_rows(view: Mapping[str, Sequence[str]]) -> list[tuple[str, str, str]]:
    """(kind, key, value) rows recording a chunk's filter view in the facets table."""
    rows = [("keys", "", json.dumps(sorted(view.keys()), ensure_ascii=False))]
    for k, vs in view.items():
        rows.append(("set", k, json.dumps(sorted(set(vs)), ensure_ascii=False)))
        rows += [("value", k, v) for v in set(vs)]
    return rows


def facets_from_rows(rows: Iterable[tuple[str, str, str]]) -> Facets:
    f = Facets()
    for kind, key, value in rows:
        if kind == "keys":
            f.keysets.append(frozenset(json.loads(value)))
        elif kind == "set":
            f.sets.setdefault(key, []).append(frozenset(json.loads(value)))
        else:
            f.values.setdefault(key, []).append(value)
    return f


def literal(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _any(array: str, tokens: Sequence[str]) -> str | None:
    tokens = list(dict.fromkeys(tokens))
    if not tokens:
        return None
    if len(tokens) == 1:
        return f"array_contains({array}, {literal(tokens[0])})"
    return f"array_contains_any({array}, [{', '.join(literal(t) for t in tokens)}])"


def needs_facets(flt: Filter) -> bool:
    return any(c.op not in ("eq", "in") for c in flt.conditions)


def compile_expr(flt: Filter, facets: Facets | None = None) -> str | None:
    """The expression for ``flt`` ('' when it allows everything, None when it allows nothing)."""
    parts: list[str] = []
    for c in flt.conditions:
        if c.op == "eq":
            clause = _any("fkv", [value_token(c.field, str(c.value))])
        elif c.op == "in":
            values = list(c.value) if isinstance(c.value, tuple) else [c.value]
            clause = _any("fkv", [value_token(c.field, v) for v in values])
        else:
            assert facets is not None, "ne and range conditions need the collection's facets"
            if c.op == "ne":
                tokens = [set_token(c.field, s) for s in facets.sets.get(c.field, []) if c.value not in s]
                tokens += [keys_token(k) for k in facets.keysets if c.field not in k]
            else:
                tokens = [
                    value_token(c.field, v)
                    for v in facets.values.get(c.field, [])
                    if compare(v, c.op, str(c.value))
                ]
            clause = _any("fkv", tokens)
        if clause is None:
            return None
        parts.append(clause)
    if flt.groups is not None:
        parts.append(_any("groups", flt.effective_groups()) or NOTHING)
    return " and ".join(f"({p})" for p in parts) if len(parts) > 1 else (parts[0] if parts else "")
