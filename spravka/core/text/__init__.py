"""Russian-aware text processing: cleaning, sentences, lemmas, token counts."""

from spravka.core.text.normalize import clean_text, normalize_query
from spravka.core.text.sentences import split_sentences

__all__ = ["clean_text", "normalize_query", "split_sentences"]
