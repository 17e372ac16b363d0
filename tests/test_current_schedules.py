"""The schedules of 2024-26 papers: linear_to_zero and cosine_to_zero (Bergsma et al. 2025),
rsqrt (horizon-free 1/sqrt(t): Zhai et al. 2022, Meterez et al. 2026) and power (Shen et al. 2024), each equal
to its formula at hand-computed points, per step and per epoch, with a warmup in front and with the optional
decay at the end; horizon-free where they say so; bad keys refused in one line naming the key. The contract
every schedule keeps (resume, param groups, staircase, no negative LR) and the presets' torch oracles are in
test_schedulers.py, which runs them all through it."""

from __future__ import annotations

import json
import math

import pytest
from helpers import FAST, bad_input, compose_config, run_cli, sgd

from schedulers import (
    build_schedule,
    curves,
    cycle_ends,
    key_epochs,
    lr_curve,
    schedule_warnings,
    torch_scheduler,
    validate_schedule,
)
from schedulers import config as schedule_config
from schedulers.errors import ConfigError

BASE = 0.5
SPE = 5  # steps per epoch: positions are multiples of 0.2 with interval=step


def curve(cfg: dict, epochs: int, interval: str = "step", base: float = BASE) -> list[float]:
    """The LR of every optimizer step of a run of `epochs` epochs."""
    return lr_curve({**cfg, "interval": interval}, base, epochs, SPE)[1]


W2 = {"epochs": 2, "start_lr": 0.1}  # a warmup from 0.1 to the base LR 0.5 over 2 epochs: 0.3 at t = 1
L2Z, C2Z = {"name": "linear_to_zero"}, {"name": "cosine_to_zero"}
RSQRT_DECAY = {"name": "rsqrt", "timescale": 1.0, "decay_fraction": 0.5, "shape": "1-sqrt"}  # 16 epochs: from 8
POWER = {"name": "power", "a": 2.0, "b": 0.5}  # 0.5 * min(1, 2 / sqrt(t)): the base LR up to t = 4
POWER_DECAY = {**POWER, "decay_fraction": 0.25, "shape": "linear"}  # 16 epochs: from 12

# (config, the run's epochs, position t in epochs, the LR there by hand)
POINTS = [
    # linear_to_zero: 0.5 * (1 - t / 12)
    (L2Z, 12, 0, 0.5),
    (L2Z, 12, 3, 0.375),
    (L2Z, 12, 7.4, 0.5 * 4.6 / 12),
    (L2Z, 12, 11, 0.5 / 12),  # the last epoch, per epoch
    (L2Z, 12, 11.8, 0.5 * 0.2 / 12),  # the last step
    # with the warmup: the decay spans the 10 epochs after it, from 0.5 at t = 2 to 0 at t = 12
    ({**L2Z, "warmup": W2}, 12, 1, 0.3),
    ({**L2Z, "warmup": W2}, 12, 2, 0.5),
    ({**L2Z, "warmup": W2}, 12, 7, 0.25),
    ({**L2Z, "warmup": W2}, 12, 11.8, 0.01),
    # cosine_to_zero: 0.25 * (1 + cos(pi t / 12))
    (C2Z, 12, 3, 0.25 * (1 + math.sqrt(0.5))),
    (C2Z, 12, 4, 0.375),
    (C2Z, 12, 6, 0.25),
    (C2Z, 12, 8, 0.125),
    (C2Z, 12, 11.8, 0.25 * (1 - math.cos(math.pi * 0.2 / 12))),
    ({**C2Z, "warmup": W2}, 12, 1, 0.3),
    ({**C2Z, "warmup": W2}, 12, 4.4, 0.25 * (1 + math.cos(math.pi * 0.24))),  # 2.4 epochs into the 10-epoch cosine
    ({**C2Z, "warmup": W2}, 12, 7, 0.25),
    # rsqrt at its default timescale 3: 0.5 / sqrt(1 + t / 3)
    ({"name": "rsqrt"}, 30, 0, 0.5),
    ({"name": "rsqrt"}, 30, 0.6, 0.5 / math.sqrt(1.2)),
    ({"name": "rsqrt"}, 30, 3, 0.5 / math.sqrt(2)),
    ({"name": "rsqrt"}, 30, 9, 0.25),
    ({"name": "rsqrt"}, 30, 24, 0.5 / 3),
    ({"name": "rsqrt", "timescale": 0.5}, 6, 4, 0.5 / 3),
    ({"name": "rsqrt", "timescale": 1.0}, 6, 3, 0.25),  # sqrt's (t + 1)^(-1/2)
    # with a warmup of 1.6 epochs from 0, the rsqrt starts at its end
    ({"name": "rsqrt", "warmup": {"epochs": 1.6}}, 12, 0.8, 0.25),
    ({"name": "rsqrt", "warmup": {"epochs": 1.6}}, 12, 1.6, 0.5),
    ({"name": "rsqrt", "warmup": {"epochs": 1.6}}, 12, 10.6, 0.25),
    # rsqrt with a decay over the last half of 16 epochs: 0.5 / sqrt(1 + t) to t = 8 (1/6 there), then
    # 1/6 * (1 - sqrt((t - 8) / 8)) to 0 at t = 16
    (RSQRT_DECAY, 16, 7, 0.5 / math.sqrt(8)),
    (RSQRT_DECAY, 16, 8, 1 / 6),
    (RSQRT_DECAY, 16, 10, 1 / 12),
    (RSQRT_DECAY, 16, 12, (1 - math.sqrt(0.5)) / 6),
    (RSQRT_DECAY, 16, 15.8, (1 - math.sqrt(7.8 / 8)) / 6),
    ({**RSQRT_DECAY, "shape": "cosine", "min_lr": 0.05}, 16, 12, 0.05 + (1 / 6 - 0.05) / 2),
    ({**RSQRT_DECAY, "shape": "linear", "min_lr": 0.05}, 16, 10, 0.05 + (1 / 6 - 0.05) * 0.75),
    # power at its defaults: 0.5 * min(1, t^(-0.51)), the base LR for one epoch
    ({"name": "power"}, 30, 0.4, 0.5),
    ({"name": "power"}, 30, 1, 0.5),
    ({"name": "power"}, 30, 2, 0.5 * 2**-0.51),
    ({"name": "power"}, 30, 29, 0.5 * 29**-0.51),
    # a = 2, b = 0.5: 0.5 * min(1, 2 / sqrt(t))
    (POWER, 30, 1, 0.5),
    (POWER, 30, 4, 0.5),
    (POWER, 30, 6.4, 0.5 * 2 / math.sqrt(6.4)),
    (POWER, 30, 9, 1 / 3),
    (POWER, 30, 16, 0.25),
    ({**POWER, "warmup": W2}, 30, 1, 0.3),
    ({**POWER, "warmup": W2}, 30, 6, 0.5),
    ({**POWER, "warmup": W2}, 30, 11, 1 / 3),
    ({**POWER, "warmup": W2}, 30, 18, 0.25),
    # with its decay phase over the last quarter of 16 epochs: from 0.5 * 2 / sqrt(12) at t = 12, linearly to 0
    (POWER_DECAY, 16, 11.8, 1 / math.sqrt(11.8)),
    (POWER_DECAY, 16, 12, 1 / math.sqrt(12)),
    (POWER_DECAY, 16, 14, 0.5 / math.sqrt(12)),
    (POWER_DECAY, 16, 15, 0.25 / math.sqrt(12)),
    # and a warmup of 2 in front: the decay is the last quarter of the 14 epochs after it, from t = 12.5
    ({**POWER_DECAY, "warmup": W2}, 16, 12.4, 1 / math.sqrt(10.4)),
    ({**POWER_DECAY, "warmup": W2}, 16, 14.2, 1 / math.sqrt(10.5) * (1 - 1.7 / 3.5)),
]


@pytest.mark.parametrize(("cfg", "epochs", "t", "expected"), POINTS)
def test_each_equals_its_formula_per_step_and_per_epoch(cfg, epochs, t, expected):
    assert abs(t * SPE - round(t * SPE)) < 1e-9, "a position the run visits per step"
    assert curve(cfg, epochs)[round(t * SPE)] == pytest.approx(expected, rel=1e-12)
    if t == int(t):  # per epoch: the LR of all of epoch t is the formula at t
        epoch = curve(cfg, epochs, "epoch")[int(t) * SPE : (int(t) + 1) * SPE]
        assert epoch == pytest.approx([expected] * SPE, rel=1e-12)


# the formulas over whole runs, written out here, t counted from the end of warmup and T the span after it
SHAPES = {
    "linear": lambda p: 1 - p,
    "cosine": lambda p: (1 + math.cos(math.pi * p)) / 2,
    "1-sqrt": lambda p: 1 - math.sqrt(p),
}
FORMULAS = {
    "linear_to_zero": ({}, lambda t, T: BASE * (1 - t / T)),
    "cosine_to_zero": ({}, lambda t, T: BASE * (1 + math.cos(math.pi * t / T)) / 2),
    "rsqrt": ({}, lambda t, T: BASE * (1 + t / 3) ** -0.5),
    "rsqrt_timescale": ({"name": "rsqrt", "timescale": 0.7}, lambda t, T: BASE / math.sqrt(1 + t / 0.7)),
    "power": ({}, lambda t, T: BASE * min(1, t**-0.51) if t > 0 else BASE),
    "power_keys": ({"name": "power", "a": 3.0, "b": 0.8}, lambda t, T: BASE * min(1, 3 * t**-0.8) if t > 0 else BASE),
}


def by_hand(formula, t: float, T: float, warmup: float, start_lr: float, decay: dict | None = None) -> float:
    """The LR at position t of a run: the warmup's ramp, then `formula` from its end, then the decay if any."""
    if t < warmup:
        return start_lr + (BASE - start_lr) * t / warmup
    t -= warmup
    if decay:
        start = T * (1 - decay["decay_fraction"])
        if t > start:
            top, floor = formula(start, T), decay.get("min_lr", 0.0)
            return floor + (top - floor) * SHAPES[decay["shape"]](min((t - start) / (T - start), 1.0))
    return formula(t, T)


@pytest.mark.parametrize("interval", ["step", "epoch"])
@pytest.mark.parametrize("warmup", [0.0, 1.5], ids=["no_warmup", "warmup_1.5"])
@pytest.mark.parametrize("case", FORMULAS)
def test_whole_runs_equal_the_formula_with_a_warmup_in_front(case, warmup, interval):
    keys, formula = FORMULAS[case]
    cfg = {"name": case, **keys, "warmup": {"epochs": warmup, "start_lr": 0.05}}
    epochs = 9
    positions = [k / SPE if interval == "step" else float(k // SPE) for k in range(epochs * SPE)]
    expected = [by_hand(formula, t, epochs - warmup, warmup, 0.05) for t in positions]
    assert curve(cfg, epochs, interval) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("shape", ["linear", "cosine", "1-sqrt"])
@pytest.mark.parametrize("name", ["rsqrt", "power"])
def test_the_decay_at_the_end_starts_from_the_lr_reached_there(name, shape):
    formula = FORMULAS[name][1]
    decay = {"decay_fraction": 0.5, "shape": shape, "min_lr": 0.02}  # from 4.25 after warmup: between two steps
    cfg = {"name": name, **decay, "warmup": {"epochs": 1.5, "start_lr": 0.05}}
    for interval in ("step", "epoch"):
        positions = [k / SPE if interval == "step" else float(k // SPE) for k in range(10 * SPE)]
        expected = [by_hand(formula, t, 8.5, 1.5, 0.05, decay) for t in positions]
        assert curve(cfg, 10, interval) == pytest.approx(expected, rel=1e-12), interval
    # it reaches min_lr at the horizon, the run's end, and holds it after
    end = curves.make_curve(schedule_config.parse({**cfg, "horizon": 8.0}), 10, 1 / SPE)
    assert end(8.0, BASE) == pytest.approx(0.02) and end(9.8, BASE) == pytest.approx(0.02)


# --- the presets: decay to zero over the whole run ---------------------------------------------------------


@pytest.mark.parametrize(("preset", "plain"), [("linear_to_zero", "linear"), ("cosine_to_zero", "cosine")])
def test_presets_reach_exactly_zero_at_the_runs_end_and_follow_its_length(preset, plain):
    for epochs, warmup in ((12, 0.0), (7, 2.0), (3, 0.5)):
        c = schedule_config.parse({"name": preset, "warmup": {"epochs": warmup}})
        assert curves.make_curve(c, epochs, 1 / SPE)(float(epochs), BASE) == 0.0  # exactly, at t = trainer.epochs
        assert curves.make_curve(c, epochs, 1 / SPE)(epochs + 3.0, BASE) == 0.0  # held after it
        for interval in ("step", "epoch"):  # the same curve as the plain schedule at its defaults
            cfg = {"warmup": {"epochs": warmup, "start_lr": 0.0}}
            assert curve({"name": preset, **cfg}, epochs, interval) == curve({"name": plain, **cfg}, epochs, interval)
        assert schedule_warnings({"name": preset}, epochs, BASE) == []
    # composed: the warmup is optional, the horizon follows trainer.epochs, and what is pinned is 0
    cfg = compose_config([f"scheduler={preset}", "scheduler.warmup.epochs=2", "trainer.epochs=10"]).scheduler
    assert cfg.horizon is None and cfg.get("end_factor", cfg.get("final_lr")) == 0.0
    assert key_epochs(cfg, 10) == [0, 2, 5, 7, 9]


# --- horizon-free: nothing follows the run's length --------------------------------------------------------


@pytest.mark.parametrize("interval", ["step", "epoch"])
@pytest.mark.parametrize(
    "cfg", [{"name": "rsqrt"}, {"name": "power"}, {**POWER, "warmup": W2}], ids=["rsqrt", "power", "power_warmup"]
)
def test_rsqrt_and_power_are_the_same_whatever_the_runs_length(cfg, interval):
    short, long = curve(cfg, 4, interval), curve(cfg, 40, interval)
    assert long[: len(short)] == short
    c = schedule_config.parse(cfg)
    assert c.end(4) is None and c.end(40) is None  # no horizon: key_epochs shows none, nothing to warn about
    for epochs in (3, 40, 1000):
        assert schedule_warnings({**cfg, "interval": interval}, epochs, BASE, SPE) == []
        assert cycle_ends(cfg, epochs, SPE) is None  # no cycles, no snapshots at their ends
    assert key_epochs(cfg, 40) == sorted({0, 10, 20, 30, 39, math.ceil(c.warmup.epochs)})


def test_sqrt_and_custom_share_rsqrts_one_formula():
    rsqrt_1 = curve({"name": "rsqrt", "timescale": 1.0}, 12)
    assert curve({"name": "sqrt"}, 12) == rsqrt_1 == curve({"name": "custom"}, 12)  # bit for bit
    assert curve({"name": "custom", "kwargs": {"timescale": 3.0}}, 12) == curve({"name": "rsqrt"}, 12)
    assert set(curves.DECAY_SHAPES) == set(schedule_config.DECAY_SHAPES)  # the shapes' names and formulas


WARNINGS = [
    (
        {"name": "rsqrt", "decay_fraction": 0.2, "horizon": 20},
        10,
        "scheduler.horizon=20 is past the run's 10 epochs: rsqrt reaches 0.15 of its 0.3→0 decay by the last epoch",
    ),
    (
        {"name": "power", "decay_fraction": 0.5, "horizon": 8},
        4,
        "scheduler.horizon=8 is past the run's 4 epochs: power reaches 0.171 of its 0.3→0 decay by the last epoch",
    ),
    (
        {"name": "linear_to_zero", "horizon": 20},
        10,
        "scheduler.horizon=20 is past the run's 10 epochs: linear_to_zero reaches 0.165 of its 0.3→0 decay by the "
        "last epoch",
    ),
]


@pytest.mark.parametrize(("cfg", "epochs", "message"), WARNINGS, ids=[c["name"] for c, _, _ in WARNINGS])
def test_a_decay_planned_for_a_longer_run_gets_one_warning_line(cfg, epochs, message):
    validate_schedule(cfg, epochs, base_lr=0.3)  # a warning, not an error
    assert schedule_warnings(cfg, epochs, 0.3, SPE) == [message]
    assert schedule_warnings({**cfg, "horizon": None}, epochs, 0.3, SPE) == []  # the decay at the run's end fits


# --- resume: the state is the step count -------------------------------------------------------------------


@pytest.mark.parametrize("interval", ["step", "epoch"])
def test_resume_restores_the_step_count_and_nothing_else(interval):
    cfg = {**POWER_DECAY, "interval": interval, "warmup": {"epochs": 1.5, "start_lr": 0.0}}
    whole = curve(cfg, 16, interval)
    optimizer = sgd()
    first = build_schedule(cfg, optimizer, SPE, 16)
    for _ in range(7):
        for _ in range(SPE):
            first.step_batch()
        first.step_epoch()
    assert first.state_dict() == {"steps": 7 * SPE if interval == "step" else 0, "epochs": 7, "plateau": None}
    resumed = build_schedule(cfg, sgd(), SPE, 16)
    resumed.load_state_dict(first.state_dict())
    assert resumed.lr == whole[7 * SPE]
    optimizer = sgd()  # the plain-loop LRScheduler, too: its state is last_epoch, the steps taken
    plain = torch_scheduler(optimizer, cfg, epochs=16, steps_per_epoch=SPE)
    plain.load_state_dict({**plain.state_dict(), "last_epoch": 7 * SPE})
    assert optimizer.param_groups[0]["lr"] == whole[7 * SPE]


# --- one line naming the key --------------------------------------------------------------------------------

BAD = [
    ({"name": "rsqrt", "timescale": 0}, "scheduler.timescale must be > 0, got 0"),
    ({"name": "rsqrt", "timescale": math.inf}, "scheduler.timescale must be > 0, got inf"),
    ({"name": "power", "a": 0}, "scheduler.a must be > 0, got 0"),
    ({"name": "power", "b": -0.5}, "scheduler.b must be > 0, got -0.5"),
    ({"name": "power", "decay_fraction": 1.5}, "scheduler.decay_fraction must be in [0, 1] (0: no decay), got 1.5"),
    ({"name": "rsqrt", "decay_fraction": -0.1}, "scheduler.decay_fraction must be in [0, 1] (0: no decay), got -0.1"),
    ({"name": "wsd", "decay_fraction": 0}, "scheduler.decay_fraction must be in (0, 1], got 0"),
    (
        {"name": "rsqrt", "horizon": 10},
        "scheduler.horizon must be null when scheduler.decay_fraction is 0 (rsqrt then has no end: set a "
        "decay_fraction), got 10.0",
    ),
    ({"name": "power", "shape": "exp"}, "scheduler.shape must be one of 'linear', 'cosine', '1-sqrt', got 'exp'"),
    ({"name": "power", "min_lr": 0.2}, "scheduler.min_lr must be <= the base LR (the optimizer's lr, 0.1), got 0.2"),
    (
        {"name": "power", "a": 0.5, "decay_fraction": 0.2, "min_lr": 0.05},
        "scheduler.min_lr must be <= the LR where the decay starts (0.0158 at epoch 9.6), got 0.05",
    ),
    (
        {"name": "rsqrt", "decay_fraction": 0.5, "horizon": 5, "warmup": {"epochs": 5}},
        "scheduler.horizon must be > scheduler.warmup.epochs (5.0), got 5.0",
    ),
    ({"name": "power", "warmup": {"epochs": 12}}, "scheduler.warmup.epochs must be < trainer.epochs (12)"),
    ({"name": "linear_to_zero", "warmup": {"epochs": 12}}, "scheduler.warmup.epochs must be < trainer.epochs (12)"),
    ({"name": "cosine_to_zero", "horizon": 2, "warmup": {"epochs": 3}}, "scheduler.horizon must be > scheduler.warmup"),
    ({"name": "power", "bb": 0.5}, "scheduler.bb: Key 'bb' not in 'Power'"),
    ({"name": "rsqrt", "timescale": "long"}, "scheduler.timescale: Value 'long'"),
]


@pytest.mark.parametrize(("cfg", "message"), BAD, ids=[m.split(" ")[0] for _, m in BAD])
def test_bad_keys_fail_at_the_check_with_one_line_naming_the_key(cfg, message):
    with pytest.raises(ConfigError) as error:
        validate_schedule(cfg, 12, base_lr=0.1)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_from_the_command_line_too(capsys):
    err = bad_input(capsys, *FAST, "scheduler=power", "scheduler.b=0")
    assert err == "schedlab: error: scheduler.b must be > 0, got 0.0"
    err = bad_input(capsys, *FAST, "scheduler=rsqrt", "scheduler.horizon=20")
    assert err.startswith("schedlab: error: scheduler.horizon must be null when scheduler.decay_fraction is 0")


# --- task=schedule draws them ------------------------------------------------------------------------------


@pytest.mark.slow
def test_task_schedule_draws_them_from_the_command_line(tmp_path):
    run = tmp_path / "run"
    result = run_cli(
        [
            "task=schedule",
            "scheduler=linear_to_zero",
            "scheduler.warmup.epochs=1",
            "schedule_plot.compare=[cosine_to_zero,rsqrt,power,'scheduler=power scheduler.decay_fraction=0.25']",
            "trainer.epochs=8",
            "schedule_plot.steps_per_epoch=2",
            "optimizer.lr=0.4",
            "dataset.root=/nonexistent",
            f"hydra.run.dir={run}",
        ]
    )
    assert result.returncode == 0, result.stderr
    drawn = json.loads((run / "schedule.json").read_text())
    labels = ["linear_to_zero", "cosine_to_zero", "rsqrt", "power", "scheduler=power scheduler.decay_fraction=0.25"]
    assert list(drawn) == labels
    epochs = [k // 2 for k in range(16)]  # interval=epoch: the LR of epoch e is the formula at e

    def power(e):
        return 0.4 * min(1, e**-0.51) if e > 0 else 0.4

    expected = {
        "linear_to_zero": [0.4 * e if e < 1 else 0.4 * (1 - (e - 1) / 7) for e in epochs],  # its warmup only
        "cosine_to_zero": [0.2 * (1 + math.cos(math.pi * e / 8)) for e in epochs],
        "rsqrt": [0.4 / math.sqrt(1 + e / 3) for e in epochs],
        "power": [power(e) for e in epochs],
        labels[4]: [power(e) if e <= 6 else power(6) * (1 - math.sqrt((e - 6) / 2)) for e in epochs],
    }
    for label in labels:
        assert drawn[label]["lr"] == pytest.approx(expected[label], rel=1e-12, abs=1e-15), label
    assert all(name in result.stdout for name in ("linear_to_zero", "rsqrt", "power"))
