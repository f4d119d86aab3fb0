"""Tools an agent can call: each connector operation over HTTP, and the knowledge-base search.

A tool validates its arguments (a pydantic model from the spec: unknown, missing or out-of-range
arguments are refused before anything is called), knows whether it reads or writes, and turns
the outside system's answer into a short observation for the model. Writes carry an
``Idempotency-Key`` (the run and step), so a retried or re-approved call is not done twice by a
system that honours the header.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, get_args, get_origin
from urllib.parse import quote

import httpx
from pydantic import BaseModel, Field, ValidationError

from spravka.agents.spec import ConnectorSpec, OperationSpec, params_model
from spravka.core.errors import ConfigError
from spravka.core.filters import Filter

#: characters of a tool's result the model reads
MAX_OBSERVATION = 4000


_KINDS = {"str": "строка", "float": "число", "int": "целое число", "bool": "да/нет"}


class ToolError(Exception):
    """The call did not happen or failed; the message goes back to the model and the audit log."""


@dataclass
class ToolContext:
    run_id: str
    step: int
    actor: str
    role: str
    flt: Filter | None = None


@dataclass
class Tool:
    name: str
    description: str
    effect: str  # read | write
    params: type[BaseModel]
    call: Callable[[dict[str, Any], ToolContext], Any]
    secret: frozenset[str] = field(default_factory=frozenset)
    #: arguments a write may only take from the task or earlier tool results
    grounded: frozenset[str] = field(default_factory=frozenset)
    #: the arguments' shape for the model's output grammar (types and required fields only)
    shape: type[BaseModel] | None = None

    def validate(self, arguments: Any) -> dict[str, Any]:
        if not isinstance(arguments, dict):
            raise ToolError(f"{self.name}: arguments must be an object")
        try:
            return self.params.model_validate(arguments).model_dump(exclude_none=True)
        except ValidationError as e:
            err = e.errors()[0]
            where = ".".join(str(x) for x in err["loc"]) or "arguments"
            raise ToolError(f"{self.name}: {where}: {err['msg']}") from None

    def signature(self) -> str:
        """The arguments in a line for the prompt («order_id: string, обязательный — номер заказа»);
        the exact shape reaches the model as the step's JSON schema."""
        parts = []
        for name, f in self.params.model_fields.items():
            types = [a for a in (get_args(f.annotation) or (f.annotation,)) if a is not type(None)]
            kind = _KINDS.get(getattr(types[0], "__name__", "") if types else "", "значение")
            if types and get_origin(types[0]) is Literal:
                kind = "одно из " + ", ".join(str(a) for a in get_args(types[0]))
            parts.append(f"{name}: {kind}" + (", обязательный" if f.is_required() else "")
                         + (f" — {f.description}" if f.description else ""))
        return "; ".join(parts)

    def masked(self, arguments: dict[str, Any]) -> dict[str, Any]:
        return {k: ("***" if k in self.secret else v) for k, v in arguments.items()}


def http_tool(spec: ConnectorSpec, name: str, client_factory: Callable[[], httpx.Client] | None = None) -> Tool:
    """The tool of one operation of a connector."""
    op: OperationSpec = spec.operations[name]
    tool_name = f"{spec.name}.{name}"

    def call(args: dict[str, Any], ctx: ToolContext) -> Any:
        path = op.path
        for k, v in args.items():
            path = path.replace("{" + k + "}", quote(str(v), safe=""))
        query = {k: args[k] for k in op.query if k in args}
        body: Any = _fill(op.body_template, args) if op.body_template else {k: args[k] for k in op.body if k in args}
        try:
            headers = {"Accept": "application/json", **spec.resolved_headers()}
        except ConfigError as e:
            raise ToolError(e.message) from None
        if op.effect == "write":
            headers["Idempotency-Key"] = f"spravka-{ctx.run_id}-{ctx.step}"
        url = spec.base_url.rstrip("/") + path
        try:
            with (client_factory() if client_factory else httpx.Client(timeout=spec.timeout_s)) as client:
                r = client.request(op.method, url, params=query or None, json=body if (op.body or op.body_template) else None,
                                   headers=headers)
        except httpx.HTTPError as e:
            raise ToolError(f"{spec.title or spec.name} is unreachable ({spec.base_url}): {type(e).__name__}") from None
        if r.status_code >= 400:
            raise ToolError(f"{spec.title or spec.name} answered {r.status_code}: {r.text[:300]}")
        try:
            return r.json()
        except ValueError:
            return r.text

    return Tool(tool_name, op.description, op.effect, params_model(tool_name.replace(".", "_"), op.params), call,
                frozenset(k for k, p in op.params.items() if p.secret),
                frozenset(k for k, p in op.params.items() if p.ground and op.effect == "write"),
                params_model(tool_name.replace(".", "_") + "_shape", op.params, lenient=True))


def _fill(template: Any, args: dict[str, Any]) -> Any:
    """``template`` with "{name}" strings replaced by the argument (its type kept when the string is
    only the placeholder; a missing optional argument is dropped from a dict)."""
    if isinstance(template, dict):
        out = {k: _fill(v, args) for k, v in template.items()}
        return {k: v for k, v in out.items() if v is not _MISSING}
    if isinstance(template, list):
        return [v for v in (_fill(x, args) for x in template) if v is not _MISSING]
    if isinstance(template, str):
        whole = re.fullmatch(r"\{([a-z_][a-z0-9_]*)\}", template)
        if whole:
            return args.get(whole.group(1), _MISSING)
        return re.sub(r"\{([a-z_][a-z0-9_]*)\}", lambda m: str(args.get(m.group(1), "")), template)
    return template


_MISSING = object()


class _KbSearch(BaseModel):
    query: str = Field(..., min_length=2, max_length=500, description="что искать в базе знаний")
    k: int | None = Field(None, ge=1, le=5, description="сколько фрагментов (до 5)")


def kb_tool(search: Callable[[str, int, Filter | None], list[dict[str, Any]]]) -> Tool:
    """``kb.search``: the knowledge base, read with the caller's access groups."""

    def call(args: dict[str, Any], ctx: ToolContext) -> Any:
        return search(args["query"], args.get("k") or 3, ctx.flt)

    return Tool("kb.search", "Поиск по базе знаний компании: правила, инструкции, FAQ.", "read", _KbSearch, call)


def observation(result: Any) -> str:
    """A tool's result as the model reads it, bounded."""
    text = result if isinstance(result, str) else json.dumps(result, ensure_ascii=False)
    return text if len(text) <= MAX_OBSERVATION else text[:MAX_OBSERVATION] + " …(обрезано)"


__all__ = ["MAX_OBSERVATION", "Tool", "ToolContext", "ToolError", "http_tool", "kb_tool", "observation"]
