"""Loaders for every supported format, including broken files and bad encodings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spravka.core.errors import LoaderError
from spravka.ingest.loaders import load_file

SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "kb"


def write(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(data)
    return path


def test_markdown_front_matter_headings_and_inline_markup(tmp_path):
    p = write(tmp_path / "a.md", "---\ntitle: Возвраты\ndepartment: customers\ndate: 2025-03-01\n---\n"
              "# Правила возврата\n\nВступление с [ссылкой](http://x.ru) и **жирным**.\n\n"
              "## Сроки\n\n- 30 дней\n- 14 дней для уценки\n\n### Исключения\n\nТекст.\n\n"
              "| Товар | Срок |\n|---|---|\n| Чайник | 30 |\n")
    fmt, res = load_file(p)
    doc = res.docs[0]
    assert fmt == "markdown"
    assert doc.title == "Возвраты"  # front matter wins over the H1
    assert doc.metadata["department"] == "customers"
    headings = [s.heading for s in doc.sections]
    assert headings == ["", "Сроки", "Сроки › Исключения"]
    assert "ссылкой" in doc.sections[0].text and "http" not in doc.sections[0].text and "**" not in doc.sections[0].text
    assert "- 30 дней" in doc.sections[1].text
    assert "Чайник | 30" in doc.sections[2].text and "---" not in doc.sections[2].text


def test_html_keeps_article_and_drops_furniture(tmp_path):
    p = write(tmp_path / "a.html", """<html><head><title>Обмен товаров</title><script>var x=1;</script></head>
<body><nav><a href="/">Главная</a> | <a href="/catalog">Каталог</a></nav>
<main><h1>Обмен</h1><p>Обменять товар можно в течение 14 дней.</p>
<h2>Как обменять</h2><ul><li>Заполните заявление</li><li>Принесите чек</li></ul>
<table><tr><th>Товар</th><th>Срок</th></tr><tr><td>Утюг</td><td>14</td></tr></table></main>
<div class="cookie-banner">Мы используем cookie</div>
<footer>© 2025 Домотека. Все права защищены.</footer></body></html>""")
    fmt, res = load_file(p)
    doc = res.docs[0]
    text = "\n".join(s.text for s in doc.sections)
    assert fmt == "html" and doc.title == "Обмен товаров"
    assert "14 дней" in text and "- Принесите чек" in text and "Утюг | 14" in text
    for junk in ("Главная", "var x", "cookie", "©"):
        assert junk not in text
    assert [s.heading for s in doc.sections] == ["", "Как обменять"]


def test_pdf_text_layer_by_page():
    fmt, res = load_file(SAMPLES / "customers" / "price-list.pdf")
    doc = res.docs[0]
    assert fmt == "pdf" and res.info["pages"] == len(doc.sections) >= 1
    assert doc.sections[0].page == 1
    assert "DT-" in "\n".join(s.text for s in doc.sections)  # article numbers survive extraction


def test_corrupt_and_truncated_pdf_are_refused_with_a_reason(tmp_path):
    garbage = write(tmp_path / "garbage.pdf", b"%PDF-1.7\n" + bytes(range(256)) * 20)
    with pytest.raises(LoaderError) as e:
        load_file(garbage)
    assert e.value.reason in ("corrupt", "no_text")
    good = (SAMPLES / "customers" / "price-list.pdf").read_bytes()
    truncated = write(tmp_path / "cut.pdf", good[: len(good) // 3])
    with pytest.raises(LoaderError) as e:
        load_file(truncated)
    assert e.value.reason in ("corrupt", "no_text")
    not_pdf = write(tmp_path / "fake.pdf", "это просто текст, а не PDF")
    with pytest.raises(LoaderError):
        load_file(not_pdf)


def test_encrypted_and_scanned_pdfs(tmp_path):
    from pypdf import PdfReader, PdfWriter

    w = PdfWriter()
    for page in PdfReader(SAMPLES / "customers" / "price-list.pdf").pages:
        w.add_page(page)
    w.encrypt(user_password="secret", algorithm="RC4-128")
    with open(tmp_path / "locked.pdf", "wb") as f:
        w.write(f)
    with pytest.raises(LoaderError) as e:
        load_file(tmp_path / "locked.pdf")
    assert e.value.reason == "encrypted"

    blank = PdfWriter()
    blank.add_blank_page(width=595, height=842)
    with open(tmp_path / "scan.pdf", "wb") as f:
        blank.write(f)
    with pytest.raises(LoaderError) as e:
        load_file(tmp_path / "scan.pdf")
    assert e.value.reason == "no_text" and "OCR" in str(e.value)


def test_docx_headings_paragraphs_and_tables(tmp_path):
    import docx

    d = docx.Document()
    d.core_properties.title = "Удалённая работа"
    d.add_heading("Удалённая работа", level=1)
    d.add_paragraph("Сотрудник может работать из дома до 2 дней в неделю.")
    d.add_heading("Оборудование", level=2)
    d.add_paragraph("Ноутбук выдаёт ИТ-отдел.")
    t = d.add_table(rows=2, cols=2)
    t.cell(0, 0).text, t.cell(0, 1).text = "Позиция", "Компенсация"
    t.cell(1, 0).text, t.cell(1, 1).text = "Интернет", "1000 ₽"
    d.save(tmp_path / "remote.docx")
    fmt, res = load_file(tmp_path / "remote.docx")
    doc = res.docs[0]
    assert fmt == "docx" and doc.title == "Удалённая работа"
    assert [s.heading for s in doc.sections] == ["", "Оборудование"]
    assert "Интернет | 1000 ₽" in doc.sections[1].text


def test_corrupt_docx(tmp_path):
    with pytest.raises(LoaderError) as e:
        load_file(write(tmp_path / "broken.docx", b"PK\x03\x04 this is not a real zip"))
    assert e.value.reason == "corrupt"


def test_jsonl_records_with_a_bad_line_that_fails_alone(tmp_path):
    lines = [
        json.dumps({"id": "faq-1", "title": "Как вернуть?", "text": "В течение 30 дней.", "category": "возврат"},
                   ensure_ascii=False),
        "{not json",
        json.dumps({"id": "faq-2", "text": ""}),
        json.dumps({"text": "без id"}),
        json.dumps({"id": "faq-3", "question": "Доставка?", "answer": "1–3 дня."}, ensure_ascii=False),
        json.dumps({"id": "faq-1", "text": "повтор"}),
    ]
    fmt, res = load_file(write(tmp_path / "faq.jsonl", "\n".join(lines) + "\n"))
    assert fmt == "jsonl"
    assert [d.id for d in res.docs] == ["faq-1", "faq-3"]
    assert res.docs[0].title == "Как вернуть?" and res.docs[0].metadata == {"category": "возврат"}
    assert res.docs[1].title == "Доставка?"
    reasons = sorted(r for _, r, _ in res.failures)
    assert reasons == ["bad_record", "bad_record", "bad_record", "duplicate_id"]
    assert any("line 2" in m for _, _, m in res.failures)


def test_csv_table_and_csv_records(tmp_path):
    fmt, res = load_file(write(tmp_path / "zones.csv", "Зона;Срок;Цена\nМосква;1 день;299\nСибирь;5 дней;699\n"))
    assert fmt == "csv" and len(res.docs) == 1
    assert "Зона: Сибирь; Срок: 5 дней; Цена: 699." in res.docs[0].sections[0].text
    _, res = load_file(write(tmp_path / "faq.csv", "id,question,answer,topic\n1,Как оплатить?,Картой или СБП,оплата\n"))
    assert res.docs[0].id == "1" and res.docs[0].title == "Как оплатить?" and res.docs[0].metadata == {"topic": "оплата"}


def test_legacy_encodings_are_detected(tmp_path):
    text = "Правила возврата товара: срок возврата составляет тридцать календарных дней с момента покупки."
    for enc in ("cp1251", "koi8-r"):
        fmt, res = load_file(write(tmp_path / f"{enc}.txt", (text + "\n") .encode(enc) * 3))
        assert res.docs[0].sections[0].text.startswith("Правила возврата")
        assert res.info["encoding"].replace("_", "-").lower() in (enc, "windows-1251", "koi8_r", "koi8-r")


def test_binary_garbage_with_a_text_extension_is_an_encoding_error(tmp_path):
    import random

    rnd = random.Random(1)
    with pytest.raises(LoaderError) as e:
        load_file(write(tmp_path / "x.txt", bytes(rnd.randrange(256) for _ in range(5000))))
    assert e.value.reason == "encoding"


def test_empty_unsupported_and_too_large(tmp_path):
    with pytest.raises(LoaderError) as e:
        load_file(write(tmp_path / "empty.md", ""))
    assert e.value.reason == "empty"
    with pytest.raises(LoaderError) as e:
        load_file(write(tmp_path / "blank.md", "---\ntitle: x\n---\n\n   \n"))
    assert e.value.reason == "empty"
    with pytest.raises(LoaderError) as e:
        load_file(write(tmp_path / "image.png", b"\x89PNG...."))
    assert e.value.reason == "unsupported"
    with pytest.raises(LoaderError) as e:
        load_file(write(tmp_path / "big.txt", "слово " * 1000), max_bytes=1000)
    assert e.value.reason == "too_large"


def test_invalid_front_matter_is_a_clear_error(tmp_path):
    with pytest.raises(LoaderError) as e:
        load_file(write(tmp_path / "bad.md", "---\ntitle: [unclosed\n---\nтекст"))
    assert e.value.reason == "metadata"
