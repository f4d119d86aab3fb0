"""The answer pipeline's parts on hand-written inputs: the post-check, language, windows, tables,
reranker adapters (a real HTTP server speaking the TEI and Infinity shapes), the gate."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from spravka.answer.check import check_answer, citations_in, names_in, numbers_in
from spravka.answer.echo import has_statement, source_labels, strip_echoes
from spravka.answer.extractive import Sentence, candidate_sentences, select, table_header, table_row_text
from spravka.answer.gate import DEFAULT_GATE, GateFeatures
from spravka.answer.language import detect_language, refusal_text
from spravka.answer.prompt import is_no_answer, messages
from spravka.answer.rerank import (
    CrossEncoderReranker,
    HttpReranker,
    first_token_logprobs,
    parse_rerank_response,
    yes_probability,
)
from spravka.answer.sources import Source, parent_window
from spravka.core.errors import ConfigError, ModelError, ModelUnavailableError
from spravka.core.types import Hit

RETURNS = (
    "Товар надлежащего качества можно вернуть в течение 30 календарных дней с момента получения. "
    "Деньги возвращаются в течение 7 календарных дней после того, как возврат принят на складе. "
    "Программа «Домотека Бонус»: уровень Золотой от 100 000 ₽, кешбэк 7%. Редакция от 01.04.2023."
)
VPN = "Install DomoVPN from the Service Desk portal. Connections from outside Russia are blocked by default."


# ---- post-check --------------------------------------------------------------------------------


def test_supported_answer_passes():
    r = check_answer("Вернуть товар можно в течение 30 дней [1], деньги придут за 7 дней [1].", [RETURNS])
    assert r.ok and r.cited == [1] and not r.problems


def test_fabricated_number_is_rejected():
    r = check_answer("Вернуть товар можно в течение 45 дней [1].", [RETURNS])
    assert not r.ok and r.unsupported == ["45"]
    assert any("45" in p for p in r.problems)


def test_fabricated_amount_and_name_are_rejected():
    r = check_answer("Золотой уровень — от 150 000 ₽ [1], возврат оформляет Сбербанк [1].", [RETURNS])
    assert not r.ok and set(r.unsupported) == {"150000", "Сбербанк"}


def test_numbers_are_compared_by_value_not_by_format():
    ok = check_answer(
        "Золотой уровень начинается от 100000 ₽ и даёт 7% [1]. Редакция от 1 апреля 2023 года [1].", [RETURNS]
    )
    assert ok.ok, ok.problems
    assert "100000" in numbers_in("от 100 000 ₽") and {"1", "4", "2023"} <= numbers_in("01.04.2023")


def test_list_numbering_is_not_a_fact_and_uncited_answers_are_checked_against_all_sources():
    r = check_answer("1. Вернуть можно в течение 30 дней [1].\n2) Деньги — за 7 дней [1].", [RETURNS])
    assert r.ok, r.problems
    r = check_answer("Вернуть можно в течение 30 дней.", [VPN, RETURNS])
    assert r.problems == ["no citation"]


def test_citations_must_exist_and_be_present():
    assert check_answer("Вернуть можно в течение 30 дней.", [RETURNS]).problems[0] == "no citation"
    r = check_answer("Вернуть можно в течение 30 дней [2].", [RETURNS])
    assert not r.ok and "cites missing sources [2]" in r.problems
    assert citations_in("a [1] b [2, 3] c [1] d [4-5]") == [1, 2, 3, 4, 5]


def test_problems_are_explained_in_the_answers_language():
    r = check_answer("Вернуть можно за 45 дней [1], см. [3].", [RETURNS])
    assert r.missing == [3] and "45" in r.unsupported
    ru = r.explain("ru")
    assert ru == ["ссылки на источники, которых нет: [3]", "этого нет в указанных источниках: 45"]
    assert r.explain("en") == r.problems and r.problems[0] == "cites missing sources [3]"
    assert check_answer("Вернуть можно.", [RETURNS]).explain("ru") == ["нет ссылки на источник"]


def test_echoes_of_the_question_and_of_source_titles_are_removed():
    q = "Не пришёл чек после оплаты, где его найти?"
    labels = source_labels(["[1] Оплата — Чеки\nВсе чеки хранятся в личном кабинете.", "[2] Доставка\nКурьер звонит."])
    assert labels == ["Оплата — Чеки", "Оплата", "Чеки", "Доставка", "Доставка"]
    # the echoed question goes, its leading marker stays with the answer
    assert strip_echoes(f"[1] {q} Проверьте папку «Спам».", q, labels) == ("[1] Проверьте папку «Спам».", 1)
    # a title line gives its marker to the next line; a marker after an echo goes with it
    assert strip_echoes("[1] Оплата — Чеки\nВсе чеки хранятся в кабинете.", q, labels)[0] == \
        "[1] Все чеки хранятся в кабинете."
    assert strip_echoes("Где найти чек? [1]\nВсе чеки в кабинете [1].", q, labels)[0] == "Все чеки в кабинете [1]."
    # a yes restating the question, a clarifying question and a plain answer stay
    for kept in ("Да, чек можно найти в кабинете [1].", "Чек пришёл после оплаты [1].",
                 "Уточните номер заказа — какой способ оплаты вы выбрали? [1]"):
        assert strip_echoes(kept, q, labels) == (kept, 0), kept
    assert has_statement("Да, можно. [1]") and not has_statement("[1] [2]") and not has_statement("Где чек? [1]")


def test_a_sentence_said_again_for_another_source_is_said_once_with_both_markers():
    q = "Будет ли переплата?"
    thrice = "[1] Переплата будет 6% от суммы.\n\n[2] Переплата будет 6% от суммы.\n\n[3] Переплата будет 6% от суммы."
    assert strip_echoes(thrice, q, []) == ("[1] Переплата будет 6% от суммы. [2] [3]", 2)
    assert strip_echoes("Остаток сгорит [1]. Остаток сгорит [2].", q, []) == ("Остаток сгорит [1]. [2]", 1)
    # a repeat's marker stays with its own line's statement
    assert strip_echoes("Срок 45 дней. Это указано в документе [1].\nМожно заменить товар. Это указано в документе [2].",
                        q, []) == ("Срок 45 дней. Это указано в документе [1].\nМожно заменить товар. [2]", 1)
    assert strip_echoes("Срок 45 дней [1].\n[2] Срок 45 дней. Замену дают сразу.", q, []) == \
        ("Срок 45 дней [1].\n[2] Замену дают сразу.", 1)
    # the marker in front of an echo cites the repeat that follows it
    q2 = "Можно взять в рассрочку? Переплата будет?"
    assert strip_echoes("[1] Можно взять в рассрочку? Переплата будет 6%.\n[2] Можно взять в рассрочку? Переплата будет 6%.",
                        q2, []) == ("[1] Переплата будет 6%. [2]", 3)
    # a bare «Да.» may be said twice
    assert strip_echoes("[1] Да. Сумма спишется. [2] Да. Остаток сохранится.", q, [])[1] == 0


def test_an_answer_that_only_repeats_the_question_fails_the_check():
    q = "Сколько дней на возврат?"
    r = check_answer(f"[1] {q}", ["[1] Возвраты\n" + RETURNS], q)
    assert not r.ok and r.empty and "no answer: only the question or the sources' titles repeated" in r.problems
    assert "нет ответа: только повтор вопроса или заголовков источников" in r.explain("ru")
    ok = check_answer("Вернуть можно в течение 30 календарных дней [1].", ["[1] Возвраты\n" + RETURNS], q)
    assert ok.ok and not ok.empty


def test_facts_must_be_in_the_cited_source_not_just_any_source():
    r = check_answer("Подключайтесь через DomoVPN [1].", [RETURNS, VPN])
    assert not r.ok and r.unsupported == ["DomoVPN"]
    assert check_answer("Подключайтесь через DomoVPN [2].", [RETURNS, VPN]).ok


def test_numbers_from_the_question_are_allowed():
    q = "Мне подарили сертификат на 5000, я потратил 3200. Остаток сгорит?"
    assert check_answer("Остаток с сертификата на 5 000 ₽ не сгорает [1].", ["Остаток сохраняется."], q).ok


def test_inflected_names_match_by_lemma_or_stem():
    assert check_answer(
        "Бонусы копятся в программе «Домотека Бонус» [1], правила Домотеки простые [1].", [RETURNS]
    ).ok


def test_a_name_written_in_the_other_script_is_the_same_name_and_a_different_one_is_not():
    from spravka.answer.check import sound, unsupported_facts

    for ru, latin in (("Петров", "Petrov"), ("Юлия", "Yulia"), ("Юлия", "Iuliia"), ("Щукин", "Shchukin"),
                      ("Алексей", "Alexey"), ("Пётр", "Pyotr"), ("Пётр", "Petr"), ("Хабибуллин", "Khabibullin"),
                      ("Наталья", "Natalia"), ("Дмитрий", "Dmitry"), ("Евгений", "Yevgeny"), ("Цой", "Tsoi")):
        assert sound(ru) == sound(latin), (ru, latin)
    assert sound("Иванов") != sound("Ivan") and sound("Петров") != sound("Ivanov")
    inputs = "Клиент: Ivan Petrov, заказ 77-2051. Менеджер: Юлия Щукина."
    assert unsupported_facts("Иван Петров, ваш заказ готов. Пишет Yulia Shchukina.", inputs) == []
    assert unsupported_facts("Ивану Петрову пишет Julia Schukina.", inputs) == []  # inflected, too
    assert unsupported_facts("Уважаемый Пётр Иванов, пишет Мария.", inputs) == ["Пётр", "Иванов", "Мария"]


def test_english_answers_check_capitalised_names_only():
    assert names_in("You can use DomoVPN from Spain [1]. Kazakhstan is fine.") == ["DomoVPN", "Spain"]
    assert check_answer("Install DomoVPN from the Service Desk portal [1].", [VPN]).ok
    assert not check_answer("Install DomoVPN from the Service Desk portal in Spain [1].", [VPN]).ok


def test_model_no_answer_detection():
    assert is_no_answer("В источниках нет ответа на этот вопрос.")
    assert is_no_answer("The sources do not answer this question.")
    assert not is_no_answer("Вернуть товар можно в течение 30 дней [1].")


# ---- language, prompt --------------------------------------------------------------------------


def test_language_by_script():
    assert detect_language("Do you ship to Kazakhstan?") == "en"
    assert detect_language("как подключить VPN на macbook?") == "ru"
    assert detect_language("???") == "ru"
    assert refusal_text("en").startswith("I could not find")
    assert (
        refusal_text("ru")
        == "Не нашёл информацию по этому вопросу в базе знаний. Могу передать вопрос оператору."
    )


def _hit(text: str = RETURNS, **kw: Any) -> Hit:
    base = dict(
        chunk_id="d#0", doc_id="d", collection="c", text=text, title="Возвраты", heading="", score=1.0
    )
    return Hit(**{**base, **kw})  # type: ignore[arg-type]


def test_prompt_numbers_sources_and_asks_for_citations_in_the_question_language():
    src = [
        Source(1, _hit(), RETURNS, 0, len(RETURNS)),
        Source(2, _hit(VPN, chunk_id="v#0"), VPN, 0, len(VPN)),
    ]
    ru = messages("Как вернуть товар?", src, "ru")
    assert "[1] Возвраты" in ru[1]["content"] and "[2] Возвраты" in ru[1]["content"]
    assert "по-русски" in ru[1]["content"] and "[1]" in ru[1]["content"]
    en = messages("How do I return an item?", src, "en", problems=["no citation"])
    assert "in English" in en[1]["content"] and "no citation" in en[1]["content"]


# ---- parent windows and tables -------------------------------------------------------------------


def test_parent_window_grows_by_whole_neighbouring_chunks_within_the_budget():
    spans = [(0, 0, 100), (1, 90, 200), (2, 190, 300), (3, 290, 400)]
    hit = _hit(ord=1, start=90, end=200)
    assert parent_window(hit, spans, 1000) == (0, 400, [0, 1, 2, 3])
    assert parent_window(hit, spans, 220) == (90, 300, [1, 2])  # the next chunk first
    assert parent_window(hit, spans, 50) == (90, 200, [1])  # too small to grow: the chunk alone


def test_table_rows_find_their_header_even_when_the_chunk_starts_mid_table():
    doc = "Грейды.\n\nГрейд | Вилка\nG1 | 45 000\nG5 | 120 000\nКонец."
    pos = doc.index("G5")
    assert table_header(doc, pos) == "Грейд | Вилка"
    assert table_header(doc, doc.index("Грейд |")) == ""  # the header row itself


def test_a_quoted_table_row_is_read_with_its_header():
    assert table_row_text("Параметр | Условие", "Срок | 4, 6 или 12 месяцев") == "Срок: 4, 6 или 12 месяцев"
    assert table_row_text("| Грейд | Уровень | Вилка |", "| G5 | ведущие | 120 000 |") == \
        "G5 — Уровень: ведущие; Вилка: 120 000"
    # cells that do not match the header: both lines as they are
    assert table_row_text("Грейд | Вилка", "G5 | ведущие | 120 000") == "Грейд | Вилка: G5 | ведущие | 120 000"
    # a cell's own full stop does not run into the next header
    assert table_row_text("Время | Что сделать | Где", "10:00 | Получить пропуск. Он готов через 2 дня. | 1-й этаж") == \
        "10:00 — Что сделать: Получить пропуск. Он готов через 2 дня; Где: 1-й этаж"


def test_headings_inside_the_text_are_not_quoted_and_a_list_comes_with_its_introduction():
    text = ("1. Продолжительность отпуска\n"
            "Ежегодный основной оплачиваемый отпуск — 28 календарных дней.\n"
            "Не подлежат возврату, если товар надлежащего качества:\n"
            "- текстиль при вскрытой заводской упаковке;\n"
            "- товары для личной гигиены;\n"
            "- подарочные сертификаты.\n"
            "Порядок оформления\n"
            "Время | Что сделать | Где\n"
            "10:00 | Получить временный пропуск на ресепшене. Постоянный будет готов через 2 дня. | 1-й этаж\n"
            "Документы, которые понадобятся:")
    got = [s.text for s in candidate_sentences([_hit(text, rank=1)])]
    assert "1. Продолжительность отпуска" not in got and "Порядок оформления" not in got  # headings
    assert "Ежегодный основной оплачиваемый отпуск — 28 календарных дней." in got
    assert ("Не подлежат возврату, если товар надлежащего качества: текстиль при вскрытой заводской упаковке; "
            "товары для личной гигиены; подарочные сертификаты.") in got
    assert not any(t.startswith("Документы, которые") for t in got)  # its list is in the next chunk
    assert any(t.startswith("10:00 | Получить") and t.endswith("1-й этаж") for t in got)  # the row whole


def test_an_answer_does_not_spend_its_second_sentence_repeating_the_first():
    faq = _hit("x", chunk_id="faq#0", doc_id="faq", rank=1)
    policy = _hit("x", chunk_id="policy#3", doc_id="policy", rank=2)
    first = Sentence("Заказ хранится в пункте выдачи «Домотека» 5 календарных дней с момента поступления.",
                     faq, 0, 10, 0, score=1.0)
    same = Sentence("Заказ хранится в пункте выдачи 5 календарных дней с момента поступления.",
                    policy, 0, 10, 0, score=0.95)
    more = Sentence("Срок можно один раз бесплатно продлить ещё на 3 дня в личном кабинете.",
                    faq, 11, 20, 1, score=0.9)
    assert [s.text for s in select([first, same, more], 2)] == [first.text, more.text]
    # two different statements both stay, and a weak runner-up does not join
    weak = Sentence("Курьер звонит за час до приезда.", policy, 0, 10, 0, score=0.5)
    assert [s.text for s in select([first, weak], 2)] == [first.text]
    assert [s.text for s in select([first, more], 2)] == [first.text, more.text]


# ---- the gate -------------------------------------------------------------------------------------


def test_gate_probability_moves_the_right_way():
    base = GateFeatures(score=9.0, dense=0.88, lexical=2.4, margin=3.0, coverage=0.6, oov=0.1)
    p = DEFAULT_GATE.probability(base)
    assert 0.0 < p < 1.0
    worse = GateFeatures(score=9.0, dense=0.88, lexical=2.4, margin=3.0, coverage=0.6, oov=0.7)
    better = GateFeatures(score=9.0, dense=0.92, lexical=2.4, margin=3.0, coverage=0.9, oov=0.1)
    assert DEFAULT_GATE.probability(worse) < p < DEFAULT_GATE.probability(better)
    with_rerank = GateFeatures(**{**base.as_dict(), "rerank": 0.95})  # type: ignore[arg-type]
    assert DEFAULT_GATE.probability(with_rerank) > p


# ---- rerankers ------------------------------------------------------------------------------------


def test_yes_probability_from_top_logprobs():
    # the shape llama.cpp returned here for «Отвечает ли фрагмент на вопрос?»
    top = {"Д": -1.08, "да": -1.21, "нет": -1.34, "Н": -2.94, " нет": -5.19, "no": -5.5, "yes": -5.55}
    p = yes_probability(top)
    assert p is not None and 0.5 < p < 0.7
    assert yes_probability({"maybe": -0.1}) is None

    class Result:
        logprobs = [
            {
                "token": "да",
                "logprob": -0.1,
                "top_logprobs": [{"token": "да", "logprob": -0.1}, {"token": "нет", "logprob": -2.5}],
            }
        ]

    assert first_token_logprobs(Result()) == {"да": -0.1, "нет": -2.5}
    assert first_token_logprobs(object()) is None


def test_parse_rerank_responses_of_both_shapes():
    assert parse_rerank_response([{"index": 1, "score": 0.9}, {"index": 0, "score": 0.2}], 2) == [0.2, 0.9]
    infinity = {"results": [{"index": 0, "relevance_score": 0.7}, {"index": 1, "relevance_score": -3.0}]}
    scores = parse_rerank_response(infinity, 2)
    assert scores[0] == 0.7 and 0 < scores[1] < 0.1  # a raw logit goes through a sigmoid
    with pytest.raises(ModelError):
        parse_rerank_response({"oops": 1}, 2)


class _RerankHandler(BaseHTTPRequestHandler):
    """A rerank server: TEI shape at /tei (``texts`` → list), Infinity shape at /infinity."""

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        query = set(body["query"].lower().split())
        if self.path == "/tei":
            if "texts" not in body:
                self._send(422, {"error": "missing field `texts`"})
                return
            docs = body["texts"]
        else:
            docs = body["documents"]
        scores = [len(query & set(d.lower().split())) / max(1, len(query)) for d in docs]
        items = sorted(range(len(docs)), key=lambda i: -scores[i])
        if self.path == "/tei":
            self._send(200, [{"index": i, "score": scores[i]} for i in items])
        else:
            self._send(200, {"results": [{"index": i, "relevance_score": scores[i]} for i in items]})

    def _send(self, code: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def rerank_server() -> Iterator[str]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _RerankHandler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


@pytest.mark.parametrize("path", ["/tei", "/infinity"])
def test_http_reranker_speaks_tei_and_infinity(rerank_server: str, path: str):
    hits = [_hit("доставка по москве", chunk_id="a#0"), _hit("вернуть товар деньги", chunk_id="b#0")]
    rr = HttpReranker(rerank_server + path, model="bge-reranker")
    scores = rr.rerank("как вернуть товар", hits)
    assert len(scores) == 2 and scores[1] > scores[0] and all(0 <= s <= 1 for s in scores)
    rr.close()


def test_http_reranker_down_is_a_clear_error():
    rr = HttpReranker("http://127.0.0.1:9/rerank", timeout_s=2)
    with pytest.raises(ModelUnavailableError, match="reranker"):
        rr.rerank("вопрос", [_hit()])
    with pytest.raises(ConfigError):
        HttpReranker("localhost:8080/rerank")


def test_cross_encoder_reranker_when_installed():
    pytest.importorskip(
        "sentence_transformers", reason="the cross-encoder adapter needs sentence-transformers"
    )
    with pytest.raises(Exception):  # noqa: B017 - no hub here: loading any model fails, clearly
        CrossEncoderReranker("cross-encoder/ms-marco-MiniLM-L-6-v2")


def test_a_hits_url_is_its_url_or_source_url_metadata_and_nothing_else():
    from spravka.core.types import Hit

    def hit(**meta):
        return Hit(chunk_id="d#0", doc_id="d", collection="c", text="t", title="T", heading="", score=1.0, metadata=meta)

    assert hit(url="https://a.ru/x", source_url="https://b.ru").url == "https://a.ru/x"
    assert hit(source_url="https://b.ru").url == "https://b.ru"
    assert hit().url is None and hit(url="").url is None and hit(url=5).url is None


def test_a_sentence_that_leans_on_the_one_before_is_quoted_with_it():
    text = ("В период испытательного срока сотрудник работает в офисном формате. "
            "Исключение — сотрудники, изначально принятые на удалённую работу в других регионах.")
    got = [s.text for s in candidate_sentences([_hit(text, rank=1)])]
    assert got == ["В период испытательного срока сотрудник работает в офисном формате.", text]
    first = "Исключение — сотрудники, принятые на удалённую работу в регионах, и их руководители."
    assert [s.text for s in candidate_sentences([_hit(first, rank=1)])] == [first]  # nothing before it
    heading = "Исключения\nЭто правило не действует для сотрудников распределительного центра."
    assert [s.text for s in candidate_sentences([_hit(heading, rank=1)])] == [heading.split("\n")[1]]
