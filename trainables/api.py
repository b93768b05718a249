"""The service's one door into the task layer: the task registry, the task contract, and what the service
calls in a task's process.

Importing this module loads the standard library alone (the spec reads the registry and never imports
torch). Names whose module imports torch, numpy or mlflow load when first used (``from trainables.api
import checkpoint_model`` inside the function that needs it), the way ``transformers`` and ``scipy``
load their submodules lazily.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .config import with_trial_model
from .contract import MODEL_DIR, Task, TaskModule
from .data import DataError, TaskError, every_row_task, fold_task, test_task
from .distributed import CHECKPOINT_PATH, fit_data_parallel
from .manifest import (
    COST_METRICS,
    DEFAULT_CAUSAL_LM,
    DEFAULT_VISION_TOWER,
    LORA_TARGET_PRESETS,
    TASKS,
    TaskManifest,
    manifest,
)
from .reporting import TuneReporter
from .standalone import quiet_transformers

if TYPE_CHECKING:
    from .loop import checkpoint_model, freeze_lowest_layers
    from .param_groups import ParamGroupError, build_param_groups
    from .prepared import key as prepared_key
    from .prepared import provide_all, provided
    from .serving import MODEL_ARTIFACT
    from .serving import requirements as served_requirements
    from .serving import save as save_served_model

__all__ = [
    # the registry: each task described once, without torch
    "TASKS",
    "TaskManifest",
    "manifest",
    "COST_METRICS",
    "DEFAULT_CAUSAL_LM",
    "DEFAULT_VISION_TOWER",
    "LORA_TARGET_PRESETS",
    # the contract, and a task's class and module by its type
    "Task",
    "TaskModule",
    "task_class",
    "task_module",
    "build_task",
    # a trial's task section and its data
    "with_trial_model",
    "fold_task",
    "every_row_task",
    "test_task",
    "TaskError",
    "DataError",
    "prepared_key",
    "provide_all",
    "provided",
    # checks before a sweep: the model's groups and layers
    "ParamGroupError",
    "build_param_groups",
    "freeze_lowest_layers",
    # a trial's process, a checkpoint, the served model
    "TuneReporter",
    "fit_data_parallel",
    "quiet_transformers",
    "CHECKPOINT_PATH",
    "MODEL_DIR",
    "checkpoint_model",
    "MODEL_ARTIFACT",
    "save_served_model",
    "served_requirements",
]

# name here: (module of this package, its name there), for names whose module imports torch, numpy or mlflow
_LAZY = {
    "checkpoint_model": ("loop", "checkpoint_model"),
    "freeze_lowest_layers": ("loop", "freeze_lowest_layers"),
    "ParamGroupError": ("param_groups", "ParamGroupError"),
    "build_param_groups": ("param_groups", "build_param_groups"),
    "prepared_key": ("prepared", "key"),
    "provide_all": ("prepared", "provide_all"),
    "provided": ("prepared", "provided"),
    "MODEL_ARTIFACT": ("serving", "MODEL_ARTIFACT"),
    "save_served_model": ("serving", "save"),
    "served_requirements": ("serving", "requirements"),
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, attribute = _LAZY[name]
    value = getattr(importlib.import_module(f".{module}", __package__), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


def task_module(task_type: str) -> TaskModule:
    """The module of ``task_type`` (imports torch and transformers): its trainable, loader and predictor."""
    return manifest(task_type).trainable()


def task_class(task_type: str) -> type[Task]:
    """The task class of ``task_type``, the one its manifest names."""
    return getattr(task_module(task_type), manifest(task_type).task_class)


def build_task(task_type: str, task: Mapping) -> Task:
    """``task_type``'s task built from a trial's task section."""
    return task_class(task_type)(task)
