"""Cleaning, query normalisation, sentences and Russian morphology."""

from spravka.core.text.lemmas import analyze, lemma
from spravka.core.text.normalize import cache_key_text, clean_text, normalize_query
from spravka.core.text.sentences import split_sentences


def test_clean_text_drops_invisible_characters_and_boilerplate():
    raw = "Возврат\u200b товара\u00a0\u00a0возможен.\r\n\n\n\nСтраница 3 из 10\nСрок — 30 дней.\ufeff"
    assert clean_text(raw) == "Возврат товара возможен.\n\nСрок — 30 дней."


def test_words_typed_in_two_look_alike_scripts_are_put_into_one():
    # a Latin «c» in a Russian word, a Cyrillic «А» and «е» in English ones: each matched nothing
    assert clean_text("Где найти cтудию? Приложение для Аndroid, Embеd-плеер") == \
        "Где найти студию? Приложение для Android, Embed-плеер"
    assert normalize_query("Здравствуйте! как зайти в cтудию") == "как зайти в студию"
    for kept in ("Правилhttps://rutube.ru", "iPhone, Wi-Fi, IPv4-адрес, 4G", "Бobа", "ТЕКСТ XO"):
        assert clean_text(kept) == kept  # other letters of both scripts, or no mix: left as typed


def test_clean_text_dehyphenates_pdf_line_breaks_only_when_asked():
    assert clean_text("информа-\nция", dehyphenate=True) == "информация"
    assert clean_text("информа-\nция") == "информа-\nция"


def test_normalize_query_strips_urls_greetings_and_zero_width_runs():
    q = "Здравствуйте! Добрый день, почему удалили ролик https://rutube.ru/video/123 ? \u200c \u200c \u200c"
    assert normalize_query(q) == "почему удалили ролик ?"
    # a question that is only a greeting stays as it is rather than becoming empty
    assert normalize_query("Здравствуйте!") == "Здравствуйте!"


def test_cache_key_is_case_and_punctuation_insensitive():
    assert cache_key_text("Как вернуть товар?") == cache_key_text("  как  вернуть ТОВАР ")
    assert cache_key_text("Ёлка") == cache_key_text("елка")


def test_lemmas_fold_russian_inflection_and_english_stems():
    assert lemma("монетизацию") == "монетизация"
    assert lemma("отключается") == "отключаться"
    assert lemma("returns") == lemma("returning") == "return"
    terms = analyze("Все пишут, что монетизация отключается сама собой, у меня тоже так будет?")
    assert "монетизация" in terms and "отключаться" in terms
    assert "что" not in terms and "у" not in terms  # stop words


def test_same_lemmas_for_question_and_document_forms():
    assert set(analyze("возвраты товаров")) == set(analyze("возврат товара"))


def test_sentences_respect_abbreviations_and_line_breaks():
    text = "Срок возврата — 30 дн. с момента покупки. Т. е. до 1 мая.\n- пункт списка без точки\n- второй пункт"
    spans = split_sentences(text)
    parts = [text[s:e] for s, e in spans]
    assert parts[-2:] == ["- пункт списка без точки", "- второй пункт"]
    assert all(text[s:e].strip() == text[s:e] for s, e in spans)
    assert len(parts) >= 3


def test_a_semicolon_does_not_end_a_sentence():
    # razdel cuts at «; » before a capital letter; a table row (a CSV line) must stay one piece
    row = "Зона: 1; Территория: Москва в пределах МКАД; Курьер до 10 кг (₽): 290; Срок: 1–2 дня."
    text = f"{row}\nЗона: 2; Территория: Химки; Курьер до 10 кг (₽): 390.\nДа. Нет; Может быть. Конец!"
    parts = [text[s:e] for s, e in split_sentences(text)]
    assert parts == [row, "Зона: 2; Территория: Химки; Курьер до 10 кг (₽): 390.", "Да.", "Нет; Может быть.", "Конец!"]


def test_a_table_row_is_one_sentence():
    text = "Время | Что сделать | Где\n10:00 | Получить пропуск. Постоянный — через 2 дня. | 1-й этаж\nКонец. Да."
    parts = [text[s:e] for s, e in split_sentences(text)]
    assert parts == ["Время | Что сделать | Где", "10:00 | Получить пропуск. Постоянный — через 2 дня. | 1-й этаж",
                     "Конец.", "Да."]
