"""The privacy guard the LLM gateway calls before any request leaves the perimeter (152-FZ).

Policies:

* ``mask``: personal data is replaced by placeholders («[ФИО_1]»), the model answers about the
  placeholders, and :meth:`PrivacyGuard.restore` puts the values back into its reply.
* ``block``: a request with personal data is refused with :class:`~spravka.core.errors.PrivacyError`,
  whose message names the kinds found and never the values.
* ``allow``: nothing is changed, but what was found is still counted and logged for the audit.

Logs and reports hold kinds and counts only. Values exist in the caller's messages and in the
:class:`~spravka.privacy.vault.Vault`, and nowhere else.
"""

from __future__ import annotations

import copy
import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from spravka.core.errors import ConfigError, PrivacyError
from spravka.privacy.detection import DEFAULT_MIN_CONFIDENCE, find_pii
from spravka.privacy.findings import Finding
from spravka.privacy.kinds import NER_KINDS, PiiKind, parse_kinds
from spravka.privacy.ner import INSTALL_HINT, NerDetector
from spravka.privacy.vault import Vault

log = logging.getLogger("spravka.privacy")


class Policy(StrEnum):
    MASK = "mask"
    BLOCK = "block"
    ALLOW = "allow"


@dataclass(frozen=True)
class Report:
    """What was found: kinds and counts, never values or positions."""

    counts: Mapping[PiiKind, int] = field(default_factory=dict)
    #: False when names and addresses were found by patterns only (the NER model is missing)
    ner_available: bool = True
    ner_error: str | None = None

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def kinds(self) -> frozenset[PiiKind]:
        return frozenset(k for k, n in self.counts.items() if n)

    def __bool__(self) -> bool:
        return self.total > 0

    def summary(self) -> str:
        """«СНИЛС: 1, ТЕЛЕФОН: 2»: safe for users and logs."""
        return ", ".join(f"{k.label}: {n}" for k, n in sorted(self.counts.items()) if n)

    def as_log_fields(self) -> dict[str, int]:
        return {k.value: n for k, n in sorted(self.counts.items()) if n}


def mask_text(text: str, findings: Sequence[Finding], vault: Vault) -> str:
    """Replace each (non-overlapping) finding with its placeholder from ``vault``."""
    out: list[str] = []
    pos = 0
    for f in sorted(findings, key=lambda f: f.start):
        out.append(text[pos : f.start])
        out.append(vault.placeholder_for(f.kind, text[f.start : f.end]))
        pos = f.end
    out.append(text[pos:])
    return "".join(out)


class PrivacyGuard:
    """Finds, masks or blocks personal data in chat messages bound for an external model."""

    def __init__(
        self,
        policy: Policy | str = Policy.MASK,
        kinds: Iterable[PiiKind | str] | None = None,
        *,
        min_confidence: float = DEFAULT_MIN_CONFIDENCE,
        ner: NerDetector | bool = True,
        require_ner: bool = False,
    ) -> None:
        """
        :param kinds: what to look for; default every kind except bare place names.
        :param min_confidence: findings below it are ignored (0.5 keeps checksum-valid numbers
            even without a label, and drops streets without a house number).
        :param ner: True for the shared slovnet model, False for patterns only, or a detector.
        :param require_ner: raise :class:`ConfigError` now if the NER model cannot be loaded,
            instead of degrading to patterns (for deployments that must catch every name).
        """
        try:
            self.policy = Policy(policy)
        except ValueError as e:
            raise ConfigError(f"unknown privacy policy {policy!r}", hint="use mask, block or allow") from e
        try:
            self.kinds = parse_kinds(kinds)
        except ValueError as e:
            raise ConfigError(str(e)) from e
        self.min_confidence = min_confidence
        if ner is True:
            self._ner: NerDetector | None = NerDetector.shared()
        elif ner is False:
            self._ner = None
        else:
            self._ner = ner
        if require_ner and not self.ner_available:
            raise ConfigError(
                "the privacy guard requires the NER model, which is unavailable"
                f" ({self._ner.error if self._ner else 'disabled'})",
                hint=INSTALL_HINT,
            )

    @property
    def ner_available(self) -> bool:
        return self._ner is not None and self._ner.available

    def _ner_fields(self) -> tuple[bool, str | None]:
        if not self.kinds & NER_KINDS:
            return True, None
        if self._ner is None:
            return False, "disabled"
        return self._ner.available, self._ner.error

    def find(self, text: str) -> list[Finding]:
        """Positions and kinds of the personal data in ``text`` (for callers that mask themselves)."""
        ner = self._ner if self._ner is not None and self._ner.available else None
        return find_pii(text, kinds=self.kinds, min_confidence=self.min_confidence, ner=ner)

    def _report(self, counts: Counter[PiiKind]) -> Report:
        ok, error = self._ner_fields()
        return Report(counts=dict(counts), ner_available=ok, ner_error=error)

    def inspect(self, text: str) -> Report:
        """Kinds and counts of the personal data in ``text``; changes nothing, raises nothing."""
        return self._report(Counter(f.kind for f in self.find(text)))

    def protect(
        self, messages: Sequence[Mapping[str, Any]], vault: Vault | None = None
    ) -> tuple[list[dict[str, Any]], Vault]:
        """Apply the policy to OpenAI-style chat messages; returns new messages and the vault.

        Text content, text parts of multi-part content and tool-call arguments are inspected;
        the input messages are never modified. Pass the vault of an earlier turn to keep
        placeholders stable across a conversation.
        """
        vault = vault if vault is not None else Vault()
        out = [copy.deepcopy(dict(m)) for m in messages]
        counts: Counter[PiiKind] = Counter()
        masks: list[tuple[dict[str, Any], str, list[Finding]]] = []
        for holder, key in _text_slots(out):
            found = self.find(holder[key])
            if found:
                counts.update(f.kind for f in found)
                masks.append((holder, key, found))
        report = self._report(counts)
        self._log(report, len(out))
        if report and self.policy is Policy.BLOCK:
            err = PrivacyError(
                f"Запрос не отправлен во внешнюю модель: в нём есть персональные данные ({report.summary()})",
                hint="уберите их из запроса или включите маскирование (policy=mask)",
            )
            err.report = report  # type: ignore[attr-defined]
            raise err
        if self.policy is Policy.MASK:
            for holder, key, found in masks:
                holder[key] = mask_text(holder[key], found, vault)
        return out, vault

    def restore(self, text: str, vault: Vault) -> str:
        """The model's reply with placeholders of ``vault`` replaced by the original values."""
        return vault.restore(text)

    def _log(self, report: Report, n_messages: int) -> None:
        fields = report.as_log_fields()
        if report:
            log.info(
                "privacy: policy=%s found %s in %d message(s)",
                self.policy.value,
                " ".join(f"{k}={n}" for k, n in fields.items()),
                n_messages,
                extra={"pii_counts": fields, "privacy_policy": self.policy.value},
            )
        else:
            log.debug("privacy: policy=%s found nothing in %d message(s)", self.policy.value, n_messages)
        if not report.ner_available:
            log.warning("privacy: names and addresses checked by patterns only (NER: %s)", report.ner_error)


def _text_slots(messages: list[dict[str, Any]]) -> Iterable[tuple[dict[str, Any], str]]:
    """(container, key) pairs whose string value is text a model will read."""
    for m in messages:
        content = m.get("content")
        if isinstance(content, str):
            yield m, "content"
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    yield part, "text"
        for call in m.get("tool_calls") or []:
            fn = call.get("function") if isinstance(call, dict) else None
            if isinstance(fn, dict) and isinstance(fn.get("arguments"), str):
                yield fn, "arguments"
