"""``resources``: what each trial (or each of its training workers) asks Ray for."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional

from pydantic import ByteSize, Field, ValidationError, WithJsonSchema, WrapValidator, field_validator

from ._fields import Section


def _memory(value: Any, handler) -> ByteSize:
    """Bytes (``1e9`` too, which YAML reads as text) or a size with a unit, through pydantic's ByteSize."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    try:
        if isinstance(value, bool):
            raise ValueError
        size = handler(value)
    except (ValueError, ValidationError):
        raise ValueError(f"got {value!r}: write bytes or a size such as 8GiB, 512MiB, 2GB") from None
    if size <= 0:
        raise ValueError(f"got {value!r}: memory must be more than 0 bytes")
    return size


Memory = Annotated[
    ByteSize,
    WrapValidator(_memory),
    WithJsonSchema({"anyOf": [{"type": "integer"}, {"type": "number"}, {"type": "string"}]}),
]


class Resources(Section):
    """What each trial asks Ray for; with ``workers`` > 1, what each of its training workers asks for.

    The driver checks these against the cluster's nodes before the first trial.
    """

    cpu: float = Field(1, gt=0, description="CPUs per trial or worker (also its torch threads)")
    gpu: float = Field(
        0, ge=0, description="GPUs per trial or worker; a fraction below 1 lets several trials share one GPU"
    )
    memory: Optional[Memory] = Field(
        None, description="memory per trial or worker, reserved by Ray's scheduler: bytes or a size (8GiB, 512MB)"
    )
    workers: int = Field(
        1, ge=1, le=1024, description="training workers per trial: more than 1 trains data-parallel (DDP, Ray Train)"
    )
    precision: Literal["fp32", "bf16", "fp16"] = Field(
        "fp32", description="mixed precision on GPU: bf16 or fp16 autocast (fp16 with loss scaling); fp32: none"
    )
    compile: bool = Field(
        False,
        description="train through torch.compile: the first steps compile (tens of seconds), the rest run "
        "faster on a GPU",
    )

    @field_validator("gpu")
    @classmethod
    def _whole_gpus(cls, v: float) -> float:
        if v > 1 and v != int(v):
            raise ValueError(f"got {v}: more than one GPU must be a whole number (a fraction shares one GPU)")
        return v
