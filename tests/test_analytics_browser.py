"""The admin console's analytics page in a real headless Chromium: a replayed query log shows its
charts and the clusters of unanswered questions; a cluster's actions work. Screenshot in tmp."""

from __future__ import annotations

import json
import shutil

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("selenium.webdriver")

from browser import chrome, console_errors  # noqa: E402
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402
from test_analytics import SAMPLES, UNANSWERED, replay_log  # noqa: E402

from spravka.api import create_app  # noqa: E402
from spravka.api.server import ServerThread  # noqa: E402
from spravka.app import Spravka  # noqa: E402
from spravka.core.settings import Settings  # noqa: E402

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not shutil.which("chromium") or not shutil.which("chromedriver"),
                                 reason="needs Debian's chromium and chromium-driver")]


def test_console_shows_unanswered_clusters_of_a_replayed_log(tmp_path):
    kb = tmp_path / "kb"
    kb.mkdir()
    for name in ("payment-methods.md", "returns-policy.md", "gift-certificates.md", "_meta.yaml"):
        shutil.copy(SAMPLES / name, kb / name)
    home = tmp_path / "home"
    sp = Spravka(Settings(home=home, answer={"mode": "extractive"}))
    assert sp.ingest(kb, "default").failed == 0
    ids = replay_log(sp)
    admin, _ = sp.keys.create("admin", "admin")
    app = create_app(sp, resume_jobs=False, dispatch=False)
    try:
        with ServerThread(app) as srv, chrome(1280, 2000) as d:
            wait = WebDriverWait(d, 60, poll_frequency=0.1, ignored_exceptions=[StaleElementReferenceException])
            d.get(srv.url + "/admin")
            wait.until(lambda d: d.find_element(By.ID, "key")).send_keys(admin)
            d.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
            wait.until(lambda d: "Обзор" in d.title)
            d.find_element(By.LINK_TEXT, "Аналитика").click()
            wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "article.cluster"))
            clusters = d.find_elements(By.CSS_SELECTOR, "article.cluster")
            first = clusters[0]
            assert first.find_element(By.CSS_SELECTOR, ".badge").text == "4"
            assert first.find_element(By.CSS_SELECTOR, ".rep").text in UNANSWERED["drones"]
            assert "Дронами не доставляем" in first.text  # the operator's answer is shown
            assert len(d.find_elements(By.CSS_SELECTOR, "svg.chart")) >= 3
            reps = [c.find_element(By.CSS_SELECTOR, ".rep").text for c in clusters]
            assert any(r in UNANSWERED["sunday"] for r in reps) and any(r in UNANSWERED["elephants"] for r in reps)
            d.save_screenshot(str(tmp_path / "admin-analytics.png"))
            assert (tmp_path / "admin-analytics.png").stat().st_size > 20_000

            first.find_element(By.CSS_SELECTOR, "button[value=golden]").click()
            wait.until(lambda d: "В золотой набор добавлено вопросов: 4" in d.page_source)
            golden = [json.loads(x) for x in (home / "golden" / "candidates.jsonl").read_text().splitlines()]
            assert {g["id"] for g in golden} == {f"log-{i}" for i in ids["drones"]}
            d.find_elements(By.CSS_SELECTOR, "article.cluster")[0].find_element(
                By.CSS_SELECTOR, "button[value=draft]").click()
            wait.until(lambda d: "Черновик из ответа оператора" in d.page_source)
            drafts = list((home / "drafts").glob("*.md"))
            assert len(drafts) == 1 and "Дронами не доставляем" in drafts[0].read_text(encoding="utf-8")
            csv_href = d.find_element(By.ID, "csv-export").get_attribute("href")
            assert csv_href.endswith("/admin/analytics.csv?days=30")
            assert console_errors(d) == []
    finally:
        sp.close()
