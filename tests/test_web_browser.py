"""The widget and the admin console in a real headless Chromium (Debian's chromium and
chromium-driver, driven by Selenium; nothing is downloaded). Screenshots go to the test's tmp dir;
the browser console must stay free of errors."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
webdriver = pytest.importorskip("selenium.webdriver")

from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from spravka.api import create_app  # noqa: E402
from spravka.api.server import ServerThread  # noqa: E402
from spravka.app import Spravka  # noqa: E402
from spravka.core.settings import Settings  # noqa: E402
from spravka.models.chat import ChatResult, Usage  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver") or "/usr/lib/chromium/chromedriver"
pytestmark = [
    pytest.mark.skipif(not CHROMIUM or not Path(DRIVER).exists(),
                       reason="needs Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver)"),
    pytest.mark.slow,
]
SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "kb" / "customers"
REPLY = "Да, курьеру можно заплатить наличными или банковской картой [1]."


class SlowModel:
    """A streaming model that types slowly, so the test can watch the answer grow."""

    def __init__(self) -> None:
        self.calls = 0

    def _result(self) -> ChatResult:
        return ChatResult(text=REPLY, tool_calls=[], usage=Usage(120, 20), cost=0.0, latency_ms=1.0, model="slow",
                          finish_reason="stop")

    def chat(self, messages, **kw):
        self.calls += 1
        return self._result()

    def stream(self, messages, **kw):
        self.calls += 1
        for word in REPLY.split(" "):
            time.sleep(0.25)
            yield word + " "
        yield self._result()

    def ping(self) -> bool:
        return True

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("browser")
    kb = tmp_path_factory.mktemp("kb")
    for name in ("payment-methods.md", "returns-policy.md", "international-shipping-en.md", "_meta.yaml"):
        shutil.copy(SAMPLES / name, kb / name)
    sp = Spravka(Settings(home=home, embedder={"provider": "use"},
                          server={"rate_per_minute": 100000, "burst": 10000}))
    assert sp.ingest(kb, "default").failed == 0
    sp.store.update_collection_settings("default", {"answer_threshold": 0.0})
    sp.__dict__["llm"] = SlowModel()
    sp.llm_available = lambda: True  # the answerer is built after this: auto mode streams the model
    admin, _ = sp.keys.create("admin", "admin")
    from spravka.cli.serve import demo_key

    app = create_app(sp, demo_key=demo_key(sp), resume_jobs=False)
    with ServerThread(app) as srv:
        yield sp, srv, admin
    sp.close()


@pytest.fixture
def browser():
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must not try to download anything
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage", "--window-size=1280,900",
                "--lang=ru"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def console_errors(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def test_widget_streams_an_answer_with_citations_and_takes_feedback(server, browser, tmp_path):
    sp, srv, _ = server
    browser.get(srv.url + "/")
    wait = WebDriverWait(browser, 60, poll_frequency=0.05, ignored_exceptions=[StaleElementReferenceException])
    host = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "[data-spravka-widget]"))
    root = host.shadow_root
    box = wait.until(lambda d: root.find_element(By.CSS_SELECTOR, "textarea"))
    box.send_keys("Можно ли заплатить курьеру наличными?")
    root.find_element(By.CSS_SELECTOR, ".sw-send").click()

    # streamed: the text is seen growing before the final answer arrives
    answer = wait.until(lambda d: root.find_element(By.CSS_SELECTOR, ".sw-answer"))
    partials: set[str] = set()
    deadline = time.monotonic() + 60
    while not answer.get_attribute("data-answer-id") and time.monotonic() < deadline:
        t = answer.find_element(By.CSS_SELECTOR, ".sw-text").text
        if t.startswith("Да,") and not answer.get_attribute("data-answer-id"):
            if not partials:
                browser.save_screenshot(str(tmp_path / "widget-streaming.png"))
            partials.add(t)
        time.sleep(0.05)
    assert answer.get_attribute("data-answer-id")
    assert len(partials) >= 2 and min(map(len, partials)) < len(REPLY), partials  # it grew, word by word
    assert answer.get_attribute("data-status") == "answered"
    text = answer.find_element(By.CSS_SELECTOR, ".sw-text").text
    assert text.startswith("Да, курьеру можно заплатить наличными")

    # a citation opens its source
    cite = answer.find_element(By.CSS_SELECTOR, ".sw-cite")
    cite.click()
    item = answer.find_element(By.CSS_SELECTOR, ".sw-sources li[data-n='1']")
    wait.until(lambda d: "sw-hl" in item.get_attribute("class"))
    snippet = item.find_element(By.CSS_SELECTOR, ".sw-snippet")
    assert snippet.is_displayed() and snippet.text
    assert "payment-methods" in item.text or "Оплата" in item.text or "оплат" in snippet.text.lower()

    # the rating buttons are drawn icons with a spoken label, not emoji (which need a colour-emoji font)
    for cls in ("sw-up", "sw-down", "sw-op"):
        button = answer.find_element(By.CSS_SELECTOR, f".{cls}")
        assert button.find_element(By.CSS_SELECTOR, "svg path").get_attribute("d"), cls
        assert button.get_attribute("aria-label"), cls
        assert not any(0x1F300 <= ord(ch) <= 0x1FAFF for ch in button.text), button.text

    # 👍 is recorded against the answer id
    answer_id = answer.get_attribute("data-answer-id")
    answer.find_element(By.CSS_SELECTOR, ".sw-up").click()
    wait.until(lambda d: "Спасибо" in answer.text)
    fb = [e for e in sp.store.events(kind="feedback", limit=10) if e["answer_id"] == answer_id]
    assert fb and fb[0]["rating"] == "up"

    # «позвать оператора» puts the question into the inbox
    answer.find_element(By.CSS_SELECTOR, ".sw-actions .sw-op").click()
    contact = wait.until(lambda d: answer.find_element(By.CSS_SELECTOR, ".sw-escalate input"))
    contact.send_keys("+7 900 123-45-67")
    answer.find_element(By.CSS_SELECTOR, ".sw-escalate button").click()
    wait.until(lambda d: answer.find_elements(By.CSS_SELECTOR, ".sw-escalated"))
    items = sp.inbox.list(type="escalation")
    item = next(i for i in items if i.ref == answer_id)
    assert item.payload["contact"] == "+7 900 123-45-67"

    # the operator answers (console or helpdesk), then adds a follow-up: the open page shows both
    sp.inbox.resolve(item.id, {"answer": "Да, наличными можно, сдачу курьер даст."}, "operator")
    wait.until(lambda d: "сдачу курьер даст" in " ".join(
        e.text for e in root.find_elements(By.CSS_SELECTOR, ".sw-operator")))
    assert sp.inbox.follow_up(item.id, {"text": "Крупные купюры лучше разменять заранее."}, "k1")
    wait.until(lambda d: "разменять заранее" in " ".join(
        e.text for e in root.find_elements(By.CSS_SELECTOR, ".sw-operator")))
    assert len(root.find_elements(By.CSS_SELECTOR, ".sw-operator")) == 2  # each shown once

    browser.save_screenshot(str(tmp_path / "widget-answer.png"))
    assert (tmp_path / "widget-answer.png").stat().st_size > 10_000
    assert console_errors(browser) == []


def test_widget_shows_the_nearest_documents_with_a_refusal(server, browser, tmp_path, monkeypatch):
    sp, srv, _ = server
    sp.store.update_collection_settings("default", {"answer_threshold": 0.99})  # the gate refuses this time
    monkeypatch.setattr(sp.settings.answer, "related_min_confidence", 0.0)  # the gate's scale is e5's; this is USE
    try:
        browser.get(srv.url + "/")
        wait = WebDriverWait(browser, 60, poll_frequency=0.05, ignored_exceptions=[StaleElementReferenceException])
        root = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "[data-spravka-widget]")).shadow_root
        wait.until(lambda d: root.find_element(By.CSS_SELECTOR, "textarea")).send_keys(
            "Можно ли вернуть деньги за товар, если он не подошёл?")
        root.find_element(By.CSS_SELECTOR, ".sw-send").click()
        answer = wait.until(lambda d: root.find_element(By.CSS_SELECTOR, ".sw-answer[data-answer-id]"))
        assert answer.get_attribute("data-status") == "refused"
        related = answer.find_element(By.CSS_SELECTOR, ".sw-related")
        assert "Возможно, поможет" in related.text and "Правила возврата" in related.text, related.text
        assert not answer.find_elements(By.CSS_SELECTOR, ".sw-sources")  # pointed at, not cited
        browser.save_screenshot(str(tmp_path / "widget-refusal.png"))
        assert console_errors(browser) == []
    finally:
        sp.store.update_collection_settings("default", {"answer_threshold": 0.0})


def test_admin_logs_in_uploads_and_the_document_becomes_searchable(server, browser, tmp_path):
    sp, srv, admin = server
    doc = tmp_path / "guest-parking.md"
    doc.write_text("# Гостевая парковка\n\nГостевая парковка находится у северного входа, шлагбаум открывает охрана.\n",
                   encoding="utf-8")
    wait = WebDriverWait(browser, 90, poll_frequency=0.1, ignored_exceptions=[StaleElementReferenceException])
    _login(browser, wait, srv, admin)
    browser.save_screenshot(str(tmp_path / "admin-overview.png"))

    browser.find_element(By.LINK_TEXT, "Документы").click()
    wait.until(lambda d: d.find_elements(By.ID, "upload-form"))
    browser.find_element(By.CSS_SELECTOR, "#upload-form input[name=groups]").send_keys("public")
    browser.find_element(By.ID, "upload-file").send_keys(str(doc))
    browser.find_element(By.CSS_SELECTOR, "#upload-form button[type=submit]").click()
    wait.until(lambda d: "Загружено" in d.page_source)
    # the page refreshes itself while the job runs; the document shows up with status ok, and a page
    # rendered after the job no longer refreshes. The rows are read in one script call: an element held
    # across a refresh is gone ("Node with given id does not belong to the document").
    wait.until(lambda d: d.execute_script(
        "return !document.querySelector('meta[http-equiv=refresh]') && [...document.querySelectorAll("
        "'table.docs tr')].some(r => r.innerText.includes('guest-parking.md') && r.innerText.includes('ok'))"))
    browser.save_screenshot(str(tmp_path / "admin-documents.png"))

    box = browser.find_element(By.ID, "search-q")
    box.send_keys("где гостевая парковка")
    box.submit()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "ol.hits li"))
    hits = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "ol.hits .hit-doc")]
    assert hits and hits[0] == "guest-parking.md", hits
    browser.save_screenshot(str(tmp_path / "admin-search.png"))
    assert console_errors(browser) == []

    # and the widget's key finds it too, through the API
    import httpx

    demo = (sp.home / "demo.key").read_text().strip()
    r = httpx.post(srv.url + "/v1/search", json={"query": "где гостевая парковка"},
                   headers={"Authorization": f"Bearer {demo}"})
    assert r.json()["hits"][0]["doc_id"] == "guest-parking.md"


def _login(browser, wait, srv, admin: str) -> None:
    browser.get(srv.url + "/admin")
    wait.until(lambda d: d.find_element(By.ID, "key")).send_keys(admin)
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    wait.until(lambda d: "Обзор" in d.title)


def test_admin_reviews_an_extracted_invoice_beside_its_text_and_approves_a_correction(server, browser, tmp_path):
    sp, srv, admin = server
    extract = Path(__file__).resolve().parent.parent / "samples" / "extract"
    import json as _json

    golden = extract.parent / "golden" / "extract.jsonl"
    good = next(c["expected"] for c in map(_json.loads, golden.read_text(encoding="utf-8").splitlines())
                if c["file"].endswith("/invoice-001.pdf"))
    text = sp.extractor.read(extract / "invoice-001.pdf")[0]
    # a record typed in elsewhere with a slip in the seller's INN: the checks queue it for a person
    r = sp.extractor.verify(text, "invoice", {**good, "seller_inn": "7708123459"}, source="invoice-001.pdf")
    assert r.status == "review"

    wait = WebDriverWait(browser, 60, poll_frequency=0.1, ignored_exceptions=[StaleElementReferenceException])
    _login(browser, wait, srv, admin)
    browser.get(srv.url + "/admin/inbox")
    wait.until(lambda d: d.find_elements(By.LINK_TEXT, "Проверить и принять"))[0].click()
    wait.until(lambda d: d.find_elements(By.ID, "review-form"))
    assert "ТС-1482" in browser.find_element(By.ID, "doc-text").text  # the document beside the fields
    flagged = [e.get_attribute("id") for e in browser.find_elements(By.CSS_SELECTOR, "tr.flagged input")]
    assert "f-seller_inn" in flagged, flagged
    assert browser.find_element(By.NAME, "items.1.price").get_attribute("value") == "1890.5"
    box = browser.find_element(By.ID, "f-seller_inn")
    box.clear()
    box.send_keys(good["seller_inn"])
    browser.save_screenshot(str(tmp_path / "admin-extract-review.png"))
    browser.find_element(By.ID, "approve").click()
    wait.until(lambda d: "Принято" in d.page_source)
    assert console_errors(browser) == []

    item = sp.inbox.get(r.review_id)
    assert item.state == "done" and item.resolution["by"] == "admin" and item.resolution["corrected"] is True
    assert item.resolution["data"]["seller_inn"] == good["seller_inn"] and item.resolution["issues_left"] == []
    assert item.resolution["data"]["items"] == good["items"]  # the table came back as it was shown


def test_admin_edits_a_flagged_draft_beside_its_data_and_approves_it(server, browser, tmp_path):
    sp, srv, admin = server
    inputs = {"customer_name": "Анна", "order_id": "77-2051", "new_date": "2026-12-03"}
    r = sp.generator.generate("delay_notice", inputs, tone="domoteka")  # this module's model writes off-topic
    assert r.status == "review" and {"missing", "length"} <= {i.kind for i in r.issues}, r.to_dict()

    wait = WebDriverWait(browser, 60, poll_frequency=0.1, ignored_exceptions=[StaleElementReferenceException])
    _login(browser, wait, srv, admin)
    browser.get(srv.url + "/admin/inbox")
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, f"a[href='/admin/generate/{r.review_id}']"))[0].click()
    wait.until(lambda d: d.find_elements(By.ID, "review-form"))
    assert "77-2051" in browser.find_element(By.ID, "inputs").text  # the data beside the draft
    assert "missing" in browser.find_element(By.ID, "issues").text
    box = browser.find_element(By.ID, "text")
    assert box.get_attribute("value") == r.text
    mine = ("Здравствуйте, Анна! Заказ 77-2051 приедет позже: новая дата доставки — 3 декабря 2026. "
            "Простите за ожидание. Мы напишем вам ещё раз, когда курьер выедет, и подскажем, как перенести "
            "доставку, если этот день неудобен.\n\nКоманда «Домотеки»")
    box.clear()
    box.send_keys(mine)
    browser.save_screenshot(str(tmp_path / "admin-generate-review.png"))
    browser.find_element(By.ID, "approve").click()
    wait.until(lambda d: "Принято" in d.page_source)
    assert console_errors(browser) == []

    item = sp.inbox.get(r.review_id)
    assert item.state == "done" and item.resolution["by"] == "admin" and item.resolution["edited"] is True
    assert item.resolution["text"] == mine and item.resolution["issues_left"] == []


class _TwoDrafts(SlowModel):
    """A scripted stand-in for the LLM that writes two different drafts, one after the other."""

    DRAFTS = ["Анна, заказ 77-2052 задерживается. Простите!",
              "Здравствуйте, Анна! Заказ 77-2052 приедет позже обычного.\nМы напишем, когда курьер выедет."]

    def chat(self, messages, **kw):
        self.calls += 1
        text = self.DRAFTS[(self.calls - 1) % 2]
        return ChatResult(text=text, tool_calls=[], usage=Usage(120, 20), cost=0.0, latency_ms=1.0, model="two",
                          finish_reason="stop")


def test_admin_takes_the_other_variant_of_a_draft(server, browser, tmp_path, monkeypatch):
    sp, srv, admin = server
    monkeypatch.setitem(sp.__dict__, "llm", _TwoDrafts())
    monkeypatch.setattr(sp.generator.settings, "retries", 0)
    inputs = {"customer_name": "Анна", "order_id": "77-2052", "new_date": "2026-12-04"}
    r = sp.generator.generate("delay_notice", inputs, tone="domoteka", variants=2)
    assert r.status == "review" and [v["chosen"] for v in r.variants] == [True, False], r.to_dict()
    other = r.variants[1]["text"]
    assert "\n" in other  # a line break must survive the form

    wait = WebDriverWait(browser, 60, poll_frequency=0.1, ignored_exceptions=[StaleElementReferenceException])
    _login(browser, wait, srv, admin)
    browser.get(srv.url + f"/admin/generate/{r.review_id}")
    wait.until(lambda d: d.find_elements(By.ID, "variants"))
    assert browser.find_element(By.ID, "text").get_attribute("value") == r.text
    assert "приедет позже обычного" in browser.find_element(By.ID, "variants").text
    browser.execute_script("document.getElementById('variants').scrollIntoView()")
    browser.save_screenshot(str(tmp_path / "admin-generate-variants.png"))
    browser.find_element(By.CSS_SELECTOR, "#variants form.variant button[value=approve]").click()
    wait.until(lambda d: "Принято" in d.page_source)
    assert console_errors(browser) == []
    item = sp.inbox.get(r.review_id)
    assert item.state == "done" and item.resolution["text"] == other and item.resolution["edited"] is True


def test_admin_approves_an_agents_refund_in_the_inbox(server, browser, tmp_path, monkeypatch):
    """The plan comes from the scripted stand-in for the LLM of test_agents.py, and the ERP is the
    scripted stand-in of agent_standin.py; the console, the browser and the approval path are real."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from agent_standin import Standin
    from test_agents import Planner, _home, _tool

    sp, srv, admin = server
    with Standin() as systems:
        folder = _home(tmp_path, systems.url)
        monkeypatch.setattr(sp.settings.agents, "dir", folder)
        sp.__dict__.pop("agents", None)
        planner = Planner([_tool("erp.order_status", order_id="77-2051"),
                           _tool("erp.refund", order_id="77-2051", amount=12490, reason="брак"),
                           {"action": "final", "answer": "Возврат оформлен."}])
        old_llm = sp.__dict__["llm"]
        sp.__dict__["llm"] = planner
        try:
            r = sp.agents.run("support", "Верни деньги за заказ 77-2051", actor="ivan", role="editor")
            assert r.status == "awaiting_approval"
            wait = WebDriverWait(browser, 60, poll_frequency=0.1, ignored_exceptions=[StaleElementReferenceException])
            _login(browser, wait, srv, admin)
            browser.get(srv.url + "/admin/inbox?state=open")
            form = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, f"form[action='/admin/agents/approvals/{r.approval_id}']"))
            card = browser.find_element(By.CSS_SELECTOR, "dl.approval")
            assert "erp.refund" in card.text and "12490" in card.text and "ivan" in card.text
            assert "вызовов 0 из 50" in card.text and "amount 0 из 100000" in card.text  # the day's budget so far
            assert "\"reason\": \"брак\"" in card.text  # arguments readable, not \\u0431\\u0440…
            browser.save_screenshot(str(tmp_path / "admin-agent-approval.png"))
            form.find_element(By.CSS_SELECTOR, "button.approve").click()
            wait.until(lambda d: "Одобрено" in d.page_source)
            assert console_errors(browser) == []
            assert len(systems.refunds) == 1 and systems.refunds[0]["amount"] == 12490
            item = sp.inbox.get(r.approval_id)
            assert item.state == "done" and item.resolution["by"] == "admin"
        finally:
            sp.__dict__["llm"] = old_llm
            sp.__dict__.pop("agents", None)
