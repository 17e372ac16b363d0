"""The schedule library against torch's own schedulers (the oracles), the formulas of the README's Schedules table, and the
contract every schedule keeps: warmup, non-negative LRs, resumable state, param-group ratios, errors."""

import copy
import math
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import pytest
import torch
from helpers import (
    BASE,
    EPOCHS,
    INTERVALS,
    LOSSES,
    ORACLES,
    PLATEAUS,
    SPE,
    bad_input,
    compose_config,
    lrs,
    momenta,
    run_cli,
    run_ours,
    run_torch,
    sgd,
    trace,
)
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from torch.optim import lr_scheduler as tl

import trainer.errors
from schedulers import (
    build_schedule,
    key_epochs,
    lr_curve,
    plot_schedules,
    register_configs,
    schedule_warnings,
    torch_scheduler,
    validate_schedule,
    warn_schedule,
)
from schedulers.config import SCHEMAS, parse
from schedulers.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = ROOT / "conf" / "scheduler"


# every schedule, with the keys that make it meaningful for BASE and EPOCHS (others are the yaml's)
CASES = {
    "constant": {},
    "factor": {"min_lr": 0.05},
    "step": {"step_size": 3},
    "multistep": {"milestones": [3, 7]},
    "exponential": {},
    "inverse_time": {},
    "sqrt": {},
    "polynomial": {"end_lr": 0.01},
    "linear": {"end_factor": 0.1},
    "cosine": {"horizon": None},
    "cosine_warmup": {"horizon": None},
    "plateau": {"patience": 1},
    "onecycle": {},
    "cyclic": {"max_lr": 2.0},
    "cosine_restarts": {"T_0": 3},
    "wsd": {},
    "custom": {"kwargs": {"timescale": 2.0}},  # its template, rsqrt; a function of the user's: test_own_schedule.py
    # the schedules of 2024-26 papers (their formulas by hand: test_current_schedules.py)
    "linear_to_zero": {},
    "cosine_to_zero": {},
    "rsqrt": {"timescale": 2.0},  # horizon-free
    "power": {"decay_fraction": 0.25, "shape": "linear"},  # with its decay phase at the end
}
TORCH_EXAMPLE = {"name": "torch", "_target_": "torch.optim.lr_scheduler.StepLR", "step_size": 3, "gamma": 0.5}


@pytest.mark.parametrize("interval", INTERVALS)
@pytest.mark.parametrize("case", ORACLES)
def test_equals_torch_over_a_run(case, interval):
    cfg, make = ORACLES[case]
    ours, theirs = run_ours(cfg, interval), run_torch(make, interval)
    assert lrs(ours) == pytest.approx(lrs(theirs), rel=1e-9)
    assert momenta(ours) == pytest.approx(momenta(theirs), rel=1e-9)


@pytest.mark.parametrize("interval", INTERVALS)
@pytest.mark.parametrize("case", PLATEAUS)
def test_plateau_equals_torch_on_a_scripted_loss(case, interval):
    params = {"mode": "min", "threshold_mode": "rel", "cooldown": 0, "min_lr": 0.0, **PLATEAUS[case]}
    sign = -1 if params["mode"] == "max" else 1
    losses = [sign * loss for loss in LOSSES]
    optimizer = sgd()
    monitor = "val_acc" if params["mode"] == "max" else "val_loss"  # an accuracy: higher is better
    cfg = {"name": "plateau", "interval": interval, "monitor": monitor, **params}
    scheduler = build_schedule(cfg, optimizer, SPE, len(LOSSES))
    ours = trace(optimizer, scheduler.step_batch, lambda e: scheduler.step_epoch(losses[e]), len(LOSSES))
    theirs = run_torch(lambda o, u: tl.ReduceLROnPlateau(o, **params), interval, len(LOSSES), losses)
    assert lrs(ours) == pytest.approx(lrs(theirs), rel=1e-9)
    assert len(set(lrs(ours))) >= 3  # the script does reduce the LR, more than once


def test_warmup_epochs_do_not_count_toward_plateau():
    warmup = 2
    cfg = {"name": "plateau", "patience": 1, "warmup": {"epochs": warmup, "start_lr": 0.1}}
    ours = lrs(run_ours(cfg, "step", len(LOSSES)))
    plateau = lambda o, u: tl.ReduceLROnPlateau(o, patience=1, factor=0.5)  # noqa: E731
    theirs = lrs(run_torch(plateau, "step", len(LOSSES) - warmup, LOSSES[warmup:]))
    assert ours[warmup * SPE :] == pytest.approx(theirs, rel=1e-9)
    assert ours[: warmup * SPE] == pytest.approx([0.1 + (BASE - 0.1) * k / (warmup * SPE) for k in range(warmup * SPE)])


def lr_at(cfg, t):
    """The LR applied at position t (in epochs, a multiple of 1/SPE) per step; `base` in cfg: the base LR."""
    cfg = dict(cfg)
    base = cfg.pop("base", BASE)
    epochs = max(math.floor(t), math.floor(cfg.get("warmup", {}).get("epochs", 0))) + 1  # warmup ends inside the run
    return lr_curve({**cfg, "interval": "step"}, base, epochs, SPE)[1][round(t * SPE)]


WSD = {"name": "wsd", "decay_fraction": 0.2, "min_lr": 0.05, "horizon": 10}
FORMULAS = [
    # max(η_min, η0 α^t) with d2l's FactorScheduler numbers (base 2.0, factor 0.9, floor 0.01): the LR d2l
    # trains with in epoch t, which its plot shows at t - 1 (test_factor_is_the_lr_d2l_trains_with_in_epoch_t)
    ({"name": "factor", "base": 2.0}, 3, 1.4580000000000002),
    ({"name": "factor", "base": 2.0}, 2.4, 2.0 * 0.9**2.4),
    ({"name": "factor", "base": 2.0, "min_lr": 0.01}, 59.8, 0.01),  # the chapter's stop_factor_lr
    # η0 / (1 + d t)
    ({"name": "inverse_time", "decay": 0.1}, 3, 0.3846153846153846),
    ({"name": "inverse_time", "decay": 0.1}, 2.2, 0.5 / 1.22),
    # η0 (t + 1)^(-1/2), d2l's SquareRootScheduler (base 0.1)
    ({"name": "sqrt", "base": 0.1}, 3, 0.05),
    ({"name": "sqrt", "base": 0.1}, 8, 0.03333333333333333),
    # WSD over 10 epochs: stable to epoch 8, then decay to 0.05 at epoch 10
    ({**WSD, "shape": "linear"}, 7.8, 0.5),
    ({**WSD, "shape": "linear"}, 8.4, 0.05 + 0.45 * 0.8),
    ({**WSD, "shape": "linear"}, 9, 0.275),
    ({**WSD, "shape": "cosine"}, 9, 0.275),
    ({**WSD, "shape": "cosine"}, 8.4, 0.05 + 0.45 * (1 + math.cos(0.2 * math.pi)) / 2),
    ({**WSD, "shape": "1-sqrt"}, 9, 0.18180194846605358),
    ({**WSD, "shape": "1-sqrt"}, 11, 0.05),
    # warmup from 0.1 over 2 epochs, then the cosine over the remaining 10 epochs to 0.02 at epoch 12
    ({"name": "cosine", "final_lr": 0.02, "horizon": 12, "warmup": {"epochs": 2, "start_lr": 0.1}}, 0, 0.1),
    ({"name": "cosine", "final_lr": 0.02, "horizon": 12, "warmup": {"epochs": 2, "start_lr": 0.1}}, 1.6, 0.42),
    ({"name": "cosine", "final_lr": 0.02, "horizon": 12, "warmup": {"epochs": 2, "start_lr": 0.1}}, 2, 0.5),
    (
        {"name": "cosine", "final_lr": 0.02, "horizon": 12, "warmup": {"epochs": 2, "start_lr": 0.1}},
        5,
        0.4010684605501936,
    ),
    # held after the horizon
    ({"name": "cosine", "final_lr": 0.02, "horizon": 6}, 9.4, 0.02),
    ({"name": "polynomial", "power": 2.0, "end_lr": 0.05, "horizon": 8}, 3, 0.22578125),
    ({"name": "polynomial", "power": 2.0, "end_lr": 0.05, "horizon": 8}, 10, 0.05),
    # fractional epochs in step and milestones
    ({"name": "step", "step_size": 1.4, "gamma": 0.5}, 2.6, 0.25),
    ({"name": "step", "step_size": 1.4, "gamma": 0.5}, 2.8, 0.125),
    ({"name": "multistep", "milestones": [0.6, 2.2], "gamma": 0.5, "warmup": {"epochs": 1, "start_lr": 0}}, 1.4, 0.5),
    ({"name": "multistep", "milestones": [0.6, 2.2], "gamma": 0.5, "warmup": {"epochs": 1, "start_lr": 0}}, 1.6, 0.25),
    ({"name": "multistep", "milestones": [0.6, 2.2], "gamma": 0.5, "warmup": {"epochs": 1, "start_lr": 0}}, 3.2, 0.125),
]


@pytest.mark.parametrize(("cfg", "t", "expected"), FORMULAS)
def test_formula_values(cfg, t, expected):
    assert lr_at(cfg, t) == pytest.approx(expected, rel=1e-9)


def test_d2l_cosine_with_warmup_per_epoch():
    """d2l's CosineScheduler(20, warmup_steps=5, base_lr=0.3, final_lr=0.01), held after epoch 20."""
    warmup = [0.0, 0.06, 0.12, 0.18, 0.24]
    cosine = [0.3, 0.296831, 0.287464, 0.272307, 0.252024, 0.2275, 0.199807, 0.170157, 0.139843, 0.110193, 0.0825]
    tail = [0.057976, 0.037693, 0.022536, 0.013169, 0.01, 0.01]
    d2l = warmup + cosine + tail
    _, curve = lr_curve({"name": "cosine_warmup", "horizon": 20, "final_lr": 0.01}, 0.3, 22, 1)
    assert curve == pytest.approx(d2l, abs=1e-6)


def test_epoch_interval_is_the_staircase_of_the_step_curve():
    """Parameters mean the same in both intervals: the LR during epoch e is the step curve at t = e.
    (onecycle follows torch, whose phases end one scheduler step early in either interval.)"""
    for name, overrides in CASES.items():
        if name == "onecycle":
            continue
        cfg = {"name": name, **overrides, "warmup": {"epochs": 1.5, "start_lr": 0.1}}
        stairs = lr_curve({**cfg, "interval": "epoch"}, BASE, EPOCHS, SPE)[1]
        smooth = lr_curve({**cfg, "interval": "step"}, BASE, EPOCHS, SPE)[1]
        assert stairs == pytest.approx([smooth[e * SPE] for e in range(EPOCHS) for _ in range(SPE)], rel=1e-12), name


@pytest.mark.parametrize("interval", INTERVALS)
@pytest.mark.parametrize("name", CASES)
def test_warmup_ramps_then_runs_the_schedule_over_the_rest(name, interval):
    warmup = 2
    cfg = {"name": name, **CASES[name], "warmup": {"epochs": warmup, "start_lr": 0.05}}
    warmed = lrs(run_ours(cfg, interval))
    unwarmed = {**cfg, "warmup": {"epochs": 0, "start_lr": 0.0}}
    plain = lrs(run_ours(unwarmed, interval, EPOCHS - warmup, losses=LOSSES[warmup:]))
    assert warmed[0] == 0.05
    if interval == "step":
        ramp = [0.05 + (BASE - 0.05) * k / (warmup * SPE) for k in range(warmup * SPE)]
        assert warmed[: warmup * SPE] == pytest.approx(ramp, rel=1e-12)
    # from the end of warmup on: the schedule as if the run started there (it starts at the base LR
    # unless it has its own rise, as onecycle does)
    assert warmed[warmup * SPE :] == pytest.approx(plain, rel=1e-12)
    assert plain[0] == pytest.approx(BASE / 25 if name == "onecycle" else BASE)


@pytest.mark.parametrize("interval", INTERVALS)
@pytest.mark.parametrize("name", CASES)
def test_no_lr_is_negative_or_nan(name, interval):
    cfg = {"name": name, **CASES[name], "warmup": {"epochs": 1.2, "start_lr": 0.0}}
    for lr in lrs(run_ours(cfg, interval)):
        assert isinstance(lr, float) and math.isfinite(lr) and lr >= 0


def _config(name):
    return TORCH_EXAMPLE if name == "torch" else {"name": name, **CASES[name]}


@pytest.mark.parametrize("interval", INTERVALS)
@pytest.mark.parametrize("name", [*CASES, "torch"])
def test_state_round_trip_mid_run_continues_identically(name, interval):
    cfg = {**_config(name), "interval": interval}
    whole = run_ours(cfg, interval)

    optimizer = sgd()
    scheduler = build_schedule(cfg, optimizer, SPE, EPOCHS)
    first = run_ours(cfg, interval, 5, optimizer, scheduler)
    saved = copy.deepcopy((optimizer.state_dict(), scheduler.state_dict()))

    resumed_optimizer = sgd()
    resumed = build_schedule(cfg, resumed_optimizer, SPE, EPOCHS)
    resumed_optimizer.load_state_dict(saved[0])
    resumed.load_state_dict(saved[1])
    rest = run_ours(cfg, interval, EPOCHS, resumed_optimizer, resumed, start=5)
    assert first + rest == whole


@pytest.mark.parametrize("interval", INTERVALS)
@pytest.mark.parametrize("name", [*CASES, "torch"])
def test_param_groups_keep_their_ratios(name, interval):
    ratios = (1.0, 0.1, 3.0)
    optimizer = sgd(*(BASE * r for r in ratios))
    seen = run_ours(_config(name), interval, optimizer=optimizer)
    assert max(lrs(seen)) > 0
    for group, ratio in enumerate(ratios):
        assert lrs(seen, group) == pytest.approx([lr * ratio for lr in lrs(seen)], rel=1e-12)


@pytest.mark.parametrize("interval", INTERVALS)
@pytest.mark.parametrize("name", [*CASES, "torch"])
@pytest.mark.slow
def test_lr_multiplier_groups_keep_their_factor_of_the_base_lr(name, interval):
    # the param groups optimizer.lr_multipliers and no_decay_norm_and_bias make for the d2l LeNet (its first conv
    # at 0.1x, its head at 3x, biases in groups of their own): each stays at its factor of group 0's LR
    from trainer.engine.setup import build_optimizer
    from trainer.models import LeNet

    overrides = [
        "optimizer=momentum",
        f"optimizer.lr={BASE}",
        "optimizer.lr_multipliers={0:0.1,11:3}",
        "optimizer.no_decay_norm_and_bias=true",
        "optimizer.weight_decay=1e-4",
    ]
    optimizer = build_optimizer(compose_config(overrides).optimizer, LeNet())
    factors = [g["lr"] / BASE for g in optimizer.param_groups]
    assert sorted(factors) == pytest.approx([0.1, 0.1, 1.0, 1.0, 3.0, 3.0]) and factors[0] == 1.0
    seen = run_ours(_config(name), interval, optimizer=optimizer)
    assert max(lrs(seen)) > 0
    for group, factor in enumerate(factors):
        assert lrs(seen, group) == pytest.approx([lr * factor for lr in lrs(seen)], rel=1e-12)


def test_momentum_cycles_adam_beta1_and_leaves_optimizers_without_it_alone():
    param = torch.zeros(1, requires_grad=True)
    adam = torch.optim.Adam([param], lr=BASE, betas=(0.9, 0.999))
    scheduler = build_schedule({"name": "onecycle", "interval": "step"}, adam, SPE, EPOCHS)
    assert adam.param_groups[0]["betas"] == (0.95, 0.999)
    for _ in range(round(0.3 * EPOCHS * SPE) - 1):
        scheduler.step_batch()
    assert adam.param_groups[0]["betas"] == pytest.approx((0.85, 0.999))
    adagrad = torch.optim.Adagrad([param], lr=BASE)
    build_schedule({"name": "cyclic", "max_lr": 2.0}, adagrad, SPE, EPOCHS).step_epoch()
    assert "momentum" not in adagrad.param_groups[0] and "betas" not in adagrad.param_groups[0]


def test_torch_target_plateau_is_stepped_on_the_validation_loss():
    optimizer = sgd()
    cfg = {"name": "torch", "_target_": "torch.optim.lr_scheduler.ReduceLROnPlateau", "patience": 0, "interval": "step"}
    scheduler = build_schedule(cfg, optimizer, SPE, EPOCHS)
    for loss in (1.0, 1.0, 1.0):
        scheduler.step_batch()
        scheduler.step_epoch(loss)
    assert scheduler.lr == pytest.approx(BASE * 0.1**2)
    with pytest.raises(ConfigError, match="validation loss"):
        scheduler.step_epoch(None)


BAD = [
    ({"name": "multistep", "milestones": [30, 15]}, "scheduler.milestones must be strictly increasing"),
    (
        {"name": "multistep", "milestone_fractions": [0.75, 0.5]},
        "scheduler.milestone_fractions must be strictly increasing",
    ),
    ({"name": "multistep", "milestone_fractions": [0.5, 1.0]}, "scheduler.milestone_fractions must be in (0, 1)"),
    ({"name": "step", "step_size": 0}, "scheduler.step_size must be > 0"),
    ({"name": "step", "gamma": 0}, "scheduler.gamma must be > 0"),
    ({"name": "exponential", "gamma": -0.5}, "scheduler.gamma must be > 0"),
    ({"name": "factor", "factor": 0}, "scheduler.factor must be > 0"),
    ({"name": "plateau", "factor": 1.5}, "scheduler.factor must be in (0, 1)"),
    ({"name": "cosine", "horizon": 5, "warmup": {"epochs": 5}}, "scheduler.horizon must be > scheduler.warmup.epochs"),
    # horizon null is the run: a warmup as long as the run is named as such, before the horizon it leaves empty
    ({"name": "onecycle", "warmup": {"epochs": 12}}, "scheduler.warmup.epochs must be < trainer.epochs (12)"),
    (
        {"name": "onecycle", "horizon": 8, "warmup": {"epochs": 8}},
        "scheduler.horizon must be > scheduler.warmup.epochs",
    ),
    ({"name": "cosine", "warmup": {"start_lr": -0.1}}, "scheduler.warmup.start_lr must be >= 0"),
    ({"name": "cosine", "final_lr": -0.01}, "scheduler.final_lr must be >= 0"),
    ({"name": "factor", "min_lr": 1.0}, "scheduler.min_lr must be <= the base LR"),
    ({"name": "cosine", "final_lr": 0.2}, "scheduler.final_lr must be <= the base LR"),
    ({"name": "cyclic", "max_lr": 0.05}, "scheduler.max_lr must be >= the base LR"),
    ({"name": "cosine", "interval": "batch"}, "scheduler.interval must be one of 'epoch', 'step'"),
    ({"name": "onecycle", "pct_start": 1.2}, "scheduler.pct_start must be in (0, 1)"),
    ({"name": "cosine_restarts", "T_mult": 0.5}, "scheduler.T_mult must be >= 1"),
    ({"name": "wsd", "shape": "sqrt"}, "scheduler.shape must be one of 'linear', 'cosine', '1-sqrt'"),
    ({"name": "plateau", "threshold_mode": "relative"}, "scheduler.threshold_mode must be one of 'rel', 'abs'"),
    ({"name": "cosin"}, "scheduler.name must be one of"),
    ({"name": "cosine", "finl_lr": 0.0}, "scheduler.finl_lr: Key 'finl_lr' not in 'Cosine'"),
    ({"name": "step", "gamma": "half"}, "scheduler.gamma: Value 'half'"),
    ({**TORCH_EXAMPLE, "step_sise": 3}, "scheduler: StepLR got an unexpected keyword argument 'step_sise'"),
    ({**TORCH_EXAMPLE, "warmup": {"epochs": 2}}, "scheduler.warmup is not available with _target_"),
    ({**TORCH_EXAMPLE, "_target_": "torch.optim.lr_scheduler.NoSuchLR"}, "scheduler._target_ cannot be imported"),
]


@pytest.mark.parametrize(("cfg", "message"), BAD, ids=[m.split(" ")[0] for _, m in BAD])
def test_bad_parameter_fails_at_start_with_one_line_naming_the_key(cfg, message):
    with pytest.raises(ConfigError) as error:
        validate_schedule(cfg, EPOCHS, base_lr=0.1)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_floor_above_the_optimizer_lr_fails_at_build():
    with pytest.raises(ConfigError, match=r"scheduler.final_lr must be <= the base LR \(the optimizer's lr, 0.001\)"):
        build_schedule({"name": "cosine", "final_lr": 0.01}, sgd(0.001), SPE, EPOCHS)


def test_plateau_without_a_validation_metric_fails():
    with pytest.raises(ConfigError, match="validation loss"):
        validate_schedule({"name": "plateau"}, EPOCHS, has_val_metric=False)
    with pytest.raises(ConfigError, match="validation loss"):
        build_schedule({"name": "plateau"}, sgd(), SPE, EPOCHS).step_epoch(None)


@pytest.fixture(scope="module")
def compose_scheduler():
    """Compose the scheduler group as Hydra does for run.py, from `+scheduler=<name>` and more overrides."""
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR.parent), version_base="1.3"):
        yield lambda *overrides: compose(overrides=list(overrides)).scheduler


def test_every_config_composes_and_builds(compose_scheduler):
    composed = {p.stem: compose_scheduler(f"+scheduler={p.stem}") for p in CONF_DIR.glob("*.yaml")}
    assert set(composed) == {*SCHEMAS, "torch"} and set(CASES) == set(SCHEMAS)  # every schedule is tested
    for name, cfg in composed.items():
        assert cfg.name == name
        validate_schedule(cfg, 30, base_lr=0.1)
        assert build_schedule(cfg, sgd(0.1), SPE, 30).lr > 0 or cfg.warmup.epochs > 0
    assert composed["cosine_warmup"].warmup.epochs == 5 and composed["cosine"].horizon is None
    assert composed["multistep"].milestones is None and composed["multistep"].milestone_fractions == [0.5, 0.75]
    assert composed["step"].step_size is None


def test_a_misspelt_key_or_wrong_type_fails_at_composition_with_its_name(compose_scheduler):
    with pytest.raises(ConfigCompositionException, match="finl_lr"):
        compose_scheduler("+scheduler=cosine", "scheduler.finl_lr=0.1")
    with pytest.raises(ConfigCompositionException, match="final_lr"):
        compose_scheduler("+scheduler=cosine", "scheduler.final_lr=low")
    # a key forced in with `+` passes composition and fails at the start of the run
    forced = compose_scheduler("+scheduler=cosine", "+scheduler.finl_lr=0.1")
    with pytest.raises(ConfigError, match="scheduler.finl_lr"):
        validate_schedule(forced, EPOCHS)


def test_schedule_drawing_writes_a_valid_png_with_several_curves(tmp_path: Path):
    curves = {name: lr_curve({"name": name, **CASES[name]}, BASE, EPOCHS, SPE) for name in ("cosine", "onecycle")}
    curves["cosine_warmup per step"] = lr_curve({"name": "cosine_warmup", "interval": "step"}, BASE, 25, SPE)
    path = tmp_path / "schedule.png"
    plot_schedules(curves, path, title="schedules")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    height, width, _ = matplotlib.image.imread(path).shape
    assert height > 100 and width > 100
    t, lr = curves["cosine"]
    assert len(t) == len(lr) == EPOCHS * SPE and t[SPE] == 1.0


def test_key_epochs_name_warmup_milestones_and_horizon():
    cfg = {"name": "multistep", "milestones": [15, 30], "warmup": {"epochs": 2, "start_lr": 0.0}}
    assert key_epochs(cfg, 40) == [0, 2, 10, 17, 20, 30, 32, 39]
    # the default milestones: half and three quarters of the 38 epochs after warmup
    assert key_epochs({**cfg, "milestones": None}, 40) == [0, 2, 10, 20, 21, 30, 31, 39]
    assert key_epochs({"name": "cosine", "horizon": 6}, 8) == [0, 2, 4, 6, 7]


# What `python run.py scheduler=<name>` composes for each option: the schemas' defaults, the horizons, step
# sizes and milestones left to follow the run's length (the d2l arms set cosine's horizon 20 and multistep's
# milestones [15, 30]).
WARMUP_OFF = {"epochs": 0.0, "start_lr": 0.0}
# no schedule of another value, nor of the batch size (class Schedule)
VALUES_OFF = {"momentum": None, "beta2": None, "weight_decay": None, "batch_size": None}
YAML_VALUES = {
    "constant": {"name": "constant", "interval": "epoch", "warmup": WARMUP_OFF},
    "cosine": {"name": "cosine", "interval": "epoch", "warmup": WARMUP_OFF, "final_lr": 0.0, "horizon": None},
    "cosine_restarts": {
        "name": "cosine_restarts",
        "interval": "epoch",
        "warmup": WARMUP_OFF,
        "T_0": 10.0,
        "T_mult": 2.0,
        "eta_min": 0.0,
    },
    "cosine_warmup": {
        "name": "cosine_warmup",
        "interval": "epoch",
        "warmup": {"epochs": 5.0, "start_lr": 0.0},
        "final_lr": 0.0,
        "horizon": None,
    },
    "cyclic": {
        "name": "cyclic",
        "interval": "epoch",
        "warmup": WARMUP_OFF,
        "max_lr": 1.0,
        "step_size_up": 2.0,
        "step_size_down": None,
        "mode": "triangular",
        "gamma": 1.0,
        "cycle_momentum": True,
        "base_momentum": 0.8,
        "max_momentum": 0.9,
    },
    "exponential": {"name": "exponential", "interval": "epoch", "warmup": WARMUP_OFF, "gamma": 0.9},
    "factor": {"name": "factor", "interval": "epoch", "warmup": WARMUP_OFF, "factor": 0.9, "min_lr": 1e-7},
    "inverse_time": {"name": "inverse_time", "interval": "epoch", "warmup": WARMUP_OFF, "decay": 0.1},
    "linear": {
        "name": "linear",
        "interval": "epoch",
        "warmup": WARMUP_OFF,
        "start_factor": 1.0,
        "end_factor": 0.0,
        "horizon": None,
    },
    "multistep": {
        "name": "multistep",
        "interval": "epoch",
        "warmup": WARMUP_OFF,
        "milestones": None,
        "milestone_fractions": [0.5, 0.75],
        "gamma": 0.5,
    },
    "onecycle": {
        "name": "onecycle",
        "interval": "epoch",
        "warmup": WARMUP_OFF,
        "pct_start": 0.3,
        "anneal_strategy": "cos",
        "div_factor": 25.0,
        "final_div_factor": 1.0e4,
        "three_phase": False,
        "cycle_momentum": True,
        "base_momentum": 0.85,
        "max_momentum": 0.95,
        "horizon": None,
    },
    "plateau": {
        "name": "plateau",
        "interval": "epoch",
        "warmup": WARMUP_OFF,
        "monitor": "val_loss",  # added with the validation split: what it steps on
        "mode": "min",
        "factor": 0.5,
        "patience": 3,
        "threshold": 1.0e-4,
        "threshold_mode": "rel",
        "cooldown": 0,
        "min_lr": 0.0,
        "eps": 1.0e-8,
    },
    "polynomial": {
        "name": "polynomial",
        "interval": "epoch",
        "warmup": WARMUP_OFF,
        "power": 2.0,
        "end_lr": 0.0,
        "horizon": None,
    },
    "sqrt": {"name": "sqrt", "interval": "epoch", "warmup": WARMUP_OFF},
    "step": {"name": "step", "interval": "epoch", "warmup": WARMUP_OFF, "step_size": None, "gamma": 0.1},
    "wsd": {
        "name": "wsd",
        "interval": "epoch",
        "warmup": WARMUP_OFF,
        "decay_fraction": 0.2,
        "shape": "1-sqrt",
        "min_lr": 0.0,
        "horizon": None,
    },
    "custom": {
        "name": "custom",
        "interval": "epoch",
        "warmup": WARMUP_OFF,
        "fn": "schedulers.custom.rsqrt",
        "kwargs": {},
    },
    "linear_to_zero": {
        "name": "linear_to_zero",
        "interval": "epoch",
        "warmup": WARMUP_OFF,
        "start_factor": 1.0,
        "end_factor": 0.0,
        "horizon": None,
    },
    "cosine_to_zero": {
        "name": "cosine_to_zero",
        "interval": "epoch",
        "warmup": WARMUP_OFF,
        "final_lr": 0.0,
        "horizon": None,
    },
    "rsqrt": {
        "name": "rsqrt",
        "interval": "epoch",
        "warmup": WARMUP_OFF,
        "timescale": 3.0,
        "decay_fraction": 0.0,
        "shape": "1-sqrt",
        "min_lr": 0.0,
        "horizon": None,
    },
    "power": {
        "name": "power",
        "interval": "epoch",
        "warmup": WARMUP_OFF,
        "a": 1.0,
        "b": 0.51,
        "decay_fraction": 0.0,
        "shape": "1-sqrt",
        "min_lr": 0.0,
        "horizon": None,
    },
}


@pytest.mark.parametrize("name", sorted(YAML_VALUES))
def test_each_option_composes_the_values_its_yaml_used_to_spell_out(name):
    assert {p.stem for p in CONF_DIR.glob("*.yaml")} == {*YAML_VALUES, "torch"}
    composed = compose_config([f"scheduler={name}"]).scheduler
    assert OmegaConf.to_container(composed, resolve=True) == {**YAML_VALUES[name], **VALUES_OFF}
    # the library, given only the name, fills in the same values without reading any yaml
    assert OmegaConf.to_container(OmegaConf.structured(parse({"name": name}))) == {**YAML_VALUES[name], **VALUES_OFF}


def test_torch_option_still_names_a_torch_class():
    composed = compose_config(["scheduler=torch"]).scheduler
    assert composed._target_ == "torch.optim.lr_scheduler.StepLR"
    scheduler = build_schedule(composed, sgd(0.1), SPE, 30)
    assert isinstance(scheduler.scheduler, tl.StepLR) and scheduler.lr == 0.1


@pytest.mark.slow
def test_config_error_is_one_type_and_the_library_imports_nothing_from_trainer():
    assert trainer.errors.ConfigError is ConfigError and issubclass(ConfigError, ValueError)
    # in a fresh interpreter: the error type and the schemas load without torch (trainer.errors re-exports
    # the type, and bad input is reported before torch loads), then every module of the package loads,
    # none pulling in the trainer
    check = (
        "import sys, schedulers.errors, schedulers.config; assert 'torch' not in sys.modules; "
        "import schedulers.curves, schedulers.scheduler, schedulers.plot; "
        "from schedulers import *; "
        "bad = sorted(m for m in sys.modules if m == 'trainer' or m.startswith('trainer.')); "
        "assert not bad, bad"
    )
    result = subprocess.run([sys.executable, "-c", check], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


TENSOR_LR_CASES = {
    "step": {"name": "step", "step_size": 3, "gamma": 0.5},
    "exponential": {"name": "exponential", "gamma": 0.8},
    "cosine": {"name": "cosine", "final_lr": 0.01, "horizon": None},
}


@pytest.mark.parametrize("interval", INTERVALS)
@pytest.mark.parametrize("case", TENSOR_LR_CASES)
def test_constant_initial_lr(case, interval):
    """torch's test_constant_initial_lr: with an optimizer whose LR is a tensor, stepping the schedule
    writes the LR tensor in place and must leave the group's initial_lr alone."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.randn(1))], lr=torch.tensor(0.1))
    scheduler = build_schedule({**TENSOR_LR_CASES[case], "interval": interval}, optimizer, SPE, EPOCHS)
    original = copy.deepcopy(optimizer.param_groups)
    for epoch in range(EPOCHS):
        for _ in range(SPE):
            optimizer.step()
            scheduler.step_batch()
        scheduler.step_epoch()
        for group, before in zip(optimizer.param_groups, original, strict=True):
            assert group["initial_lr"] == before["initial_lr"] == pytest.approx(0.1), epoch
            assert group["lr"] is not group["initial_lr"]
    assert isinstance(optimizer.param_groups[0]["lr"], torch.Tensor)  # still the optimizer's own tensor
    assert float(optimizer.param_groups[0]["lr"]) < 0.09  # and the schedule did move it


@pytest.mark.parametrize("case", TENSOR_LR_CASES)
def test_schedule_built_after_loading_a_tensor_lr_optimizer_starts_from_its_base_lr(case):
    cfg = TENSOR_LR_CASES[case]

    def tensor_sgd():
        return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=torch.tensor(0.1))

    def run(optimizer, scheduler, epochs, start=0):
        seen = []  # the LR tensor is written in place: record its value
        for _ in range(start, epochs):
            for _ in range(SPE):
                seen.append(float(optimizer.param_groups[0]["lr"]))
                optimizer.step()
                scheduler.step_batch()
            scheduler.step_epoch()
        return seen

    optimizer = tensor_sgd()
    whole = run(optimizer, build_schedule(cfg, optimizer, SPE, EPOCHS), EPOCHS)

    optimizer = tensor_sgd()
    scheduler = build_schedule(cfg, optimizer, SPE, EPOCHS)
    first = run(optimizer, scheduler, 5)
    saved = copy.deepcopy((optimizer.state_dict(), scheduler.state_dict()))

    resumed_optimizer = tensor_sgd()
    resumed_optimizer.load_state_dict(saved[0])  # the optimizer first, then a fresh schedule on it
    resumed = build_schedule(cfg, resumed_optimizer, SPE, EPOCHS)
    assert resumed.lr == pytest.approx(0.1)  # the base LR, not the LR the saved run had reached
    resumed.load_state_dict(saved[1])
    assert first + run(resumed_optimizer, resumed, EPOCHS, start=5) == pytest.approx(whole, rel=1e-6)


class D2LFactorScheduler:
    """d2l.ai's FactorScheduler ("Learning Rate Scheduling"), transcribed: stateful, each call multiplies."""

    def __init__(self, factor=1, stop_factor_lr=1e-7, base_lr=0.1):
        self.factor = factor
        self.stop_factor_lr = stop_factor_lr
        self.base_lr = base_lr

    def __call__(self, num_update):
        self.base_lr = max(self.stop_factor_lr, self.base_lr * self.factor)
        return self.base_lr


def test_factor_is_the_lr_d2l_trains_with_in_epoch_t():
    """schedlab's factor lr(t) = max(min_lr, lr * factor^t) is d2l's FactorScheduler after t calls. d2l's
    train() sets `lr = scheduler(epoch)` at the end of each epoch, so epoch 0 trains at the optimizer's lr
    and epoch t at what the t-th call returned: schedlab's lr(t). d2l's plot, [scheduler(t) for t in
    range(n)], is one epoch ahead: the call with num_update=t returns lr(t + 1)."""
    base, epochs = 2.0, 60
    _, ours = lr_curve({"name": "factor", "factor": 0.9, "min_lr": 0.01}, base, epochs, 1)

    d2l = D2LFactorScheduler(factor=0.9, stop_factor_lr=1e-2, base_lr=base)
    trained = [base]  # the LR of each epoch in d2l's train(): the optimizer's, then each call's result
    for epoch in range(epochs - 1):
        trained.append(d2l(epoch))
    assert ours == pytest.approx(trained, rel=1e-12)
    assert ours[0] == base and ours[3] == pytest.approx(1.458) and ours[-1] == 0.01  # the floor is reached

    plotted = D2LFactorScheduler(factor=0.9, stop_factor_lr=1e-2, base_lr=base)
    assert [plotted(t) for t in range(epochs - 1)] == pytest.approx(ours[1:], rel=1e-12)


# --- short runs: horizons follow the run, and a schedule planned for a longer run says so -----------------


def test_defaults_follow_the_runs_length():
    """cosine, step and multistep at their defaults fit any trainer.epochs: a 2-epoch cosine reaches
    final_lr at the end of the run, step steps twice, multistep drops at half and three quarters."""
    cfg = compose_config(["scheduler=cosine", "trainer.epochs=2", "optimizer.lr=0.3"])
    t, lr = lr_curve(cfg.scheduler, 0.3, 2, 1)
    assert lr == pytest.approx([0.3, 0.15])  # halfway down the 0.3 -> 0 cosine in the last epoch
    _, smooth = lr_curve({**cfg.scheduler, "interval": "step"}, 0.3, 2, 1000)
    assert smooth[-1] == pytest.approx(0.0, abs=1e-6)  # final_lr at the run's end
    assert schedule_warnings(cfg.scheduler, 2, 0.3) == []
    _, stairs = lr_curve({"name": "step"}, 0.3, 6, 1)
    assert stairs == pytest.approx([0.3, 0.3, 0.03, 0.03, 0.003, 0.003])
    _, drops = lr_curve({"name": "multistep", "warmup": {"epochs": 2}}, 0.3, 10, 1)
    assert drops[2:] == pytest.approx([0.3] * 4 + [0.15] * 2 + [0.075] * 2)  # milestones 4 and 6 after warmup
    _, warmed = lr_curve({"name": "cosine_warmup"}, 0.3, 10, 1)
    assert warmed[5] == 0.3 and warmed[-1] == pytest.approx(0.3 * (1 + math.cos(math.pi * 4 / 5)) / 2)


# Per-epoch LRs of the five arms of `python run.py -m experiment=d2l_schedulers` (30 epochs, the d2l chapter's
# values: cosine's horizon 20 and multistep's milestones [15, 30], which the arms set).
D2L_COSINE = [
    0.3,
    0.298215,
    0.292903,
    0.284196,
    0.272307,
    0.25753,
    0.240229,
    0.220829,
    0.199807,
    0.177683,
    0.155,
    0.132317,
    0.110193,
    0.089171,
    0.069771,
    0.05247,
    0.037693,
    0.025804,
    0.017097,
    0.011785,
] + [0.01] * 10
D2L_COSINE_WARMUP = [
    0.0,
    0.06,
    0.12,
    0.18,
    0.24,
    0.3,
    0.296831,
    0.287464,
    0.272307,
    0.252024,
    0.2275,
    0.199807,
    0.170157,
    0.139843,
    0.110193,
    0.0825,
    0.057976,
    0.037693,
    0.022536,
    0.013169,
] + [0.01] * 10
D2L_SQRT = [
    0.1,
    0.070711,
    0.057735,
    0.05,
    0.044721,
    0.040825,
    0.037796,
    0.035355,
    0.033333,
    0.031623,
    0.030151,
    0.028868,
    0.027735,
    0.026726,
    0.02582,
    0.025,
    0.024254,
    0.02357,
    0.022942,
    0.022361,
    0.021822,
    0.02132,
    0.020851,
    0.020412,
    0.02,
    0.019612,
    0.019245,
    0.018898,
    0.01857,
    0.018257,
]
D2L_ARMS = {
    "d2l_constant": [0.3] * 30,
    "d2l_sqrt": D2L_SQRT,
    "d2l_multistep": [0.5] * 15 + [0.25] * 15,  # the milestone at 30 is the run's end
    "d2l_cosine": D2L_COSINE,
    "d2l_cosine_warmup": D2L_COSINE_WARMUP,
}


@pytest.mark.parametrize("arm", D2L_ARMS)
@pytest.mark.slow
def test_d2l_arms_spell_out_the_chapters_schedules(arm):
    cfg = compose_config(["experiment=d2l_schedulers", f"arm={arm}"])
    epochs, base = int(cfg.trainer.epochs), float(cfg.optimizer.lr)
    assert epochs == 30 and cfg.scheduler.interval == "epoch"
    _, lr = lr_curve(cfg.scheduler, base, epochs, 3)
    assert lr[::3] == pytest.approx(D2L_ARMS[arm], abs=1e-6)
    assert lr == [x for x in lr[::3] for _ in range(3)]  # the d2l staircase
    assert schedule_warnings(cfg.scheduler, epochs, base) == []  # every arm fits the chapter's 30 epochs
    # the arm's own values, not the schedule's defaults, which now follow trainer.epochs
    short = compose_config(["experiment=d2l_schedulers", f"arm={arm}", "trainer.epochs=10"])
    assert lr_curve(short.scheduler, base, 10, 1)[1] == pytest.approx(D2L_ARMS[arm][:10], abs=1e-6)


WARNINGS = [
    (
        {"name": "cosine", "horizon": 20},
        2,
        "scheduler.horizon=20 is past the run's 2 epochs: cosine reaches 0.298 of its 0.3→0 decay by the last epoch",
    ),
    (
        {"name": "cosine_warmup", "horizon": 20, "final_lr": 0.0, "interval": "step"},
        10,
        "scheduler.horizon=20 is past the run's 10 epochs: cosine_warmup reaches 0.25 of its 0.3→0 decay by the "
        "last epoch",
    ),
    (
        {"name": "polynomial", "horizon": 20},
        2,
        "scheduler.horizon=20 is past the run's 2 epochs: polynomial reaches 0.271 of its 0.3→0 decay by the last epoch",
    ),
    (
        {"name": "linear", "horizon": 8, "start_factor": 0.1, "end_factor": 1.0},
        4,
        "scheduler.horizon=8 is past the run's 4 epochs: linear reaches 0.131 of its 0.03→0.3 rise by the last epoch",
    ),
    (
        {"name": "onecycle", "horizon": 40},
        10,
        "scheduler.horizon=40 is past the run's 10 epochs: onecycle reaches 0.277 of its 0.012→0.3→1.2e-06 cycle by "
        "the last epoch",
    ),
    (
        {"name": "wsd", "horizon": 20},
        10,
        "scheduler.horizon=20 is past the run's 10 epochs: wsd reaches 0.3 of its 0.3→0 decay by the last epoch",
    ),
    ({"name": "step", "step_size": 10}, 2, "scheduler.step_size=10: the run's 2 epochs never reach the first step"),
    ({"name": "step", "step_size": 10}, 10, "scheduler.step_size=10: the run's 10 epochs never reach the first step"),
    (
        {"name": "step", "step_size": 8, "warmup": {"epochs": 3}},
        10,
        "scheduler.step_size=8: the run's 10 epochs never reach the first step (they count from the end of the 3 "
        "warmup epochs)",
    ),
    (
        {"name": "multistep", "milestones": [15, 30]},
        20,
        "scheduler.milestones=[15, 30]: 30 is past the run's 20 epochs",
    ),
    (
        {"name": "multistep", "milestones": [15, 30]},
        2,
        "scheduler.milestones=[15, 30]: 15 and 30 are past the run's 2 epochs",
    ),
    (
        {"name": "multistep", "milestones": [5, 12.5], "warmup": {"epochs": 2}},
        12,
        "scheduler.milestones=[5, 12.5]: 12.5 is past the run's 12 epochs (they count from the end of the 2 warmup "
        "epochs)",
    ),
    (
        {"name": "cosine_restarts"},
        20,
        "scheduler.T_0=10 with T_mult=2: the last cycle (epochs 10–30) is cut at epoch 20",
    ),
    (
        {"name": "cosine_restarts"},
        2,
        "scheduler.T_0=10 with T_mult=2: the first cycle (epochs 0–10) is cut at epoch 2",
    ),
    (
        {"name": "cosine_restarts", "T_0": 4, "T_mult": 1, "warmup": {"epochs": 1}},
        11,
        "scheduler.T_0=4 with T_mult=1: the last cycle (epochs 9–13) is cut at epoch 11",
    ),
    ({"name": "cyclic", "max_lr": 1.0}, 3, "scheduler.step_size_up=2: the first cycle (epochs 0–4) is cut at epoch 3"),
]


@pytest.mark.parametrize(("cfg", "epochs", "message"), WARNINGS, ids=[f"{c['name']}-{e}" for c, e, _ in WARNINGS])
def test_a_schedule_planned_for_a_longer_run_gets_one_warning_line(cfg, epochs, message):
    validate_schedule(cfg, epochs, base_lr=0.3)  # a warning, not an error: the run goes on
    assert schedule_warnings(cfg, epochs, 0.3, steps_per_epoch=SPE) == [message]


FITS = [
    ({"name": "cosine", "horizon": 20}, 20),
    ({"name": "cosine", "horizon": 20}, 30),  # held at final_lr after the horizon: d2l's cosine
    ({"name": "cosine_warmup"}, 6),
    ({"name": "polynomial"}, 2),
    ({"name": "linear", "horizon": 8}, 8),
    ({"name": "onecycle"}, 3),
    ({"name": "wsd", "horizon": 10}, 12),
    ({"name": "step", "step_size": 10}, 11),
    ({"name": "step"}, 2),
    ({"name": "multistep", "milestones": [15, 30]}, 30),  # d2l: the last milestone at the run's end
    ({"name": "multistep"}, 2),
    ({"name": "cosine_restarts"}, 30),
    ({"name": "cosine_restarts"}, 10),
    ({"name": "cosine_restarts", "T_0": 4, "T_mult": 1, "warmup": {"epochs": 1}}, 13),
    ({"name": "cyclic", "max_lr": 1.0}, 5),  # later cycles may be cut: only a first cycle cut warns
    ({"name": "constant"}, 1),
    ({"name": "factor"}, 1),
    ({"name": "plateau"}, 2),
    (TORCH_EXAMPLE, 1),
]


@pytest.mark.parametrize(("cfg", "epochs"), FITS, ids=[f"{c['name']}-{e}" for c, e in FITS])
def test_no_warning_when_the_schedule_fits_the_run(cfg, epochs):
    assert schedule_warnings(cfg, epochs, 0.3) == []


@pytest.mark.slow
def test_every_option_fits_the_default_run_and_any_run_when_left_to_follow_it():
    for name in SCHEMAS:
        for epochs in (6, 30):  # 6: past cosine_warmup's 5 warmup epochs
            cfg = compose_config([f"scheduler={name}", f"trainer.epochs={epochs}"])
            if name in ("cosine_restarts", "cyclic") and epochs == 6:
                continue  # their cycles are absolute: T_0 10, step_size_up 2
            assert schedule_warnings(cfg.scheduler, epochs, 0.3) == [], (name, epochs)


def test_warn_schedule_prints_one_line_on_stderr(capsys):
    cfg = compose_config(["scheduler=cosine", "scheduler.horizon=20", "trainer.epochs=2"])
    lines = warn_schedule(cfg.scheduler, 2, 0.3)
    out, err = capsys.readouterr()
    assert out == "" and err == f"schedlab: warning: {lines[0]}\n"
    assert lines == [WARNINGS[0][2]]
    assert warn_schedule({"name": "cosine"}, 2, 0.3) == [] and capsys.readouterr() == ("", "")


# --- choice keys: Enum-typed fields, refused in the library's words --------------------------------------------

# every schedule's choice keys beyond scheduler.interval, with their values in the order a refusal lists them
CHOICE_KEYS = {
    "plateau": {"monitor": ("val_loss", "val_acc"), "mode": ("min", "max"), "threshold_mode": ("rel", "abs")},
    "onecycle": {"anneal_strategy": ("cos", "linear")},
    "cyclic": {"mode": ("triangular", "triangular2", "exp_range")},
    **{name: {"shape": ("linear", "cosine", "1-sqrt")} for name in ("wsd", "rsqrt", "power")},
}
# (schedule, key, value on the command line, the one line refusing it): from python run.py and the library alike
CHOICE_REFUSALS = [
    ("cosine", "interval", "foo", "scheduler.interval must be one of 'epoch', 'step', got 'foo'"),
    ("cosine", "interval", "EPOCH", "scheduler.interval must be one of 'epoch', 'step', got 'EPOCH'"),
    ("constant", "interval", "1", "scheduler.interval must be one of 'epoch', 'step', got '1'"),
    ("constant", "interval", "true", "scheduler.interval must be one of 'epoch', 'step', got 'True'"),
    ("plateau", "interval", "1.5", "scheduler.interval must be one of 'epoch', 'step', got '1.5'"),
    ("plateau", "mode", "foo", "scheduler.mode must be one of 'min', 'max', got 'foo'"),
    ("plateau", "monitor", "foo", "scheduler.monitor must be one of 'val_loss', 'val_acc', got 'foo'"),
    ("plateau", "threshold_mode", "foo", "scheduler.threshold_mode must be one of 'rel', 'abs', got 'foo'"),
    ("onecycle", "anneal_strategy", "foo", "scheduler.anneal_strategy must be one of 'cos', 'linear', got 'foo'"),
    ("cyclic", "mode", "foo", "scheduler.mode must be one of 'triangular', 'triangular2', 'exp_range', got 'foo'"),
    ("wsd", "shape", "foo", "scheduler.shape must be one of 'linear', 'cosine', '1-sqrt', got 'foo'"),
    ("rsqrt", "shape", "sqrt", "scheduler.shape must be one of 'linear', 'cosine', '1-sqrt', got 'sqrt'"),
    ("power", "shape", "2", "scheduler.shape must be one of 'linear', 'cosine', '1-sqrt', got '2'"),
]
CHOICE_IDS = [f"{name}.{key}={value}" for name, key, value, _ in CHOICE_REFUSALS]
PYTHON_VALUES = {"1": 1, "true": True, "1.5": 1.5, "2": 2}  # a command-line value as Hydra parses it
# a good value of every choice key other than its default
GOOD_CHOICES = [
    ("cosine", "interval", "step"),
    ("plateau", "monitor", "val_acc"),
    ("plateau", "mode", "max"),
    ("plateau", "threshold_mode", "abs"),
    ("onecycle", "anneal_strategy", "linear"),
    ("cyclic", "mode", "exp_range"),
    ("wsd", "shape", "cosine"),
    ("power", "shape", "linear"),
]


def test_every_choice_key_is_an_enum_typed_field_and_every_other_string_key_is_free_text():
    import enum
    import typing

    from schedulers.choice import Choice

    for name, schema in SCHEMAS.items():
        hints = typing.get_type_hints(type(schema))
        node = OmegaConf.structured(schema)
        enums = {key: t for key, t in hints.items() if isinstance(t, type) and issubclass(t, enum.Enum)}
        assert {k: t.values() for k, t in enums.items()} == {"interval": ("epoch", "step"), **CHOICE_KEYS.get(name, {})}
        for key, kind in enums.items():
            assert issubclass(kind, Choice) and issubclass(kind, str)
            assert node._get_node(key)._metadata.ref_type is kind, (name, key)  # what OmegaConf checks a value against
            assert isinstance(getattr(schema, key), kind)
        strings = {k for k, t in hints.items() if t is str}
        assert strings <= {"name", "fn"}, (name, strings)  # the option's name, an import path: no fixed set


@pytest.mark.parametrize(("name", "key", "value", "message"), CHOICE_REFUSALS, ids=CHOICE_IDS)
def test_a_bad_choice_on_the_command_line_is_refused_in_the_librarys_words(capsys, name, key, value, message):
    assert bad_input(capsys, f"scheduler={name}", f"scheduler.{key}={value}") == f"schedlab: error: {message}"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["-m", "scheduler=plateau", "scheduler.mode=min,foo"],
            "scheduler.mode must be one of 'min', 'max', got 'foo'",
        ),
        (["scheduler.interval=[epoch]"], "scheduler.interval: Cannot convert 'list' to string: '['epoch']'"),
        (["scheduler.interval={a:1}"], "scheduler.interval: Cannot convert 'dict' to string: '{'a': 1}'"),
        (["scheduler.interval=null"], "scheduler.interval: field 'scheduler.interval' is not Optional"),
        (
            ["scheduler=wsd", "scheduler.shape=${oc.env:SCHEDLAB_NO_SUCH_VARIABLE,foo}"],
            "scheduler.shape must be one of 'linear', 'cosine', '1-sqrt', got 'foo'",
        ),
        (
            ["scheduler=cosine", "+scheduler.momentum={name:wsd,shape:foo}"],
            "scheduler.momentum.shape must be one of 'linear', 'cosine', '1-sqrt', got 'foo'",
        ),
        (
            ["scheduler=cosine", "+scheduler.batch_size={name:power,shape:2}"],
            "scheduler.batch_size.shape must be one of 'linear', 'cosine', '1-sqrt', got '2'",
        ),
        (
            ["scheduler=cosine", "+scheduler.momentum={name:cosine,interval:foo}"],
            "scheduler.momentum.interval must be the LR's scheduler.interval ('epoch'): every value moves at the same "
            "positions, got 'foo'",
        ),
        (
            ["task=toy", "scheduler=plateau", "scheduler.monitor=val_acc", "scheduler.mode=max"],
            "scheduler.monitor='val_acc' is not allowed: task=toy reduces on the function's value, a loss: use val_loss",
        ),
        (
            ["scheduler=plateau", "scheduler.monitor=val_acc"],
            "scheduler.mode must be 'max' for scheduler.monitor='val_acc', got 'min'",
        ),
        (["scheduler=torch", "scheduler.interval=foo"], "scheduler.interval must be one of 'epoch', 'step', got 'foo'"),
        # a key that is not a choice key, named once
        (["scheduler=cosine", "scheduler.final_lr=${nope}"], "scheduler.final_lr: Interpolation key 'nope' not found"),
    ],
)
def test_a_choice_key_refuses_what_it_refused_as_a_string_key(capsys, overrides, message):
    """A sweep's bad job, what no string key takes, an interpolation, a value schedule's node, the checks that read a
    choice's value, and torch's own class (untyped): each the line a string key gave."""
    assert bad_input(capsys, *overrides) == f"schedlab: error: {message}"


@pytest.mark.slow
def test_run_py_refuses_a_bad_choice_in_the_librarys_words():
    for args, message in [
        (["scheduler.interval=foo"], "scheduler.interval must be one of 'epoch', 'step', got 'foo'"),
        (["scheduler=plateau", "scheduler.mode=foo"], "scheduler.mode must be one of 'min', 'max', got 'foo'"),
    ]:
        result = run_cli(args, timeout=120)
        assert result.returncode == 2 and result.stderr == f"schedlab: error: {message}\n", result.stderr


def python_refusals(name: str, key: str, value) -> dict:
    """Each way the library takes a schedule from Python, given `value` for scheduler.<key>: what it raises."""
    cfg = {"name": name, key: value}
    calls = {
        "parse": lambda: parse(cfg),
        "validate_schedule": lambda: validate_schedule(cfg, EPOCHS),
        "build_schedule": lambda: build_schedule(cfg, sgd(BASE), SPE, EPOCHS),
        "torch_scheduler": lambda: torch_scheduler(sgd(BASE), name, epochs=EPOCHS, steps_per_epoch=SPE, **{key: value}),
        "the schema's class": lambda: type(SCHEMAS[name])(name=name, **{key: value}),
    }
    out = {}
    for what, call in calls.items():
        with pytest.raises(ConfigError) as error:
            call()
        out[what] = str(error.value)
    return out


@pytest.mark.parametrize(("name", "key", "value", "message"), CHOICE_REFUSALS, ids=CHOICE_IDS)
def test_a_bad_choice_from_python_is_refused_in_the_same_words(name, key, value, message):
    refusals = python_refusals(name, key, PYTHON_VALUES.get(value, value))
    assert refusals == dict.fromkeys(refusals, message)
    if key == "shape":  # a value schedule's: its keys named under scheduler.weight_decay
        with pytest.raises(ConfigError) as error:
            validate_schedule({"name": "cosine", "weight_decay": {"name": name, key: value}}, EPOCHS)
        assert str(error.value) == message.replace("scheduler.", "scheduler.weight_decay.")


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        ({"name": "cosine", "interval": None}, "scheduler.interval: Incompatible value 'None' for field of type 'str'"),
        ({"name": "wsd", "shape": ["cosine"]}, "scheduler.shape: Cannot convert 'ListConfig' to string: '['cosine']'"),
        (
            {"name": "plateau", "monitor": "val_acc"},
            "scheduler.mode must be 'max' for scheduler.monitor='val_acc', got 'min'",
        ),
        (
            {"name": "cosine", "batch_size": {"name": "cosine", "interval": "foo"}},
            "scheduler.batch_size.interval='foo' is not allowed: a batch size changes between epochs: use epoch",
        ),
    ],
)
def test_what_no_string_key_takes_and_the_checks_that_read_a_choice_keep_their_lines(cfg, message):
    with pytest.raises(ConfigError) as error:
        validate_schedule(cfg, EPOCHS)
    assert str(error.value) == message


@pytest.mark.parametrize(("name", "key", "value"), GOOD_CHOICES, ids=[f"{n}.{k}={v}" for n, k, v in GOOD_CHOICES])
def test_a_good_choice_is_its_member_and_round_trips_to_a_plain_string(name, key, value):
    import json

    import yaml

    from schedulers.choice import Choice
    from trainer.config import resolved, typed

    cfg = compose_config([f"scheduler={name}", f"scheduler.{key}={value}"])
    kind = type(getattr(SCHEMAS[name], key))
    assert issubclass(kind, Choice)
    for got in (cfg.scheduler[key], getattr(parse(cfg.scheduler), key), getattr(typed(cfg).scheduler, key)):
        assert isinstance(got, kind) and got == value and hash(got) == hash(value) and {value: 1}[got] == 1
        assert (str(got), f"{got}", f"{got:>12}", repr(got)) == (value, value, f"{value:>12}", repr(value))
        assert json.dumps({got: got}) == json.dumps({value: value})
    for plain in (resolved(cfg)["scheduler"], resolved(typed(cfg))["scheduler"]):
        assert type(plain[key]) is str and plain[key] == value  # config.yaml, checkpoints, trackers, stacks
    assert yaml.safe_load(OmegaConf.to_yaml(typed(cfg)))["scheduler"][key] == value


def test_a_saved_config_of_plain_strings_loads_and_a_schedules_state_holds_no_member():
    import io

    from schedulers.choice import Monitor, PlateauMode, ThresholdMode

    saved = OmegaConf.create(  # a run's config.yaml: the choice keys as plain strings
        "scheduler:\n  name: plateau\n  interval: epoch\n  monitor: val_acc\n  mode: max\n  threshold_mode: abs\n"
    ).scheduler
    validate_schedule(saved, EPOCHS)
    c = parse(saved)
    assert (c.monitor, c.mode, c.threshold_mode) == (Monitor.val_acc, PlateauMode.max, ThresholdMode.abs)
    sched = build_schedule(saved, sgd(BASE), SPE, EPOCHS)
    for acc in (0.1, 0.2, 0.2, 0.2, 0.2, 0.2):
        sched.step_epoch(acc)
    assert sched.monitor == "val_acc" and sched.lr == BASE / 2  # mode max: four flat epochs past patience 3
    optimizer = sgd(BASE)
    loop = torch_scheduler(optimizer, "wsd", epochs=EPOCHS, steps_per_epoch=SPE, shape="cosine", interval="step")
    for _ in range(3):
        optimizer.step()
        loop.step()
    for state in (sched.state_dict(), loop.state_dict()):
        buffer = io.BytesIO()
        torch.save(state, buffer)
        buffer.seek(0)
        assert torch.load(buffer, weights_only=True) == state  # no Enum member in it: a checkpoint loads it
