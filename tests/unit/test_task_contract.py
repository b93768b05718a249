"""Every task in the registry implements the task contract (trainables.contract), as the service calls it."""

from __future__ import annotations

import inspect

import pytest

from trainables import contract
from trainables.api import TASKS, task_class, task_module

MEMBERS = {n: v for n, v in vars(contract.Task).items() if callable(v) or isinstance(v, staticmethod)}
MEMBERS = {n: v for n, v in MEMBERS.items() if not n.startswith("_")}
FUNCTIONS = [n for n, v in vars(contract.TaskModule).items() if callable(v) and not n.startswith("_")]


def parameters(function, drop_self: bool) -> list[str]:
    names = list(inspect.signature(function).parameters)
    return names[1:] if drop_self and names and names[0] == "self" else names


def test_the_contract_names_what_the_service_calls():
    assert {"prepare", "build_model", "evaluate", "predictions", "save_model", "serving_example", "rows_used"} <= set(
        MEMBERS
    )
    assert set(FUNCTIONS) == {"tune_trainable", "load_pretrained", "predict_table"}


@pytest.mark.parametrize("task_type", sorted(TASKS))
def test_each_task_class_is_named_for_its_task_and_has_every_method(task_type):
    cls = task_class(task_type)
    assert cls.__name__ == TASKS[task_type].task_class and "Adapter" not in cls.__name__
    for name, member in MEMBERS.items():
        own = inspect.getattr_static(cls, name, None)
        assert own is not None, f"{cls.__name__} lacks {name}"
        expected = member.__func__ if isinstance(member, staticmethod) else member
        got = own.__func__ if isinstance(own, staticmethod) else own
        assert isinstance(own, staticmethod) == isinstance(member, staticmethod), name
        drop = not isinstance(member, staticmethod)
        assert parameters(got, drop) == parameters(expected, drop), f"{cls.__name__}.{name}"


@pytest.mark.parametrize("task_type", sorted(TASKS))
def test_each_task_module_has_the_contracts_functions(task_type):
    module = task_module(task_type)
    for name in FUNCTIONS:
        function = getattr(module, name, None)
        assert callable(function), f"{module.__name__} lacks {name}"
        assert parameters(function, False) == parameters(getattr(contract.TaskModule, name), True), name
