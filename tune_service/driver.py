"""The driver: a sweep spec in, a finished sweep (and its MLflow runs) out.

:func:`run_sweep` reads as its steps: every check before work in one call
(:func:`.validate.check_run`), the search (``search_spaces.build``), then inside a Ray
session (:func:`.tuning.ray_session`: joined, connected or started, left as found) and the
sweep's MLflow parent run (opened, or reopened on resume; ended FAILED or KILLED on an error
or interrupt), the ``Tuner`` fitted (:mod:`.tuning`) and the sweep's end run as its own stage
(:mod:`.end`). :func:`resume_sweep` is the spec from MLflow, then the same steps.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Union

import search_spaces
from search_spaces import searched

from . import prepared_data, tracking, validate
from .end.stage import EndState, finish
from .jobs import sweep_id_for
from .result import SweepResult
from .spec import SpecError, SweepSpec
from .tracking import writers
from .tuning import EpochBudget, Sweep, fit, ray_session, search_tuner

log = logging.getLogger(__name__)
#: Tune's storage when none is passed: a cluster sets it once on every node (cluster/README.md)
STORAGE_ENV = "TUNE_SERVICE_STORAGE_PATH"

__all__ = ["STORAGE_ENV", "EpochBudget", "resume_sweep", "run_sweep"]


def run_sweep(
    spec: Union[SweepSpec, dict, str, Path],
    *,
    smoke_test: bool = False,
    tracking_uri: str | None = None,
    address: str | None = None,
    storage_path: str | None = None,
    num_cpus: int | None = None,
    verbose: int = 1,
    sweep_id: str | None = None,
    _resume_parent: str | None = None,
) -> SweepResult:
    """Run a sweep to the end and return its :class:`SweepResult`.

    ``spec`` is a :class:`SweepSpec`, a dict or a YAML path; it is validated
    (and the data and model checked) before Ray starts, raising
    :class:`SpecError`. Ray is started in-process unless it is running already
    or ``address`` names a cluster; what this call starts, it stops. Tracking
    goes to ``tracking_uri``, else ``$MLFLOW_TRACKING_URI``, else the spec's,
    else ``sqlite:///mlflow.db``. ``smoke_test`` runs the same sweep shrunk
    (:func:`tune_service.spec.smoke_spec`). ``storage_path`` is Tune's storage:
    a local folder (default ``$TUNE_SERVICE_STORAGE_PATH``, else ``~/ray_results``), a path every node of a cluster
    shares, or a cloud URI (``s3://``, ``gs://``). ``sweep_id`` names the sweep
    (default: the spec's name, a timestamp and a random suffix).
    """
    checked = validate.check_run(
        spec,
        smoke_test=smoke_test,
        tracking_uri=tracking_uri,
        address=address,
        num_cpus=num_cpus,
        resuming=_resume_parent is not None,
    )
    spec, uri, warm_trials = checked.spec, checked.tracking_uri, checked.warm_trials
    plan = search_spaces.build(spec, warm_trials)
    sweep = Sweep(
        spec,
        sweep_id or sweep_id_for(spec.name),
        uri,
        _storage(storage_path),
        tuple(searched(spec.hyperparameters)),
        _resume_parent,
    )
    with ray_session(address, num_cpus):
        validate.check_cluster(spec, uri)
        sweep = dataclasses.replace(sweep, prepared=prepared_data.share(checked.prepared), datasets=checked.datasets)
        del checked  # the driver keeps no copy of the data: the object store holds it
        with _parent_run(sweep, warm_trials, smoke_test) as tracker:
            if verbose:
                print(_resume_hint(sweep), flush=True)
            started = time.time()
            grid = fit(search_tuner(sweep, plan, tracker, verbose), sweep.sweep_id)
            return finish(EndState(sweep, grid, tracker, time.time() - started, verbose))


@contextlib.contextmanager
def _parent_run(sweep: Sweep, warm_trials: list | None, smoke_test: bool) -> Iterator[tracking.SweepTracker]:
    """The sweep's MLflow parent run: opened (or reopened on resume), and on an error or an interrupt its
    runs ended FAILED or KILLED once the writers have landed what they hold."""
    spec = sweep.spec
    tracker = tracking.SweepTracker(sweep.tracking_uri, spec.mlflow.experiment or spec.name)
    if sweep.resumed_parent:
        tracker.reopen_sweep(sweep.resumed_parent)
    else:
        tracker.start_sweep(
            name=sweep.sweep_id,
            tags=_sweep_tags(sweep) | tracking.ray_job_tags(),
            spec_yaml=spec.to_yaml(),
            search_space=spec.to_dict()["hyperparameters"],
            params={f"search.{k}": v for k, v in spec.search.model_dump(mode="json").items()}
            | {"smoke_test": smoke_test, "warm_start_trials": len(warm_trials or [])},
            description=spec.description,
        )
    try:
        yield tracker
    except BaseException as exc:
        # Ctrl-C, or SIGTERM (a stopped Ray Job, whose driver has until SIGKILL): the user ended it.
        _end_open_runs(
            tracker, sweep.sweep_id, "KILLED" if isinstance(exc, (KeyboardInterrupt, SystemExit)) else "FAILED"
        )
        raise


def _end_open_runs(tracker, sweep_id: str, status: str) -> None:
    """The runs are ended first, then again after the flush, for a run a writer opened meanwhile."""
    try:
        tracker.fail_open_runs(status)
    except Exception as end_exc:  # the server away: the flush still lands what the writers hold
        log.warning("MLflow runs not ended before the flush: %s", end_exc)
    try:
        writers.flush_writers(sweep_id, 30)
    except Exception as flush_exc:  # the sweep's own error matters more
        log.warning("MLflow writers not flushed: %s", flush_exc)
    tracker.fail_open_runs(status)


def _sweep_tags(sweep: Sweep) -> dict[str, str]:
    return {
        tracking.TAG_SWEEP_ID: sweep.sweep_id,
        tracking.TAG_STRATEGY: sweep.spec.search.strategy,
        tracking.TAG_TASK: sweep.spec.task.type,
    } | tracking.code_tags()


def _resume_hint(sweep: Sweep) -> str:
    return (
        f"sweep {sweep.sweep_id}{' resumed' if sweep.resumed_parent else ''}; if it stops, finish it with:\n"
        f"  tune-service resume {sweep.sweep_id} --tracking-uri {sweep.tracking_uri} --storage-path {sweep.storage}"
    )


def resume_sweep(
    sweep_id: str,
    *,
    tracking_uri: str | None = None,
    address: str | None = None,
    storage_path: str | None = None,
    num_cpus: int | None = None,
    verbose: int = 1,
) -> SweepResult:
    """Finish a sweep whose driver died (killed, its machine lost) or was interrupted.

    The spec comes back from the sweep's parent run in MLflow, Tune's experiment
    state (trials, checkpoints, the searcher's state) from ``storage_path``.
    Finished trials stay finished; the others continue from their last
    checkpoints, in the same MLflow runs (epochs already logged are not logged
    again). Give the same tracking URI and storage path as the first run.
    """
    import yaml
    from ray import tune

    uri = tracking.resolve_tracking_uri(tracking_uri, None)
    tracking.check_server(uri)
    parent_run_id, spec_yaml = tracking.sweep_spec(uri, sweep_id)
    spec = validate.load_spec(yaml.safe_load(spec_yaml))  # checked here, before Tune's state is read
    path = f"{_storage(storage_path).rstrip('/')}/{sweep_id}"
    if not tune.Tuner.can_restore(path):
        raise SpecError(
            [
                (
                    "storage_path",
                    f"no Tune experiment state of sweep {sweep_id!r} at {path}: give the "
                    "--storage-path the sweep ran with",
                )
            ]
        )
    damaged = _damaged_state(path)
    if damaged:
        raise SpecError(
            [
                (
                    "storage_path",
                    f"Tune's experiment state of sweep {sweep_id!r}, {damaged}, is empty or "
                    "cut short: the driver was killed while Tune was writing it, and the sweep cannot continue "
                    "from it. Its MLflow runs keep every epoch logged: a new sweep can start from them with "
                    f"search.warm_start (parent_run_id: {parent_run_id})",
                )
            ]
        )
    return run_sweep(
        spec,
        tracking_uri=uri,
        address=address,
        storage_path=storage_path,
        num_cpus=num_cpus,
        verbose=verbose,
        sweep_id=sweep_id,
        _resume_parent=parent_run_id,
    )


def _damaged_state(path: str) -> str | None:
    """The newest of Tune's experiment state files under a local ``path`` when it cannot be read, else None.

    Tune writes the file in place at each snapshot: a driver killed in the middle leaves it empty, and
    ``Tuner.restore`` would then start the sweep over with what remains of the searcher's state.
    """
    if "://" in path:
        return None
    states = sorted(Path(path).glob("experiment_state-*.json"))  # named by each session's start time
    if not states:
        return None
    try:
        json.loads(states[-1].read_text())
    except (OSError, ValueError):
        return str(states[-1])
    return None


def _storage(storage_path: str | None) -> str:
    """Tune's storage: the argument, else $TUNE_SERVICE_STORAGE_PATH, else ~/ray_results; a URI as given."""
    storage_path = storage_path or os.environ.get(STORAGE_ENV)
    if storage_path and "://" in storage_path:
        return storage_path
    return str(Path(storage_path or Path.home() / "ray_results").expanduser().resolve())
