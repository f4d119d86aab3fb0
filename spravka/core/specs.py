"""Small YAML specifications (extraction schemas, generation templates and tones, agents and
connectors): found by name among the built-in ones or given as a file, read, and validated by a
pydantic model, with every failure an ``InputError`` that names the file and the place."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from spravka.core.errors import InputError, NotFoundError

M = TypeVar("M", bound=BaseModel)
#: the names of specs and of their fields: lower case letters, digits and _
NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def builtin_names(folder: Path) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.yaml"))


def find(kind: str, folder: Path, name_or_path: str | Path) -> Path:
    """A built-in spec of ``folder`` by name, or a path to a ``.yaml`` file."""
    p = Path(name_or_path)
    if p.suffix.lower() not in (".yaml", ".yml"):
        p = folder / f"{name_or_path}.yaml"
        if not NAME.match(str(name_or_path)) or not p.is_file():
            raise NotFoundError(f"no {kind} '{str(name_or_path)[:64]}'",
                                hint=f"built-in: {', '.join(builtin_names(folder))}; or a path to a .yaml file")
    elif not p.is_file():
        raise NotFoundError(f"{kind} file {p} not found")
    return p


def read(kind: str, path: Path) -> dict[str, Any]:
    """A YAML file that must hold a mapping."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise InputError(f"{kind} {path} is not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise InputError(f"{kind} {path} must be a mapping")
    return raw


def validate(model: type[M], raw: dict[str, Any], where: str) -> M:
    try:
        return model.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(x) for x in err["loc"]) or "top level"
        raise InputError(f"{where}: {err['msg']} at {loc}") from None


def load(kind: str, folder: Path, name_or_path: str | Path, model: type[M]) -> tuple[M, Path]:
    """Find, read and validate one spec."""
    path = find(kind, folder, name_or_path)
    return validate(model, read(kind, path), f"{kind} {path}"), path
