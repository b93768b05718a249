"""What tune-service adds around trials: a sweep through it against plain Ray Tune, and against the ideal.

The same trainable (the quickstart task: MiniLM on Rotten Tomatoes, a small train set so
that each trial is short) runs N trials, 2 at a time on 2 CPUs, two ways, one after the other
(the service first in even rounds, plain Tune first in odd ones: use an even ``--rounds``):

- tune-service: ``run_sweep`` on the quickstart spec (preflight, MLflow parent and child
  runs in a local SQLite store, per-epoch streaming, the trials' best checkpoints to MLflow),
- plain Ray Tune: ``Tuner`` over the same function trainable (``tune.with_parameters``), the
  same search space, the same concurrency and checkpoint settings, no MLflow; its random search
  starts from the configs the service ran (``points_to_evaluate``), so both run the same trials.

Both run against one in-process Ray started first, so neither pays for starting it, and the
service against an MLflow store whose tables exist (a new store's first use makes them, once).
Printed for each: the wall time of the call; the trials' own compute (the sum of Tune's
``time_total_s``, loading included) divided by the concurrent slots, which is what a
perfect orchestrator would take; and the ratios service/plain and wall/ideal.

    python bench/orchestration.py [--trials 40] [--rounds 1] [--epochs 1] [--train-size 64] [--model tiny]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import ray
from _common import local_store
from memory import tiny_model
from ray import tune
from ray.tune.search.basic_variant import BasicVariantGenerator

import search_spaces
from trainables.text_classification import tune_trainable
from tune_service import load_spec, run_sweep

ROOT = Path(__file__).resolve().parents[1]
SLOTS = 2


def compute_s(trial_dirs: list[Path]) -> float:
    """The trials' own time: each one's last ``time_total_s`` as Tune recorded it."""
    total = 0.0
    for d in trial_dirs:
        lines = (d / "result.json").read_text().splitlines()
        total += json.loads(lines[-1])["time_total_s"]
    return total


def first_epoch_s(trial_dirs: list[Path]) -> float:
    """The trials' first epochs (each with its loading) as Tune timed them: the rest of compute_s is later epochs."""
    return sum(json.loads((d / "result.json").read_text().splitlines()[0])["time_this_iter_s"] for d in trial_dirs)


def short_trials(trials: int, epochs: int, train_size: int, reuse_actors: bool) -> dict:
    """The quickstart spec cut to short trials: ``train_size`` reviews for training and as many for validation."""
    spec = load_spec(ROOT / "examples" / "quickstart.yaml").model_dump(mode="json", exclude_none=True)
    spec["task"]["dataset"].update(train_size=train_size, validation_size=train_size)
    spec["hyperparameters"]["epochs"] = epochs
    spec["search"].update(num_samples=trials, reuse_actors=reuse_actors)
    spec["search"].pop("time_budget_s")  # every trial runs
    spec["mlflow"].update(reports=False)
    return spec


def through_service(spec: dict, where: Path) -> tuple[float, list[Path], list[dict]]:
    with local_store(where) as uri:  # an MLflow store in use, as Ray is: neither is started on the clock
        started = time.perf_counter()
        result = run_sweep(spec, tracking_uri=uri, storage_path=str(where / "ray"), verbose=0)
        wall = time.perf_counter() - started
    dirs = [p.parent for p in (where / "ray").glob("*/*/result.json")]
    assert len(result.trials) == len(dirs), (len(result.trials), len(dirs))
    configs = [t.config for t in sorted(result.trials, key=lambda t: t.trial_id)]  # in the order Tune made them
    return wall, dirs, configs


def through_plain_tune(spec: dict, where: Path, configs: list[dict]) -> tuple[float, list[Path]]:
    """What a user writes with Ray Tune alone for the same trials: the configs the service ran, in its order."""
    loaded = load_spec(spec)  # the same task section and ranges, read the same way
    # the same Tune param_space the service hands Tune (every default filled in); Tune's own random search
    # starts from the service's configs (points_to_evaluate), so both run the same trials (a batch size or
    # a rate drawn apart would change the compute, not the orchestration)
    config = search_spaces.build(loaded, None).param_space
    trainable = tune.with_parameters(
        tune_trainable,
        task=loaded.task.model_dump(mode="json"),
        run={"metric": "val_accuracy", "mode": "max", "num_threads": 1},
    )
    started = time.perf_counter()
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1}),
        param_space=config,
        tune_config=tune.TuneConfig(
            metric="val_accuracy",
            mode="max",
            num_samples=loaded.search.num_samples,
            max_concurrent_trials=SLOTS,
            reuse_actors=loaded.search.reuse_actors,
            search_alg=BasicVariantGenerator(points_to_evaluate=configs),
        ),
        run_config=tune.RunConfig(
            name=f"plain-{uuid.uuid4().hex[:6]}",
            storage_path=str(where / "ray"),
            verbose=0,
            checkpoint_config=tune.CheckpointConfig(
                num_to_keep=2, checkpoint_score_attribute="val_accuracy", checkpoint_score_order="max"
            ),
        ),
    )
    grid = tuner.fit()
    wall = time.perf_counter() - started
    assert not grid.errors, grid.errors
    assert sorted(map(json.dumps, (r.config for r in grid))) == sorted(map(json.dumps, configs))  # the same trials
    return wall, [p.parent for p in (where / "ray").glob("*/*/result.json")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--train-size", type=int, default=64)
    parser.add_argument("--no-reuse-actors", action="store_true", help="a fresh process per trial, both ways")
    parser.add_argument("--model", default="builtin:minilm", help="a model source, or tiny (bench/memory.py's)")
    args = parser.parse_args()

    spec = short_trials(args.trials, args.epochs, args.train_size, not args.no_reuse_actors)
    model_dir = tempfile.TemporaryDirectory(prefix="bench-orch-model-")
    spec["task"]["model"] = tiny_model(Path(model_dir.name)) if args.model == "tiny" else args.model

    walls: dict[str, list[float]] = {"service": [], "plain": []}
    ideal: dict[str, list[float]] = {"service": [], "plain": []}
    first: dict[str, list[float]] = {"service": [], "plain": []}  # the trials' first epochs, loading included
    ray.init(address="local", num_cpus=SLOTS, include_dashboard=False, log_to_driver=False)
    try:
        configs: list[dict] = []
        for r in range(args.rounds):
            # This machine drifts from one run to the next (4% faster a pair, measured): the service goes
            # first in even rounds, plain Tune in odd ones, on the configs the service ran in the round
            # before (the quickstart's seed draws the same ones each time; checked)
            for mode in ("service", "plain") if r % 2 == 0 else ("plain", "service"):
                with tempfile.TemporaryDirectory(prefix=f"bench-orch-{mode}-") as tmp:
                    if mode == "service":
                        wall, dirs, ran = through_service(spec, Path(tmp))
                        assert not configs or json.dumps(ran) == json.dumps(configs), "the service drew other configs"
                        configs = ran
                    else:
                        wall, dirs = through_plain_tune(spec, Path(tmp), configs)
                    compute, first_s = compute_s(dirs), first_epoch_s(dirs)
                walls[mode].append(wall)
                ideal[mode].append(compute / SLOTS)
                first[mode].append(first_s)
                shown = (
                    f"{len(dirs)} trials, wall {wall:7.1f} s, ideal {compute / SLOTS:7.1f} s "
                    f"(first epochs {first_s:.1f} s, later epochs {compute - first_s:.1f} s, summed over trials)"
                )
                print(f"round {r} {mode:7s}: {shown}", flush=True)
    finally:
        ray.shutdown()

    service, plain = statistics.mean(walls["service"]), statistics.mean(walls["plain"])
    first_mean = {mode: statistics.mean(v) for mode, v in first.items()}
    figures = {
        "bench": "orchestration",
        "model": args.model,
        "trials": args.trials,
        "epochs": args.epochs,
        "train_size": args.train_size,
        "reuse_actors": not args.no_reuse_actors,
        "service_wall_s": round(service, 2),
        "plain_tune_wall_s": round(plain, 2),
        "service_over_plain": round(service / plain, 3),
        "service_over_ideal": round(service / statistics.mean(ideal["service"]), 3),
        "plain_over_ideal": round(plain / statistics.mean(ideal["plain"]), 3),
        # Tune's clocks inside the trials, summed over them: the first epochs (loading included) and the rest
        "service_first_epochs_s": round(first_mean["service"], 1),
        "service_later_epochs_s": round(statistics.mean(ideal["service"]) * SLOTS - first_mean["service"], 1),
        "plain_first_epochs_s": round(first_mean["plain"], 1),
        "plain_later_epochs_s": round(statistics.mean(ideal["plain"]) * SLOTS - first_mean["plain"], 1),
    }
    print(json.dumps(figures))
    print(
        f"{args.trials} trials: tune-service {service:.1f} s, plain Ray Tune {plain:.1f} s "
        f"(x{figures['service_over_plain']}); against the ideal: service x{figures['service_over_ideal']}, "
        f"plain x{figures['plain_over_ideal']}"
    )


if __name__ == "__main__":
    main()
