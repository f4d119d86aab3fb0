"""Structured extraction: schemas, the checks (grounding, control digits, arithmetic), reading
text layers and scans (real tesseract), and the whole path with the REAL local model (0.5B):
a clean receipt is accepted, a flawed invoice goes to a person once, the person's decision is
delivered, and a dead LLM server fails a document clearly without losing the batch.

The sample documents are in ``samples/extract`` (built by its ``build.py``: fictional companies
with valid requisites); their true records are the golden set ``samples/golden/extract.jsonl``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import bearer as h
from helpers import closed_port

from spravka.core.errors import InputError, LoaderError, NotFoundError
from spravka.extract import load_schema
from spravka.extract.checks import (
    Document,
    account_ok,
    check_record,
    corr_account_ok,
    inn_ok,
    normalise,
    parse_date,
)
from spravka.models.ocr import Tesseract

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples" / "extract"
GOLDEN = ROOT / "samples" / "golden" / "extract.jsonl"
EXPECTED = {Path(c["file"]).name: {"schema": c["schema"], "data": c["expected"]}
            for c in map(json.loads, GOLDEN.read_text(encoding="utf-8").splitlines())}


def need_tesseract() -> None:
    if not Tesseract().available():
        if os.environ.get("CI"):
            pytest.fail("tesseract is missing in CI (scripts/system-deps.sh installs it)", pytrace=False)
        pytest.skip("tesseract is not installed (apt-get install tesseract-ocr tesseract-ocr-rus)")


# ---- checks -------------------------------------------------------------------------------------------
def test_russian_requisites_are_checked_by_their_control_digits():
    assert inn_ok("7707083893")  # a public organisation's INN
    assert not inn_ok("7707083894") and not inn_ok("770708389") and not inn_ok("77070838AB")
    inv = EXPECTED["invoice-001.pdf"]["data"]
    assert inn_ok(inv["seller_inn"]) and inn_ok(inv["buyer_inn"])
    assert not inn_ok(EXPECTED["invoice-002-bad.pdf"]["data"]["buyer_inn"])  # the sample's wrong check digit
    assert inn_ok("500100732259") and not inn_ok("500100732258")  # 12 digits: two check digits
    bik = inv["bank_bik"]
    assert account_ok(inv["account"], bik) and corr_account_ok(inv["corr_account"], bik)
    wrong = inv["account"][:-1] + str((int(inv["account"][-1]) + 1) % 10)
    assert not account_ok(wrong, bik) and account_ok(wrong, None)  # without the BIK only the length counts
    assert corr_account_ok("30101810400000000225", "044525225")  # a public bank's pair
    assert not corr_account_ok("40702810400000000225", "044525225")


def test_grounding_finds_values_in_any_usual_spelling_and_flags_invented_ones():
    doc = Document("Счёт № ТС-1482 от 5 марта 2026 г.\nПоставщик: ООО «Техносклад»\n"
                   "2 Чайник электрический КТ-17 10 1 890,50 18 905,00\nИтого: 41 365,00 руб.\n"
                   "В том числе НДС (20%): 6 894,17 руб.\nАдрес: г. Москва,\nул. Лесная, д. 5")
    for n in (41365, 41365.0, 1890.5, 18905, 6894.17, 10):
        assert doc.has_number(n), n
    for n in (689417, 413650, 1890.05, 999):
        assert not doc.has_number(n), n
    assert doc.has_date(parse_date("2026-03-05")) and doc.has_date(parse_date("05.03.2026"))
    assert not doc.has_date(parse_date("2026-05-03"))
    assert doc.has_string("ООО \"Техносклад\"") and doc.has_string("г. Москва, ул. Лесная, д. 5")  # quotes, line breaks
    assert not doc.has_string("ООО «Ромашка»") and not doc.has_string("Поставка")
    assert parse_date("5 мая 2025") == parse_date("2025-05-05") and parse_date("вчера") is None


def test_a_string_the_model_copied_with_slips_is_snapped_to_the_documents_own_words():
    from spravka.extract.checks import snap_record

    doc = Document("ООО «Техносклад»\nИНН 7708123450\nАдрес: 115088, г. Москва,\nул. Угрешская, д. 2, стр. 15\n"
                   "Тел. +7 495 123-45-67\nКАССОВЫЙ ЧЕК № 12\nИТОГО 1 250,00")
    # commas added and dropped, a line break, words run together: the run of source words it copied
    assert doc.snap("115088, г. Москва, ул. Угрешская д. 2, стр.15") == "115088, г. Москва, ул. Угрешская, д. 2, стр. 15"
    assert doc.snap("ул. Лесная, д. 5") is None and doc.snap("МСК") is None  # not there; too little to go on
    assert doc.snap("москва") == "Москва"  # the document's spelling, without the comma after it
    schema = load_schema("receipt")
    record = {"company": "ООО Техносклад", "address": "115088, г. Москва, ул. Угрешская д. 2, стр. 15",
              "date": "2026-03-05", "total": 1250.0}
    snapped, changed = snap_record(schema, record, doc)
    assert snapped["address"] == "115088, г. Москва, ул. Угрешская, д. 2, стр. 15"
    assert snapped["company"] == "ООО Техносклад"  # already in the document (quotes aside): kept as written
    assert snapped["date"] == "2026-03-05" and snapped["total"] == 1250.0  # only strings are snapped
    assert changed == {"address": record["address"]}  # what the model wrote, for the result's `snapped`
    far, _ = snap_record(schema, {**record, "address": "г. Санкт-Петербург, Невский пр., 1"}, doc)
    assert far["address"] == "г. Санкт-Петербург, Невский пр., 1"  # not a copy of anything: left for the checks

    invoice = load_schema("invoice")
    lines = Document("Счёт № ТС-1482\n1 Чайник электрический КТ-17 10 1 890,50 18 905,00")
    got = {"number": "ТС-1482", "items": [{"name": "чайник электрический КТ 17", "quantity": 10, "price": 1890.5}]}
    fixed, changed = snap_record(invoice, got, lines)
    assert fixed["items"][0] == {"name": "Чайник электрический КТ-17", "quantity": 10, "price": 1890.5}
    assert changed == {"items[0].name": "чайник электрический КТ 17"}  # what the result reports


def test_a_record_is_normalised_then_checked_for_everything_a_person_must_see():
    schema = load_schema("invoice")
    good = dict(EXPECTED["invoice-001.pdf"]["data"])
    doc = Document(_pdf_text("invoice-001.pdf"))
    data, issues = normalise(schema, {**good, "date": "05.03.2026", "seller_inn": "7708 123450"})
    assert issues == [] and data["date"] == "2026-03-05" and data["seller_inn"] == "7708123450"
    assert check_record(schema, data, doc) == []

    bad = {**good, "number": None, "buyer_inn": "5027001234", "total": 41000.0, "vat_amount": 6000.0,
           "items": [{**good["items"][0], "amount": 19000.0}, *good["items"][1:]]}
    got = {(i.field, i.kind) for i in check_record(schema, normalise(schema, bad)[0], doc)}
    assert got == {("number", "missing"), ("buyer_inn", "invalid"), ("buyer_inn", "not_in_document"),
                   ("total", "not_in_document"),
                   ("vat_amount", "not_in_document"), ("items[0].amount", "not_in_document"),
                   ("items[0].amount", "inconsistent"), ("total", "inconsistent"), ("vat_amount", "inconsistent")}
    assert normalise(schema, {**good, "date": "не указана"})[1][0].kind == "invalid"


def test_issue_messages_are_in_the_schemas_language():
    doc = Document("ООО «Техносклад», ИНН 7708123450. Итого 1 250,00. Receipt total 12.50")
    invoice, receipt = load_schema("invoice"), load_schema("receipt")
    ru = {i.field: i.message for i in check_record(invoice, {"seller_inn": "7708123459", "total": 990.0}, doc)}
    assert ru["seller_inn"] == "«7708123459» не проходит проверку ИНН (контрольные цифры)"
    assert ru["total"] == "числа 990.0 нет в документе" and ru["number"] == "обязательное поле не найдено"
    en = {i.field: i.message for i in check_record(receipt, {"company": "ACME", "total": 99.0}, doc)}
    assert en["total"] == "the number 99.0 is not in the document" and en["date"] == "required, not found"
    assert normalise(invoice, {"date": "когда-нибудь"})[1][0].message == "«когда-нибудь» — не дата"
    assert invoice.spec.lang == "ru" and receipt.spec.lang == "en"


def _pdf_text(name: str) -> str:
    from spravka.core.settings import ExtractSettings
    from spravka.extract.service import Extractor

    ex = Extractor(lambda: None, None, None, ExtractSettings(), log_event=lambda *a: None)  # type: ignore[arg-type]
    return ex.read(SAMPLES / name)[0]


def test_schemas_load_and_bad_ones_are_refused_clearly(tmp_path):
    for name in ("invoice", "contract", "receipt"):
        s = load_schema(name)
        assert s.model.model_validate({}).model_dump()  # every field may be null: "not in the document"
    with pytest.raises(NotFoundError, match="built-in: contract, invoice, receipt"):
        load_schema("waybill")
    custom = tmp_path / "waybill.yaml"
    custom.write_text("name: waybill\nfields:\n  number: {type: string, required: true}\n"
                      "  lines: {type: list, fields: {sku: {type: string}, qty: {type: integer}}}\n", encoding="utf-8")
    s = load_schema(custom)
    assert s.parse({"number": "Н-1", "lines": [{"sku": "A1", "qty": 2}]}) == {
        "number": "Н-1", "lines": [{"sku": "A1", "qty": 2}]}
    with pytest.raises(InputError, match="does not fit schema 'waybill'"):
        s.parse({"lines": [{"qty": "много"}]})
    for body, msg in (("name: x\nfields: {}\n", "at least 1"), ("name: x\nfields:\n  a: {type: money}\n", "fields.a.type"),
                      ("name: x\nfields:\n  a: {type: list}\n", "needs the fields"), ("- just a list\n", "a mapping"),
                      ("name: x\nfields: [unclosed\n", "not valid YAML")):
        custom.write_text(body, encoding="utf-8")
        with pytest.raises(InputError, match=msg):
            load_schema(custom)


# ---- reading ---------------------------------------------------------------------------------------------
def test_text_layers_are_read_directly_and_scans_by_ocr(tmp_path):
    from spravka.core.settings import ExtractSettings
    from spravka.extract.service import Extractor

    ex = Extractor(lambda: None, None, None, ExtractSettings(), log_event=lambda *a: None)  # type: ignore[arg-type]
    text, how = ex.read(SAMPLES / "invoice-001.pdf")
    assert how == "text" and "ТС-1482" in text and "41 365,00" in text
    assert ex.read(SAMPLES / "contract-001.md")[1] == "text"
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4\n1 0 obj <<>> garbage")
    with pytest.raises(LoaderError) as e:
        ex.read(tmp_path / "broken.pdf")
    assert e.value.reason in ("corrupt", "no_text", "empty")
    (tmp_path / "empty.pdf").write_bytes(b"")
    with pytest.raises(LoaderError, match="empty"):
        ex.read(tmp_path / "empty.pdf")

    need_tesseract()
    text, how = ex.read(SAMPLES / "invoice-001-scan.png")
    assert how == "ocr"
    doc = Document(text)
    data = EXPECTED["invoice-001-scan.png"]["data"]
    for key in ("seller_inn", "buyer_inn", "bank_bik", "account", "corr_account"):
        assert doc.has_string(data[key]), (key, text)
    assert doc.has_number(data["total"]) and doc.has_number(data["vat_amount"])
    # a PDF that is only a picture (no text layer) goes through OCR too
    from PIL import Image

    Image.open(SAMPLES / "invoice-001-scan.png").save(tmp_path / "scan.pdf", resolution=200)
    text, how = ex.read(tmp_path / "scan.pdf")
    assert how == "ocr" and Document(text).has_number(data["total"])


# ---- the review queue, for a record made elsewhere (no model) --------------------------------------------
def test_a_record_from_elsewhere_is_verified_queued_once_approved_and_delivered(tmp_path):
    from spravka.app import Spravka
    from spravka.core.settings import Settings

    app = Spravka(Settings(home=tmp_path, embedder={"provider": "use"},
                           extract={"deliver_to": "webhook:http://127.0.0.1:9/erp"}))
    try:
        text = app.extractor.read(SAMPLES / "invoice-001.pdf")[0]
        good = EXPECTED["invoice-001.pdf"]["data"]
        ok = app.extractor.verify(text, "invoice", good, source="invoice-001.pdf")
        assert ok.status == "ok" and ok.issues == [] and ok.review_id is None
        assert [m.payload["data"]["total"] for m in app.outbox.list()] == [good["total"]]

        typo = {**good, "seller_inn": "7708123459", "total": "41 356,00"}  # a typed-in record with two slips
        r = app.extractor.verify(text, "invoice", {**typo, "total": 41356.0}, source="invoice-001.pdf")
        assert r.status == "review" and {(i.field, i.kind) for i in r.issues} >= {
            ("seller_inn", "invalid"), ("total", "not_in_document")}
        again = app.extractor.verify(text, "invoice", {**typo, "total": 41356.0}, source="invoice-001.pdf")
        assert again.review_id == r.review_id and len(app.extractor.pending()) == 1
        with pytest.raises(InputError, match="does not fit"):
            app.extractor.verify(text, "invoice", {"total": "сорок тысяч"})
        app.extractor.approve(r.review_id, good, "olga")
        assert app.extractor.pending() == [] and len(app.outbox.list()) == 1  # the same document: delivered once
        with pytest.raises(NotFoundError):
            app.extractor.approve("nope", None, "olga")
    finally:
        app.close()


# ---- the whole path, with the real local model -----------------------------------------------------------
RECEIPT = ("ООО «РОМАШКА»\nг. Казань, ул. Баумана, д. 12\nКассовый чек № 0457\nДата 14.02.2026 18:32\n"
           "Хлеб бородинский 1 x 65,00 = 65,00\nМолоко 3,2% 2 x 89,90 = 179,80\nИТОГ =244,80\n")


def _app(home: Path, base_url: str, **extract):
    from spravka.app import Spravka
    from spravka.core.settings import Settings

    return Spravka(Settings(home=home, embedder={"provider": "use"},
                            llm={"provider": "llamacpp", "base_url": base_url, "timeout_s": 120},
                            extract={"deliver_to": "webhook:http://127.0.0.1:9/erp", **extract}))


@pytest.mark.llm
def test_a_clean_receipt_is_accepted_and_delivered(tmp_path, llm_server):
    app = _app(tmp_path, llm_server.base_url)
    try:
        r = app.extractor.extract_text(RECEIPT, "receipt", source="чек-0457.txt")
        assert r.status == "ok", r.to_dict()
        assert r.data == {"company": "ООО «РОМАШКА»", "date": "2026-02-14", "address": "г. Казань, ул. Баумана, д. 12",
                          "total": 244.8}
        assert r.review_id is None and app.extractor.pending() == []
        sent = app.outbox.list()
        assert len(sent) == 1 and sent[0].target == "webhook:http://127.0.0.1:9/erp"
        assert sent[0].payload["data"] == r.data and sent[0].payload["reviewed_by"] is None
        app.extractor.extract_text(RECEIPT, "receipt", source="чек-0457.txt")  # the same document again
        assert len(app.outbox.list()) == 1  # delivered once per document and schema
        ev = list(app.store.events("extraction"))
        assert ev and ev[0]["status"] == "ok" and "244" not in json.dumps(ev[0], ensure_ascii=False)  # no values
    finally:
        app.close()


@pytest.mark.llm
def test_a_flawed_invoice_goes_to_a_person_once_and_the_decision_is_delivered(tmp_path, llm_server):
    app = _app(tmp_path, llm_server.base_url)
    try:
        first = app.extractor.extract_file(SAMPLES / "invoice-002-bad.pdf", "invoice")
        assert first.status == "review" and first.review_id and first.text_method == "text"
        assert first.issues  # the items do not add up to the total, and the buyer's INN fails its check
        again = app.extractor.extract_file(SAMPLES / "invoice-002-bad.pdf", "invoice")
        assert again.review_id == first.review_id and len(app.extractor.pending()) == 1
        assert app.outbox.list() == []  # nothing leaves before a person decides

        with pytest.raises(InputError, match="does not fit schema"):
            app.extractor.approve(first.review_id, {"total": "дорого"}, "olga")
        fixed = {k: v for k, v in EXPECTED["invoice-002-bad.pdf"]["data"].items()}
        fixed["buyer_inn"] = EXPECTED["invoice-001.pdf"]["data"]["buyer_inn"]  # the person knows the right one
        item = app.extractor.approve(first.review_id, fixed, "olga")
        left = {(i["field"], i["kind"]) for i in item.resolution["issues_left"]}
        assert ("total", "inconsistent") in left and ("buyer_inn", "invalid") not in left
        assert app.extractor.pending() == []
        sent = app.outbox.list()
        assert len(sent) == 1 and sent[0].payload["reviewed_by"] == "olga"
        assert sent[0].payload["data"]["buyer_inn"] == fixed["buyer_inn"]
        after = app.extractor.extract_file(SAMPLES / "invoice-002-bad.pdf", "invoice")
        assert after.status == "approved" and after.data["buyer_inn"] == fixed["buyer_inn"]
        assert len(app.outbox.list()) == 1
    finally:
        app.close()


def test_a_dead_llm_server_fails_each_document_clearly_and_a_rerun_is_safe(tmp_path):
    docs = tmp_path / "in"
    docs.mkdir()
    shutil.copy(SAMPLES / "invoice-001.pdf", docs)
    (docs / "notes.md").write_text("Счёт № 5 от 01.02.2026, итого 100,00 руб.", encoding="utf-8")
    env = {**os.environ, "SPRAVKA_HOME": str(tmp_path / "home"), "SPRAVKA_LLM__PROVIDER": "llamacpp",
           "SPRAVKA_LLM__BASE_URL": f"http://127.0.0.1:{closed_port()}/v1", "SPRAVKA_LLM__TIMEOUT_S": "5",
           "COLUMNS": "400"}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "spravka", "extract", *args], capture_output=True, text=True,
                              timeout=300, env=env, cwd=ROOT)

    p = run(str(docs), "-s", "invoice", "-o", str(tmp_path / "out"), "--json")
    assert p.returncode == 1, p.stderr
    results = json.loads(p.stdout)
    assert [r["status"] for r in results] == ["failed", "failed"]
    assert all("127.0.0.1" in r["error"] for r in results), results  # says which server is down
    assert sorted(x.name for x in (tmp_path / "out").iterdir()) == ["invoice-001.pdf.json", "notes.md.json"]

    from spravka.app import Spravka
    from spravka.core.settings import Settings

    app = Spravka(Settings(home=tmp_path / "home"))
    try:
        assert app.inbox.list() == [] and app.outbox.list() == []  # nothing half-made
    finally:
        app.close()
    p = run(str(docs / "nope.pdf"), "-s", "invoice")
    assert p.returncode == 2 and "not found" in p.stderr
    p = run(str(docs), "-s", "waybill")
    assert p.returncode == 2 and "built-in" in p.stderr


@pytest.mark.llm
def test_the_http_api_extracts_uploads_and_text_and_takes_approvals(tmp_path, llm_server):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from spravka.api import create_app

    app = _app(tmp_path, llm_server.base_url)
    editor, _ = app.keys.create("erp-robot", "editor")
    user, _ = app.keys.create("widget", "user")
    admin, _ = app.keys.create("olga", "admin")
    try:
        with TestClient(create_app(app, resume_jobs=False)) as client:
            names = [s["name"] for s in client.get("/v1/extract/schemas", headers=h(editor)).json()["schemas"]]
            assert names == ["contract", "invoice", "receipt"]
            assert client.post("/v1/extract/text", json={"text": RECEIPT, "schema": "receipt"}, headers=h(user)
                               ).status_code == 403
            r = client.post("/v1/extract/text", json={"text": RECEIPT, "schema": "receipt", "source": "чек.txt"},
                            headers=h(editor))
            assert r.status_code == 200 and r.json()["status"] == "ok" and r.json()["data"]["total"] == 244.8
            bad = client.post("/v1/extract/text", json={"text": RECEIPT, "schema": "../../etc/passwd"}, headers=h(editor))
            assert bad.status_code == 400 and "unknown schema" in bad.json()["error"]["message"]

            with (SAMPLES / "invoice-002-bad.pdf").open("rb") as f:
                r = client.post("/v1/extract?schema=invoice", files={"file": ("счёт.pdf", f, "application/pdf")},
                                headers=h(editor))
            body = r.json()
            assert r.status_code == 200 and body["status"] == "review" and body["source"] == "счёт.pdf", body
            approve = f"/v1/extract/reviews/{body['review_id']}/approve"
            assert client.post(approve, json={}, headers=h(editor)).status_code == 403  # reviewing is the inbox's
            done = client.post(approve, json={}, headers=h(admin))
            assert done.status_code == 200 and done.json()["state"] == "done"
            assert done.json()["resolution"]["by"] == "olga" and done.json()["resolution"]["corrected"] is False
            r = client.post("/v1/extract", files={"file": ("x.exe", b"MZ\x00\x01", "application/octet-stream")},
                            headers=h(editor))
            assert r.status_code in (400, 415, 422) and r.json()["error"]
    finally:
        app.close()


# ---- evaluation on a golden set ------------------------------------------------------------------------
def test_field_matching_ignores_spelling_but_not_values():
    from spravka.evaluate.extraction import field_match

    f = load_schema("invoice").spec.fields
    assert field_match(f["total"], 41365.0, "41 365,00") and field_match(f["total"], 3.9, "RM 3.90")
    assert not field_match(f["total"], 41356.0, "41 365,00") and not field_match(f["total"], None, "1")
    assert field_match(f["date"], "2026-03-05", "05.03.2026") and not field_match(f["date"], "2026-05-03", "05.03.2026")
    assert field_match(f["seller_name"], "ооо «техносклад» ", "ООО «Техносклад»")
    assert field_match(f["buyer_inn"], None, None) and not field_match(f["buyer_inn"], "1", None)
    rows = [{"name": "Блендер", "quantity": 4, "amount": 19960.0}]
    assert field_match(f["items"], [{"name": "БЛЕНДЕР", "quantity": 4.0, "amount": 19960.0, "price": 1.0}], rows)
    assert not field_match(f["items"], [], rows) and not field_match(f["items"], rows * 2, rows)


def test_eval_extract_scores_records_and_how_many_wrong_ones_the_checks_catch(tmp_path):
    from spravka.app import Spravka
    from spravka.core.settings import Settings
    from spravka.evaluate.extraction import evaluate_extraction, load_cases

    app = Spravka(Settings(home=tmp_path, embedder={"provider": "use"}))
    try:
        cases = load_cases(GOLDEN)
        assert [c.file.name for c in cases] == ["invoice-001.pdf", "invoice-002-bad.pdf", "invoice-001-scan.png",
                                                "contract-001.md"]
        # stand-in "models" that answer with fixed records, through the real checks (Extractor.verify)
        answers = {
            "invoice-001.pdf": EXPECTED["invoice-001.pdf"]["data"],  # right
            "invoice-002-bad.pdf": EXPECTED["invoice-002-bad.pdf"]["data"],  # right, but the document is flawed
            "invoice-001-scan.png": {**EXPECTED["invoice-001.pdf"]["data"], "total": 41356.0},  # wrong, not in it
            "contract-001.md": {**EXPECTED["contract-001.md"]["data"], "subject": "бытовую технику для кухни",
                                "party_1_name": "акционерное общество «Домотека»"},  # wrong, but in the text
        }
        text = {c.file.name: (app.extractor.read(c.file)[0] if c.file.suffix != ".png"
                              else app.extractor.read(SAMPLES / "invoice-001.pdf")[0]) for c in cases}
        summary, results = evaluate_extraction(
            cases, lambda path, schema: app.extractor.verify(text[path.name], schema, answers[path.name],
                                                             source=path.name, review=False))
        assert [r.right for r in results] == [True, True, False, False]
        assert summary["records_right"] == 0.5 and summary["fields"]["total"] == 0.6667  # 2 of the 3 invoices
        assert summary["wrong_caught"] == 0.5, [(r.file, r.status, r.issues) for r in results]  # an invented total is caught, a wrong name in the text is not
        assert summary["right_flagged"] == 0.5, [(r.file, r.status, r.issues) for r in results]  # the flawed invoice goes to a person although it was read right
        assert app.inbox.list() == [] and app.outbox.list() == []  # evaluation queues and sends nothing
    finally:
        app.close()
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"file": "x.pdf"}\n', encoding="utf-8")
    with pytest.raises(InputError, match="needs file, schema and expected"):
        load_cases(bad)


def test_the_cli_lists_schemas_and_the_review_queue_and_approves_a_correction(tmp_path):
    from spravka.app import Spravka
    from spravka.core.settings import Settings

    home = tmp_path / "home"
    app = Spravka(Settings(home=home, embedder={"provider": "use"}))
    try:
        good = EXPECTED["invoice-001.pdf"]["data"]
        text = app.extractor.read(SAMPLES / "invoice-001.pdf")[0]
        item_id = app.extractor.verify(text, "invoice", {**good, "total": 1.0}, source="invoice-001.pdf").review_id
    finally:
        app.close()
    env = {**os.environ, "SPRAVKA_HOME": str(home), "COLUMNS": "400"}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "spravka", "extract", *args], capture_output=True, text=True,
                              timeout=300, env=env, cwd=ROOT)

    assert [s["name"] for s in json.loads(run("schemas", "--json").stdout)] == ["contract", "invoice", "receipt"]
    assert "invoice" in run("schemas").stdout
    waiting = json.loads(run("pending", "--json").stdout)
    assert [w["id"] for w in waiting] == [item_id] and waiting[0]["issues"][0]["field"] == "total"
    assert "total" in run("pending").stdout
    fixed = tmp_path / "fixed.json"
    fixed.write_text(json.dumps(good, ensure_ascii=False), encoding="utf-8")
    p = run("approve", item_id, "--data", str(fixed), "--as", "olga", "--json")
    assert p.returncode == 0, p.stderr
    done = json.loads(p.stdout)
    assert done["state"] == "done" and done["resolution"]["data"]["total"] == good["total"]
    assert done["resolution"]["by"] == "olga" and done["resolution"]["issues_left"] == []
    assert json.loads(run("pending", "--json").stdout) == []
    assert run("approve", "nope").returncode == 2
