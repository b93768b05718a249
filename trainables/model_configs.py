"""A transformers config built from the spec's mapping (``model_type`` plus settings: random weights).

The model's own config class checks each setting's type (transformers' strict dataclasses);
a setting it refuses becomes a :class:`~trainables.data.TaskError` naming the setting's own
field (``task.model.hidden_size``), the value and the type accepted, as every other field is named.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from .data import TaskError

# Python's type names, as the spec's readers write them
_TYPE_WORDS = {
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "str": "a string",
    "NoneType": "null",
    "list": "a list",
    "dict": "a mapping",
    "tuple": "a list",
}


def from_settings(settings: Mapping, field: str):
    """``AutoConfig.for_model(model_type, **rest)``; a :class:`TaskError` on ``field.SETTING`` if one is refused."""
    from transformers import AutoConfig

    rest = dict(settings)
    model_type = rest.pop("model_type")
    try:
        return AutoConfig.for_model(model_type, **rest)
    except _refusals("StrictDataclassFieldValidationError") as exc:  # one setting's type
        setting = _quoted(str(exc))  # the error names its field only in its message
        raise TaskError(_refusal(exc.__cause__ or exc, rest.get(setting)), f"{field}.{setting}") from None
    except _refusals("StrictDataclassClassValidationError") as exc:  # settings that do not fit together
        raise TaskError(f"the config's settings do not fit together: {exc.__cause__ or exc}", field) from None


def _refusals(name: str) -> tuple[type[Exception], ...]:
    """huggingface_hub's strict-dataclass error ``name`` (its newer releases have them); none before them."""
    from huggingface_hub import errors

    found = getattr(errors, name, None)
    return (found,) if found is not None else ()


def _quoted(message: str) -> str:
    found = re.search(r"field '([^']+)'", message)
    return found.group(1) if found else "?"


def _refusal(cause: BaseException, value) -> str:
    """``expected an integer, got 'banana'`` from the dataclass's ``expected int, got str`` wording."""
    expected = list(dict.fromkeys(re.findall(r"expected (\w+)", str(cause))))
    words = [_TYPE_WORDS.get(name, name) for name in expected]
    if not words:
        return f"got {value!r}: {cause}"
    return f"expected {' or '.join(words)}, got {value!r}"
