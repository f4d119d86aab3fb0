"""Routing rules as data (YAML): conditions on the category, confidence, keywords, metadata
and time, mapped to targets.

::

    working_hours: {timezone: Europe/Moscow, days: [mon, tue, wed, thu, fri], start: "09:00", end: "18:00"}
    rules:
      - name: legal
        when: {keywords: [суд, претензия, Роспотребнадзор]}
        to: [jira:LEGAL]
        priority: urgent
      - name: vip-after-hours
        when: {metadata: {tier: vip}, working_hours: false}
        to: ["webhook:https://oncall.example/hook"]
        continue: true            # also route it as usual

Rules are tried in order. A matching rule adds its targets and ends the search unless it says
``continue``. When no rule ended it, the default applies: the category's own routing
(``inbox:<queue>`` plus the category's targets), or ``triage`` when the classification is unsure.
A ``category`` condition never matches an unsure classification (its category is a guess);
keyword, metadata and time conditions do, so a legal threat is escalated even when its topic is
unclear. Targets: ``inbox:<queue>`` (the built-in queue), ``triage``, or any outbox target
(``jira:…``, ``zendesk:…``, ``webhook:…``), passed on as written.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from spravka.classify.taxonomy import PRIORITY_RANK, Priority, Taxonomy
from spravka.classify.types import Classification
from spravka.core.errors import ConfigError, InputError
from spravka.core.text.lemmas import lemma, words

DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def _hhmm(v: str) -> dt.time:
    try:
        return dt.time.fromisoformat(str(v))
    except ValueError as e:
        raise ValueError(f"expected HH:MM, got {v!r}") from e


class WorkingHours(BaseModel):
    model_config = ConfigDict(extra="forbid")
    timezone: str = "Europe/Moscow"
    days: list[str] = Field(default_factory=lambda: DAYS[:5])
    start: str = "09:00"
    end: str = "18:00"
    holidays: list[dt.date] = Field(default_factory=list)

    @field_validator("days")
    @classmethod
    def _days(cls, v: list[str]) -> list[str]:
        bad = [d for d in v if d.lower()[:3] not in DAYS]
        if bad:
            raise ValueError(f"unknown day(s) {bad}; use {DAYS}")
        return [d.lower()[:3] for d in v]

    @field_validator("start", "end")
    @classmethod
    def _time(cls, v: str) -> str:
        _hhmm(v)
        return v

    def tz(self) -> dt.tzinfo:
        try:
            return ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            # a fixed offset such as "+03:00" works without the tz database
            try:
                sign = -1 if self.timezone.startswith("-") else 1
                h, m = self.timezone.lstrip("+-").split(":")
                return dt.timezone(sign * dt.timedelta(hours=int(h), minutes=int(m)))
            except ValueError:
                raise ConfigError(f"unknown timezone '{self.timezone}'", hint="e.g. Europe/Moscow or +03:00") from None

    def contains(self, when: dt.datetime) -> bool:
        local = when.astimezone(self.tz())
        if DAYS[local.weekday()] not in self.days or local.date() in self.holidays:
            return False
        start, end, t = _hhmm(self.start), _hhmm(self.end), local.time()
        return start <= t < end if start <= end else (t >= start or t < end)  # a night shift wraps


class Range(BaseModel):
    model_config = ConfigDict(extra="forbid")
    min: float | None = None
    max: float | None = None


class TimeWindow(BaseModel):
    """Local time of day (``after``/``before``, wrapping midnight) and weekdays."""

    model_config = ConfigDict(extra="forbid")
    after: str | None = None
    before: str | None = None
    days: list[str] | None = None


class Conditions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    #: the label or its parent (one or a list)
    category: str | list[str] | None = None
    confidence: Range | None = None
    #: true: only unsure classifications; false: only confident ones
    needs_review: bool | None = None
    #: any of these words or phrases, matched by lemma («претензию» matches «претензия»)
    keywords: list[str] | None = None
    #: every key must match; a list means any of its values
    metadata: dict[str, Any] | None = None
    working_hours: bool | None = None
    time: TimeWindow | None = None


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    name: str
    when: Conditions = Field(default_factory=Conditions)
    to: list[str] = Field(min_length=1)
    priority: Priority | None = None
    continue_: bool = Field(False, alias="continue")

    @field_validator("to", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v


class RuleSetSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    working_hours: WorkingHours = Field(default_factory=WorkingHours)
    rules: list[Rule] = Field(default_factory=list)


def _phrase_lemmas(text: str) -> list[str]:
    return [lemma(w) for w in words(text)]


class RuleSet:
    def __init__(self, spec: RuleSetSpec | None = None) -> None:
        self.spec = spec or RuleSetSpec()
        self._keywords = {r.name: [_phrase_lemmas(k) for k in (r.when.keywords or [])] for r in self.spec.rules}
        for r in self.spec.rules:
            for t in r.to:
                check_target(t)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> RuleSet:
        try:
            return cls(RuleSetSpec.model_validate(data or {}))
        except ValidationError as e:
            err = e.errors()[0]
            where = ".".join(str(p) for p in err.get("loc", ()))
            raise ConfigError(f"invalid routing rules: {where}: {err.get('msg')}") from e

    @classmethod
    def from_file(cls, path: Path) -> RuleSet:
        try:
            text = Path(path).read_text(encoding="utf-8")
            data = json.loads(text) if str(path).endswith(".json") else yaml.safe_load(text)
        except OSError as e:
            raise InputError(f"cannot read the routing rules {path}: {e}") from e
        except (ValueError, yaml.YAMLError) as e:
            raise ConfigError(f"{path} is not valid YAML/JSON: {e}") from e
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        return self.spec.model_dump(mode="json", by_alias=True, exclude_defaults=True)

    # ---- evaluation --------------------------------------------------------------------------
    def matches(self, rule: Rule, c: Classification, taxonomy: Taxonomy, when: dt.datetime,
                lemmas: list[str] | None = None) -> bool:
        w = rule.when
        if w.needs_review is not None and w.needs_review != c.needs_review:
            return False
        if w.category is not None:
            wanted = {w.category} if isinstance(w.category, str) else set(w.category)
            if c.needs_review or not ({c.label, taxonomy.parent(c.label) if c.label in taxonomy.nodes else None} & wanted):
                return False
        if w.confidence is not None:
            if w.confidence.min is not None and c.confidence < w.confidence.min:
                return False
            if w.confidence.max is not None and c.confidence >= w.confidence.max:
                return False
        if w.keywords:
            text_lemmas = lemmas if lemmas is not None else _phrase_lemmas(c.text)
            if not any(_contains(text_lemmas, k) for k in self._keywords[rule.name] if k):
                return False
        if w.metadata:
            for key, want in w.metadata.items():
                have = c.metadata.get(key)
                options = want if isinstance(want, list) else [want]
                if have is None or str(have).casefold() not in {str(o).casefold() for o in options}:
                    return False
        if w.working_hours is not None and w.working_hours != self.spec.working_hours.contains(when):
            return False
        return w.time is None or _in_window(w.time, when.astimezone(self.spec.working_hours.tz()))

    def route(self, c: Classification, taxonomy: Taxonomy, when: dt.datetime | None = None
              ) -> tuple[list[str], list[str], str]:
        """(targets, names of the matched rules, priority) for a classified ticket."""
        when = when or dt.datetime.now(dt.UTC)
        lemmas = _phrase_lemmas(c.text)
        targets: list[str] = []
        matched: list[str] = []
        node = taxonomy.nodes.get(c.label)
        priority = (node.routing.priority if node and not c.needs_review else None) or "normal"
        stopped = False
        for rule in self.spec.rules:
            if not self.matches(rule, c, taxonomy, when, lemmas):
                continue
            matched.append(rule.name)
            targets += rule.to
            if rule.priority and PRIORITY_RANK[rule.priority] > PRIORITY_RANK[priority]:
                priority = rule.priority
            if not rule.continue_:
                stopped = True
                break
        if not stopped:
            if c.needs_review or node is None:
                targets.append("triage")
            else:
                targets.append(f"inbox:{node.routing.queue or node.label}")
                targets += node.routing.targets
        return list(dict.fromkeys(targets)), matched, priority


def _contains(haystack: list[str], needle: list[str]) -> bool:
    n = len(needle)
    return any(haystack[i: i + n] == needle for i in range(len(haystack) - n + 1))


def _in_window(w: TimeWindow, local: dt.datetime) -> bool:
    if w.days is not None and DAYS[local.weekday()] not in {d.lower()[:3] for d in w.days}:
        return False
    t = local.time()
    after = _hhmm(w.after) if w.after else None
    before = _hhmm(w.before) if w.before else None
    if after and before:
        return after <= t < before if after <= before else (t >= after or t < before)
    if after:
        return t >= after
    if before:
        return t < before
    return True


def check_target(target: str) -> str:
    """``triage``, ``inbox[:queue]`` or ``scheme:address``; anything else is a configuration error."""
    if target in ("triage", "inbox"):
        return target
    scheme, _, address = target.partition(":")
    if not scheme or not address or not scheme.replace("-", "").replace("_", "").isalnum():
        raise ConfigError(f"routing target '{target}' is not 'triage', 'inbox:<queue>' or 'scheme:address'",
                          hint="e.g. inbox:returns, jira:SD, zendesk:support, webhook:https://host/hook")
    return target
