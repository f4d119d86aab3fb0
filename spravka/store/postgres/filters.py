"""Filters compiled into PostgreSQL: the same semantics as :meth:`Filter.matches`.

Metadata is matched against ``fmeta``, a *filter view* written with every chunk: each field as
the list of strings ``Filter.matches`` would compare (``str()`` of each value, list fields kept
as lists, empty lists and ``None`` dropped). ``eq`` is then a jsonb containment that the GIN
index answers, ``in`` is ``?|``, ranges call ``spravka_cmp`` (numeric when both sides parse as
numbers, else code-point order), and access groups are an array overlap on ``groups``.
"""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb

from spravka.core.filters import Filter
from spravka.store.postgres.candidates import filter_view

__all__ = ["compile_filter", "filter_view"]


def compile_filter(flt: Filter, alias: str = "c", prefix: str = "f") -> tuple[str, dict[str, Any]]:
    """SQL (named ``%(…)s`` placeholders) and its parameters, for ``WHERE … AND <sql>``."""
    parts: list[str] = []
    params: dict[str, Any] = {}
    for i, cond in enumerate(flt.conditions):
        p = f"{prefix}{i}"
        if cond.op in ("eq", "ne"):
            params[p] = Jsonb({cond.field: [cond.value]})
            clause = f"{alias}.fmeta @> %({p})s"
            parts.append(clause if cond.op == "eq" else f"NOT ({clause})")
        elif cond.op == "in":
            values = list(cond.value) if isinstance(cond.value, tuple) else [cond.value]
            params[p + "k"], params[p] = cond.field, values
            parts.append(f"coalesce({alias}.fmeta -> %({p}k)s ?| %({p})s::text[], false)")
        else:
            params[p + "k"], params[p + "o"], params[p] = cond.field, cond.op, str(cond.value)
            parts.append(
                f"EXISTS (SELECT 1 FROM jsonb_array_elements_text(coalesce({alias}.fmeta -> %({p}k)s, '[]'))"
                f" AS v(x) WHERE spravka_cmp(v.x, %({p}o)s, %({p})s))"
            )
    if flt.groups is not None:
        params[prefix + "g"] = list(flt.effective_groups())
        parts.append(f"{alias}.groups && %({prefix}g)s::text[]")
    return (" AND ".join(parts) or "true"), params
