"""``task`` for ``type: text_classification``: a pretrained encoder and a new classification head."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field

from search_spaces import Distribution, Domain

from ._fields import Searchable
from ._task import AdapterSpec, Splits, TaskSection


class DatasetSpec(Splits):
    """A dataset: ``builtin:NAME``, a local CSV/JSON/JSONL/parquet file, or a hub id."""

    source: str = "builtin:rotten_tomatoes"
    config_name: Optional[str] = Field(None, description="hub dataset configuration, e.g. sst2 of glue")
    text_column: str = "text"
    label_column: str = "label"


class TextClassificationTask(TaskSection):
    """Sequence classification: a pretrained encoder plus a new classification head."""

    type: Literal["text_classification"]
    model: Searchable(
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
