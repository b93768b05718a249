"""Loop efficiency for language models: the causal-LM trainable against a bare PyTorch SFT loop.

A Llama built from a config (random weights: the same architecture and FLOPs as a trained
one) on synthetic text of ``--seq-len`` tokens (every token learned, a word-level tokenizer
built here), so the script needs no download. Same model, same batches in the same order,
same batch size, device and precision. The bare loop is what one writes by hand: one AdamW
over the trained parameters, forward, backward, clip, step. The trainable is
``trainables.loop.fit`` on the ``causal_lm`` task for one epoch (one optimizer per group,
autocast); its figure is the loop's own ``train_samples_per_s`` (training only). Rounds
alternate bare/trainable. ``--adapter`` runs both on a LoRA adapter (rank 16, attention)
over the same model saved as a "pretrained" folder.

    python bench/lm_loop_efficiency.py [--hidden 128 --layers 4 --heads 4 --kv-heads 2 --intermediate 256]
        [--vocab 8000] [--seq-len 128] [--train-size 256] [--batch-size 16] [--rounds 3]
        [--device cpu|cuda] [--precision fp32|bf16] [--adapter] [--peak-tflops 989]

On a GPU it also prints tokens per second and the model-FLOPs utilization over the device's
peak dense bf16 rate: 6 x N x tokens for full fine-tuning (forward 2N, backward 4N), 4 x N
for an adapter (the frozen base computes no weight gradients), N the parameters of every
matrix product (the embedding lookup left out; attention's own products left out too).

Prints one JSON line and a one-line summary.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from loop_efficiency import sync

from trainables.causal_lm import CausalLM
from trainables.config import TrialConfig
from trainables.loop import _DTYPES, fit, seed_everything
from trainables.reporting import LocalReporter
from trainables.standalone import smoke_config

H200_BF16_DENSE_TFLOPS = 989.0  # H100/H200 SXM, dense (no sparsity)
GROUP = {"lr": 1e-4, "optimizer": "adamw", "weight_decay": 0.0}
RUN = {"metric": "val_loss", "mode": "min"}


def write_corpus(where: Path, vocab: int, seq_len: int, rows: int) -> tuple[str, str]:
    """A word-level tokenizer of ``vocab`` words and a JSONL of ``rows`` texts of ``seq_len - 1`` words."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = [f"w{i}" for i in range(vocab - 3)]
    tok = Tokenizer(models.WordLevel({"[PAD]": 0, "[UNK]": 1, "[SEP]": 2, **{w: i + 3 for i, w in enumerate(words)}},
                                     unk_token="[UNK]"))  # fmt: skip
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", sep_token="[SEP]"
    ).save_pretrained(where / "tokenizer")
    rng = torch.Generator().manual_seed(0)
    with open(where / "corpus.jsonl", "w") as fh:
        for _ in range(rows):
            ids = torch.randint(0, len(words), (seq_len - 1,), generator=rng).tolist()
            fh.write(json.dumps({"text": " ".join(words[i] for i in ids)}) + "\n")
    return str(where / "tokenizer"), str(where / "corpus.jsonl")


def task_section(args, model, tokenizer: str, corpus: str) -> dict:
    return {
        "model": model, "tokenizer": tokenizer, "chat_template": None, "max_length": args.seq_len,
        "dataset": {"source": corpus, "config_name": None, "text_column": "text", "messages_column": None,
                    "prompt_column": "prompt", "response_column": "response", "prompt_template": "{prompt}",
                    "train_split": "train", "validation_split": 16 / (args.train_size + 16),
                    "train_size": None, "validation_size": None, "seed": 0},
        "generation": {"max_new_tokens": 1, "examples": 0}, "gradient_checkpointing": False, "groups": None,
        "adapter": {"type": "lora", "target_modules": "attention", "quantization": "4bit" if args.four_bit else None}
        if args.adapter
        else None,
    }  # fmt: skip


def trial_config(args) -> dict:
    groups = ("lora_A", "lora_B") if args.adapter else ("embeddings", "layers", "lm_head")
    config = smoke_config({g: GROUP for g in groups}, batch_size=args.batch_size)
    return {**config, "dropout": 0.0, "adapter": {"r": 16, "alpha": 32, "dropout": 0.0}}


def bare_loop(task: CausalLM, args, device: torch.device) -> dict:
    """One epoch by hand: one AdamW, forward, backward, clip, step. Returns samples/s and tokens."""
    seed_everything(0)
    model = task.build_model(TrialConfig.from_dict(trial_config(args)), None).to(device)
    model.train()
    trained = [p for p in model.parameters() if p.requires_grad]
    fused = device.type == "cuda" or None  # as the trainable's AdamW on a GPU
    optimizer = torch.optim.AdamW(trained, lr=1e-4, weight_decay=0.0, fused=fused)
    forward = torch.compile(model) if args.compile else model
    generator = torch.Generator().manual_seed(1)
    samples, tokens = 0, 0
    sync(device)
    t0 = time.perf_counter()
    for batch in task.train_batches(args.batch_size, generator):
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        with torch.autocast(device.type, dtype=_DTYPES.get(args.precision), enabled=args.precision != "fp32"):
            loss = forward(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trained, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        samples += int(batch["input_ids"].shape[0])
        tokens += int(batch["attention_mask"].sum())
    loss.detach().item()  # wait for the device
    sync(device)
    return {"samples_per_s": samples / (time.perf_counter() - t0), "tokens": tokens, "samples": samples}


def trainable_epoch(task: CausalLM, args, device: torch.device) -> float:
    run = {**RUN, "num_threads": torch.get_num_threads(), "device": str(device), "precision": args.precision,
           "compile": args.compile}  # fmt: skip
    reporter = LocalReporter(stream=None)
    fit(task, copy.deepcopy(trial_config(args)), run, reporter)
    return reporter.history[-1]["train_samples_per_s"]


def llama(args) -> dict:
    return {
        "model_type": "llama", "vocab_size": args.vocab, "hidden_size": args.hidden, "num_hidden_layers": args.layers,
        "num_attention_heads": args.heads, "num_key_value_heads": args.kv_heads,
        "intermediate_size": args.intermediate, "max_position_embeddings": max(args.seq_len, 128), "pad_token_id": 0,
        "tie_word_embeddings": False,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for name, default in (
        ("hidden", 128),
        ("layers", 4),
        ("heads", 4),
        ("kv-heads", 2),
        ("intermediate", 256),
        ("vocab", 8000),
        ("seq-len", 128),
        ("train-size", 256),
        ("batch-size", 16),
        ("rounds", 3),
    ):
        parser.add_argument(f"--{name}", type=int, default=default)  # fmt: skip
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--adapter", action="store_true", help="a LoRA adapter (rank 16, attention) on the model")
    parser.add_argument("--four-bit", action="store_true", help="with --adapter: the base in 4 bits (QLoRA; a GPU)")
    parser.add_argument("--compile", action="store_true", help="both loops train through torch.compile")
    parser.add_argument("--peak-tflops", type=float, default=H200_BF16_DENSE_TFLOPS)
    args = parser.parse_args()

    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer, corpus = write_corpus(Path(tmp), args.vocab, args.seq_len, args.train_size + 16)
        model = llama(args)
        if args.adapter:  # an adapter goes on a pretrained model: this one, saved
            from transformers import AutoConfig, AutoModelForCausalLM

            settings = {k: v for k, v in model.items() if k != "model_type"}
            torch.manual_seed(0)
            AutoModelForCausalLM.from_config(AutoConfig.for_model("llama", **settings)).save_pretrained(f"{tmp}/base")
            model = f"{tmp}/base"
        task = CausalLM(task_section(args, model, tokenizer, corpus))
        built = task.build_model(TrialConfig.from_dict(trial_config(args)), None)
        params = sum(p.numel() for n, p in built.named_parameters() if ".lora_" not in n)  # the model's own
        embedding = sum(m.weight.numel() for m in built.modules() if isinstance(m, torch.nn.Embedding))
        trained = sum(p.numel() for p in built.parameters() if p.requires_grad)
        del built

        bare_loop(task, args, device)  # warm-up: kernels, caches, allocator
        bare, ours, tokens, samples = [], [], 0, 0
        for _ in range(args.rounds):
            b = bare_loop(task, args, device)
            bare.append(b["samples_per_s"])
            tokens, samples = b["tokens"], b["samples"]
            ours.append(trainable_epoch(task, args, device))
    bare_sps, ours_sps = statistics.median(bare), statistics.median(ours)
    per_sample, threads = tokens / samples, torch.get_num_threads()
    record = {
        "bench": "lm_loop_efficiency",
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({threads} threads)",
        "precision": args.precision,
        "adapter": ("qlora" if args.four_bit else "lora") if args.adapter else None,
        "compile": args.compile,
        "model_params": params,
        "trained_params": trained,
        "seq_len": args.seq_len,
        "batch_size": args.batch_size,
        "train_size": args.train_size,
        "rounds": args.rounds,
        "bare_tokens_per_s": [round(x * per_sample, 1) for x in bare],
        "trainable_tokens_per_s": [round(x * per_sample, 1) for x in ours],
        "efficiency": round(ours_sps / bare_sps, 4),
    }
    if device.type == "cuda" and not args.four_bit:  # 4-bit weights are dequantized on the fly: not counted
        flops_per_token = (4 if args.adapter else 6) * (params - embedding)
        record["trainable_tflops"] = round(ours_sps * per_sample * flops_per_token / 1e12, 2)
        record["mfu"] = round(record["trainable_tflops"] / args.peak_tflops, 4)
    print(json.dumps(record))
    summary = (
        f"LM loop efficiency {record['efficiency']:.3f} (trainable {ours_sps * per_sample:,.0f} vs bare "
        f"{bare_sps * per_sample:,.0f} tokens/s, median of {args.rounds}, {record['device']}, {args.precision}"
        f"{', LoRA' if args.adapter else ''})"
    )
    if "mfu" in record:
        summary += f"; MFU {record['mfu']:.1%} of {args.peak_tflops:g} TFLOP/s"
    print(summary)


if __name__ == "__main__":
    main()
