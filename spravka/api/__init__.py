"""The HTTP API (FastAPI): answers, OpenAI-compatible chat, search, documents, feedback,
escalations, keys, inbox, health and metrics. Needs the ``server`` extra."""

from __future__ import annotations


def create_app(*args, **kwargs):
    from spravka.api.app import create_app as _create

    return _create(*args, **kwargs)


__all__ = ["create_app"]
