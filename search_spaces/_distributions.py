"""Hyperparameter values: a fixed value or a search distribution.

In a spec every hyperparameter is written either as a plain value
(``lr: 3.0e-5``) or as a one-key mapping naming a distribution::

    lr: {loguniform: [1.0e-5, 1.0e-3]}
    batch_size: {choice: [16, 32]}
    optimizer: {grid: [adamw, sgd]}

Each hyperparameter field has a :class:`Domain` saying which values make sense
(``lr > 0``, ``0 <= dropout < 1``, ``optimizer in {sgd, adam, adamw, rmsprop}``).
A fixed value is checked against it; a distribution has every value it can
produce checked against it (its bounds, or each of its choices), so a bad search
space is refused before any trial runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

DISTRIBUTIONS = ("uniform", "loguniform", "quniform", "randint", "choice", "grid")


@dataclass(frozen=True)
class Distribution:
    """A search distribution; ``args`` as written in the spec.

    - ``uniform: [low, high]``, ``loguniform: [low, high]`` (low > 0): floats in [low, high)
    - ``quniform: [low, high, q]``: uniform rounded to a multiple of ``q``
    - ``randint: [low, high]``: integers in [low, high) (high exclusive, as Ray Tune)
    - ``choice: [a, b, ...]``: sampled; ``grid: [a, b, ...]``: every value is tried
    """

    kind: str
    args: tuple

    @property
    def is_finite(self) -> bool:
        return self.kind in ("choice", "grid")

    @property
    def values(self) -> tuple:
        """The finite values of a choice or grid."""
        if not self.is_finite:
            raise TypeError(f"{self.kind} has no finite list of values")
        return self.args

    def to_spec(self) -> dict:
        return {self.kind: list(self.args)}

    def bounds(self) -> tuple[float, float]:
        return self.args[0], self.args[1]

    def contains(self, value: Any) -> bool:
        """Whether ``value`` is one this distribution can produce (a point to try, an earlier trial's)."""
        if self.is_finite:
            return value in self.values
        return _is_number(value) and self.args[0] <= value <= self.upper()

    def center(self) -> Any:
        """The middle of the range, as a first trial (Ax and SMAC start from it too).

        The geometric middle of a log range, the middle of a linear one (rounded to ``q``
        or to an integer), the lower middle of numeric choices, and the first listed
        of other choices (write the usual one first).
        """
        if self.is_finite:
            if all(_is_number(v) for v in self.values):
                ordered = sorted(self.values)
                return ordered[(len(ordered) - 1) // 2]
            return self.values[0]
        low, high = self.args[0], self.args[1]
        if self.kind == "loguniform":
            return math.sqrt(low * high)
        if self.kind == "randint":
            return (low + high - 1) // 2
        middle = (low + high) / 2
        if self.kind == "quniform":
            rounded = round(middle / self.args[2]) * self.args[2]
            return rounded if low <= rounded <= high else middle
        return middle

    def upper(self):
        """The largest value this distribution can produce (randint's high is exclusive)."""
        if self.is_finite:
            return max(self.values)
        return self.args[1] - 1 if self.kind == "randint" else self.args[1]


@dataclass(frozen=True)
class Relative:
    """A value derived from another group's: ``{relative_to: encoder, ratio: {loguniform: [3, 300]}}``.

    The trial uses ``ratio`` times the named group's value of the same field, so
    the relationship between groups (the head learning rate as a multiple of the
    encoder's) is what gets searched. ``ratio`` is a fixed number or a distribution.
    """

    relative_to: str
    ratio: Any

    def to_spec(self) -> dict:
        ratio = self.ratio.to_spec() if isinstance(self.ratio, Distribution) else self.ratio
        return {"relative_to": self.relative_to, "ratio": ratio}


def upper(value: Any) -> Any:
    """The largest value a hyperparameter (fixed or a distribution) can take."""
    return value.upper() if isinstance(value, Distribution) else value


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def parse_distribution(raw: dict) -> Distribution:
    """Turn ``{kind: args}`` into a :class:`Distribution`, checking its shape."""
    if len(raw) != 1:
        raise ValueError(
            f"a distribution is a mapping with exactly one key out of {', '.join(DISTRIBUTIONS)}, "
            f"got keys {sorted(map(str, raw))}"
        )
    ((kind, args),) = raw.items()
    if kind not in DISTRIBUTIONS:
        import difflib

        close = difflib.get_close_matches(str(kind), DISTRIBUTIONS, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ValueError(f"unknown distribution '{kind}'{hint}; accepted: {', '.join(DISTRIBUTIONS)}")
    if not isinstance(args, (list, tuple)):
        raise ValueError(f"{kind} takes a list, got {args!r}")
    args = tuple(args)
    if kind in ("choice", "grid"):
        if not args:
            raise ValueError(f"{kind} needs at least one value, got []")
        return Distribution(kind, args)
    n = 3 if kind == "quniform" else 2
    if len(args) != n or not all(_is_number(a) for a in args):
        shape = "[low, high, q]" if kind == "quniform" else "[low, high]"
        raise ValueError(f"{kind} takes {shape} as numbers, got {list(args)!r}")
    low, high = args[0], args[1]
    if not low < high:
        raise ValueError(f"{kind} needs low < high, got low={low}, high={high}")
    if kind == "loguniform" and low <= 0:
        raise ValueError(f"loguniform needs low > 0 (a log scale), got low={low}")
    if kind == "quniform" and args[2] <= 0:
        raise ValueError(f"quniform needs q > 0, got q={args[2]}")
    if kind == "randint" and not all(isinstance(a, int) for a in args):
        raise ValueError(f"randint takes integer bounds, got {list(args)!r}")
    return Distribution(kind, args)


@dataclass(frozen=True)
class Domain:
    """The values a hyperparameter accepts.

    ``kind`` is ``float``, ``int``, ``bool``, ``str`` (a model: any name) or ``choice`` (then ``options``).
    Numeric bounds: ``ge``/``gt`` below, ``le``/``lt`` above. ``nullable`` lets
    ``null`` mean "off" (e.g. no early stopping).
    """

    kind: str
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    options: tuple = ()
    nullable: bool = False

    def describe(self) -> str:
        if self.kind == "choice":
            text = "one of " + ", ".join(map(str, self.options))
        elif self.kind == "bool":
            text = "true or false"
        elif self.kind == "str":
            text = "a model: builtin:NAME, a hub id or a local folder"
        else:
            parts = []
            for op, bound in ((">=", self.ge), (">", self.gt), ("<=", self.le), ("<", self.lt)):
                if bound is not None:
                    parts.append(f"{op} {bound}")
            text = ("an integer" if self.kind == "int" else "a number") + (" " + " and ".join(parts) if parts else "")
        return text + (" (or null)" if self.nullable else "")

    def check_value(self, value: Any) -> Any:
        """Return ``value`` (ints widened to float for float domains) or raise ValueError."""
        if value is None:
            if self.nullable:
                return None
            raise ValueError(f"null is not accepted; expected {self.describe()}")
        if self.kind == "choice":
            if value not in self.options:
                raise ValueError(f"got {value!r}; accepted: {self.describe()}")
            return value
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise ValueError(f"got {value!r}; expected true or false")
            return value
        if self.kind == "str":
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"got {value!r}; expected {self.describe()}")
            return value
        if self.kind == "int" and not (isinstance(value, int) and not isinstance(value, bool)):
            raise ValueError(f"got {value!r}; expected {self.describe()}")
        if self.kind == "float" and not _is_number(value):
            raise ValueError(f"got {value!r}; expected {self.describe()}")
        bad = (
            (self.ge is not None and value < self.ge)
            or (self.gt is not None and value <= self.gt)
            or (self.le is not None and value > self.le)
            or (self.lt is not None and value >= self.lt)
        )
        if bad:
            raise ValueError(f"got {value!r}; expected {self.describe()}")
        return float(value) if self.kind == "float" else value

    def check(self, raw: Any) -> Any:
        """Validate a spec entry: a fixed value or a distribution over this domain."""
        if isinstance(raw, dict):
            dist = parse_distribution(raw)
            if dist.is_finite:
                for v in dist.values:
                    self.check_value(v)
                return dist
            if self.kind not in ("float", "int"):
                raise ValueError(f"{dist.kind} is for numbers; this field takes {self.describe()}: use choice or grid")
            if self.kind == "int" and dist.kind in ("uniform", "loguniform"):
                raise ValueError(
                    f"this field takes integers; {dist.kind} draws floats: use randint, "
                    f"quniform with an integer q, choice or grid"
                )
            low, high = dist.bounds()
            self.check_value(low)
            # high is exclusive for every continuous distribution and for randint
            top = high - 1 if dist.kind == "randint" else high
            if self.lt is not None and top > self.lt:
                raise ValueError(f"high={high} is out of range; expected {self.describe()}")
            if self.lt is None or top != self.lt:
                self.check_value(top)
            return dist
        return self.check_value(raw)
