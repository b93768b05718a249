"""BENCHMARKS.md's figure: each benchmark's ratio against its goal, the driver's memory by sweep size, and
full fine-tuning against adapters.

Reads the JSON lines the bench scripts print (``bench/results.jsonl``, one line per script, the
latest run of each) and draws ``bench/benchmarks.png``.

    python bench/plot.py [--results bench/results.jsonl] [--out bench/benchmarks.png]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent


# every line read: per precision, size, way
MANY = (
    "loop_efficiency",
    "lm_loop_efficiency",
    "orchestration",
    "ideal",
    "search",
    "strategies",
    "trial_start_run",
    "vs_hf_trainer",
)


def latest(path: Path) -> tuple[dict[str, dict], dict[str, list[dict]]]:
    """The last line of each bench in the file, and every line of the benches in ``MANY``."""
    out: dict[str, dict] = {}
    many: dict[str, list[dict]] = {name: [] for name in MANY}
    for line in path.read_text().splitlines():
        if line.strip().startswith("{"):
            row = json.loads(line)
            out[row["bench"]] = row
            if row["bench"] in many:
                many[row["bench"]].append(row)
    return out, many


def ratios(runs: dict[str, dict], many: dict[str, list[dict]]) -> list[tuple[str, float, float, bool]]:
    """(label, measured, goal, higher is better) for each figure the benches give as a ratio."""
    rows = []
    for r in many["loop_efficiency"]:
        where = "CPU" if r["device"].startswith("cpu") else r["device"].replace("NVIDIA ", "").split()[0]
        label = f"loop / bare PyTorch\n{where} {r['precision']}, batch {r['batch_size']}"
        rows.append((label, r["efficiency"], 0.97, True))
    for r in many["lm_loop_efficiency"]:
        where = "CPU" if r["device"].startswith("cpu") else r["device"].replace("NVIDIA ", "").split()[0]
        way = {"lora": "LoRA", "qlora": "QLoRA 4-bit"}.get(r.get("adapter"), "full")
        tokens = f"{r['batch_size'] * r['seq_len'] // 1024}k tokens a step"
        rows.append((f"LM loop / bare PyTorch\n{where} {r['precision']}, {way}, {tokens}", r["efficiency"], 0.97, True))
        if "mfu" in r and not r.get("adapter"):
            rows.append((f"LM MFU, full fine-tuning\n{where} {r['precision']}, {tokens}", r["mfu"], 0.40, True))
    # the latest run of each size (a rerun of one size replaces its bar; early lines lack train_size)
    sizes = {(o.get("model"), o["trials"], o.get("epochs")): o for o in many["orchestration"]}
    for o in sizes.values():
        model = "small BERT" if o.get("model") == "tiny" else "MiniLM"
        size = f", {o['train_size']} reviews" if o.get("train_size") else ""
        label = f"service / plain Tune\n{o['trials']} {model} trials{size}"
        rows.append((label, o["service_over_plain"], 1.03, False))
    # the latest run of each way (the sweep starts Ray, or joins a running one)
    for o in {o.get("ray", "embedded"): o for o in many["ideal"]}.values():
        way = "on a running Ray" if o.get("ray") == "running" else "Ray started by the sweep"
        rows.append((f"service / ideal\n{o['trials']} short trials, {way}", o["service_over_ideal"], 1.10, False))
    # the latest run on each dataset: a trial's start at its most rows over its start at its fewest, each way
    for o in {o.get("data", "rotten_tomatoes"): o for o in many["trial_start_run"]}.values():
        sizes = o["summary"]["sizes"]
        for way, growth in o["summary"]["start_at_most_over_fewest"].items():
            said = {"own": "its own data", "prepared": "the sweep's prepared data"}[way]
            rows.append((f"trial start, {sizes[-1]:,} / {sizes[0]:,} rows\n{said}", growth, 1.2, False))
    if "tracking_overhead" in runs:
        rows.append(("epoch, tracking on / off", runs["tracking_overhead"]["on_over_off"], 1.02, False))
    # the wide space, against both grids and random: the latest run of each budget
    for o in {o.get("budget_s", 240): o for o in many["search"] if o.get("common_target") is not None}.values():
        said = (
            f"to {o['common_target']}, {o['fastest']} / {{}}\n"
            f"{len(o['rows'])} strategies, {len(o['seeds'])} seeds, {o.get('budget_s', 240):.0f} s each"
        )
        rows.append((said.format("better grid"), o["vs_grid"], 0.2, False))
        rows.append((said.format("random"), o["vs_random"], 0.6, False))
    # the latest run of each trial size (CPUs a trial) on the earlier 4-setting space, until the wide one ran
    for o in {o.get("cpus_per_trial", 1): o for o in many["strategies"] if "search" not in runs}.values():
        targets = o.get("targets", [o["target"]])
        for target, key in zip(targets, ["to_target"] + [f"to_{t}" for t in targets[1:]]):
            best = min(
                (r for r in o["rows"] if r["strategy"] != "grid" and r.get(f"{key}_vs_grid")),
                key=lambda r: r[f"{key}_vs_grid"],
                default=None,
            )
            if best:
                label = f"time to {target}\n{best['strategy']} / grid, {o.get('cpus_per_trial', 1)} CPU a trial"
                rows.append((label, best[f"{key}_vs_grid"], 0.2, False))
    # the latest run on each space (runs before the wide space have none: the quickstart's)
    for o in {o.get("space", "narrow"): o for o in many["vs_hf_trainer"]}.values():
        seeds = f", median of {len(o['seeds'])} seeds" if len(o.get("seeds", [])) > 1 else ""
        cpus = o.get("cpus_per_trial", [1])
        for c in cpus if isinstance(cpus, list) else [cpus]:
            r = o.get(f"to_target_ratio_cpus_{c}", o.get("to_target_ratio"))
            if r:
                favour = o.get("favour", {}).get(str(c))  # seeds each side reached the target first
                won = f" (first on {favour['tune_service']}, Trainer on {favour['hf_trainer']})" if favour else ""
                label = (
                    f"time to target, ours / HF Trainer{won}\n{o.get('space', 'narrow')} space, {c} CPU a trial{seeds}"
                )
                rows.append((label, r, 0.5, False))
    return rows


def draw_adapters(ax, run: dict) -> None:
    """Best validation accuracy of each way within the budget, its trained parameters and checkpoint size."""
    rows = run["rows"]
    xs = range(len(rows))
    ax.bar(list(xs), [r["best"] or 0 for r in rows], color="tab:blue", width=0.6)
    for x, r in zip(xs, rows):
        text = f"{r['best']:.3f}\n{r['trainable_params'] / 1e6:.2g}M trained\n{r['model_mb']:.3g} MB model"
        ax.text(x, (r["best"] or 0) + 0.005, text, ha="center", va="bottom", fontsize=8)
    ax.axhline(run["target"], color="black", linestyle=":", label=f"target {run['target']}")
    ax.set_xticks(list(xs), [r["way"] for r in rows])
    low = min(r["best"] or 0 for r in rows)
    ax.set_ylim(max(0.0, low - 0.1), 1.0)
    ax.set_ylabel("best validation accuracy")
    ax.set_title(f"Full fine-tuning and adapters, {run['budget_s']:.0f} s each, seed {run['seed']}")
    ax.legend(loc="lower right")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=HERE / "results.jsonl")
    parser.add_argument("--out", type=Path, default=HERE / "benchmarks.png")
    args = parser.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs, many = latest(args.results)
    rows = ratios(runs, many)
    memory, adapters = runs.get("memory"), runs.get("adapters")
    panels = 1 + bool(memory) + bool(adapters)
    height = max(6.0, 0.45 * len(rows))  # two-line labels, one bar each
    fig, axes = plt.subplots(1, panels, figsize=(8 + 6 * (panels - 1), height), squeeze=False)
    ax = axes[0][0]
    ys = range(len(rows))
    colors = ["tab:green" if (m >= g if up else m <= g) else "tab:red" for _, m, g, up in rows]
    ax.barh(list(ys), [m for _, m, _, _ in rows], color=colors, height=0.55)
    ax.scatter([g for _, _, g, _ in rows], list(ys), marker="|", s=900, color="black", zorder=3)
    for y, (_, m, _, _) in zip(ys, rows):
        ax.text(m, y, f" {m:.3g}", va="center")
    ax.set_yticks(list(ys), [label for label, *_ in rows])
    ax.invert_yaxis()
    ax.set_xlabel("ratio; black tick: the goal (green: met, red: missed)")
    ax.set_title("Ratios, each measured side by side in one run")
    if memory:
        mx = axes[0][1]
        trials = [r["trials"] for r in memory["rows"]]
        mx.plot(trials, [r["driver_peak_mb"] for r in memory["rows"]], "o-", label="driver, peak RSS")
        mx.plot(trials, [r["driver_end_mb"] for r in memory["rows"]], "^-", label="driver, RSS at the end")
        mx.plot(trials, [r["trial_peak_mb"] for r in memory["rows"]], "s--", label="one trial, peak RSS")
        mx.set_xlabel("trials in the sweep")
        mx.set_ylabel("MB")
        mx.set_ylim(bottom=0)
        mx.set_title(f"Memory ({memory['driver_growth_mb_per_100_trials']} MB per 100 trials)")
        mx.legend()
    if adapters:
        draw_adapters(axes[0][-1], adapters)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(json.dumps({"bench": "plot", "figures": len(rows) + bool(memory) + bool(adapters), "out": str(args.out)}))


if __name__ == "__main__":
    main()
