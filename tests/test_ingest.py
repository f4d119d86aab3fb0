"""Incremental, idempotent ingestion: unchanged files are skipped, changed ones replace their
chunks, deleted ones are pruned, duplicates are folded, bad files fail alone."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from spravka.core.filters import parse_filters
from spravka.core.types import DocStatus


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def small_kb(root: Path) -> Path:
    write(root / "_meta.yaml", "department: customers\n")
    write(root / "returns.md", "---\ntitle: Правила возврата\ndoc_type: policy\nversion: '2'\ndate: 2025-03-01\n---\n"
          "# Возврат\n\nТовар можно вернуть в течение 30 дней с момента покупки. Нужен чек или номер заказа.\n")
    write(root / "delivery.md", "# Доставка\n\nКурьер привозит заказ за 1–3 дня. Доставка по Москве стоит 299 рублей.\n")
    write(root / "hr" / "_meta.yaml", "department: hr\naccess_groups: [employees]\n")
    write(root / "hr" / "leave.md", "# Отпуск\n\nЕжегодный отпуск составляет 28 календарных дней. Заявление подают за две недели.\n")
    write(root / "hr" / "salary.md", "---\naccess_groups: [hr, managers]\n---\n# Премии\n\nКвартальная премия до 20% оклада.\n")
    write(root / "faq.jsonl", "\n".join(json.dumps(r, ensure_ascii=False) for r in [
        {"id": "faq-1", "title": "Как отследить заказ?", "text": "Трек-номер приходит в SMS после отправки."},
        {"id": "faq-2", "title": "Есть ли рассрочка?", "text": "Да, рассрочка на 6 месяцев без переплаты.", "category": "оплата"},
    ]) + "\n")
    return root


def doc_ids(app, status=None):
    return sorted(d.id for d in app.store.list_documents("default", status))


def test_first_run_indexes_everything_with_metadata_and_groups(fast_app, tmp_path):
    kb = small_kb(tmp_path / "kb")
    r = fast_app.ingest(kb)
    assert r.failed == 0 and r.added == 6 and r.unchanged == 0
    assert doc_ids(fast_app) == ["delivery.md", "faq-1", "faq-2", "hr/leave.md", "hr/salary.md", "returns.md"]
    ret = fast_app.store.get_document("default", "returns.md")
    assert ret.title == "Правила возврата" and ret.status == DocStatus.OK
    assert ret.metadata["department"] == "customers" and ret.metadata["date"] == "2025-03-01"
    assert ret.metadata["version"] == "2" and ret.metadata["path"] == "returns.md" and ret.access_groups == ("public",)
    leave = fast_app.store.get_document("default", "hr/leave.md")
    assert leave.metadata["department"] == "hr" and leave.access_groups == ("employees",) and leave.metadata["folder"] == "hr"
    assert fast_app.store.get_document("default", "hr/salary.md").access_groups == ("hr", "managers")
    faq = fast_app.store.get_document("default", "faq-2")
    assert faq.title == "Есть ли рассрочка?" and faq.metadata["category"] == "оплата" and faq.metadata["department"] == "customers"


def test_rerun_is_a_no_op_without_model_calls(fast_app, tmp_path):
    kb = small_kb(tmp_path / "kb")
    first = fast_app.ingest(kb)
    chunks = fast_app.index.count("default")
    calls = fast_app.embedder.model_calls
    again = fast_app.ingest(kb)
    assert (again.added, again.updated, again.failed, again.embedded) == (0, 0, 0, 0)
    assert again.unchanged == first.added
    assert fast_app.embedder.model_calls == calls
    assert fast_app.index.count("default") == chunks


def test_changed_file_replaces_its_chunks(fast_app, tmp_path):
    kb = small_kb(tmp_path / "kb")
    fast_app.ingest(kb)
    write(kb / "delivery.md", "# Доставка\n\nСамовывоз из пункта выдачи бесплатный. Хранение заказа — 5 дней.\n")
    r = fast_app.ingest(kb)
    assert (r.updated, r.added) == (1, 0) and r.unchanged == 5
    hits = fast_app.search("сколько стоит доставка по Москве", k=10, mode="lexical").hits
    texts = " ".join(h.text for h in hits if h.doc_id == "delivery.md")
    assert "299" not in texts
    assert "Самовывоз" in " ".join(h.text for h in fast_app.search("самовывоз", k=3).hits)


def test_metadata_change_alone_reindexes(fast_app, tmp_path):
    kb = small_kb(tmp_path / "kb")
    fast_app.ingest(kb)
    write(kb / "hr" / "_meta.yaml", "department: hr\naccess_groups: [employees, contractors]\n")
    r = fast_app.ingest(kb)
    assert r.updated == 1  # salary.md sets its own groups in front matter, so it is unaffected
    assert fast_app.store.get_document("default", "hr/leave.md").access_groups == ("contractors", "employees")
    assert fast_app.store.get_document("default", "hr/salary.md").access_groups == ("hr", "managers")


def test_jsonl_records_change_individually(fast_app, tmp_path):
    kb = small_kb(tmp_path / "kb")
    fast_app.ingest(kb)
    write(kb / "faq.jsonl", json.dumps(
        {"id": "faq-1", "title": "Как отследить заказ?", "text": "Трек-номер приходит в SMS после отправки."},
        ensure_ascii=False) + "\n" + json.dumps({"id": "faq-3", "title": "Можно ли оплатить СБП?", "text": "Да."},
                                                ensure_ascii=False) + "\n")
    r = fast_app.ingest(kb)
    assert r.added == 1 and r.unchanged == 5  # faq-1 and the four other files
    assert "faq-2" not in doc_ids(fast_app)  # dropped from its file: gone
    assert "faq-3" in doc_ids(fast_app)


def test_prune_removes_documents_of_deleted_files(fast_app, tmp_path):
    kb = small_kb(tmp_path / "kb")
    fast_app.ingest(kb)
    (kb / "delivery.md").unlink()
    fast_app.ingest(kb)
    assert "delivery.md" in doc_ids(fast_app)  # without --prune nothing is deleted
    r = fast_app.ingest(kb, prune=True)
    assert r.pruned == 1 and "delivery.md" not in doc_ids(fast_app)
    assert all(h.doc_id != "delivery.md" for h in fast_app.search("доставка курьер", k=10).hits)


def test_identical_documents_are_deduplicated_and_promoted_on_delete(fast_app, tmp_path):
    kb = small_kb(tmp_path / "kb")
    shutil.copy(kb / "delivery.md", kb / "delivery-copy.md")
    r = fast_app.ingest(kb)
    assert r.duplicates == 1
    dup = fast_app.store.get_document("default", "delivery.md")
    canon = fast_app.store.get_document("default", "delivery-copy.md")
    assert canon.status == DocStatus.OK and dup.status == DocStatus.DUPLICATE and dup.duplicate_of == "delivery-copy.md"
    hits = fast_app.search("доставка курьер", k=10).hits
    assert {h.doc_id for h in hits} & {"delivery.md", "delivery-copy.md"} == {"delivery-copy.md"}
    calls = fast_app.embedder.model_calls
    (kb / "delivery-copy.md").unlink()
    fast_app.ingest(kb, prune=True)
    heir = fast_app.store.get_document("default", "delivery.md")
    assert heir.status == DocStatus.OK and heir.n_chunks > 0
    assert fast_app.embedder.model_calls == calls  # promoted from the embedding cache
    assert "delivery.md" in {h.doc_id for h in fast_app.search("доставка курьер", k=10).hits}


def test_bad_files_fail_alone_with_reasons(fast_app, tmp_path):
    kb = small_kb(tmp_path / "kb")
    (kb / "broken.pdf").write_bytes(b"%PDF-1.4 garbage")
    (kb / "empty.txt").write_bytes(b"")
    (kb / "picture.png").write_bytes(b"\x89PNG")
    write(kb / "bad.jsonl", '{"id": "x1", "text": "хорошая запись"}\n{oops\n')
    r = fast_app.ingest(kb)
    assert r.added == 7  # six good documents plus the good JSONL record
    reasons = {doc: reason for doc, reason, _ in r.failures}
    assert reasons["broken.pdf"] in ("corrupt", "no_text") and reasons["empty.txt"] == "empty"
    assert reasons["picture.png"] == "unsupported" and reasons["bad.jsonl:line 2"] == "bad_record"
    failed = {d.id: d for d in fast_app.store.list_documents("default", DocStatus.FAILED)}
    assert set(failed) == {"broken.pdf", "empty.txt"} and failed["broken.pdf"].error
    src = fast_app.store.get_source("default", "bad.jsonl")
    assert src.status == "partial" and "line 2" in src.error


def test_a_good_file_that_turns_corrupt_keeps_serving_its_last_version(fast_app, tmp_path):
    kb = small_kb(tmp_path / "kb")
    fast_app.ingest(kb)
    (kb / "delivery.md").write_bytes(b"\xff\xfe\x00\x00" + bytes(range(256)) * 8)
    r = fast_app.ingest(kb)
    assert r.failed == 1
    rec = fast_app.store.get_document("default", "delivery.md")
    assert rec.status == DocStatus.OK and "latest version failed" in rec.error
    assert "delivery.md" in {h.doc_id for h in fast_app.search("доставка курьер", k=10).hits}
    write(kb / "delivery.md", "# Доставка\n\nКурьер привозит заказ за 1–3 дня.\n")
    r = fast_app.ingest(kb)
    assert r.updated == 1 and fast_app.store.get_document("default", "delivery.md").error is None


def test_same_record_id_in_two_files_is_reported(fast_app, tmp_path):
    kb = small_kb(tmp_path / "kb")
    write(kb / "more.jsonl", json.dumps({"id": "faq-1", "text": "другой ответ"}, ensure_ascii=False) + "\n")
    r = fast_app.ingest(kb)
    assert any(reason == "duplicate_id" and doc == "faq-1" for doc, reason, _ in r.failures)
    assert "SMS" in fast_app.store.document_text("default", "faq-1")


def test_collections_are_separate(fast_app, tmp_path):
    kb = small_kb(tmp_path / "kb")
    fast_app.ingest(kb, "a")
    fast_app.ingest(kb / "hr", "b")
    assert fast_app.index.count("a") > fast_app.index.count("b") > 0
    assert {h.doc_id for h in fast_app.search("доставка", collection="b", k=10).hits} <= {"leave.md", "salary.md"}


def test_force_reprocesses_and_missing_path_is_an_input_error(fast_app, tmp_path):
    from spravka.core.errors import InputError

    kb = small_kb(tmp_path / "kb")
    fast_app.ingest(kb)
    r = fast_app.ingest(kb, force=True)
    assert r.updated == 6 and r.embedded == 0  # everything re-chunked, every vector from the cache
    with pytest.raises(InputError):
        fast_app.ingest(tmp_path / "nope")


def test_group_filter_is_applied_inside_search(fast_app, tmp_path):
    fast_app.ingest(small_kb(tmp_path / "kb"))
    as_employee = parse_filters(None, ["employees"])
    hits = fast_app.search("премия оклад", k=20, flt=as_employee).hits
    assert hits and all("hr" not in h.access_groups or "employees" in h.access_groups for h in hits)
    assert "hr/salary.md" not in {h.doc_id for h in hits}
    manager_hits = fast_app.search("премия оклад", k=3, flt=parse_filters(None, ["managers"])).hits
    assert manager_hits[0].doc_id == "hr/salary.md"
    public = fast_app.search("отпуск календарных дней", k=20, flt=parse_filters(None, [])).hits
    assert all(h.access_groups == ("public",) for h in public)


def test_a_scanned_pdf_is_read_by_ocr_and_becomes_searchable(fast_app, tmp_path):
    from spravka.models.ocr import Tesseract

    if not Tesseract().available():
        import os

        if os.environ.get("CI"):
            pytest.fail("tesseract is missing in CI (scripts/system-deps.sh installs it)", pytrace=False)
        pytest.skip("tesseract is not installed")
    from PIL import Image

    kb = tmp_path / "kb"
    kb.mkdir()
    scan = Path(__file__).resolve().parent.parent / "samples" / "extract" / "invoice-001-scan.png"
    Image.open(scan).save(kb / "scanned-invoice.pdf", resolution=200)  # a picture only: no text layer
    blank = kb / "blank-scan.pdf"
    Image.new("L", (800, 1100), 255).save(blank, resolution=100)
    r = fast_app.ingest(kb)
    assert r.added == 1, r.failures
    assert [(d, reason) for d, reason, _ in r.failures] == [("blank-scan.pdf", "no_text")]
    doc = fast_app.store.get_document("default", "scanned-invoice.pdf")
    assert doc.status == DocStatus.OK and doc.n_chunks >= 1
    hits = fast_app.search("счёт на оплату Техносклад ИНН", k=3).hits
    assert hits and hits[0].doc_id == "scanned-invoice.pdf" and hits[0].page == 1
    assert "7708123450" in " ".join(h.text for h in hits)


def test_new_processing_code_reprocesses_unchanged_files_without_re_embedding(fast_app, tmp_path, monkeypatch):
    from spravka.ingest import pipeline

    kb = small_kb(tmp_path / "kb")
    first = fast_app.ingest(kb)
    # An upgrade changed how documents are cleaned or chunked: the files are the same bytes, but
    # what they were indexed as is stale.
    monkeypatch.setattr(pipeline, "processing_version", lambda: "an upgraded chunker")
    fast_app.__dict__.pop("ingestor", None)
    again = fast_app.ingest(kb)
    assert (again.added, again.updated, again.unchanged) == (0, first.added, 0)
    assert again.embedded == 0  # the chunk texts came out the same: every vector from the cache
    assert fast_app.ingest(kb).unchanged == first.added  # and then it is a no-op again


def test_processing_version_hashes_the_code_that_shapes_the_index(tmp_path):
    from spravka.ingest.pipeline import code_hash, processing_version

    assert processing_version() == processing_version() and len(processing_version()) == 16
    root = tmp_path / "spravka"
    chunker = write(root / "ingest" / "chunker.py", "MAX = 120\n")
    write(root / "core" / "text" / "normalize.py", "def clean(t): return t\n")
    write(root / "answer" / "prompt.py", "PROMPT = 'a'\n")
    before = code_hash(root)
    write(root / "answer" / "prompt.py", "PROMPT = 'b'\n")
    assert code_hash(root) == before  # answering is not indexing
    chunker.write_text("MAX = 130\n", encoding="utf-8")
    assert code_hash(root) != before
