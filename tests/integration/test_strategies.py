"""Strategies and schedulers on real short sweeps of a tiny BERT through Ray."""

from __future__ import annotations

from mlflow.tracking import MlflowClient

from tune_service import run_sweep


def test_asha_stops_poor_trials_early_where_fifo_runs_them_all(make_spec, where):
    # one learning trial first, then three that cannot learn (lr 1e-12): one at a time, so
    # the learner has set each rung's bar before the others reach it
    def spec(scheduler: str) -> dict:
        return make_spec(
            **{
                "search": {
                    "strategy": "grid",
                    "scheduler": scheduler,
                    "metric": "val_loss",
                    "mode": "min",
                    "max_concurrent_trials": 1,
                    "grace_period": 1,
                    "reduction_factor": 2,
                },  # fmt: skip
                "hyperparameters.groups.encoder.lr": {"grid": [3e-3, 1e-12, 1e-12, 1e-12]},
                "hyperparameters.groups.encoder.scheduler": "constant",
                "hyperparameters.epochs": 4,
            }
        )

    fifo = run_sweep(spec("fifo"), **where)
    asha = run_sweep(spec("asha"), **where)

    assert [t.epochs for t in fifo.trials] == [4, 4, 4, 4]
    learner = next(t for t in asha.trials if t.config["groups"]["encoder"]["lr"] == 3e-3)
    assert learner.epochs == 4 and asha.best_trial_id == learner.trial_id
    stuck = [t.epochs for t in asha.trials if t is not learner]
    assert stuck and all(e < 4 for e in stuck), stuck
    assert sum(t.epochs for t in asha.trials) < sum(t.epochs for t in fifo.trials)


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
