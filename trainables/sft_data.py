"""Instruction data for a causal language model: prompts and the responses it learns to give.

Three shapes of data, through ``datasets`` (built in, a local file or a hub id, as for the
other tasks):

- a ``prompt_column`` and a ``response_column`` (the default): the prompt, written through
  ``prompt_template``, is context only; the loss counts the response tokens. A class-label
  column gives its class names as responses (``fresh``, ``rotten``);
- a ``text_column`` alone (domain adaptation): every token counts;
- a ``messages_column`` of chat turns (``[{role, content}, ...]``), rendered with the
  tokenizer's chat template (or the spec's ``chat_template``): the last turn, the
  assistant's, is the response.

Each example is token ids, the prompt's then the response's (ending with the end-of-sequence
token), cut at ``max_length`` from the response's end. A prompt that leaves no room for a
response is refused, naming the longest prompt.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .data import DataError, load_raw, split_train_validation, subset, values
from .prepared import Ragged

IGNORE = -100  # the label of a token that carries no loss (torch's cross_entropy ignore_index)


@dataclass(frozen=True)
class Example:
    prompt: list[int]  # context, no loss
    response: list[int]  # learned; ends with the end-of-sequence token unless cut at max_length

    @property
    def ids(self) -> list[int]:
        return self.prompt + self.response

    @property
    def labels(self) -> list[int]:
        return [IGNORE] * len(self.prompt) + self.response


@dataclass(frozen=True)
class Packed:
    """Several examples end to end in one sequence, each response's labels kept, each prompt's masked."""

    ids: list[int]
    labels: list[int]


def pack(examples: list[Example], max_length: int) -> list[Packed]:
    """``examples`` in order, as many whole ones in each sequence as ``max_length`` holds (none split).

    The examples of a sequence attend to the ones before them in it (constant-length packing, as TRL's
    ``ConstantLengthDataset``): fewer padding tokens, the loss still on the responses alone.
    """
    out: list[Packed] = []
    ids: list[int] = []
    labels: list[int] = []
    for example in examples:
        if ids and len(ids) + len(example.ids) > max_length:
            out.append(Packed(ids, labels))
            ids, labels = [], []
        ids, labels = ids + example.ids, labels + example.labels
    if ids:
        out.append(Packed(ids, labels))
    return out


@dataclass(frozen=True)
class Examples(Sequence):
    """:class:`Example` s held as two :class:`Ragged` s of token ids (the prompts', the responses'): a few
    arrays that Ray's object store hands to a trial without a copy, where a list of lists is unpickled."""

    prompts: Ragged
    responses: Ragged

    @classmethod
    def of(cls, examples: Sequence[Example]) -> Examples:
        return cls(Ragged.of([e.prompt for e in examples]), Ragged.of([e.response for e in examples]))

    def __len__(self) -> int:
        return len(self.prompts)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return Example(self.prompts[i].tolist(), self.responses[i].tolist())


@dataclass
class SFTData:
    train: Examples
    validation: Examples
    validation_answers: list[str]  # each validation response as text, for exact match
    validation_prompts: list[str]  # each validation prompt as text, as the model sees it (templates applied)


def data_format(cfg: Mapping) -> str:
    """``text``, ``messages`` or ``prompt_response``: which columns the dataset section names."""
    if cfg.get("text_column"):
        return "text"
    if cfg.get("messages_column"):
        return "messages"
    return "prompt_response"


ROLES = {
    "text": ("text_column",),
    "messages": ("messages_column",),
    "prompt_response": ("prompt_column", "response_column"),
}


def load_sft_data(cfg: Mapping, seed: int, tokenizer, max_length: int, chat_template: str | None = None) -> SFTData:
    """Load, split, subset and tokenize the dataset section ``cfg`` for supervised fine-tuning."""
    raw = load_raw(cfg["source"], cfg.get("config_name"))
    train, validation = split_train_validation(raw, cfg, seed, ROLES[data_format(cfg)])
    train, validation = (
        subset(train, cfg.get("train_size"), seed),
        subset(validation, cfg.get("validation_size"), seed + 1),
    )
    encoder = _Encoder(tokenizer, max_length)
    train_pairs = texts(train, cfg, tokenizer, chat_template)
    validation_pairs = texts(validation, cfg, tokenizer, chat_template)
    return SFTData(
        train=Examples.of([encoder(p, r) for p, r in train_pairs]),
        validation=Examples.of([encoder(p, r) for p, r in validation_pairs]),
        validation_answers=[r.strip() for _, r in validation_pairs],
        validation_prompts=[p for p, _ in validation_pairs],
    )


def texts(ds, cfg: Mapping, tokenizer, chat_template: str | None) -> list[tuple[str, str]]:
    """Each row as ``(prompt, response)`` text."""
    shape = data_format(cfg)
    if shape == "text":
        return [("", "" if t is None else str(t)) for t in values(ds, cfg["text_column"])]
    if shape == "messages":
        return [
            _chat(turns, tokenizer, chat_template, cfg["messages_column"])
            for turns in values(ds, cfg["messages_column"])
        ]
    template = cfg.get("prompt_template") or "{prompt}"
    feature = ds.features[cfg["response_column"]]
    names = getattr(feature, "names", None)  # a class-label column answers with its class names
    responses = [names[v] if names else str(v) for v in values(ds, cfg["response_column"])]
    prompts = [template.format(prompt="" if p is None else p) for p in values(ds, cfg["prompt_column"])]
    return list(zip(prompts, responses))


def _chat(turns, tokenizer, chat_template: str | None, column: str) -> tuple[str, str]:
    if not isinstance(turns, list) or not turns or not all(isinstance(t, Mapping) for t in turns):
        raise DataError(f"messages_column={column!r}: each row is a list of {{role, content}} turns, got {turns!r:.80}")
    if turns[-1].get("role") != "assistant":
        raise DataError(
            f"messages_column={column!r}: the last turn is the response and must be the assistant's, "
            f"got role {turns[-1].get('role')!r}"
        )
    template = chat_template or getattr(tokenizer, "chat_template", None)
    if not template:
        raise DataError(
            "the tokenizer has no chat template: give task.chat_template (a Jinja template) or a "
            "tokenizer that has one",
            "task.chat_template",
        )
    prompt = tokenizer.apply_chat_template(
        list(turns[:-1]), chat_template=template, tokenize=False, add_generation_prompt=True
    )
    return prompt, str(turns[-1].get("content", ""))


class _Encoder:
    """Text to an :class:`Example`: the prompt after the beginning-of-sequence token, the response then EOS."""

    def __init__(self, tokenizer, max_length: int):
        self.tokenizer, self.max_length = tokenizer, max_length
        self.eos = end_token(tokenizer)

    def __call__(self, prompt: str, response: str) -> Example:
        tok = self.tokenizer
        prompt_ids = prompt_tokens(tok, prompt)
        if len(prompt_ids) >= self.max_length:
            raise DataError(
                f"max_length={self.max_length} leaves no room for a response after a prompt of "
                f"{len(prompt_ids)} tokens ({prompt[:60]!r}...): raise max_length above the longest "
                "prompt, or shorten the prompts",
                "task.max_length",
            )
        response_ids = tok(response, add_special_tokens=False)["input_ids"] + [self.eos]
        return Example(prompt_ids, response_ids[: self.max_length - len(prompt_ids)])


def prompt_tokens(tokenizer, prompt: str) -> list[int]:
    """A prompt's tokens as training and generation give them: the beginning-of-sequence token, then the text's."""
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    return bos + (tokenizer(prompt, add_special_tokens=False)["input_ids"] if prompt else [])


def end_token(tokenizer) -> int:
    """The token that ends a response: the tokenizer's end of sequence, else its separator."""
    eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
    if eos is None:
        raise DataError("the tokenizer has neither an end-of-sequence nor a separator token", "task.tokenizer")
    return eos
