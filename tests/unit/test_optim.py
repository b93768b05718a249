"""Per-group optimizers and each LR schedule's curve."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from trainables.config import GroupConfig
from trainables.optim import LRSchedule, decayed_names, make_optimizer, make_schedule, make_scheduler

GROUP = {
    "lr": 0.1, "optimizer": "adamw", "weight_decay": 0.01, "momentum": 0.8, "beta1": 0.85, "beta2": 0.99,
    "scheduler": "constant", "warmup_ratio": 0.0, "gamma": 0.5, "step_epochs": 2, "decay": 1.0,
}  # fmt: skip


def curve(kind: str, steps_per_epoch: int = 10, epochs: int = 4, **hp) -> list[float]:
    sched = make_schedule(GroupConfig.from_dict({**GROUP, "scheduler": kind, **hp}), steps_per_epoch, epochs)
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
    opt = make_optimizer(
        layer.named_parameters(), GroupConfig.from_dict({**GROUP, "optimizer": kind}), decayed_names(layer)
    )
    assert type(opt) is cls
    decayed, plain = opt.param_groups
    assert decayed["lr"] == 0.1 and decayed["weight_decay"] == 0.01 and check(decayed)
    assert plain["weight_decay"] == 0.0 and plain["params"][0] is layer.bias


def test_scheduler_drives_the_optimizer_lr():
    layer = torch.nn.Linear(3, 2)
    opt = make_optimizer(layer.named_parameters(), GroupConfig.from_dict(GROUP), decayed_names(layer))
    sched = make_scheduler(opt, GroupConfig.from_dict({**GROUP, "scheduler": "linear"}), steps_per_epoch=5, epochs=2)
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([0.1 * (1 - s / 10) for s in range(10)])


def test_a_restored_trial_trains_with_its_own_schedule_not_the_checkpoints():
    """PBT continues a trial from another's checkpoint under perturbed values: the schedule's shape is the
    new config's (gamma here), the step count the checkpoint's."""
    from trainables.loop import restore_optimizer

    donor_hp = GroupConfig.from_dict({**GROUP, "scheduler": "exponential", "gamma": 0.5})
    layer = torch.nn.Linear(3, 2)
    opt = make_optimizer(layer.named_parameters(), donor_hp, decayed_names(layer))
    sched = make_scheduler(opt, donor_hp, steps_per_epoch=5, epochs=4)
    for _ in range(5):  # one epoch
        opt.step()
        sched.step()
    optimizer_state, scheduler_state = opt.state_dict(), sched.state_dict()

    perturbed = dataclasses.replace(donor_hp, gamma=0.9, lr=0.2)
    layer = torch.nn.Linear(3, 2)
    opt = make_optimizer(layer.named_parameters(), perturbed, decayed_names(layer))
    sched = make_scheduler(opt, perturbed, steps_per_epoch=5, epochs=4)
    restore_optimizer(opt, sched, optimizer_state, scheduler_state)
    assert sched.last_epoch == 5 and sched.lr_lambdas[0].gamma == 0.9
    assert opt.param_groups[0]["lr"] == pytest.approx(0.2 * 0.9)
    for _ in range(5):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.2 * 0.9**2)


def test_weight_decay_and_penalties_skip_every_norm_and_bias_by_module_type():
    """One rule for every architecture: ViT's layernorm_before/after, a ...RMSNorm class of a model's own,
    biases; the same parameters take weight decay and the L1/L2 penalties."""
    from transformers import ViTConfig, ViTModel

    from trainables.optim import configure_optimizers

    class LlamaLikeRMSNorm(torch.nn.Module):  # not a torch norm: known by its class name
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.ones(4))

    vit = ViTModel(ViTConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                             image_size=8, patch_size=4, num_channels=1))  # fmt: skip
    model = torch.nn.ModuleDict({"vit": vit, "norm": LlamaLikeRMSNorm(), "proj": torch.nn.Linear(4, 4)})
    names = dict(model.named_parameters())
    decayed = decayed_names(model)
    norms = [n for n in names if "layernorm" in n or n.startswith("norm.")]
    assert any("layernorm_before" in n for n in norms) and any("layernorm_after" in n for n in norms)
    assert not set(norms) & decayed
    assert not {n for n in names if n.endswith("bias")} & decayed
    assert {"proj.weight", "vit.embeddings.patch_embeddings.projection.weight"} <= decayed

    hp = GroupConfig.from_dict({**GROUP, "optimizer": "adamw", "weight_decay": 0.1})
    configured = configure_optimizers(model, {"all": list(names.items())}, {"all": hp}, 1, 1)
    with_decay, without = configured.optimizers["all"].param_groups
    assert with_decay["weight_decay"] == 0.1 and without["weight_decay"] == 0.0
    assert {id(p) for p in with_decay["params"]} == {id(names[n]) for n in decayed}
    assert {id(p) for p in configured.penalized} == {id(names[n]) for n in decayed}
