"""Own schedules both ways: a function of the user's, outside the package, as
scheduler=custom through every path a built-in takes (the trainer's scheduler, task=schedule, the checks,
resume), checked against the hand-computed formula; and schedlab's schedules as a torch LRScheduler in a
plain PyTorch loop, checked against torch's own classes (the oracles in helpers.py) and against the
trainer's scheduler, state_dict and resume included."""

from __future__ import annotations

import copy
import io
import json
import math
import os
import sys
import textwrap

import pytest
import torch
from helpers import (
    BASE,
    LOSSES,
    ORACLES,
    PLATEAUS,
    SPE,
    compose_config,
    lrs,
    momenta,
    run_cli,
    run_ours,
    run_torch,
    sgd,
    trace,
)
from torch.optim import lr_scheduler as tl

from schedulers import (
    SchedlabLR,
    SchedlabPlateauLR,
    build_schedule,
    cycle_ends,
    key_epochs,
    lr_curve,
    schedule_warnings,
    torch_scheduler,
    validate_schedule,
)
from schedulers.errors import ConfigError

EPOCHS = 6
ALLOWED = "it must return a real number >= 0, the factor of the base LR (optimizer.lr)"

MY_SCHEDULES = '''
"""A user's own schedules: factors of the base LR at t epochs after warmup."""
import math


def lr(t, power=0.5):
    return (1 + t) ** -power


def piecewise(t):
    """1 until epoch 2, a half until 4.5, then a tenth."""
    return 1.0 if t < 2 else 0.5 if t < 4.5 else 0.1


class Linear:
    """From 1 to `to` over `over` epochs, then held: its arguments given once, to the constructor."""

    def __init__(self, to, over):
        self.to, self.over = to, over

    def __call__(self, t):
        return 1 + (self.to - 1) * min(t, self.over) / self.over


def negative_late(t):
    return 1 - t / 3


def nan(t):
    return math.nan


def text(t):
    return "0.5"


def boom(t):
    raise RuntimeError("no LR here")


def no_args():
    return 1.0


def spike(t):  # bad at t = 0.2 only, which the checks' probes do not visit
    return -1.0 if abs(t - 0.2) < 1e-9 else 1.0


not_callable = 3
'''


@pytest.fixture
def my_schedules(tmp_path, monkeypatch):
    """my_schedules.py in a folder of its own, outside the package, on sys.path; returns the folder."""
    folder = tmp_path / "own"
    folder.mkdir()
    (folder / "my_schedules.py").write_text(textwrap.dedent(MY_SCHEDULES))
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.delitem(sys.modules, "my_schedules", raising=False)  # another test's copy
    yield folder
    sys.modules.pop("my_schedules", None)


def custom(fn, **keys):
    return {"name": "custom", "fn": f"my_schedules.{fn}", **keys}


def per_step(interval):
    """The position of every optimizer step of an EPOCHS x SPE run, as the trainer computes it."""
    return [k / SPE if interval == "step" else float(k // SPE) for k in range(EPOCHS * SPE)]


# --- scheduler=custom: a function of the user's is the schedule ------------------------------------------


@pytest.mark.parametrize("interval", ["epoch", "step"])
def test_values_are_the_formula_per_step_and_per_epoch(my_schedules, interval):
    _, ours = lr_curve(custom("lr", interval=interval, kwargs={"power": 1.0}), BASE, EPOCHS, SPE)
    assert ours == pytest.approx([BASE / (1 + t) for t in per_step(interval)], rel=1e-12)
    assert ours[SPE * 3] == pytest.approx(0.125)  # epoch 3: 0.5 / 4 in both intervals
    linear = custom("Linear", interval=interval, kwargs={"to": 0.2, "over": 4})  # a class, instantiated once
    _, ours = lr_curve(linear, BASE, EPOCHS, SPE)
    assert ours == pytest.approx([BASE * (1 - 0.8 * min(t, 4) / 4) for t in per_step(interval)], rel=1e-12)


def test_the_staircase_of_a_piecewise_function(my_schedules):
    _, ours = lr_curve(custom("piecewise"), BASE, EPOCHS, SPE)
    assert ours == [lr for lr in [0.5, 0.5, 0.25, 0.25, 0.25, 0.05] for _ in range(SPE)]
    _, smooth = lr_curve(custom("piecewise", interval="step"), BASE, EPOCHS, SPE)
    assert smooth == [0.5] * 10 + [0.25] * 13 + [0.05] * 7  # t = k / 5: 2 at step 10, past 4.5 from step 23 (4.6)


def test_warmup_composes_as_with_the_built_ins(my_schedules):
    # per step: 2 warmup epochs from 0.1 to the base LR, then the function from t = 0
    warm = {"warmup": {"epochs": 2, "start_lr": 0.1}}
    _, ours = lr_curve(custom("lr", interval="step", **warm), BASE, EPOCHS, SPE)
    expected = [0.1 + 0.4 * t / 2 if t < 2 else BASE * (1 + t - 2) ** -0.5 for t in per_step("step")]
    assert ours == pytest.approx(expected, rel=1e-12)
    assert ours[2 * SPE] == BASE and ours[5 * SPE] == pytest.approx(0.25)  # 0.5 * (1 + 3)^(-1/2)
    # per epoch with a fractional warmup: 0.1, 0.1 + 0.4 / 1.5, then the function at 0.5, 1.5, 2.5, 3.5
    frac = {"warmup": {"epochs": 1.5, "start_lr": 0.1}}
    _, ours = lr_curve(custom("piecewise", **frac), BASE, EPOCHS, SPE)
    assert ours[::SPE] == pytest.approx([0.1, 0.1 + 0.4 / 1.5, 0.5, 0.5, 0.25, 0.25], rel=1e-12)
    # the same as any built-in: custom with rsqrt is sqrt, warmup and all
    for interval in ("epoch", "step"):
        keys = {"interval": interval, "warmup": {"epochs": 1.5, "start_lr": 0.1}}
        assert lr_curve(custom("lr", **keys), BASE, EPOCHS, SPE) == lr_curve(
            {"name": "sqrt", **keys}, BASE, EPOCHS, SPE
        )


def test_every_param_group_is_scaled_from_its_own_base(my_schedules):
    ratios = (1.0, 0.1, 3.0)
    seen = run_ours(
        custom("Linear", kwargs={"to": 0.2, "over": 4}, warmup={"epochs": 1, "start_lr": 0.05}),
        "step",
        EPOCHS,
        optimizer=sgd(*(BASE * r for r in ratios)),
    )
    for group, ratio in enumerate(ratios):
        assert lrs(seen, group) == pytest.approx([lr * ratio for lr in lrs(seen)], rel=1e-12)
    assert lrs(seen, 2)[0] == pytest.approx(0.15)  # the warmup's start_lr, in group 0's units, scaled too


@pytest.mark.parametrize("interval", ["epoch", "step"])
def test_resume_mid_run_continues_identically(my_schedules, interval):
    cfg = custom("lr", interval=interval, warmup={"epochs": 1, "start_lr": 0.0})
    whole = run_ours(cfg, interval, EPOCHS)
    optimizer = sgd()
    scheduler = build_schedule(cfg, optimizer, SPE, EPOCHS)
    first = run_ours(cfg, interval, 3, optimizer, scheduler)
    saved = copy.deepcopy((optimizer.state_dict(), scheduler.state_dict()))
    assert set(saved[1]) == {"steps", "epochs", "plateau"}  # the state is the step count
    resumed_optimizer = sgd()
    resumed = build_schedule(cfg, resumed_optimizer, SPE, EPOCHS)
    resumed_optimizer.load_state_dict(saved[0])
    resumed.load_state_dict(saved[1])
    assert first + run_ours(cfg, interval, EPOCHS, resumed_optimizer, resumed, start=3) == whole


def test_no_cycles_no_warnings_and_the_key_epochs_of_any_schedule(my_schedules):
    cfg = custom("lr", warmup={"epochs": 2})
    assert cycle_ends(cfg, EPOCHS) is None and schedule_warnings(cfg, EPOCHS, BASE) == []
    assert key_epochs(cfg, 12) == [0, 2, 3, 6, 9, 11]


def test_composed_from_the_command_line_with_kwargs_that_follow_the_run(my_schedules):
    from trainer.config import validate

    overrides = [
        "scheduler=custom",
        "scheduler.fn=my_schedules.Linear",
        "+scheduler.kwargs.to=0.2",
        "+scheduler.kwargs.over=${trainer.epochs}",
        "trainer.epochs=8",
        "optimizer.lr=0.5",
    ]
    cfg = compose_config(overrides)
    validate(cfg)
    _, ours = lr_curve(cfg.scheduler, 0.5, 8, 1)
    assert ours == pytest.approx([0.5 * (1 - 0.8 * e / 8) for e in range(8)], rel=1e-12)
    assert cfg.scheduler.kwargs.over == 8  # the interpolation, as written


BAD = [
    ({"fn": "mypkg.nope"}, "scheduler.fn=mypkg.nope cannot be imported: No module named 'mypkg'"),
    (
        {"fn": "my_schedules.nope"},
        "scheduler.fn=my_schedules.nope cannot be imported: module 'my_schedules' has no attribute 'nope'",
    ),
    ({"fn": "my_schedules.not_callable"}, "scheduler.fn=my_schedules.not_callable is not callable (it is of type int)"),
    (
        {"fn": "my_schedules..lr"},
        "scheduler.fn=my_schedules..lr must be the import path of a callable, e.g. mypkg.schedules.lr",
    ),
    ({"fn": "my_schedules.boom"}, "scheduler.fn=my_schedules.boom raised RuntimeError at t=0: no LR here"),
    ({"fn": "my_schedules.nan"}, f"scheduler.fn=my_schedules.nan returned nan at t=0: {ALLOWED}"),
    ({"fn": "my_schedules.text"}, f"scheduler.fn=my_schedules.text returned '0.5' (str) at t=0: {ALLOWED}"),
    # probed over the run before any work, not only at t = 0: 1 - t/3 is negative from epoch 4
    (
        {"fn": "my_schedules.negative_late"},
        f"scheduler.fn=my_schedules.negative_late returned -0.33333333333333326 at t=4: {ALLOWED}",
    ),
    ({"fn": "my_schedules.no_args"}, "scheduler.fn=my_schedules.no_args cannot take t: too many positional arguments"),
    (
        {"fn": "my_schedules.lr", "kwargs": {"powr": 1}},
        "scheduler.fn=my_schedules.lr cannot take t and scheduler.kwargs: got an unexpected keyword argument 'powr'",
    ),
    (
        {"fn": "my_schedules.Linear"},
        "scheduler.fn=my_schedules.Linear cannot take scheduler.kwargs: missing a required argument: 'to'",
    ),
    (
        {"fn": "schedulers.custom.rsqrt", "kwargs": {"timescale": -1}},
        "scheduler.fn=schedulers.custom.rsqrt raised ZeroDivisionError at t=1: 0.0 cannot be raised to a negative power",
    ),
]


@pytest.mark.parametrize(("keys", "message"), BAD, ids=[m.split(" ", 1)[0] for _, m in BAD])
def test_bad_function_fails_at_the_check_with_one_line_naming_scheduler_fn(my_schedules, keys, message):
    with pytest.raises(ConfigError) as error:
        validate_schedule({"name": "custom", **keys}, EPOCHS, base_lr=BASE)
    assert str(error.value) == message


def test_a_bad_value_the_probes_miss_stops_the_run_at_that_step_in_one_line(my_schedules):
    cfg = custom("spike", interval="step")
    validate_schedule(cfg, EPOCHS)  # the probes never land on t = 0.2, the run's second step
    with pytest.raises(ConfigError) as error:
        lr_curve(cfg, BASE, EPOCHS, SPE)
    assert str(error.value) == f"scheduler.fn=my_schedules.spike returned -1.0 at t=0.2: {ALLOWED}"


def test_the_run_refuses_a_missing_module_before_any_work(my_schedules, capsys):
    from trainer.cli import precheck

    with pytest.raises(SystemExit) as e:
        precheck(["scheduler=custom", "scheduler.fn=mypkg.nope"])
    assert e.value.code == 2
    assert capsys.readouterr().err.strip() == (
        "schedlab: error: scheduler.fn=mypkg.nope cannot be imported: No module named 'mypkg'"
    )


@pytest.mark.slow
def test_task_schedule_draws_it_from_the_command_line(my_schedules, tmp_path):
    run = tmp_path / "run"
    piecewise = "scheduler=custom scheduler.fn=my_schedules.piecewise scheduler.interval=step"
    result = run_cli(
        [
            "task=schedule",
            "scheduler=custom",
            "scheduler.fn=my_schedules.lr",
            "trainer.epochs=6",
            "schedule_plot.steps_per_epoch=4",
            f"schedule_plot.compare=[sqrt,'{piecewise}']",
            "dataset.root=/nonexistent",
            f"hydra.run.dir={run}",
        ],
        env={"PYTHONPATH": os.pathsep.join([str(my_schedules), os.environ.get("PYTHONPATH", "")])},
    )
    assert result.returncode == 0, result.stderr
    curves = json.loads((run / "schedule.json").read_text())
    assert list(curves) == ["custom", "sqrt", piecewise]
    assert curves["custom"]["t"] == [k / 4 for k in range(24)]
    assert curves["custom"]["lr"] == pytest.approx([0.3 * (1 + k // 4) ** -0.5 for k in range(24)], rel=1e-12)
    assert curves["custom"]["lr"] == curves["sqrt"]["lr"]  # the built-in with the same formula
    assert curves[piecewise]["lr"] == [0.3] * 8 + [0.15] * 10 + [pytest.approx(0.03)] * 6
    assert (run / "schedule.png").exists() and "custom" in result.stdout


# --- the reverse: schedlab's schedules as a torch LRScheduler in a plain loop --------------------------------


def run_plain(cfg, interval, epochs=12, optimizer=None, scheduler=None, start=0):
    """A plain PyTorch loop: sched.step() after every optimizer.step(); the LR and momentum of every step."""
    optimizer = optimizer or sgd()
    scheduler = scheduler or torch_scheduler(optimizer, cfg, epochs=12, steps_per_epoch=SPE, interval=interval)

    def on_step():
        scheduler.step()
        assert scheduler.get_last_lr() == [g["lr"] for g in optimizer.param_groups]

    return trace(optimizer, on_step, lambda epoch: None, epochs, start)


@pytest.mark.parametrize("interval", ["epoch", "step"])
@pytest.mark.parametrize("case", ORACLES)
def test_in_a_plain_loop_it_equals_torch_and_the_trainer(case, interval):
    cfg, make = ORACLES[case]
    plain, theirs, trainer = run_plain(cfg, interval), run_torch(make, interval), run_ours(cfg, interval)
    assert lrs(plain) == pytest.approx(lrs(theirs), rel=1e-9)
    assert momenta(plain) == pytest.approx(momenta(theirs), rel=1e-9)
    assert plain == trainer  # every group's LR and momentum, bit for bit


RESUMED = {
    "cosine_warmup": {"name": "cosine_warmup", "final_lr": 0.01, "warmup": {"epochs": 2, "start_lr": 0.1}},
    "onecycle": {"name": "onecycle"},
    "cyclic": {"name": "cyclic", "max_lr": 2.0, "step_size_up": 1.5},
    "cosine_restarts": ORACLES["cosine_restarts"][0],
    "multistep_warmup": {"name": "multistep", "milestones": [2, 5], "warmup": {"epochs": 1.5, "start_lr": 0.0}},
    "custom": {"name": "custom", "kwargs": {"timescale": 2.0}, "warmup": {"epochs": 1, "start_lr": 0.0}},
    "rsqrt": {"name": "rsqrt", "warmup": {"epochs": 1.5, "start_lr": 0.0}},  # horizon-free
    "power_decay": {"name": "power", "a": 2.0, "b": 0.5, "decay_fraction": 0.25},  # its decay phase ends the run
}


@pytest.mark.parametrize("optimizer_first", [True, False], ids=["optimizer_first", "scheduler_first"])
@pytest.mark.parametrize("interval", ["epoch", "step"])
@pytest.mark.parametrize("case", RESUMED)
def test_state_dict_round_trip_mid_run_gives_the_same_remaining_lrs(case, interval, optimizer_first):
    cfg = RESUMED[case]
    whole = run_plain(cfg, interval)
    optimizer = sgd()
    scheduler = torch_scheduler(optimizer, cfg, epochs=12, steps_per_epoch=SPE, interval=interval)
    first = run_plain(cfg, interval, 5, optimizer, scheduler)
    buffer = io.BytesIO()
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, buffer)  # no callable
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    assert saved["scheduler"]["last_epoch"] == 5 * SPE

    resumed_optimizer = sgd()
    if optimizer_first:  # then a fresh scheduler on it: it starts from the base LR, not the saved one
        resumed_optimizer.load_state_dict(saved["optimizer"])
        resumed = torch_scheduler(resumed_optimizer, cfg, epochs=12, steps_per_epoch=SPE, interval=interval)
    else:  # torch's advice: the scheduler first, then both states
        resumed = torch_scheduler(resumed_optimizer, cfg, epochs=12, steps_per_epoch=SPE, interval=interval)
        resumed_optimizer.load_state_dict(saved["optimizer"])
    resumed.load_state_dict(saved["scheduler"])
    assert resumed.get_last_lr() == scheduler.get_last_lr()
    assert first + run_plain(cfg, interval, 12, resumed_optimizer, resumed, start=5) == whole


def test_param_groups_keep_their_ratios_and_get_last_lr_lists_them():
    optimizer = sgd(0.5, 0.05, 1.5)
    scheduler = torch_scheduler(optimizer, "cosine", epochs=12, steps_per_epoch=SPE, interval="step", final_lr=0.0)
    assert scheduler.get_last_lr() == [0.5, 0.05, 1.5]
    seen = run_plain(None, "step", optimizer=optimizer, scheduler=scheduler)
    theirs = sgd(0.5, 0.05, 1.5)
    cosine = tl.CosineAnnealingLR(theirs, T_max=12 * SPE)
    expected = trace(theirs, cosine.step, lambda epoch: None, 12)
    for group in range(3):
        assert lrs(seen, group) == pytest.approx(lrs(expected, group), rel=1e-9, abs=1e-15)


def test_built_from_a_composed_config_or_a_python_call():
    node = compose_config(["scheduler=onecycle", "scheduler.interval=step", "trainer.epochs=12"]).scheduler
    optimizer = sgd()
    scheduler = torch_scheduler(optimizer, node, epochs=12, steps_per_epoch=SPE)
    assert isinstance(scheduler, SchedlabLR) and isinstance(scheduler, tl.LRScheduler)
    assert lrs(run_plain(None, "step", optimizer=optimizer, scheduler=scheduler)) == lr_curve(node, BASE, 12, SPE)[1]
    # as a user would write it: cosine over 30 epochs of 235 steps after 5 warmup epochs, per epoch (the default)
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.3)
    scheduler = torch_scheduler(optimizer, "cosine", epochs=30, steps_per_epoch=235, warmup={"epochs": 5})
    seen = []
    for _ in range(30 * 235):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert seen == lr_curve({"name": "cosine", "warmup": {"epochs": 5}}, 0.3, 30, 235)[1]
    assert seen[0] == 0.0 and seen[5 * 235] == 0.3 and seen[5 * 235 - 1] == pytest.approx(0.24)
    assert seen[-1] == pytest.approx(0.3 * (1 + math.cos(math.pi * 24 / 25)) / 2)
    # a _target_ node is torch's own class
    torch_node = compose_config(["scheduler=torch"]).scheduler
    assert type(torch_scheduler(sgd(), torch_node, epochs=30, steps_per_epoch=SPE)) is tl.StepLR


def test_a_python_callable_and_a_sequential_chain(my_schedules):
    """Your own factor as a Python callable (no import path), warmup composed; and SchedlabLR inside torch's
    SequentialLR, which restarts it with step(0): a pure function of the position jumps there exactly."""
    optimizer = sgd()
    scheduler = SchedlabLR(
        optimizer,
        lambda t: 1 / (1 + t),
        epochs=EPOCHS,
        steps_per_epoch=SPE,
        interval="step",
        warmup={"epochs": 1, "start_lr": 0.1},
    )
    seen = trace(optimizer, scheduler.step, lambda epoch: None, EPOCHS)
    expected = [0.1 + 0.4 * t if t < 1 else BASE / (1 + t - 1) for t in per_step("step")]
    assert lrs(seen) == pytest.approx(expected, rel=1e-12)
    assert scheduler.state_dict().keys() == {"last_epoch", "_step_count", "base_lrs", "_last_lr"}

    optimizer = sgd()
    warmup = tl.LinearLR(optimizer, start_factor=0.2, total_iters=SPE)
    main = SchedlabLR(optimizer, "custom", fn="my_schedules.lr", epochs=EPOCHS, steps_per_epoch=SPE, interval="step")
    chain = tl.SequentialLR(optimizer, [warmup, main], milestones=[SPE])
    seen = trace(optimizer, chain.step, lambda epoch: None, EPOCHS)
    expected = [BASE * (0.2 + 0.8 * k / SPE) for k in range(SPE)] + [BASE * (1 + k / SPE) ** -0.5 for k in range(25)]
    assert lrs(seen) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("case", PLATEAUS)
def test_plateau_steps_on_the_metric_once_per_epoch_as_torch(case):
    params = {"mode": "min", "threshold_mode": "rel", "cooldown": 0, "min_lr": 0.0, **PLATEAUS[case]}
    sign = -1 if params["mode"] == "max" else 1
    losses = [sign * loss for loss in LOSSES]
    monitor = "val_acc" if params["mode"] == "max" else "val_loss"
    optimizer = sgd()
    scheduler = torch_scheduler(
        optimizer, "plateau", epochs=len(LOSSES), steps_per_epoch=SPE, monitor=monitor, **params
    )
    assert isinstance(scheduler, SchedlabPlateauLR)
    ours = trace(optimizer, lambda: None, lambda epoch: scheduler.step(losses[epoch]), len(LOSSES))
    theirs = run_torch(lambda o, u: tl.ReduceLROnPlateau(o, **params), "epoch", len(LOSSES), losses)
    assert lrs(ours) == pytest.approx(lrs(theirs), rel=1e-9)
    assert len(set(lrs(ours))) >= 3


def test_plateau_with_warmup_equals_the_trainers_and_resumes():
    cfg = {"name": "plateau", "patience": 1, "warmup": {"epochs": 2, "start_lr": 0.1}}
    trainer = run_ours(cfg, "epoch", len(LOSSES))

    def plain(optimizer, scheduler, epochs, start=0):
        return trace(optimizer, lambda: None, lambda epoch: scheduler.step(LOSSES[epoch]), epochs, start)

    optimizer = sgd()
    scheduler = torch_scheduler(optimizer, cfg, epochs=len(LOSSES), steps_per_epoch=SPE)
    first = plain(optimizer, scheduler, 7)
    saved = copy.deepcopy((optimizer.state_dict(), scheduler.state_dict()))
    resumed_optimizer = sgd()
    resumed = torch_scheduler(resumed_optimizer, cfg, epochs=len(LOSSES), steps_per_epoch=SPE)
    resumed_optimizer.load_state_dict(saved[0])
    resumed.load_state_dict(saved[1])
    assert first + plain(resumed_optimizer, resumed, len(LOSSES), start=7) == trainer
    assert len(set(lrs(trainer)[2 * SPE :])) >= 3  # it does reduce, after warmup


REFUSED = [
    (
        lambda o: torch_scheduler(o, "plateau", epochs=12, steps_per_epoch=SPE, interval="step"),
        ConfigError,
        "scheduler.interval=step: a plateau schedule in a plain loop steps once per epoch, sched.step(val_loss), and its "
        "warmup with it: use interval=epoch",
    ),
    (
        lambda o: SchedlabLR(o, "plateau", epochs=12, steps_per_epoch=SPE),
        ConfigError,
        "scheduler plateau is a SchedlabPlateauLR (schedulers.torch_scheduler picks the class from the schedule)",
    ),
    (
        lambda o: torch_scheduler(o, "plateau", epochs=12, steps_per_epoch=SPE).step(),
        TypeError,
        "scheduler plateau reduces the LR on val_loss: call sched.step(metric) once per epoch",
    ),
    (
        lambda o: torch_scheduler(o, "cosine", epochs=12, steps_per_epoch=SPE).step(0.93),
        TypeError,
        "SchedlabLR.step() takes no metric: scheduler cosine is a function of the position, call sched.step()",
    ),
    (
        lambda o: torch_scheduler(o, "cosine", epochs=12, steps_per_epoch=0),
        ValueError,
        "steps_per_epoch must be an integer >= 1, got 0",
    ),
    (
        lambda o: torch_scheduler(o, "cosine", epochs=12, steps_per_epoch=SPE, final_lr=1.0),
        ConfigError,
        "scheduler.final_lr must be <= the base LR (the optimizer's lr, 0.5), got 1.0",
    ),
    (
        lambda o: torch_scheduler(o, "custom", epochs=12, steps_per_epoch=SPE, fn="mypkg.nope"),
        ConfigError,
        "scheduler.fn=mypkg.nope cannot be imported: No module named 'mypkg'",
    ),
]


@pytest.mark.parametrize(("build", "error", "message"), REFUSED, ids=[m.split(" ", 1)[0] for _, _, m in REFUSED])
def test_misuse_is_refused_in_one_line(build, error, message):
    with pytest.raises(error) as e:
        build(sgd())
    assert str(e.value) == message
