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

Time to target hangs on a search's first few trials, so one run says little: ``--seeds 0,1,2``
runs every side once per seed, in turn, and reports each seed's figures and the medians.

Both clocks start at the call. Printed for each: the best validation accuracy among the
epochs that ended within the budget, the seconds to the first epoch at or above the target,
trials started, and the call's whole wall time (a trial running when the budget ends finishes).

    python bench/vs_hf_trainer.py [--budget 300] [--target 0.75] [--epochs 3] \\
        [--train-size 320] [--validation-size 200] [--strategy bayesian+asha] [--cpus-per-trial 1|2|1,2] \\
        [--seeds 0]

Needs ``accelerate`` (Trainer's): ``pip install -e ".[bench]"``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import optuna
import torch
from _common import local_store
from mlflow.tracking import MlflowClient

from trainables.text_classification import TextClassification
from tune_service import load_spec, run_sweep

ROOT = Path(__file__).resolve().parents[1]
CPUS = 2  # Ray's, and Trainer's threads


def quickstart(args) -> dict:
    data = load_spec(ROOT / "examples" / "quickstart.yaml").to_dict()
    data["name"] = "bench-vs-trainer"
    data["task"]["dataset"].update(train_size=args.train_size, validation_size=args.validation_size)
    data["hyperparameters"]["epochs"] = args.epochs
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
        AutoModelForSequenceClassification,
        DataCollatorWithPadding,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    task = TextClassification(load_spec(spec).task.model_dump(mode="json"))
    data = task.data
    val_ids = task.tokenizer(data.validation.texts, truncation=True, max_length=spec["task"]["max_length"])
    train = Dataset.from_dict({"input_ids": task.train_ids, "labels": data.train.labels})
    validation = Dataset.from_dict({"input_ids": val_ids["input_ids"], "labels": data.validation.labels})

    def model_init(trial=None):
        return AutoModelForSequenceClassification.from_pretrained(task.source, num_labels=data.num_labels)

    def hp_space(trial):
        return {
            "learning_rate": trial.suggest_float("learning_rate", 3e-5, 3e-4, log=True),
            "optim": trial.suggest_categorical("optim", ["adamw_torch", "sgd"]),
            "per_device_train_batch_size": trial.suggest_categorical("per_device_train_batch_size", [16, 32]),
        }

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=300, help="seconds, each way")
    parser.add_argument("--target", type=float, default=0.75)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-size", type=int, default=320)
    parser.add_argument("--validation-size", type=int, default=200)
    parser.add_argument("--strategy", default="bayesian+asha")
    parser.add_argument("--seeds", default="0", help="comma-separated; every side runs once per seed")
    parser.add_argument(
        "--cpus-per-trial", default="1", help="tune-service's threads per trial, 1 or 2; 1,2 runs the service both ways"
    )
    args = parser.parse_args()
    cpus = [int(c) for c in args.cpus_per_trial.split(",")]
    if not set(cpus) <= {1, 2}:
        parser.error(f"--cpus-per-trial: got {args.cpus_per_trial!r}; 1, 2 or 1,2")
    seeds = [int(s) for s in args.seeds.split(",")]

    sides = [(f"tune_service_cpus_{c}" if len(cpus) > 1 else "tune_service", c, through_service) for c in cpus]
    runs = []
    for seed in seeds:
        rows = {}
        for name, c, run in [*sides, ("hf_trainer", CPUS, through_trainer)]:
            side = argparse.Namespace(**{**vars(args), "seed": seed, "cpus_per_trial": c})  # this run's settings
            with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
                rows[name] = run(quickstart(side), side, Path(tmp))
            print(f"done seed {seed} {name}: {rows[name]}", flush=True)
        runs.append({"seed": seed, **rows})

    def ratio(ours, theirs):
        return round(ours / theirs, 3) if ours and theirs else None

    medians, ratios = {}, {}
    for name in [n for n, _, _ in sides] + ["hf_trainer"]:
        reached = [r[name]["to_target_s"] for r in runs]
        # a seed that never reached the target counts as the budget
        medians[name] = statistics.median(t if t is not None else args.budget for t in reached)
    for name, c, _ in sides:
        ratios[c] = ratio(medians[name], medians["hf_trainer"])
        for r in runs:
            r[f"to_target_ratio_cpus_{c}"] = ratio(r[name]["to_target_s"], r["hf_trainer"]["to_target_s"])
    figures = {
        "bench": "vs_hf_trainer",
        "budget_s": args.budget,
        "target": args.target,
        "strategy": args.strategy,
        "cpus_per_trial": cpus,
        "seeds": seeds,
        "runs": runs,
        **{f"{name}_median_to_target_s": m for name, m in medians.items()},
        **{
            f"{name}_median_best": statistics.median(r[name]["best_within_budget"] or 0 for r in runs)
            for name in medians
        },
        # the median seed's time to target, ours over Trainer's
        "to_target_ratio": ratios[cpus[0]],
        **({f"to_target_ratio_cpus_{c}": r for c, r in ratios.items()} if len(cpus) > 1 else {}),
    }
    print(json.dumps(figures))
    for r in runs:
        print(
            f"seed {r['seed']}: to {args.target} in "
            + ", ".join(f"{name} {r[name]['to_target_s']} s (best {r[name]['best_within_budget']})" for name in medians)
        )
    for name, c, _ in sides:
        print(
            f"{args.budget:.0f} s each, median of {len(seeds)} seeds: tune-service ({args.strategy}, {c} CPU a trial) "
            f"to {args.target} in {medians[name]} s; Trainer+Optuna in {medians['hf_trainer']} s: x{ratios[c]}"
        )


if __name__ == "__main__":
    main()
