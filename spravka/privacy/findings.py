"""One detected piece of personal data, and how overlapping detections are settled.

Several detectors may claim the same characters: «ул. Ленина» holds a surname that the NER model
tags as a person, a ten-digit number after «паспорт» also passes the INN checksum. The guard keeps
one finding per stretch of text, preferring the longer span, then the more confident one, then
the more specific kind.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from spravka.privacy.kinds import PiiKind

# Tie-breaker when two findings cover the same span with the same confidence: checksummed
# identifiers are more specific than free-form contacts, which beat NER guesses.
_SPECIFICITY: dict[PiiKind, int] = {
    PiiKind.SNILS: 10,
    PiiKind.OGRNIP: 10,
    PiiKind.OGRN: 9,
    PiiKind.ACCOUNT: 9,
    PiiKind.CARD: 8,
    PiiKind.PASSPORT: 8,
    PiiKind.INN: 7,
    PiiKind.EMAIL: 6,
    PiiKind.PHONE: 5,
    PiiKind.BIRTH_DATE: 5,
    PiiKind.ADDRESS: 4,
    PiiKind.PERSON: 3,
    PiiKind.LOCATION: 1,
}


@dataclass(frozen=True, slots=True)
class Finding:
    """``text[start:end]`` is personal data of ``kind``; ``confidence`` is in [0, 1].

    A finding carries positions only, never the value, so it is safe to pass around and to log.
    """

    kind: PiiKind
    start: int
    end: int
    confidence: float
    #: which detector produced it ("regex", "checksum", "ner"): for debugging precision, not values
    source: str = "regex"

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.end:
            raise ValueError(f"bad finding span {self.start}..{self.end}")

    @property
    def length(self) -> int:
        return self.end - self.start

    def overlaps(self, other: Finding) -> bool:
        return self.start < other.end and other.start < self.end


def resolve_overlaps(findings: Iterable[Finding]) -> list[Finding]:
    """Keep a set of non-overlapping findings, best first, returned in text order."""
    ranked = sorted(
        findings,
        key=lambda f: (-f.length, -f.confidence, -_SPECIFICITY.get(f.kind, 0), f.start),
    )
    kept: list[Finding] = []
    for f in ranked:
        if not any(f.overlaps(k) for k in kept):
            kept.append(f)
    return sorted(kept, key=lambda f: f.start)
