"""The HTTP API over the sample knowledge base (read-only: only keys, events and inbox items are
added to the shared ``kb_app`` home)."""

from __future__ import annotations

import json
import uuid

import pytest
from helpers import bearer as h
from helpers import sse_events

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient  # noqa: E402

from spravka.api import create_app  # noqa: E402

HR_QUESTION = "Сколько дней ежегодного отпуска у сотрудников?"
PUBLIC_QUESTION = "Можно ли заплатить курьеру наличными?"


@pytest.fixture(scope="module")
def api(kb_app):
    tag = uuid.uuid4().hex[:6]
    keys = {
        "public": kb_app.keys.create(f"public-{tag}", "user")[0],
        "employee": kb_app.keys.create(f"employee-{tag}", "user", ["employees"])[0],
        "bot": kb_app.keys.create(f"bot-{tag}", "bot", ["employees"])[0],
        "editor": kb_app.keys.create(f"editor-{tag}", "editor", ["employees"])[0],
        "admin": kb_app.keys.create(f"admin-{tag}", "admin")[0],
    }
    app = create_app(kb_app, resume_jobs=False)
    with TestClient(app) as client:
        yield client, keys


def test_ask_answers_with_citations_from_the_keys_groups(api):
    c, keys = api
    r = c.post("/v1/ask", json={"question": HR_QUESTION, "mode": "extractive"}, headers=h(keys["employee"]))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "answered" and body["id"] and body["confidence"] > 0
    assert body["citations"] and all(c_["doc_id"].startswith("hr/") for c_ in body["citations"])
    assert "[1]" in body["answer"]
    # The same question from a key without the employees group never sees the HR documents.
    r = c.post("/v1/ask", json={"question": HR_QUESTION, "mode": "extractive"}, headers=h(keys["public"]))
    assert r.status_code == 200
    assert not any(c_["doc_id"].startswith(("hr/", "it/")) for c_ in r.json()["citations"])
    assert not any(r_["doc_id"].startswith(("hr/", "it/")) for r_ in r.json()["related"])
    assert body["related"] == []  # an answer cites its sources; only a refusal points at documents
    near = c.post("/v1/ask", json={"question": "Сколько дней есть, чтобы вернуть кофеварку, если она просто не "
                                               "понравилась?", "mode": "extractive"}, headers=h(keys["public"])).json()
    assert near["status"] == "refused" and near["citations"] == []
    assert "customers/returns-policy.md" in [r_["doc_id"] for r_ in near["related"]] and near["related"][0]["title"]


def test_ask_streams_server_sent_events(api):
    c, keys = api
    r = c.post("/v1/ask", json={"question": PUBLIC_QUESTION, "stream": True, "mode": "extractive"},
               headers=h(keys["public"]))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = sse_events(r.text)
    names = [n for n, _ in events]
    assert names[0] == "delta" and names[-1] == "answer"
    final = events[-1][1]
    assert final["status"] == "answered" and final["citations"]
    assert "".join(d["text"] for n, d in events if n == "delta") == final["answer"]


def test_search_filters_by_groups_inside_the_query(api):
    c, keys = api
    r = c.post("/v1/search", json={"query": "отпуск сотрудника", "k": 10}, headers=h(keys["public"]))
    assert r.status_code == 200
    assert r.json()["hits"] and all("public" in hit["access_groups"] for hit in r.json()["hits"])
    r = c.post("/v1/search", json={"query": "отпуск сотрудника", "k": 10}, headers=h(keys["employee"]))
    assert any(hit["doc_id"].startswith("hr/") for hit in r.json()["hits"])
    # metadata filters still work, the key's groups still apply
    r = c.post("/v1/search", json={"query": "отпуск", "filters": {"department": "hr"}}, headers=h(keys["public"]))
    assert r.status_code == 200 and r.json()["hits"] == []


def test_openai_chat_completions_and_models(api):
    c, keys = api
    models = c.get("/v1/models", headers=h(keys["bot"])).json()
    assert models["object"] == "list" and "default" in [m["id"] for m in models["data"]]
    req = {"model": "default", "messages": [{"role": "system", "content": "be brief"},
                                            {"role": "user", "content": PUBLIC_QUESTION}], "temperature": 0.3}
    r = c.post("/v1/chat/completions", json=req, headers=h(keys["bot"]))
    assert r.status_code == 200, r.text
    body = r.json()
    content = body["choices"][0]["message"]["content"]
    assert body["object"] == "chat.completion" and body["sources"]
    assert "Источники:" in content and body["sources"][0]["doc_id"] in content
    assert body["spravka"]["status"] == "answered" and body["spravka"]["answer_id"]

    r = c.post("/v1/chat/completions", json={**req, "stream": True}, headers=h(keys["bot"]))
    assert r.status_code == 200
    lines = [ln[6:] for ln in r.text.split("\n") if ln.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    chunks = [json.loads(x) for x in lines[:-1]]
    assert all(ch["object"] == "chat.completion.chunk" for ch in chunks)
    text = "".join(ch["choices"][0]["delta"].get("content", "") for ch in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop" and chunks[-1]["sources"]
    assert text.startswith(chunks[-1]["spravka"]["answer"]) and "Источники:" in text

    r = c.post("/v1/chat/completions", json={**req, "model": "nope"}, headers=h(keys["bot"]))
    assert r.status_code == 404 and r.json()["error"]["message"]
    r = c.post("/v1/chat/completions", json={"model": "default", "messages": [{"role": "system", "content": "x"}]},
               headers=h(keys["bot"]))
    assert r.status_code == 400


def test_feedback_is_logged_against_the_answer(api, kb_app):
    c, keys = api
    answer = c.post("/v1/ask", json={"question": PUBLIC_QUESTION, "mode": "extractive"},
                    headers=h(keys["public"])).json()
    r = c.post("/v1/feedback", json={"answer_id": answer["id"], "rating": "down", "comment": "не то"},
               headers=h(keys["public"]))
    assert r.status_code == 201
    ev = next(e for e in kb_app.store.events(kind="feedback", limit=50) if e["answer_id"] == answer["id"])
    assert ev["rating"] == "down" and ev["comment"] == "не то"
    assert c.post("/v1/feedback", json={"answer_id": "nope", "rating": "up"}, headers=h(keys["public"])).status_code == 404
    # another caller cannot rate this answer
    other = c.post("/v1/feedback", json={"answer_id": answer["id"], "rating": "up"}, headers=h(keys["employee"]))
    assert other.status_code == 404
    assert c.post("/v1/feedback", json={"answer_id": answer["id"], "rating": "meh"},
                  headers=h(keys["public"])).status_code == 422


def test_escalation_creates_an_inbox_item_without_logging_the_contact(api, kb_app):
    c, keys = api
    answer = c.post("/v1/ask", json={"question": "Где купить слона?", "mode": "extractive"},
                    headers=h(keys["public"])).json()
    r = c.post("/v1/escalations", json={"question": "Где купить слона?", "answer_id": answer["id"],
                                        "contact": "+7 900 000-00-00"}, headers=h(keys["public"]))
    assert r.status_code == 201, r.text
    item = kb_app.inbox.get(r.json()["id"])
    assert item.type == "escalation" and item.payload["contact"] == "+7 900 000-00-00"
    assert item.ref == answer["id"] and item.payload["answer"] == answer["answer"]
    logged = json.dumps(list(kb_app.store.events(kind="escalation", limit=20)), ensure_ascii=False)
    assert "900 000" not in logged and r.json()["id"] in logged
    # the same answer escalated twice is one inbox item
    again = c.post("/v1/escalations", json={"question": "Где купить слона?", "answer_id": answer["id"],
                                            "contact": "x"}, headers=h(keys["public"]))
    assert again.json()["id"] == r.json()["id"]


def test_authentication_and_roles(api, kb_app):
    c, keys = api
    q = {"query": "доставка"}
    r = c.post("/v1/search", json=q)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert r.json()["error"]["code"] == "unauthorized"
    forged = keys["public"][:-4] + ("0000" if not keys["public"].endswith("0000") else "1111")
    assert c.post("/v1/search", json=q, headers=h(forged)).status_code == 401
    assert c.post("/v1/search", json=q, headers=h("not-a-key")).status_code == 401
    assert c.post("/v1/search", json=q, headers={"X-API-Key": keys["public"]}).status_code == 200
    # roles
    assert c.get("/v1/documents", headers=h(keys["public"])).status_code == 403
    assert c.get("/v1/keys", headers=h(keys["editor"])).status_code == 403
    assert c.get("/v1/inbox", headers=h(keys["bot"])).status_code == 403
    assert c.get("/v1/documents", headers=h(keys["editor"])).status_code == 200
    assert c.get("/v1/keys", headers=h(keys["admin"])).status_code == 200
    # an editor lists only documents of its groups; an admin all of them
    ed = c.get("/v1/documents", headers=h(keys["editor"])).json()["documents"]
    adm = c.get("/v1/documents", headers=h(keys["admin"])).json()["documents"]
    assert len(adm) == 42 and 0 < len(ed) < len(adm)  # two sample documents are for other groups
    assert all({"employees", "public"} & set(d["access_groups"]) for d in ed)
    # revocation is immediate
    key, rec = kb_app.keys.create(f"temp-{uuid.uuid4().hex[:6]}", "user")
    assert c.post("/v1/search", json=q, headers=h(key)).status_code == 200
    assert c.delete(f"/v1/keys/{rec.id}", headers=h(keys["admin"])).status_code == 200
    assert c.post("/v1/search", json=q, headers=h(key)).status_code == 401


def test_admin_key_api_shows_the_key_once(api):
    c, keys = api
    r = c.post("/v1/keys", json={"name": f"site-{uuid.uuid4().hex[:6]}", "role": "user", "groups": ["Public"]},
               headers=h(keys["admin"]))
    assert r.status_code == 201
    created = r.json()
    assert created["key"].startswith("spk_") and created["groups"] == ["public"]
    listed = c.get("/v1/keys", headers=h(keys["admin"])).json()["keys"]
    assert created["id"] in [k["id"] for k in listed]
    assert created["key"] not in json.dumps(listed)
    bad = c.post("/v1/keys", json={"name": "x", "role": "root"}, headers=h(keys["admin"]))
    assert bad.status_code == 422


def test_rate_limit_answers_429_with_retry_after(api, kb_app):
    c, _ = api
    key, _ = kb_app.keys.create(f"slow-{uuid.uuid4().hex[:6]}", "user", rate_per_minute=2)
    codes = [c.get("/v1/models", headers=h(key)).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    r = c.get("/v1/models", headers=h(key))
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    assert r.json()["error"]["code"] == "rate_limited"


def test_bad_input_gets_clear_errors(api):
    c, keys = api
    hdr = {**h(keys["public"]), "Content-Type": "application/json"}
    r = c.post("/v1/ask", content=b'{"question": ', headers=hdr)
    assert r.status_code == 422 and r.json()["error"]["code"] == "malformed_json"
    assert "malformed JSON" in r.json()["error"]["message"]
    r = c.post("/v1/ask", json={"questio": "x"}, headers=h(keys["public"]))
    assert r.status_code == 422 and "question" in r.json()["error"]["message"]
    r = c.post("/v1/ask", json={"question": "   "}, headers=h(keys["public"]))
    assert r.status_code == 422
    r = c.post("/v1/ask", json={"question": "доставка", "collection": "nope"}, headers=h(keys["public"]))
    assert r.status_code == 400 and "does not exist" in r.json()["error"]["message"]
    r = c.post("/v1/search", json={"query": "доставка", "filters": {"bad field!": "x"}}, headers=h(keys["public"]))
    assert r.status_code == 400
    # valid JSON escapes that are not text: a lone surrogate is refused, NUL is replaced; never a 500
    r = c.post("/v1/ask", content=b'{"question": "\\ud800 delivery"}', headers=hdr)
    assert r.status_code == 422 and "unicode" in r.json()["error"]["message"]
    r = c.post("/v1/ask", content=b'{"question": "\\u0000 delivery", "mode": "extractive"}', headers=hdr)
    assert r.status_code == 200, r.text


def test_health_metrics_and_docs(api):
    c, keys = api
    assert c.get("/healthz").json() == {"status": "ok"}
    ready = c.get("/readyz")
    assert ready.status_code in (200, 503)
    c.post("/v1/ask", json={"question": PUBLIC_QUESTION, "mode": "extractive"}, headers=h(keys["public"]))
    text = c.get("/metrics").text
    assert 'spravka_http_requests_total{method="POST",route="/v1/ask",status="200"}' in text
    assert 'spravka_stage_duration_seconds_count{operation="answer",stage="retrieve"}' in text
    assert "spravka_answers_total" in text and "spravka_refusals_total" in text
    spec = c.get("/openapi.json").json()
    assert {"/v1/ask", "/v1/chat/completions", "/v1/search", "/v1/documents", "/v1/feedback",
            "/v1/escalations", "/v1/jobs/{job_id}", "/v1/models"} <= set(spec["paths"])
    docs = c.get("/docs").text
    assert "cdn." not in docs and "/docs-assets/swagger-ui-bundle.js" in docs
    assert c.get("/docs-assets/swagger-ui-bundle.js").status_code == 200
