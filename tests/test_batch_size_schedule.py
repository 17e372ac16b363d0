"""scheduler.batch_size: the batch size scheduled with the LR's contract (batch-size warmup), from trainer.batch_size,
changing only between epochs: epoch e (from 1) trains with b_e = round(value at t = e - 1), in [1, trainer.batch_size],
over S_e = ceil(N / b_e) steps (at most trainer.max_steps_per_epoch), and the LR of step k (from 0) of epoch e is
lr(e - 1 + k / S_e) with interval=step, lr(e - 1) with interval=epoch.

Oracles: the warmup and step formulas by hand; ceil(N / b_e) and the cap for the steps of every epoch in steps.csv;
the cosine formula (and the library's own curve at the hand-computed position) for the LR of every step; an
uninterrupted run for a resumed one; separate runs for a stack's arms; the one-line refusals."""

from __future__ import annotations

import collections
import math

import pytest
import torch
from helpers import FAST, alone, assert_close, bad_input, compose_config, stacked, stop_in_epoch

from schedulers import batch_sizes, curves, torch_scheduler, validate_schedule
from schedulers import config as schedule_config
from trainer.data import num_batches, train_size
from trainer.engine.fit import fit
from trainer.engine.stack import plan
from trainer.errors import ConfigError
from trainer.records import RunFolder, machine_figures, read_metrics, read_summary

EPOCHS, BATCH, CAP = 3, 512, 10
WARMUP = "scheduler.batch_size={name:constant,warmup:{epochs:2,start_lr:128}}"  # 128, 320, 512
RUN = [
    *FAST,
    f"trainer.epochs={EPOCHS}",
    f"trainer.batch_size={BATCH}",
    f"trainer.max_steps_per_epoch={CAP}",  # caps epoch 1 (b = 128) only
    "trainer.num_threads=1",
    "trainer.train_eval_size=0",
    "scheduler=cosine",
]


def run(tmp_path, name: str, *overrides: str) -> RunFolder:
    fit(compose_config([*RUN, *overrides]), tmp_path / name, {})
    return RunFolder(tmp_path / name)


def steps_of(folder: RunFolder) -> dict[int, list[float]]:
    """The LR of every step of every epoch, in order."""
    out = collections.defaultdict(list)
    for s in folder.read_steps():
        out[s.epoch].append(s.lr)
    return dict(out)


def cosine(t: float, base: float) -> float:
    """scheduler=cosine to 0 over the run's epochs (the README's formula)."""
    return base * (1 + math.cos(math.pi * t / EPOCHS)) / 2


def test_each_epochs_batch_size_is_the_schedules_value_at_its_start_rounded():
    warmup = {"name": "constant", "warmup": {"epochs": 4, "start_lr": 32}}
    assert batch_sizes({"name": "cosine", "batch_size": warmup}, 6, 128) == [32, 56, 80, 104, 128, 128]
    # 32 + (100 - 32) * e / 3: 32, 54.67, 77.33, then 100; rounded to the nearest
    thirds = {"name": "constant", "warmup": {"epochs": 3, "start_lr": 32}}
    assert batch_sizes({"name": "constant", "batch_size": thirds}, 5, 100) == [32, 55, 77, 100, 100]
    # a staircase below the base, within the existing curves: 128 for two epochs, then halved every two
    staircase = {"name": "step", "step_size": 2, "gamma": 0.5}
    assert batch_sizes({"name": "constant", "batch_size": staircase}, 6, 128) == [128, 128, 64, 64, 32, 32]
    # a warmup from 0 (warmup.start_lr's default) trains its first epoch with batches of one, never of none
    from_zero = {"name": "constant", "warmup": {"epochs": 2}}
    assert batch_sizes({"name": "constant", "batch_size": from_zero}, 3, 8) == [1, 4, 8]
    assert batch_sizes({"name": "cosine"}, 6, 128) is None


def test_the_position_counts_each_epoch_in_its_own_steps():
    counts = (4, 2, 5)
    positions = [curves.position(s, counts) for s in range(12)]
    assert positions == [0, 0.25, 0.5, 0.75, 1, 1.5, 2, 2.2, 2.4, 2.6, 2.8, 3]
    assert [curves.position(s, 4) for s in range(9)] == [s / 4 for s in range(9)]  # one count: steps / S, as ever


@pytest.mark.slow
def test_steps_batch_sizes_and_lr_of_a_stepped_run_follow_the_formulas(tmp_path):
    folder = run(tmp_path, "step", "scheduler.interval=step", WARMUP)
    n = train_size(compose_config(RUN).dataset)
    sizes = [round(128 + (BATCH - 128) * (e - 1) / 2) if e <= 2 else BATCH for e in range(1, EPOCHS + 1)]
    assert sizes == [128, 320, 512]
    counts = [min(math.ceil(n / b), CAP) for b in sizes]
    assert counts[0] == CAP < math.ceil(n / 128) and counts[1:] == [math.ceil(n / 320), math.ceil(n / 512)]
    lrs = steps_of(folder)
    assert [len(lrs[e]) for e in (1, 2, 3)] == counts
    base = compose_config(RUN).optimizer.lr
    curve = curves.make_curve(schedule_config.parse({"name": "cosine", "interval": "step"}), EPOCHS, 1.0)
    for e, count in zip((1, 2, 3), counts, strict=True):
        positions = [(e - 1) + k / count for k in range(count)]
        assert lrs[e] == [curve(t, base) for t in positions]  # the library's curve, at the hand-computed position
        assert lrs[e] == pytest.approx([cosine(t, base) for t in positions], rel=1e-12, abs=1e-15)
    rows = folder.read_metrics()
    assert [r.batch_size for r in rows] == sizes
    summary = read_summary(folder.dir)
    assert summary["batch_size"] == {"per_epoch": sizes, "steps_per_epoch": counts}
    assert summary["steps_per_epoch"] is None  # the epochs differ
    # the report's LR curve places every step where the trainer did, and the run's end at its last epoch
    from experiments.report.plots import _lr_points
    from experiments.report.runs import read_run

    points = _lr_points(read_run(folder.dir))
    expected = {(e - 1) + k / c: lr for e, c in zip((1, 2, 3), counts, strict=True) for k, lr in enumerate(lrs[e])}
    assert points == expected | {float(EPOCHS): lrs[EPOCHS][-1]}


def test_an_epoch_interval_holds_each_epochs_lr_at_its_start(tmp_path):
    lrs = steps_of(run(tmp_path, "epoch", WARMUP))
    base = compose_config(RUN).optimizer.lr
    for e in (1, 2, 3):
        assert lrs[e] == pytest.approx([cosine(e - 1, base)] * len(lrs[e]), rel=1e-12, abs=1e-15)
    assert len(lrs[1]) > len(lrs[2]) > len(lrs[3])


@pytest.mark.slow
def test_a_resumed_run_ends_with_the_numbers_of_an_uninterrupted_one(tmp_path, monkeypatch):
    overrides = ["scheduler.interval=step", WARMUP]
    whole = run(tmp_path, "whole", *overrides)
    stop_in_epoch(monkeypatch, tmp_path / "cut", 2)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, "cut", *overrides)
    monkeypatch.undo()
    cut = run(tmp_path, "cut", *overrides)
    assert_close(whole.dir, cut.dir, rel=None)
    timing = machine_figures()
    strip = [{k: v for k, v in r.items() if k not in timing} for r in read_metrics(whole.dir)]
    assert strip == [{k: v for k, v in r.items() if k not in timing} for r in read_metrics(cut.dir)]
    # the batch size is part of the run: a checkpoint of one schedule does not resume another
    with pytest.raises(ConfigError, match=r"scheduler\.batch_size\.warmup\.start_lr \(128(\.0)? in the checkpoint"):
        run(tmp_path, "cut", "scheduler.interval=step", WARMUP.replace("start_lr:128", "start_lr:64"))


@pytest.mark.slow
def test_a_run_without_a_batch_size_schedule_is_unchanged(tmp_path):
    plain = run(tmp_path, "plain", "scheduler.interval=step")
    rows = read_metrics(plain.dir)
    assert all("batch_size" not in r for r in rows)
    summary = read_summary(plain.dir)
    n = train_size(compose_config(RUN).dataset)
    assert "batch_size" not in summary and summary["steps_per_epoch"] == num_batches(n, BATCH, CAP)
    spe = summary["steps_per_epoch"]
    base = compose_config(RUN).optimizer.lr
    curve = curves.make_curve(schedule_config.parse({"name": "cosine", "interval": "step"}), EPOCHS, 1.0)
    assert [s.lr for s in plain.read_steps()] == [curve(s / spe, base) for s in range(EPOCHS * spe)]  # steps / S
    # a schedule that holds trainer.batch_size trains the same batches, bit for bit at whole-epoch positions
    held = run(tmp_path, "held", "scheduler.batch_size={name:constant}")
    assert_close(run(tmp_path, "epochs").dir, held.dir, rel=None)
    assert [r["batch_size"] for r in read_metrics(held.dir)] == [BATCH] * EPOCHS


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["sequential", "batched"])
def test_a_stack_trains_one_batch_size_schedule_and_never_mixes_two(tmp_path, strategy):
    # sequential: bit for bit the arms alone; batched (one forward for all arms, torch.func): the losses within
    # float error, the accuracies within a few examples (float error can flip the argmax of a near-tie: these
    # models are a few steps from chance)
    arms = [["seed=0"], ["seed=1", "optimizer.lr=0.1"]]
    base = [*RUN, "scheduler.interval=step", WARMUP]
    summaries, dirs = stacked(tmp_path, "stack", arms, strategy, base=base)
    assert all(s.stack["strategy"] == strategy for s in summaries)
    for a, b in zip(dirs, alone(tmp_path, arms, base=base), strict=True):
        if strategy == "sequential":
            assert_close(a, b, rel=None)
        else:  # the same LR at every step, the same batches; the figures within float error
            assert [s.lr for s in RunFolder(a).read_steps()] == [s.lr for s in RunFolder(b).read_steps()]
            for x, y in zip(read_metrics(a), read_metrics(b), strict=True):
                assert x["batch_size"] == y["batch_size"]
                for key in ("train_loss", "val_loss", "test_loss"):
                    assert x[key] == pytest.approx(y[key], rel=1e-4), (key, x["epoch"])
                for key in ("train_acc", "val_acc", "test_acc"):
                    assert x[key] == pytest.approx(y[key], abs=0.02), (key, x["epoch"])
        assert [r["batch_size"] for r in read_metrics(a)] == [128, 320, 512]
    cfgs = [compose_config(base), compose_config([*base, "seed=1"]), compose_config([*RUN, "seed=2"])]
    cfgs.append(compose_config([*RUN, "scheduler.batch_size={name:constant,warmup:{epochs:2,start_lr:64}}"]))
    p = plan(cfgs, max_stack=None)
    assert p.stacks == [[0, 1]]
    assert "scheduler.batch_size" in p.alone[2] and "scheduler.batch_size" in p.alone[3]


@pytest.mark.parametrize(
    "overrides,expected",
    [
        (
            ["scheduler.batch_size={name:constant,interval:step,warmup:{epochs:2,start_lr:32}}"],
            "scheduler.batch_size.interval='step' is not allowed: a batch size changes between epochs: use epoch",
        ),
        (
            ["trainer.batch_size=128", "scheduler.batch_size={name:constant,warmup:{epochs:2,start_lr:256}}"],
            "scheduler.batch_size.warmup.start_lr must be <= the base value (trainer.batch_size, 128), got 256.0",
        ),
        (
            ["trainer.batch_size=128", "scheduler.batch_size={name:linear,start_factor:1,end_factor:1.5}"],
            # 128 * (1 + 0.5 * 29 / 30) at the last epoch's start
            "scheduler.batch_size must be a schedule that stays at or below trainer.batch_size (128), reaching 189.9 "
            "at epoch 29, got 'linear'",
        ),
        (
            ["scheduler.batch_size={name:plateau}"],
            "scheduler.batch_size.name must be a schedule that is a function of the position alone, not plateau, "
            "onecycle, cyclic, got 'plateau'",
        ),
        (
            ["scheduler.batch_size={name:onecycle}"],
            "scheduler.batch_size.name must be a schedule that is a function of the position alone",
        ),
        (
            ["scheduler=onecycle", "scheduler.interval=step", "scheduler.batch_size={name:constant}"],
            "scheduler.batch_size must be null with scheduler=onecycle at interval=step",
        ),
        (
            ["scheduler.batch_size={name:constant,warmup:{epochs:30}}"],
            "scheduler.batch_size.warmup.epochs must be < trainer.epochs (30): warmup must end before the run, got 30",
        ),
        (
            ["scheduler.batch_size={name:constant,momentum:{name:cosine}}"],
            "scheduler.batch_size.momentum must be null: a value schedule drives one value",
        ),
    ],
)
@pytest.mark.slow
def test_a_bad_batch_size_schedule_is_one_line_before_any_work(capsys, overrides, expected):
    assert expected in bad_input(capsys, *overrides)


def test_only_the_trainer_takes_a_batch_size_schedule():
    node = {"name": "constant", "warmup": {"epochs": 2, "start_lr": 32}}
    torch_node = {"name": "torch", "_target_": "torch.optim.lr_scheduler.StepLR", "step_size": 3, "batch_size": node}
    with pytest.raises(ConfigError, match=r"^scheduler\.batch_size is not available with _target_"):
        validate_schedule(torch_node, 6)
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    with pytest.raises(ConfigError, match=r"^scheduler\.batch_size is not available in a plain loop"):
        torch_scheduler(optimizer, {"name": "cosine", "batch_size": node}, epochs=6, steps_per_epoch=4)
