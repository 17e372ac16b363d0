"""The adaptive optimizers (optimizer=adagrad, adadelta, rmsprop): torch's classes with torch's defaults, their
keys checked in one line, what their `lr` means, and every schedule driving them as it drives SGD."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch
from helpers import CONF, FAST, bad_input, compose_config
from omegaconf import OmegaConf
from torch.optim import lr_scheduler as tl

from schedulers import build_schedule, lr_curve
from trainer.config import validate
from trainer.engine.fit import fit
from trainer.engine.setup import build_optimizer

ADAPTIVE = {"adagrad": torch.optim.Adagrad, "adadelta": torch.optim.Adadelta, "rmsprop": torch.optim.RMSprop}
OVERRIDES = {  # a value of each key that differs from torch's default
    "adagrad": {"lr": 0.05, "lr_decay": 0.01, "initial_accumulator_value": 0.1, "eps": 1e-8, "weight_decay": 1e-4},
    "adadelta": {"lr": 0.5, "rho": 0.95, "eps": 1e-7, "weight_decay": 1e-4},
    "rmsprop": {"lr": 0.001, "alpha": 0.9, "eps": 1e-6, "momentum": 0.5, "centered": True, "weight_decay": 1e-4},
}
EPOCHS, SPE = 12, 5


def build(option: str, *overrides: str, params=None) -> torch.optim.Optimizer:
    cfg = compose_config([f"optimizer={option}", *overrides])
    validate(cfg)
    return build_optimizer(cfg.optimizer, params or [torch.zeros(3, requires_grad=True)])


@pytest.mark.parametrize("option", ADAPTIVE)
def test_each_option_is_torchs_class_with_torchs_defaults(option):
    optimizer = build(option)
    assert type(optimizer) is ADAPTIVE[option]
    assert optimizer.defaults == ADAPTIVE[option]([torch.zeros(1, requires_grad=True)]).defaults


@pytest.mark.parametrize("option", ADAPTIVE)
def test_every_key_set_on_the_command_line_reaches_torch(option):
    values = OVERRIDES[option]
    optimizer = build(option, *(f"optimizer.{k}={v}" for k, v in values.items()))
    expected = ADAPTIVE[option]([torch.zeros(1, requires_grad=True)], **values).defaults
    assert optimizer.defaults == expected
    assert {k: optimizer.param_groups[0][k] for k in values} == values


@pytest.mark.parametrize(
    "overrides,expected",
    [
        (["optimizer=adagrad", "optimizer.lr_decay=-1"], "optimizer.lr_decay=-1.0 is not allowed: must be >= 0"),
        (
            ["optimizer=adagrad", "optimizer.initial_accumulator_value=-0.1"],
            "optimizer.initial_accumulator_value=-0.1 is not allowed: must be >= 0",
        ),
        (["optimizer=adagrad", "optimizer.lr=0"], "optimizer.lr=0.0 is not allowed: must be > 0"),
        (["optimizer=adadelta", "optimizer.rho=1.5"], "optimizer.rho=1.5 is not allowed: must be in [0, 1]"),
        (["optimizer=adadelta", "optimizer.eps=-1e-6"], "optimizer.eps=-1e-06 is not allowed: must be >= 0"),
        (["optimizer=adadelta", "optimizer.lr=nan"], "optimizer.lr=nan is not allowed: must be a finite number"),
        (["optimizer=rmsprop", "optimizer.alpha=1.01"], "optimizer.alpha=1.01 is not allowed: must be in [0, 1]"),
        (["optimizer=rmsprop", "optimizer.momentum=1"], "optimizer.momentum=1.0 is not allowed: must be in [0, 1)"),
        (
            ["optimizer=rmsprop", "optimizer.weight_decay=-1"],
            "optimizer.weight_decay=-1.0 is not allowed: must be >= 0",
        ),
        (["optimizer=rmsprop", "optimizer.centered=maybe"], "optimizer.centered: Value 'maybe' is not a valid bool"),
        # torch has no fused Adadelta or RMSprop, and Adadelta no momentum: no such keys
        (["optimizer=rmsprop", "optimizer.fused=true"], "optimizer.fused: no such key in optimizer"),
        (["optimizer=adadelta", "+optimizer.momentum=0.9"], "optimizer.momentum: no such key in optimizer"),
        (["optimizer=adagrad", "optimizer.betas=[0.9,0.99]"], "optimizer.betas: no such key in optimizer"),
        # onecycle and cyclic cycle momentum or beta1 (torch's rule): Adagrad and Adadelta have neither
        (
            ["optimizer=adagrad", "scheduler=onecycle"],
            "scheduler.cycle_momentum=True is not allowed: torch.optim.Adagrad has no momentum or beta1 to cycle: "
            "set scheduler.cycle_momentum=false",
        ),
        (
            ["optimizer=adadelta", "scheduler=cyclic"],
            "scheduler.cycle_momentum=True is not allowed: torch.optim.Adadelta has no momentum or beta1 to cycle",
        ),
    ],
)
def test_a_bad_value_is_one_line_naming_the_key(capsys, overrides, expected):
    assert expected in bad_input(capsys, *overrides)


@pytest.mark.parametrize("option", ["adagrad", "adadelta"])
def test_torch_refuses_to_cycle_the_momentum_they_do_not_have(option):
    """The oracle for the refusal above, and the way round it."""
    optimizer = ADAPTIVE[option]([torch.zeros(1, requires_grad=True)])
    with pytest.raises(ValueError, match="momentum"):
        tl.OneCycleLR(optimizer, max_lr=1.0, total_steps=10)
    build(option, "scheduler=onecycle", "scheduler.cycle_momentum=false")


# ------------------------------------------------------------------------------------------ what lr means


def first_step(option: str, lr: float, grad: torch.Tensor) -> torch.Tensor:
    param = torch.zeros_like(grad, requires_grad=True)
    optimizer = build(option, f"optimizer.lr={lr}", params=[param])
    param.grad = grad.clone()
    optimizer.step()
    return param.detach()


def test_what_lr_means_for_each_closed_form_first_steps():
    """Adagrad's and RMSprop's lr is a step size: the first step is lr per coordinate whatever the gradient's size
    (RMSprop's without bias correction, lr / sqrt(1 - alpha) = 10 lr). Adadelta's update starts at
    sqrt(eps) / sqrt((1 - rho) g^2 + eps) x g, a size set by eps, not by lr; lr multiplies it."""
    g = torch.tensor([1e-3, -0.5, 40.0], dtype=torch.float64)
    lr = 0.02
    assert first_step("adagrad", lr, g) == pytest.approx((-lr * g / (g.abs() + 1e-10)).tolist(), rel=1e-9)
    assert first_step("rmsprop", lr, g) == pytest.approx(
        (-lr * g / (math.sqrt(1 - 0.99) * g.abs() + 1e-8)).tolist(), rel=1e-9
    )
    eps, rho = 1e-6, 0.9
    adadelta = -lr * math.sqrt(eps) / torch.sqrt((1 - rho) * g**2 + eps) * g
    assert first_step("adadelta", lr, g) == pytest.approx(adadelta.tolist(), rel=1e-9)
    assert first_step("adadelta", 1.0, g).abs().max() < 4e-3  # lr 1.0: steps of about sqrt(eps / (1 - rho))


@pytest.mark.parametrize("option", ADAPTIVE)
def test_lr_only_multiplies_the_update(option):
    """For a given gradient history the state does not depend on lr, so any LR a schedule sets scales that step's
    update and nothing else (Adadelta's running average of updates keeps them before lr)."""
    torch.manual_seed(0)
    grads = [torch.randn(4, dtype=torch.float64) for _ in range(20)]
    a, b = (torch.zeros(4, dtype=torch.float64, requires_grad=True) for _ in range(2))
    slow, fast = build(option, "optimizer.lr=0.1", params=[a]), build(option, "optimizer.lr=0.7", params=[b])
    for g in grads:
        before_a, before_b = a.detach().clone(), b.detach().clone()
        a.grad, b.grad = g.clone(), g.clone()
        slow.step()
        fast.step()
        assert (b.detach() - before_b).tolist() == pytest.approx((7 * (a.detach() - before_a)).tolist(), rel=1e-9)


# ------------------------------------------------------------------------------------------ every schedule drives them


SCHEDULES = sorted(p.stem for p in (CONF / "scheduler").glob("*.yaml"))
# keys that make each schedule move within 12 epochs from a base LR of 0.5 (others are the yaml's)
KEYS = {
    "factor": ["scheduler.min_lr=0.05"],
    "cosine": ["scheduler.final_lr=0.005"],
    "cosine_warmup": ["scheduler.final_lr=0.005"],
    "cyclic": ["scheduler.max_lr=2.0"],
    "cosine_restarts": ["scheduler.T_0=3"],
    "plateau": ["scheduler.patience=1"],
    "torch": ["scheduler.step_size=3"],
}
CYCLES_MOMENTUM = ("onecycle", "cyclic")
METRIC = [1.0 - 0.01 * min(e, 3) for e in range(EPOCHS)]  # improves, then stalls: plateau reduces


def drive(optimizer: torch.optim.Optimizer, schedule, steps: int, seed: int = 0):
    """The trainer's order: the LR and momentum of every step, and the step's update."""
    param = optimizer.param_groups[0]["params"][0]
    gen = torch.Generator().manual_seed(seed)
    seen = []
    for k in range(steps):
        group = optimizer.param_groups[0]
        before = param.detach().clone()
        param.grad = torch.randn(param.shape, generator=gen, dtype=param.dtype)
        hyper = {key: group[key] for key in ("lr", "momentum", "betas") if key in group}
        optimizer.step()
        seen.append((hyper, param.detach() - before))
        schedule.step_batch()
        if (k + 1) % SPE == 0:
            schedule.step_epoch(METRIC[k // SPE])
    return seen


def scheduled(option: str, schedule: str, *extra: str):
    cfg = compose_config(
        [
            f"optimizer={option}",
            "optimizer.lr=0.5",
            f"scheduler={schedule}",
            f"trainer.epochs={EPOCHS}",
            *KEYS.get(schedule, []),
            *extra,
        ]
    )
    validate(cfg)
    param = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    optimizer = build_optimizer(cfg.optimizer, [param])
    return cfg, optimizer, build_schedule(cfg.scheduler, optimizer, SPE, EPOCHS)


@pytest.mark.parametrize("option", ADAPTIVE)
@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.slow
def test_every_schedule_drives_every_adaptive_optimizer(option, schedule):
    """Each step's update is the schedule's LR times the update of a twin at lr 1 that sees the same gradients and
    hyperparameters, and the LRs (and cycled momenta) are those the same schedule gives momentum SGD."""
    cycles = schedule in CYCLES_MOMENTUM and option != "rmsprop"
    extra = ["scheduler.cycle_momentum=false"] if cycles else []
    cfg, optimizer, schedule_ = scheduled(option, schedule, *extra)
    seen = drive(optimizer, schedule_, EPOCHS * SPE)

    twin_cfg = OmegaConf.merge(cfg.optimizer, {"lr": 1.0})
    twin_param = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    twin = build_optimizer(twin_cfg, [twin_param])
    gen = torch.Generator().manual_seed(0)
    for hyper, update in seen:
        twin.param_groups[0].update({k: v for k, v in hyper.items() if k != "lr"})
        before = twin_param.detach().clone()
        twin_param.grad = torch.randn(3, generator=gen, dtype=torch.float64)
        twin.step()
        assert update.tolist() == pytest.approx(
            (hyper["lr"] * (twin_param.detach() - before)).tolist(), rel=1e-9, abs=1e-15
        )

    sgd = torch.optim.SGD([torch.zeros(3, dtype=torch.float64, requires_grad=True)], lr=0.5, momentum=0.9)
    reference = drive(sgd, build_schedule(cfg.scheduler, sgd, SPE, EPOCHS), EPOCHS * SPE)
    lrs = [h["lr"] for h, _ in seen]
    assert lrs == pytest.approx([h["lr"] for h, _ in reference], rel=1e-12)
    if schedule != "constant":
        assert len(set(lrs)) > 1, "the schedule never moved the LR"
    if option == "rmsprop" and schedule in CYCLES_MOMENTUM:  # RMSprop's momentum is the knob they turn, as SGD's
        assert [h["momentum"] for h, _ in seen] == pytest.approx([h["momentum"] for h, _ in reference], rel=1e-12)


@pytest.mark.parametrize("interval", ["epoch", "step"])
def test_onecycle_on_rmsprop_equals_torchs_onecycle_on_rmsprop(interval):
    cfg, optimizer, schedule = scheduled("rmsprop", "onecycle", f"scheduler.interval={interval}")
    ours = drive(optimizer, schedule, EPOCHS * SPE)
    theirs_opt = torch.optim.RMSprop([torch.zeros(3, dtype=torch.float64, requires_grad=True)], lr=0.5)
    unit = SPE if interval == "step" else 1
    theirs_sched = tl.OneCycleLR(theirs_opt, max_lr=0.5, total_steps=EPOCHS * unit)

    class Torch:
        def step_batch(self):
            if interval == "step":
                theirs_sched.step()

        def step_epoch(self, _):
            if interval == "epoch":
                theirs_sched.step()

    theirs = drive(theirs_opt, Torch(), EPOCHS * SPE)
    for (h, update), (h_torch, update_torch) in zip(ours, theirs, strict=True):
        assert (h["lr"], h["momentum"]) == pytest.approx((h_torch["lr"], h_torch["momentum"]), rel=1e-9)
        assert update.tolist() == pytest.approx(update_torch.tolist(), rel=1e-7)


# ------------------------------------------------------------------------------------------ a short run trains


def steps_csv(run: Path) -> list[dict]:
    with (run / "steps.csv").open() as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


@pytest.mark.parametrize("option,lr", [("adagrad", 0.02), ("adadelta", 1.0), ("rmsprop", 0.002)])
@pytest.mark.slow
def test_a_short_run_trains_and_its_lrs_follow_the_schedule(tmp_path, option, lr):
    cfg = compose_config(
        [
            *FAST,
            "model=mlp",
            f"optimizer={option}",
            f"optimizer.lr={lr}",
            "scheduler=cosine",
            "scheduler.interval=step",
            f"scheduler.final_lr={lr / 100}",
            "trainer.epochs=2",
            "trainer.checkpoint=false",
        ]
    )
    validate(cfg)
    summary = fit(cfg, tmp_path / "run", {"overrides": []})
    assert summary["status"] == "completed"
    steps = steps_csv(tmp_path / "run")
    spe = summary["steps_per_epoch"]
    _, expected = lr_curve(cfg.scheduler, lr, 2, spe)
    assert [s["lr"] for s in steps] == pytest.approx(expected, rel=1e-12)
    assert expected[-1] < lr / 50  # it did decay
    losses = [s["loss"] for s in steps]
    assert sum(losses[-5:]) < 0.7 * sum(losses[:5])
    assert summary["final_test_acc"] > 0.3  # chance is 0.1


# ------------------------------------------------------------------------------------------ the study


@pytest.mark.slow
def test_the_adaptive_study_runs_seven_arms_on_the_d2l_setup(capsys):
    from trainer.cli import precheck

    study = OmegaConf.load(CONF / "experiment" / "adaptive_vs_schedules.yaml").hydra.sweeper.params
    arms = study.arm.split(",")
    d2l = compose_config(["experiment=d2l_schedulers"])
    chosen = {}
    for arm in arms:
        cfg = compose_config(["experiment=adaptive_vs_schedules", f"arm={arm}"])
        validate(cfg)
        for group in ("dataset", "model", "trainer"):
            assert cfg[group] == d2l[group], (arm, group)
        chosen[arm] = (cfg.optimizer._target_, cfg.optimizer.get("momentum", 0), cfg.scheduler.name)
    assert sorted(chosen.values()) == sorted(
        [
            ("torch.optim.SGD", 0, "cosine"),
            ("torch.optim.SGD", 0.9, "step"),
            ("torch.optim.Adam", 0, "constant"),
            ("torch.optim.AdamW", 0, "constant"),
            ("torch.optim.Adagrad", 0, "constant"),
            ("torch.optim.RMSprop", 0.0, "constant"),
            ("torch.optim.Adadelta", 0, "constant"),
        ]
    )
    assert study.seed == "0,1,2"
    precheck(["-m", "experiment=adaptive_vs_schedules"])  # every job of the sweep composes and validates
    assert capsys.readouterr().err == ""
