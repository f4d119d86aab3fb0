"""The storage ports.

``DocumentStore`` keeps what was ingested: sources (files), documents with status and cleaned
text, the embedding cache, jobs and the event log. ``SearchIndex`` keeps chunks with their vectors
and lexical terms and answers queries. Both are small on purpose: a new backend implements them
and passes ``tests/conformance``.

Filters (metadata and access groups) are applied *inside* every index query, never by dropping
results afterwards, so a restricted chunk can neither leak nor cost recall.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from spravka.core.filters import Filter
from spravka.core.types import Chunk, DocStatus, DocumentRecord, Hit


@dataclass(slots=True)
class IndexRow:
    """A chunk ready for the index."""

    chunk: Chunk
    vector: np.ndarray
    title_vector: np.ndarray | None
    title_hash: str
    title_terms: str
    body_terms: str
    metadata: dict[str, Any]
    groups: tuple[str, ...]


@dataclass(slots=True)
class ScoreStats:
    """Distribution of a signal over every chunk the filter allows (for per-query z-scores)."""

    mean: float = 0.0
    std: float = 1.0
    count: int = 0


@dataclass(slots=True)
class DenseCandidates:
    """Dense candidates with *both* vector fields scored exactly for each of them."""

    ids: list[int]
    content: list[float]
    title: list[float]
    content_stats: ScoreStats = field(default_factory=ScoreStats)
    title_stats: ScoreStats = field(default_factory=ScoreStats)


@dataclass(slots=True)
class LexicalCandidates:
    ids: list[int]
    scores: list[float]
    #: True when every matching chunk is in the list (unlisted chunks score exactly 0)
    complete: bool = True


@dataclass(slots=True)
class SourceRecord:
    collection: str
    path: str
    file_hash: str
    status: str
    doc_ids: list[str] = field(default_factory=list)
    error: str | None = None
    reason: str | None = None
    fingerprint: str = ""
    #: the folder the path is relative to (``--prune`` only touches sources of the same root)
    root: str = ""


class SearchIndex(Protocol):
    def replace_document(self, collection: str, doc_id: str, rows: Sequence[IndexRow]) -> None:
        """Upsert: the document's chunks become exactly ``rows`` (idempotent)."""

    def delete_documents(self, collection: str, doc_ids: Iterable[str]) -> None: ...

    def search_dense(
        self,
        collection: str,
        vector: np.ndarray,
        n: int,
        flt: Filter,
        title_weight: float = 1.0,
        include: Sequence[int] = (),
    ) -> DenseCandidates:
        """Top ``n`` by content and by content+title, plus the ``include`` ids (scored exactly
        when the filter allows them), each with both vector fields scored."""

    def search_lexical(
        self,
        collection: str,
        terms: Sequence[str],
        n: int,
        flt: Filter,
        title_boost: float = 2.0,
        fuzzy: bool = True,
    ) -> LexicalCandidates:
        """BM25 top ``n``; with ``fuzzy``, terms absent from the collection also match terms one
        edit away (backends without a vocabulary may ignore it)."""

    def fetch(self, collection: str, ids: Sequence[int]) -> dict[int, Hit]:
        """Chunks by internal id (ids deleted meanwhile are simply absent)."""

    def count(self, collection: str, flt: Filter | None = None) -> int: ...

    def drop(self, collection: str) -> None: ...

    def prepare(self, collection: str) -> None:
        """Bring whatever search keeps beside the data (in-memory structures, files derived from
        it) up to date now, after an ingestion, so the next search, in this process or one
        started later, does not pay for it. A no-op where the server keeps its own indexes."""


class DocumentStore(Protocol):
    def transaction(self) -> AbstractContextManager[None]: ...

    # collections
    def ensure_collection(self, name: str) -> None: ...
    def list_collections(self) -> list[dict[str, Any]]: ...
    def collection_settings(self, name: str) -> dict[str, Any]: ...
    def update_collection_settings(self, name: str, values: dict[str, Any]) -> None: ...
    def drop_collection(self, name: str) -> None: ...

    # sources (files) and documents
    def get_source(self, collection: str, path: str) -> SourceRecord | None: ...
    def put_source(self, record: SourceRecord) -> None: ...
    def delete_source(self, collection: str, path: str) -> None: ...
    def list_sources(self, collection: str) -> list[SourceRecord]: ...
    def get_document(self, collection: str, doc_id: str) -> DocumentRecord | None: ...
    def list_documents(self, collection: str, status: DocStatus | None = None) -> list[DocumentRecord]: ...
    def save_document(self, record: DocumentRecord, text: str, dedup_hash: str, sections: list[dict]) -> None: ...
    def delete_document(self, collection: str, doc_id: str) -> None: ...
    def find_by_dedup_hash(self, collection: str, dedup_hash: str, exclude: str) -> DocumentRecord | None: ...
    def duplicates_of(self, collection: str, doc_id: str) -> list[DocumentRecord]: ...
    def document_text(self, collection: str, doc_id: str) -> str | None: ...

    # embedding cache
    def get_vectors(self, model: str, hashes: Sequence[str]) -> dict[str, np.ndarray]: ...
    def put_vectors(self, model: str, items: Iterable[tuple[str, np.ndarray]]) -> None: ...
    def iter_vectors(self, batch: int = 5000) -> Iterator[tuple[str, list[tuple[str, np.ndarray]]]]:
        """Every cached vector as ``(model, [(hash, vector), ...])`` batches (for migrations)."""

    # event log (append-only) and jobs
    def log_event(self, kind: str, payload: dict[str, Any], collection: str | None = None) -> int: ...
    def events(self, kind: str | None = None, limit: int = 100, since: str | None = None) -> Iterator[dict[str, Any]]: ...
    def purge_events(self, before: str, kinds: Sequence[str]) -> int: ...
    def start_job(self, kind: str, params: dict[str, Any]) -> str: ...
    def update_job(self, job_id: str, **fields: Any) -> None: ...
    def get_job(self, job_id: str) -> dict[str, Any] | None: ...

    def close(self) -> None: ...
