"""Image+text: a vision tower and a text tower, each with its own optimizer.

A dual encoder (transformers' ``VisionTextDualEncoderModel``, CLIP-style):
images and captions are embedded by their towers, projected into one space
and trained contrastively. Each tower comes from a hub id, a local folder, or
a config (random init); the offline default pairs the pretrained MiniLM text
tower with a ViT built from a config. The default parameter groups are
``vision`` (the vision tower), ``text`` (the text tower) and ``head`` (the two
projections and the logit scale): a tower trained from scratch and a
pretrained one learn at very different rates, which is what one optimizer and
learning rate per group is for. Under ``task.adapter`` the pretrained towers get
LoRA adapters (``trainables.adapters``) and the groups become ``lora_A``,
``lora_B``, each tower not adapted, and ``head``; a checkpoint then holds each
adapter and the weights trained in full, not the frozen towers.

Metrics each epoch: ``val_zero_shot_accuracy`` (each validation image against
the class captions, when the data has labels), ``val_recall_at_1`` and
``val_recall_at_5`` (image-to-caption retrieval among the distinct validation
captions), ``val_loss`` (the contrastive loss) and ``train_loss``.

Without Ray, on Fashion-MNIST::

    python -m trainables.image_text --smoke-test
"""

from __future__ import annotations

import copy
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from . import adapters, model_configs
from .config import TrialConfig
from .cross_validation import fit_task
from .data import TaskError, used_rows
from .image_data import BUILTIN_IMAGE_DATASETS, ImageTextData, load_image_text_data
from .manifest import DEFAULT_VISION_TOWER, TASKS
from .param_groups import Selector
from .prepared import key, provided
from .reporting import Reporter, TuneReporter
from .standalone import quiet_transformers, smoke_config, smoke_main
from .text_classification import LAYER, pad, resolve_model, set_dropout_config

MANIFEST = TASKS["image_text"]
METRICS = MANIFEST.metrics
LABELLED_ONLY = ("val_zero_shot_accuracy",)
EVAL_BATCH_SIZE = 256
TOWERS = {"vision": "vision_model", "text": "text_model"}  # a tower: the dual model's attribute
TRAINED_FILE = "trained.safetensors"  # an adapted checkpoint's weights trained in full (head, towers not adapted)


def tower_config(tower: str, spec: str | Mapping):
    """A tower's transformers config: from a source (hub id, folder, builtin) or from a config mapping."""
    from transformers import AutoConfig

    field = f"task.{tower}_model"
    try:
        if isinstance(spec, Mapping):
            return model_configs.from_settings(spec, field)
        return AutoConfig.from_pretrained(resolve_model(spec, f"task.{tower}_model"))
    except TaskError:
        raise
    except (OSError, ValueError, KeyError) as exc:
        raise TaskError(f"cannot build the {tower} tower from {spec!r}: {exc}", field) from None


def _tower(tower: str, spec: str | Mapping, config) -> nn.Module:
    from transformers import AutoModel

    if isinstance(spec, Mapping):
        return AutoModel.from_config(config)
    try:
        return AutoModel.from_pretrained(resolve_model(spec, f"task.{tower}_model"), config=config)
    except (OSError, ValueError) as exc:
        raise TaskError(f"cannot load the {tower} tower {spec!r}: {exc}", f"task.{tower}_model") from None


def image_processor(vision: str | Mapping, config):
    """The image preprocessing of the vision tower, PIL only: the tower's own, else resize + normalize to [-1, 1]."""
    from transformers import AutoImageProcessor, ViTImageProcessorPil

    if not isinstance(vision, Mapping):
        try:
            return AutoImageProcessor.from_pretrained(resolve_model(vision, "task.vision_model"), backend="pil")
        except (OSError, ValueError):
            pass  # a tower saved without a preprocessor config: the default below
    size = int(getattr(config, "image_size", 224))
    channels = int(getattr(config, "num_channels", 3))
    return ViTImageProcessorPil(
        size={"height": size, "width": size}, image_mean=[0.5] * channels, image_std=[0.5] * channels
    )


def _pil_mode(config) -> str:
    channels = int(getattr(config, "num_channels", 3))
    if channels not in (1, 3):
        raise TaskError(
            f"the vision tower takes {channels} channels; accepted: 1 (grayscale) or 3 (RGB)", "task.vision_model"
        )
    return "L" if channels == 1 else "RGB"


def contrastive_loss(logits_per_image: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """CLIP's symmetric loss over a batch's distinct captions, duplicates aware.

    ``logits_per_image`` is (images, distinct captions); ``targets[i]`` the
    caption of image ``i``. Images sharing a caption (a class caption) are all
    positives of it, not each other's negatives. With every caption distinct
    this is CLIP's loss exactly.
    """
    logits = logits_per_image.float()
    image_loss = nn.functional.cross_entropy(logits, targets)
    positives = nn.functional.one_hot(targets, logits.shape[1]).T.float()  # (captions, images)
    positives = positives / positives.sum(1, keepdim=True)
    text_loss = -(positives * logits.T.log_softmax(dim=1)).sum(1).mean()
    return (image_loss + text_loss) / 2


class ImageText:
    """The :class:`trainables.contract.Task` for a vision-text dual encoder."""

    def __init__(self, task: Mapping):
        from transformers import AutoTokenizer

        self.task = task
        self.vision_config = tower_config("vision", task["vision_model"])
        self.text_config = tower_config("text", task["text_model"])
        tok_source = task.get("tokenizer") or task["text_model"]
        if isinstance(tok_source, Mapping):
            raise TaskError(
                "a text tower built from a config needs `tokenizer` (a hub id, folder or builtin)", "task.tokenizer"
            )
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(resolve_model(tok_source, "task.tokenizer"))
        except (OSError, ValueError) as exc:
            raise TaskError(f"cannot load the tokenizer {tok_source!r}: {exc}", "task.tokenizer") from None
        vocab = getattr(self.text_config, "vocab_size", None)
        if vocab is not None and len(self.tokenizer) > vocab:
            raise TaskError(
                f"the tokenizer has {len(self.tokenizer)} tokens but the text tower's vocab_size is {vocab}",
                "task.text_model",
            )
        self.processor = image_processor(task["vision_model"], self.vision_config)
        # the sweep's data, prepared once and provided to this process; else prepared here
        self.prepared: ImageTextData = provided(task) or self.prepare([task])[key(task)]
        self.groups = task.get("groups")
        self.adapter = task.get("adapter")
        self.adapted = tuple(self.adapter["towers"]) if self.adapter else ()
        self.pad_id = self.tokenizer.pad_token_id or 0
        max_length = int(task["max_length"])
        self.caption_tokens = self._token_ids(self.prepared.captions, max_length)
        self.class_tokens = None
        if self.prepared.class_captions:
            self.class_tokens = self._token_ids(self.prepared.class_captions, max_length)
        self.unavailable_metrics = {}
        if self.class_tokens is None:
            self.unavailable_metrics = {m: "it has no label_column" for m in LABELLED_ONLY}

    def _token_ids(self, texts: Sequence[str], max_length: int) -> list[list[int]]:
        return self.tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]

    def prepare(self, tasks: Sequence[Mapping]) -> dict[str, ImageTextData]:
        """Sections of this task (its folds, a refit, the test split) loaded and preprocessed, by their keys."""
        mode = _pil_mode(self.vision_config)
        return {
            key(task): load_image_text_data(task["dataset"], int(task["dataset"].get("seed", 0)), self.processor, mode)
            for task in tasks
        }

    @staticmethod
    def rows_used(task: Mapping) -> dict:
        """The rows a trial of ``task`` learns from and is validated on (:func:`trainables.data.used_rows`)."""
        cfg, roles = task["dataset"], ("image_column", "caption_column", "label_column")
        return used_rows(cfg, int(cfg.get("seed", 0)), roles, BUILTIN_IMAGE_DATASETS)

    # ---------------------------------------------------------------- model

    def _dual_config(self, vision_config, text_config):
        from transformers import VisionTextDualEncoderConfig

        return VisionTextDualEncoderConfig.from_vision_text_configs(
            vision_config, text_config, projection_dim=int(self.task["projection_dim"])
        )

    def build_model(self, config: TrialConfig, model_dir: str | None) -> nn.Module:
        """The dual encoder from its towers (LoRA on the adapted ones), or a checkpoint's."""
        from transformers import VisionTextDualEncoderModel

        if model_dir:
            return load_checkpoint(model_dir, config.dropout, trainable=True)
        vision_config, text_config = copy.deepcopy(self.vision_config), copy.deepcopy(self.text_config)
        # attention dropout is a config value, not always an nn.Dropout module: set it where the towers read it
        set_dropout_config(vision_config, config.dropout)
        set_dropout_config(text_config, config.dropout)
        vision = _tower("vision", self.task["vision_model"], vision_config)
        text = _tower("text", self.task["text_model"], text_config)
        model = VisionTextDualEncoderModel(
            config=self._dual_config(vision_config, text_config), vision_model=vision, text_model=text
        )
        return self._adapt(model, config.adapter)

    def _adapt(self, model: nn.Module, settings) -> nn.Module:
        for tower in self.adapted:
            attr = TOWERS[tower]
            source = self.task[f"{tower}_model"]
            setattr(model, attr, adapters.attach_tower(getattr(model, attr), self.adapter, settings, source))
        return model

    def model_skeleton(self, targets: str | None = None) -> nn.Module:
        """The model's parameter layout without its weights (meta device), for checks.

        ``targets``: under an adapter, a searched preset of modules to adapt (None: the task's).
        """
        from transformers import AutoModel, VisionTextDualEncoderModel

        with torch.device("meta"):
            vision = AutoModel.from_config(self.vision_config)
            text = AutoModel.from_config(self.text_config)
            model = VisionTextDualEncoderModel(
                config=self._dual_config(self.vision_config, self.text_config), vision_model=vision, text_model=text
            )
            return self._adapt(model, replace(adapters.LAYOUT, target_modules=targets))

    def selectors(self, model: nn.Module) -> dict[str, Selector]:
        if self.groups:
            return {g: Selector.from_dict(sel) for g, sel in self.groups.items()}
        if self.adapter:
            return adapters.selectors({t: a + "." for t, a in TOWERS.items() if t not in self.adapted})
        towers = tuple(p + "." for p in TOWERS.values())
        return {
            "vision": Selector(prefix=(towers[0],)),
            "text": Selector(prefix=(towers[1],)),
            "head": Selector(regex="^(?!" + "|".join(t.replace(".", r"\.") for t in towers) + ")"),
        }

    def layers(self, model: nn.Module) -> list[list[str]]:
        """Layer k holds the k-th lowest layer of each tower (embeddings first)."""
        names = [n for n, _ in model.named_parameters()]
        stacks = []
        for prefix in TOWERS.values():
            own = [n for n in names if n.startswith(prefix + ".")]
            by_layer: dict[int, list[str]] = {}
            for n in own:
                m = LAYER.search(n)
                if m:
                    by_layer.setdefault(int(m.group(1)), []).append(n)
            stacks.append([[n for n in own if ".embeddings." in n]] + [by_layer[i] for i in sorted(by_layer)])
        depth = max(len(s) for s in stacks)
        return [[n for s in stacks if k < len(s) for n in s[k]] for k in range(depth)]

    # ---------------------------------------------------------------- data

    def steps_per_epoch(self, batch_size: int) -> int:
        return -(-len(self.prepared.train) // batch_size)

    def _batch(self, pairs, idx: torch.Tensor) -> dict:
        captions, targets = torch.unique(pairs.caption_ids[idx], return_inverse=True)
        ids, mask = pad([self.caption_tokens[i] for i in captions.tolist()], self.pad_id)
        return {"pixel_values": pairs.pixels[idx].float(), "input_ids": ids, "attention_mask": mask, "labels": targets}

    def train_batches(self, batch_size: int, generator: torch.Generator) -> Iterator[dict]:
        perm = torch.randperm(len(self.prepared.train), generator=generator)
        for start in range(0, len(perm), batch_size):
            yield self._batch(self.prepared.train, perm[start : start + batch_size])

    def loss(self, model: nn.Module, batch: dict) -> torch.Tensor:
        out = model(
            pixel_values=batch["pixel_values"], input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
        )
        return contrastive_loss(out.logits_per_image, batch["labels"])

    # ---------------------------------------------------------------- metrics

    def _text_embeds(self, model: nn.Module, tokens: list[list[int]], device) -> torch.Tensor:
        out = []
        for start in range(0, len(tokens), EVAL_BATCH_SIZE):
            ids, mask = pad(tokens[start : start + EVAL_BATCH_SIZE], self.pad_id)
            emb = model.get_text_features(input_ids=ids.to(device), attention_mask=mask.to(device)).pooler_output
            out.append(nn.functional.normalize(emb.float(), dim=-1))
        return torch.cat(out)

    def _image_embeds(self, model: nn.Module, device) -> torch.Tensor:
        """The validation images' embeddings, normalized."""
        val, out = self.prepared.validation, []
        for start in range(0, len(val), EVAL_BATCH_SIZE):
            pixels = val.pixels[start : start + EVAL_BATCH_SIZE].to(device).float()
            emb = model.get_image_features(pixel_values=pixels).pooler_output
            out.append(nn.functional.normalize(emb.float(), dim=-1))
        return torch.cat(out)

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> dict[str, float]:
        model.eval()
        val = self.prepared.validation
        device = next(model.parameters()).device
        started = time.perf_counter()
        images = self._image_embeds(model, device)
        latency = 1000 * (time.perf_counter() - started) / len(val)
        # the validation captions, each once
        captions, targets = torch.unique(val.caption_ids, return_inverse=True)
        texts = self._text_embeds(model, [self.caption_tokens[i] for i in captions.tolist()], device)
        scale = model.logit_scale.exp().float()
        logits = scale * images @ texts.T
        targets = targets.to(device)
        loss_sum = 0.0
        for start in range(0, len(val), EVAL_BATCH_SIZE):  # the loss over fixed batches, as in training
            idx = torch.arange(start, min(start + EVAL_BATCH_SIZE, len(val)), device=device)
            used, local = torch.unique(targets[idx], return_inverse=True)
            loss_sum += float(contrastive_loss(logits[idx][:, used], local)) * len(idx)
        # captions scored at or above the true one, itself aside: a tie counts against (collapsed embeddings score 0)
        rank = (logits >= logits.gather(1, targets[:, None])).sum(1) - 1
        metrics = {
            "val_loss": loss_sum / len(val),
            "val_recall_at_1": float((rank < 1).float().mean()),
            "val_recall_at_5": float((rank < 5).float().mean()),
            "val_latency_ms": latency,
        }
        if self.class_tokens is not None and val.labels is not None:
            predicted = self._zero_shot(model, images, device)
            metrics["val_zero_shot_accuracy"] = float((predicted == val.labels).float().mean())
        return metrics

    def _zero_shot(self, model: nn.Module, images: torch.Tensor, device) -> torch.Tensor:
        """Each image's class: the class caption its embedding is closest to."""
        classes = self._text_embeds(model, self.class_tokens, device)
        return (images @ classes.T).argmax(1).cpu()

    @torch.no_grad()
    def predictions(self, model: nn.Module) -> dict | None:
        """Each validation image's true and zero-shot class (the class captions), for error analysis."""
        val = self.prepared.validation
        if self.class_tokens is None or val.labels is None:
            return None
        model.eval()
        device = next(model.parameters()).device
        predicted = self._zero_shot(model, self._image_embeds(model, device), device)
        captions = [self.prepared.captions[i] for i in val.caption_ids.tolist()]
        return {
            "classes": list(self.prepared.class_captions),
            "true": val.labels.tolist(),
            "predicted": predicted.tolist(),
            "inputs": captions,
        }

    def serving_example(self, rows: int = 2) -> tuple[dict, dict, dict]:
        """A logged model's input example: validation images (PNG, as preprocessed), the first with its caption,
        and a caption alone (either column may be left out); its ``model_config`` and parameters (none)."""
        val = self.prepared.validation
        count = min(rows, len(val))
        mean, std = self.processor.image_mean, self.processor.image_std
        images = [png(val.pixels[i], mean, std) for i in range(count)]
        captions = [self.prepared.captions[i] for i in val.caption_ids[:count].tolist()]
        config = {
            "classes": self.prepared.class_captions,
            "labels": self.prepared.label_names,
            "mode": _pil_mode(self.vision_config),
            "max_length": int(self.task["max_length"]),
        }
        return {"image": images + [None], "caption": captions[:1] + [None] * (count - 1) + captions[:1]}, config, {}

    def save_model(self, model: nn.Module, path: str) -> None:
        """The model (under an adapter: each tower's adapter and the weights trained in full), the preprocessing."""
        if self.adapted:
            save_adapted(model, path, self.adapted)
        else:
            model.save_pretrained(path)
        self.tokenizer.save_pretrained(path)
        self.processor.save_pretrained(path)


def save_adapted(model: nn.Module, path: str, adapted: tuple[str, ...]) -> None:
    """An adapted dual encoder: its config, each adapted tower's adapter (``TOWER_adapter/``, peft's
    format, naming its base model) and every other weight (:data:`TRAINED_FILE`)."""
    model.config.save_pretrained(path)
    for tower in adapted:
        getattr(model, TOWERS[tower]).save_pretrained(str(Path(path, f"{tower}_adapter")), save_embedding_layers=False)
    frozen = tuple(TOWERS[t] + "." for t in adapted)
    trained = {n: t.detach().contiguous() for n, t in model.state_dict().items() if not n.startswith(frozen)}
    save_file(trained, str(Path(path, TRAINED_FILE)))


def load_checkpoint(model_dir: str, dropout: float | None = None, trainable: bool = False) -> nn.Module:
    """A checkpoint's dual encoder; an adapted one rebuilt on its towers' base models."""
    from transformers import VisionTextDualEncoderConfig, VisionTextDualEncoderModel

    cfg = VisionTextDualEncoderConfig.from_pretrained(model_dir)
    set_dropout_config(cfg.vision_config, dropout)
    set_dropout_config(cfg.text_config, dropout)
    if not Path(model_dir, TRAINED_FILE).exists():
        return VisionTextDualEncoderModel.from_pretrained(model_dir, config=cfg)
    adapter_dirs = {t: Path(model_dir, f"{t}_adapter") for t in TOWERS if Path(model_dir, f"{t}_adapter").is_dir()}
    model = _adapted_model(cfg, adapter_dirs, trainable)
    missing, unexpected = model.load_state_dict(load_file(str(Path(model_dir, TRAINED_FILE))), strict=False)
    frozen = tuple(TOWERS[t] + "." for t in adapter_dirs)
    if unexpected or any(not n.startswith(frozen) for n in missing):
        raise ValueError(
            f"{model_dir}: {TRAINED_FILE} does not match the model (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    return model


def _adapted_model(cfg, adapter_dirs: Mapping[str, Path], trainable: bool) -> nn.Module:
    """The dual encoder of ``cfg``, each adapted tower its base model with the adapter loaded, the rest new."""
    from peft import PeftConfig, PeftModel
    from transformers import AutoModel, VisionTextDualEncoderModel

    towers = {}
    for tower, attr in TOWERS.items():
        tower_cfg = getattr(cfg, f"{tower}_config")
        if tower in adapter_dirs:
            base = PeftConfig.from_pretrained(str(adapter_dirs[tower])).base_model_name_or_path
            towers[attr] = AutoModel.from_pretrained(resolve_model(base, f"task.{tower}_model"), config=tower_cfg)
        else:
            towers[attr] = AutoModel.from_config(tower_cfg)
    model = VisionTextDualEncoderModel(config=cfg, **towers)
    for tower, folder in adapter_dirs.items():
        attr = TOWERS[tower]
        setattr(model, attr, PeftModel.from_pretrained(getattr(model, attr), str(folder), is_trainable=trainable))
    return model


def load_pretrained(model_dir: str, merge: bool = False) -> tuple[nn.Module, object]:
    """A saved checkpoint as a ready ``(model, processor)``, in eval mode.

    The processor is a ``VisionTextDualEncoderProcessor``: ``processor(text=..., images=...)``.
    An adapted checkpoint is rebuilt on its towers' base models with the adapters loaded; ``merge``
    folds each adapter into its tower's weights.
    """
    from transformers import AutoImageProcessor, AutoTokenizer, VisionTextDualEncoderProcessor

    model = load_checkpoint(model_dir)
    if merge:
        for attr in TOWERS.values():
            setattr(model, attr, adapters.merged(getattr(model, attr)))
    model.eval()
    processor = VisionTextDualEncoderProcessor(
        image_processor=AutoImageProcessor.from_pretrained(model_dir, backend="pil"),
        tokenizer=AutoTokenizer.from_pretrained(model_dir),
    )
    return model, processor


def png(pixels: torch.Tensor, mean, std) -> bytes:
    """A preprocessed image (channels first, normalized) back to an 8-bit PNG."""
    import io

    import numpy as np
    from PIL import Image

    values = pixels.float() * torch.tensor(std).view(-1, 1, 1) + torch.tensor(mean).view(-1, 1, 1)
    array = (values.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    image = Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else np.ascontiguousarray(array))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


@torch.no_grad()
def predict_table(model: nn.Module, processor, table, config: Mapping, params: Mapping):
    """Each row's ``image`` (encoded bytes, or base64 text) to its zero-shot ``label`` and ``score`` among the
    class captions and its ``embedding``; its ``caption`` to ``caption_embedding``. A row without one gets None."""
    import pandas as pd

    n = len(table)
    out: dict[str, list] = {}
    if "image" in table:
        at = [i for i, v in enumerate(table["image"]) if v is not None and v == v]
        images = [_decoded(table["image"].iloc[i], config["mode"]) for i in at]
        embeds = _embeds_of_images(model, processor, images)
        out["embedding"] = _scatter(n, at, embeds.tolist())
        if config.get("classes"):
            classes = _embeds_of_texts(model, processor.tokenizer, config["classes"], config["max_length"])
            probs = (model.logit_scale.exp().float() * embeds @ classes.T).softmax(-1)
            score, best = probs.max(-1) if at else (torch.zeros(0), torch.zeros(0, dtype=torch.long))
            out["label"] = _scatter(n, at, [config["labels"][i] for i in best.tolist()])
            out["score"] = _scatter(n, at, score.tolist())
    if "caption" in table:
        at = [i for i, v in enumerate(table["caption"]) if v is not None and v == v]
        texts = [str(table["caption"].iloc[i]) for i in at]
        out["caption_embedding"] = _scatter(
            n, at, _embeds_of_texts(model, processor.tokenizer, texts, config["max_length"]).tolist()
        )
    return pd.DataFrame(out)


def _decoded(value, mode: str):
    import base64
    import io

    from PIL import Image

    data = value if isinstance(value, (bytes, bytearray)) else base64.b64decode(value)
    return Image.open(io.BytesIO(data)).convert(mode)


def _embeds_of_images(model: nn.Module, processor, images: list) -> torch.Tensor:
    device = next(model.parameters()).device
    if not images:
        return torch.zeros((0, model.config.projection_dim))
    pixels = processor.image_processor(images, return_tensors="pt")["pixel_values"].to(device)
    return nn.functional.normalize(model.get_image_features(pixel_values=pixels).pooler_output.float(), dim=-1).cpu()


def _embeds_of_texts(model: nn.Module, tokenizer, texts: list[str], max_length: int) -> torch.Tensor:
    device = next(model.parameters()).device
    if not texts:
        return torch.zeros((0, model.config.projection_dim))
    ids, mask = pad(tokenizer(texts, truncation=True, max_length=max_length)["input_ids"], tokenizer.pad_token_id or 0)
    emb = model.get_text_features(input_ids=ids.to(device), attention_mask=mask.to(device)).pooler_output
    return nn.functional.normalize(emb.float(), dim=-1).cpu()


def _scatter(n: int, at: list[int], values: list) -> list:
    """``values`` at the rows ``at`` of ``n``, None elsewhere."""
    out: list = [None] * n
    for i, v in zip(at, values):
        out[i] = v
    return out


def train(config: Mapping, task: Mapping, run: Mapping, reporter: Reporter) -> dict:
    """Run one trial (one model per fold under cross-validation); returns its last epoch's metrics."""
    return fit_task(ImageText, config, task, run, reporter)


def tune_trainable(config: dict, task: Mapping, run: Mapping, reporter: Reporter | None = None) -> None:
    """Ray Tune function trainable (bind ``task`` and ``run`` with ``tune.with_parameters``)."""
    quiet_transformers()
    train(config, task, run, reporter or TuneReporter())


SMOKE_TASK = {
    "vision_model": DEFAULT_VISION_TOWER,
    "text_model": "builtin:minilm",
    "tokenizer": None,
    "projection_dim": 64,
    "max_length": 32,
    "dataset": {
        "source": "builtin:fashion_mnist",
        "image_column": "image",
        "label_column": "label",
        "caption_column": None,
        "caption_template": "a photo of a {label}",
        "train_split": "train",
        "validation_split": "test",
        "train_size": MANIFEST.smoke_train_size,
        "validation_size": MANIFEST.smoke_validation_size,
        "seed": 0,
    },
    "groups": None,
}
SMOKE_CONFIG = smoke_config({"vision": {"lr": 1e-3}, "text": {"lr": 2e-5}, "head": {"lr": 1e-3}}, batch_size=32)


def main(argv: list[str] | None = None) -> int:
    return smoke_main(argv, MANIFEST, train, SMOKE_TASK, SMOKE_CONFIG, __doc__.split("\n")[0])


if __name__ == "__main__":
    sys.exit(main())
