"""The ``spravka`` command line. Thin: parse, call a capability, render.

Each command group lives in its own module and registers itself on :data:`app`; this keeps the
groups (ingest/search, models, eval, serve, ...) from growing into one file.
"""

from __future__ import annotations

from spravka.cli import agent as _agent  # noqa: F401  (registers the agent group)
from spravka.cli import answer as _answer  # noqa: F401  (registers ask/chat)
from spravka.cli import bot as _bot  # noqa: F401  (registers the bot group)
from spravka.cli import classify as _classify  # noqa: F401  (registers the classify group)
from spravka.cli import evaluate as _evaluate  # noqa: F401  (registers the eval group)
from spravka.cli import extract as _extract  # noqa: F401  (registers the extract group)
from spravka.cli import generate as _generate  # noqa: F401  (registers the generate group)
from spravka.cli import kb as _kb  # noqa: F401  (registers ingest/search/docs/collections)
from spravka.cli import keys as _keys  # noqa: F401  (registers the keys group)
from spravka.cli import migrate as _migrate  # noqa: F401  (registers migrate)
from spravka.cli import models as _models  # noqa: F401
from spravka.cli import outbox as _outbox  # noqa: F401  (registers the outbox group)
from spravka.cli import report as _report  # noqa: F401  (registers report and report purge)
from spravka.cli import serve as _serve  # noqa: F401  (registers serve)
from spravka.cli.base import app, main

__all__ = ["app", "main"]
