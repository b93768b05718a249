"""tune-service: distributed hyperparameter sweeps for fine-tuning pretrained models.

Python API (for scripts and orchestration jobs)::

    from tune_service import load_best, load_spec, run_sweep, submit_sweep, SweepJob
    result = run_sweep("examples/quickstart.yaml")
    result = resume_sweep(sweep_id)  # a sweep whose driver died, finished where it stopped
    print(result.best_config, result.best_value)
    result.to_json()
    model, tokenizer = load_best(result)  # the best checkpoint, from MLflow

    job = submit_sweep("examples/quickstart.yaml", "http://head:8265")  # a Ray Job
    job = SweepJob(job.job_id, "http://head:8265")  # re-attach by id, from anywhere
    job.wait(timeout=3600); job.result().best_config

Heavy modules (Ray, torch, MLflow) load on first use, not on import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .jobs import ClusterUnreachable, SweepJob, SweepJobError, list_sweeps, submit_sweep
from .result import SweepInterrupted, SweepResult, TrialResult
from .spec import SpecError, SweepSpec, smoke_spec
from .validate import load_spec

if TYPE_CHECKING:
    from .best_model import load_best
    from .driver import resume_sweep, run_sweep

__all__ = [
    "ClusterUnreachable",
    "SpecError",
    "SweepInterrupted",
    "SweepJob",
    "SweepJobError",
    "SweepResult",
    "SweepSpec",
    "TrialResult",
    "list_sweeps",
    "load_best",
    "load_spec",
    "resume_sweep",
    "run_sweep",
    "smoke_spec",
    "submit_sweep",
]
__version__ = "0.1.0"


def __getattr__(name: str):
    if name in ("run_sweep", "resume_sweep"):
        from . import driver

        return getattr(driver, name)
    if name == "load_best":
        from .best_model import load_best

        return load_best
    raise AttributeError(f"module 'tune_service' has no attribute {name!r}")
