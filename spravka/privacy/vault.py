"""The secret side of masking: which placeholder stands for which value.

A vault lives as long as one request (or one conversation, if the caller passes it back in) and
never leaves the perimeter. Its ``repr`` shows counts only, so a vault that ends up in a log or a
traceback leaks nothing.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator

from spravka.privacy.kinds import PiiKind

_NUMERIC = {
    PiiKind.PASSPORT,
    PiiKind.SNILS,
    PiiKind.INN,
    PiiKind.OGRN,
    PiiKind.OGRNIP,
    PiiKind.CARD,
    PiiKind.ACCOUNT,
    PiiKind.PHONE,
}
_LABEL_TO_KIND = {k.label: k for k in PiiKind}
# «[ФИО_1]», «[ФИО 1]», «[ ФИО_1 ]» and, without brackets, «ФИО_1»: models reformat placeholders.
_LABEL = r"[A-Za-zА-Яа-яЁё]+(?:_[A-Za-zА-Яа-яЁё]+)*"
_PLACEHOLDER = re.compile(
    rf"\[\s*(?P<bl>{_LABEL})[_ ](?P<bn>\d+)\s*\]|(?<![\w\[])(?P<l>{_LABEL})_(?P<n>\d+)(?![\w])"
)
_MAX_PLACEHOLDER = 32


def _canonical(label: str, number: str) -> str:
    return f"[{label.upper().replace('Ё', 'Е')}_{int(number)}]"


def normalise_value(kind: PiiKind, value: str) -> str:
    """The identity of a value: «8 (912) 345-67-89» and «+79123456789» are one phone."""
    if kind in _NUMERIC:
        digits = re.sub(r"\D", "", value)
        if kind is PiiKind.PHONE and len(digits) == 11 and digits[0] == "8":
            digits = "7" + digits[1:]
        return digits
    return re.sub(r"[\W_]+", "", value.casefold().replace("ё", "е"))


class Vault:
    """Placeholder ↔ original value for one request; the same value always gets the same placeholder."""

    def __init__(self) -> None:
        self._by_key: dict[tuple[PiiKind, str], str] = {}
        self._values: dict[str, str] = {}
        self._counters: Counter[PiiKind] = Counter()

    def placeholder_for(self, kind: PiiKind, value: str) -> str:
        """The placeholder for ``value``, creating the next «[LABEL_n]» on first sight."""
        key = (kind, normalise_value(kind, value))
        found = self._by_key.get(key)
        if found is None:
            self._counters[kind] += 1
            found = f"[{kind.label}_{self._counters[kind]}]"
            self._by_key[key] = found
            self._values[found] = value
        return found

    def value_of(self, placeholder: str) -> str | None:
        """The original value behind a placeholder (any spelling the model may use), or None."""
        m = _PLACEHOLDER.fullmatch(placeholder.strip())
        if not m:
            return None
        label, number = (m.group("bl"), m.group("bn")) if m.group("bl") else (m.group("l"), m.group("n"))
        return self._values.get(_canonical(label, number))

    def restore(self, text: str) -> str:
        """Put the original values back wherever the reply echoes a placeholder of this vault."""
        if not self._values or not text:
            return text

        def swap(m: re.Match[str]) -> str:
            return self.value_of(m.group(0)) or m.group(0)

        return _PLACEHOLDER.sub(swap, text)

    def restore_stream(self, chunks: Iterable[str]) -> Iterator[str]:
        """Restore a streamed reply: a placeholder split across chunks is held back until complete."""
        buf = ""
        for chunk in chunks:
            buf += chunk
            cut = _safe_cut(buf)
            if cut:
                yield self.restore(buf[:cut])
                buf = buf[cut:]
        if buf:
            yield self.restore(buf)

    def counts(self) -> dict[PiiKind, int]:
        """How many distinct values of each kind the vault holds."""
        return {k: n for k, n in self._counters.items() if n}

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        inner = ", ".join(f"{k.value}={n}" for k, n in sorted(self.counts().items()))
        return f"Vault({inner})"


def _safe_cut(buf: str) -> int:
    """Length of the prefix of ``buf`` that cannot end inside a placeholder."""
    bracket = buf.rfind("[")
    if bracket != -1 and "]" not in buf[bracket:] and len(buf) - bracket <= _MAX_PLACEHOLDER:
        return bracket
    m = re.search(r"[\w]+$", buf)
    return m.start() if m else len(buf)
