"""tune-service against Hugging Face's ``Trainer.hyperparameter_search(backend="optuna")``, same budget.

The quickstart task both ways: the pretrained MiniLM, the same Rotten Tomatoes train and
validation reviews (read and tokenized by the task's own loader), 3 epochs, validation
accuracy after each epoch, the same wall-clock budget, one after the other on this machine.

- tune-service: ``run_sweep`` on the quickstart spec, the strategy given (default
  ``bayesian+asha``: Optuna's TPE with ASHA), 2 trials at a time, 1 thread each (the
  quickstart's; ``--cpus-per-trial 2``: one at a time on both threads, as Trainer runs). The space:
  the encoder's and the head's learning rates apart, the head's optimizer, the batch size.
- Trainer: ``hyperparameter_search`` with Optuna (TPE, and Optuna's default MedianPruner fed by
  each epoch's evaluation), one trial at a time on both threads, as Trainer runs them. Trainer
  has one learning rate for the whole model, so the space is that rate (over the encoder's
  range), the optimizer (``adamw_torch`` or ``sgd``) and the batch size; the same linear
  schedule, 10% warmup and weight decay 0.01. Optuna's ``timeout`` ends the search. Its TPE
  sampler is seeded with the run's seed (``hyperparameter_search`` passes it to the study).

``--space wide``: both sides search more settings. tune-service the 8 of bench/strategies.py (both
rates apart, the head's optimizer, the batch size, the encoder's warmup ratio, weight decay and
layer-wise decay, the dropout); Trainer the 6 of them it can express (one rate, the optimizer, the
batch size, ``warmup_steps`` as a ratio, ``weight_decay``, and the dropout, set on the model's
config in ``model_init``), over the same ranges.

Time to target hangs on a search's first few trials, so one run says little: ``--seeds 0,1,2,...``
runs every side once per seed, in turn, and reports each seed's figures and ratio (ours over
Trainer's time to the target; a side that never reached it counts as slower), the median of
the ratios, and how many seeds favour each side. ``--runs FILE`` keeps each finished seed there
(a JSON line); a seed already there under the same settings is not run again.

Both clocks start at the call. Printed for each: the best validation accuracy among the
epochs that ended within the budget, the seconds to the first epoch at or above the target,
trials started, and the call's whole wall time (a trial running when the budget ends finishes).

    python bench/vs_hf_trainer.py [--budget 300] [--target 0.75] [--epochs 3] \\
        [--train-size 320] [--validation-size 200] [--strategy bayesian+asha] [--cpus-per-trial 1|2|1,2] \\
        [--seeds 0] [--space narrow|wide] [--runs FILE]

Needs ``accelerate`` (Trainer's): ``pip install -e ".[bench]"``.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
import time
from pathlib import Path

import optuna
import torch
from _common import keep_run, kept_runs, local_store
from mlflow.tracking import MlflowClient
from strategies import search_wide

from trainables.text_classification import TextClassification
from tune_service import load_spec, run_sweep

ROOT = Path(__file__).resolve().parents[1]
CPUS = 2  # Ray's, and Trainer's threads


def quickstart(args) -> dict:
    data = load_spec(ROOT / "examples" / "quickstart.yaml").to_dict()
    data["name"] = "bench-vs-trainer"
    data["task"]["dataset"].update(train_size=args.train_size, validation_size=args.validation_size)
    data["hyperparameters"]["epochs"] = args.epochs
    if args.space == "wide":
        search_wide(data["hyperparameters"])
    data["search"] = {
        "strategy": args.strategy,
        "metric": "val_accuracy",
        "mode": "max",
        "num_samples": 64,
        "max_concurrent_trials": CPUS // args.cpus_per_trial,
        "time_budget_s": args.budget,
        "reduction_factor": 3,
        "seed": args.seed,
    }
    data["resources"] = {"cpu": args.cpus_per_trial}  # a trial trains on as many threads
    return data


def summarize(evals: list[tuple[float, float]], args, trials: int, wall: float) -> dict:
    """``evals``: (seconds since the call, validation accuracy) for every epoch."""
    within = [acc for at, acc in evals if at <= args.budget]
    reached = [at for at, acc in evals if acc >= args.target]
    return {
        "best_within_budget": max(within) if within else None,
        "to_target_s": round(min(reached), 1) if reached else None,
        "trials": trials,
        "epochs": len(evals),
        "wall_s": round(wall, 1),
    }


def through_service(spec: dict, args, where: Path) -> dict:
    with local_store(where) as uri:  # a store in use: its tables exist
        started = time.time()
        result = run_sweep(spec, tracking_uri=uri, storage_path=str(where / "ray"), verbose=0, num_cpus=CPUS)
        wall = time.time() - started
    client = MlflowClient(uri)
    evals = [
        (m.timestamp / 1000 - started, m.value)
        for t in result.trials
        if t.mlflow_run_id
        for m in client.get_metric_history(t.mlflow_run_id, "val_accuracy")
    ]
    return summarize(evals, args, len(result.trials), wall)


def through_trainer(spec: dict, args, where: Path) -> dict:
    """What a Hugging Face user writes: Trainer, ``model_init``, an Optuna ``hp_space``."""
    from datasets import Dataset
    from transformers import (
        AutoConfig,
        AutoModelForSequenceClassification,
        DataCollatorWithPadding,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    task = TextClassification(load_spec(spec).task.model_dump(mode="json"))
    data = task.prepared  # the task's own split and token ids, as the service's trials get them
    train_ids = [data.train_ids[i].tolist() for i in range(len(data.train_ids))]
    train = Dataset.from_dict({"input_ids": train_ids, "labels": data.train_labels.tolist()})
    val_ids = [data.validation_ids[i].tolist() for i in range(len(data.validation_ids))]
    validation = Dataset.from_dict({"input_ids": val_ids, "labels": data.validation_labels.tolist()})
    num_labels = len(data.label_names)

    def model_init(trial=None):
        config = AutoConfig.from_pretrained(task.source, num_labels=num_labels)
        if args.space == "wide" and trial is not None:  # Trainer searches no dropout: set it on the config
            dropout = trial.suggest_float("dropout", 0.0, 0.3)
            for name, value in list(vars(config).items()):
                if "dropout" in name and isinstance(value, float):
                    setattr(config, name, dropout)
        return AutoModelForSequenceClassification.from_pretrained(task.source, config=config)

    def hp_space(trial):
        space = {
            "learning_rate": trial.suggest_float("learning_rate", 3e-5, 3e-4, log=True),
            "optim": trial.suggest_categorical("optim", ["adamw_torch", "sgd"]),
            "per_device_train_batch_size": trial.suggest_categorical("per_device_train_batch_size", [16, 32]),
        }
        if args.space == "wide":  # a float warmup_steps under 1 is a ratio of the training steps
            space["warmup_steps"] = trial.suggest_float("warmup_ratio", 0.0, 0.2)
            space["weight_decay"] = trial.suggest_float("weight_decay", 1e-3, 1e-1, log=True)
        return space

    def accuracy(pred):
        return {"accuracy": float((pred.predictions.argmax(-1) == pred.label_ids).mean())}

    evals: list[tuple[float, float]] = []
    trials = [0]

    class Clock(TrainerCallback):
        def on_train_begin(self, *a, **kw):
            trials[0] += 1

        def on_evaluate(self, args_, state, control, metrics=None, **kw):
            evals.append((time.time() - started, metrics["eval_accuracy"]))

    torch.set_num_threads(CPUS)
    trainer = Trainer(
        model_init=model_init,
        args=TrainingArguments(
            output_dir=str(where / "trainer"),
            num_train_epochs=args.epochs,
            eval_strategy="epoch",
            save_strategy="no",
            logging_strategy="no",
            report_to="none",
            disable_tqdm=True,
            per_device_eval_batch_size=64,
            lr_scheduler_type="linear",
            warmup_steps=0.1,
            weight_decay=0.01,
            use_cpu=True,
            seed=args.seed,
        ),
        train_dataset=train,
        eval_dataset=validation,
        data_collator=DataCollatorWithPadding(task.tokenizer),
        compute_metrics=accuracy,
        callbacks=[Clock()],
    )
    started = time.time()
    trainer.hyperparameter_search(
        hp_space=hp_space,
        compute_objective=lambda metrics: metrics["eval_accuracy"],
        direction="maximize",
        backend="optuna",
        n_trials=1000,
        timeout=args.budget,
        sampler=optuna.samplers.TPESampler(seed=args.seed),
    )
    return summarize(evals, args, trials[0], time.time() - started)


def seed_ratio(ours: float | None, theirs: float | None) -> float | None:
    """Ours over Trainer's time to the target in one seed; a side that never reached it is slower than any
    time (0 or infinity); None when neither did."""
    if ours is None or theirs is None:
        return None if ours is None and theirs is None else (math.inf if ours is None else 0.0)
    return ours / theirs


def favours(ratio: float | None) -> str:
    return "neither" if ratio is None or ratio == 1 else ("tune_service" if ratio < 1 else "hf_trainer")


def settings(args) -> dict:
    """What makes two seeds' runs comparable: a seed kept in ``--runs`` counts only under the same settings."""
    keys = ("budget", "target", "epochs", "train_size", "validation_size", "strategy", "space", "cpus_per_trial")
    return {key: getattr(args, key) for key in keys}


def run_seed(seed: int, sides: list, args) -> dict:
    """Every side once with ``seed``."""
    rows = {}
    for name, c, run in [*sides, ("hf_trainer", CPUS, through_trainer)]:
        side = argparse.Namespace(**{**vars(args), "seed": seed, "cpus_per_trial": c})  # this run's settings
        with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
            rows[name] = run(quickstart(side), side, Path(tmp))
        print(f"done seed {seed} {name}: {rows[name]}", flush=True)
    for name, c, _ in sides:
        r = seed_ratio(rows[name]["to_target_s"], rows["hf_trainer"]["to_target_s"])
        rows[f"favours_cpus_{c}"] = favours(r)
        rows[f"to_target_ratio_cpus_{c}"] = None if r is None or math.isinf(r) else round(r, 3)
    return {"bench": "vs_hf_trainer_seed", **settings(args), "seed": seed, **rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=300, help="seconds, each way")
    parser.add_argument("--target", type=float, default=0.75)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-size", type=int, default=320)
    parser.add_argument("--validation-size", type=int, default=200)
    parser.add_argument("--strategy", default="bayesian+asha")
    parser.add_argument("--seeds", default="0", help="comma-separated; every side runs once per seed")
    parser.add_argument("--space", choices=("narrow", "wide"), default="narrow")
    parser.add_argument("--runs", type=Path, help="a JSON-lines file of finished seeds: kept, and not run again")
    parser.add_argument(
        "--cpus-per-trial", default="1", help="tune-service's threads per trial, 1 or 2; 1,2 runs the service both ways"
    )
    args = parser.parse_args()
    cpus = [int(c) for c in args.cpus_per_trial.split(",")]
    if not set(cpus) <= {1, 2}:
        parser.error(f"--cpus-per-trial: got {args.cpus_per_trial!r}; 1, 2 or 1,2")
    seeds = [int(s) for s in args.seeds.split(",")]
    args.cpus_per_trial = cpus

    sides = [(f"tune_service_cpus_{c}" if len(cpus) > 1 else "tune_service", c, through_service) for c in cpus]
    kept = {r["seed"]: r for r in kept_runs(args.runs, "vs_hf_trainer_seed", settings(args))}
    runs = []
    for seed in seeds:
        if seed not in kept:
            kept[seed] = run_seed(seed, sides, args)
            keep_run(args.runs, kept[seed])
        runs.append(kept[seed])

    medians = {}
    for name in [n for n, _, _ in sides] + ["hf_trainer"]:
        reached = [r[name]["to_target_s"] for r in runs]
        # a seed that never reached the target counts as the budget
        medians[name] = statistics.median(t if t is not None else args.budget for t in reached)
    per_seed = {}
    for name, c, _ in sides:
        ratios = [seed_ratio(r[name]["to_target_s"], r["hf_trainer"]["to_target_s"]) for r in runs]
        middle = statistics.median([x for x in ratios if x is not None] or [math.nan])
        per_seed[c] = {
            "median_ratio": None if not math.isfinite(middle) else round(middle, 3),
            "favour": {side: sum(favours(x) == side for x in ratios) for side in ("tune_service", "hf_trainer")},
        }
    figures = {
        "bench": "vs_hf_trainer",
        **settings(args),
        "budget_s": args.budget,
        "seeds": seeds,
        "runs": runs,
        **{f"{name}_median_to_target_s": m for name, m in medians.items()},
        **{
            f"{name}_median_best": statistics.median(r[name]["best_within_budget"] or 0 for r in runs)
            for name in medians
        },
        # the median over seeds of each seed's ratio, ours over Trainer's time to the target
        "to_target_ratio": per_seed[cpus[0]]["median_ratio"],
        **({f"to_target_ratio_cpus_{c}": p["median_ratio"] for c, p in per_seed.items()} if len(cpus) > 1 else {}),
        "favour": {c: p["favour"] for c, p in per_seed.items()},
    }
    print(json.dumps(figures))
    for r in runs:
        print(
            f"seed {r['seed']}: to {args.target} in "
            + ", ".join(f"{name} {r[name]['to_target_s']} s (best {r[name]['best_within_budget']})" for name in medians)
            + "; ours / Trainer's: "
            + ", ".join(f"{r[f'to_target_ratio_cpus_{c}']} ({c} CPU a trial)" for _, c, _ in sides)
        )
    for name, c, _ in sides:
        p = per_seed[c]
        print(
            f"{args.budget:.0f} s each, {args.space} space, {len(seeds)} seeds: tune-service ({args.strategy}, "
            f"{c} CPU a trial) over Trainer+Optuna's time to {args.target}: median of the seeds' ratios "
            f"x{p['median_ratio']}; faster in {p['favour']['tune_service']} seeds, Trainer in "
            f"{p['favour']['hf_trainer']}; median times {medians[name]} s against {medians['hf_trainer']} s"
        )


if __name__ == "__main__":
    main()
