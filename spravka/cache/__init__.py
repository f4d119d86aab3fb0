"""The answer cache: a repeated question is answered from the cache without retrieval or an LLM.

* **Key**: the question normalised for caching (case, ё, punctuation, greetings, URLs) inside a
  *scope*: collection, access groups, filters, answer mode and the configuration fingerprint
  (answer, search, embedder and LLM settings). Access groups are part of the scope, so a cached
  answer never crosses groups.
* **Semantic match** (off by default): another question of the same scope whose vector is more
  similar than ``cache.semantic_threshold``.
* **Invalidation**: each entry records the documents and content hashes of its citations and of
  the hits it was built from. Every read checks them against the document store; one changed,
  deleted, re-grouped or failed document makes the entry stale (deleted at once). See
  :mod:`spravka.cache.service` for why on read rather than at ingestion.
* Backends: SQLite (embedded) and Redis (shared by several app instances).
"""

from spravka.cache.base import CacheBackend
from spravka.cache.service import AnswerCache, CacheHit, CacheStats

__all__ = ["AnswerCache", "CacheBackend", "CacheHit", "CacheStats"]
