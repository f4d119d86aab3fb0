"""Incremental, idempotent, resumable ingestion.

``file → loader → Document → clean → chunk → embed (cached by content hash) → index``

* **Incremental**: a file whose bytes (and metadata files) are unchanged is skipped without
  parsing; inside a changed JSONL file, unchanged records are skipped too. A new version of the
  code that reads, cleans, chunks or lemmatises (:func:`processing_version`) re-processes them.
* **Idempotent**: running twice changes nothing the second time; a changed document replaces
  its chunks; ``prune`` removes documents whose files are gone.
* **Resumable**: every document is committed in one transaction (its chunks, FTS rows and
  status together), and a file's bookkeeping is written only after all of its documents are in.
  ``kill -9`` at any point followed by a re-run gives no duplicates and loses nothing; vectors
  computed before the kill are reused from the embedding cache.
* **Failures are per document** with a reason code; one bad file never stops the rest. A file
  that was fine before and is now unreadable keeps serving its previous version, with the error
  shown in its status.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from spravka.core.errors import InputError, LoaderError
from spravka.core.text.lemmas import analyze
from spravka.core.text.normalize import clean_text
from spravka.core.types import Chunk, DocStatus, Document, DocumentRecord, IngestReport, Section
from spravka.ingest.chunker import SECTION_SEP, Chunker
from spravka.ingest.loaders import RawDoc
from spravka.ingest.loaders.base import format_of, load_file_or_ocr
from spravka.ingest.metadata import FOLDER_META, PATH_KEYS, MetadataResolver, is_metadata_file
from spravka.models.embedder import CachedEmbedder, text_hash
from spravka.store.base import DocumentStore, IndexRow, SearchIndex, SourceRecord

log = logging.getLogger(__name__)

#: bump when something outside the code :func:`processing_version` hashes changes what a document
#: is indexed as (that code itself is hashed, so a change there needs no bump)
PIPELINE_VERSION = "2"

#: the code that decides what a file becomes in the index: loaders, cleaning, chunking, lemmas
_PROCESSING_CODE = ("ingest", "core/text")


@functools.cache
def processing_version() -> str:
    """A hash of the source of the code that turns a file into chunks, title texts and lemmas.

    It is part of every document's fingerprint, so after an upgrade that reads, cleans, chunks or
    lemmatises documents differently, the next ingest re-processes the files it would otherwise
    skip as unchanged (chunk texts that come out the same are not re-embedded: the vectors are
    cached by content hash). A version number bumped by hand was forgotten: cleaning and chunking
    changed many times under ``PIPELINE_VERSION = "1"``, and an index built before a change kept
    serving the old chunks, benchmark homes included. Without the source (a frozen build), the
    package version stands in."""
    return code_hash(Path(__file__).resolve().parents[1])


def code_hash(root: Path) -> str:
    """The hash :func:`processing_version` gives for the package at ``root``."""
    h = hashlib.sha256()
    files = sorted(f for part in _PROCESSING_CODE for f in (root / part).rglob("*.py"))
    for f in files:
        h.update(f.relative_to(root).as_posix().encode())
        h.update(f.read_bytes())
    if not files:
        from spravka import __version__

        h.update(__version__.encode())
    return h.hexdigest()[:16]


class ProgressSink(Protocol):
    """What the pipeline tells an interface while it works (CLI bars, API job status)."""

    def start(self, total_files: int) -> None: ...

    def file_done(self, path: str, status: str, detail: str = "") -> None: ...

    def embedded(self, n: int) -> None: ...


class _NoProgress:
    def start(self, total_files: int) -> None:
        pass

    def file_done(self, path: str, status: str, detail: str = "") -> None:
        pass

    def embedded(self, n: int) -> None:
        pass


@dataclass
class _Pending:
    doc: Document
    chunks: list[Chunk]
    record: DocumentRecord
    dedup_hash: str
    created: bool


@dataclass
class _PendingSource:
    record: SourceRecord
    docs_left: set[str]
    stale_docs: list[str] = field(default_factory=list)


def file_digest(path: Path, extra: Iterable[Path] = ()) -> str:
    """sha256 of the file and of every metadata file that applies to it."""
    h = hashlib.sha256()
    for p in (path, *extra):
        if p.is_file():
            h.update(p.name.encode())
            with p.open("rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
    return h.hexdigest()


class Ingestor:
    def __init__(
        self,
        store: DocumentStore,
        index: SearchIndex,
        embedder: CachedEmbedder,
        chunker: Chunker,
        *,
        max_file_mb: float = 200.0,
        batch_chunks: int = 64,
        ocr: Any = None,
        ocr_max_pages: int = 200,
    ) -> None:
        #: a :class:`~spravka.models.ocr.Tesseract` for PDFs without a text layer (None: no OCR)
        self.ocr = ocr
        self.ocr_max_pages = ocr_max_pages
        self.store = store
        self.index = index
        self.embedder = embedder
        self.chunker = chunker
        self.max_bytes = int(max_file_mb * 2**20)
        self.batch_chunks = batch_chunks
        self.fingerprint = hashlib.sha256(
            json.dumps([PIPELINE_VERSION, processing_version(), embedder.name, chunker.max_tokens,
                        chunker.overlap]).encode()
        ).hexdigest()[:16]

    # ---- public API ----------------------------------------------------------------------------
    def ingest_path(
        self,
        path: Path,
        collection: str,
        *,
        prune: bool = False,
        force: bool = False,
        progress: ProgressSink | None = None,
    ) -> IngestReport:
        path = Path(path)
        if not path.exists():
            raise InputError(f"path not found: {path}")
        root = path.resolve() if path.is_dir() else path.resolve().parent
        files = list(walk(path))
        progress = progress or _NoProgress()
        self.store.ensure_collection(collection)
        job = self.store.start_job("ingest", {"path": str(path), "collection": collection, "prune": prune})
        self.store.update_job(job, total=len(files))
        run = _Run(self, collection, root, force, progress)
        progress.start(len(files))
        try:
            for i, f in enumerate(files, start=1):
                run.file(f)
                if i % 20 == 0 or i == len(files):
                    self.store.update_job(job, progress=i, message=f"{i}/{len(files)} files")
            run.flush()
            if prune:
                run.prune(seen={rel_id(f, root) for f in files})
        except BaseException as e:
            self.store.update_job(job, state="interrupted" if isinstance(e, KeyboardInterrupt) else "failed",
                                  error=f"{type(e).__name__}: {e}")
            raise
        report = run.finish()
        summary = {k: v for k, v in dataclasses.asdict(report).items() if k != "failures"}
        summary["failures"] = len(report.failures)
        self.store.update_job(job, state="done", progress=len(files), result=summary)
        self.store.log_event("ingest.run", {"job": job, "path": str(path), **summary}, collection=collection)
        return report

    def ingest_documents(self, docs: Iterable[Document], collection: str) -> IngestReport:
        """Index documents built in code (API payloads, tests), with the same guarantees."""
        self.store.ensure_collection(collection)
        run = _Run(self, collection, None, False, _NoProgress())
        for doc in docs:
            run.document(_finalise(doc), source=f"api:{doc.id}", fmt=doc.format or "text")
        run.flush()
        return run.finish()

    def delete_documents(self, collection: str, doc_ids: Iterable[str]) -> int:
        run = _Run(self, collection, None, False, _NoProgress())
        n = run.delete_docs(list(doc_ids))
        run.flush()
        return n

    # ---- helpers shared with _Run ----------------------------------------------------------------
    def index_rows(
        self,
        doc: Document,
        chunks: list[Chunk],
        vecs: Any = None,
        title_vecs: dict[str, Any] | None = None,
    ) -> list[IndexRow]:
        """Analyse chunks into index rows; vectors are computed (through the cache) unless given."""
        title_texts = [title_text(doc.title, c.heading) for c in chunks]
        if vecs is None:
            vecs = self.embedder.embed_passages([c.embed_text() for c in chunks])
        if title_vecs is None:
            uniq = list(dict.fromkeys(t for t in title_texts if t))
            title_vecs = dict(zip(uniq, self.embedder.embed_passages(uniq), strict=True)) if uniq else {}
        rows = []
        for c, v, tt in zip(chunks, vecs, title_texts, strict=True):
            rows.append(IndexRow(
                chunk=c, vector=v, title_vector=title_vecs.get(tt), title_hash=text_hash(tt) if tt else "",
                title_terms=" ".join(analyze(f"{doc.title} {c.heading}")), body_terms=" ".join(analyze(c.text)),
                metadata=doc.metadata, groups=doc.access_groups,
            ))
        return rows


def title_text(title: str, heading: str) -> str:
    """What the title vector sees: the document title, narrowed by the section heading."""
    if heading and heading != title:
        return f"{title} — {heading}" if title else heading
    return title


def rel_id(path: Path, root: Path) -> str:
    p = path.resolve()
    try:
        return p.relative_to(root).as_posix()
    except ValueError:
        return p.name


def walk(path: Path) -> Iterator[Path]:
    """Files to ingest under ``path`` (recursively, sorted, hidden and metadata files skipped)."""
    if path.is_file():
        yield path
        return
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "_")))
        for name in sorted(filenames):
            f = Path(dirpath) / name
            if name.startswith(".") or is_metadata_file(f) or name.endswith("~"):
                continue
            yield f


def _finalise(doc: Document) -> Document:
    """Clean a document's text and drop empty sections."""
    sections = []
    for s in doc.sections:
        text = clean_text(s.text, dehyphenate=doc.format == "pdf")
        if text:
            sections.append(Section(text=text, heading=clean_text(s.heading), page=s.page))
    doc.sections = sections
    doc.title = clean_text(doc.title)
    return doc


def _hash(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, ensure_ascii=False, sort_keys=True, default=str).encode()).hexdigest()


def sections_layout(doc: Document) -> list[dict]:
    layout, pos = [], 0
    for s in doc.sections:
        layout.append({"heading": s.heading, "page": s.page, "start": pos, "end": pos + len(s.text)})
        pos += len(s.text) + len(SECTION_SEP)
    return layout


def document_from_store(record: DocumentRecord, text: str, layout: list[dict]) -> Document:
    sections = [Section(text=text[s["start"]:s["end"]], heading=s["heading"], page=s["page"]) for s in layout]
    return Document(id=record.id, title=record.title, sections=sections, metadata=record.metadata,
                    access_groups=record.access_groups, source=record.source, format=record.format)


class _Run:
    """State of one ingestion run: pending documents waiting for a shared embedding batch."""

    def __init__(self, ing: Ingestor, collection: str, root: Path | None, force: bool, progress: ProgressSink) -> None:
        self.ing = ing
        self.store = ing.store
        self.index = ing.index
        self.collection = collection
        self.root = root
        self.force = force
        self.progress = progress
        self.resolver = MetadataResolver(root) if root else None
        self.report = IngestReport(collection=collection)
        self.pending: list[_Pending] = []
        self.pending_chunks = 0
        self.pending_sources: list[_PendingSource] = []
        self.dedup_in_run: dict[str, str] = {}
        self.ids_in_run: dict[str, str] = {}
        self.started = time.perf_counter()
        self.calls_before = ing.embedder.model_calls
        self.hits_before = ing.embedder.cache_hits

    # ---- files ---------------------------------------------------------------------------------
    def _meta_files(self, f: Path) -> list[Path]:
        assert self.root is not None
        extra = [f.with_name(f.name + s) for s in (".meta.yaml", ".meta.yml", ".meta.json")]
        d = f.resolve().parent
        while True:
            extra.append(d / FOLDER_META)
            if d == self.root or self.root not in d.parents:
                break
            d = d.parent
        return extra

    def file(self, f: Path) -> None:
        assert self.root is not None and self.resolver is not None
        rel = rel_id(f, self.root)
        if format_of(f) is None:
            self.report.failures.append((rel, "unsupported", f"unsupported file type '{f.suffix}'"))
            self.progress.file_done(rel, "skipped", "unsupported type")
            return
        digest = file_digest(f, self._meta_files(f))
        prev = self.store.get_source(self.collection, rel)
        if (prev and not self.force and prev.file_hash == digest and prev.fingerprint == self.ing.fingerprint
                and prev.status in ("ok", "partial")):
            self.report.unchanged += len(prev.doc_ids)
            self.progress.file_done(rel, "unchanged")
            return
        source = SourceRecord(self.collection, rel, digest, "ok", fingerprint=self.ing.fingerprint, root=str(self.root))
        try:
            fmt, result = load_file_or_ocr(f, max_bytes=self.ing.max_bytes, ocr=self.ing.ocr,
                                           max_pages=self.ing.ocr_max_pages)
        except LoaderError as e:
            self._file_failed(rel, prev, source, e)
            return
        docs: list[tuple[Document, str]] = []
        for raw in result.docs:
            try:
                docs.append((self._build(raw, f, rel, fmt), fmt))
            except LoaderError as e:
                rid = raw.id or rel
                result.failures.append((rid, e.reason, e.message))
        for rid, reason, message in result.failures:
            self.report.failures.append((f"{rel}:{rid}" if rid != rel else rel, reason, message))
        source.doc_ids = [d.id for d, _ in docs]
        if result.failures:
            source.status = "partial"
            source.error = f"{len(result.failures)} record(s) failed; first: {result.failures[0][2]}"
            source.reason = result.failures[0][1]
        pend = _PendingSource(source, set())
        # Documents that belonged to this file before and are gone from it now.
        if prev:
            keep = set(source.doc_ids)
            pend.stale_docs = [d for d in prev.doc_ids if d not in keep]
        self.pending_sources.append(pend)
        for doc, fmt_ in docs:
            if self.document(doc, source=rel, fmt=fmt_):
                pend.docs_left.add(doc.id)
        status = "partial" if result.failures else "queued"
        self.progress.file_done(rel, status, source.error or "")
        self._maybe_flush()

    def _file_failed(self, rel: str, prev: SourceRecord | None, source: SourceRecord, e: LoaderError) -> None:
        self.report.failed += 1
        self.report.failures.append((rel, e.reason, str(e)))
        self.progress.file_done(rel, "failed", f"{e.reason}: {e}")
        source.status, source.error, source.reason = "failed", str(e), e.reason
        with self.store.transaction():
            if prev and prev.doc_ids and prev.status in ("ok", "partial"):
                # Keep serving the last good version; say why it is stale.
                source.doc_ids = prev.doc_ids
                for doc_id in prev.doc_ids:
                    rec = self.store.get_document(self.collection, doc_id)
                    if rec is not None:
                        rec.error, rec.reason = f"the latest version failed to load: {e}", e.reason
                        self._resave(rec)
                source.file_hash = ""  # retry next run
            else:
                rec = DocumentRecord(self.collection, rel, title=Path(rel).name, status=DocStatus.FAILED,
                                     source=rel, format=format_of(Path(rel)) or "", error=str(e), reason=e.reason)
                self.store.save_document(rec, "", "", [])
                source.doc_ids = [rel]
            self.store.put_source(source)

    def _resave(self, rec: DocumentRecord) -> None:
        text = self.store.document_text(self.collection, rec.id) or ""
        layout = self.store.document_sections(self.collection, rec.id)  # type: ignore[attr-defined]
        dedup = _hash(rec.title, text, list(rec.access_groups), _dedup_meta(rec.metadata))
        self.store.save_document(rec, text, dedup, layout)

    def _build(self, raw: RawDoc, f: Path, rel: str, fmt: str) -> Document:
        assert self.resolver is not None
        title, groups, meta = self.resolver.resolve(f, raw.metadata if raw.id is None else {}, fmt,
                                                    record=raw.metadata if raw.id is not None else None)
        doc = Document(
            id=raw.id if raw.id is not None else rel,
            title=title or raw.title or (Path(rel).stem.replace("_", " ").replace("-", " ") if raw.id is None else ""),
            sections=raw.sections, metadata=meta, access_groups=groups, source=rel, format=fmt,
        )
        if raw.id is not None:
            doc.metadata["record_id"] = raw.id
        doc = _finalise(doc)
        if not doc.sections:
            raise LoaderError("no text after cleaning", reason="empty")
        return doc

    # ---- documents -----------------------------------------------------------------------------
    def document(self, doc: Document, *, source: str, fmt: str) -> bool:
        """Queue a document if it changed. Returns True when it waits for the next flush."""
        content_hash = _hash(self.ing.fingerprint, doc.title, doc.text, doc.metadata, list(doc.access_groups))
        dedup_hash = _hash(doc.title, doc.text, list(doc.access_groups), _dedup_meta(doc.metadata))
        first_source = self.ids_in_run.setdefault(doc.id, source)
        if first_source != source:
            self.report.failures.append((doc.id, "duplicate_id", f"id '{doc.id}' is already used by {first_source}"))
            return False
        prev = self.store.get_document(self.collection, doc.id)
        if prev is not None and prev.source and prev.source != source and not prev.source.startswith("api:"):
            owner = self.store.get_source(self.collection, prev.source)
            if owner is not None and doc.id in owner.doc_ids and prev.status != DocStatus.FAILED:
                self.report.failures.append((doc.id, "duplicate_id", f"id '{doc.id}' is already used by {prev.source}"))
                return False
        if (prev is not None and not self.force and prev.content_hash == content_hash
                and prev.status in (DocStatus.OK, DocStatus.DUPLICATE) and not prev.error):
            self.report.unchanged += 1
            return False
        record = DocumentRecord(
            collection=self.collection, id=doc.id, title=doc.title, status=DocStatus.OK, source=source, format=fmt,
            content_hash=content_hash, metadata=doc.metadata, access_groups=doc.access_groups,
        )
        canonical = self.dedup_in_run.get(dedup_hash)
        if canonical is None:
            found = self.store.find_by_dedup_hash(self.collection, dedup_hash, exclude=doc.id)
            canonical = found.id if found is not None else None
        if canonical is not None and canonical != doc.id:
            record.status, record.duplicate_of = DocStatus.DUPLICATE, canonical
            with self.store.transaction():
                self.index.delete_documents(self.collection, [doc.id])
                self.store.save_document(record, doc.text, dedup_hash, sections_layout(doc))
            self.report.duplicates += 1
            return False
        self.dedup_in_run[dedup_hash] = doc.id
        chunks = self.ing.chunker.chunk(doc)
        self.pending.append(_Pending(doc, chunks, record, dedup_hash, prev is None))
        self.pending_chunks += len(chunks)
        return True

    def _maybe_flush(self) -> None:
        if self.pending_chunks >= self.ing.batch_chunks:
            self.flush()

    def flush(self) -> None:
        """Embed everything pending in shared batches, then commit document by document."""
        if self.pending:
            batch, self.pending, self.pending_chunks = self.pending, [], 0
            all_chunks = [c for p in batch for c in p.chunks]
            titles = list(dict.fromkeys(
                t for p in batch for c in p.chunks if (t := title_text(p.doc.title, c.heading))))
            # One call for chunks and titles of the whole batch: the model sees full batches.
            both = self.ing.embedder.embed_passages([c.embed_text() for c in all_chunks] + titles,
                                                    progress=self.progress.embedded)
            vecs = both[: len(all_chunks)]
            title_vecs = dict(zip(titles, both[len(all_chunks):], strict=True))
            done: set[str] = set()
            pos = 0
            for p in batch:
                rows = self.ing.index_rows(p.doc, p.chunks, vecs[pos:pos + len(p.chunks)], title_vecs)
                pos += len(p.chunks)
                p.record.n_chunks = len(rows)
                with self.store.transaction():
                    self.index.replace_document(self.collection, p.doc.id, rows)
                    self.store.save_document(p.record, p.doc.text, p.dedup_hash, sections_layout(p.doc))
                self.report.chunks += len(rows)
                if p.created:
                    self.report.added += 1
                else:
                    self.report.updated += 1
                done.add(p.doc.id)
            for ps in self.pending_sources:
                ps.docs_left -= done
        self._commit_sources()

    def _commit_sources(self) -> None:
        still = []
        for ps in self.pending_sources:
            if ps.docs_left:
                still.append(ps)
                continue
            with self.store.transaction():
                if ps.stale_docs:
                    self.delete_docs(ps.stale_docs)
                self.store.put_source(ps.record)
        self.pending_sources = still

    def delete_docs(self, doc_ids: list[str]) -> int:
        n = 0
        for doc_id in doc_ids:
            rec = self.store.get_document(self.collection, doc_id)
            if rec is None:
                continue
            with self.store.transaction():
                self.index.delete_documents(self.collection, [doc_id])
                self.store.delete_document(self.collection, doc_id)
            n += 1
            if rec.status == DocStatus.OK:
                self._promote_duplicate(doc_id)
        return n

    def _promote_duplicate(self, doc_id: str) -> None:
        """The canonical copy went away: the first duplicate takes its place (no re-embedding)."""
        dups = self.store.duplicates_of(self.collection, doc_id)
        if not dups:
            return
        heir, rest = dups[0], dups[1:]
        text = self.store.document_text(self.collection, heir.id) or ""
        layout = self.store.document_sections(self.collection, heir.id)  # type: ignore[attr-defined]
        doc = document_from_store(heir, text, layout)
        chunks = self.ing.chunker.chunk(doc)
        rows = self.ing.index_rows(doc, chunks)
        heir.status, heir.duplicate_of, heir.n_chunks = DocStatus.OK, None, len(rows)
        dedup = _hash(doc.title, doc.text, list(doc.access_groups), _dedup_meta(doc.metadata))
        with self.store.transaction():
            self.index.replace_document(self.collection, heir.id, rows)
            self.store.save_document(heir, text, dedup, layout)
            for d in rest:
                d.duplicate_of = heir.id
                self.store.save_document(d, self.store.document_text(self.collection, d.id) or "", dedup,
                                         self.store.document_sections(self.collection, d.id))  # type: ignore[attr-defined]

    def prune(self, seen: set[str]) -> None:
        assert self.root is not None
        for src in self.store.list_sources(self.collection):
            if src.path in seen or src.root != str(self.root):
                continue
            self.report.pruned += self.delete_docs(src.doc_ids)
            with self.store.transaction():
                self.store.delete_source(self.collection, src.path)
            self.progress.file_done(src.path, "pruned")

    def finish(self) -> IngestReport:
        self.flush()
        r = self.report
        r.embedded = self.ing.embedder.model_calls - self.calls_before
        r.embed_cache_hits = self.ing.embedder.cache_hits - self.hits_before
        r.seconds = time.perf_counter() - self.started
        return r


def _dedup_meta(meta: dict[str, Any]) -> dict[str, Any]:
    """Metadata that makes two identical texts different documents (not where they came from)."""
    return {k: v for k, v in meta.items() if k not in PATH_KEYS and k != "record_id"}
