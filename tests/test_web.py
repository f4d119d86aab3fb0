"""The demo page, the widget file and the admin console over plain HTTP (no browser)."""

from __future__ import annotations

import re

import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient  # noqa: E402

from spravka.api import create_app  # noqa: E402
from spravka.app import Spravka  # noqa: E402
from spravka.core.settings import Settings  # noqa: E402
from spravka.core.types import Document, Section  # noqa: E402

XSS = '<script>alert("x")</script>'


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    home = tmp_path_factory.mktemp("web")
    sp = Spravka(Settings(home=home, embedder={"provider": "use"}))
    sp.ingestor.ingest_documents([
        Document(id="pay.md", title=f"Оплата {XSS}", sections=[Section("Курьеру можно заплатить наличными или картой.")]),
    ], "default")
    sp.store.update_collection_settings("default", {"embedder": sp.embedder.name})
    admin, _ = sp.keys.create("boss", "admin")
    user, _ = sp.keys.create("visitor", "user")
    from spravka.cli.serve import demo_key

    demo = demo_key(sp)
    with TestClient(create_app(sp, demo_key=demo, resume_jobs=False)) as c:
        yield sp, c, admin, user, demo
    sp.close()


def login(c, key: str):
    return c.post("/admin/login", data={"key": key}, follow_redirects=False)


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([0-9a-f]+)"', html).group(1)


def test_demo_page_embeds_the_widget_with_the_demo_key(env):
    sp, c, _, _, demo = env
    r = c.get("/")
    assert r.status_code == 200 and "Content-Security-Policy" in r.headers
    assert 'src="/static/widget.js"' in r.text and f'data-key="{demo}"' in r.text
    rec = sp.keys.verify(demo)
    assert str(rec.role) == "user" and rec.groups == ("public",)
    from spravka.cli.serve import demo_key

    assert demo_key(sp) == demo  # reused across restarts, not a new key each time
    js = c.get("/static/widget.js")
    assert js.status_code == 200 and "attachShadow" in js.text and "/v1/ask" in js.text
    assert not re.search(r"https?://(?!spravka\.example)", js.text)  # no CDN or third-party call


def test_admin_requires_an_admin_key_in_an_httponly_cookie(env):
    _, c, admin, user, _ = env
    c.cookies.clear()
    r = c.get("/admin", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/admin/login"
    r = login(c, user)
    assert r.status_code == 303 and "err=1" in r.headers["location"]
    r = login(c, "spk_0000000000_" + "0" * 48)
    assert "err=1" in r.headers["location"]
    r = login(c, admin)
    assert r.status_code == 303 and r.headers["location"] == "/admin"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict") and "Path=/admin" in cookie
    page = c.get("/admin")
    assert page.status_code == 200 and "Обзор" in page.text and "<svg" in page.text
    assert page.headers["x-frame-options"] == "DENY"
    c.cookies.clear()


def test_admin_pages_escape_untrusted_text_and_check_csrf(env):
    sp, c, admin, user, _ = env
    login(c, admin)
    # an answer to a question with markup, and feedback on it
    hdr = {"Authorization": f"Bearer {user}"}
    ans = c.post("/v1/ask", json={"question": f"оплата {XSS}", "mode": "extractive"}, headers=hdr).json()
    c.post("/v1/feedback", json={"answer_id": ans["id"], "rating": "down", "comment": XSS}, headers=hdr)
    c.post("/v1/escalations", json={"question": XSS, "answer_id": ans["id"], "contact": XSS}, headers=hdr)
    for path in ("/admin/documents", "/admin/questions", "/admin/inbox", "/admin/keys", "/admin/collections", "/admin"):
        r = c.get(path)
        assert r.status_code == 200, path
        assert XSS not in r.text, path
    questions = c.get("/admin/questions").text
    assert "&lt;script&gt;" in questions
    assert 'aria-label="не помогло"' in questions  # the rating as a drawn icon with its name
    # forms without the token are refused
    r = c.post("/admin/keys/create", data={"name": "x", "role": "user"}, follow_redirects=False)
    assert r.status_code == 403
    c.cookies.clear()


def test_admin_creates_and_revokes_keys_and_works_the_inbox(env):
    sp, c, admin, _, _ = env
    login(c, admin)
    token = csrf_of(c.get("/admin/keys").text)
    r = c.post("/admin/keys/create", data={"csrf": token, "name": "site", "role": "user", "groups": "public"})
    assert r.status_code == 200
    key = re.search(r'value="(spk_[0-9a-f_]+)"', r.text).group(1)
    rec = sp.keys.verify(key)
    assert rec.name == "site"
    assert key not in c.get("/admin/keys").text  # shown once
    r = c.post("/admin/keys/revoke", data={"csrf": token, "id": rec.id}, follow_redirects=False)
    assert r.status_code == 303 and sp.keys.verify(key) is None
    # the last admin key cannot be revoked from the console
    me = sp.keys.find("boss")
    r = c.post("/admin/keys/revoke", data={"csrf": token, "id": me.id}, follow_redirects=False)
    assert "err=1" in r.headers["location"] and sp.keys.verify(admin) is not None

    item = sp.inbox.add("escalation", "Позвоните мне", {"question": "Позвоните мне", "contact": "a@b.c"})
    inbox = c.get("/admin/inbox").text
    assert "Позвоните мне" in inbox and "a@b.c" in inbox
    c.post("/admin/inbox/action", data={"csrf": token, "id": item.id, "action": "claim"})
    assert str(sp.inbox.get(item.id).state) == "claimed"
    c.post("/admin/inbox/action", data={"csrf": token, "id": item.id, "action": "resolve", "text": "Перезвонили"})
    done = sp.inbox.get(item.id)
    assert str(done.state) == "done" and done.resolution["answer"] == "Перезвонили"
    c.cookies.clear()


def test_admin_upload_and_document_actions(env):
    sp, c, admin, _, _ = env
    login(c, admin)
    token = csrf_of(c.get("/admin/documents").text)
    r = c.post("/admin/documents/upload", data={"csrf": token, "collection": "default", "groups": "public"},
               files={"file": ("parking.md", "# Парковка\n\nГостевая парковка у главного входа.".encode(), "text/markdown")},
               follow_redirects=False)
    assert r.status_code == 303 and "err=1" not in r.headers["location"], r.headers["location"]
    c.app.state.service.jobs.wait_idle(60)
    page = c.get("/admin/documents").text
    assert "parking.md" in page and "s-ok" in page
    assert "parking.md" in c.get("/admin/documents", params={"q": "гостевая парковка"}).text
    bad = c.post("/admin/documents/upload", data={"csrf": token},
                 files={"file": ("x.exe", b"MZ", "application/octet-stream")}, follow_redirects=False)
    assert "err=1" in bad.headers["location"]
    r = c.post("/admin/documents/delete", data={"csrf": token, "collection": "default", "doc_id": "parking.md"},
               follow_redirects=False)
    assert r.status_code == 303
    c.app.state.service.jobs.wait_idle(60)
    assert sp.store.get_document("default", "parking.md") is None
    c.cookies.clear()


class _ScriptedExtraction:
    """A scripted stand-in for the chat model: answers every extraction with this record."""

    def __init__(self, record: dict) -> None:
        self.record = record

    def chat_json(self, messages, model, **kw):
        return model.model_validate(self.record)


def test_the_review_page_shows_what_the_model_wrote_where_the_record_took_the_documents_words(env):
    sp, c, _, _, _ = env
    admin, _ = sp.keys.create("reviewer", "admin")  # its own rate limit: the module's admin key is busy
    text = ("ООО «Техносклад»\nАдрес: 115088, г. Москва,\nул. Угрешская, д. 2, стр. 15\n"
            "КАССОВЫЙ ЧЕК № 12 от 05.03.2026\nИТОГО 1 250,00")
    wrote = "115088, г. Москва, ул. Угрешская д. 2, стр.15"  # commas and a space lost on the way
    sp.__dict__["llm"] = _ScriptedExtraction({"company": "ООО Техносклад", "address": wrote, "date": "2026-03-05",
                                              "total": 1350.0})  # and a total the receipt does not have
    try:
        r = sp.extractor.extract_text(text, "receipt", source="chek-12.txt")
    finally:
        del sp.__dict__["llm"]
    assert r.status == "review" and r.data["address"] == "115088, г. Москва, ул. Угрешская, д. 2, стр. 15"
    login(c, admin)
    page = c.get(f"/admin/extract/{r.review_id}").text
    assert 'value="115088, г. Москва, ул. Угрешская, д. 2, стр. 15"' in page  # the form holds the document's words
    assert f"модель написала: {wrote}" in page  # and says what the model wrote
    assert page.count("модель написала") == 1  # only where it differs
    c.cookies.clear()
