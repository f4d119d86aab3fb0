"""``milvus://`` URLs → client settings, and the SQLite side database that closes the client."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from spravka.core.errors import ConfigError
from spravka.store.sqlite.db import Database


@dataclass(frozen=True, slots=True)
class MilvusConfig:
    #: ``http(s)://host:port`` for a server, a ``.db`` file path for Milvus Lite
    uri: str
    token: str = ""
    db_name: str = ""
    #: Milvus collections are named ``<prefix>_<collection>_<hash>``: one Milvus can serve several
    #: Spravka installations (and tests) side by side
    prefix: str = "spravka"

    @property
    def lite(self) -> bool:
        return not self.uri.startswith(("http://", "https://", "tcp://", "unix:"))


def parse_url(url: str, home: Path) -> MilvusConfig:
    """``milvus://host:19530/db?prefix=kb&token=…`` (a server; ``user:password@`` becomes the token),
    ``milvus+https://…`` (TLS), ``milvus:///abs/file.db`` (Milvus Lite), ``milvus://`` or ``milvus``
    (Milvus Lite in ``<home>/milvus.db``)."""
    if url in ("milvus", "milvus-lite"):
        return MilvusConfig(str(home / "milvus.db"))
    parts = urlsplit(url)
    scheme = parts.scheme
    if scheme not in ("milvus", "milvus+http", "milvus+https"):
        raise ConfigError(
            f"not a Milvus URL: {url}", hint="use milvus://host:19530 or milvus:///path/file.db"
        )
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    prefix = query.get("prefix", "spravka")
    if not prefix[:1].isalpha() or not prefix.replace("_", "").isalnum():
        raise ConfigError(
            f"bad Milvus collection prefix '{prefix}'", hint="letters, digits and _, starting with a letter"
        )
    if not parts.hostname:
        path = unquote(parts.path) or str(home / "milvus.db")
        return MilvusConfig(path, prefix=prefix)
    token = query.get("token", "")
    if parts.username:
        token = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
    http = "https" if scheme == "milvus+https" or query.get("secure") in ("1", "true") else "http"
    return MilvusConfig(
        f"{http}://{parts.hostname}:{parts.port or 19530}",
        token=token,
        db_name=parts.path.strip("/"),
        prefix=prefix,
    )


class SideDatabase(Database):
    """The data directory's SQLite database, which also closes the Milvus client(s) with it."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._attached: list[Any] = []

    def attach(self, closeable: Any) -> None:
        self._attached.append(closeable)

    def close(self) -> None:
        for c in self._attached:
            with contextlib.suppress(Exception):  # closing on the way out must not mask the real error
                c.close()
        self._attached.clear()
        super().close()
