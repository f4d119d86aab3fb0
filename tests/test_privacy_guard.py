"""Policies, masking, restoring and logging of the privacy guard (real detectors, no mocks)."""

from __future__ import annotations

import logging
import random

import pytest

from spravka.core.errors import ConfigError, PrivacyError
from spravka.privacy import Finding, NerDetector, PiiKind, PrivacyGuard, Vault, resolve_overlaps

PERSONAL = (
    "Добрый день! Меня зовут Иванов Пётр Сергеевич, паспорт 45 08 123456, СНИЛС 112-233-445 95, "
    "ИНН 500100732259. Живу по адресу: г. Москва, ул. Ленина, д. 5, кв. 12. "
    "Телефон +7 (912) 345-67-89, почта ivanov.p@mail.ru. Деньги верните на карту 4111 1111 1111 1111 "
    "или на счёт 40817810099910004312. Повторяю телефон: 8 912 345 67 89."
)
VALUES = [
    "Иванов Пётр Сергеевич",
    "45 08 123456",
    "112-233-445 95",
    "500100732259",
    "ул. Ленина, д. 5, кв. 12",
    "+7 (912) 345-67-89",
    "ivanov.p@mail.ru",
    "4111 1111 1111 1111",
    "40817810099910004312",
    "8 912 345 67 89",
]
# a model directory that does not exist (not tmp_path: its numbered name could contain a fragment)
MISSING_MODEL_DIR = "/nonexistent/spravka-ner-model"
# fragments that would betray a value in a log even if reformatted
FRAGMENTS = [
    "Иванов",
    "123456",
    "112-233",
    "11223344595",
    "500100732259",
    "Ленина",
    "345-67-89",
    "ivanov",
    "4111",
    "40817810",
]


@pytest.fixture(scope="module")
def guard() -> PrivacyGuard:
    return PrivacyGuard(policy="mask")


def test_inspect_reports_kinds_and_counts(guard: PrivacyGuard) -> None:
    report = guard.inspect(PERSONAL)
    assert report.counts == {
        PiiKind.PERSON: 1,
        PiiKind.PASSPORT: 1,
        PiiKind.SNILS: 1,
        PiiKind.INN: 1,
        PiiKind.ADDRESS: 1,
        PiiKind.PHONE: 2,
        PiiKind.EMAIL: 1,
        PiiKind.CARD: 1,
        PiiKind.ACCOUNT: 1,
    }
    assert report.total == 10 and bool(report)
    assert "СНИЛС: 1" in report.summary() and "ТЕЛЕФОН: 2" in report.summary()
    assert not any(v in repr(report) for v in VALUES)


def test_mask_replaces_values_with_placeholders(guard: PrivacyGuard) -> None:
    masked, vault = guard.protect([{"role": "user", "content": PERSONAL}])
    text = masked[0]["content"]
    for value in VALUES:
        assert value not in text
    for placeholder in [
        "[ФИО_1]",
        "[ПАСПОРТ_1]",
        "[СНИЛС_1]",
        "[ИНН_1]",
        "[АДРЕС_1]",
        "[ТЕЛЕФОН_1]",
        "[EMAIL_1]",
        "[КАРТА_1]",
        "[СЧЕТ_1]",
    ]:
        assert placeholder in text
    # the same phone written twice in two formats is one placeholder
    assert text.count("[ТЕЛЕФОН_1]") == 2 and "[ТЕЛЕФОН_2]" not in text
    assert len(vault) == 9
    assert guard.restore(text, vault).count("+7 (912) 345-67-89") == 2


def test_same_value_same_placeholder_across_messages(guard: PrivacyGuard) -> None:
    messages = [
        {"role": "system", "content": "Клиент: Смирнова Анна Игоревна, тел. 8 (903) 111-22-33."},
        {
            "role": "user",
            "content": "Смирнова Анна Игоревна просит перезвонить на 8 (903) 111-22-33. Её коллега Лебедев Игорь Николаевич тоже.",
        },
    ]
    masked, vault = guard.protect(messages)
    assert masked[0]["content"] == "Клиент: [ФИО_1], тел. [ТЕЛЕФОН_1]."
    assert masked[1]["content"] == "[ФИО_1] просит перезвонить на [ТЕЛЕФОН_1]. Её коллега [ФИО_2] тоже."
    assert vault.counts() == {PiiKind.PERSON: 2, PiiKind.PHONE: 1}


def test_round_trip_of_a_model_reply(guard: PrivacyGuard) -> None:
    masked, vault = guard.protect([{"role": "user", "content": PERSONAL}])
    assert guard.restore(masked[0]["content"], vault) == PERSONAL.replace(
        "8 912 345 67 89", "+7 (912) 345-67-89"
    )
    reply = "Уважаемый [ФИО_1], возврат на [КАРТА_1] оформлен; уведомление придёт на [EMAIL_1] и [ТЕЛЕФОН_1]."
    assert guard.restore(reply, vault) == (
        "Уважаемый Иванов Пётр Сергеевич, возврат на 4111 1111 1111 1111 оформлен; "
        "уведомление придёт на ivanov.p@mail.ru и +7 (912) 345-67-89."
    )


def test_restore_tolerates_reformatted_placeholders(guard: PrivacyGuard) -> None:
    _, vault = guard.protect([{"role": "user", "content": PERSONAL}])
    reply = "ФИО_1; [фио_1]; [ ФИО 1 ]; [СЧЁТ_1]; [ФИО_7] и [НЕИЗВЕСТНО_1] не трогаем; version_1."
    assert guard.restore(reply, vault) == (
        "Иванов Пётр Сергеевич; Иванов Пётр Сергеевич; Иванов Пётр Сергеевич; 40817810099910004312; "
        "[ФИО_7] и [НЕИЗВЕСТНО_1] не трогаем; version_1."
    )


@pytest.mark.parametrize("seed", range(5))
def test_restore_stream_handles_placeholders_split_across_chunks(guard: PrivacyGuard, seed: int) -> None:
    _, vault = guard.protect([{"role": "user", "content": PERSONAL}])
    reply = "Готово, [ФИО_1]! Карта [КАРТА_1], телефон ТЕЛЕФОН_1. Конец [без закрытия"
    rng = random.Random(seed)
    chunks, pos = [], 0
    while pos < len(reply):
        n = rng.randint(1, 6)
        chunks.append(reply[pos : pos + n])
        pos += n
    assert "".join(vault.restore_stream(chunks)) == vault.restore(reply)


def test_multipart_content_and_tool_calls_are_masked_and_input_untouched(guard: PrivacyGuard) -> None:
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "СНИЛС 112-233-445 95"},
                {"type": "image_url", "image_url": {"url": "x"}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "1",
                    "type": "function",
                    "function": {"name": "find", "arguments": '{"phone": "+7 912 345-67-89"}'},
                }
            ],
        },
    ]
    original = repr(messages)
    masked, vault = guard.protect(messages)
    assert repr(messages) == original
    assert masked[0]["content"][0]["text"] == "СНИЛС [СНИЛС_1]"
    assert masked[0]["content"][1] == {"type": "image_url", "image_url": {"url": "x"}}
    assert masked[1]["tool_calls"][0]["function"]["arguments"] == '{"phone": "[ТЕЛЕФОН_1]"}'


def test_vault_reused_across_turns_keeps_placeholders(guard: PrivacyGuard) -> None:
    _, vault = guard.protect([{"role": "user", "content": "Мой телефон +7 912 345-67-89."}])
    masked, same = guard.protect(
        [{"role": "user", "content": "Почта ivanov.p@mail.ru, телефон 89123456789."}], vault
    )
    assert same is vault
    assert masked[0]["content"] == "Почта [EMAIL_1], телефон [ТЕЛЕФОН_1]."


def test_block_policy_raises_without_values() -> None:
    g = PrivacyGuard(policy="block")
    with pytest.raises(PrivacyError) as info:
        g.protect([{"role": "user", "content": PERSONAL}])
    err = info.value
    message = f"{err} {err!r} {err.message} {err.hint}"
    for fragment in FRAGMENTS + VALUES:
        assert fragment not in message
    assert "СНИЛС" in str(err) and "ТЕЛЕФОН" in str(err)
    assert err.report.counts[PiiKind.PHONE] == 2  # type: ignore[attr-defined]
    assert err.code == "privacy_blocked"


def test_block_policy_lets_clean_text_through() -> None:
    g = PrivacyGuard(policy="block")
    messages = [{"role": "user", "content": "Сколько стоит доставка заказа № 4815162342 в Казань?"}]
    masked, vault = g.protect(messages)
    assert masked == messages and len(vault) == 0


def test_allow_policy_changes_nothing_but_counts(caplog: pytest.LogCaptureFixture) -> None:
    g = PrivacyGuard(policy="allow")
    with caplog.at_level(logging.INFO, logger="spravka.privacy"):
        masked, vault = g.protect([{"role": "user", "content": PERSONAL}])
    assert masked[0]["content"] == PERSONAL and len(vault) == 0
    assert any("snils=1" in r.getMessage() for r in caplog.records)


def test_kinds_limit_what_is_masked() -> None:
    g = PrivacyGuard(kinds=["snils", PiiKind.EMAIL], ner=False)
    masked, _ = g.protect([{"role": "user", "content": PERSONAL}])
    text = masked[0]["content"]
    assert "[СНИЛС_1]" in text and "[EMAIL_1]" in text
    assert "+7 (912) 345-67-89" in text and "Иванов Пётр Сергеевич" in text


def test_bad_configuration_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        PrivacyGuard(policy="shred")
    with pytest.raises(ConfigError):
        PrivacyGuard(kinds=["snils", "blood_type"])


def test_nothing_is_ever_logged_but_kinds_and_counts(caplog: pytest.LogCaptureFixture) -> None:
    broken = NerDetector(data_dir=MISSING_MODEL_DIR)  # forces the "NER unavailable" warnings too
    guards = [PrivacyGuard(policy=p) for p in ("mask", "allow", "block")] + [PrivacyGuard(ner=broken)]
    with caplog.at_level(logging.DEBUG):
        for g in guards:
            try:
                masked, vault = g.protect([{"role": "user", "content": PERSONAL}])
                logging.getLogger("spravka.test").info("vault %r", vault)
            except PrivacyError as e:
                logging.getLogger("spravka.test").warning("blocked: %s", e)
            logging.getLogger("spravka.test").info("report %r", g.inspect(PERSONAL))
    assert caplog.records
    # message, arguments and any ``extra`` fields; not timestamps or thread ids, whose digits
    # could contain a fragment such as «4111» by chance
    standard = set(vars(logging.makeLogRecord({})))
    dumped = caplog.text + " ".join(
        f"{r.getMessage()} {r.args!r} { ({k: v for k, v in vars(r).items() if k not in standard})!r}"
        for r in caplog.records
    )
    for fragment in FRAGMENTS + VALUES:
        assert fragment not in dumped, fragment


def test_ner_unavailable_is_said_clearly_and_patterns_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broken = NerDetector(data_dir=MISSING_MODEL_DIR)
    with caplog.at_level(logging.WARNING, logger="spravka.privacy"):
        g = PrivacyGuard(ner=broken)
        report = g.inspect("Звонила Анна Смирнова, СНИЛС 112-233-445 95, Пётр Сергеевич в копии.")
    assert not g.ner_available and not report.ner_available
    assert report.ner_error and "missing" in report.ner_error
    assert report.counts == {PiiKind.SNILS: 1, PiiKind.PERSON: 1}  # «Пётр Сергеевич» by pattern
    assert any("NER model unavailable" in r.getMessage() for r in caplog.records)
    with pytest.raises(ConfigError):
        PrivacyGuard(ner=broken, require_ner=True)


def test_guard_without_name_kinds_needs_no_ner() -> None:
    report = PrivacyGuard(kinds=["snils"], ner=False).inspect("СНИЛС 112-233-445 95")
    assert report.ner_available and report.counts == {PiiKind.SNILS: 1}


def test_overlaps_prefer_longer_then_more_confident() -> None:
    street = Finding(PiiKind.ADDRESS, 0, 10, 0.45)
    surname = Finding(PiiKind.PERSON, 4, 10, 0.85, "ner")
    inn = Finding(PiiKind.INN, 20, 30, 0.6)
    passport = Finding(PiiKind.PASSPORT, 20, 30, 0.95)
    assert resolve_overlaps([surname, street, inn, passport]) == [street, passport]


def test_street_named_after_a_person_is_one_address(guard: PrivacyGuard) -> None:
    text = "Проживаю по адресу: ул. Пушкина, д. 10, кв. 3."
    found = guard.find(text)
    assert [(f.kind, text[f.start : f.end]) for f in found] == [
        (PiiKind.ADDRESS, "ул. Пушкина, д. 10, кв. 3")
    ]


def test_vault_repr_shows_no_values() -> None:
    vault = Vault()
    vault.placeholder_for(PiiKind.PHONE, "+7 912 345-67-89")
    assert repr(vault) == "Vault(phone=1)"
    assert vault.value_of("[ТЕЛЕФОН_1]") == "+7 912 345-67-89"


def test_birth_dates_only_after_birth_words(guard: PrivacyGuard) -> None:
    masked, _ = guard.protect(
        [
            {
                "role": "user",
                "content": "Дата рождения: 12.05.1985. Клиент 1990 г.р. Заказ от 12.05.2024 доставлен 3 марта 2024 г.",
            }
        ]
    )
    assert masked[0]["content"] == (
        "Дата рождения: [ДАТА_РОЖДЕНИЯ_1]. Клиент [ДАТА_РОЖДЕНИЯ_2] г.р. Заказ от 12.05.2024 доставлен 3 марта 2024 г."
    )


def test_address_without_street_type_is_joined_into_one(guard: PrivacyGuard) -> None:
    if not guard.ner_available:
        pytest.skip("needs the NER model: pip install 'spravka[privacy]'")
    masked, vault = guard.protect(
        [{"role": "user", "content": "Доставка по адресу Москва, Тверская 7 кв 5."}]
    )
    assert masked[0]["content"] == "Доставка по адресу [АДРЕС_1]."
    assert vault.restore("[АДРЕС_1]") == "Москва, Тверская 7 кв 5"


def test_the_composition_root_builds_the_guard_from_settings(tmp_path):
    from spravka.app import Spravka
    from spravka.core.errors import PrivacyError
    from spravka.core.settings import Settings

    app = Spravka(Settings(home=tmp_path, privacy={"policy": "block", "kinds": ["snils", "email"]}))
    with pytest.raises(PrivacyError):
        app.guard.protect([{"role": "user", "content": "Мой e-mail ivan.petrov@example.ru"}])
    masked = Spravka(Settings(home=tmp_path / "b")).guard
    msgs, vault = masked.protect([{"role": "user", "content": "Пишите на ivan.petrov@example.ru"}])
    assert "ivan.petrov@example.ru" not in msgs[0]["content"]
    assert masked.restore(msgs[0]["content"], vault) == "Пишите на ivan.petrov@example.ru"
