"""Document metadata: folder defaults, sidecars, front matter and the path.

Precedence, weakest first: ``_meta.yaml`` of each folder from the root down, the file's own
front matter or record fields, then a sidecar ``<file>.meta.yaml`` (an explicit override).
Values are normalised to strings (dates as ISO ``YYYY-MM-DD``) or lists of strings, so filters
compare them the same way in every backend.
"""

from __future__ import annotations

import datetime as dt
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from spravka.core.errors import LoaderError
from spravka.core.types import PUBLIC_GROUP

FOLDER_META = "_meta.yaml"
SIDECAR_SUFFIXES = (".meta.yaml", ".meta.yml", ".meta.json")
GROUP_KEYS = ("access_groups", "groups", "access")
#: keys the loader derives; a user's metadata cannot override them
PATH_KEYS = ("path", "folder", "format")


def is_metadata_file(path: Path) -> bool:
    return path.name == FOLDER_META or path.name.endswith(SIDECAR_SUFFIXES)


def _load_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, yaml.YAMLError, json.JSONDecodeError) as e:
        raise LoaderError(f"invalid metadata file {path.name}: {e}", reason="metadata") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise LoaderError(f"metadata file {path.name} must hold a mapping", reason="metadata")
    return data


def normalize_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
    if isinstance(value, list | tuple | set):
        return [normalize_value(v) for v in value if v is not None]
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return "" if value is None else str(value).strip()


def normalize_groups(value: Any) -> tuple[str, ...]:
    if value is None or value == "" or value == []:
        return (PUBLIC_GROUP,)
    items = [value] if isinstance(value, str) else list(value)
    groups = []
    for item in items:
        for g in str(item).split(","):
            g = g.strip().lower()
            if g and g not in groups:
                groups.append(g)
    return tuple(sorted(groups)) or (PUBLIC_GROUP,)


class MetadataResolver:
    """Resolves metadata for files under one ingestion root (folder files are read once)."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    @lru_cache(maxsize=4096)  # noqa: B019 - one resolver per ingestion run
    def _folder_defaults(self, folder: Path) -> dict[str, Any]:
        parent: dict[str, Any] = {}
        if folder != self.root and self.root in folder.parents:
            parent = dict(self._folder_defaults(folder.parent))
        meta_file = folder / FOLDER_META
        if meta_file.is_file():
            parent.update(_load_yaml(meta_file))
        return parent

    def sidecar(self, path: Path) -> dict[str, Any]:
        for suffix in SIDECAR_SUFFIXES:
            candidate = path.with_name(path.name + suffix)
            if candidate.is_file():
                return _load_yaml(candidate)
        return {}

    def resolve(
        self, path: Path, own: dict[str, Any], fmt: str, record: dict[str, Any] | None = None
    ) -> tuple[str | None, tuple[str, ...], dict[str, Any]]:
        """Merge everything that applies to ``path`` (and one record of it). Returns
        ``(title or None, access groups, metadata)``."""
        path = path.resolve()
        merged: dict[str, Any] = {}
        merged.update(self._folder_defaults(path.parent))
        merged.update(own)
        merged.update(self.sidecar(path))
        if record:
            merged.update(record)
        title = merged.pop("title", None)
        groups_raw = None
        for key in GROUP_KEYS:
            if key in merged:
                groups_raw = merged.pop(key)
        meta = {str(k): normalize_value(v) for k, v in merged.items() if v is not None}
        rel = path.relative_to(self.root) if self.root in path.parents else Path(path.name)
        meta["path"] = rel.as_posix()
        meta["folder"] = rel.parts[0] if len(rel.parts) > 1 else ""
        meta["format"] = fmt
        return (str(title).strip() if title else None), normalize_groups(groups_raw), meta
