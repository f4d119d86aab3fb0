"""The admin console: documents and their ingestion, upload, collections, API keys, the latest
questions with decisions and feedback, the inbox. Server-rendered; the admin key lives in an
HttpOnly, SameSite=Strict cookie and every form carries a CSRF token derived from it."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
from collections import Counter
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response

from spravka.api.service import Principal, Service, check_collection_name
from spravka.api.uploads import receive_upload
from spravka.auth.keys import parse_groups
from spravka.core.errors import AuthError, InputError, NotFoundError, SpravkaError
from spravka.core.types import DocStatus
from spravka.ingest.loaders.base import supported_extensions
from spravka.store.queues import InboxState
from spravka.web.render import page

router = APIRouter(prefix="/admin", include_in_schema=False)
COOKIE = "spravka_admin"
_SESSION_S = 8 * 3600


class LoginRequired(SpravkaError):
    code = "login_required"
    http_status = 401


def csrf_token(key: str) -> str:
    return hmac.new(hashlib.sha256(key.encode()).digest(), b"spravka-admin-csrf", hashlib.sha256).hexdigest()[:32]


def _svc(request: Request) -> Service:
    return request.app.state.service


def _session(request: Request) -> tuple[Principal, str]:
    raw = request.cookies.get(COOKIE)
    if not raw:
        raise LoginRequired("log in with an admin key")
    try:
        p = _svc(request).authenticate(raw)
    except AuthError:
        raise LoginRequired("the key is no longer valid") from None
    p.require("console")
    return p, csrf_token(raw)


async def _posted(request: Request):
    """The admin and the form of a console POST, its CSRF token checked."""
    p, _ = _session(request)
    form = await request.form()
    _check_csrf(request, form.get("csrf"))
    return p, form


def _check_csrf(request: Request, token: object) -> None:
    """``token``: the form field as it came (a file upload in its place fails like a wrong token)."""
    raw = request.cookies.get(COOKIE) or ""
    if not token or not hmac.compare_digest(str(token), csrf_token(raw)):
        from spravka.core.errors import ForbiddenError

        raise ForbiddenError("the form is stale or forged (CSRF check); reload the page")


def _back(path: str, msg: str = "", error: bool = False, **params: Any) -> RedirectResponse:
    q = {k: v for k, v in params.items() if v not in (None, "")}
    if msg:
        q["msg"] = msg[:300]
        if error:
            q["err"] = "1"
    return RedirectResponse(path + ("?" + urlencode(q) if q else ""), status_code=303)


def _ctx(request: Request, p: Principal, csrf: str, active: str, **kw: Any) -> dict[str, Any]:
    return {"me": p.key, "csrf": csrf, "active": active, "msg": request.query_params.get("msg", ""),
            "msg_error": request.query_params.get("err") == "1", **kw}


def on_login_required(request: Request, exc: LoginRequired) -> Response:
    if request.method == "GET":
        return RedirectResponse("/admin/login", status_code=303)
    return _back("/admin/login", str(exc.message), error=True)


def install_handlers(app: Any) -> None:
    app.add_exception_handler(LoginRequired, on_login_required)


# ---- login ------------------------------------------------------------------------------------------

@router.get("/login")
def login_form(request: Request):
    return page("admin/login.html", msg=request.query_params.get("msg", ""),
                msg_error=request.query_params.get("err") == "1")


@router.post("/login")
async def login(request: Request):
    form = await request.form()
    raw = str(form.get("key") or "").strip()
    svc = _svc(request)
    try:
        p = await run_in_threadpool(svc.authenticate, raw)
    except AuthError:
        return _back("/admin/login", "Неверный или отозванный ключ", error=True)
    if not p.may("console"):
        return _back("/admin/login", "Для консоли нужен ключ с ролью admin", error=True)
    resp = RedirectResponse("/admin", status_code=303)
    resp.set_cookie(COOKIE, raw, max_age=_SESSION_S, httponly=True, samesite="strict", path="/admin",
                    secure=request.url.scheme == "https")
    return resp


@router.post("/logout")
async def logout(request: Request):
    form = await request.form()
    _check_csrf(request, form.get("csrf"))
    resp = RedirectResponse("/admin/login", status_code=303)
    resp.delete_cookie(COOKIE, path="/admin")
    return resp


# ---- overview ---------------------------------------------------------------------------------------

def _day(ts: str) -> str:
    return (ts or "")[:10]


def answer_chart(events: list[dict[str, Any]], days: int = 14) -> dict[str, Any]:
    """Stacked bars of answers per day by decision, as SVG rectangles."""
    today = dt.datetime.now(dt.UTC).date()
    labels = [(today - dt.timedelta(days=i)).isoformat() for i in range(days - 1, -1, -1)]
    counts: dict[str, Counter[str]] = {d: Counter() for d in labels}
    for ev in events:
        d = _day(ev.get("ts", ""))
        if d in counts:
            counts[d][ev.get("decision", "answered")] += 1
    top = max([sum(c.values()) for c in counts.values()] + [1])
    width, height, gap = 560, 140, 4
    bw = (width - gap * days) / days
    colours = {"answered": "#2e7d32", "refused": "#f9a825", "escalate": "#c62828"}
    bars = []
    for i, d in enumerate(labels):
        y: float = height
        for decision in ("answered", "refused", "escalate"):
            n = counts[d][decision]
            if not n:
                continue
            h = n / top * (height - 10)
            y -= h
            bars.append({"x": round(i * (bw + gap), 1), "y": round(y, 1), "w": round(bw, 1), "h": round(h, 1),
                         "fill": colours[decision], "title": f"{d}: {decision} {n}"})
    return {"width": width, "height": height, "bars": bars, "first": labels[0], "last": labels[-1], "top": top,
            "total": sum(sum(c.values()) for c in counts.values())}


@router.get("")
def overview(request: Request):
    p, csrf = _session(request)
    svc = _svc(request)
    store = svc.sp.store
    answers = list(store.events(kind="answer", limit=5000))
    feedback = list(store.events(kind="feedback", limit=5000))
    decisions = Counter(e.get("decision", "?") for e in answers)
    ratings = Counter(e.get("rating", "?") for e in feedback)
    inbox = svc.sp.inbox.counts()
    open_items = sum(v.get("open", 0) + v.get("claimed", 0) for v in inbox.values())
    return page("admin/overview.html", **_ctx(request, p, csrf, "overview", collections=store.list_collections(),
                decisions=decisions, ratings=ratings, open_items=open_items, chart=answer_chart(answers)))


# ---- documents --------------------------------------------------------------------------------------

def _jobs(svc: Service) -> list[dict[str, Any]]:
    out = []
    for job_id in reversed(list(svc.jobs.recent)):
        job = svc.sp.store.get_job(job_id)
        if job:
            out.append(job)
    return out[:15]


@router.get("/documents")
def documents(request: Request):
    p, csrf = _session(request)
    svc = _svc(request)
    store = svc.sp.store
    names = [c["name"] for c in store.list_collections()]
    coll = request.query_params.get("collection") or svc.sp.settings.collection
    status = request.query_params.get("status") or None
    try:
        check_collection_name(coll)
        st = DocStatus(status) if status else None
    except (SpravkaError, ValueError):
        coll, st = svc.sp.settings.collection, None
    docs = store.list_documents(coll, st) if store.has_collection(coll) else []
    jobs = _jobs(svc)
    running = any(j["state"] in ("queued", "running") for j in jobs)
    q = (request.query_params.get("q") or "")[:500]
    hits = []
    if q and store.has_collection(coll):
        try:
            hits = svc.sp.search(q, collection=coll, flt=p.filter(), k=5).hits
        except SpravkaError as e:
            return _back("/admin/documents", str(e), error=True, collection=coll)
    return page("admin/documents.html", **_ctx(
        request, p, csrf, "documents", collections=names, collection=coll, status=status or "", docs=docs,
        jobs=jobs, refresh=running, q=q, hits=hits, supported=", ".join(supported_extensions()),
        max_mb=svc.settings.max_upload_mb, counts=Counter(str(d.status) for d in docs)))


@router.post("/documents/upload")
async def upload(request: Request):
    p, _ = _session(request)
    svc = _svc(request)
    try:
        staged = await receive_upload(request, svc.staging_dir(), max_bytes=svc.max_upload_bytes,
                                      supported=supported_extensions())
    except SpravkaError as e:
        return _back("/admin/documents", f"Загрузка отклонена: {e}", error=True)
    try:
        _check_csrf(request, staged.fields.get("csrf"))
        coll = check_collection_name(staged.fields.get("collection") or svc.sp.settings.collection)
        groups = p.upload_groups(parse_groups(staged.fields.get("groups") or ""))
        if not staged.files:
            staged.discard()
            return _back("/admin/documents", "Выберите файл", error=True, collection=coll)
    except SpravkaError as e:
        staged.discard()
        return _back("/admin/documents", str(e), error=True)
    out = await run_in_threadpool(svc.place_upload, staged, coll, groups, p)
    names = ", ".join(f["file"] for f in out["files"])
    return _back("/admin/documents", f"Загружено: {names}; индексация идёт (задача {out['job_id']})",
                 collection=coll)


async def _doc_action(request: Request, kind: str) -> RedirectResponse:
    p, form = await _posted(request)
    svc = _svc(request)
    coll = str(form.get("collection") or svc.sp.settings.collection)
    doc_id = str(form.get("doc_id") or "")
    try:
        check_collection_name(coll)
        if not doc_id or svc.sp.store.get_document(coll, doc_id) is None:
            raise SpravkaError("документ не найден")
        job = svc.jobs.submit(kind, {"collection": coll, "doc_ids": [doc_id], "key": p.key.id}, total=1)
    except SpravkaError as e:
        return _back("/admin/documents", str(e), error=True, collection=coll)
    verb = "удаление" if kind == "api.delete" else "переиндексация"
    return _back("/admin/documents", f"{doc_id}: {verb} (задача {job})", collection=coll)


@router.post("/documents/delete")
async def delete(request: Request):
    return await _doc_action(request, "api.delete")


@router.post("/documents/reingest")
async def reingest(request: Request):
    return await _doc_action(request, "api.reingest")


@router.get("/collections")
def collections(request: Request):
    p, csrf = _session(request)
    rows = _svc(request).sp.store.list_collections()
    return page("admin/collections.html", **_ctx(request, p, csrf, "collections", rows=rows))


# ---- questions --------------------------------------------------------------------------------------

@router.get("/questions")
def questions(request: Request):
    p, csrf = _session(request)
    store = _svc(request).sp.store
    answers = list(store.events(kind="answer", limit=200))
    feedback: dict[str, dict[str, Any]] = {}
    for ev in reversed(list(store.events(kind="feedback", limit=5000))):
        feedback[ev.get("answer_id", "")] = ev  # oldest first: the latest wins
    who = {ev.get("answer_id"): ev for ev in store.events(kind="api.answer", limit=5000)}
    escalated = {ev.get("answer_id") for ev in store.events(kind="escalation", limit=5000)}
    rows = [{"ts": a.get("ts", ""), "collection": a.get("collection"), "question": a.get("question", ""),
             "decision": a.get("decision", ""), "confidence": a.get("confidence"), "mode": a.get("mode", ""),
             "cited": a.get("cited", []), "id": a.get("answer_id", ""),
             "feedback": feedback.get(a.get("answer_id", "")), "who": who.get(a.get("answer_id")),
             "escalated": a.get("answer_id") in escalated} for a in answers]
    return page("admin/questions.html", **_ctx(request, p, csrf, "questions", rows=rows))


# ---- analytics --------------------------------------------------------------------------------------

def _days(value: Any, default: int = 30) -> int:
    try:
        return max(1, min(3650, int(value)))
    except (TypeError, ValueError):
        return default


@router.get("/analytics")
def analytics(request: Request):
    from spravka.analytics.report import charts
    from spravka.analytics.service import analyze
    from spravka.evaluate.charts import CHART_CSS

    p, csrf = _session(request)
    svc = _svc(request)
    days = _days(request.query_params.get("days"))
    a = analyze(svc.sp, days=days)
    return page("admin/analytics.html", **_ctx(request, p, csrf, "analytics", days=days, r=a.report,
                                               charts=charts(a.report), clusters=a.clusters, chart_css=CHART_CSS))


@router.get("/analytics.csv")
def analytics_csv(request: Request):
    import io

    from spravka.analytics.querylog import load_rows
    from spravka.analytics.report import write_csv

    _session(request)
    days = _days(request.query_params.get("days"))
    buf = io.StringIO()
    write_csv(load_rows(_svc(request).sp.store, days=days), buf)
    return Response(buf.getvalue().encode("utf-8-sig"), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="spravka-queries-{days}d.csv"',
                             "Cache-Control": "no-store"})


@router.post("/analytics/action")
async def analytics_action(request: Request):
    from spravka.analytics.actions import add_to_golden, draft_kb_entry

    p, form = await _posted(request)
    svc = _svc(request)
    days = _days(form.get("days"))
    ids = [i for i in str(form.get("ids") or "").split(",") if i][:200]
    question = str(form.get("question") or "").strip()[:1000]
    action = str(form.get("action") or "")
    if not ids or not question:
        return _back("/admin/analytics", "пустой кластер", error=True, days=days)
    if action == "golden":
        path, n = await run_in_threadpool(add_to_golden, svc.sp.store, svc.sp.home, ids)
        return _back("/admin/analytics", f"В золотой набор добавлено вопросов: {n} ({path})", days=days)
    if action == "draft":
        ops = svc.sp.escalations.operator_answers()
        op = next((ops[i] for i in ids if i in ops), None)
        wanted = set(ids)
        examples = [e.get("question", "") for e in svc.sp.store.events(kind="answer", limit=20000)
                    if e.get("answer_id") in wanted][:20]
        path = draft_kb_entry(svc.sp.home, question, answer=(op or {}).get("answer"), examples=examples,
                              collection=(op or {}).get("collection"),
                              source=f"escalation:{op['inbox_id']}" if op else "analytics cluster", by=p.key.name)
        note = "из ответа оператора" if op else "без ответа: допишите его"
        return _back("/admin/analytics", f"Черновик {note}: {path.name} (в {path.parent})", days=days)
    return _back("/admin/analytics", "неизвестное действие", error=True, days=days)


# ---- inbox ------------------------------------------------------------------------------------------

@router.get("/inbox")
def inbox(request: Request):
    p, csrf = _session(request)
    svc = _svc(request)
    state = request.query_params.get("state") or ""
    try:
        st = InboxState(state) if state else None
    except ValueError:
        st = None
    items = svc.sp.inbox.list(state=st, limit=200)
    budgets, interrupted = _approval_context(svc.sp, items)
    return page("admin/inbox.html", **_ctx(request, p, csrf, "inbox", items=items, state=state, budgets=budgets,
                                          interrupted=interrupted))


def _approval_context(sp: Any, items: list[Any]) -> tuple[dict[str, dict[str, Any]], set[str]]:
    """For the agents' approvals shown: each waiting one's tool budget as used so far, and which
    approved ones a crash interrupted (the server carries those out by itself)."""
    if not any(i.type == "approval" for i in items):
        return {}, set()
    try:
        agents = sp.agents
        budgets = {}
        for i in items:
            if i.type == "approval" and i.state in (InboxState.OPEN, InboxState.CLAIMED):
                used = agents.budget_used(agents.agent(i.payload["agent"]), i.payload["pending"]["tool"])
                if used:
                    budgets[i.id] = used
        return budgets, {i.id for i in agents.interrupted(min_age_s=0)}
    except SpravkaError:  # an agent file broken since: the items still show, without these
        return {}, set()


@router.post("/inbox/action")
async def inbox_action(request: Request):
    p, form = await _posted(request)
    svc = _svc(request)
    item_id = str(form.get("id") or "")[:64]
    action = str(form.get("action") or "")
    text = str(form.get("text") or "").strip()[:4000]
    try:
        if action == "claim":
            svc.sp.inbox.claim(item_id, p.key.name)
        elif action == "resolve":
            svc.sp.inbox.resolve(item_id, {"answer": text} if text else {}, p.key.name)
        elif action == "dismiss":
            svc.sp.inbox.dismiss(item_id, text or "без причины", p.key.name)
        elif action == "draft":
            item = svc.sp.inbox.get(item_id)
            answer = ((item.resolution or {}).get("answer") if item else None)
            if item is None or item.type != "escalation" or not answer:
                raise SpravkaError("черновик делается из решённой эскалации с ответом оператора")
            from spravka.analytics.actions import draft_kb_entry

            path = draft_kb_entry(svc.sp.home, item.payload.get("question") or item.title, answer=answer,
                                  collection=item.collection, source=f"escalation:{item.id}", by=p.key.name)
            return _back("/admin/inbox", f"Черновик: {path.name} (в {path.parent})")
        else:
            raise SpravkaError("неизвестное действие")
    except SpravkaError as e:
        return _back("/admin/inbox", str(e), error=True)
    return _back("/admin/inbox", "Готово")


# ---- extraction review --------------------------------------------------------------------------------

def _review_item(request: Request, item_id: str, type_: str):
    item = _svc(request).sp.inbox.get(item_id[:64])
    if item is None or item.type != type_:
        raise NotFoundError(f"no {type_} review item '{item_id[:64]}'")
    return item


def _extraction(request: Request, item_id: str):
    from spravka.extract import load_schema

    item = _review_item(request, item_id, "extraction")
    return item, load_schema(item.payload.get("schema_source") or item.payload["schema"])


@router.get("/extract/{item_id}")
def extract_review(item_id: str, request: Request):
    """One record beside its document: the fields the checks flag are marked, all are editable."""
    p, csrf = _session(request)
    try:
        item, schema = _extraction(request, item_id)
    except SpravkaError as e:
        return _back("/admin/inbox", str(e), error=True)
    data = (item.resolution or {}).get("data") or item.payload.get("data") or {}
    issues: dict[str, list[str]] = {}
    for i in item.payload.get("issues") or []:  # items[0].amount → items.0.amount, as the inputs are named
        issues.setdefault(_input_name(i["field"]), []).append(i["message"])
    # what the model wrote where the record now has the document's own words (see extract.snap_record)
    snapped = {_input_name(k): v for k, v in (item.payload.get("snapped") or {}).items()}
    fields = []
    for name, f in schema.spec.fields.items():
        if f.type == "list":
            rows = list(data.get(name) or []) + [{}]  # one empty row to add a missing line
            fields.append({"name": name, "spec": f, "list": True, "rows": rows, "columns": list((f.fields or {}).items())})
        else:
            fields.append({"name": name, "spec": f, "list": False, "value": data.get(name)})
    return page("admin/extract.html", **_ctx(request, p, csrf, "inbox", item=item, schema=schema, fields=fields,
                                             issues=issues, issues_total=len(item.payload.get("issues") or []),
                                             snapped=snapped))


def _input_name(field: str) -> str:
    """A record path as the review form names its input: items[0].amount → items.0.amount."""
    return field.replace("[", ".").replace("]", "")


def _form_value(raw: str, kind: str, name: str) -> Any:
    raw = raw.strip()
    if not raw:
        return None
    if kind in ("number", "integer"):
        txt = re.sub(r"[\s\u00a0]", "", raw).replace(",", ".")
        try:
            return int(txt) if kind == "integer" else float(txt)
        except ValueError:
            raise InputError(f"{name}: «{raw}» is not a number") from None
    return raw


@router.post("/extract/{item_id}")
async def extract_review_action(item_id: str, request: Request):
    p, form = await _posted(request)
    back = f"/admin/extract/{item_id[:64]}"
    try:
        item, schema = _extraction(request, item_id)
        if form.get("action") == "dismiss":
            _svc(request).sp.inbox.dismiss(item.id, "документ отклонён при проверке", p.key.name)
            return _back("/admin/inbox", "Отклонено")
        data: dict[str, Any] = {}
        for name, f in schema.spec.fields.items():
            if f.type == "list":
                rows, i = [], 0
                while any(f"{name}.{i}.{sub}" in form for sub in (f.fields or {})):
                    row = {sub: _form_value(str(form.get(f"{name}.{i}.{sub}") or ""), sf.type, f"{name}[{i}].{sub}")
                           for sub, sf in (f.fields or {}).items()}
                    if any(v is not None for v in row.values()):
                        rows.append(row)
                    i += 1
                data[name] = rows or None
            elif f.type == "boolean":
                data[name] = f"f.{name}" in form
            else:
                data[name] = _form_value(str(form.get(f"f.{name}") or ""), f.type, name)
        done = _svc(request).sp.extractor.approve(item.id, data, p.key.name)
    except SpravkaError as e:
        return _back(back, str(e), error=True)
    left = len((done.resolution or {}).get("issues_left") or [])
    return _back("/admin/inbox", "Принято" + (f"; замечаний осталось: {left}" if left else ""))


# ---- generation review --------------------------------------------------------------------------------

@router.get("/generate/{item_id}")
def generate_review(item_id: str, request: Request):
    """A draft beside its data and passages, with what the checks flag; the text is editable."""
    p, csrf = _session(request)
    try:
        item = _review_item(request, item_id, "generation")
    except SpravkaError as e:
        return _back("/admin/inbox", str(e), error=True)
    text = (item.resolution or {}).get("text") or item.payload.get("text") or ""
    issues = (item.resolution or {}).get("issues_left") if item.resolution else item.payload.get("issues")
    return page("admin/generate.html", **_ctx(request, p, csrf, "inbox", item=item, text=text, issues=issues or []))


@router.post("/generate/{item_id}")
async def generate_review_action(item_id: str, request: Request):
    p, form = await _posted(request)
    back = f"/admin/generate/{item_id[:64]}"
    try:
        item = _review_item(request, item_id, "generation")
        if form.get("action") == "dismiss":
            _svc(request).sp.inbox.dismiss(item.id, "текст отклонён при проверке", p.key.name)
            return _back("/admin/inbox", "Отклонено")
        text = str(form.get("text") or "").replace("\r\n", "\n").strip()[:50_000]
        unchanged = text == str(item.payload.get("text") or "").strip()
        done = _svc(request).sp.generator.approve(item.id, None if unchanged else text, p.key.name)
    except SpravkaError as e:
        return _back(back, str(e), error=True)
    left = len((done.resolution or {}).get("issues_left") or [])
    return _back("/admin/inbox", "Принято" + (f"; замечаний осталось: {left}" if left else ""))


# ---- agent approvals ----------------------------------------------------------------------------------

@router.post("/agents/approvals/{item_id}")
async def agent_approval(item_id: str, request: Request):
    """Approve (the action runs now and the agent goes on) or reject an agent's waiting action."""
    p, form = await _posted(request)
    agents = _svc(request).sp.agents
    try:
        if form.get("action") == "approve":
            res = agents.approve(item_id[:64], p.key.name)
        else:
            res = agents.reject(item_id[:64], p.key.name, str(form.get("reason") or "").strip()[:1000])
    except SpravkaError as e:
        return _back("/admin/inbox", str(e), error=True)
    tail = {"done": "агент ответил", "awaiting_approval": "агент ждёт следующего одобрения",
            "stopped": "агент остановлен лимитом"}.get(res.status, res.status)
    return _back("/admin/inbox", f"{'Одобрено' if form.get('action') == 'approve' else 'Отклонено'}; {tail}")


# ---- keys -------------------------------------------------------------------------------------------

@router.get("/keys")
def keys(request: Request):
    p, csrf = _session(request)
    svc = _svc(request)
    return page("admin/keys.html", **_ctx(request, p, csrf, "keys", keys=svc.keys.list(include_revoked=True),
                                          new_key=None, roles=["user", "bot", "editor", "admin"]))


@router.post("/keys/create")
async def create_key(request: Request):
    p, csrf = _session(request)
    svc = _svc(request)
    form = await request.form()
    _check_csrf(request, form.get("csrf"))
    try:
        rate = str(form.get("rate") or "").strip()
        key, rec = svc.keys.create(str(form.get("name") or ""), str(form.get("role") or ""),
                                   parse_groups(str(form.get("groups") or "")),
                                   rate_per_minute=float(rate) if rate else None)
    except (SpravkaError, ValueError) as e:
        return _back("/admin/keys", str(e), error=True)
    svc.sp.store.log_event("key.create", {"id": rec.id, "name": rec.name, "role": str(rec.role),
                                          "groups": list(rec.groups), "by": p.key.id})
    # The key is shown in this response only (not in a redirect URL, which would be logged).
    return page("admin/keys.html", **_ctx(request, p, csrf, "keys", keys=svc.keys.list(include_revoked=True),
                                          new_key=key, new_rec=rec, roles=["user", "bot", "editor", "admin"]))


@router.post("/keys/revoke")
async def revoke_key(request: Request):
    p, form = await _posted(request)
    svc = _svc(request)
    key_id = str(form.get("id") or "")[:64]
    k = svc.keys.get(key_id)
    if k is None:
        return _back("/admin/keys", "ключ не найден", error=True)
    if k.active and str(k.role) == "admin" and svc.keys.count_admins() <= 1:
        return _back("/admin/keys", "Это последний ключ администратора: сначала создайте другой", error=True)
    svc.keys.revoke(k.id)
    svc.limiter.reset(k.id)
    svc.sp.store.log_event("key.revoke", {"id": k.id, "name": k.name, "by": p.key.id})
    if k.id == p.key.id:
        resp = RedirectResponse("/admin/login", status_code=303)
        resp.delete_cookie(COOKIE, path="/admin")
        return resp
    return _back("/admin/keys", f"Ключ {k.name} отозван")
