"""Reading a spec: YAML (a key written twice refused) or a dict, checked against the schema."""

from __future__ import annotations

import copy
import typing
from pathlib import Path
from typing import Any, Union

import yaml
from pydantic import ValidationError

from ._errors import SpecError, problems_from
from ._sweep import TASKS, SweepSpec


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key written twice in one mapping (YAML lets the last one win)."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if isinstance(key, typing.Hashable) and key in seen:
                raise SpecError(
                    [("", f"key {key!r} is written twice in one mapping, at lines {seen[key]} and {line}: keep one")]
                )
            if isinstance(key, typing.Hashable):
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


def _read_yaml(path: Path) -> Any:
    """The spec file's data; a :class:`SpecError` saying why it cannot be read."""
    label = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SpecError([("", f"cannot read the spec file: {exc.strerror}")], label) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(
            [("", f"the spec file is not UTF-8 text (byte {exc.start}: {raw[exc.start]:#x})")], label
        ) from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except SpecError as exc:
        raise SpecError(exc.problems, label) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError([("", f"YAML syntax error{where}: {problem}")], label) from None
    if data is None:
        raise SpecError([("", "the spec file is empty")], label)
    return data


def parse_spec(source: Union[SweepSpec, dict, str, Path]) -> SweepSpec:
    """A :class:`SweepSpec` from itself, a dict or a YAML file path, checked against the schema alone.

    Raises :class:`SpecError` listing every field at fault. The rules across
    fields and sections are :func:`tune_service.validate.load_spec`'s.
    """
    data, label = read_spec(source)
    try:
        return SweepSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(problems_from(exc, SweepSpec, TASKS), label) from None


def read_spec(source: Union[SweepSpec, dict, str, Path]) -> tuple[dict, str | None]:
    """The spec as plain data (a copy) and the file it came from; :class:`SpecError` if it is not a mapping."""
    label = None
    if isinstance(source, SweepSpec):
        data: Any = source.to_dict()
    elif isinstance(source, (str, Path)):
        label, data = str(source), _read_yaml(Path(source))
    elif isinstance(source, dict):
        data = copy.deepcopy(source)
    else:
        raise TypeError(f"spec must be a SweepSpec, dict or path, got {type(source).__name__}")
    if not isinstance(data, dict):
        raise SpecError(
            [("", f"a spec is a mapping of sections (name, task, ...), got {type(data).__name__}")],
            label,
        )
    return data, label
