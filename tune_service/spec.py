"""The sweep spec's schema: a typed description of one hyperparameter sweep, and nothing else.

A spec is written once, as YAML or as the same structure in Python.
:func:`parse_spec` checks it against the schema (types, ranges, unknown keys, a
key written twice) and raises :class:`SpecError`, whose message names each bad
field by its path, the value found and what would be accepted. The rules across
fields and every later check are :mod:`tune_service.validate`'s.

Layout (see ``examples/quickstart.yaml``)::

    name, description
    task:            what is fine-tuned on what (model, dataset, parameter groups)
    hyperparameters: per-group optimizer settings and trial-wide settings; each a
                     fixed value or a distribution ({loguniform: [low, high]}, ...)
    search:          strategy, metric, mode, trial count, concurrency, time budget
    resources:       per trial
    mlflow:          where trials are tracked
"""

from __future__ import annotations

import copy
import difflib
import re
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ByteSize,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    WithJsonSchema,
    WrapValidator,
    field_validator,
    model_validator,
)

from search_spaces import (
    CONDITIONS,
    DISTRIBUTIONS,
    LR_SCHEDULERS,
    OPTIMIZERS,
    PRESETS,
    SAMPLERS,
    SCHEDULERS,
    SEARCHERS,
    Distribution,
    Domain,
    Relative,
)
from trainables.manifest import DEFAULT_CAUSAL_LM, DEFAULT_VISION_TOWER, LORA_TARGET_PRESETS
from trainables.manifest import TASKS as TASK_MANIFESTS

__all__ = ["SpecError", "SweepSpec", "parse_spec", "smoke_spec", "TASKS"]

SMOKE_TRIALS = 2


class SpecError(ValueError):
    """A sweep spec is invalid. ``problems`` lists ``(field path, message)`` pairs."""

    def __init__(self, problems: list[tuple[str, str]], source: str | None = None):
        self.problems = problems
        self.source = source
        where = f" ({source})" if source else ""
        lines = [f"invalid sweep spec{where}:"]
        lines += [f"  - {path}: {msg}" if path else f"  - {msg}" for path, msg in problems]
        super().__init__("\n".join(lines))


# --------------------------------------------------------------------------- fields

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


def HP(domain: Domain, description: str, derivable: bool = False) -> Any:
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


_pos = Domain("float", gt=0)
_nonneg = Domain("float", ge=0)
_unit = Domain("float", ge=0, lt=1)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


class GroupHyperparameters(_Strict):
    """Optimizer, LR schedule and freezing for one parameter group (its own optimizer)."""

    lr: HP(_pos, "peak learning rate, or {relative_to: GROUP, ratio: ...} times another group's", derivable=True)
    optimizer: HP(Domain("choice", options=OPTIMIZERS), "optimizer type") = "adamw"
    weight_decay: HP(_nonneg, "weight decay (decoupled for adamw)") = 0.0
    momentum: HP(_unit, "momentum (sgd, rmsprop)") = 0.9
    beta1: HP(_unit, "first-moment decay (adam, adamw)") = 0.9
    beta2: HP(_unit, "second-moment decay (adam, adamw)") = 0.999
    scheduler: HP(Domain("choice", options=LR_SCHEDULERS), "LR schedule") = "constant"
    warmup_ratio: HP(_unit, "fraction of training steps of linear warmup") = 0.0
    gamma: HP(Domain("float", gt=0, le=1), "decay factor (step: per step_epochs; exponential: per epoch)") = 0.5
    step_epochs: HP(Domain("int", ge=1), "epochs between decays of the step schedule") = 1
    decay: HP(_nonneg, "inverse_time decay: lr / (1 + decay * epoch)") = 1.0
    frozen: HP(Domain("bool"), "freeze this group's parameters") = False
    unfreeze_epoch: HP(Domain("int", ge=1, nullable=True), "first epoch in which a frozen group trains") = None
    layer_decay: HP(
        Domain("float", gt=0, le=1, nullable=True),
        "layer-wise rate decay: the group's top layer at lr, each layer below at layer_decay times the one above, "
        "the embeddings last; null: one rate",
    ) = None


class AdapterHyperparameters(_Strict):
    """A LoRA adapter's settings (with ``task.adapter``): its rank, scale and dropout, each fixed or searched."""

    r: HP(Domain("int", ge=1), "rank of the A and B matrices") = 8
    alpha: HP(_pos, "scale: the adapter's update is multiplied by alpha / r") = 16.0
    dropout: HP(Domain("float", ge=0, lt=1), "dropout on the adapter's input") = 0.0
    target_modules: HP(
        Domain("choice", options=LORA_TARGET_PRESETS, nullable=True),
        "the modules adapted, a preset (searchable: {choice: [attention, attention+mlp]}); "
        "null: task.adapter.target_modules",
    ) = None


class Hyperparameters(_Strict):
    """Everything a trial is configured by; each entry fixed or searched."""

    groups: dict[str, GroupHyperparameters]
    adapter: Optional[AdapterHyperparameters] = Field(
        None, description="the adapter's rank, scale and dropout (with task.adapter; default r 8, alpha 16)"
    )
    batch_size: HP(Domain("int", ge=1), "training batch size") = 16
    epochs: HP(Domain("int", ge=1), "training epochs") = 1
    dropout: HP(Domain("float", ge=0, lt=1, nullable=True), "dropout of every dropout layer") = None
    l1: HP(_nonneg, "L1 penalty on weights, added to the loss") = 0.0
    l2: HP(_nonneg, "L2 penalty on weights, added to the loss") = 0.0
    max_grad_norm: HP(Domain("float", gt=0, nullable=True), "gradient clipping norm") = 1.0
    frozen_layers: HP(Domain("int", ge=0), "the K lowest layers frozen, the embeddings counting as the first") = 0
    early_stopping_patience: HP(
        Domain("int", ge=1, nullable=True), "epochs without improvement before a trial stops"
    ) = None
    seed: HP(Domain("int", ge=0), "seed of model init, dropout and data order") = 0
    model: HP(
        Domain("str", nullable=True),
        "the base model a trial fine-tunes, searched: set from task.model when it is {choice: [...]} or "
        "{grid: [...]}; null: task.model",
    ) = None

    @field_validator("groups")
    @classmethod
    def _some_group(cls, groups: dict) -> dict:
        if not groups:
            raise ValueError("at least one parameter group is needed")
        return groups


class GroupSelector(_Strict):
    """Which parameters (by name) form a group: name prefixes and/or a regex."""

    prefix: list[str] = Field(default_factory=list)
    regex: Optional[str] = None

    @model_validator(mode="after")
    def _check(self) -> GroupSelector:
        if not self.prefix and self.regex is None:
            raise ValueError("a group selector needs `prefix` (a list of name prefixes) or `regex`")
        if self.regex is not None:
            try:
                re.compile(self.regex)
            except re.error as exc:
                raise ValueError(f"regex {self.regex!r} does not compile: {exc}") from None
        return self


def _held_out(v: Union[float, str]) -> Union[float, str]:
    if isinstance(v, float) and not 0 < v < 1:
        raise ValueError(f"got {v}; a held-out fraction must be > 0 and < 1 (or give a split name)")
    return v


ValidationSplit = Annotated[Union[float, str], AfterValidator(_held_out)]


class _Splits(_Strict):
    """Which rows train and which validate, shared by every task's dataset section."""

    train_split: str = "train"
    validation_split: ValidationSplit = Field(
        0.2, description="a split name, or the fraction of train held out for validation"
    )
    test_split: Optional[ValidationSplit] = Field(
        None,
        description="rows no trial sees, scoring the best trials once at the end: a split name, or the fraction "
        "of train held out before the validation split",
    )
    train_size: Optional[int] = Field(None, ge=1, description="train subset size (null: all)")
    validation_size: Optional[int] = Field(None, ge=1, description="validation subset size")
    seed: int = Field(0, ge=0, description="seed of the split and subsets (the same for every trial)")

    @model_validator(mode="after")
    def _test_apart(self) -> _Splits:
        if isinstance(self.test_split, str) and self.test_split in (self.train_split, self.validation_split):
            raise ValueError(f"test_split={self.test_split!r} is also the train or validation split: the test "
                             "rows must be ones no trial sees; name another split or give a fraction")  # fmt: skip
        return self


class DatasetSpec(_Splits):
    """A dataset: ``builtin:NAME``, a local CSV/JSON/JSONL/parquet file, or a hub id."""

    source: str = "builtin:rotten_tomatoes"
    config_name: Optional[str] = Field(None, description="hub dataset configuration, e.g. sst2 of glue")
    text_column: str = "text"
    label_column: str = "label"


class AdapterSpec(_Strict):
    """A LoRA adapter on the pretrained model (``peft``): the base stays frozen, the adapter and the head train."""

    type: Literal["lora"] = "lora"
    target_modules: Union[Literal[LORA_TARGET_PRESETS], list[str]] = Field(
        "attention",
        description="the modules adapted: attention (peft's list for the architecture, e.g. query and value), "
        "attention+mlp (every linear layer of the layers), all-linear, or a list of module names; "
        "hyperparameters.adapter.target_modules searches the presets",
    )


TOWERS = TASK_MANIFESTS["image_text"].towers  # a dual encoder's towers: vision, text


class TowerAdapterSpec(AdapterSpec):
    """LoRA adapters on a dual encoder's pretrained towers; a tower not adapted trains in full."""

    towers: Optional[list[Literal[TOWERS]]] = Field(
        None, min_length=1, description="the towers adapted; null: every tower loaded with pretrained weights"
    )


class _Task(_Strict):
    groups: Optional[dict[str, GroupSelector]] = Field(
        None, description="parameter groups by name (prefixes or a regex); default: the task's own"
    )

    @property
    def group_names(self) -> tuple[str, ...]:
        """The parameter groups: the spec's, else the task's default ones (lora_A, lora_B, head under an adapter)."""
        if self.groups:
            return tuple(self.groups)
        manifest = TASK_MANIFESTS[self.type]
        return manifest.adapter_groups(self.adapted_towers) if self.adapter else manifest.default_groups

    @property
    def adapted_towers(self) -> tuple[str, ...]:
        """The towers under an adapter (a multi-tower task's); () for a single model or without one."""
        return ()

    @property
    def base_model(self) -> str:
        """What an adapter goes on, as the spec names it (a dual encoder's: each adapted tower's)."""
        if self.adapted_towers:
            return ", ".join(f"{t}: {getattr(self, f'{t}_model')}" for t in self.adapted_towers)
        return str(getattr(self, "model", ""))


class TextClassificationTask(_Task):
    """Sequence classification: a pretrained encoder plus a new classification head."""

    type: Literal["text_classification"]
    model: HP(
        Domain("str"),
        "the base model: builtin:minilm, a hub id or a local path; {choice: [...]} or {grid: [...]} searches it",
    ) = "builtin:minilm"

    @property
    def models(self) -> tuple[str, ...]:
        """Every base model a trial may fine-tune: task.model, or each of its choices."""
        return tuple(self.model.values) if isinstance(self.model, Distribution) else (self.model,)

    dataset: DatasetSpec = DatasetSpec()
    max_length: int = Field(128, ge=8, le=8192, description="tokens per example")
    adapter: Optional[AdapterSpec] = Field(
        None,
        description="train a LoRA adapter (and the head) instead of every weight; its settings in "
        "hyperparameters.adapter",
    )


def _check_tower(value: Any) -> Any:
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
    BeforeValidator(_check_tower),
    WithJsonSchema(
        {
            "description": "builtin:NAME, a hub id or a local folder (pretrained weights), "
            "or a transformers config with model_type (random init)",
            "anyOf": [{"type": "string"}, {"type": "object", "required": ["model_type"]}],
        }
    ),
]


def _fills(name: str):
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


class ImageTextDatasetSpec(_Splits):
    """Images with captions and/or labels: ``builtin:fashion_mnist``, an image folder, a CSV/JSON/parquet
    file with image paths, or a hub id."""

    source: str = "builtin:fashion_mnist"
    config_name: Optional[str] = Field(None, description="hub dataset configuration")
    image_column: str = "image"
    caption_column: Optional[str] = Field(None, description="each image's caption; null: captions from labels")
    label_column: Optional[str] = Field(
        "label", description="class labels (zero-shot accuracy; captions when there is no caption_column)"
    )
    caption_template: Annotated[str, AfterValidator(_fills("label"))] = Field(
        "a photo of a {label}", description="a class's caption, {label} standing for its name"
    )
    validation_split: ValidationSplit = Field(
        "test", description="a split name, or the fraction of train held out for validation"
    )

    @model_validator(mode="after")
    def _captions(self) -> ImageTextDatasetSpec:
        if self.caption_column is None and self.label_column is None:
            raise ValueError("give caption_column, label_column or both: every image needs a caption")
        return self


class ImageTextTask(_Task):
    """A vision-text dual encoder (CLIP-style): a vision tower, a text tower and projections."""

    type: Literal["image_text"]
    vision_model: Tower = Field(default_factory=lambda: dict(DEFAULT_VISION_TOWER))
    text_model: Tower = "builtin:minilm"
    tokenizer: Optional[str] = Field(None, description="default: the text tower's; required for a config text tower")
    projection_dim: int = Field(128, ge=1, le=8192, description="size of the shared embedding space")
    dataset: ImageTextDatasetSpec = ImageTextDatasetSpec()
    max_length: int = Field(32, ge=4, le=8192, description="tokens per caption")
    adapter: Optional[TowerAdapterSpec] = Field(
        None,
        description="LoRA adapters on the pretrained towers (the projections and any tower not adapted train "
        "in full); their settings in hyperparameters.adapter",
    )

    @property
    def pretrained_towers(self) -> tuple[str, ...]:
        """The towers loaded with pretrained weights (named by a source, not built from a config)."""
        return tuple(t for t in TOWERS if isinstance(getattr(self, f"{t}_model"), str))

    @property
    def adapted_towers(self) -> tuple[str, ...]:
        return tuple(self.adapter.towers) if self.adapter is not None and self.adapter.towers else ()

    @model_validator(mode="before")
    @classmethod
    def _default_towers(cls, data: Any) -> Any:
        """An adapter naming no towers adapts every pretrained one (named by a source, not built from a config)."""
        adapter = data.get("adapter") if isinstance(data, dict) else None
        if isinstance(adapter, dict) and adapter.get("towers") is None:
            default = {t: cls.model_fields[f"{t}_model"].get_default(call_default_factory=True) for t in TOWERS}
            sources = [data.get(f"{t}_model", default[t]) for t in TOWERS]
            pretrained = [t for t, source in zip(TOWERS, sources) if isinstance(source, str)]
            if pretrained:
                data = {**data, "adapter": {**adapter, "towers": pretrained}}
        return data

    @model_validator(mode="after")
    def _adapt_pretrained(self) -> ImageTextTask:
        if self.adapter is None:
            return self
        if not self.adapter.towers:
            raise ValueError("adapter: both towers are built from configs (random weights); an adapter needs a "
                             "pretrained tower (vision_model or text_model naming a model)")  # fmt: skip
        from_config = [t for t in self.adapter.towers if t not in self.pretrained_towers]
        if from_config:
            raise ValueError(
                f"adapter.towers names {from_config[0]}, built from a config (random weights); an adapter trains "
                f"on a pretrained tower: name {' or '.join(self.pretrained_towers) or 'a pretrained model'}"
            )
        return self


class SFTDatasetSpec(_Splits):
    """Instruction data: a prompt and a response column (the default), a text column alone, or chat messages."""

    source: str = "builtin:rotten_tomatoes"
    config_name: Optional[str] = Field(None, description="hub dataset configuration")
    prompt_column: str = Field("prompt", description="the prompt (context: no loss on its tokens)")
    response_column: str = Field("response", description="the response learned (a class label: its name)")
    prompt_template: Annotated[str, AfterValidator(_fills("prompt"))] = Field(
        "{prompt}", description="how a prompt is written, {prompt} standing for the column's text"
    )
    text_column: Optional[str] = Field(None, description="plain text, every token learned (instead of the pair)")
    messages_column: Optional[str] = Field(
        None, description="chat turns [{role, content}], the last the assistant's response (instead of the pair)"
    )

    @model_validator(mode="after")
    def _one_shape(self) -> SFTDatasetSpec:
        if self.text_column and self.messages_column:
            raise ValueError("give text_column or messages_column, not both (or neither, for prompt/response)")
        return self


class Generation(_Strict):
    """Greedy answers to validation prompts, scored by exact match (``val_exact_match``)."""

    max_new_tokens: int = Field(8, ge=1, le=1024, description="tokens generated per answer at most")
    examples: int = Field(64, ge=0, description="validation prompts answered each epoch (0: no exact match)")


class LMAdapterSpec(AdapterSpec):
    """A LoRA adapter on a pretrained causal LM; optionally its base loaded in 4 bits (QLoRA)."""

    quantization: Optional[Literal["4bit"]] = Field(
        None, description="4bit: the frozen base loaded in 4 bits with bitsandbytes (a CUDA GPU only)"
    )


class CausalLMTask(_Task):
    """Supervised fine-tuning of a decoder language model on prompts and responses."""

    type: Literal["causal_lm"]
    model: Tower = Field(default_factory=lambda: dict(DEFAULT_CAUSAL_LM))
    tokenizer: Optional[str] = Field(None, description="default: the model's; required for a model from a config")
    chat_template: Optional[str] = Field(None, description="a Jinja chat template, for messages_column data")
    dataset: SFTDatasetSpec = SFTDatasetSpec()
    max_length: int = Field(256, ge=8, le=131072, description="tokens per example, prompt and response")
    generation: Generation = Generation()
    gradient_checkpointing: bool = Field(False, description="recompute activations in backward: less memory")
    packing: bool = Field(
        False, description="several whole training examples in each sequence of max_length: less padding"
    )
    adapter: Optional[LMAdapterSpec] = Field(
        None, description="train a LoRA adapter instead of every weight; its settings in hyperparameters.adapter"
    )

    @model_validator(mode="after")
    def _adapt_pretrained(self) -> CausalLMTask:
        if self.adapter is not None and not isinstance(self.model, str):
            raise ValueError("adapter: the model is built from a config (random weights); an adapter trains on a "
                             "pretrained model: name one (a hub id or a folder) or drop the adapter")  # fmt: skip
        return self


TASKS = {"text_classification": TextClassificationTask, "image_text": ImageTextTask, "causal_lm": CausalLMTask}
Task = Annotated[Union[TextClassificationTask, ImageTextTask, CausalLMTask], Field(discriminator="type")]


class Objective(_Strict):
    """One more objective besides ``search.metric`` (multi-objective search)."""

    metric: str
    mode: Literal["max", "min"]


class Confirm(_Strict):
    """After the search, the best configs train again with new seeds; the winner is the best mean."""

    top_k: int = Field(3, ge=1, le=20, description="how many of the best configs run again")
    seeds: int = Field(3, ge=1, le=20, description="new seeds each (the seed plus 1, 2, ...)")


class CrossValidation(_Strict):
    """Each trial trains one model per fold of the training data and reports the folds' mean (and spread)."""

    folds: int = Field(5, ge=2, le=20, description="K: the training rows cut into K parts, each one fold's validation")
    stratified: Optional[bool] = Field(
        None, description="each fold keeps the classes' proportions; default: true when the dataset has labels"
    )
    refit: bool = Field(
        False,
        description="after the search, the winning config trains once more on every training row, for the epochs "
        "its folds' mean peaked at; that model is the one registered (default: the winner's best fold's model)",
    )


class WarmStart(_Strict):
    """Seed the searcher with the evaluated trials of an earlier sweep, read back from MLflow."""

    experiment: Optional[str] = Field(None, description="every finished trial in this MLflow experiment")
    parent_run_id: Optional[str] = Field(None, description="the trials of one earlier sweep (its parent run)")
    tracking_uri: Optional[str] = Field(None, description="where the earlier sweep is tracked; default: this sweep's")

    @model_validator(mode="after")
    def _one_source(self) -> WarmStart:
        if (self.experiment is None) == (self.parent_run_id is None):
            raise ValueError("give exactly one of experiment (a name) or parent_run_id")
        return self


def _preset(strategy: str, scheduler: Any) -> tuple[str, str]:
    """``(searcher, scheduler)`` of a preset (``asha``) or a ``SEARCHER+SCHEDULER`` pair."""
    searcher, _, paired = strategy.partition("+")
    if strategy in PRESETS:
        searcher, paired = PRESETS[strategy]
    if searcher not in SEARCHERS or paired not in SCHEDULERS:
        raise ValueError(
            f"strategy '{strategy}' is not a preset; presets are {', '.join(PRESETS)} or "
            f"STRATEGY+SCHEDULER with a strategy in {', '.join(SEARCHERS)} "
            f"and a scheduler in {', '.join(SCHEDULERS)}"
        )
    if scheduler is not None and scheduler != paired:
        raise ValueError(f"strategy '{strategy}' sets scheduler '{paired}', but scheduler is '{scheduler}'")
    return searcher, paired


def _objective_lists(data: dict) -> dict:
    """``metric: [a, b]`` with ``mode: [max, min]``, as Optuna and Ray's OptunaSearch write it, as objectives."""
    metric, mode = data.get("metric"), data.get("mode")
    if isinstance(metric, list) and metric:
        modes = mode if isinstance(mode, list) else [mode or "max"] * len(metric)
        if len(modes) != len(metric):
            raise ValueError(f"metric lists {len(metric)} objectives but mode lists {len(modes)}")
        data["metric"], data["mode"] = metric[0], modes[0]
        extra = [{"metric": m, "mode": o} for m, o in zip(metric[1:], modes[1:])]
        data["objectives"] = extra + list(data.get("objectives") or [])
    return data


class SearchSpec(_Strict):
    """What to try (``strategy``, a searcher) and when to stop trials (``scheduler``), kept apart."""

    strategy: Literal[tuple(SEARCHERS)] = Field(
        "random",
        description="the searcher: grid, random, bayesian (Optuna), bohb; or a preset naming a searcher and a "
        "scheduler: asha, hyperband, pbt, or SEARCHER+SCHEDULER such as bayesian+asha",
    )
    scheduler: Literal[tuple(SCHEDULERS)] = Field(
        "fifo",
        description="fifo: every trial runs all its epochs; asha, hyperband, median: poor trials stop early; "
        "pbt: trials copy better ones and perturb their hyperparameters",
    )
    sampler: Optional[Literal[SAMPLERS]] = Field(None, description="bayesian: Optuna's sampler (default tpe)")
    startup_trials: Optional[int] = Field(
        None,
        ge=1,
        description="bayesian with sampler tpe, gp or cmaes: trials drawn at random before the sampler's model "
        "picks the next (Optuna's n_startup_trials; default the sampler's own: 10 for tpe and gp, 1 for cmaes)",
    )
    grace_period: int = Field(1, ge=1, description="asha, median: epochs every trial runs before it can be stopped")
    reduction_factor: float = Field(
        2, gt=1, description="asha, hyperband: 1/reduction_factor of trials go on at each rung"
    )
    perturbation_interval: int = Field(1, ge=1, description="pbt: epochs between exploit/explore steps")
    metric: str = Field("val_accuracy", description="default: the task's first metric (val_accuracy for text)")
    mode: Literal["max", "min"] = "max"
    objectives: list[Objective] = Field(
        default_factory=list,
        description="more objectives besides metric (multi-objective: the Pareto front is reported)",
    )
    num_samples: int = Field(
        8, ge=1, description="random: trials drawn (default 8); grid: times the whole grid runs (default 1)"
    )
    max_concurrent_trials: Optional[int] = Field(None, ge=1)
    time_budget_s: Optional[float] = Field(None, gt=0, description="stop the sweep after this long")
    max_total_epochs: Optional[int] = Field(None, ge=1, description="stop the sweep after this many epochs in all")
    max_failures: int = Field(
        2, ge=0, le=100, description="times a failed trial is retried, each time from its last checkpoint"
    )
    reuse_actors: bool = Field(
        True,
        description="run the next trial in the process that ran the last (no new Python, torch or transformers "
        "import, and the data loaded and tokenized once per process); false gives each trial a fresh process",
    )
    points_to_evaluate: list[dict[str, Any]] = Field(
        default_factory=list,
        description="configurations tried first: {dotted.name: value} over searched hyperparameters",
    )
    warm_start: Optional[WarmStart] = None
    center_first: bool = Field(
        True,
        description="the first trial runs the middle of the searched ranges (a log range's geometric middle, "
        "numeric choices' lower middle, other choices' first), as Ax and SMAC start; not with grid or a grid "
        "entry, sampler qmc (its sequence runs the center early), points_to_evaluate or warm_start",
    )
    seed: int = Field(0, ge=0, description="seed of the searcher")
    test_top_k: int = Field(
        1, ge=1, le=100, description="with task.dataset.test_split: how many of the best trials are scored on it"
    )
    confirm: Optional[Confirm] = Field(
        None, description="the top_k configs run again with `seeds` new seeds each; the winner by the mean"
    )
    cross_validation: Optional[CrossValidation] = Field(
        None, description="each trial trains on K folds of the training data; the folds' mean is what is searched"
    )

    @model_validator(mode="before")
    @classmethod
    def _presets_and_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = _objective_lists(dict(data))
        strategy = data.get("strategy")
        # "bohb" names a searcher and a preset: the searcher, with its scheduler as a default below
        if isinstance(strategy, str) and ((strategy in PRESETS and strategy not in SEARCHERS) or "+" in strategy):
            data["strategy"], data["scheduler"] = _preset(strategy, data.get("scheduler"))
        if data.get("strategy") == "bohb":
            data.setdefault("scheduler", "hyperband")
        # Ray Tune repeats a grid num_samples times; a grid search runs each point once unless asked.
        if data.get("strategy") == "grid":
            data.setdefault("num_samples", 1)
        return data

    @property
    def all_objectives(self) -> list[tuple[str, str]]:
        """``(metric, mode)`` of every objective, the primary (``metric``) first."""
        return [(self.metric, self.mode)] + [(o.metric, o.mode) for o in self.objectives]


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


class Resources(_Strict):
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


class MlflowSpec(_Strict):
    tracking_uri: Optional[str] = Field(
        None, description="overridden by --tracking-uri or MLFLOW_TRACKING_URI; default sqlite:///mlflow.db"
    )
    experiment: Optional[str] = Field(None, description="default: the sweep name")
    log_checkpoints: bool = Field(
        True, description="upload each trial's top checkpoints (by search.metric) as artifacts, from the trial's node"
    )
    keep_checkpoints: int = Field(
        1,
        ge=1,
        le=50,
        description="checkpoints kept per trial in MLflow, best first (Tune's storage: the 2 best and the latest)",
    )
    register_model: bool = Field(
        True,
        description="log the best checkpoint as an MLflow Model (pyfunc) of its run and register it under the "
        "sweep's name, with the alias challenger",
    )
    promote: Literal["auto", "always", "never"] = Field(
        "auto",
        description="when the new version takes the alias champion: auto, when it beats the champion on the "
        "sweep's metric scored on the same data (the test split's, else the validation rows); always; never",
    )
    reports: bool = Field(
        True, description="optimization history, parallel coordinates, importance, learning curves (PNG)"
    )
    error_analysis: bool = Field(
        True,
        description="on the best trial's run: its validation confusion matrix (PNG), per-class precision, recall "
        "and F1, and the examples it gets wrong (tables); classification tasks",
    )
    flush_timeout_s: float = Field(
        900, gt=0, description="at the end, how long to wait for an unreachable tracking server to take the last writes"
    )


class SweepSpec(_Strict):
    """A whole sweep. Build it with :func:`load_spec` to get full validation."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
    description: str = ""
    task: Task
    hyperparameters: Hyperparameters
    search: SearchSpec = SearchSpec()
    resources: Resources = Resources()
    mlflow: MlflowSpec = MlflowSpec()

    @model_validator(mode="before")
    @classmethod
    def _task_metric(cls, data: Any) -> Any:
        """Without ``search.metric``, the sweep optimizes the task's first metric (its accuracy)."""
        task = data.get("task") if isinstance(data, dict) else None
        task_type = task.get("type") if isinstance(task, dict) else None
        if isinstance(task_type, str) and task_type in TASK_MANIFESTS:
            search = data.get("search")
            if search is None or (isinstance(search, dict) and "metric" not in search):
                metric = TASK_MANIFESTS[task_type].metrics[0]
                data = {**data, "search": {**(search or {}), "metric": metric}}
        return data

    @model_validator(mode="before")
    @classmethod
    def _adapter_defaults(cls, data: Any) -> Any:
        """With ``task.adapter``, every trial gets the adapter's settings: the defaults where none are written."""
        task = data.get("task") if isinstance(data, dict) else None
        hp = data.get("hyperparameters") if isinstance(data, dict) else None
        if isinstance(task, dict) and task.get("adapter") is not None and isinstance(hp, dict):
            if hp.get("adapter") is None:
                data = {**data, "hyperparameters": {**hp, "adapter": {}}}
        return data

    @model_validator(mode="before")
    @classmethod
    def _searched_model(cls, data: Any) -> Any:
        """``task.model: {choice: [...]}`` searches the base model: each trial's is its config's ``model``."""
        task = data.get("task") if isinstance(data, dict) else None
        hp = data.get("hyperparameters") if isinstance(data, dict) else None
        model = task.get("model") if isinstance(task, dict) else None
        searched = isinstance(model, dict) and len(model) == 1 and next(iter(model)) in DISTRIBUTIONS  # not a config
        if searched and isinstance(hp, dict):
            if hp.get("model") not in (None, task["model"]):
                raise ValueError(f"hyperparameters.model={hp['model']!r} and task.model={task['model']!r}: search "
                                 "the base model in task.model alone")  # fmt: skip
            data = {**data, "hyperparameters": {**hp, "model": task["model"]}}
        return data

    def trial_task(self) -> dict:
        """The task section as a trial receives it: under ``search.cross_validation``, its dataset names the folds."""
        task = self.task.model_dump(mode="json")
        cv = self.search.cross_validation
        if cv is not None:
            dataset = task["dataset"]
            stratified = cv.stratified if cv.stratified is not None else dataset.get("label_column") is not None
            dataset["folds"] = {"count": cv.folds, "stratified": stratified}
        return task

    def to_dict(self) -> dict:
        """The spec as plain data (distributions in their ``{kind: args}`` form)."""
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


# --------------------------------------------------------------------------- loading


def _unwrap(annotation: Any) -> list:
    """The model classes or dict value types an annotation can hold."""
    origin = typing.get_origin(annotation)
    if origin in (Union, Optional) or str(origin) == "types.UnionType":
        return [t for a in typing.get_args(annotation) for t in _unwrap(a)]
    if origin is Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    return [annotation]


def _fields_at(loc: tuple, root: Any = None) -> list[str]:
    """Field names of the model found by walking ``loc`` from ``root`` (default :class:`SweepSpec`)."""
    node: Any = root or SweepSpec
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


def _problems_from(exc: ValidationError) -> list[tuple[str, str]]:
    problems = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if p != "function-after")
        msg = err["msg"].removeprefix("Value error, ")
        root = None
        if loc[:1] == ("task",) and len(loc) > 1 and loc[1] in TASKS:  # the union's tag, not a field
            root, loc = TASKS[loc[1]], loc[:1] + loc[2:]
        if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
            got = err["input"].get("type") if isinstance(err["input"], dict) else None
            accepted = ", ".join(f"'{t}'" for t in TASKS)
            msg = "required field is missing" if got is None else f"got {got!r}"
            problems.append((_path(loc + ("type",)), f"{msg}; accepted task types: {accepted}"))
            continue
        if err["type"] == "extra_forbidden":
            key = str(loc[-1])
            known = _fields_at(loc[1:-1], root) if root else _fields_at(loc[:-1])
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


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key written twice in one mapping (YAML lets the last one win)."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if isinstance(key, typing.Hashable) and key in seen:
                raise SpecError([("", f"key {key!r} is written twice in one mapping, at lines {seen[key]} and "
                                      f"{line}: keep one")])  # fmt: skip
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
        raise SpecError(_problems_from(exc), label) from None


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


def smoke_spec(spec: SweepSpec) -> SweepSpec:
    """The same sweep, shrunk to run end to end in a couple of minutes.

    Same code path: at most :data:`SMOKE_TRIALS` trials of one epoch on the
    task's smoke subsets (and, with ``search.confirm``, the best config once
    more; with ``search.cross_validation``, two folds). A grid keeps two
    points: the first two values of its first axis, the first value of every
    other axis. Checked against the schema;
    :func:`tune_service.validate.load_spec` checks the rest.
    """
    data = spec.to_dict()
    hp = data["hyperparameters"]
    hp["epochs"] = 1
    enumerated = ("grid", "choice") if spec.search.strategy == "grid" else ("grid",)
    grids_kept = 0

    def shrink(node: dict) -> None:
        nonlocal grids_kept
        for key, value in node.items():
            if isinstance(value, dict) and len(value) == 1 and next(iter(value)) in enumerated:
                kind, values = next(iter(value.items()))
                node[key] = {kind: values[: SMOKE_TRIALS if grids_kept == 0 else 1]}
                grids_kept += 1
            elif isinstance(value, dict):
                shrink(value)

    shrink(hp)
    # a searched setting whose controlling grid lost the values it applies to is fixed instead
    for group in hp["groups"].values():
        for field, (parent, applies) in CONDITIONS.items():
            value, ctrl = group.get(field), group.get(parent)
            options = next(iter(ctrl.values())) if isinstance(ctrl, dict) else [ctrl]
            if isinstance(value, dict) and len(value) == 1 and not set(options) & set(applies):
                kind, args = next(iter(value.items()))
                group[field] = args[0]
    ds = data["task"]["dataset"]
    sizes = TASK_MANIFESTS[spec.task.type]
    ds["train_size"] = min(ds["train_size"] or sizes.smoke_train_size, sizes.smoke_train_size)
    ds["validation_size"] = min(ds["validation_size"] or sizes.smoke_validation_size, sizes.smoke_validation_size)
    search = data["search"]
    # Ray Tune repeats the whole grid num_samples times: with a grid, once is enough.
    search["num_samples"] = 1 if grids_kept else SMOKE_TRIALS
    search["time_budget_s"] = None
    if search.get("confirm"):  # the best config once more, with one new seed
        search["confirm"] = {"top_k": 1, "seeds": 1}
    search["test_top_k"] = 1  # the winner alone scored on the test split
    if search.get("cross_validation"):  # two folds: the same path at twice a trial's cost, not K times
        search["cross_validation"]["folds"] = 2
        ds["validation_size"] = None  # each fold validates on its half of the train_size rows
    if spec.search.scheduler == "pbt":  # one exploit/explore step
        hp["epochs"], search["perturbation_interval"] = 2, 1
    data["name"] = f"{spec.name}-smoke"[:100]
    return parse_spec(data)
