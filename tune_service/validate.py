"""Every check made before a sweep runs, in the order it runs: where bad input is refused.

1. **The spec** (:func:`load_spec`): its schema (:func:`tune_service.spec.parse_spec`:
   types, ranges, unknown keys, YAML), then the rules across its sections
   (:func:`spec_problems`: the groups match the task's, the metrics are the task's,
   derived values and conditional settings make sense), then the pairings the
   strategies refuse (:func:`search_spaces.problems`: each searcher's and
   scheduler's ``problems``).
2. **What must answer** (:func:`check_reachable`): the MLflow tracking server and the
   Ray cluster's address, before the data is loaded.
3. **The task's data and model** (:func:`check_task`): loaded with the trials' own
   code, the model as a skeleton on the meta device (no weights).
4. **Warm start** (:func:`warm_trials`): the earlier sweep's trials, read from MLflow.
5. **The resources** (:func:`check_local_resources`, then :func:`check_cluster` once
   connected): a trial must fit some node, and a store on this machine's disk cannot
   take writes from a cluster of several nodes.

:func:`check_run` makes them all, in this order, and returns what the run needs
(:class:`CheckedRun`); the cluster's check (:func:`check_cluster`) comes once Ray is connected.

A problem raises :class:`SpecError` (``TrackingError`` or ``ClusterUnreachable`` for
what does not answer) naming the field, the value and what is accepted; nothing is
started or written before the checks of the steps above it pass.
"""

from __future__ import annotations

import difflib
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import search_spaces
from search_spaces import CONDITIONS, Distribution, Problem, Relative, iter_hyperparameters, searched, upper
from trainables.api import TASKS as TASK_MANIFESTS

from . import prepared_data, resources, tracking
from .job_errors import ClusterUnreachable
from .spec import ImageTextTask, SpecError, SweepSpec, parse_spec, read_spec, smoke_spec

log = logging.getLogger(__name__)

__all__ = [
    "CheckedRun",
    "check_cluster",
    "check_local_resources",
    "check_reachable",
    "check_run",
    "check_task",
    "load_spec",
    "spec_problems",
    "warm_trials",
]


# --------------------------------------------------------------------------- 1. the spec


def load_spec(source: Union[SweepSpec, dict, str, Path], smoke_test: bool = False) -> SweepSpec:
    """A validated spec from a :class:`SweepSpec`, a dict or a YAML file path; with ``smoke_test``, the
    same sweep shrunk (:func:`tune_service.spec.smoke_spec`), validated too.

    Raises :class:`SpecError` listing every problem found: the schema's first,
    then the rules across sections, then the strategies' refusals. A
    :class:`SweepSpec` passed its schema when it was made, and is not parsed again.
    """
    spec, label = _parsed(source)
    _refuse_problems(spec, label)
    if smoke_test:
        spec = smoke_spec(spec)
        _refuse_problems(spec, label)
    return spec


def _parsed(source: Union[SweepSpec, dict, str, Path]) -> tuple[SweepSpec, str | None]:
    if isinstance(source, SweepSpec):
        return source, None
    data, label = read_spec(source)
    try:
        return parse_spec(data), label
    except SpecError as exc:  # the metrics named are checked too: every problem is reported at once
        named = {path for path, _ in exc.problems}
        metrics = [p for p in _written_metric_problems(data) if p[0] not in named]
        raise SpecError(exc.problems + metrics, label) from None


def _refuse_problems(spec: SweepSpec, label: str | None) -> None:
    problems = spec_problems(spec) + search_spaces.problems(spec)
    if problems:
        raise SpecError(problems, label)


@dataclass(frozen=True)
class CheckedRun:
    """What the checks before a run hand it: the checked spec, and what they loaded on the way."""

    spec: SweepSpec
    tracking_uri: str
    warm_trials: list | None  # search.warm_start's earlier trials (None: no warm start, or resuming)
    prepared: dict  # each trial task's data, loaded and prepared once (tune_service.prepared_data)
    datasets: tuple  # the rows the trials learn from and are validated on, described for MLflow


def check_run(
    source: Union[SweepSpec, dict, str, Path],
    *,
    smoke_test: bool = False,
    tracking_uri: str | None = None,
    address: str | None = None,
    num_cpus: int | None = None,
    resuming: bool = False,
) -> CheckedRun:
    """Every check that runs before Ray starts, in order (steps 1 to 5): the spec, what must answer, the
    task's data and model, warm start's trials, the resources here. The cluster's own check, once
    connected, is :func:`check_cluster`."""
    import ray

    spec = load_spec(source, smoke_test)
    uri = tracking.resolve_tracking_uri(tracking_uri, spec.mlflow.tracking_uri)
    joining = address or os.environ.get("RAY_ADDRESS")  # set for a Ray Job's driver
    check_reachable(uri, None if ray.is_initialized() else joining)
    prepared = prepared_data.prepare(spec, check_task(spec))
    datasets = _datasets(spec)
    warm = None if resuming else warm_trials(spec, uri)  # a resumed searcher has its own state
    if not (joining or ray.is_initialized()):
        check_local_resources(spec, num_cpus)
    return CheckedRun(spec, uri, warm, prepared, datasets)


def _datasets(spec: SweepSpec) -> tuple:
    """The rows the trials learn from and are validated on, described once for MLflow (source, digest, schema)."""
    from trainables.api import task_class

    from .tracking import writers

    try:
        rows = task_class(spec.task.type).rows_used(spec.trial_task())
        return tuple(writers.dataset_inputs(rows, spec.task.dataset.model_dump()))
    except Exception as exc:  # a record of the data is never worth the sweep
        log.warning("the sweep's datasets are not logged: %s", exc)
        return ()


def spec_problems(spec: SweepSpec) -> list[Problem]:
    """The rules across the spec's sections, each problem as ``(field path, message)``."""
    hp = spec.hyperparameters
    return (
        _group_problems(spec)
        + _metric_problems(spec)
        + _derived_problems(hp)
        + _conditional_problems(hp)
        + _unfreeze_problems(hp)
        + _quantization_problems(spec)
        + _confirm_problems(spec)
        + _cross_validation_problems(spec)
    )


def _confirm_problems(spec: SweepSpec) -> list[Problem]:
    confirm, search, out = spec.search.confirm, spec.search, []
    if confirm is None:
        return out
    if search.scheduler == "pbt":
        out.append(
            (
                "search.confirm",
                "pbt changes a trial's hyperparameters as it trains: no config of a finalist "
                "is what trained it, so none can be run again; drop confirm or use another scheduler",
            )
        )
    if isinstance(spec.hyperparameters.seed, Distribution):
        out.append(("search.confirm", "confirm gives each finalist new seeds: do not search hyperparameters.seed"))
    trials = search.num_samples * (_grid_points(spec) if search.strategy == "grid" else 1)
    if trials < confirm.top_k:
        what = "the grid has" if search.strategy == "grid" else "num_samples is"
        out.append(
            (
                "search.confirm.top_k",
                f"got {confirm.top_k}, but {what} {trials} trials in all: at most {trials} can be finalists",
            )
        )
    return out


def _cross_validation_problems(spec: SweepSpec) -> list[Problem]:
    cv, out = spec.search.cross_validation, []
    if cv is None:
        return out
    if cv.stratified and getattr(spec.task.dataset, "label_column", None) is None:
        out.append(
            (
                "search.cross_validation.stratified",
                "got true, but the dataset has no label_column: no "
                "classes to keep in proportion; set stratified: false",
            )
        )
    if spec.task.dataset.validation_size is not None:
        out.append(
            (
                "task.dataset.validation_size",
                f"got {spec.task.dataset.validation_size} with "
                f"cross-validation, where each of the {cv.folds} folds validates on its own part of the "
                "training rows (train_size caps them): drop validation_size",
            )
        )
    if spec.resources.workers > 1:
        out.append(
            (
                "search.cross_validation",
                f"got folds with resources.workers {spec.resources.workers}: a "
                "trial trains its folds one after another in one process; set workers: 1 (more trials "
                "at once use more resources)",
            )
        )
    return out


def _grid_points(spec: SweepSpec) -> int:
    points = 1
    for _, value in iter_hyperparameters(spec.hyperparameters):
        if isinstance(value, Distribution) and value.kind in ("grid", "choice"):
            points *= len(value.values)
    return points


def _quantization_problems(spec: SweepSpec) -> list[Problem]:
    adapter = getattr(spec.task, "adapter", None)
    if getattr(adapter, "quantization", None) and spec.resources.gpu < 1:
        return [
            (
                "task.adapter.quantization",
                f"got {adapter.quantization!r}, with resources.gpu {spec.resources.gpu}: "
                "4-bit loading (bitsandbytes) runs on a CUDA GPU; set resources.gpu: 1 and run where there is one, "
                "or drop quantization",
            )
        ]
    return []


def _group_problems(spec: SweepSpec) -> list[Problem]:
    task, out = spec.task, []
    expected, got = task.group_names, tuple(spec.hyperparameters.groups)
    optional = () if task.groups else TASK_MANIFESTS[task.type].optional_groups
    if not set(expected) - set(optional) <= set(got) or not set(got) <= set(expected):
        detail = []
        missing = [g for g in expected if g not in got and g not in optional]
        extra = [g for g in got if g not in expected]
        if missing:
            detail.append(f"missing {missing}")
        if extra:
            detail.append(f"unknown {extra}")
        source = "task.groups" if task.groups else f"the {task.type} default groups"
        out.append(
            (
                "hyperparameters.groups",
                f"{'; '.join(detail)}: every parameter group needs its own settings; "
                f"groups are {list(expected)} (from {source})",
            )
        )
    if spec.hyperparameters.adapter is not None and getattr(task, "adapter", None) is None:
        out.append(
            (
                "hyperparameters.adapter",
                "an adapter's settings, but no task.adapter: add task.adapter "
                "({type: lora}) or drop hyperparameters.adapter",
            )
        )
    adapter_hp = spec.hyperparameters.adapter
    if adapter_hp is not None and adapter_hp.target_modules is not None and task.adapter is not None:
        if "target_modules" in task.adapter.model_fields_set:
            message = (
                "set here and in task.adapter.target_modules: give one (a preset or a choice of presets "
                "here, or a preset or a list of names there)"
            )
            out.append(("hyperparameters.adapter.target_modules", message))
    if isinstance(task, ImageTextTask) and isinstance(task.text_model, dict) and task.tokenizer is None:
        out.append(
            ("task.tokenizer", "a text tower built from a config needs a tokenizer: builtin:NAME, a hub id or a folder")
        )
    return out


def _objective_path(i: int) -> str:
    return "search.metric" if i == 0 else f"search.objectives[{i - 1}].metric"


def _metric_problems(spec: SweepSpec) -> list[Problem]:
    return _unknown_metrics(spec.task.type, [m for m, _ in spec.search.all_objectives])


def _written_metric_problems(data: dict) -> list[Problem]:
    """The metrics a spec that failed its schema names, checked against its task's: one name or a list, and
    each objective's."""
    task, search = data.get("task"), data.get("search")
    task_type = task.get("type") if isinstance(task, dict) else None
    if not isinstance(task_type, str) or task_type not in TASK_MANIFESTS or not isinstance(search, dict):
        return []
    metric = search.get("metric")
    names = list(metric) if isinstance(metric, list) else [metric] if metric is not None else []
    objectives = search.get("objectives")
    names += [o.get("metric") for o in objectives if isinstance(o, dict)] if isinstance(objectives, list) else []
    if not all(isinstance(n, str) for n in names):
        return []
    return _unknown_metrics(task_type, names)


def _unknown_metrics(task_type: str, names: list[str]) -> list[Problem]:
    metrics, out = TASK_MANIFESTS[task_type].reported, []
    for i, metric in enumerate(names):
        if metric not in metrics:
            close = difflib.get_close_matches(metric, metrics, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            out.append((_objective_path(i), f"got '{metric}'{hint}; the {task_type} task reports {', '.join(metrics)}"))
    if len(set(names)) != len(names):
        out.append(("search.objectives", f"an objective is listed twice: {names}"))
    return out


def _derived_problems(hp) -> list[Problem]:
    """A derived value (``{relative_to: GROUP, ratio: ...}``) names another group that sets the value itself."""
    out = []
    for gname, group in hp.groups.items():
        for field in type(group).model_fields:
            value = getattr(group, field)
            if not isinstance(value, Relative):
                continue
            where = f"hyperparameters.groups.{gname}.{field}.relative_to"
            target = hp.groups.get(value.relative_to)
            if target is None or value.relative_to == gname:
                others = [g for g in hp.groups if g != gname]
                out.append((where, f"got '{value.relative_to}'; accepted: another group, one of {others}"))
            elif isinstance(getattr(target, field), Relative):
                out.append(
                    (where, f"group '{value.relative_to}' has a derived {field} too: derive from a group that sets it")
                )
    return out


def _conditional_problems(hp) -> list[Problem]:
    """A searched setting that never applies (momentum searched, optimizer fixed to adamw) is a mistake."""
    out = []
    for gname, group in hp.groups.items():
        for field, (parent, applies) in CONDITIONS.items():
            value, parent_value = getattr(group, field), getattr(group, parent)
            if not isinstance(value, Distribution):
                continue
            options = parent_value.values if isinstance(parent_value, Distribution) else (parent_value,)
            if not set(options) & set(applies):
                out.append(
                    (
                        f"hyperparameters.groups.{gname}.{field}",
                        f"searched, but {field} applies only when "
                        f"{parent} is one of {list(applies)} and {parent} here is {list(options)}",
                    )
                )
    return out


def _unfreeze_problems(hp) -> list[Problem]:
    return [
        (
            f"hyperparameters.groups.{gname}.unfreeze_epoch",
            f"got {group.unfreeze_epoch}, but the group is not frozen: set frozen: true",
        )
        for gname, group in hp.groups.items()
        if group.frozen is False
        and group.unfreeze_epoch is not None
        and not isinstance(group.unfreeze_epoch, Distribution)
    ]


# --------------------------------------------------------------------------- 2. what must answer


def check_reachable(tracking_uri: str, address: str | None) -> None:
    """The tracking server answers, and so does the Ray cluster at ``address`` (when one is named)."""
    tracking.check_server(tracking_uri)
    if address:
        _check_address(address)


def _check_address(address: str, timeout_s: float = 5.0) -> None:
    """Raise ``ClusterUnreachable`` when nothing listens at a Ray address (``HOST:PORT`` or ``ray://HOST:PORT``).

    ``ray.init`` would otherwise retry for minutes. ``auto`` and ``local`` are Ray's to resolve.
    """
    target = address.removeprefix("ray://")
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit() or "://" in target:
        return
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            return
    except OSError as exc:
        raise ClusterUnreachable(
            f"no Ray cluster answers at {address} ({exc.strerror or exc}): check the head node's address and port "
            "(the GCS port, 6379 by default, or ray://HOST:10001 for Ray Client)"
        ) from None


# --------------------------------------------------------------------------- 3. the task's data and model


def check_task(spec: SweepSpec) -> list[tuple[dict, Any]]:
    """Load the data and the model skeleton with the trials' code; raise :class:`SpecError` on a problem.

    Returns each task a trial may get (one per searched base model) with its built task (data
    loaded and prepared), for callers that hand the prepared data on.
    ``datasets``' progress bars stay off meanwhile: a problem reads as one message.
    """
    import datasets

    shown = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    checked = []
    try:
        for model in getattr(spec.task, "models", (None,)):  # each base model a trial may get, when searched
            try:
                task, built = _load_task(spec, model)
                for targets in _target_options(spec):
                    _check_task_fits(spec, built, _skeleton(spec, built, targets))
            except SpecError as exc:
                raise _naming(exc, model, spec) from None
            checked.append((task, built))
        return checked
    finally:
        if shown:
            datasets.enable_progress_bars()


def _naming(exc: SpecError, model: str | None, spec: SweepSpec) -> SpecError:
    """``exc`` saying which of the searched base models it is about (as it is, when the model is not searched)."""
    if len(getattr(spec.task, "models", ())) < 2:
        return exc
    return SpecError([(path, f"with task.model={model!r}: {message}") for path, message in exc.problems], exc.source)


def _model_field(spec: SweepSpec, model: str | None = None) -> str:
    return repr(model or getattr(spec.task, "model", spec.task.type))


def _load_task(spec: SweepSpec, model: str | None) -> tuple[dict, Any]:
    from trainables.api import TaskError, build_task, with_trial_model

    task = with_trial_model(spec.trial_task(), {"model": model})
    try:
        return task, build_task(spec.task.type, task)
    except TaskError as exc:
        raise SpecError([(exc.field, str(exc))]) from None
    except OSError as exc:  # transformers: no such model folder or hub id
        raise SpecError([("task.model", f"cannot load {_model_field(spec, model)}: {exc}")]) from None
    except _BUILD_ERRORS as exc:
        raise _config_refused(spec, exc) from None


def _target_options(spec: SweepSpec) -> list:
    """Each set of adapted modules a trial may get (hyperparameters.adapter.target_modules); [None]: the task's."""
    hp = spec.hyperparameters.adapter
    targets = hp.target_modules if hp is not None else None
    return list(targets.values()) if isinstance(targets, Distribution) else [targets]


def _skeleton(spec: SweepSpec, built, targets):
    from trainables.api import TaskError

    try:
        return built.model_skeleton(targets)
    except TaskError as exc:
        raise SpecError([(exc.field, str(exc))]) from None
    except (OSError, *_BUILD_ERRORS) as exc:
        refused = _config_refused(spec, exc)
        if refused is exc and isinstance(exc, (OSError, ValueError)):  # a pretrained model that does not load
            raise SpecError([("task.model", f"cannot load {_model_field(spec)}: {exc}")]) from None
        raise refused from None


# what torch and transformers raise for a model whose config settings cannot make one (a negative size)
_BUILD_ERRORS = (RuntimeError, TypeError, IndexError, ValueError)


def _config_refused(spec: SweepSpec, exc: Exception) -> Exception:
    """A model that a config (``model_type`` and settings) cannot build, named by its field; else ``exc``."""
    if isinstance(exc, OSError):  # a file or a hub id, not a config
        return exc
    fields = [f"task.{name}" for name in _CONFIG_FIELDS if isinstance(getattr(spec.task, name, None), dict)]
    if not fields:
        return exc
    path = fields[0] if len(fields) == 1 else "task"
    return SpecError([(path, f"no model can be built from the config of {' or '.join(fields)}: {exc}")])


_CONFIG_FIELDS = ("model", "vision_model", "text_model")  # a task's fields that may hold a transformers config


def _check_task_fits(spec: SweepSpec, built, model) -> None:
    """The metrics this data can give, the groups this model has, the layers it can freeze."""
    from trainables.api import ParamGroupError, build_param_groups, freeze_lowest_layers

    unavailable = built.unavailable_metrics
    for i, (metric, _) in enumerate(spec.search.all_objectives):
        if metric in unavailable:
            raise SpecError(
                [(_objective_path(i), f"got '{metric}', which this dataset cannot give: {unavailable[metric]}")]
            )
    selectors = built.selectors(model)
    if set(selectors) != set(spec.hyperparameters.groups):  # a default group only some models have (lm_head)
        tied = " (its output embeddings are its input ones, in embeddings)" if "lm_head" not in selectors else ""
        raise SpecError(
            [
                (
                    "hyperparameters.groups",
                    f"got {list(spec.hyperparameters.groups)}; this model's groups are {list(selectors)}{tied}",
                )
            ]
        )
    try:
        build_param_groups(model, selectors)
    except ParamGroupError as exc:
        raise SpecError([("task.groups", str(exc))]) from None
    try:
        freeze_lowest_layers(model, built.layers(model), upper(spec.hyperparameters.frozen_layers))
    except ValueError as exc:
        raise SpecError([("hyperparameters.frozen_layers", str(exc))]) from None


# --------------------------------------------------------------------------- 4. warm start


def warm_trials(spec: SweepSpec, tracking_uri: str) -> list | None:
    """The earlier sweep's evaluated trials (``search.warm_start``), read from MLflow before Ray starts."""
    warm = spec.search.warm_start
    if warm is None:
        return None
    try:
        trials, skipped = tracking.earlier_trials(
            tracking.resolve_tracking_uri(warm.tracking_uri, None) if warm.tracking_uri else tracking_uri,
            experiment=warm.experiment,
            parent_run_id=warm.parent_run_id,
            accepts={name: d.contains for name, d in searched(spec.hyperparameters).items()},
            objectives=spec.search.all_objectives,
        )
    except tracking.WarmStartError as exc:
        raise SpecError([("search.warm_start", str(exc))]) from None
    log.info("warm start: %d earlier trials (%d outside this space skipped)", len(trials), skipped)
    return trials


# --------------------------------------------------------------------------- 5. resources


def check_local_resources(spec: SweepSpec, num_cpus: int | None) -> None:
    """A trial larger than the in-process Ray a sweep would start here is refused before it starts."""
    resources.check_fits(spec.resources, [resources.local_node(num_cpus)])


def check_cluster(spec: SweepSpec, tracking_uri: str) -> None:
    """Once connected: a trial fits some node of the cluster, and every node can reach the tracking store.

    On a cluster whose autoscaler adds nodes on demand (``$TUNE_SERVICE_AUTOSCALING``), nodes that do
    not exist yet cannot be checked, so the fit is not.
    """
    import ray

    if not os.environ.get(resources.AUTOSCALING_ENV):
        resources.check_fits(spec.resources, resources.cluster_nodes())
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    if len(nodes) > 1 and tracking.is_local_store(tracking_uri):
        raise tracking.TrackingError(
            f"tracking URI {tracking_uri} is a store on this machine's disk, but the Ray cluster has {len(nodes)} "
            "nodes whose trials write to MLflow themselves: run an MLflow tracking server (see cluster/README.md) "
            "and pass its http(s) URI (--tracking-uri, MLFLOW_TRACKING_URI or mlflow.tracking_uri)"
        )
