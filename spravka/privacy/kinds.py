"""What the guard looks for, and the placeholder label each kind gets in masked text.

Labels are Russian and upper-case («[ФИО_1]», «[СНИЛС_2]») so that a Russian-speaking model keeps
them intact in its reply and a human reading a masked log sees at once what was hidden.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class PiiKind(StrEnum):
    """A kind of personal data under 152-FZ (or a bank/tax identifier that points at a person)."""

    PASSPORT = "passport"
    SNILS = "snils"
    INN = "inn"
    OGRN = "ogrn"
    OGRNIP = "ogrnip"
    CARD = "card"
    ACCOUNT = "account"
    PHONE = "phone"
    EMAIL = "email"
    PERSON = "person"
    ADDRESS = "address"
    BIRTH_DATE = "birth_date"
    #: a bare place name (city, region, country). Not personal data on its own, so off by default:
    #: masking every «Москва» would cripple answers about business documents.
    LOCATION = "location"

    @property
    def label(self) -> str:
        """The placeholder label: «ФИО» in «[ФИО_1]»."""
        return _LABELS[self]


_LABELS: dict[PiiKind, str] = {
    PiiKind.PASSPORT: "ПАСПОРТ",
    PiiKind.SNILS: "СНИЛС",
    PiiKind.INN: "ИНН",
    PiiKind.OGRN: "ОГРН",
    PiiKind.OGRNIP: "ОГРНИП",
    PiiKind.CARD: "КАРТА",
    # «СЧЕТ», not «СЧЁТ»: models often drop the ё, and the label must survive the round trip.
    PiiKind.ACCOUNT: "СЧЕТ",
    PiiKind.PHONE: "ТЕЛЕФОН",
    PiiKind.EMAIL: "EMAIL",
    PiiKind.PERSON: "ФИО",
    PiiKind.ADDRESS: "АДРЕС",
    PiiKind.BIRTH_DATE: "ДАТА_РОЖДЕНИЯ",
    PiiKind.LOCATION: "МЕСТО",
}

#: Every kind except bare place names.
DEFAULT_KINDS: frozenset[PiiKind] = frozenset(k for k in PiiKind if k is not PiiKind.LOCATION)

#: Kinds found by the neural NER model; the rest come from patterns and checksums.
NER_KINDS: frozenset[PiiKind] = frozenset({PiiKind.PERSON, PiiKind.ADDRESS, PiiKind.LOCATION})


def parse_kinds(kinds: Iterable[PiiKind | str] | None) -> frozenset[PiiKind]:
    """Accept kinds as enum members or their string values ("snils"); ``None`` means the defaults."""
    if kinds is None:
        return DEFAULT_KINDS
    out: set[PiiKind] = set()
    for k in kinds:
        try:
            out.add(PiiKind(k))
        except ValueError as e:
            known = ", ".join(m.value for m in PiiKind)
            raise ValueError(f"unknown personal-data kind {k!r}; known kinds: {known}") from e
    return frozenset(out)
