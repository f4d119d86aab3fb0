"""Property-based fuzzing of every operation in the OpenAPI schema (Schemathesis): whatever is
sent, with an admin key (everything allowed) and with no key, the API answers without a 5xx."""

from __future__ import annotations

import os
import time
from collections import Counter

import pytest

pytest.importorskip("fastapi")
schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, settings  # noqa: E402

from spravka.api import create_app  # noqa: E402
from spravka.app import Spravka  # noqa: E402
from spravka.core.settings import Settings  # noqa: E402
from spravka.core.types import Document, Section  # noqa: E402

EXAMPLES = int(os.environ.get("SPRAVKA_FUZZ_EXAMPLES", "20"))
_state: dict = {}


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory):
    home = tmp_path_factory.mktemp("fuzz")
    sp = Spravka(Settings(home=home, embedder={"provider": "use"}, answer={"mode": "extractive"},
                          server={"rate_per_minute": 1_000_000, "burst": 100_000, "max_upload_mb": 1}))
    sp.ingestor.ingest_documents([
        Document(id="a.md", title="Оплата", sections=[Section("Курьеру можно заплатить наличными или картой.")]),
        Document(id="b.md", title="Отпуск", sections=[Section("Отпуск 28 дней.")], access_groups=("hr",)),
    ], "default")
    sp.store.update_collection_settings("default", {"embedder": sp.embedder.name})
    _state["admin"], _ = sp.keys.create("fuzz-admin", "admin", ["hr"])
    app = create_app(sp, resume_jobs=False)
    svc = app.state.service
    svc.warm_up(background=False)
    _state["app"] = app
    deadline = time.monotonic() + 60
    while not svc.ready and time.monotonic() < deadline:
        time.sleep(0.1)
    yield schemathesis.openapi.from_asgi("/openapi.json", app)
    svc.jobs.wait_idle(60)
    sp.close()


def fuzz(schema, headers: dict[str, str], examples: int, check) -> list[str]:
    """Every operation, positive (schema-valid) and negative (schema-breaking) data."""
    from hypothesis import given
    from schemathesis import GenerationMode

    failures: list[str] = []
    for result in schema.get_all_operations():
        op = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            @given(case=op.as_strategy(generation_mode=mode))
            @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                      suppress_health_check=list(HealthCheck))
            def run(case):
                response = case.call(headers=headers)
                _state["calls"] = _state.get("calls", 0) + 1
                _state.setdefault("statuses", Counter())[response.status_code] += 1
                check(case, response)

            try:
                run()
            except AssertionError as e:
                failures.append(f"{op.label} ({mode.value}): {str(e)[:500]}")
            except Exception as e:  # noqa: BLE001 - Hypothesis cannot build data for this operation
                if "Unsatisfiable" not in type(e).__name__:
                    failures.append(f"{op.label} ({mode.value}): {type(e).__name__}: {str(e)[:300]}")
    return failures


def test_no_server_errors_with_an_admin_key(api_schema):
    def check(case, response):
        assert response.status_code < 500, (case.method, case.path, case.body, response.status_code, response.text)

    before = _state.get("calls", 0)
    failures = fuzz(api_schema, {"Authorization": f"Bearer {_state['admin']}"}, EXAMPLES, check)
    assert not failures, "\n".join(failures)
    assert _state["calls"] - before >= 10 * EXAMPLES, _state  # every operation was exercised
    print("fuzz statuses:", dict(_state["statuses"]))


def test_no_server_errors_without_a_valid_key(api_schema):
    def check(case, response):
        assert response.status_code < 500, (case.method, case.path, response.status_code, response.text)
        if case.path.startswith("/v1/"):
            assert response.status_code in (400, 401, 404, 405, 415, 422), (case.method, case.path, response.status_code)

    failures = fuzz(api_schema, {"Authorization": "Bearer spk_0000000000_" + "0" * 48}, max(2, EXAMPLES // 4), check)
    assert not failures, "\n".join(failures)
