"""What streaming to an MLflow tracking server costs a trial: epoch time with it vs without.

The same trainable (the quickstart task: MiniLM on Rotten Tomatoes, one fixed config,
1 CPU) runs as a one-trial Tune run, alternately with tracking off and with tracking on:
each epoch's metrics and its checkpoint (about 90 MB, the top 1 by val accuracy) go
through this node's writer to a real ``mlflow server`` (cluster/mlflow-server.sh)
on this machine. Rounds alternate off/on so drift on a noisy machine hits both alike.

    python bench/tracking_overhead.py [--rounds 2] [--epochs 3] [--train-size 320]

Prints the wall time per epoch as Tune measures it (``time_this_iter_s``: training,
evaluation, checkpoint, report), the first epoch (which also loads the model)
left out, and the ratio on/off. Training time swings by 10% from epoch to epoch on
a loaded 2-core machine, so it also prints the part of the epoch where tracking
acts in the trial itself (checkpoint and report: ``time_this_iter_s`` minus the
loop's ``epoch_time_s``), on and off.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import ray
from mlflow.tracking import MlflowClient
from ray import tune

from trainables.text_classification import SMOKE_CONFIG
from tune_service import load_spec, trial
from tune_service.tracking import writers

ROOT = Path(__file__).resolve().parents[1]


def start_server(data_dir: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "MLFLOW_HOST": "127.0.0.1", "MLFLOW_WORKERS": "1"}
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"  # this environment's `mlflow`
    log = open(data_dir / "server.log", "w")
    proc = subprocess.Popen(
        [str(ROOT / "cluster" / "mlflow-server.sh"), str(data_dir), str(port)],
        env=env, stdout=log, stderr=log, start_new_session=True,
    )  # fmt: skip
    uri = f"http://127.0.0.1:{port}"
    for _ in range(240):
        if proc.poll() is not None:
            raise RuntimeError(f"mlflow server exited: {(data_dir / 'server.log').read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2):
                return proc, uri
        except OSError:
            time.sleep(0.5)
    raise RuntimeError("mlflow server did not start")


def one_run(task: dict, config: dict, tracking, storage: str) -> list[float]:
    if tracking is not None:
        writers.start_writers(tracking)
    trainable = tune.with_parameters(
        trial.trainable,
        task_type="text_classification",
        task=task,
        run={"metric": "val_accuracy", "mode": "max", "num_threads": 1},
        tracking=tracking,
    )
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1}),
        param_space=config,
        run_config=tune.RunConfig(storage_path=storage, verbose=0, name=f"overhead-{uuid.uuid4().hex[:6]}"),
    )
    grid = tuner.fit()
    if tracking is not None:
        writers.flush_writers(tracking.sweep_id, 600)
    df = grid[0].metrics_dataframe
    return [(float(a), float(a - b)) for a, b in zip(df["time_this_iter_s"], df["epoch_time_s"])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-size", type=int, default=320)
    parser.add_argument("--validation-size", type=int, default=200)
    args = parser.parse_args()

    spec = load_spec(ROOT / "examples" / "quickstart.yaml")
    task = spec.task.model_dump(mode="json")
    task["dataset"].update(train_size=args.train_size, validation_size=args.validation_size)
    config = copy.deepcopy({**SMOKE_CONFIG, "epochs": args.epochs, "batch_size": 16})
    config["groups"]["encoder"]["lr"] = 1e-4

    with tempfile.TemporaryDirectory(prefix="bench-tracking-") as tmp:
        server, uri = start_server(Path(tmp))
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
        try:
            client = MlflowClient(uri)
            experiment = client.create_experiment("bench-tracking-overhead")
            times: dict[str, list[float]] = {"off": [], "on": []}
            outside: dict[str, list[float]] = {"off": [], "on": []}  # checkpoint + report: where tracking acts
            for r in range(args.rounds):
                for mode in ("off", "on"):
                    tracking = None
                    if mode == "on":
                        parent = client.create_run(experiment, run_name=f"round {r}")
                        tracking = writers.TrialTracking(
                            tracking_uri=uri,
                            experiment_id=experiment,
                            parent_run_id=parent.info.run_id,
                            sweep_id=f"bench-{uuid.uuid4().hex[:6]}",
                            metric="val_accuracy",
                            mode="max",
                            searched=(),
                        )
                    per_epoch = one_run(task, config, tracking, str(Path(tmp) / "ray"))
                    times[mode] += [t for t, _ in per_epoch[1:]]
                    outside[mode] += [o for _, o in per_epoch[1:]]
                    shown = " ".join(f"{t:6.2f} ({o:4.2f})" for t, o in per_epoch)
                    print(f"round {r} tracking {mode:3s}: {shown}", flush=True)
        finally:
            ray.shutdown()
            os.killpg(server.pid, signal.SIGTERM)  # the server this script started
            server.wait(timeout=60)

    off, on = statistics.mean(times["off"]), statistics.mean(times["on"])
    print()
    print("| tracking | epochs timed | s/epoch (mean) | s/epoch (median) | checkpoint + report s/epoch |")
    print("|---|---|---|---|---|")
    for mode in ("off", "on"):
        t, o = times[mode], outside[mode]
        print(
            f"| {mode} | {len(t)} | {statistics.mean(t):.2f} | {statistics.median(t):.2f} | {statistics.mean(o):.3f} |"
        )
    added = statistics.mean(outside["on"]) - statistics.mean(outside["off"])
    figures = {
        "bench": "tracking_overhead",
        "rounds": args.rounds,
        "epochs_timed": len(times["on"]),
        "off_s_per_epoch": round(off, 3),
        "on_s_per_epoch": round(on, 3),
        "on_over_off": round(on / off, 3),
        "added_s_per_epoch": round(added, 3),
    }
    print(json.dumps(figures))
    print(f"\nepoch time on/off: {on / off:.3f}x ({100 * (on / off - 1):+.1f}%)")
    print(f"added to the trial's own time per epoch (checkpoint + report): {added:+.3f} s = {100 * added / off:+.2f}%")


if __name__ == "__main__":
    main()
