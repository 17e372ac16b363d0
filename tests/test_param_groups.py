"""Per-parameter-group settings in the optimizer group: optimizer.no_decay_norm_and_bias (weight decay 0 on every
normalization layer's parameters and every bias) and optimizer.lr_multipliers (a factor of optimizer.lr per
module-name prefix). Which tensors each group holds (hand-listed for LeNet and ResNet), what torch then does with
them, a run that trains and resumes with them, and the one-line refusals. That every schedule keeps each group at
its factor: test_schedulers.py (test_lr_multiplier_groups_keep_their_factor_of_the_base_lr, over every schedule)."""

from __future__ import annotations

import pytest
import torch
from helpers import FAST, bad_input, compose_config
from torch import nn

from schedulers import build_schedule, param_groups, rebase_lr
from schedulers.errors import ConfigError
from trainer.config import typed, validate
from trainer.engine.setup import build_optimizer
from trainer.models import LeNet, ResNet

# the d2l LeNet: nn.Sequential(conv 0, relu, pool, conv 3, relu, pool, flatten, linear 7, relu, linear 9, relu, linear 11)
LENET_WEIGHTS = {"0.weight", "3.weight", "7.weight", "9.weight", "11.weight"}
LENET_BIASES = {"0.bias", "3.bias", "7.bias", "9.bias", "11.bias"}
# the small ResNet (widths 16, 32, 64; one block a stage): convolutions without bias; BatchNorm after the stem
# (features.1), twice in every block's body (body.1, body.4) and in the two projecting shortcuts; a linear head
RESNET_NORMS = {
    f"{module}.{name}"
    for module in (
        "features.1",
        "features.3.body.1",
        "features.3.body.4",
        "features.4.body.1",
        "features.4.body.4",
        "features.4.shortcut.1",
        "features.5.body.1",
        "features.5.body.4",
        "features.5.shortcut.1",
    )
    for name in ("weight", "bias")
}
RESNET_NO_DECAY = RESNET_NORMS | {"head.2.bias"}


def optimizer_for(model: nn.Module, *overrides: str) -> torch.optim.Optimizer:
    cfg = compose_config(list(overrides))
    validate(cfg)
    return build_optimizer(typed(cfg).optimizer, model)


def groups_by_name(optimizer: torch.optim.Optimizer, model: nn.Module) -> list[tuple[float, float, set[str]]]:
    """(lr, weight_decay, the names of its tensors) of every param group."""
    names = {id(p): n for n, p in model.named_parameters()}
    return [(g["lr"], g["weight_decay"], {names[id(p)] for p in g["params"]}) for g in optimizer.param_groups]


def test_without_settings_one_group_in_model_order_as_before():
    model = ResNet()
    optimizer = optimizer_for(model, "optimizer=adamw")
    assert len(optimizer.param_groups) == 1
    assert optimizer.param_groups[0]["params"] == list(model.parameters())


def test_no_decay_holds_exactly_the_biases_of_lenet():
    model = LeNet()
    optimizer = optimizer_for(model, "optimizer=adamw", "optimizer.no_decay_norm_and_bias=true")
    assert groups_by_name(optimizer, model) == [(0.001, 0.01, LENET_WEIGHTS), (0.001, 0.0, LENET_BIASES)]


def test_no_decay_holds_exactly_the_norms_and_the_bias_of_resnet():
    model = ResNet()
    optimizer = optimizer_for(model, "optimizer=adamw", "model=resnet", "optimizer.no_decay_norm_and_bias=true")
    decayed = {n for n, _ in model.named_parameters()} - RESNET_NO_DECAY
    assert len(RESNET_NO_DECAY) == 19 and all(n.endswith("weight") for n in decayed)
    assert groups_by_name(optimizer, model) == [(0.001, 0.01, decayed), (0.001, 0.0, RESNET_NO_DECAY)]


def test_every_torch_norm_layer_and_any_bias_take_no_decay():
    model = nn.Sequential(
        nn.Linear(4, 4),
        nn.LayerNorm(4),
        nn.GroupNorm(2, 4),
        nn.RMSNorm(4),
        nn.InstanceNorm1d(4, affine=True),
        nn.BatchNorm1d(4),
        nn.Linear(4, 2, bias=False),
    )
    groups = param_groups(model, lr=0.1, weight_decay=0.5, no_decay_norm_and_bias=True)
    names = {id(p): n for n, p in model.named_parameters()}
    assert [names[id(p)] for p in groups[0]["params"]] == ["0.weight", "6.weight"]
    assert [names[id(p)] for p in groups[1]["params"]] == [
        "0.bias",
        "1.weight",
        "1.bias",
        "2.weight",
        "2.bias",
        "3.weight",
        "4.weight",
        "4.bias",
        "5.weight",
        "5.bias",
    ]


def test_decay_is_applied_to_the_decayed_group_only():
    # AdamW with zero gradients: its Adam step is 0, so a decayed tensor is multiplied by exactly 1 - lr * wd
    # and a no-decay one is left as it is
    model = ResNet()
    optimizer = optimizer_for(
        model,
        "optimizer=adamw",
        "optimizer.lr=0.1",
        "optimizer.weight_decay=0.5",
        "optimizer.no_decay_norm_and_bias=true",
    )
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    for name, p in model.named_parameters():
        expected = before[name] if name in RESNET_NO_DECAY else before[name] * (1 - 0.1 * 0.5)
        torch.testing.assert_close(p.detach(), expected, rtol=1e-6, atol=0, msg=name)


def test_multipliers_match_at_dots_and_the_longest_prefix_decides():
    model = nn.Sequential(*(nn.Linear(2, 2) for _ in range(12)))  # modules 0 ... 11
    groups = param_groups(model, lr=1.0, lr_multipliers={"1": 0.5})
    names = {id(p): n for n, p in model.named_parameters()}
    assert [names[id(p)] for p in groups[1]["params"]] == ["1.weight", "1.bias"]  # not 10.* or 11.*
    assert groups[1]["lr"] == 0.5 and len(groups) == 2

    model = ResNet()
    optimizer = optimizer_for(
        model,
        "model=resnet",
        "optimizer=adamw",
        "optimizer.lr=0.01",
        "optimizer.lr_multipliers={features:0.1,features.0:0.01}",
    )
    factors = {n: lr / 0.01 for lr, _, names in groups_by_name(optimizer, model) for n in names}
    assert factors["features.0.weight"] == pytest.approx(0.01)
    assert factors["features.1.weight"] == factors["features.5.shortcut.1.bias"] == pytest.approx(0.1)
    assert factors["head.2.weight"] == factors["head.2.bias"] == 1.0


def test_group_zero_is_the_base_group_even_when_empty():
    # every layer at a factor: group 0 stays at optimizer.lr, empty, so that the run's LR (steps.csv), the schedule's
    # LR-valued keys and their checks stay in the units of optimizer.lr
    model = LeNet()
    optimizer = optimizer_for(model, "optimizer.lr=0.3", "optimizer.lr_multipliers={0:0.5,3:0.5,7:2,9:2,11:2}")
    assert [(g["lr"], len(g["params"])) for g in optimizer.param_groups] == [(0.3, 0), (0.15, 4), (0.6, 6)]
    schedule = build_schedule({"name": "cosine", "final_lr": 0.03}, optimizer, 5, 10)
    for _ in range(10):
        schedule.step_epoch()
    assert schedule.lr == pytest.approx(0.03)
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.03, 0.015, 0.06])


def test_rebase_lr_keeps_every_group_at_its_factor():
    model = LeNet()
    optimizer = optimizer_for(model, "optimizer.lr=0.3", "optimizer.lr_multipliers={0:0.1}")
    build_schedule({"name": "constant"}, optimizer, 5, 10)  # a schedule keeps initial_lr
    rebase_lr(optimizer, 0.05)
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.05, 0.005])
    assert [g["initial_lr"] for g in optimizer.param_groups] == pytest.approx([0.05, 0.005])


def test_a_run_trains_and_resumes_with_param_groups(tmp_path, monkeypatch):
    from helpers import stop_in_epoch

    from trainer.engine.checkpoint import read
    from trainer.engine.fit import fit
    from trainer.records import RunFolder

    overrides = [
        *FAST,
        "trainer.epochs=2",
        "trainer.max_steps_per_epoch=3",
        "trainer.num_threads=1",
        "trainer.train_eval_size=0",
        "optimizer=adamw",
        "optimizer.no_decay_norm_and_bias=true",
        "optimizer.lr_multipliers={0:0.1,11:2}",
        "scheduler=cosine",
        "scheduler.interval=step",
    ]
    cfg = compose_config(overrides)
    validate(cfg)
    fit(cfg, tmp_path / "whole")
    stop_in_epoch(monkeypatch, tmp_path / "cut", 2)
    with pytest.raises(KeyboardInterrupt):
        fit(cfg, tmp_path / "cut")
    monkeypatch.undo()
    fit(cfg, tmp_path / "cut")  # resumes from epoch 1's checkpoint
    whole, cut = RunFolder(tmp_path / "whole"), RunFolder(tmp_path / "cut")
    assert [(s.lr, s.loss) for s in cut.read_steps()] == [(s.lr, s.loss) for s in whole.read_steps()]
    groups = read(whole.checkpoint, "optimizer", what="it")["optimizer"]["param_groups"]
    base = groups[0]["initial_lr"]
    assert base == 0.001 and sorted(g["initial_lr"] / base for g in groups) == pytest.approx([0.1, 0.1, 1, 1, 2, 2])
    assert sorted(g["weight_decay"] for g in groups) == [0.0, 0.0, 0.0, 0.01, 0.01, 0.01]


@pytest.mark.parametrize(
    "override,expected",
    [
        (
            "optimizer.lr_multipliers={0:0}",
            "optimizer.lr_multipliers[0]=0 is not allowed: must be > 0 (a factor of optimizer.lr)",
        ),
        (
            "optimizer.lr_multipliers={features.0:-0.5}",
            "optimizer.lr_multipliers[features.0]=-0.5 is not allowed: must be > 0",
        ),
        ("optimizer.lr_multipliers={head:fast}", "optimizer.lr_multipliers[head]='fast' is not allowed: must be > 0"),
        (
            "optimizer.lr_multipliers=0.1",
            "optimizer.lr_multipliers=0.1 is not allowed: must be null or a mapping of "
            "module-name prefixes to factors of optimizer.lr, e.g. {features.0:0.1}",
        ),
        (
            "optimizer.no_decay_norm_and_bias=maybe",
            "optimizer.no_decay_norm_and_bias: Value 'maybe' is not a valid bool",
        ),
    ],
)
def test_a_bad_group_setting_is_one_line_before_any_work(capsys, override, expected):
    assert expected in bad_input(capsys, override)


def test_a_prefix_that_matches_no_parameter_is_one_line_naming_it():
    with pytest.raises(ConfigError) as e:
        optimizer_for(ResNet(), "model=resnet", "optimizer.lr_multipliers={featurs.0:0.1}")
    assert str(e.value) == (
        "optimizer.lr_multipliers[featurs.0]=0.1 is not allowed: it matches no parameter of the "
        "model (did you mean features.0?)"
    )
    with pytest.raises(
        ConfigError,
        match=r"^optimizer.lr_multipliers\[body\]=2 is not allowed: it matches no "
        r"parameter of the model \(its top-level modules are 0, 3, 7, 9, 11\)$",
    ):
        optimizer_for(LeNet(), "optimizer.lr_multipliers={body:2}")
    with pytest.raises(ConfigError, match=r"\(the model has no named parameters\)$"):  # task=toy's one tensor
        build_optimizer(
            compose_config(["optimizer.lr_multipliers={0:2}"]).optimizer, [torch.zeros(2, requires_grad=True)]
        )
    with pytest.raises(
        ConfigError, match=r"^optimizer.lr_multipliers\[ \]=0.1 is not allowed: a prefix names a module"
    ):
        param_groups(LeNet(), lr=0.1, lr_multipliers={" ": 0.1})


def test_a_prefix_that_matches_no_parameter_stops_the_run_before_any_data(capsys):
    assert bad_input(capsys, "model=resnet", "optimizer.lr_multipliers={featurs.0:0.1}").endswith(
        "optimizer.lr_multipliers[featurs.0]=0.1 is not allowed: it matches no parameter of the model (did you mean "
        "features.0?)"
    )
