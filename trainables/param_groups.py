"""Split a model's parameters into named groups, one optimizer each.

The one place that decides which parameter belongs to which module. It proves
the split is a partition: every trainable parameter sits in exactly one group,
or the call fails listing the strays and the overlaps.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from torch import nn

log = logging.getLogger(__name__)


class ParamGroupError(ValueError):
    """The group selectors do not partition the model's trainable parameters."""


@dataclass(frozen=True)
class Selector:
    """Parameters whose name starts with one of ``prefix`` or matches ``regex``."""

    prefix: Sequence[str] = ()
    regex: str | None = None
    _compiled: re.Pattern | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.regex is not None:
            object.__setattr__(self, "_compiled", re.compile(self.regex))

    @classmethod
    def from_dict(cls, d: Mapping) -> Selector:
        return cls(prefix=tuple(d.get("prefix") or ()), regex=d.get("regex"))

    def matches(self, name: str) -> bool:
        if any(name.startswith(p) for p in self.prefix):
            return True
        return bool(self._compiled and self._compiled.search(name))


def default_selectors(model: nn.Module) -> dict[str, Selector]:
    """``encoder``: the pretrained base model; ``head``: everything else.

    Works for any transformers model with a ``base_model_prefix`` (``bert``,
    ``distilbert``, ``roberta``...).
    """
    prefix = getattr(model, "base_model_prefix", "")
    if not prefix or not any(n.startswith(prefix + ".") for n, _ in model.named_parameters()):
        raise ParamGroupError(
            f"{type(model).__name__} has no base model under a `base_model_prefix`; "
            f"name the parameter groups in task.groups"
        )
    escaped = re.escape(prefix + ".")
    return {"encoder": Selector(prefix=(prefix + ".",)), "head": Selector(regex=f"^(?!{escaped})")}


def build_param_groups(
    model: nn.Module, selectors: Mapping[str, Selector]
) -> dict[str, list[tuple[str, nn.Parameter]]]:
    """Assign each trainable parameter of ``model`` to exactly one named group.

    Returns ``{group: [(param name, param), ...]}`` in the model's parameter
    order. Raises :class:`ParamGroupError` when a trainable parameter matches no
    group, more than one group, or a group matches nothing.
    """
    groups: dict[str, list[tuple[str, nn.Parameter]]] = {g: [] for g in selectors}
    strays: list[str] = []
    overlaps: list[str] = []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        owners = [g for g, sel in selectors.items() if sel.matches(name)]
        if not owners:
            strays.append(name)
        elif len(owners) > 1:
            overlaps.append(f"{name} ({', '.join(owners)})")
        else:
            groups[owners[0]].append((name, param))
    empty = [g for g, members in groups.items() if not members]
    problems = []
    if strays:
        problems.append(f"{len(strays)} parameters in no group: {_short(strays)}")
    if overlaps:
        problems.append(f"{len(overlaps)} parameters in several groups: {_short(overlaps)}")
    if empty:
        problems.append(f"groups matching no parameter: {', '.join(empty)}")
    if problems:
        raise ParamGroupError("parameter groups must partition the model; " + "; ".join(problems))
    for g, members in groups.items():
        log.info("group %s: %d tensors, %d parameters", g, len(members), count(members))
    return groups


def count(members: Sequence[tuple[str, nn.Parameter]]) -> int:
    return sum(p.numel() for _, p in members)


def _short(names: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" ... and {len(names) - limit} more" if len(names) > limit else "")
