"""Names and places with the slovnet NER model (natasha's news model, navec embeddings).

The weights ship inside the ``natasha`` wheel (``natasha/data``), so nothing is downloaded at
run time. natasha itself is never imported: its package import pulls in pymorphy2, which breaks
on Python 3.11. We locate its data files without importing it and run them with ``slovnet`` and
``navec`` directly (both numpy-only).

The model is optional. When it is missing or fails to load, :attr:`NerDetector.available` is
False, :attr:`NerDetector.error` says why, and the guard falls back to its patterns.
"""

from __future__ import annotations

import importlib.util
import logging
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from spravka.core.errors import ModelError
from spravka.core.text.sentences import split_sentences
from spravka.privacy.addresses import ADDRESS_CTX, HOUSE_TAIL
from spravka.privacy.context import near
from spravka.privacy.findings import Finding
from spravka.privacy.kinds import PiiKind
from spravka.privacy.names import is_person_word

log = logging.getLogger("spravka.privacy")
_TOKEN = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)*")
# a bare number after a place is as often a price («МКАД 290 ₽») as a house: ask for a marker
_MARKED_TAIL = re.compile(r"(?i)(?:\bд\.?\s?\d|дом|кв|корп|стр|оф|пом|комн)")
_INITIAL_AT_END = re.compile(r"(?:^|[\s.])[А-ЯЁA-Z]$")

EMBEDDINGS_FILE = "emb/navec_news_v1_1B_250K_300d_100q.tar"
NER_MODEL_FILE = "model/slovnet_ner_news_v1.tar"
INSTALL_HINT = "pip install 'spravka[privacy]' (natasha==1.6.0, slovnet==0.6.0, navec==0.10.0)"
# The CNN tags a window of tokens; long inputs go through in pieces of whole sentences.
_CHUNK_CHARS = 1500


def natasha_data_dir() -> Path | None:
    """``natasha/data`` inside the installed wheel, found without importing natasha."""
    spec = importlib.util.find_spec("natasha")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "data"


class NerDetector:
    """Lazy, thread-safe wrapper around the slovnet NER model."""

    _shared: NerDetector | None = None
    _shared_lock = threading.Lock()

    def __init__(self, data_dir: Path | str | None = None) -> None:
        self._data_dir = Path(data_dir) if data_dir else None
        self._model: Any = None
        self._error: str | None = None
        self._loaded = False
        self._lock = threading.Lock()

    @classmethod
    def shared(cls) -> NerDetector:
        """One model per process: it takes about a second and 30 MB to load."""
        if cls._shared is None:
            with cls._shared_lock:
                if cls._shared is None:
                    cls._shared = cls()
        return cls._shared

    def _load(self) -> None:
        with self._lock:
            if self._loaded:
                return
            try:
                data = self._data_dir or natasha_data_dir()
                if data is None:
                    raise ImportError("the natasha package (which ships the model weights) is not installed")
                from navec import Navec
                from slovnet import NER

                for name in (EMBEDDINGS_FILE, NER_MODEL_FILE):
                    if not (data / name).is_file():
                        raise FileNotFoundError(f"model file {name} is missing under {data}")
                navec = Navec.load(str(data / EMBEDDINGS_FILE))
                model = NER.load(str(data / NER_MODEL_FILE))
                model.navec(navec)
                self._model = model
            except Exception as e:  # any failure means "no NER", never a crash of the guard
                self._error = f"{type(e).__name__}: {e}"
                log.warning(
                    "privacy: NER model unavailable (%s); names and addresses are found by patterns only. %s",
                    self._error,
                    INSTALL_HINT,
                )
            finally:
                self._loaded = True

    @property
    def available(self) -> bool:
        """Whether the model is loaded (loads it on first use)."""
        self._load()
        return self._model is not None

    @property
    def error(self) -> str | None:
        """Why the model is unavailable, or None."""
        self._load()
        return self._error

    def _chunks(self, text: str) -> Iterator[tuple[int, str]]:
        start: int | None = None
        end = 0
        for s, e in split_sentences(text):
            if start is None:
                start, end = s, e
            elif e - start > _CHUNK_CHARS:
                yield start, text[start:end]
                start, end = s, e
            else:
                end = e
        if start is not None:
            yield start, text[start:end]

    def spans(self, text: str) -> list[tuple[str, int, int]]:
        """Raw ``(type, start, end)`` spans (PER, LOC, ORG); empty when the model is unavailable."""
        if not text.strip() or not self.available:
            return []
        chunks = list(self._chunks(text))
        out: list[tuple[str, int, int]] = []
        try:
            with self._lock:
                markups = list(self._model.map([c for _, c in chunks]))
        except Exception as e:
            # Fail closed: a request whose names went unchecked must not leave the perimeter.
            # Only the exception's type is reported; its message might quote the text.
            raise ModelError(f"the NER model failed on this text ({type(e).__name__})") from None
        for (offset, _), markup in zip(chunks, markups, strict=True):
            out.extend((s.type, offset + s.start, offset + s.stop) for s in markup.spans)
        return out

    def detect(self, text: str) -> list[Finding]:
        """Persons, and places: an address when a residence word precedes it, else a location."""
        out: list[Finding] = []
        for kind, start, end in self.spans(text):
            end = _trim_end(text, start, end)
            if kind == "PER":
                conf = _person_confidence(text[start:end])
                if conf:
                    out.append(Finding(PiiKind.PERSON, start, end, conf, "ner"))
            elif kind == "LOC":
                tail = HOUSE_TAIL.match(text, end)
                # «Тверская 7 кв 5»: a street written without «ул.»
                if tail and _MARKED_TAIL.search(tail.group(0)):
                    out.append(Finding(PiiKind.ADDRESS, start, tail.end(), 0.8, "ner"))
                elif near(text, start, end, ADDRESS_CTX, left=40):
                    out.append(Finding(PiiKind.ADDRESS, start, end, 0.7, "ner"))
                else:
                    out.append(Finding(PiiKind.LOCATION, start, end, 0.6, "ner"))
        return out


def _trim_end(text: str, start: int, end: int) -> int:
    """Drop punctuation the model swept into a span, but keep the dot of a final initial («И.»)."""
    while end > start + 1 and not text[end - 1].isalnum():
        end -= 1
    if end < len(text) and text[end] == "." and _INITIAL_AT_END.search(text, start, end):
        end += 1
    return end


def _person_confidence(span: str) -> float | None:
    """0.85 when every word reads as a name, 0.7 when some do, None (a false alarm) otherwise.

    A span across a line break is a heading run-on («Выйти\\n\\nЧек-лист»), not a name.
    """
    if "\n" in span:
        return None
    words = _TOKEN.findall(span)
    named = [w for w in words if len(w) == 1 or is_person_word(w)]
    if not named:
        return None
    return 0.85 if len(named) == len(words) else 0.7
