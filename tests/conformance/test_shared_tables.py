"""The shared tables (inbox, outbox, API keys, classifier data, answer cache, Telegram bindings)
behave the same on the embedded SQLite database and on PostgreSQL, and on PostgreSQL two servers
share them: two claims of one item, two dispatchers leasing the outbox and two escalations of one
answer each end as they would in one process. An older side ``spravka.db`` is copied in once.

"Two servers" are two independent connections (two SQLite handles on one file; two PostgreSQL
connection pools on one database), each with its own objects, as two processes would have.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from spravka.auth.keys import KeyStore
from spravka.bots.telegram import Bindings
from spravka.cache.sql import SqlCacheBackend
from spravka.classify.store import ClassifyStore
from spravka.core.errors import InputError
from spravka.store.queues import InboxState, OutboxState
from spravka.store.sql_queues import SqlInbox, SqlOutbox
from spravka.store.sqlite.db import Database

SHARED = ["embedded", "postgres"]


@pytest.fixture(params=SHARED)
def servers(request, tmp_path) -> Iterator[Callable[[], Any]]:
    """``connect()`` → a new database handle on the same shared tables (one per "server")."""
    opened: list[Any] = []
    if request.param == "embedded":
        def connect() -> Any:
            db = Database(tmp_path / "spravka.db")
            opened.append(db)
            return db
        drop = None
    else:
        url, drop = request.getfixturevalue("fresh_pg")()
        from spravka.store.postgres.db import PgDatabase
        from spravka.store.postgres.shared import PgSharedDb

        def connect() -> Any:
            pg = PgDatabase(url, max_size=4)
            opened.append(pg)
            return PgSharedDb(pg)
    yield connect
    for db in opened:
        db.close()
    if drop:
        drop()


def race(*fns: Callable[[], Any]) -> list[Any]:
    """Run the functions at once (a barrier), each in its thread; results or exceptions, in order."""
    barrier = threading.Barrier(len(fns))
    out: list[Any] = [None] * len(fns)

    def run(i: int) -> None:
        barrier.wait()
        try:
            out[i] = fns[i]()
        except Exception as e:  # noqa: BLE001 - the test inspects it
            out[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(fns))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return out


@pytest.mark.backend
def test_inbox_lifecycle_is_the_same_and_both_servers_see_one_inbox(servers):
    a, b = SqlInbox(servers()), SqlInbox(servers())
    item = a.add("escalation", "Где мой заказ?", {"question": "Где мой заказ?", "n": 1}, priority=1,
                 collection="kb", ref="ans-1", dedup_key="escalation:ans-1")
    assert b.add("escalation", "again", {}, dedup_key="escalation:ans-1").id == item.id  # idempotent
    low = b.add("triage", "ticket", {"text": "x"})
    assert [i.id for i in a.list()] == [item.id, low.id]  # priority first
    assert [i.id for i in b.list(type="triage", state=InboxState.OPEN)] == [low.id]

    assert b.claim(item.id, "olga").state == InboxState.CLAIMED
    with pytest.raises(InputError, match="taken by olga"):
        a.claim(item.id, "ivan")
    done = a.resolve(item.id, {"answer": "Заказ в пути"}, "olga")
    assert done.state == InboxState.DONE and done.resolution == {"answer": "Заказ в пути", "by": "olga"}
    with pytest.raises(InputError, match="already done"):
        b.dismiss(item.id, "spam", "ivan")
    assert b.follow_up(item.id, {"text": "Доставим завтра"}, key="c-1") is True
    assert a.follow_up(item.id, {"text": "Доставим завтра"}, key="c-1") is False  # once per key
    ups = b.get(item.id).resolution["follow_ups"]
    assert [(u["text"], u["key"]) for u in ups] == [("Доставим завтра", "c-1")]
    assert a.counts() == {"escalation": {"done": 1}, "triage": {"open": 1}}


@pytest.mark.backend
def test_outbox_is_idempotent_filters_schemes_and_orders_ties(servers):
    a, b = SqlOutbox(servers()), SqlOutbox(servers())
    m1 = a.enqueue("webhook:http://h/1", {"n": 1}, "k1")
    assert b.enqueue("webhook:http://h/1", {"n": 999}, "k1").id == m1.id  # the same key: the first message
    m2 = b.enqueue("jira:default", {"n": 2}, "k2")
    m3 = a.enqueue("zendesk:default", {"n": 3}, "k3")
    assert [m.id for m in a.list()] == [m3.id, m2.id, m1.id]  # newest first, same-second ties by insertion
    assert {m.id for m in b.due(10**10, schemes=["jira", "zendesk"])} == {m2.id, m3.id}
    assert b.due(10**10, schemes=[]) == []
    a.mark_failed(m2.id, "HTTP 503", retry_at=10**11)
    a.mark_failed(m3.id, "HTTP 400", retry_at=None)
    b.mark_delivered(m1.id, {"issueKey": "SD-7"})
    assert b.get(m1.id).state == OutboxState.DELIVERED and b.get(m1.id).response == {"issueKey": "SD-7"}
    assert [m.id for m in a.list(state=OutboxState.DEAD)] == [m3.id]
    assert a.due(10**10) == []  # m2 waits for its retry time, m3 is dead
    b.retry(m3.id)
    assert [m.id for m in a.due(10**10)] == [m3.id]


@pytest.mark.backend
def test_two_servers_racing_for_the_same_work_never_both_get_it(servers):
    a_db, b_db = servers(), servers()
    a_in, b_in = SqlInbox(a_db), SqlInbox(b_db)
    for round_ in range(5):
        item = a_in.add("escalation", f"q{round_}", {})
        got = race(lambda i=item.id: a_in.claim(i, "olga"), lambda i=item.id: b_in.claim(i, "ivan"))
        winners = [g for g in got if not isinstance(g, Exception)]
        assert len(winners) == 1, got
        assert all(isinstance(g, InputError) for g in got if isinstance(g, Exception))
        assert a_in.get(item.id).assignee == winners[0].assignee

        key = f"dup-{round_}"
        added = race(*(lambda i=i, k=key: (a_in if i % 2 else b_in).add("escalation", "x", {"i": i}, dedup_key=k)
                       for i in range(4)))
        assert len({it.id for it in added}) == 1, added

    a_out, b_out = SqlOutbox(a_db), SqlOutbox(b_db)
    ids = {a_out.enqueue("webhook:http://h", {"i": i}, f"m{i}").id for i in range(20)}
    got = race(lambda: a_out.due(10**9, limit=12, lease_s=60), lambda: b_out.due(10**9, limit=12, lease_s=60))
    leased = [{m.id for m in g} for g in got]
    assert not leased[0] & leased[1]  # no message handed to both dispatchers
    assert leased[0] | leased[1] == ids
    assert a_out.due(10**9, lease_s=60) == []  # all leased until +60 s


@pytest.mark.backend
def test_keys_classifier_data_cache_and_bindings_are_shared(servers):
    a, b = servers(), servers()
    secret, key = KeyStore(a).create("bot-1", "bot", ["sales"], rate_per_minute=30)
    assert KeyStore(b).verify(secret).id == key.id
    KeyStore(b).revoke("bot-1")
    assert KeyStore(a).verify(secret) is None

    ca, cb = ClassifyStore(a), ClassifyStore(b)
    assert ca.put_doc("taxonomy", "support", {"labels": ["a"]}, "h1").version == 1
    assert cb.put_doc("taxonomy", "support", {"labels": ["a"]}, "h1").version == 1  # same digest: no new version
    assert cb.put_doc("taxonomy", "support", {"labels": ["a", "b"]}, "h2").version == 2
    assert ca.get_doc("taxonomy", "support").body == {"labels": ["a", "b"]}
    assert ca.add_examples("support", [("нет доставки", "delivery"), ("верните деньги", "refund")], "seed") == 2
    assert cb.add_examples("support", [("нет доставки", "delivery")], "seed") == 0  # unchanged: no change counted
    assert cb.add_examples("support", [("нет доставки", "refund")], "human", replace=False) == 0
    assert cb.add_examples("support", [("нет доставки", "courier")], "human", ref="T-1") == 1
    assert ca.revision("support") == 2
    assert [(e.text, e.label) for e in ca.examples("support")] == [("нет доставки", "courier"),
                                                                  ("верните деньги", "refund")]
    assert ca.learned_refs("support", "human") == {"T-1"}
    assert cb.remove_examples("support", label="refund") == 1 and ca.revision("support") == 3
    cb.save_ticket("support", "T-1", "нет доставки", {"shop": 5}, "courier", 0.9, "embedding", "routed")
    cb.save_ticket("support", "T-1", "нет доставки", {"shop": 5}, "courier", 0.95, "llm", "routed")
    t = ca.ticket("support", "T-1")
    assert (t.metadata, t.confidence, t.method) == ({"shop": 5}, 0.95, "llm")

    clock = [1000.0]
    qa, qb = SqlCacheBackend(a, clock=lambda: clock[0]), SqlCacheBackend(b, clock=lambda: clock[0])
    v = np.array([0.6, 0.8, 0.0], dtype=np.float32)
    qa.put("k1", "s", "kb", "вопрос", {"text": "ответ"}, ttl_s=60, vector=v)
    qb.put("k1", "s", "kb", "вопрос", {"text": "ответ 2"}, ttl_s=60, vector=v)  # replaces
    assert qa.get("k1") == {"text": "ответ 2"} and qa.count() == 1
    assert qb.similar("s", np.array([0.6, 0.8, 0.0], dtype=np.float32), 0.9, 10) == [("k1", pytest.approx(1.0))]
    clock[0] += 61
    assert qb.get("k1") is None and qa.count() == 0

    chat = 5_000_000_000  # Telegram chat ids need 64 bits
    Bindings(a).bind(chat, key.id, 42)
    Bindings(b).bind(chat, "other", 42)
    assert Bindings(a).get(chat) == "other"
    Bindings(a).unbind(chat)
    assert Bindings(b).get(chat) is None


@pytest.mark.backend
def test_a_helpdesk_ticket_key_finds_its_escalation(servers):
    from spravka.core.settings import EscalateSettings
    from spravka.escalate import Escalations

    db = servers()
    inbox, outbox = SqlInbox(db), SqlOutbox(db)
    esc = Escalations(inbox, outbox, db, EscalateSettings(targets=["jira", "zendesk"]),
                      log_event=lambda *a, **k: None)
    item = esc.create("Где мой заказ?", collection="kb", answer_id="ans-9")
    assert esc.create("Где мой заказ?", collection="kb", answer_id="ans-9").id == item.id
    for m in outbox.list():
        outbox.mark_delivered(m.id, {"issueKey": "SD-12"} if m.target.startswith("jira") else {"ticket_id": 881})
    assert esc.by_ticket("jira", "SD-12").id == item.id
    assert esc.by_ticket("zendesk", "881").id == item.id  # a JSON number compared as text
    assert esc.by_ticket("jira", "SD-13") is None


@pytest.mark.backend
def test_postgres_app_copies_an_older_side_sqlite_once_and_two_apps_share_it(request, tmp_path, caplog):
    from spravka.app import Spravka
    from spravka.core.settings import Settings

    url, drop = request.getfixturevalue("fresh_pg")()
    home_a, home_b = tmp_path / "a", tmp_path / "b"
    # what an older Spravka left beside PostgreSQL: the shared tables in the data directory's spravka.db
    old = Database(Path(home_a) / "spravka.db")
    secret, key = KeyStore(old).create("console", "admin")
    waiting = SqlInbox(old).add("escalation", "Старый вопрос", {"question": "Старый вопрос"}, dedup_key="escalation:old")
    SqlOutbox(old).enqueue("webhook:http://h", {"n": 1}, "old-msg")
    ClassifyStore(old).add_examples("support", [("нет доставки", "delivery")], "seed")
    old.close()

    apps: list[Spravka] = []
    try:
        def open_app(home: Path) -> Spravka:
            app = Spravka(Settings(home=home, embedder={"provider": "use"}, store={"url": url}))
            apps.append(app)
            return app

        with caplog.at_level("WARNING", logger="spravka.app"):
            a = open_app(home_a)
            assert a.keys.verify(secret).id == key.id
        assert "copied the shared tables" in caplog.text and "api_keys: 1" in caplog.text
        assert a.inbox.get(waiting.id).title == "Старый вопрос"
        assert [m.idempotency_key for m in a.outbox.list()] == ["old-msg"]
        assert a.classifier.store.revision("support") == 1

        b = open_app(home_b)  # a second server, its own data directory
        assert b.keys.verify(secret).id == key.id
        item = b.escalations.create("Новый вопрос", collection="default", answer_id="ans-2")
        assert a.inbox.get(item.id).title == "Новый вопрос"

        caplog.clear()
        again = open_app(home_a)  # the side file is not read twice
        assert again.keys.verify(secret) is not None
        assert "copied" not in caplog.text
        assert len(again.keys.list()) == 1 and len(again.outbox.list()) == 1
        assert again.inbox.counts() == {"escalation": {"open": 2}}
        assert (home_a / "spravka.db").is_file()  # kept: switching store.url back still finds it
    finally:
        for app in apps:
            app.close()
        drop()


@pytest.mark.backend
def test_a_postgres_database_at_revision_0001_upgrades_in_place(pg_server):
    import sqlalchemy
    from alembic import command
    from alembic.config import Config
    from sqlalchemy.pool import NullPool

    from spravka.core.errors import SchemaVersionError
    from spravka.store.postgres import db as pgdb

    srv, name = pg_server["srv"], "upgrade_from_0001"
    srv.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE);")
    srv.psql(f"CREATE DATABASE {name};")
    url = pg_server["url_of"](name)
    try:
        cfg = Config()
        cfg.set_main_option("script_location", str(pgdb._MIGRATIONS))
        engine = sqlalchemy.create_engine("postgresql+psycopg" + pgdb.normalize_url(url)[len("postgresql"):],
                                          poolclass=NullPool)
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0001")  # what the previous release left
            conn.execute(sqlalchemy.text("INSERT INTO collections(name, created_at) VALUES('kb', 'then')"))
        engine.dispose()

        db = pgdb.PgDatabase(url, max_size=2)
        try:
            assert db.schema_version() == pgdb.HEAD == "0002"
            assert db.query("SELECT name FROM collections") == [("kb",)]  # kept
            assert db.query("SELECT count(*) FROM inbox") == [(0,)]
            db.execute("UPDATE alembic_version SET version_num='0099'")
        finally:
            db.close()
        with pytest.raises(SchemaVersionError, match="newer Spravka"):
            pgdb.PgDatabase(url, max_size=1)
    finally:
        srv.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE);")
