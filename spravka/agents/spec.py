"""Agents and connectors as YAML: what an agent may do, for whom, and what needs a person's yes.

A **connector** describes an outside system's HTTP API (a CRM, an ERP, Jira) as operations: the
method, the path (``/orders/{order_id}``), which parameters go to the query or the body, the
typed parameters themselves, and whether the operation only ``read``s or ``write``s. Headers may
name environment variables (``Bearer ${CRM_TOKEN}``), so no secret sits in the file or in a log.

An **agent** names its instructions, the tools it may use (``crm.find_customer``, ``kb.search``),
which roles may run it, which roles may use each tool, and the approval policy: a ``read`` runs at
once; a ``write`` waits for a person unless the policy says ``never``, or ``{over: {amount:
3000}}`` (a person only above a limit). Limits bound the steps and the writes of one run, and
``limits.budgets`` bound a tool across all runs of the agent over a window: how many calls, and
the sum of an argument (``erp.refund: {per: day, calls: 20, sum: {amount: 50000}}``).

Files live in ``agents.dir`` (default ``$SPRAVKA_HOME/agents``): ``kind: connector`` or ``kind:
agent`` each.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    create_model,
    field_validator,
    model_validator,
)

from spravka.core import specs
from spravka.core.errors import ConfigError, InputError, NotFoundError

_NAME = specs.NAME
_TOOL = re.compile(r"^[a-z][a-z0-9_]{0,31}\.[a-z][a-z0-9_]{0,63}$")
_ENV = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)\}")
_PY = {"string": str, "number": float, "integer": int, "boolean": bool}


class ParamSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["string", "number", "integer", "boolean"] = "string"
    description: str = ""
    required: bool = False
    enum: list[str] | None = None
    minimum: float | None = None
    maximum: float | None = None
    pattern: str | None = None
    max_length: int = Field(500, ge=1, le=100_000)
    #: masked in the audit log and the approval item (a card number, a password)
    secret: bool = False
    #: for a write: the value must come from the task or an earlier tool result (false: the model
    #: may word it, like a reason or a ticket's summary)
    ground: bool = True


def params_model(name: str, params: dict[str, ParamSpec], *, lenient: bool = False) -> type[BaseModel]:
    """A pydantic model that validates a tool call's arguments (unknown ones are refused).
    ``lenient``: types and required fields only, for the model's output grammar; the limits are
    checked after, so a value out of range is told to the model instead of failing the step."""
    fields: dict[str, Any] = {}
    for pname, p in params.items():
        kw: dict[str, Any] = {"description": p.description}
        if p.type in ("number", "integer") and not lenient:
            kw.update(ge=p.minimum, le=p.maximum)
        if p.type == "string" and not lenient:
            kw.update(max_length=p.max_length, pattern=p.pattern)
        py: Any = Literal[tuple(p.enum)] if p.enum else _PY[p.type]  # type: ignore[misc]
        fields[pname] = (py, Field(..., **kw)) if p.required else (py | None, Field(None, **kw))
    return create_model(name, __config__=ConfigDict(extra="forbid"), **fields)


class OperationSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    path: str
    query: list[str] = Field(default_factory=list)
    body: list[str] = Field(default_factory=list)
    #: a JSON body of fixed shape with "{param}" strings filled in (Jira's {"fields": {...}})
    body_template: dict[str, Any] | None = None
    params: dict[str, ParamSpec] = Field(default_factory=dict)
    effect: Literal["read", "write"] = "read"

    @model_validator(mode="after")
    def _placed(self) -> OperationSpec:
        in_path = set(re.findall(r"\{([a-z_][a-z0-9_]*)\}", self.path))
        in_template = set(re.findall(r"\{([a-z_][a-z0-9_]*)\}", json.dumps(self.body_template or {})))
        if self.body and self.body_template:
            raise ValueError("give body or body_template, not both")
        for name in [*in_path, *self.query, *self.body, *in_template]:
            if name not in self.params:
                raise ValueError(f"'{name}' is used but not among the params")
        if self.method == "GET" and self.effect == "write":
            raise ValueError("a GET operation cannot write")
        if self.method != "GET" and self.effect == "read" and (self.body or self.body_template):
            raise ValueError(f"a {self.method} with a body writes: set effect: write")
        return self


class ConnectorSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["connector"] = "connector"
    name: str
    title: str = ""
    base_url: str
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_s: float = Field(10.0, gt=0, le=300)
    operations: dict[str, OperationSpec] = Field(min_length=1)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v) or v == "kb":
            raise ValueError("a connector name is lower case letters, digits and _ (and not 'kb')")
        return v

    def resolved_headers(self) -> dict[str, str]:
        """Headers with ``${VAR}`` taken from the environment at call time (never stored)."""
        def sub(m: re.Match[str]) -> str:
            value = os.environ.get(m.group(1))
            if value is None:
                raise ConfigError(f"connector '{self.name}' needs the environment variable {m.group(1)}")
            return value

        return {k: _ENV.sub(sub, v) for k, v in self.headers.items()}


class Approval(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: a person approves only when an argument is above its limit ({amount: 3000})
    over: dict[str, float] = Field(default_factory=dict)


WINDOWS = {"hour": 3600, "day": 86400, "week": 7 * 86400}


class Budget(BaseModel):
    """A tool's budget across every run of the agent: calls that ran (ok) in the last ``per``."""

    model_config = ConfigDict(extra="forbid")

    per: Literal["hour", "day", "week"] = "day"
    calls: int | None = Field(None, ge=0)
    #: argument → the most its values may add up to ({amount: 50000})
    sum: dict[str, float] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _something(self) -> Budget:
        if self.calls is None and not self.sum:
            raise ValueError("a budget needs calls or sum")
        return self


class Limits(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_steps: int = Field(8, ge=1, le=50)
    max_writes: int = Field(3, ge=0, le=50)
    #: tool → its budget across runs (calls or an argument's sum per hour, day or week)
    budgets: dict[str, Budget] = Field(default_factory=dict)


class AgentSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["agent"] = "agent"
    name: str
    title: str = ""
    instructions: str = Field(min_length=10)
    tools: list[str] = Field(min_length=1)
    #: roles that may run the agent
    run_roles: list[str] = Field(default_factory=lambda: ["admin", "editor"])
    #: tool → roles that may use it in a run (default: every role that may run the agent)
    tool_roles: dict[str, list[str]] = Field(default_factory=dict)
    #: tool → always | never | {over: {argument: limit}}; default: reads never, writes always
    approval: dict[str, Literal["always", "never"] | Approval] = Field(default_factory=dict)
    limits: Limits = Field(default_factory=Limits)
    #: the first step must call a tool: the agent looks things up instead of answering from memory
    lookup_first: bool = True

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError("an agent name is lower case letters, digits and _")
        return v

    @model_validator(mode="after")
    def _tools(self) -> AgentSpec:
        for t in [*self.tools, *self.tool_roles, *self.approval, *self.limits.budgets]:
            if not _TOOL.match(t):
                raise ValueError(f"'{t}' is not a tool name (connector.operation, e.g. crm.find_customer)")
        for t in [*self.tool_roles, *self.approval, *self.limits.budgets]:
            if t not in self.tools:
                raise ValueError(f"'{t}' has a policy but is not among the agent's tools")
        return self


def load_folder(folder: Path) -> tuple[dict[str, AgentSpec], dict[str, ConnectorSpec]]:
    """Every agent and connector of a folder; a broken file is an error naming it and the place."""
    agents: dict[str, AgentSpec] = {}
    connectors: dict[str, ConnectorSpec] = {}
    if not folder.is_dir():
        return agents, connectors
    for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
        raw = specs.read("agent file", path)
        if raw.get("kind") not in ("agent", "connector"):
            raise InputError(f"{path}: a mapping with kind: agent or kind: connector")
        model: type[AgentSpec] | type[ConnectorSpec] = AgentSpec if raw["kind"] == "agent" else ConnectorSpec
        spec = specs.validate(model, raw, str(path))
        target: dict[str, Any] = agents if isinstance(spec, AgentSpec) else connectors
        if spec.name in target:
            raise InputError(f"{path}: a second {raw['kind']} named '{spec.name}'")
        target[spec.name] = spec
    return agents, connectors


def find_agent(agents: dict[str, AgentSpec], name: str, folder: Path) -> AgentSpec:
    if name not in agents:
        raise NotFoundError(f"no agent '{name[:64]}'", hint=f"agents in {folder}: {', '.join(agents) or 'none'}")
    return agents[name]
