"""Server-sent events, shared by the streaming routes (``/v1/ask``, ``/v1/chat/completions``,
``/v1/generate``): the frame format, the headers, and the two guards every stream needs."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator
from itertools import chain
from typing import Any

from spravka.api.errors import error_body
from spravka.core.errors import SpravkaError

log = logging.getLogger("spravka.api")

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
SSE_DOC: dict[int | str, dict[str, Any]] = {200: {"content": {"text/event-stream": {"schema": {"type": "string"}}},
                                            "description": "With stream=true: server-sent events"}}


def sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False, separators=(',', ':'))}\n\n"


def first_event(events: Iterator[Any]) -> Iterator[Any]:
    """Pull the first event now, so that errors before the first byte get a real HTTP status."""
    first = next(events)
    return chain([first], events)


def stream_errors(gen: Iterable[str], err_frame: Callable[[dict[str, Any]], str]) -> Iterator[str]:
    """The stream ends with an error frame instead of a cut connection."""
    try:
        yield from gen
    except SpravkaError as e:
        yield err_frame(error_body(e.code, e.message, e.hint))
    except Exception:  # noqa: BLE001 - the stream ends with an error event, the process lives on
        log.exception("stream failed")
        yield err_frame(error_body("internal", "internal error; the server log has the details"))
