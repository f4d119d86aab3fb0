"""The taxonomy as data: categories with descriptions, example requests and routing.

A YAML or JSON file::

    name: domoteka
    title: Обращения в «Домотеку»
    categories:
      - name: returns
        title: Возврат и обмен
        description: Клиент хочет вернуть или обменять товар
        routing: {queue: returns, department: Клиентский сервис, priority: normal, sla_hours: 24}
        examples: ["Хочу вернуть чайник, он не подошёл"]
        subcategories:            # optional second level; labels become "returns/defect"
          - name: defect
            examples: [...]

The classifier predicts *leaf* labels; a parent's confidence is the sum of its leaves', so a
ticket that is surely "returns" but unsure between two kinds of return can still be routed by
its parent. Routing fields a subcategory leaves out are inherited from its parent.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator

from spravka.core.errors import ConfigError, InputError

Priority = Literal["low", "normal", "high", "urgent"]
PRIORITY_RANK: dict[str, int] = {"low": 0, "normal": 1, "high": 2, "urgent": 3}


class Routing(BaseModel):
    #: the built-in queue (an inbox item of type ``ticket``), e.g. ``returns``
    queue: str | None = None
    department: str | None = None
    priority: Priority | None = None
    #: time to first response, in hours
    sla_hours: float | None = Field(None, gt=0)
    #: extra outbox targets for every ticket of this category (``jira:RET``, ``webhook:https://…``)
    targets: list[str] = Field(default_factory=list)


class CategorySpec(BaseModel):
    name: str = Field(min_length=1)
    title: str = ""
    description: str = ""
    examples: list[str] = Field(default_factory=list)
    routing: Routing = Field(default_factory=Routing)
    subcategories: list[CategorySpec] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _no_slash(cls, v: str) -> str:
        if "/" in v:
            raise ValueError("a category name cannot contain '/' (it separates class and subclass)")
        return v.strip()


class TaxonomySpec(BaseModel):
    name: str = Field(min_length=1)
    title: str = ""
    language: str = "ru"
    categories: list[CategorySpec] = Field(min_length=1)


@dataclass(frozen=True)
class Node:
    label: str
    title: str
    description: str
    parent: str | None
    routing: Routing
    examples: tuple[str, ...] = ()
    children: tuple[str, ...] = field(default=())

    @property
    def leaf(self) -> bool:
        return not self.children


class Taxonomy:
    """Validated categories, addressable by label (``returns`` or ``returns/defect``)."""

    def __init__(self, spec: TaxonomySpec) -> None:
        self.spec = spec
        self.name = spec.name
        self.nodes: dict[str, Node] = {}
        for cat in spec.categories:
            self._add(cat, None, Routing())
        self.labels: list[str] = [n.label for n in self.nodes.values() if n.leaf]

    def _add(self, cat: CategorySpec, parent: str | None, inherited: Routing) -> None:
        label = f"{parent}/{cat.name}" if parent else cat.name
        if label in self.nodes:
            raise ConfigError(f"taxonomy '{self.spec.name}': category '{label}' is defined twice")
        if parent and cat.subcategories:
            raise ConfigError(f"taxonomy '{self.spec.name}': '{label}' is nested too deep (two levels at most)")
        if cat.subcategories and cat.examples:
            raise ConfigError(
                f"taxonomy '{self.spec.name}': '{label}' has subcategories, so its examples are ambiguous",
                hint="move each example under the subcategory it belongs to",
            )
        own = cat.routing.model_dump(exclude_unset=True)
        routing = Routing(**{**inherited.model_dump(), **own})
        children = tuple(f"{label}/{c.name}" for c in cat.subcategories)
        self.nodes[label] = Node(label, cat.title or cat.name, cat.description, parent, routing,
                                 tuple(e.strip() for e in cat.examples if e.strip()), children)
        for sub in cat.subcategories:
            self._add(sub, label, routing)

    # ---- loading -----------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Taxonomy:
        try:
            return cls(TaxonomySpec.model_validate(data))
        except ValidationError as e:
            raise ConfigError(f"invalid taxonomy: {_first_error(e)}") from e

    @classmethod
    def from_file(cls, path: Path) -> Taxonomy:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as e:
            raise InputError(f"cannot read the taxonomy {path}: {e}") from e
        try:
            data = json.loads(text) if str(path).endswith(".json") else yaml.safe_load(text)
        except (ValueError, yaml.YAMLError) as e:
            raise ConfigError(f"{path} is not valid YAML/JSON: {e}") from e
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: a taxonomy is a mapping with 'name' and 'categories'")
        return cls.from_dict(data)

    @classmethod
    def from_labels(cls, labels: Iterable[str], name: str = "adhoc") -> Taxonomy:
        """A flat taxonomy from bare labels (evaluation data without a taxonomy file)."""
        # labels are kept verbatim ("/" included: these are flat, not class/subclass)
        cats = [CategorySpec.model_construct(name=lab, title="", description="", examples=[], routing=Routing(),
                                             subcategories=[]) for lab in dict.fromkeys(labels)]
        return cls(TaxonomySpec.model_construct(name=name, title="", language="ru", categories=cats))

    def to_dict(self) -> dict[str, Any]:
        return self.spec.model_dump(exclude_defaults=True)

    @property
    def hash(self) -> str:
        body = json.dumps(self.to_dict(), ensure_ascii=False, sort_keys=True)
        return hashlib.blake2b(body.encode(), digest_size=8).hexdigest()

    # ---- queries -----------------------------------------------------------------------------
    def node(self, label: str) -> Node:
        return self.nodes[label]

    def parent(self, label: str) -> str | None:
        return self.nodes[label].parent

    def title(self, label: str) -> str:
        n = self.nodes.get(label)
        return n.title if n else label

    @property
    def hierarchical(self) -> bool:
        return any(n.parent for n in self.nodes.values())

    def seed_examples(self) -> list[tuple[str, str]]:
        return [(text, n.label) for n in self.nodes.values() if n.leaf for text in n.examples]

    def resolve(self, name: str) -> str:
        """A leaf label from its label, bare subcategory name or title (case-insensitive)."""
        if name in self.nodes and self.nodes[name].leaf:
            return name
        key = name.strip().casefold()
        hits = [n.label for n in self.nodes.values() if n.leaf and key in
                (n.label.casefold(), n.label.rsplit("/", 1)[-1].casefold(), n.title.casefold())]
        if len(hits) == 1:
            return hits[0]
        if name in self.nodes:
            raise InputError(f"'{name}' has subcategories; choose one of: {', '.join(self.nodes[name].children)}")
        raise InputError(f"unknown category '{name}' in taxonomy '{self.name}'",
                         hint="one of: " + ", ".join(self.labels))


def _first_error(e: ValidationError) -> str:
    err = e.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ()))
    return f"{where}: {err.get('msg')}" if where else str(err.get("msg"))
