"""Small helpers several test modules share."""

from __future__ import annotations

import json
import socket


def closed_port() -> int:
    """A loopback port with nothing listening: the address of a dead server."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def bearer(key: str) -> dict[str, str]:
    """The headers of an HTTP API call made with ``key``."""
    return {"Authorization": f"Bearer {key}"}


def sse_events(text: str) -> list[tuple[str, dict]]:
    """The (event, data) pairs of a server-sent events body."""
    out = []
    for frame in text.split("\n\n"):
        name, data = "message", []
        for line in frame.splitlines():
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
        if data:
            out.append((name, json.loads("\n".join(data))))
    return out
