"""Build the sample documents for structured extraction (fictional companies, valid requisites).

    .venv/bin/python samples/extract/build.py

* ``invoice-001.pdf``: a «Счёт на оплату» with a text layer (reportlab, DejaVu fonts);
* ``invoice-001-scan.png``: the same page rendered at 200 dpi, greyed and slightly rotated: a scan,
  so only OCR can read it;
* ``invoice-002-bad.pdf``: an invoice whose items do not add up to its total and whose buyer INN
  fails its check digits: the checks must send it to a person;
* ``contract-001.md``: a short supply contract as text.

The true records are the golden set ``samples/golden/extract.jsonl`` (``spravka eval extract`` and
the tests read it).
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")


def inn10(prefix9: str) -> str:
    w = [2, 4, 10, 3, 5, 9, 4, 6, 8]
    return prefix9 + str(sum(a * int(b) for a, b in zip(w, prefix9, strict=True)) % 11 % 10)


def account_with_key(bik: str, acc: str, corr: bool = False) -> str:
    """Set the control digit (position 9) of a 20-digit account for this BIK."""
    head = ("0" + bik[4:6]) if corr else bik[-3:]
    for k in range(10):
        a = acc[:8] + str(k) + acc[9:]
        s = head + a
        if sum((int(c) * (7, 1, 3)[i % 3]) % 10 for i, c in enumerate(s)) % 10 == 0:
            return a
    raise ValueError("no key")


BIK = "044525987"
SELLER = {"name": "ООО «Техносклад»", "inn": inn10("770812345"), "kpp": "770801001",
          "account": account_with_key(BIK, "40702810000000012345"),
          "corr": account_with_key(BIK, "30101810000000000987", corr=True)}
BUYER = {"name": "АО «Домотека»", "inn": inn10("502700123")}

INVOICES = {
    "invoice-001": {
        "number": "ТС-1482", "date": ("2026-03-05", "5 марта 2026 г."),
        "items": [("Блендер Домотека Home BL-300", 4, 4990.00), ("Чайник электрический KT-17", 10, 1890.50),
                  ("Доставка до склада покупателя", 1, 2500.00)],
        "buyer_inn": BUYER["inn"],
    },
    "invoice-002-bad": {
        "number": "ТС-1490", "date": ("2026-03-12", "12 марта 2026 г."),
        "items": [("Утюг Домотека Home IR-2", 6, 3200.00), ("Гладильная доска GB-1", 6, 2750.00)],
        "buyer_inn": BUYER["inn"][:-1] + str((int(BUYER["inn"][-1]) + 1) % 10),  # a wrong check digit
        "total_override": 36400.00,  # the items add up to 35 700,00
    },
}


def money(x: float) -> str:
    return f"{x:,.2f}".replace(",", " ").replace(".", ",")


def invoice_pdf(name: str, spec: dict) -> dict:
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    pdfmetrics.registerFont(TTFont("DejaVuSans", str(FONT_DIR / "DejaVuSans.ttf")))
    pdfmetrics.registerFont(TTFont("DejaVuSans-Bold", str(FONT_DIR / "DejaVuSans-Bold.ttf")))
    body = ParagraphStyle("b", fontName="DejaVuSans", fontSize=10, leading=13)
    bold = ParagraphStyle("h", fontName="DejaVuSans-Bold", fontSize=14, leading=18, spaceAfter=6)
    items = [(n, q, p, round(q * p, 2)) for n, q, p in spec["items"]]
    net = round(sum(a for *_, a in items), 2)
    total = spec.get("total_override", net)
    vat = round(total * 20 / 120, 2)
    story = [
        Paragraph(f"Поставщик: {SELLER['name']}, ИНН {SELLER['inn']}, КПП {SELLER['kpp']}", body),
        Paragraph(f"Банк получателя: АО «Банк Примерный», г. Москва, БИК {BIK}", body),
        Paragraph(f"Р/с {SELLER['account']}, к/с {SELLER['corr']}", body),
        Spacer(1, 6 * mm),
        Paragraph(f"Счёт на оплату № {spec['number']} от {spec['date'][1]}", bold),
        Paragraph(f"Покупатель: {BUYER['name']}, ИНН {spec['buyer_inn']}", body),
        Spacer(1, 4 * mm),
    ]
    rows = [["№", "Товары (работы, услуги)", "Кол-во", "Цена", "Сумма"]]
    rows += [[str(i + 1), n, str(q), money(p), money(a)] for i, (n, q, p, a) in enumerate(items)]
    table = Table(rows, colWidths=[10 * mm, 85 * mm, 18 * mm, 28 * mm, 30 * mm])
    table.setStyle(TableStyle([("FONT", (0, 0), (-1, -1), "DejaVuSans", 9),
                               ("FONT", (0, 0), (-1, 0), "DejaVuSans-Bold", 9),
                               ("GRID", (0, 0), (-1, -1), 0.5, colors.black),
                               ("ALIGN", (2, 1), (-1, -1), "RIGHT")]))
    story += [table, Spacer(1, 4 * mm),
              Paragraph(f"Итого: {money(total)} руб.", body),
              Paragraph(f"В том числе НДС (20%): {money(vat)} руб.", body),
              Paragraph(f"Всего к оплате: {money(total)} руб.", body),
              Spacer(1, 8 * mm),
              Paragraph("Руководитель ______________ Сидоров П. А.     Бухгалтер ______________ Орлова Е. В.", body)]
    SimpleDocTemplate(str(HERE / f"{name}.pdf"), pagesize=A4, invariant=1, title=f"Счёт {spec['number']}",
                      leftMargin=18 * mm, rightMargin=18 * mm, topMargin=18 * mm).build(story)
    return {"number": spec["number"], "date": spec["date"][0], "seller_name": SELLER["name"],
            "seller_inn": SELLER["inn"], "seller_kpp": SELLER["kpp"], "buyer_name": BUYER["name"],
            "buyer_inn": spec["buyer_inn"], "bank_bik": BIK, "account": SELLER["account"],
            "corr_account": SELLER["corr"], "vat_rate": 20.0, "vat_amount": vat, "total": total,
            "items": [{"name": n, "quantity": q, "price": p, "amount": a} for n, q, p, a in items]}


def scan(pdf: Path, png: Path) -> None:
    import pypdfium2 as pdfium
    from PIL import ImageFilter, ImageOps

    doc = pdfium.PdfDocument(str(pdf))
    img = doc[0].render(scale=200 / 72).to_pil().convert("L")
    doc.close()
    img = ImageOps.autocontrast(img.rotate(0.7, expand=True, fillcolor=255).filter(ImageFilter.GaussianBlur(0.6)))
    img.save(png, optimize=True)


CONTRACT = """# Договор поставки № 17/2026

г. Москва, 20 января 2026 г.

Общество с ограниченной ответственностью «Техносклад» (ИНН {seller_inn}), именуемое в дальнейшем
«Поставщик», в лице генерального директора Сидорова П. А., и акционерное общество «Домотека»
(ИНН {buyer_inn}), именуемое в дальнейшем «Покупатель», в лице директора по закупкам Ивановой М. С.,
заключили настоящий договор о нижеследующем.

## 1. Предмет договора

Поставщик обязуется поставлять Покупателю бытовую технику для кухни партиями по заявкам
Покупателя, а Покупатель обязуется принимать и оплачивать её.

## 2. Цена и порядок расчётов

Общая цена договора составляет 2 400 000,00 (два миллиона четыреста тысяч) рублей, в том числе НДС 20%.
Покупатель оплачивает каждую партию в течение 10 банковских дней с даты поставки.

## 3. Срок действия

Договор вступает в силу с даты подписания и действует до 31 декабря 2026 г.
"""


def main() -> None:
    expected = {}
    for name, spec in INVOICES.items():
        expected[f"{name}.pdf"] = {"schema": "invoice", "data": invoice_pdf(name, spec)}
    scan(HERE / "invoice-001.pdf", HERE / "invoice-001-scan.png")
    expected["invoice-001-scan.png"] = {"schema": "invoice", "data": expected["invoice-001.pdf"]["data"]}
    (HERE / "contract-001.md").write_text(CONTRACT.format(seller_inn=SELLER["inn"], buyer_inn=BUYER["inn"]),
                                          encoding="utf-8")
    expected["contract-001.md"] = {"schema": "contract", "data": {
        "number": "17/2026", "date": "2026-01-20", "city": "Москва",
        "party_1_name": "Общество с ограниченной ответственностью «Техносклад»", "party_1_inn": SELLER["inn"],
        "party_2_name": "акционерное общество «Домотека»", "party_2_inn": BUYER["inn"],
        "amount": 2400000.0, "vat_included": True, "valid_until": "2026-12-31"}}
    lines = [json.dumps({"file": f"../extract/{name}", "schema": v["schema"], "expected": v["data"]}, ensure_ascii=False)
             for name, v in expected.items()]
    (HERE.parent / "golden" / "extract.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(sorted(p.name for p in HERE.iterdir() if p.suffix != ".py")))


if __name__ == "__main__":
    main()
