"""The field machinery: a setting that is a fixed value or a distribution (:func:`Searchable`), the base
of every section (:class:`Section`), and the field types several sections share."""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, PlainSerializer, WithJsonSchema

from search_spaces import DISTRIBUTIONS, Distribution, Domain, Relative

_DIST_SCHEMA = {
    "type": "object",
    "description": "a search distribution, e.g. {loguniform: [1e-5, 1e-3]} or {choice: [16, 32]}",
    "minProperties": 1,
    "maxProperties": 1,
    "propertyNames": {"enum": list(DISTRIBUTIONS)},
    "additionalProperties": {"type": "array"},
}


def _value_schema(domain: Domain) -> dict:
    if domain.kind == "choice":
        schema: dict = {"enum": list(domain.options)}
    elif domain.kind == "bool":
        schema = {"type": "boolean"}
    else:
        schema = {"type": "integer" if domain.kind == "int" else "number"}
        for key, bound in (
            ("minimum", domain.ge),
            ("exclusiveMinimum", domain.gt),
            ("maximum", domain.le),
            ("exclusiveMaximum", domain.lt),
        ):
            if bound is not None:
                schema[key] = bound
    if domain.nullable:
        schema = {"anyOf": [schema, {"type": "null"}]}
    return schema


_RATIO = Domain("float", gt=0)


_RELATIVE_SCHEMA = {
    "type": "object",
    "description": "derived from another group: {relative_to: GROUP, ratio: number or distribution}",
    "properties": {"relative_to": {"type": "string"}, "ratio": {"anyOf": [{"type": "number"}, _DIST_SCHEMA]}},
    "required": ["relative_to", "ratio"],
    "additionalProperties": False,
}


def _check_relative(raw: dict) -> Relative:
    if set(raw) != {"relative_to", "ratio"}:
        raise ValueError(
            "a derived value is {relative_to: GROUP, ratio: number or distribution}, "
            f"got keys {sorted(map(str, raw))}"
        )
    if not isinstance(raw["relative_to"], str):
        raise ValueError(f"relative_to names a parameter group, got {raw['relative_to']!r}")
    try:
        ratio = _RATIO.check(raw["ratio"])
    except ValueError as exc:
        raise ValueError(f"ratio: {exc}") from None
    return Relative(raw["relative_to"], ratio)


def _serialize(value: Any) -> Any:
    return value.to_spec() if isinstance(value, (Distribution, Relative)) else value


def Searchable(domain: Domain, description: str, derivable: bool = False) -> Any:
    """A hyperparameter field: a fixed value or a distribution, checked against ``domain``.

    A ``derivable`` field may also be written relative to another group's value.
    """

    def check(raw: Any) -> Any:
        if derivable and isinstance(raw, dict) and "relative_to" in raw:
            return _check_relative(raw)
        return domain.check(raw)

    accepted = [_value_schema(domain), _DIST_SCHEMA] + ([_RELATIVE_SCHEMA] if derivable else [])
    return Annotated[
        Any,
        BeforeValidator(check),
        PlainSerializer(_serialize),
        WithJsonSchema(
            {"description": f"{description}; accepts {domain.describe()}, or a distribution", "anyOf": accepted}
        ),
    ]


POSITIVE = Domain("float", gt=0)


NON_NEGATIVE = Domain("float", ge=0)


FRACTION = Domain("float", ge=0, lt=1)


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


def _held_out(v: Union[float, str]) -> Union[float, str]:
    if isinstance(v, float) and not 0 < v < 1:
        raise ValueError(f"got {v}; a held-out fraction must be > 0 and < 1 (or give a split name)")
    return v


ValidationSplit = Annotated[Union[float, str], AfterValidator(_held_out)]


def _check_model_source(value: Any) -> Any:
    if isinstance(value, str):
        if not value.strip():
            raise ValueError("got an empty string; accepted: builtin:NAME, a hub id, a local folder, or a config")
        return value
    if isinstance(value, dict):
        if not isinstance(value.get("model_type"), str):
            raise ValueError(
                "a tower built from a config needs model_type (vit, clip_vision_model, bert, ...), "
                f"got keys {sorted(value)}"
            )
        return value
    raise ValueError(
        f"got {value!r}; accepted: builtin:NAME, a hub id or a local folder (pretrained), "
        "or a config mapping with model_type (random init)"
    )


Tower = Annotated[
    Any,
    BeforeValidator(_check_model_source),
    WithJsonSchema(
        {
            "description": "builtin:NAME, a hub id or a local folder (pretrained weights), "
            "or a transformers config with model_type (random init)",
            "anyOf": [{"type": "string"}, {"type": "object", "required": ["model_type"]}],
        }
    ),
]


def fills(name: str):
    """A validator of a template that fills in ``{name}`` and nothing else."""

    def check(v: str) -> str:
        try:
            filled = v.format(**{name: "\0"})
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"got {v!r}: only {{{name}}} may be filled in ({exc})") from None
        if "\0" not in filled:
            raise ValueError(f"got {v!r}; the template must contain {{{name}}}")
        return v

    return check
