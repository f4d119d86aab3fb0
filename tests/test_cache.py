"""The answer cache: the same behaviour test runs against SQLite (embedded) and a real
redis-server started on a free port in a temp dir."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from spravka.app import Spravka
from spravka.core.filters import Filter
from spravka.core.settings import Settings
from spravka.core.types import AnswerStatus

SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "kb" / "customers"
DOCS = ("payment-methods.md", "returns-policy.md", "gift-certificates.md", "international-shipping-en.md",
        "_meta.yaml")
PUBLIC = Filter(groups=("public",))
Q_PAY = "Как оплатить заказ?"
Q_GIFT = "Сколько действует подарочный сертификат?"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    pytest.importorskip("redis", reason="needs the redis extra: pip install 'spravka[redis]'")
    server = shutil.which("redis-server")
    if not server:
        pytest.fail("redis-server is needed: apt-get install -y redis-server (scripts/system-deps.sh)")
    folder = tmp_path_factory.mktemp("redis")
    port = _free_port()
    proc = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder),
                             "--save", "", "--appendonly", "no", "--protected-mode", "yes"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    import redis

    client = redis.Redis(port=port)
    deadline = time.time() + 20
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.time() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail("redis-server did not start")
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    client.close()
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(params=["sqlite", "redis"])
def backend(request):
    if request.param == "redis":
        return {"backend": "redis", "url": request.getfixturevalue("redis_url"),
                "prefix": f"t{time.time_ns()}"}
    return {"backend": "sqlite"}


def make(home: Path, cache: dict, **kw) -> Spravka:
    return Spravka(Settings(home=home, embedder={"provider": "use"}, answer={"mode": "extractive", "k": 3},
                            cache=cache, **kw))


@pytest.fixture
def kb(tmp_path) -> Path:
    kb = tmp_path / "kb"
    kb.mkdir()
    for name in DOCS:
        shutil.copy(SAMPLES / name, kb / name)
    return kb


def entry_docs(sp: Spravka, question: str, flt: Filter = PUBLIC) -> set[str]:
    from spravka.cache.service import scope_of

    c = sp.cache
    e = c.backend.get(c.key(scope_of("default", flt, "extractive", c.fingerprint), question))
    return set(e["documents"]) if e else set()


def test_a_changed_source_invalidates_its_answers_and_nothing_else(tmp_path, kb, backend):
    sp = make(tmp_path / "home", backend)
    assert sp.ingest(kb, "default").failed == 0
    sp.store.update_collection_settings("default", {"answer_threshold": 0.0})

    first = sp.answer(Q_PAY, flt=PUBLIC)
    assert first.status is AnswerStatus.ANSWERED and first.cache == {"result": "miss", "stored": True}
    again = sp.answer("  как ОПЛАТИТЬ заказ!!  ", flt=PUBLIC)  # normalised: the same key
    assert again.cache["result"] == "hit" and again.cache["match"] == "exact"
    assert again.text == first.text and again.id != first.id and again.citations == first.citations
    gift = sp.answer(Q_GIFT, flt=PUBLIC)
    assert gift.cache["result"] == "miss" and sp.answer(Q_GIFT, flt=PUBLIC).cache["result"] == "hit"
    # the entries record what they were built from
    pay_docs, gift_docs = entry_docs(sp, Q_PAY), entry_docs(sp, Q_GIFT)
    assert "payment-methods.md" in pay_docs and "gift-certificates.md" in gift_docs
    changed = "gift-certificates.md"
    assert changed not in pay_docs, pay_docs

    # the answer event says it came from the cache
    ev = next(sp.store.events(kind="answer", limit=1))
    assert ev["cache"] == "hit" and ev["cache_match"] == "exact" and ev["saved"]["llm_calls"] == 0

    # an access group is part of the key: another group's question never gets this entry
    hr = Filter(groups=("hr",))
    assert sp.answer(Q_PAY, flt=hr).cache["result"] == "miss"

    # re-ingesting a changed document invalidates exactly the answers that used it
    with (kb / changed).open("a", encoding="utf-8") as f:
        f.write("\n\nСертификат можно продлить один раз на 30 дней.\n")
    report = sp.ingest(kb, "default")
    assert report.updated == 1 and report.unchanged == len(DOCS) - 2
    assert sp.answer(Q_GIFT, flt=PUBLIC).cache["result"] == "miss"  # stale: rebuilt and stored again
    assert sp.answer(Q_GIFT, flt=PUBLIC).cache["result"] == "hit"
    assert sp.answer(Q_PAY, flt=PUBLIC).cache["result"] == "hit"  # nothing else
    assert sp.cache.stats.stale == 1

    # a deleted document too
    (kb / "payment-methods.md").unlink()
    sp.ingest(kb, "default", prune=True)
    assert sp.answer(Q_PAY, flt=PUBLIC).cache["result"] == "miss"
    assert sp.answer(Q_GIFT, flt=PUBLIC).cache["result"] == "hit"
    sp.close()


def test_only_answers_are_cached_and_entries_expire(tmp_path, kb, backend):
    sp = make(tmp_path / "home", {**backend, "ttl_s": 1})
    assert sp.ingest(kb, "default").failed == 0
    refused = sp.answer("Есть ли доставка дронами на Марс?", flt=PUBLIC)
    assert refused.status is AnswerStatus.REFUSED
    assert sp.answer("Есть ли доставка дронами на Марс?", flt=PUBLIC).cache["result"] == "miss"
    sp.store.update_collection_settings("default", {"answer_threshold": 0.0})
    sp.answer(Q_PAY, flt=PUBLIC)
    assert sp.answer(Q_PAY, flt=PUBLIC).cache["result"] == "hit"
    # a recalibrated, stricter gate makes weak entries stale
    sp.store.update_collection_settings("default", {"answer_threshold": 0.9999})
    assert sp.answer(Q_PAY, flt=PUBLIC).cache["result"] != "hit"
    sp.store.update_collection_settings("default", {"answer_threshold": 0.0})
    sp.answer(Q_PAY, flt=PUBLIC)
    time.sleep(1.3)
    assert sp.answer(Q_PAY, flt=PUBLIC).cache["result"] == "miss"  # expired
    # a request may skip the cache (evaluation, benchmarks)
    assert sp.answer(Q_PAY, flt=PUBLIC, use_cache=False).cache == {}
    sp.close()


def test_semantic_match_reuses_a_paraphrase_above_the_threshold(tmp_path, kb, backend):
    sp = make(tmp_path / "home", {**backend, "semantic_threshold": 0.8})
    assert sp.ingest(kb, "default").failed == 0
    sp.store.update_collection_settings("default", {"answer_threshold": 0.0})
    sp.answer("Какими способами можно оплатить заказ?", flt=PUBLIC)
    para = sp.answer("Какие есть способы оплаты заказа?", flt=PUBLIC)
    assert para.cache["result"] == "hit" and para.cache["match"] == "semantic"
    assert 0.8 <= para.cache["similarity"] < 1.0
    assert sp.answer("Можно ли вернуть товар?", flt=PUBLIC).cache["result"] == "miss"
    sp.close()


def test_redis_is_shared_by_app_instances_and_its_outage_does_not_break_answers(tmp_path, kb, redis_url):
    cache = {"backend": "redis", "url": redis_url, "prefix": f"shared{time.time_ns()}"}
    a = make(tmp_path / "home", cache)
    assert a.ingest(kb, "default").failed == 0
    a.store.update_collection_settings("default", {"answer_threshold": 0.0})
    b = make(tmp_path / "home", cache)  # a second instance on the same data
    a.answer(Q_PAY, flt=PUBLIC)
    assert b.answer(Q_PAY, flt=PUBLIC).cache["result"] == "hit"
    a.close()
    b.close()
    down = make(tmp_path / "home", {"backend": "redis", "url": f"redis://127.0.0.1:{_free_port()}/0"})
    ans = down.answer(Q_PAY, flt=PUBLIC)
    assert ans.status is AnswerStatus.ANSWERED and down.cache.stats.errors >= 1
    down.close()


def test_metrics_count_hits_misses_and_saved_calls(tmp_path, kb):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from spravka.api import create_app

    sp = make(tmp_path / "home", {"backend": "sqlite"})
    assert sp.ingest(kb, "default").failed == 0
    sp.store.update_collection_settings("default", {"answer_threshold": 0.0})
    key, _ = sp.keys.create("w", "user")
    with TestClient(create_app(sp, dispatch=False)) as c:
        for _ in range(3):
            r = c.post("/v1/ask", json={"question": Q_PAY}, headers={"Authorization": f"Bearer {key}"})
            assert r.status_code == 200
        text = c.get("/metrics").text
    assert 'spravka_answer_cache_total{match="exact",result="hit"} 2.0' in text
    assert 'spravka_answer_cache_total{match="",result="miss"} 1.0' in text
    assert "spravka_answer_cache_saved_llm_calls_total" in text
    events = [e for e in sp.store.events(kind="answer", limit=5)]
    assert [e["cache"] for e in events] == ["hit", "hit", "miss"]
    assert all(e["caller"]["channel"] == "api" and e["caller"]["role"] == "user" for e in events)
    assert key not in json.dumps(events)
    sp.close()
