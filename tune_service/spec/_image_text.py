"""``task`` for ``type: image_text``: a vision-text dual encoder, its towers, its images and captions."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional

from pydantic import AfterValidator, Field, model_validator

from trainables.api import DEFAULT_VISION_TOWER
from trainables.api import TASKS as TASK_MANIFESTS

from ._fields import Tower, ValidationSplit, fills
from ._task import AdapterSpec, Splits, TaskSection

TOWERS = TASK_MANIFESTS["image_text"].towers  # a dual encoder's towers: vision, text


class TowerAdapterSpec(AdapterSpec):
    """LoRA adapters on a dual encoder's pretrained towers; a tower not adapted trains in full."""

    towers: Optional[list[Literal[TOWERS]]] = Field(
        None, min_length=1, description="the towers adapted; null: every tower loaded with pretrained weights"
    )


class ImageTextDatasetSpec(Splits):
    """Images with captions and/or labels: ``builtin:fashion_mnist``, an image folder, a CSV/JSON/parquet
    file with image paths, or a hub id."""

    source: str = "builtin:fashion_mnist"
    config_name: Optional[str] = Field(None, description="hub dataset configuration")
    image_column: str = "image"
    caption_column: Optional[str] = Field(None, description="each image's caption; null: captions from labels")
    label_column: Optional[str] = Field(
        "label", description="class labels (zero-shot accuracy; captions when there is no caption_column)"
    )
    caption_template: Annotated[str, AfterValidator(fills("label"))] = Field(
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


class ImageTextTask(TaskSection):
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
            raise ValueError(
                "adapter: both towers are built from configs (random weights); an adapter needs a "
                "pretrained tower (vision_model or text_model naming a model)"
            )
        from_config = [t for t in self.adapter.towers if t not in self.pretrained_towers]
        if from_config:
            raise ValueError(
                f"adapter.towers names {from_config[0]}, built from a config (random weights); an adapter trains "
                f"on a pretrained tower: name {' or '.join(self.pretrained_towers) or 'a pretrained model'}"
            )
        return self
