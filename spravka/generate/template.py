"""Generation templates and tones of voice: two small YAML files, validated when they are loaded.

A **template** is one kind of text a company writes again and again (a reply to a customer, a
notice about a delayed order, an announcement for employees). It declares its ``inputs`` (typed,
required or not, with length limits, a pattern or a list of choices), the ``task`` the model gets
with ``{input}`` placeholders, the inputs whose values the text ``must_include`` (an order
number, a date), a length in words, and optionally ``knowledge``: a search of the knowledge base
whose passages the text may use as facts (a reply grounded in the returns policy).

A **tone** is the company's voice: its name and signature, a few rules in plain words, phrases it
never uses, how it addresses people (formal «вы», with a capital or not), the longest sentence
and how many exclamation marks it allows, and short examples of texts in that voice. The rules
and examples go into the prompt; the checks (``generate/checks.py``) hold the text to them.

Built-in templates live in ``generate/templates/``, tones in ``generate/tones/``; a path to a
``.yaml`` file is a custom one.
"""

from __future__ import annotations

import re
import string
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from spravka.core import specs

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
TONES = HERE / "tones"
_NAME = specs.NAME
InputType = Literal["string", "text", "number", "integer", "date", "choice", "list"]


class InputSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: InputType = "string"
    label: str = ""  # how the prompt names the value («Номер заказа»); default: the input's name
    description: str = ""
    required: bool = False
    #: characters (a list: per item); default 300 for a string, 4000 for a text
    max_length: int | None = Field(None, ge=1, le=100_000)
    max_items: int = Field(20, ge=1, le=1000)
    pattern: str | None = None
    choices: list[str] | None = None
    default: Any = None

    @model_validator(mode="after")
    def _consistent(self) -> InputSpec:
        if self.type == "choice" and not self.choices:
            raise ValueError("a choice input needs its 'choices'")
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as e:
                raise ValueError(f"bad pattern: {e}") from None
        return self

    @property
    def limit(self) -> int:
        return self.max_length or (4000 if self.type == "text" else 300)


class Knowledge(BaseModel):
    """Search the knowledge base with ``query`` (placeholders allowed); the best ``k`` passages
    become numbered sources the text may take facts from."""

    model_config = ConfigDict(extra="forbid")

    query: str
    k: int = Field(3, ge=1, le=10)
    collection: str | None = None
    #: no passage found: write anyway (from the inputs alone) or send the draft to a person
    required: bool = True


class TemplateSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    title: str = ""
    description: str = ""
    language: Literal["ru", "en"] = "ru"
    inputs: dict[str, InputSpec] = Field(default_factory=dict)
    task: str = Field(min_length=10)
    must_include: list[str] = Field(default_factory=list)
    min_words: int = Field(20, ge=1)
    max_words: int = Field(200, ge=5, le=5000)
    #: the tone's signature is added under the text (the model is told not to sign)
    sign: bool = True
    knowledge: Knowledge | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError("a template name is lower case letters, digits and _")
        return v

    @model_validator(mode="after")
    def _placeholders(self) -> TemplateSpec:
        for name in self.inputs:
            if not _NAME.match(name):
                raise ValueError(f"bad input name '{name}' (lower case letters, digits, _)")
        texts = [("task", self.task)] + ([("knowledge.query", self.knowledge.query)] if self.knowledge else [])
        for where, text in texts:
            for field in placeholders(text):
                if field not in self.inputs:
                    raise ValueError(f"{where} uses {{{field}}}, which is not among the inputs")
        for field in self.must_include:
            if field not in self.inputs:
                raise ValueError(f"must_include names '{field}', which is not among the inputs")
        if self.min_words > self.max_words:
            raise ValueError("min_words is more than max_words")
        return self


class ToneSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    title: str = ""
    company: str = ""
    signature: str = ""
    #: formal: «вы» (never «ты»); informal: «ты»; any: not checked
    address: Literal["formal", "informal", "any"] = "formal"
    #: «Вы», «Вам», «Ваш» with a capital letter when addressing one reader (Russian business letters)
    capital_vy: bool = False
    rules: list[str] = Field(default_factory=list)
    #: words and phrases the company never writes; matched by lemma («данного» is «данный»)
    banned: list[str] = Field(default_factory=list)
    max_sentence_words: int = Field(30, ge=5, le=200)
    max_exclamations: int = Field(1, ge=0)
    emoji: bool = False
    examples: list[str] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError("a tone name is lower case letters, digits and _")
        return v


def placeholders(text: str) -> list[str]:
    """The ``{name}`` fields of a format string (``{{`` is a literal brace)."""
    try:
        return [f for _, f, _, _ in string.Formatter().parse(text) if f]
    except ValueError as e:
        raise ValueError(f"bad placeholder in {text[:60]!r}: {e}") from None


def render(text: str, values: dict[str, str]) -> str:
    """``text`` with its placeholders filled; values are inserted as they are, never re-parsed."""
    return text.format_map({k: values.get(k, "") for k in placeholders(text)})


def template_names() -> list[str]:
    return specs.builtin_names(TEMPLATES)


def tone_names() -> list[str]:
    return specs.builtin_names(TONES)


def load_template(name_or_path: str | Path) -> TemplateSpec:
    """A built-in template by name, or a YAML file."""
    return specs.load("template", TEMPLATES, name_or_path, TemplateSpec)[0]


def load_tone(name_or_path: str | Path) -> ToneSpec:
    """A built-in tone of voice by name, or a YAML file."""
    return specs.load("tone", TONES, name_or_path, ToneSpec)[0]


def describe_builtin() -> dict[str, list[dict[str, Any]]]:
    """The built-in templates (with their inputs) and tones, as the CLI and the API list them."""
    templates = []
    for n in template_names():
        t = load_template(n)
        templates.append({"name": n, "title": t.title, "description": t.description, "language": t.language,
                          "knowledge": t.knowledge is not None, "must_include": t.must_include,
                          "inputs": {k: v.model_dump(exclude_none=True, exclude_defaults=True) | {"type": v.type}
                                     for k, v in t.inputs.items()}})
    tones = [{"name": n, "title": (tone := load_tone(n)).title, "company": tone.company, "address": tone.address}
             for n in tone_names()]
    return {"templates": templates, "tones": tones}
