"""A sentence that says the opposite of its source («можно» where the source says «нельзя»)."""

from __future__ import annotations

import pytest

from spravka.answer.check import check_answer
from spravka.answer.polarity import reversed_claims

APP = ("Пока в приложении Студия нельзя вести трансляции. Создать трансляцию можно в веб-версии Студии. "
       "Аналитика канала доступна в приложении для всех видео.")


@pytest.mark.parametrize("text", [
    "В приложении Студия можно вести трансляции.",
    "Создать трансляцию нельзя в веб-версии Студии.",
    "Аналитика канала недоступна в приложении для всех видео.",  # the prefix «не» against its base
    "Аналитика канала в приложении не доступна ни для каких видео.",
])
def test_a_flipped_sentence_is_named(text):
    assert reversed_claims(text, APP) == [text]


@pytest.mark.parametrize("text", [
    "В приложении Студия пока нельзя вести трансляции, зато это можно сделать на сайте.",  # the same meaning
    "Нет, вести трансляции в приложении Студия нельзя.",  # a reply particle, and the same claim
    "Да, создать трансляцию можно в веб-версии Студии.",
    "Можно ли вести трансляции в приложении Студия?",  # a question claims nothing
    "Трансляции идут без рекламы, а запись доступна сразу.",  # nothing the source says
    "Скоро в приложении появятся новые функции.",
])
def test_what_does_not_contradict_the_source_is_not_named(text):
    assert reversed_claims(text, APP) == []


def test_a_condition_and_a_bound_do_not_negate_a_claim():
    appeal = "Направьте запрос на адрес партнёров, приложив факты о канале."
    assert reversed_claims("Если вы не согласны с решением, направьте запрос на адрес партнёров, приложив факты о канале.",
                           appeal) == []
    record = "Запись трансляции также не может превышать 24 часов."
    assert reversed_claims("Запись трансляции сохраняется также до 24 часов.", record) == []
    cover = "Размер обложки канала до 10 мегабайт в формате jpeg."
    assert reversed_claims("Размер обложки канала не более 10 мегабайт в формате jpeg.", cover) == []


def test_a_bound_turned_round_is_a_flip():
    cover = "Размер обложки канала не более 10 мегабайт в формате jpeg."
    turned = "Размер обложки канала более 10 мегабайт в формате jpeg."
    assert reversed_claims(turned, cover) == [turned]
    assert reversed_claims("Вес более 10 МБ.", "Формат: jpeg или png. Вес не более 10 МБ.") == ["Вес более 10 МБ."]
    assert reversed_claims("Нужно не менее двух видео на канале.", "Нужно менее 2 видео на канале.") != []
    assert reversed_claims("Upload at least 10 videos to the channel.", "Upload at most 10 videos to the channel.") != []
    # the same bound in other words, a negation that cancels the turn, another number, a condition
    assert reversed_claims("Вес не больше 10 МБ.", "Вес не более 10 МБ.") == []
    assert reversed_claims("Обложку канала более 10 мегабайт загрузить нельзя.",
                           "Обложку канала можно загрузить не более 10 мегабайт.") == []
    assert reversed_claims("Вес более 20 МБ.", "Вес не более 10 МБ.") == []
    assert reversed_claims("Если вес более 10 МБ, сожмите обложку канала.", cover) == []


def test_a_source_that_says_both_is_not_contradicted():
    both = "Вернуть товар можно в течение 14 дней. Вернуть товар нельзя в течение 14 дней после вскрытия упаковки."
    assert reversed_claims("Вернуть товар нельзя в течение 14 дней.", both) == []


def test_english_negation():
    src = "You can return an unopened item within 14 days of delivery."
    assert reversed_claims("You can't return an unopened item within 14 days of delivery.", src)
    assert reversed_claims("You cannot return an unopened item within 14 days of delivery.", src)
    assert reversed_claims("You can return any unopened item within 14 days of delivery.", src) == []


def test_the_answer_post_check_refuses_an_answer_that_reverses_its_source():
    bad = check_answer("В приложении Студия можно вести трансляции [1].", [APP])
    assert not bad.ok and len(bad.reversed) == 1 and "можно вести трансляции" in bad.reversed[0]
    assert any(p.startswith("says the opposite of the sources") for p in bad.problems)
    good = check_answer("Вести трансляции в приложении Студия пока нельзя, только в веб-версии [1].", [APP])
    assert good.ok, good.problems
    # the question is no source: an answer may say the opposite of what the user assumed
    assert check_answer("Создать трансляцию можно в веб-версии Студии [1].", [APP],
                        question="Создать трансляцию нельзя в веб-версии Студии?").ok
