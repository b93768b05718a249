"""Per-group optimizers and each LR schedule's curve."""

from __future__ import annotations

import math

import pytest
import torch

from trainables.optim import LRSchedule, make_optimizer, make_schedule, make_scheduler

GROUP = {
    "lr": 0.1, "optimizer": "adamw", "weight_decay": 0.01, "momentum": 0.8, "beta1": 0.85, "beta2": 0.99,
    "scheduler": "constant", "warmup_ratio": 0.0, "gamma": 0.5, "step_epochs": 2, "decay": 1.0,
}  # fmt: skip


def curve(kind: str, steps_per_epoch: int = 10, epochs: int = 4, **hp) -> list[float]:
    sched = make_schedule({**GROUP, "scheduler": kind, **hp}, steps_per_epoch, epochs)
    return [sched(s) for s in range(steps_per_epoch * epochs)]


def test_constant():
    assert curve("constant") == [1.0] * 40


def test_linear_decays_to_zero():
    c = curve("linear")
    assert c[0] == 1.0 and c[20] == pytest.approx(0.5) and c[-1] == pytest.approx(1 / 40)
    assert all(a > b for a, b in zip(c, c[1:]))


def test_cosine_follows_half_cosine():
    c = curve("cosine")
    assert c[0] == 1.0 and c[20] == pytest.approx(0.5) and c[10] == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))


def test_step_halves_every_step_epochs():
    c = curve("step", gamma=0.5, step_epochs=2)
    assert c[0] == c[19] == 1.0 and c[20] == c[39] == 0.5


def test_exponential_is_gamma_per_epoch():
    c = curve("exponential", gamma=0.5)
    assert c[10] == pytest.approx(0.5) and c[20] == pytest.approx(0.25) and c[5] == pytest.approx(0.5**0.5)


def test_inverse_time_decay():
    c = curve("inverse_time", decay=1.0)
    assert c[0] == 1.0 and c[10] == pytest.approx(0.5) and c[30] == pytest.approx(0.25)


def test_warmup_ramps_linearly_then_hands_over():
    c = curve("cosine", warmup_ratio=0.25)  # 10 warmup steps
    assert c[:10] == pytest.approx([(i + 1) / 11 for i in range(10)])
    assert c[10] == 1.0 and c[-1] < 0.01
    assert all(a < b for a, b in zip(c[:10], c[1:11]))


def test_unknown_schedule_is_refused():
    with pytest.raises(ValueError, match="scheduler='onecycle'; accepted"):
        LRSchedule("onecycle", 10, 5)(0)


@pytest.mark.parametrize(
    "kind,cls,check",
    [
        ("sgd", torch.optim.SGD, lambda g: g["momentum"] == 0.8),
        ("adam", torch.optim.Adam, lambda g: g["betas"] == (0.85, 0.99)),
        ("adamw", torch.optim.AdamW, lambda g: g["betas"] == (0.85, 0.99)),
        ("rmsprop", torch.optim.RMSprop, lambda g: g["momentum"] == 0.8),
    ],
)
def test_each_optimizer_gets_its_group_settings(kind, cls, check):
    layer = torch.nn.Linear(3, 2)
    opt = make_optimizer(layer.named_parameters(), {**GROUP, "optimizer": kind})
    assert type(opt) is cls
    decayed, plain = opt.param_groups
    assert decayed["lr"] == 0.1 and decayed["weight_decay"] == 0.01 and check(decayed)
    assert plain["weight_decay"] == 0.0 and plain["params"][0] is layer.bias


def test_scheduler_drives_the_optimizer_lr():
    layer = torch.nn.Linear(3, 2)
    opt = make_optimizer(layer.named_parameters(), GROUP)
    sched = make_scheduler(opt, {**GROUP, "scheduler": "linear"}, steps_per_epoch=5, epochs=2)
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([0.1 * (1 - s / 10) for s in range(10)])
