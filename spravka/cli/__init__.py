"""The ``spravka`` command line. Thin: parse, call a capability, render.

Each command group lives in its own module and registers itself on :data:`app`; this keeps the
groups (ingest/search, models, eval, serve, ...) from growing into one file.
"""

from __future__ import annotations

from spravka.cli import evaluate as _evaluate  # noqa: F401  (registers the eval group)
from spravka.cli import kb as _kb  # noqa: F401  (registers ingest/search/docs/collections)
from spravka.cli import models as _models  # noqa: F401
from spravka.cli.base import app, main

__all__ = ["app", "main"]
