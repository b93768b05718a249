"""Where a language model's training step loses GPU time: a bare loop's step four ways, on one model.

A Llama built from a config (random weights), random tokens, ``--batch-size`` x ``--seq-len`` a
step; each way trains ``--steps`` timed steps after 3 untimed ones (which include compiling):

- bf16 autocast over fp32 weights, AdamW's foreach kernels (PyTorch's default);
- the same with AdamW's fused kernel;
- fused, the model through ``torch.compile``;
- bf16 weights with no fp32 master copy, fused, compiled.

    python bench/lm_step_variants.py [--hidden 2048 --layers 16 --heads 16 --kv-heads 8 --intermediate 5632]
        [--vocab 32000] [--seq-len 1024] [--batch-size 32] [--steps 12] [--peak-tflops 989]

Needs a CUDA GPU. Prints a JSON line per way and one with all of them, then a summary:
tokens per second and the model-FLOPs utilization (6 x N x tokens/s over the peak, N the
parameters of every matrix product).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

WAYS = {  # name: (fused AdamW, torch.compile, bf16 weights)
    "autocast_foreach": (False, False, False),
    "autocast_fused": (True, False, False),
    "autocast_fused_compiled": (True, True, False),
    "bf16_weights_fused_compiled": (True, True, True),
}


def measure(args, fused: bool, compiled: bool, bf16_weights: bool) -> dict:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=args.vocab, hidden_size=args.hidden, num_hidden_layers=args.layers,
        num_attention_heads=args.heads, num_key_value_heads=args.kv_heads, intermediate_size=args.intermediate,
        max_position_embeddings=args.seq_len, pad_token_id=0, tie_word_embeddings=False,
    )  # fmt: skip
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).cuda()
    if bf16_weights:
        model = model.to(torch.bfloat16)
    matmul_params = sum(p.numel() for p in model.parameters()) - model.model.embed_tokens.weight.numel()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=fused)
    forward = torch.compile(model) if compiled else model
    ids = torch.randint(3, args.vocab, (args.batch_size, args.seq_len), device="cuda")

    def step() -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=not bf16_weights):
            loss = forward(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    t0 = time.perf_counter()
    for _ in range(3):
        step()
    torch.cuda.synchronize()
    warmup = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    torch.cuda.synchronize()
    tokens_per_s = args.batch_size * args.seq_len * args.steps / (time.perf_counter() - t0)
    return {
        "tokens_per_s": round(tokens_per_s),
        "mfu": round(6 * matmul_params * tokens_per_s / 1e12 / args.peak_tflops, 4),
        "warmup_s": round(warmup, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for name, default in (
        ("hidden", 2048),
        ("layers", 16),
        ("heads", 16),
        ("kv-heads", 8),
        ("intermediate", 5632),
        ("vocab", 32000),
        ("seq-len", 1024),
        ("batch-size", 32),
        ("steps", 12),
    ):
        parser.add_argument(f"--{name}", type=int, default=default)  # fmt: skip
    parser.add_argument("--peak-tflops", type=float, default=989.0)
    args = parser.parse_args()
    rows = {}
    for name, way in WAYS.items():
        rows[name] = measure(args, *way)
        print(json.dumps({"way": name, **rows[name]}), flush=True)
        torch.cuda.empty_cache()
    print(json.dumps({"bench": "lm_step_variants", "device": torch.cuda.get_device_name(), "ways": rows}))
    print(", ".join(f"{name} {r['tokens_per_s']:,} tokens/s (MFU {r['mfu']:.1%})" for name, r in rows.items()))


if __name__ == "__main__":
    main()
