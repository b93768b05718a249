"""The whole sweep: its sections, and the task section a trial receives."""

from __future__ import annotations

from typing import Annotated, Any, Union

import yaml
from pydantic import Field, model_validator

from search_spaces import DISTRIBUTIONS
from trainables.api import TASKS as TASK_MANIFESTS

from ._causal_lm import CausalLMTask
from ._fields import Section
from ._hyperparameters import Hyperparameters
from ._image_text import ImageTextTask
from ._mlflow import MlflowSpec
from ._resources import Resources
from ._search import SearchSpec
from ._text_classification import TextClassificationTask

TASKS = {"text_classification": TextClassificationTask, "image_text": ImageTextTask, "causal_lm": CausalLMTask}


Task = Annotated[Union[TextClassificationTask, ImageTextTask, CausalLMTask], Field(discriminator="type")]


class SweepSpec(Section):
    """A whole sweep. Build it with :func:`load_spec` to get full validation."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
    description: str = ""
    task: Task
    hyperparameters: Hyperparameters
    search: SearchSpec = SearchSpec()
    resources: Resources = Resources()
    mlflow: MlflowSpec = MlflowSpec()

    @model_validator(mode="before")
    @classmethod
    def _task_metric(cls, data: Any) -> Any:
        """Without ``search.metric``, the sweep optimizes the task's first metric (its accuracy)."""
        task = data.get("task") if isinstance(data, dict) else None
        task_type = task.get("type") if isinstance(task, dict) else None
        if isinstance(task_type, str) and task_type in TASK_MANIFESTS:
            search = data.get("search")
            if search is None or (isinstance(search, dict) and "metric" not in search):
                metric = TASK_MANIFESTS[task_type].metrics[0]
                data = {**data, "search": {**(search or {}), "metric": metric}}
        return data

    @model_validator(mode="before")
    @classmethod
    def _adapter_defaults(cls, data: Any) -> Any:
        """With ``task.adapter``, every trial gets the adapter's settings: the defaults where none are written."""
        task = data.get("task") if isinstance(data, dict) else None
        hp = data.get("hyperparameters") if isinstance(data, dict) else None
        if isinstance(task, dict) and task.get("adapter") is not None and isinstance(hp, dict):
            if hp.get("adapter") is None:
                data = {**data, "hyperparameters": {**hp, "adapter": {}}}
        return data

    @model_validator(mode="before")
    @classmethod
    def _searched_model(cls, data: Any) -> Any:
        """``task.model: {choice: [...]}`` searches the base model: each trial's is its config's ``model``."""
        task = data.get("task") if isinstance(data, dict) else None
        hp = data.get("hyperparameters") if isinstance(data, dict) else None
        model = task.get("model") if isinstance(task, dict) else None
        searched = isinstance(model, dict) and len(model) == 1 and next(iter(model)) in DISTRIBUTIONS  # not a config
        if searched and isinstance(hp, dict):
            if hp.get("model") not in (None, task["model"]):
                raise ValueError(
                    f"hyperparameters.model={hp['model']!r} and task.model={task['model']!r}: search "
                    "the base model in task.model alone"
                )
            data = {**data, "hyperparameters": {**hp, "model": task["model"]}}
        return data

    def trial_task(self) -> dict:
        """The task section as a trial receives it: under ``search.cross_validation``, its dataset names the folds."""
        task = self.task.model_dump(mode="json")
        cv = self.search.cross_validation
        if cv is not None:
            dataset = task["dataset"]
            stratified = cv.stratified if cv.stratified is not None else dataset.get("label_column") is not None
            dataset["folds"] = {"count": cv.folds, "stratified": stratified}
        return task

    def to_dict(self) -> dict:
        """The spec as plain data (distributions in their ``{kind: args}`` form)."""
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)
