"""Strategies and schedulers on real short sweeps of a tiny BERT through Ray."""

from __future__ import annotations

import json

import pytest
from mlflow.tracking import MlflowClient

from tune_service import run_sweep


def test_asha_and_hyperband_stop_poor_trials_early(make_spec, where):
    # one learning trial first, then three that cannot learn (lr 1e-12). ASHA runs them one at a
    # time, so the learner has set each rung's bar before the others reach it. Hyperband (2 epochs,
    # eta 2) deals them into two brackets of two in order: the first runs both epochs, the second
    # keeps the better half after epoch 1.
    def spec(scheduler: str, limit: int | None) -> dict:
        return make_spec(
            **{
                "search": {
                    "strategy": "grid",
                    "scheduler": scheduler,
                    "metric": "val_loss",
                    "mode": "min",
                    "max_concurrent_trials": limit,
                    "grace_period": 1,
                    "reduction_factor": 2,
                },  # fmt: skip
                "hyperparameters.groups.encoder.lr": {"grid": [3e-3, 1e-12, 1e-12, 1e-12]},
                "hyperparameters.groups.encoder.scheduler": "constant",
                "hyperparameters.epochs": 2,
            }
        )

    # FIFO trains every trial to the end (every grid sweep in test_sweep.py shows it): 4 x 2 epochs
    full = 4 * 2
    for scheduler, limit in (("asha", 1), ("hyperband", None)):
        result = run_sweep(spec(scheduler, limit), **where)
        learner = next(t for t in result.trials if t.config["groups"]["encoder"]["lr"] == 3e-3)
        assert learner.epochs == 2 and result.best_trial_id == learner.trial_id, scheduler
        stuck = [t.epochs for t in result.trials if t is not learner]
        assert len(stuck) == 3 and any(e < 2 for e in stuck), (scheduler, stuck)
        assert sum(t.epochs for t in result.trials) < full, scheduler
        # a trial the scheduler stopped (or paused) still has every epoch it trained in MLflow, once:
        # its node's writer outlives it
        client = MlflowClient(result.tracking_uri)
        for t in result.trials:
            steps = [m.step for m in client.get_metric_history(t.mlflow_run_id, "val_loss")]
            assert sorted(steps) == list(range(1, t.epochs + 1)), (scheduler, t.trial_id, steps)
            assert client.get_run(t.mlflow_run_id).info.status == "FINISHED"


def test_bayesian_search_with_median_stopping_runs_and_tracks(make_spec, where):
    result = run_sweep(
        make_spec(
            **{
                "search": {"strategy": "bayesian", "scheduler": "median", "num_samples": 3, "seed": 5},
                "hyperparameters.groups.encoder.lr": {"loguniform": [1e-4, 1e-2]},
                "hyperparameters.groups.head.optimizer": {"choice": ["sgd", "adamw"]},
                "hyperparameters.epochs": 2,
                "task.dataset.train_size": 64,
            }
        ),
        **where,
    )
    assert len(result.trials) == 3 and all(t.status == "TERMINATED" for t in result.trials)
    lrs = [t.config["groups"]["encoder"]["lr"] for t in result.trials]
    assert len(set(lrs)) == 3 and all(1e-4 <= lr <= 1e-2 for lr in lrs)
    assert result.best_trial_id is not None
    client = MlflowClient(result.tracking_uri)
    assert client.get_run(result.parent_run_id).data.tags["tune_service.strategy"] == "bayesian"
    runs = client.search_runs(
        [result.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{result.parent_run_id}'"
    )
    assert len(runs) == 3


def test_pbt_continues_poor_trials_from_better_checkpoints_with_perturbed_rates(make_spec, where):
    """On a LoRA adapter: PBT perturbs lora_A's rate and the LoRA+ ratio, and copies adapter checkpoints.

    Cross-validated (2 folds): a trial continued from another's checkpoint continues each of its folds.
    """
    result = run_sweep(
        make_spec(
            **{
                # two at once: at each epoch the worse continues from the better one's checkpoint
                "search": {
                    "strategy": "pbt",
                    "num_samples": 2,
                    "perturbation_interval": 1,
                    "metric": "val_loss",
                    "mode": "min",
                    "seed": 2,
                    # a stuck trial, then a learner: the stuck one, slightly ahead, finds at its next epoch
                    # the learner's checkpoint (PBT records it once both trials have a score)
                    "points_to_evaluate": [
                        {"groups.lora_A.lr": 1e-9, "groups.lora_B.lr.ratio": 4.0},
                        {"groups.lora_A.lr": 3e-3, "groups.lora_B.lr.ratio": 16.0},
                    ],
                    "cross_validation": {"folds": 2},
                    # both trials in new processes: neither starts seconds ahead in a process the tier reused
                    # (which let the learner finish before the stuck one had a score to compare)
                    "reuse_actors": False,
                },
                "task.adapter": {"type": "lora"},
                "hyperparameters.groups": {
                    "lora_A": {"lr": {"loguniform": [1e-9, 3e-3]}},
                    "lora_B": {"lr": {"relative_to": "lora_A", "ratio": {"loguniform": [1, 64]}}},
                    "head": {"lr": 1e-3, "optimizer": "sgd"},
                },
                # epochs long enough for the two trials to overlap, though one may start seconds after the
                # other (its process imports torch while the other's was reused)
                "hyperparameters.epochs": 4,
                "hyperparameters.batch_size": 2,
            }
        ),
        **where,
    )
    assert len(result.trials) == 2 and all(t.status == "TERMINATED" for t in result.trials)
    assert all(t.metrics["folds"] == 2 for t in result.trials)
    client = MlflowClient(result.tracking_uri)

    def history(trial, metric: str) -> dict[int, float]:
        return {m.step: m.value for m in client.get_metric_history(trial.mlflow_run_id, metric)}

    perturbed = []
    for t in result.trials:
        rates, lr_a, lr_b = history(t, "hp/groups.lora_A.lr"), history(t, "lr/lora_A"), history(t, "lr/lora_B")
        # LoRA+: B learns at the trial's ratio times A at every epoch, the ratio inside its range
        assert lr_a.keys() == lr_b.keys() and all(1 - 1e-6 <= lr_b[s] / lr_a[s] <= 64 + 1e-6 for s in lr_a)
        for step, ratio in history(t, "hp/groups.lora_B.lr.ratio").items():
            assert lr_b[step] == pytest.approx(ratio * lr_a[step])
        if rates:
            perturbed.append(t.trial_id)
            assert history(t, "hp/groups.lora_B.lr.ratio"), "the ratio was not perturbed with the rate"
            # perturbed values stay inside the searched range, and the trial trained with them
            assert all(1e-9 <= v <= 3e-3 for v in rates.values())
            last = max(rates)
            assert lr_a[last] == pytest.approx(rates[last])
    timeline = {
        t.trial_id: (t.config["groups"]["lora_A"]["lr"], sorted(history(t, "epoch").items())) for t in result.trials
    }
    assert perturbed, f"PBT never exploited a better trial: {timeline}"
    # each trial is summarized from its own results, all of them: a trial PBT restarted from another's
    # checkpoint keeps its id, its run and every epoch it reported (MLflow has them all)
    assert len({t.trial_id for t in result.trials}) == 2 and len({t.mlflow_run_id for t in result.trials}) == 2
    for t in result.trials:
        losses = history(t, "val_loss")
        assert t.epochs == len(losses), (t.trial_id, t.epochs, losses, timeline)
        # its best epoch, with the rates that epoch trained with (PBT changes them as it goes)
        assert t.metrics["val_loss"] == pytest.approx(min(losses.values()))
        trained = history(t, "lr/lora_A").values()
        assert any(lr == pytest.approx(t.config["groups"]["lora_A"]["lr"]) for lr in trained), (t, trained)


def test_bohb_runs_hyperband_brackets_with_its_model(make_spec, where):
    result = run_sweep(
        make_spec(
            **{
                # eta 2 over 2 epochs: two brackets of two; the second keeps the better after epoch 1
                "search": {"strategy": "bohb", "num_samples": 4, "reduction_factor": 2, "seed": 1},
                "hyperparameters.groups.encoder.lr": {"loguniform": [1e-6, 3e-3]},
                "hyperparameters.groups.head.optimizer": {"choice": ["sgd", "adamw"]},
                "hyperparameters.groups.head.momentum": {"uniform": [0.5, 0.99]},
                "hyperparameters.batch_size": {"choice": [8, 16]},
                "hyperparameters.epochs": 2,
            }
        ),
        **where,
    )
    assert len(result.trials) == 4 and result.best_trial_id is not None
    for t in result.trials:
        head = t.config["groups"]["head"]
        assert (head["momentum"] is None) == (head["optimizer"] == "adamw")
        assert 1e-6 <= t.config["groups"]["encoder"]["lr"] <= 3e-3
    assert any(t.epochs < 2 for t in result.trials)  # a Hyperband bracket stopped one early


def test_multi_objective_conditional_derived_then_warm_start_within_an_epoch_budget(make_spec, where):
    base = {
        "search": {
            "strategy": "bayesian",
            "metric": ["val_accuracy", "val_latency_ms"],
            "mode": ["max", "min"],
            "num_samples": 4,
            "seed": 3,
        },
        "hyperparameters.groups.encoder.lr": {"loguniform": [1e-4, 3e-3]},
        "hyperparameters.groups.head.lr": {"relative_to": "encoder", "ratio": {"loguniform": [1.0, 30.0]}},
        "hyperparameters.groups.head.optimizer": {"choice": ["sgd", "adamw"]},
        "hyperparameters.groups.head.momentum": {"uniform": [0.5, 0.99]},
        "hyperparameters.batch_size": {"choice": [8, 16]},
        "hyperparameters.epochs": 1,
    }
    first = run_sweep(make_spec(**base), **where)
    assert len(first.trials) == 4
    client = MlflowClient(first.tracking_uri)

    # conditional: momentum only where the head's optimizer is SGD (MLflow has null elsewhere)
    for t in first.trials:
        params = client.get_run(t.mlflow_run_id).data.params
        assert (params["groups.head.momentum"] == "null") == (params["groups.head.optimizer"] == "adamw")
        # derived: the head trained at ratio x the encoder's learning rate
        ratio, enc = t.config["groups"]["head"]["lr"]["ratio"], t.config["groups"]["encoder"]["lr"]
        head_lr = client.get_metric_history(t.mlflow_run_id, "lr/head")[0].value
        assert head_lr == pytest.approx(ratio * enc) and 1.0 <= ratio <= 30.0

    # multi-objective: the Pareto front, reported and tagged
    assert first.objectives == [["val_accuracy", "max"], ["val_latency_ms", "min"]]
    points = {t.trial_id: (t.metrics["val_accuracy"], t.metrics["val_latency_ms"]) for t in first.trials}
    for tid in first.pareto_front:
        acc, lat = points[tid]
        assert not any(a >= acc and b <= lat and (a, b) != (acc, lat) for a, b in points.values())
    off_front = set(points) - set(first.pareto_front)
    for tid in off_front:
        acc, lat = points[tid]
        assert any(a >= acc and b <= lat and (a, b) != (acc, lat) for a, b in points.values())
    tagged = {t.trial_id for t in first.trials if client.get_run(t.mlflow_run_id).data.tags.get("tune_service.pareto")}
    assert tagged == set(first.pareto_front) and first.pareto_front
    front = json.loads(open(client.download_artifacts(first.parent_run_id, "pareto_front.json")).read())
    assert front["trial_ids"] == first.pareto_front

    # warm start from the first sweep's parent run, with GP, stopped by a total-epochs budget
    second = run_sweep(
        make_spec(
            **base,
            **{
                "search.sampler": "gp",
                "search.num_samples": 6,
                "search.max_total_epochs": 2,
                "search.max_concurrent_trials": 1,
                "search.warm_start": {"parent_run_id": first.parent_run_id},
            },
        ),
        **where,
    )
    assert client.get_run(second.parent_run_id).data.params["warm_start_trials"] == "4"
    assert second.stopped_by == "max_total_epochs"
    assert sum(t.epochs for t in second.trials) == 2 and len(second.trials) < 6
    assert client.get_run(second.parent_run_id).data.tags["tune_service.stopped_by"] == "max_total_epochs"


def test_time_budget_ends_the_sweep_cleanly_with_trials_never_started(make_spec, where):
    # Hyperband creates its trials up front; the budget ends the sweep before most can start. 200 trials of
    # 2 epochs at batch 2 cannot all run in 30 s on any machine (Tune alone takes over 0.5 s a trial on 2
    # slots), and the first starts within it on a slow one
    result = run_sweep(
        make_spec(
            **{
                "search": {"strategy": "random+hyperband", "num_samples": 200, "time_budget_s": 30, "seed": 4},
                "hyperparameters.groups.encoder.lr": {"loguniform": [1e-4, 1e-3]},
                "hyperparameters.epochs": 2,
                "hyperparameters.batch_size": 2,
            }
        ),
        **where,
    )
    assert result.stopped_by == "time_budget_s"
    assert 1 <= len(result.trials) < 200
    # what was found is reported: the best is the best trial that finished an epoch, if any did
    scored = [t for t in result.trials if "val_accuracy" in t.metrics]
    assert (result.best_trial_id is not None) == bool(scored)
    if scored:
        assert result.best_value == max(t.metrics["val_accuracy"] for t in scored)
    client = MlflowClient(result.tracking_uri)
    assert client.get_run(result.parent_run_id).info.status == "FINISHED"
    assert len(
        client.search_runs([result.experiment_id], f"tags.mlflow.parentRunId = '{result.parent_run_id}'")
    ) == len(result.trials)


def test_confirm_runs_the_finalists_again_with_new_seeds_and_picks_by_the_mean(make_spec, where):
    from tune_service.console import summary

    result = run_sweep(
        make_spec(
            **{
                "search": {
                    "strategy": "random",
                    "num_samples": 3,
                    "max_concurrent_trials": 2,
                    "seed": 1,
                    "confirm": {"top_k": 2, "seeds": 2},
                },  # fmt: skip
                "hyperparameters.groups.head.lr": {"loguniform": [1e-3, 3e-2]},
                "hyperparameters.epochs": 1,
                "task.dataset.test_split": 0.2,  # the winner by the mean is the one scored on it
            }
        ),
        **where,
    )
    searched = [t for t in result.trials if "confirms" not in t.config]
    repeats = [t for t in result.trials if "confirms" in t.config]
    assert len(searched) == 3 and len(repeats) == 2 * 2  # exactly top_k x seeds more trials
    top = sorted(searched, key=lambda t: t.metrics["val_accuracy"], reverse=True)[:2]
    assert set(result.confirmed) == {t.trial_id for t in top}
    client = MlflowClient(result.tracking_uri)
    for origin in top:
        mine = [t for t in repeats if t.config["confirms"] == origin.trial_id]
        # the finalist's config, its seed replaced by new ones
        assert sorted(t.config["seed"] for t in mine) == [origin.config["seed"] + 1, origin.config["seed"] + 2]
        assert all(t.config["groups"] == origin.config["groups"] for t in mine)
        values = [t.metrics["val_accuracy"] for t in mine]
        assert result.confirmed[origin.trial_id]["mean"] == pytest.approx(sum(values) / 2)
        for t in mine:  # their own runs, tagged with their origin, the origin not a hyperparameter
            run = client.get_run(t.mlflow_run_id)
            assert run.data.tags["tune_service.confirms"] == origin.trial_id and "confirms" not in run.data.params
        logged = client.get_run(origin.mlflow_run_id).data.metrics["confirm_mean_val_accuracy"]
        assert logged == pytest.approx(result.confirmed[origin.trial_id]["mean"])
    means = {o: c["mean"] for o, c in result.confirmed.items()}
    assert result.best_trial_id == max(means, key=means.get)  # the winner by the mean, not by the search
    assert result.best_run_id == next(t.mlflow_run_id for t in searched if t.trial_id == result.best_trial_id)
    assert "Finalists trained again with new seeds" in summary(result, [])
    winner = next(t for t in searched if t.trial_id == result.best_trial_id)
    assert result.test_metrics and winner.test_metrics == result.test_metrics
    assert not any(t.test_metrics for t in repeats)  # the search's finalists are scored, not their repeats
