"""Extraction schemas: what to pull out of a document, as a small YAML file.

A schema names its fields with a type (``string``, ``number``, ``integer``, ``date``, ``boolean``,
or ``list`` of objects with their own fields), a description the model reads, whether the field
is ``required``, and an optional ``check`` (``inn``, ``kpp``, ``bik``, ``account``,
``corr_account``: Russian requisites with their control digits), and ``ground: false`` for a value
that is normalised rather than copied (not looked for in the document). ``rules`` name cross-field
checks (``item_amounts``, ``items_total``, ``vat``). Built-in schemas live beside this module
(``invoice``, ``contract``, ``receipt``); a path to a ``.yaml`` file is a custom one.

From a schema come a pydantic model for the model's output (every field nullable: "not in the
document" must be sayable, so the model is never forced to invent) and the compact JSON schema
that both describes the fields to the model and constrains generation where the server can.
"""

from __future__ import annotations

import re
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator

from spravka.core import specs
from spravka.core.errors import InputError

BUILTIN = Path(__file__).resolve().parent / "schemas"
FieldType = Literal["string", "number", "integer", "date", "boolean", "list"]
Check = Literal["inn", "kpp", "bik", "account", "corr_account"]
Rule = Literal["item_amounts", "items_total", "vat"]
_NAME = specs.NAME
_PY = {"string": str, "number": float, "integer": int, "date": str, "boolean": bool}


class FieldSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: FieldType = "string"
    description: str = ""
    required: bool = False
    check: Check | None = None
    #: False for a value the model may normalise rather than copy (a currency code for «руб.»):
    #: it is not looked for in the document
    ground: bool = True
    fields: dict[str, FieldSpec] | None = None  # for type list: the fields of each item

    @field_validator("fields")
    @classmethod
    def _flat_items(cls, v: dict[str, FieldSpec] | None) -> dict[str, FieldSpec] | None:
        for name, f in (v or {}).items():
            if not _NAME.match(name):
                raise ValueError(f"bad field name '{name}' (lower case letters, digits, _)")
            if f.type == "list":
                raise ValueError(f"'{name}': a list inside a list item is not supported")
        return v


class SchemaSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    title: str = ""
    description: str = ""
    #: the language of the issues' messages (``ru``, ``en``); unset: Russian when the title or
    #: description is, else English
    language: Literal["ru", "en"] | None = None
    fields: dict[str, FieldSpec] = Field(min_length=1)
    rules: list[Rule] = Field(default_factory=list)

    @property
    def lang(self) -> str:
        if self.language:
            return self.language
        return "ru" if re.search(r"[а-яёА-ЯЁ]", f"{self.title} {self.description}") else "en"

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError("a schema name is lower case letters, digits and _")
        return v

    @field_validator("fields")
    @classmethod
    def _fields(cls, v: dict[str, FieldSpec]) -> dict[str, FieldSpec]:
        for name, f in v.items():
            if not _NAME.match(name):
                raise ValueError(f"bad field name '{name}' (lower case letters, digits, _)")
            if f.type == "list" and not f.fields:
                raise ValueError(f"'{name}': a list needs the fields of its items")
        return v


class Schema:
    """A loaded schema: its spec, the output model and the prompt text that describes it."""

    def __init__(self, spec: SchemaSpec, source: str) -> None:
        self.spec = spec
        self.name = spec.name
        self.source = source

    @cached_property
    def model(self) -> type[BaseModel]:
        def build(model_name: str, fields: dict[str, FieldSpec]) -> type[BaseModel]:
            defs: dict[str, Any] = {}
            for name, f in fields.items():
                if f.type == "list":
                    item = build(f"{model_name}_{name}", f.fields or {})
                    defs[name] = (list[item] | None, Field(None, description=f.description))  # type: ignore[valid-type]
                else:
                    defs[name] = (_PY[f.type] | None, Field(None, description=_describe(f)))
            return create_model(model_name, __config__=ConfigDict(extra="ignore", json_schema_extra=_compact), **defs)

        return build(self.name.title().replace("_", ""), self.spec.fields)

    def parse(self, data: dict[str, Any]) -> dict[str, Any]:
        """``data`` checked against the schema's types (a reviewer's correction, an import)."""
        try:
            return self.model.model_validate(data).model_dump()
        except ValidationError as e:
            raise InputError(f"the data does not fit schema '{self.name}': {e.errors()[0]['msg']}"
                             f" at {'.'.join(str(x) for x in e.errors()[0]['loc'])}") from None


def _compact(schema: dict[str, Any], _cls: Any = None) -> None:
    """Fewer prompt tokens: the JSON schema the model reads keeps types and descriptions only."""
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)
        prop.pop("default", None)


def _describe(f: FieldSpec) -> str:
    """The description the model reads; the JSON type says the rest, except a date's format."""
    if f.type == "date":
        return f"{f.description} (как в документе)" if f.description else "дата, как в документе"
    return f.description


def builtin_names() -> list[str]:
    return specs.builtin_names(BUILTIN)


def describe_builtin() -> list[dict[str, Any]]:
    """The built-in schemas with their fields, as ``spravka extract schemas`` and the API list them."""
    return [{"name": n, "title": (s := load_schema(n)).spec.title,
             "fields": {k: f.model_dump(exclude_none=True) for k, f in s.spec.fields.items()},
             "rules": s.spec.rules} for n in builtin_names()]


def load_schema(name_or_path: str | Path) -> Schema:
    """A built-in schema by name, or a YAML file."""
    spec, path = specs.load("extraction schema", BUILTIN, name_or_path, SchemaSpec)
    return Schema(spec, str(path))
