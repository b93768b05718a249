"""``task`` for ``type: causal_lm``: supervised fine-tuning of a decoder on prompts and responses."""

from __future__ import annotations

from typing import Annotated, Literal, Optional

from pydantic import AfterValidator, Field, model_validator

from trainables.api import DEFAULT_CAUSAL_LM

from ._fields import Section, Tower, fills
from ._task import AdapterSpec, Splits, TaskSection


class SFTDatasetSpec(Splits):
    """Instruction data: a prompt and a response column (the default), a text column alone, or chat messages."""

    source: str = "builtin:rotten_tomatoes"
    config_name: Optional[str] = Field(None, description="hub dataset configuration")
    prompt_column: str = Field("prompt", description="the prompt (context: no loss on its tokens)")
    response_column: str = Field("response", description="the response learned (a class label: its name)")
    prompt_template: Annotated[str, AfterValidator(fills("prompt"))] = Field(
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


class Generation(Section):
    """Greedy answers to validation prompts, scored by exact match (``val_exact_match``)."""

    max_new_tokens: int = Field(8, ge=1, le=1024, description="tokens generated per answer at most")
    examples: int = Field(64, ge=0, description="validation prompts answered each epoch (0: no exact match)")


class LMAdapterSpec(AdapterSpec):
    """A LoRA adapter on a pretrained causal LM; optionally its base loaded in 4 bits (QLoRA)."""

    quantization: Optional[Literal["4bit"]] = Field(
        None, description="4bit: the frozen base loaded in 4 bits with bitsandbytes (a CUDA GPU only)"
    )


class CausalLMTask(TaskSection):
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
            raise ValueError(
                "adapter: the model is built from a config (random weights); an adapter trains on a "
                "pretrained model: name one (a hub id or a folder) or drop the adapter"
            )
        return self
