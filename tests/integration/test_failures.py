"""Faults survived: a trial whose process dies or raises is retried from its last checkpoint, up to the limit."""

from __future__ import annotations

import os
import resource
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

from mlflow.tracking import MlflowClient

from tune_service import SweepResult, run_sweep


def sweep_acting(spec, where, capsys, act: Callable[[str], bool], timeout_s: float) -> SweepResult:
    """Run the sweep in a thread, calling ``act`` with its progress lines so far until it returns True.

    The progress lines say when Tune has a trial's result (and the checkpoint stored with it).
    """
    outcome: dict = {}
    sweep = threading.Thread(target=lambda: outcome.update(result=run_sweep(spec, **{**where, "verbose": 1})))
    sweep.start()
    printed = ""
    deadline = time.time() + timeout_s
    while time.time() < deadline and sweep.is_alive():
        printed += capsys.readouterr().out
        if act(printed):
            break
        time.sleep(0.05)
    sweep.join(timeout=300)
    assert "result" in outcome, "the sweep did not return"
    return outcome["result"]


def test_a_killed_trial_process_is_retried_from_its_last_checkpoint(make_spec, where, capsys, trial_pids):
    spec = make_spec(
        **{
            "hyperparameters.epochs": 3,
            "hyperparameters.batch_size": 2,  # epochs slow enough to be killed in the middle of one
            "search": {"strategy": "random", "num_samples": 1, "max_failures": 1},
            "mlflow": {"experiment": "integration-failures"},
        }
    )
    killed: list[int] = []

    def kill_in_epoch_2(printed: str) -> bool:
        # Tune has the first epoch and its checkpoint: kill the trial while it trains the next
        if " epoch 1/3: " in printed and (pids := trial_pids()):
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])
        return bool(killed)

    result = sweep_acting(spec, where, capsys, kill_in_epoch_2, timeout_s=240)
    assert killed, "the trial ended before it could be killed"

    (trial,) = result.trials
    assert trial.status == "TERMINATED" and trial.epochs == 3  # the sweep completed the trial
    client = MlflowClient(result.tracking_uri)
    run = client.get_run(trial.mlflow_run_id)
    assert run.info.status == "FINISHED"
    # the failed attempt is on the run: a tag, a metric step and the error Tune recorded
    assert run.data.tags["tune_service.failed_attempts"] == "1"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "failed_attempts")] == [1]
    error = Path(client.download_artifacts(run.info.run_id, "errors/attempt-1.txt")).read_text()
    assert "died" in error.lower() or "actor" in error.lower(), error[-2000:]
    # retried from the checkpoint, not from scratch: every epoch once in the run
    history = client.get_metric_history(run.info.run_id, "val_accuracy")
    assert sorted(m.step for m in history) == [1, 2, 3]


def test_a_trial_that_keeps_raising_is_retried_up_to_the_limit_then_fails(make_spec, where, capsys, trial_pids):
    """Each attempt of the first trial raises while it writes a checkpoint: its process may write no file over 64 KiB
    (RLIMIT_FSIZE, which binds root too), so the write fails with EFBIG mid-trial. Tune retries it from its last
    checkpoint ``max_failures`` times, then marks it ERROR; the second trial and the sweep go on."""
    spec = make_spec(
        **{
            "hyperparameters.epochs": 2,
            "search": {"strategy": "random", "num_samples": 2, "max_concurrent_trials": 1, "max_failures": 1},
            "mlflow": {"experiment": "integration-failures", "reports": False},
        }
    )
    limited: list[int] = []  # the first trial's attempts, in order (one trial at a time)

    def limit_each_attempt(printed: str) -> bool:
        # attempt 1 once Tune has its epoch 1 (result and checkpoint); attempt 2 as soon as it exists
        if " epoch 1/2: " in printed or limited:
            for pid in trial_pids():
                if pid not in limited:
                    resource.prlimit(pid, resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))
                    limited.append(pid)
        return len(limited) >= 2

    result = sweep_acting(spec, where, capsys, limit_each_attempt, timeout_s=300)
    assert len(limited) == 2, f"limited {limited}"

    failed, healthy = sorted(result.trials, key=lambda t: t.trial_id)
    assert failed.status == "ERROR" and "File too large" in failed.error, failed.error
    assert healthy.status == "TERMINATED" and healthy.epochs == 2
    assert result.best_trial_id == healthy.trial_id
    client = MlflowClient(result.tracking_uri)
    run = client.get_run(failed.mlflow_run_id)
    assert run.info.status == "FAILED"
    # both attempts on the run: the retried one and the last, each with Tune's error text
    assert run.data.tags["tune_service.failed_attempts"] == "2"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "failed_attempts")] == [1, 2]
    for attempt in (1, 2):
        error = Path(client.download_artifacts(run.info.run_id, f"errors/attempt-{attempt}.txt")).read_text()
        assert "cannot write the checkpoint of epoch 2" in error and "File too large" in error, error[-2000:]
    # attempt 2 started from epoch 1's checkpoint: epoch 1 logged once, epoch 2 never reported
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_accuracy")] == [1]
    assert client.get_run(healthy.mlflow_run_id).info.status == "FINISHED"
    assert client.get_run(result.parent_run_id).info.status == "FINISHED"
