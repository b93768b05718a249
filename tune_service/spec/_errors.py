"""The spec's errors: :class:`SpecError`, and pydantic's validation errors in its words (the field's path,
the value, what is accepted; an unknown key with the nearest known one)."""

from __future__ import annotations

import difflib
import typing
from collections.abc import Mapping
from typing import Annotated, Any, Optional, Union

from pydantic import BaseModel, ValidationError


class SpecError(ValueError):
    """A sweep spec is invalid. ``problems`` lists ``(field path, message)`` pairs."""

    def __init__(self, problems: list[tuple[str, str]], source: str | None = None):
        self.problems = problems
        self.source = source
        where = f" ({source})" if source else ""
        lines = [f"invalid sweep spec{where}:"]
        lines += [f"  - {path}: {msg}" if path else f"  - {msg}" for path, msg in problems]
        super().__init__("\n".join(lines))


def _unwrap(annotation: Any) -> list:
    """The model classes or dict value types an annotation can hold."""
    origin = typing.get_origin(annotation)
    if origin in (Union, Optional) or str(origin) == "types.UnionType":
        return [t for a in typing.get_args(annotation) for t in _unwrap(a)]
    if origin is Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    return [annotation]


def _fields_at(loc: tuple, root: Any) -> list[str]:
    """Field names of the model found by walking ``loc`` from the model class ``root``."""
    node: Any = root
    i = 0
    while i < len(loc):
        if not (isinstance(node, type) and issubclass(node, BaseModel)):
            return []
        field = node.model_fields.get(loc[i])
        if field is None:
            return []
        nxt = None
        for t in _unwrap(field.annotation):
            if typing.get_origin(t) is dict:
                nxt, i = typing.get_args(t)[1], i + 1  # skip the dict key
                break
            if isinstance(t, type) and issubclass(t, BaseModel):
                nxt = t
        node, i = nxt, i + 1
    if isinstance(node, type) and issubclass(node, BaseModel):
        return list(node.model_fields)
    return []


def _path(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def problems_from(exc: ValidationError, root: type[BaseModel], tasks: Mapping[str, type]) -> list[tuple[str, str]]:
    """``(field path, message)`` of each of pydantic's errors validating ``root``; ``tasks``: the task union's
    sections by their ``type`` tag."""
    problems, spec_root = [], root
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if p != "function-after")
        msg = err["msg"].removeprefix("Value error, ")
        root = None
        if loc[:1] == ("task",) and len(loc) > 1 and loc[1] in tasks:  # the union's tag, not a field
            root, loc = tasks[loc[1]], loc[:1] + loc[2:]
        if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
            got = err["input"].get("type") if isinstance(err["input"], dict) else None
            accepted = ", ".join(f"'{t}'" for t in tasks)
            msg = "required field is missing" if got is None else f"got {got!r}"
            problems.append((_path(loc + ("type",)), f"{msg}; accepted task types: {accepted}"))
            continue
        if err["type"] == "extra_forbidden":
            key = str(loc[-1])
            known = _fields_at(loc[1:-1], root) if root else _fields_at(loc[:-1], spec_root)
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.5)
            msg = f"unknown key '{key}'" + (f" (did you mean '{close[0]}'?)" if close else "")
            if known:
                msg += f"; accepted keys: {', '.join(known)}"
        elif err["type"] == "missing":
            msg = "required field is missing"
        elif err["type"] not in ("value_error", "assertion_error"):
            msg = f"{msg} (got {err['input']!r})"
        problems.append((_path(loc), msg))
    return problems
