"""The sweep spec's schema: a typed description of one hyperparameter sweep.

A spec is written once, as YAML or as the same structure in Python.
:func:`parse_spec` checks it against the schema (types, ranges, unknown keys, a
key written twice) and raises :class:`SpecError`, whose message names each bad
field by its path, the value found and what would be accepted. A section's rules
among its own fields (a test split apart from the training one, one source of warm
start, an adapter on a pretrained model) are its validators, so their errors carry
the section's path; the rules across sections and every later check are
:mod:`tune_service.validate`'s.

Layout (see ``examples/quickstart.yaml``), one module a section::

    name, description
    task:            what is fine-tuned on what (model, dataset, parameter groups):
                     _task (what every task shares), then one module per task type
                     (_text_classification, _image_text, _causal_lm)
    hyperparameters: per-group optimizer settings and trial-wide settings; each a
                     fixed value or a distribution ({loguniform: [low, high]}, ...)  (_hyperparameters)
    search:          strategy, metric, mode, trial count, concurrency, time budget  (_search)
    resources:       per trial  (_resources)
    mlflow:          where trials are tracked  (_mlflow)

Beside them: the field machinery (_fields), the whole sweep (_sweep), reading YAML
(_loader), pydantic's errors in the spec's words (_errors), the smoke-test transform (_smoke).
"""

from ._causal_lm import CausalLMTask, Generation, LMAdapterSpec, SFTDatasetSpec
from ._errors import SpecError
from ._fields import Searchable, Section
from ._hyperparameters import AdapterHyperparameters, GroupHyperparameters, Hyperparameters
from ._image_text import ImageTextDatasetSpec, ImageTextTask, TowerAdapterSpec
from ._loader import parse_spec, read_spec
from ._mlflow import MlflowSpec
from ._resources import Resources
from ._search import Confirm, CrossValidation, Objective, SearchSpec, WarmStart
from ._smoke import SMOKE_TRIALS, smoke_spec
from ._sweep import TASKS, SweepSpec
from ._task import AdapterSpec, GroupSelector
from ._text_classification import DatasetSpec, TextClassificationTask

__all__ = [
    "SMOKE_TRIALS",
    "TASKS",
    "AdapterHyperparameters",
    "AdapterSpec",
    "CausalLMTask",
    "Confirm",
    "CrossValidation",
    "DatasetSpec",
    "Generation",
    "GroupHyperparameters",
    "GroupSelector",
    "Hyperparameters",
    "ImageTextDatasetSpec",
    "ImageTextTask",
    "LMAdapterSpec",
    "MlflowSpec",
    "Objective",
    "Resources",
    "SFTDatasetSpec",
    "SearchSpec",
    "Searchable",
    "Section",
    "SpecError",
    "SweepSpec",
    "TextClassificationTask",
    "TowerAdapterSpec",
    "WarmStart",
    "parse_spec",
    "read_spec",
    "smoke_spec",
]
