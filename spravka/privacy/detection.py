"""All detectors together: one call from text to non-overlapping findings."""

from __future__ import annotations

import re
from collections.abc import Iterable

from spravka.privacy.addresses import detect_addresses
from spravka.privacy.birthdates import detect_birthdates
from spravka.privacy.contacts import detect_contacts
from spravka.privacy.findings import Finding, resolve_overlaps
from spravka.privacy.identifiers import detect_identifiers
from spravka.privacy.kinds import DEFAULT_KINDS, NER_KINDS, PiiKind
from spravka.privacy.names import detect_names
from spravka.privacy.ner import NerDetector

#: Below this a finding is a guess (a street without a house number, a bare ten-digit number
#: far from any label) and is not reported by default.
DEFAULT_MIN_CONFIDENCE = 0.5
_GAP = re.compile(r"[,\s]{0,3}")


def find_pii(
    text: str,
    *,
    kinds: Iterable[PiiKind] = DEFAULT_KINDS,
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
    ner: NerDetector | None = None,
) -> list[Finding]:
    """Personal data in ``text``, in text order, no two findings overlapping.

    Overlaps are settled before the confidence cut, on purpose: a low-confidence street
    («ул. Ленина») still keeps the surname inside it from being masked as a person.
    ``ner=None`` runs the patterns only.
    """
    wanted = frozenset(kinds)
    if not text or not wanted:
        return []
    raw: list[Finding] = [*detect_identifiers(text), *detect_contacts(text), *detect_birthdates(text)]
    if wanted & NER_KINDS:
        raw.extend(detect_addresses(text))
        raw.extend(detect_names(text))
        if ner is not None:
            raw.extend(ner.detect(text))
    kept = resolve_overlaps(f for f in raw if f.kind in wanted)
    return _join_addresses(text, [f for f in kept if f.confidence >= min_confidence])


def _join_addresses(text: str, findings: list[Finding]) -> list[Finding]:
    """«Москва, Тверская 7 кв 5» comes back from NER as two places: one address, one placeholder."""
    out: list[Finding] = []
    for f in findings:
        prev = out[-1] if out else None
        if (
            prev is not None
            and prev.kind is PiiKind.ADDRESS
            and f.kind is PiiKind.ADDRESS
            and _GAP.fullmatch(text, prev.end, f.start)
        ):
            out[-1] = Finding(
                PiiKind.ADDRESS, prev.start, f.end, max(prev.confidence, f.confidence), prev.source
            )
        else:
            out.append(f)
    return out
