"""A loopback port with nothing listening: the address of a dead server in tests."""

from __future__ import annotations

import socket


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port
