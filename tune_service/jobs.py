"""Sweeps as Ray Jobs: submit to a cluster, follow, stop, fetch the result.

A submitted sweep is an ordinary Ray Job (it shows in ``ray job list`` and the
dashboard). Its entrypoint is this package's CLI, ``run --address auto``, on
the cluster; the project's packages and the validated spec travel in the job's
runtime environment (``py_modules`` and ``working_dir``), so the cluster needs
only the dependencies installed, not this checkout.

The job's submission id is also the sweep id: the MLflow parent run, Tune's
experiment folder and the job share one name, and two sweeps submitted at once
never collide. :class:`SweepJob` is a handle that holds nothing but the id and
the address, so an orchestration job can re-attach after its own restart::

    job = submit_sweep("examples/quickstart.yaml", "http://head:8265")
    job_id = job.job_id                      # keep it anywhere
    ...
    job = SweepJob(job_id, "http://head:8265")
    job.wait(timeout=3600)
    print(job.result().best_config)
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Union

from .job_errors import ClusterUnreachable, SweepJobError
from .result import SweepResult, TrialResult
from .spec import SweepSpec
from .tracking import SUBMISSION_ENV, is_local_store
from .validate import load_spec

#: the job's last log line carries its result: ``RESULT_PREFIX + json``
RESULT_PREFIX = "tune-service-result: "
#: job metadata key marking a job as a tune-service sweep (its value: the spec's name)
META_SWEEP = "tune_service.sweep"
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")
STOP_WAIT_ENV = "RAY_JOB_STOP_WAIT_TIME_S"
STOP_WAIT_S = 60  # between `stop`'s SIGTERM and SIGKILL (a job's env_vars may set another)
_PACKAGES = ("tune_service", "trainables", "search_spaces")


def _auth_headers() -> dict[str, str]:
    """Ray's token (``$RAY_AUTH_TOKEN``, ``$RAY_AUTH_TOKEN_PATH``, or ``~/.ray/auth_token`` under
    ``RAY_AUTH_MODE=token``) as a bearer header: read at each call, so an environment set after Ray
    was imported still counts. Never logged."""
    token = os.environ.get("RAY_AUTH_TOKEN")
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    if not token and not path and os.environ.get("RAY_AUTH_MODE", "").lower() == "token":
        path = str(Path.home() / ".ray" / "auth_token")
    if not token and path and Path(path).is_file():
        token = Path(path).read_text(encoding="utf-8").strip()
    return {"Authorization": f"Bearer {token}"} if token else {}


def _client(address: str | None):
    from ray.exceptions import AuthenticationError
    from ray.job_submission import JobSubmissionClient

    try:
        return JobSubmissionClient(address, headers=_auth_headers())
    except AuthenticationError as exc:
        raise ClusterUnreachable(
            f"the Ray cluster at {address or 'RAY_ADDRESS'} refused this client: "
            f"{str(exc).splitlines()[0]}. Set RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH to the cluster's token "
            "(cluster/README.md)"
        ) from None
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = address or "$RAY_API_SERVER_ADDRESS / $RAY_ADDRESS"
        raise ClusterUnreachable(
            f"cannot reach the Ray job API at {where}: {str(exc).rstrip('.')}. Pass the head's dashboard address "
            "(e.g. http://HEAD:8265, --address or RAY_ADDRESS); see cluster/README.md"
        ) from None


def sweep_id_for(name: str) -> str:
    """A new sweep id (also the job's submission id): the spec's name, a timestamp and a random suffix."""
    return f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"


def _package_dirs() -> list[str]:
    import importlib

    return [str(Path(importlib.import_module(p).__file__).parent) for p in _PACKAGES]


def submit_sweep(
    spec: Union[SweepSpec, dict, str, Path],
    address: str | None = None,
    *,
    smoke_test: bool = False,
    tracking_uri: str | None = None,
    storage_path: str | None = None,
    submission_id: str | None = None,
    runtime_env: dict | None = None,
    entrypoint_num_cpus: float = 0,
) -> SweepJob:
    """Submit a sweep to the Ray cluster at ``address`` as a Ray Job; returns at once.

    The spec is validated here first (raising :class:`SpecError`); its data and
    model are checked on the cluster, where they are read. ``address`` is the
    head's dashboard (``http://HEAD:8265``); None uses ``$RAY_API_SERVER_ADDRESS``
    or ``$RAY_ADDRESS`` as Ray's job client does. ``tracking_uri`` must be
    reachable from the cluster (an MLflow server); None sends ``$MLFLOW_TRACKING_URI``
    when it names a server, else the cluster's own environment or the spec
    decides. MLflow credentials are read
    from the cluster's environment, never sent with the job. ``storage_path`` is
    Tune's storage as the cluster sees it: a path every node shares, or a
    cloud URI. ``runtime_env`` is merged into the job's (e.g. ``pip``,
    ``env_vars``); ``entrypoint_num_cpus`` reserves CPUs for the sweep's driver.
    """
    spec = load_spec(spec, smoke_test)
    client = _client(address)
    job_id = submission_id or sweep_id_for(spec.name)
    staging = Path(tempfile.mkdtemp(prefix="tune-service-submit-"))
    try:
        (staging / "spec.yaml").write_text(spec.to_yaml(), encoding="utf-8")
        command = ["python", "-m", "tune_service.cli", "run", "spec.yaml", "--address", "auto"]
        command += ["--sweep-id", job_id, "--emit-result"]
        if not tracking_uri and not is_local_store(os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:"):
            tracking_uri = os.environ["MLFLOW_TRACKING_URI"]  # a server; a store on this disk means nothing there
        if tracking_uri:
            command += ["--tracking-uri", tracking_uri]
        if storage_path:
            command += ["--storage-path", storage_path]
        env = dict(runtime_env or {})
        env["working_dir"] = str(staging)
        env["py_modules"] = list(env.get("py_modules", [])) + _package_dirs()
        env.setdefault("excludes", ["__pycache__", "*.pyc"])
        # `stop` sends the driver SIGTERM, then SIGKILL after RAY_JOB_STOP_WAIT_TIME_S (Ray's default: 3 s),
        # which the job supervisor reads from the job's env_vars. The driver needs longer to stop its
        # trials and end their MLflow runs KILLED.
        # The submission id reaches the sweep's parent run as a tag.
        env["env_vars"] = {STOP_WAIT_ENV: str(STOP_WAIT_S), **env.get("env_vars", {}), SUBMISSION_ENV: job_id}
        client.submit_job(
            entrypoint=shlex.join(command),
            submission_id=job_id,
            runtime_env=env,
            metadata={META_SWEEP: spec.name, "tune_service.version": _version()},
            entrypoint_num_cpus=entrypoint_num_cpus,
        )
    except RuntimeError as exc:
        if isinstance(exc, SweepJobError):
            raise
        raise SweepJobError(f"the cluster refused sweep {job_id}: {exc}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return SweepJob(job_id, address, _client=client)


def _version() -> str:
    from . import __version__

    return __version__


class SweepJob:
    """A handle on a submitted sweep: only its id and the cluster's address.

    ``SweepJob(job_id, address)`` re-attaches to a sweep submitted earlier,
    from any process.
    """

    def __init__(self, job_id: str, address: str | None = None, *, _client=None):
        self.job_id = job_id
        self.address = address
        self._c = _client

    def __repr__(self) -> str:
        return f"SweepJob({self.job_id!r}, {self.address!r})"

    @property
    def client(self):
        if self._c is None:
            self._c = _client(self.address)
        return self._c

    def info(self) -> dict[str, Any]:
        """The job's details as plain data (status, message, start/end times, metadata, entrypoint)."""
        client = self.client
        try:
            details = client.get_job_info(self.job_id)
        except RuntimeError as exc:
            raise SweepJobError(f"no sweep job {self.job_id!r} on the cluster: {exc}") from None
        return _plain(details)

    def status(self) -> str:
        """PENDING, RUNNING, SUCCEEDED, FAILED or STOPPED."""
        return self.info()["status"]

    def wait(self, timeout: float | None = None, poll_s: float = 2.0) -> str:
        """Block until the sweep ends; returns its final status. Raises TimeoutError after ``timeout`` s."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            status = self.status()
            if status in TERMINAL:
                return status
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"sweep {self.job_id} still {status} after {timeout:.0f} s")
            time.sleep(poll_s)

    def logs(self) -> str:
        """Everything the sweep's driver printed so far."""
        client = self.client
        try:
            return client.get_job_logs(self.job_id)
        except RuntimeError as exc:
            raise SweepJobError(f"no logs for sweep {self.job_id!r}: {exc}") from None

    def follow(self) -> Iterator[str]:
        """The driver's output as it comes, until the sweep ends."""
        agen = self.client.tail_job_logs(self.job_id).__aiter__()
        loop = asyncio.new_event_loop()
        try:
            while True:
                try:
                    yield loop.run_until_complete(agen.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            loop.run_until_complete(agen.aclose())
            loop.close()

    def stop(self) -> bool:
        """Ask the cluster to stop the sweep (its trials stop, MLflow runs end KILLED); True if it was running."""
        return bool(self.client.stop_job(self.job_id))

    def result(self, timeout: float | None = None) -> SweepResult:
        """The finished sweep's :class:`SweepResult`; waits for the end first (``timeout`` s at most)."""
        status = self.wait(timeout)
        result = parse_result(self.logs())
        if result is None:
            message = self.info().get("message") or ""
            raise SweepJobError(f"sweep {self.job_id} ended {status} without a result. {message}".strip())
        return result


def parse_result(logs: str) -> SweepResult | None:
    """The :class:`SweepResult` a sweep's driver printed last, if any."""
    for line in reversed(logs.splitlines()):
        if line.startswith(RESULT_PREFIX):
            data = json.loads(line[len(RESULT_PREFIX) :])
            data["trials"] = [TrialResult(**t) for t in data.get("trials", [])]
            return SweepResult(**data)
    return None


def list_sweeps(address: str | None = None) -> list[dict[str, Any]]:
    """The cluster's sweep jobs (not its other jobs), oldest first, as plain data."""
    jobs = [_plain(j) for j in _client(address).list_jobs()]
    sweeps = [j for j in jobs if META_SWEEP in (j.get("metadata") or {})]
    return sorted(sweeps, key=lambda j: j.get("start_time") or 0)


def _plain(details) -> dict[str, Any]:
    data = details.dict() if hasattr(details, "dict") else dict(vars(details))
    status = data.get("status")
    data["status"] = getattr(status, "value", status)
    data["job_id"] = data.get("submission_id") or data.get("job_id")
    return data


__all__ = [
    "ClusterUnreachable",
    "SweepJob",
    "SweepJobError",
    "list_sweeps",
    "parse_result",
    "submit_sweep",
    "sweep_id_for",
]
