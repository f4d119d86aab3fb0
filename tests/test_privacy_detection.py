"""Detection quality of the privacy guard on generated Russian text (fixed seed, real detectors).

The identifiers are generated here with check-digit code written independently of
``spravka.privacy.checksums``, so a wrong algorithm there cannot agree with itself.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from spravka.privacy import Finding, NerDetector, PiiKind, PrivacyGuard

SEED = 20240515

# --------------------------------------------------------------------------- check digits (oracle)


def _snils(rng: random.Random) -> str:
    while True:
        body = [rng.randint(0, 9) for _ in range(9)]
        if int("".join(map(str, body))) > 1001998:
            break
    s = sum(d * (9 - i) for i, d in enumerate(body))
    check = s if s < 100 else (0 if s in (100, 101) else s % 101 % 100)
    return "".join(map(str, body)) + f"{check:02d}"


def _inn10(rng: random.Random) -> str:
    d = [rng.randint(0, 9) for _ in range(9)]
    d[0] = rng.randint(1, 9)
    w = [2, 4, 10, 3, 5, 9, 4, 6, 8]
    d.append(sum(a * b for a, b in zip(d, w, strict=True)) % 11 % 10)
    return "".join(map(str, d))


def _inn12(rng: random.Random) -> str:
    d = [rng.randint(0, 9) for _ in range(10)]
    d[0] = rng.randint(1, 9)
    w1 = [7, 2, 4, 10, 3, 5, 9, 4, 6, 8]
    d.append(sum(a * b for a, b in zip(d, w1, strict=True)) % 11 % 10)
    w2 = [3, 7, 2, 4, 10, 3, 5, 9, 4, 6, 8]
    d.append(sum(a * b for a, b in zip(d, w2, strict=True)) % 11 % 10)
    return "".join(map(str, d))


def _ogrn(rng: random.Random) -> str:
    body = rng.choice("15") + "".join(str(rng.randint(0, 9)) for _ in range(11))
    return body + str(int(body) % 11 % 10)


def _ogrnip(rng: random.Random) -> str:
    body = "3" + "".join(str(rng.randint(0, 9)) for _ in range(13))
    return body + str(int(body) % 13 % 10)


def _luhn_complete(body: str) -> str:
    total = 0
    for i, c in enumerate(reversed(body)):
        n = int(c)
        if i % 2 == 0:  # these positions are doubled once the check digit is appended
            n = n * 2 - 9 if n * 2 > 9 else n * 2
        total += n
    return body + str((10 - total % 10) % 10)


def _card(rng: random.Random) -> str:
    prefix, length = rng.choice(
        [
            ("4", 16),
            ("51", 16),
            ("55", 16),
            ("2200", 16),
            ("2202", 16),
            ("62", 16),
            ("4", 13),
            ("37", 15),
            ("4", 19),
        ]
    )
    body = prefix + "".join(str(rng.randint(0, 9)) for _ in range(length - len(prefix) - 1))
    return _luhn_complete(body)


def _account_with_key(rng: random.Random, bic: str) -> str:
    while True:
        acc = (
            rng.choice(["40817", "40702", "40802", "42301"])
            + "810"
            + "0"
            + "".join(str(rng.randint(0, 9)) for _ in range(11))
        )
        for key in range(10):
            cand = acc[:8] + str(key) + acc[9:]
            digits = [int(c) for c in bic[-3:] + cand]
            if sum(d * w for d, w in zip(digits, ([7, 1, 3] * 8)[:23], strict=True)) % 10 == 0:
                return cand


def _passport(rng: random.Random) -> tuple[str, str]:
    return f"{rng.randint(1, 99):02d}{rng.randint(0, 24):02d}", f"{rng.randint(100000, 999999)}"


def _group(s: str, sizes: list[int], sep: str) -> str:
    out, pos = [], 0
    for n in sizes:
        out.append(s[pos : pos + n])
        pos += n
    if pos < len(s):
        out.append(s[pos:])
    return sep.join(out)


# --------------------------------------------------------------------------- items in running text


@dataclass
class Item:
    kind: PiiKind
    value: str  # exactly as it appears in the text
    sentence: str  # contains «{}» where the value goes
    needs_ner: bool = False


def _identifier_items(rng: random.Random) -> list[Item]:
    items: list[Item] = []
    for i in range(12):
        s = _snils(rng)
        fmt = [
            f"{s[:3]}-{s[3:6]}-{s[6:9]} {s[9:]}",
            f"{s[:3]}-{s[3:6]}-{s[6:9]}-{s[9:]}",
            f"{s[:3]} {s[3:6]} {s[6:9]} {s[9:]}",
            s,
        ][i % 4]
        tpl = [
            "Для оформления пособия укажите СНИЛС {}, он есть в личном кабинете.",
            "Страховой номер сотрудника: {}.",
            "В анкете стоит номер {} — проверьте, пожалуйста.",
            "СНИЛС {} указан в заявлении на вычет.",
        ][i % 4]
        items.append(Item(PiiKind.SNILS, fmt, tpl))
    for i in range(12):
        v = _inn10(rng) if i % 2 else _inn12(rng)
        tpl = [
            "ИНН {} указан в договоре поставки.",
            "Проверьте контрагента по ИНН: {}.",
            "Реквизиты получателя: ИНН {}, банк тот же.",
            "Физлицо с ИНН {} подало декларацию вовремя.",
            "Мой налоговый номер {}, подскажите, есть ли задолженность?",
            "Контрагент {} прислал акт сверки.",
        ][i % 6]
        items.append(Item(PiiKind.INN, v, tpl))
    for i in range(12):
        v = _ogrn(rng)
        tpl = [
            "ОГРН {} внесён в ЕГРЮЛ.",
            "Организация (ОГРН: {}) зарегистрирована давно.",
            "Основной государственный регистрационный номер {} подтверждён.",
        ][i % 3]
        items.append(Item(PiiKind.OGRN, v, tpl))
    for i in range(12):
        v = _ogrnip(rng)
        tpl = [
            "ИП Сидоров, ОГРНИП {}, работает по упрощёнке.",
            "ОГРНИП: {} — проверьте статус.",
            "Запись {} в реестре предпринимателей актуальна.",
        ][i % 3]
        items.append(Item(PiiKind.OGRNIP, v, tpl))
    for i in range(14):
        c = _card(rng)
        if len(c) == 16:
            fmt = [_group(c, [4, 4, 4, 4], " "), _group(c, [4, 4, 4, 4], "-"), c][i % 3]
        elif len(c) == 15:
            fmt = _group(c, [4, 6, 5], " ")
        else:
            fmt = c
        tpl = [
            "Списание прошло с карты {}, но заказ не оплачен.",
            "Верните деньги на {}, пожалуйста.",
            "Номер банковской карты: {}.",
            "Оплатил картой Мир {} вчера вечером.",
            "Вот номер, куда переводить: {}.",
        ][i % 5]
        items.append(Item(PiiKind.CARD, fmt, tpl))
    for i in range(12):
        series, number = _passport(rng)
        fmt, tpl = [
            (f"{series[:2]} {series[2:]} {number}", "Паспорт {} выдан отделом УФМС."),
            (f"{series} {number}", "Данные паспорта: {}, выдан в 2015 году."),
            (f"{series}{number}", "Прошу проверить паспорт {} по базе недействительных."),
            (f"{series} {number}", "Серия и номер {} указаны в анкете."),
            (f"{series[:2]} {series[2:]} {number}", "Клиент прислал документ {} с опечаткой в дате."),
            (f"{series} № {number}", "Удостоверение личности: {}."),
        ][i % 6]
        items.append(Item(PiiKind.PASSPORT, fmt, tpl))
    for i in range(12):
        bic = rng.choice(["044525225", "044030653", "045004641", "046577964"])
        acc = _account_with_key(rng, bic)
        if i % 3 == 0:
            items.append(Item(PiiKind.ACCOUNT, acc, "Р/с {} в ПАО Сбербанк, БИК " + bic + "."))
        elif i % 3 == 1:
            items.append(Item(PiiKind.ACCOUNT, acc, "Переведите зарплату на счёт {}, пожалуйста."))
        else:
            items.append(Item(PiiKind.ACCOUNT, acc, "Номер {} привязан к вкладу."))
    for i in range(14):
        code = rng.choice(["912", "903", "495", "812", "343", "800", "926"])
        a, b, c = rng.randint(100, 999), rng.randint(10, 99), rng.randint(10, 99)
        fmt = [
            f"+7 ({code}) {a}-{b}-{c}",
            f"8 {code} {a} {b} {c}",
            f"8-{code}-{a}-{b}-{c}",
            f"+7{code}{a}{b}{c}",
            f"8{code}{a}{b}{c}",
            f"8 ({code}) {a}{b}{c}",
            f"+7 {code} {a}-{b}{c}",
        ][i % 7]
        tpl = [
            "Перезвоните мне по номеру {}.",
            "Тел.: {}, звонить после 18:00.",
            "Мой номер {} — пишите в WhatsApp.",
            "Связь с клиентом: {}.",
        ][i % 4]
        items.append(Item(PiiKind.PHONE, fmt, tpl))
    names = ["ivanov", "petrova.anna", "s.kuznetsov", "mari_smirnova", "oleg+shop", "a.volkov84"]
    domains = ["mail.ru", "yandex.ru", "gmail.com", "company.co.uk", "почта.рф", "bk.ru"]
    for i in range(12):
        v = f"{rng.choice(names)}{rng.randint(1, 99)}@{domains[i % len(domains)]}"
        tpl = [
            "Ответ пришлите на {}.",
            "Почта для связи: {}, отвечаю быстро.",
            "Написал на {} ещё в понедельник.",
        ][i % 3]
        items.append(Item(PiiKind.EMAIL, v, tpl))
    return items


_MALE = [
    ("Пётр", "Сергеевич", "Иванов"),
    ("Алексей", "Викторович", "Кузнецов"),
    ("Дмитрий", "Андреевич", "Соколов"),
    ("Игорь", "Николаевич", "Лебедев"),
    ("Сергей", "Павлович", "Морозов"),
    ("Михаил", "Ильич", "Волков"),
    ("Андрей", "Юрьевич", "Новиков"),
    ("Николай", "Петрович", "Фёдоров"),
]
_FEMALE = [
    ("Анна", "Сергеевна", "Смирнова"),
    ("Мария", "Игоревна", "Попова"),
    ("Елена", "Владимировна", "Васильева"),
    ("Ольга", "Алексеевна", "Павлова"),
    ("Татьяна", "Николаевна", "Семёнова"),
    ("Наталья", "Дмитриевна", "Голубева"),
]


def _name_items(rng: random.Random) -> list[Item]:
    people = _MALE + _FEMALE
    rng.shuffle(people)
    items: list[Item] = []
    shapes: list[tuple[Callable[[tuple[str, str, str]], str], str, bool]] = [
        (lambda p: f"{p[2]} {p[0]} {p[1]}", "Заявление подал(а) {} в прошлый вторник.", False),
        (lambda p: f"{p[0]} {p[1]}", "Здравствуйте, {}! Ваш запрос принят.", False),
        (lambda p: f"{p[2]} {p[0][0]}. {p[1][0]}.", "Ответственный за приёмку — {}.", False),
        (lambda p: f"{p[0][0]}.{p[1][0]}. {p[2]}", "Приказ подписал {} сегодня утром.", False),
        (lambda p: f"{p[0]} {p[2]}", "Вчера {} звонила по поводу возврата.", True),
        (lambda p: f"{p[0]} {p[2]}", "Передайте документы: получатель {}.", False),
    ]
    for i in range(24):
        shape, tpl, ner = shapes[i % len(shapes)]
        items.append(Item(PiiKind.PERSON, shape(people[i % len(people)]), tpl, needs_ner=ner))
    return items


_CITIES = ["Москва", "Казань", "Самара", "Екатеринбург", "Новосибирск", "Тверь", "Пермь", "Воронеж"]
_STREETS = [
    "ул. Ленина",
    "ул. Малая Садовая",
    "пр-т Мира",
    "Ленинский пр-т",
    "ул. 8 Марта",
    "пер. Чернышевского",
    "Кутузовский проспект",
    "ул. Николая Островского",
    "наб. Обводного Канала",
    "б-р Гагарина",
    "Тверская ул.",
    "ш. Энтузиастов",
]


def _address_items(rng: random.Random) -> list[Item]:
    items: list[Item] = []
    for i in range(24):
        city, street = _CITIES[i % len(_CITIES)], _STREETS[i % len(_STREETS)]
        h, f = rng.randint(1, 150), rng.randint(1, 300)
        value = [
            f"г. {city}, {street}, д. {h}, кв. {f}",
            f"{street}, д. {h}",
            f"{rng.randint(100000, 999999)}, г. {city}, {street}, д. {h}, корп. 2, кв. {f}",
            f"г. {city}, {street} {h}",
            f"{street}, дом {h}, офис {f}",
            f"Московская обл., г. Химки, {street}, д. {h}/{rng.randint(1, 9)}",
        ][i % 6]
        tpl = [
            "Проживает по адресу: {}.",
            "Доставка на {} к десяти утра.",
            "Зарегистрирован: {}, но живёт в другом месте.",
            "Посылку вернули отправителю ({}).",
        ][i % 4]
        items.append(Item(PiiKind.ADDRESS, value, tpl))
    return items


_FILLER = [
    "Заказ № 4815162342 от 12.03.2024 оформлен на сумму 15 990 руб.",
    "Срок доставки — от 3 до 5 рабочих дней.",
    "Скидка 15% действует до 31 декабря 2024 г.",
    "Артикул 4607001234567, партия 2024-03.",
    "Остаток на складе: 1 250 шт.",
]


@dataclass
class Doc:
    text: str
    spans: list[tuple[Item, int, int]]


def _documents(items: list[Item], rng: random.Random, per_doc: int = 6) -> list[Doc]:
    items = items[:]
    rng.shuffle(items)
    docs: list[Doc] = []
    for k in range(0, len(items), per_doc):
        text, spans = "", []
        for item in items[k : k + per_doc]:
            if rng.random() < 0.5:
                text += rng.choice(_FILLER) + " "
            head, tail = item.sentence.split("{}")
            start = len(text) + len(head)
            text += head + item.value + tail
            spans.append((item, start, start + len(item.value)))
            text += "\n" if rng.random() < 0.3 else " "
        docs.append(Doc(text.strip(), spans))
    return docs


@pytest.fixture(scope="module")
def guard() -> PrivacyGuard:
    return PrivacyGuard(policy="mask")


@pytest.fixture(scope="module")
def corpus() -> list[Doc]:
    rng = random.Random(SEED)
    items = _identifier_items(rng) + _name_items(rng) + _address_items(rng)
    return _documents(items, rng)


def _covering(findings: list[Finding], kind: PiiKind, start: int, end: int) -> bool:
    return any(f.kind == kind and f.start <= start and f.end >= end for f in findings)


def test_corpus_size(corpus: list[Doc]) -> None:
    kinds = [item.kind for doc in corpus for item, _, _ in doc.spans]
    identifiers = [k for k in kinds if k not in (PiiKind.PERSON, PiiKind.ADDRESS)]
    assert len(identifiers) >= 100
    assert kinds.count(PiiKind.PERSON) >= 20
    assert kinds.count(PiiKind.ADDRESS) >= 20


def test_every_generated_item_is_caught(guard: PrivacyGuard, corpus: list[Doc]) -> None:
    ner = guard.ner_available
    missed = []
    for doc in corpus:
        found = guard.find(doc.text)
        for item, start, end in doc.spans:
            if item.needs_ner and not ner:
                continue
            if not _covering(found, item.kind, start, end):
                got = [
                    (f.kind.value, doc.text[f.start : f.end])
                    for f in found
                    if f.start < end and start < f.end
                ]
                missed.append((item.kind.value, item.value, item.sentence, got))
    assert not missed, "\n".join(map(str, missed))


def test_masked_text_holds_no_value(guard: PrivacyGuard, corpus: list[Doc]) -> None:
    for doc in corpus:
        masked, _ = guard.protect([{"role": "user", "content": doc.text}])
        for item, _, _ in doc.spans:
            if item.needs_ner and not guard.ner_available:
                continue
            assert item.value not in masked[0]["content"]


def test_mask_restore_round_trip(guard: PrivacyGuard, corpus: list[Doc]) -> None:
    for doc in corpus:
        masked, vault = guard.protect(
            [{"role": "system", "content": "Отвечай кратко."}, {"role": "user", "content": doc.text}]
        )
        assert masked[1]["content"] != doc.text
        assert guard.restore(masked[1]["content"], vault) == doc.text


def test_names_without_ner_use_patterns() -> None:
    """Patronymics, initials and labels are caught by rules alone."""
    g = PrivacyGuard(ner=False)
    rng = random.Random(SEED)
    for doc in _documents(_name_items(rng), rng):
        found = g.find(doc.text)
        for item, start, end in doc.spans:
            if not item.needs_ner:
                assert _covering(found, PiiKind.PERSON, start, end), item.value


# --------------------------------------------------------------------------- invalid checksums


def _break_last_digit(value: str) -> str:
    return value[:-1] + str((int(value[-1]) + 1) % 10)


@pytest.mark.parametrize("n", range(40))
def test_invalid_checksums_are_not_reported(guard: PrivacyGuard, n: int) -> None:
    rng = random.Random(SEED + n)
    s = _break_last_digit(_snils(rng))
    inn10 = _break_last_digit(_inn10(rng))
    inn12 = _break_last_digit(_inn12(rng))
    card = _break_last_digit(_card(rng))
    cases = [
        (PiiKind.SNILS, f"СНИЛС {s[:3]}-{s[3:6]}-{s[6:9]} {s[9:]}"),
        (PiiKind.SNILS, f"СНИЛС {s}"),
        (PiiKind.INN, f"ИНН {inn10}"),
        (PiiKind.INN, f"ИНН {inn12}"),
        (PiiKind.CARD, f"Карта {_group(card, [4, 4, 4, 4], ' ') if len(card) == 16 else card}"),
        (PiiKind.CARD, f"Номер карты {card}"),
    ]
    for kind, text in cases:
        kinds = {f.kind for f in guard.find(text)}
        assert kind not in kinds, text


def test_known_real_world_identifiers(guard: PrivacyGuard) -> None:
    text = (
        "ПАО Сбербанк: ИНН 7707083893, ОГРН 1027700132195, корр. счёт 30101810400000000225, БИК 044525225. "
        "ИП: ОГРНИП 304500116000157, ИНН 500100732259. СНИЛС 112-233-445 95. Карта 4111 1111 1111 1111."
    )
    kinds = [f.kind for f in guard.find(text)]
    assert kinds == [
        PiiKind.INN,
        PiiKind.OGRN,
        PiiKind.ACCOUNT,
        PiiKind.OGRNIP,
        PiiKind.INN,
        PiiKind.SNILS,
        PiiKind.CARD,
    ]


# --------------------------------------------------------------------------- clean business text

CLEAN_TEXT = """\
Коммерческое предложение на поставку офисной мебели

Уважаемые коллеги! Направляем вам обновлённый прайс-лист на 2024 год. Цены указаны в рублях с учётом НДС 20%.
Стол письменный (арт. 4607001234567) стоит 15 990 руб., кресло офисное (артикул 5012345678900) — 8 450 руб.
При заказе от 100 000 руб. предоставляется скидка 7%, а при оплате до 15.04.2024 — дополнительно ещё 3%.

Ваш заказ № 4815162342 от 12.03.2024 подтверждён, заказ № 7707083893 отгружен 14.03.2024 в 09:30.
Накладная № 1027700132195 приложена к письму. Трек-номер отправления 80089234567891.
Общая стоимость поставки составила 1 250 000,00 руб., из них доставка — 12 500 руб.
Оплата по счёту-фактуре № 15 до 31.03.2024; договор № 2024/17-П от 01.02.2024.

Гарантийный срок на мебель — 24 месяца с даты поставки. В 2023 году мы поставили более 3 500 комплектов,
а средний срок доставки по России составил 4,5 дня. Версия каталога 3.2.1 доступна на сайте компании.
Склад работает с 9:00 до 18:00 по будним дням, приёмка товара занимает от 30 минут до 2 часов.
Остатки на 01.04.2024: столы — 1 240 шт., кресла — 860 шт., шкафы — 312 шт.
Минимальная партия — 10 единиц, максимальная — 10 000 единиц в месяц.
"""


@pytest.mark.parametrize("ner", [True, False])
def test_clean_business_text_passes_untouched(ner: bool) -> None:
    g = PrivacyGuard(policy="mask", ner=ner)
    report = g.inspect(CLEAN_TEXT)
    found = [(f.kind.value, CLEAN_TEXT[f.start : f.end]) for f in g.find(CLEAN_TEXT)]
    assert report.total == 0, found
    masked, vault = g.protect([{"role": "user", "content": CLEAN_TEXT}])
    assert masked[0]["content"] == CLEAN_TEXT
    assert len(vault) == 0


def test_order_numbers_that_pass_checksums_are_not_reported(guard: PrivacyGuard) -> None:
    """A tenth of random ten-digit numbers pass the INN check; the order context must win."""
    rng = random.Random(SEED)
    for _ in range(30):
        for label in ("Заказ №", "Номер заказа:", "артикул", "Трек-номер"):
            text = f"{label} {_inn10(rng)} оформлен."
            assert guard.inspect(text).total == 0, text


def test_unlabelled_barcodes_are_not_taken_for_ogrn_or_cards(guard: PrivacyGuard) -> None:
    """EAN-13 article numbers collide with the OGRN and Luhn checks one time in ten."""
    # both are valid EAN-13 barcodes; the first also passes the OGRN check, the second Luhn
    for code in ("5012345670300", "4607001200086"):
        assert guard.inspect(f"Кресло офисное {code}, 8 450 руб.").total == 0
    assert guard.inspect("Юрлицо 1027700132195 работает с 2002 года.").counts == {PiiKind.OGRN: 1}
    assert guard.inspect("ОГРН 5012345670300").counts == {PiiKind.OGRN: 1}


def test_ner_loads_from_the_installed_package_without_network(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    if NerDetector.shared().error and "natasha" in NerDetector.shared().error:
        pytest.skip("natasha (which ships the NER weights) is not installed: pip install 'spravka[privacy]'")

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the NER model tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    detector = NerDetector()
    assert detector.available, detector.error
    assert [t for t, _, _ in detector.spans("Вчера Анна Смирнова приехала в Казань.")] == ["PER", "LOC"]
