"""Small helpers several test modules share."""

from __future__ import annotations

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
