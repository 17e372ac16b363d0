"""Snapshot ensembles (Huang et al. 2017): with trainer.snapshots the model is saved at the end of every cycle of a
restarting schedule (or every trainer.snapshot_every epochs) and the ensemble of the last snapshots (the mean of
their softmax) is evaluated after each.

Oracles: the schedule's own LR curve for where cycles end (the LR jumps back up, or starts again from its base);
the snapshot files, loaded into models by hand, for the ensemble's predictions; an uninterrupted run for a
resumed one; runs of their own for the arms of a stack."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import CONF, FAST, TINY, alone, assert_close, bad_input, compose_config, stacked, stop_in_epoch
from hydra.utils import instantiate
from omegaconf import OmegaConf

import trainer.engine.fit
import trainer.engine.snapshots
from schedulers import cycle_ends, lr_curve
from trainer.cli import precheck
from trainer.config import validate
from trainer.data import load
from trainer.engine.fit import fit
from trainer.records import RunFolder, machine_figures, read_metrics, read_summary

ENSEMBLE = ("ensemble_val_acc", "ensemble_test_acc")
TIMING = machine_figures()

# ------------------------------------------------------------------------------------- where cycles end


def test_sgdr_cycles_end_at_10_30_and_70():
    sgdr = {"name": "cosine_restarts", "T_0": 10, "T_mult": 2}
    assert cycle_ends(sgdr, 70) == [10, 30, 70]
    assert cycle_ends(sgdr, 100) == [10, 30, 70]  # the fourth cycle (epochs 70-150) is cut by the run's end
    assert cycle_ends(sgdr, 69) == [10, 30]
    assert cycle_ends({**sgdr, "interval": "step"}, 70, steps_per_epoch=235) == [10, 30, 70]
    for schedule in (
        {"name": "constant"},
        {"name": "cosine"},
        {"name": "onecycle"},
        {"_target_": "torch.optim.lr_scheduler.CosineAnnealingWarmRestarts", "T_0": 10},
    ):
        assert cycle_ends(schedule, 30) is None  # no cycles (or not the library's)


def new_cycles(cfg: dict, epochs: int, steps_per_epoch: int) -> list[int]:
    """From the schedule's own LR at every step (one epoch past the run, so that a cycle ending with the run
    shows): the steps at which the LR jumps back up after falling (cosine_restarts; a warmup's rise is no jump)
    or comes down to its base again (cyclic), each as the number of whole epochs before it."""
    base = 0.3
    _, lrs = lr_curve(cfg, base, epochs + 1, steps_per_epoch)
    starts, falling = [], False
    for j in range(1, len(lrs)):
        if cfg["name"] == "cosine_restarts" and lrs[j] > lrs[j - 1] and falling:
            starts.append(j)
        if cfg["name"] == "cyclic" and lrs[j] < lrs[j - 1] and math.isclose(lrs[j], base, rel_tol=1e-12):
            starts.append(j)
        falling = lrs[j] < lrs[j - 1] or (falling and lrs[j] == lrs[j - 1])
    return sorted({e for j in starts if 1 <= (e := j // steps_per_epoch) <= epochs})


CYCLES = [
    ({"name": "cosine_restarts", "T_0": 10, "T_mult": 2}, 100),
    ({"name": "cosine_restarts", "T_0": 3, "T_mult": 1, "warmup": {"epochs": 2, "start_lr": 0.0}}, 14),
    ({"name": "cosine_restarts", "T_0": 2.5, "T_mult": 1.5, "eta_min": 0.01}, 20),
    ({"name": "cosine_restarts", "T_0": 2.9, "T_mult": 1}, 12),
    ({"name": "cyclic", "step_size_up": 2, "step_size_down": 3}, 17),
    ({"name": "cyclic", "step_size_up": 1.5, "mode": "triangular2", "warmup": {"epochs": 1, "start_lr": 0.0}}, 12),
    ({"name": "cyclic", "step_size_up": 1, "mode": "exp_range", "gamma": 0.9}, 9),
]


@pytest.mark.parametrize("interval,steps_per_epoch", [("epoch", 1), ("epoch", 3), ("step", 4)])
@pytest.mark.parametrize("schedule,epochs", CYCLES, ids=[f"{c['name']}-{i}" for i, (c, _) in enumerate(CYCLES)])
def test_cycle_ends_are_where_the_schedules_lr_starts_a_new_cycle(schedule, epochs, interval, steps_per_epoch):
    cfg = {**schedule, "interval": interval}
    expected = new_cycles(cfg, epochs, steps_per_epoch)
    assert expected, "the case has no cycle end to check"
    assert cycle_ends(cfg, epochs, steps_per_epoch) == expected


# ------------------------------------------------------------------------------------- runs

RUN = [*FAST, "trainer.max_steps_per_epoch=4", "trainer.num_threads=1"]
# SGDR with T_0 = 1, T_mult = 2: cycles end at epochs 1 and 3
RESTARTS = [
    *RUN,
    "trainer.epochs=3",
    "scheduler=cosine_restarts",
    "scheduler.T_0=1",
    "scheduler.interval=step",
    "trainer.snapshots=true",
]


def hand_ensemble(cfg, run_dir, epochs: list[int]) -> tuple[float, float]:
    """(val, test) accuracy of the mean softmax of the snapshots of `epochs`, each loaded into a model of its own."""
    _, val_set, test_set = load(cfg.dataset, torch.device("cpu"), bool(cfg.trainer.channels_last))
    models = []
    for epoch in epochs:
        model = instantiate(cfg.model)
        model.load_state_dict(torch.load(RunFolder(run_dir).snapshot(epoch), weights_only=True))
        models.append(model.eval())
    accuracies = []
    with torch.no_grad():
        for dataset in (val_set, test_set):
            x, y = next(dataset.batches(len(dataset)))  # the whole set, in order
            mean = torch.stack([m(x).softmax(1) for m in models]).mean(0)
            accuracies.append((mean.argmax(1) == y).float().mean().item())
    return accuracies[0], accuracies[1]


@pytest.fixture(scope="module")
def restarts(tmp_path_factory):
    """One uninterrupted SGDR run with snapshots: its folder."""
    run = tmp_path_factory.mktemp("restarts") / "whole"
    fit(compose_config(RESTARTS), run, {})
    return run


def snapshot_files(run) -> list[str]:
    return sorted(p.name for p in (run / "snapshots").iterdir())


def test_snapshots_land_at_the_cycle_ends_and_the_ensemble_is_the_mean_softmax(restarts):
    cfg = compose_config(RESTARTS)
    assert cycle_ends(cfg.scheduler, 3, 4) == [1, 3]
    assert snapshot_files(restarts) == ["epoch_001.pt", "epoch_003.pt"]
    # the run's own LRs: the first step after a snapshot epoch starts a new cycle (the LR jumps back up)
    steps = RunFolder(restarts).read_steps()
    last_of_1, first_of_2 = [s for s in steps if s.epoch == 1][-1], [s for s in steps if s.epoch == 2][0]
    assert first_of_2.lr == 0.3 > last_of_1.lr
    rows = read_metrics(restarts)
    # one snapshot: the ensemble is the model itself
    assert (rows[0]["ensemble_val_acc"], rows[0]["ensemble_test_acc"]) == (rows[0]["val_acc"], rows[0]["test_acc"])
    assert (rows[0]["ensemble_val_acc"], rows[0]["ensemble_test_acc"]) == pytest.approx(
        hand_ensemble(cfg, restarts, [1])
    )
    # no snapshot in epoch 2: the ensemble stands as after epoch 1
    assert [rows[1][k] for k in ENSEMBLE] == [rows[0][k] for k in ENSEMBLE]
    # two snapshots: the mean of their softmax, computed by hand from the files
    assert (rows[2]["ensemble_val_acc"], rows[2]["ensemble_test_acc"]) == pytest.approx(
        hand_ensemble(cfg, restarts, [1, 3])
    )
    summary = read_summary(restarts)
    assert summary["final_ensemble_test_acc"] == rows[2]["ensemble_test_acc"]
    assert summary["final_ensemble_val_acc"] == rows[2]["ensemble_val_acc"]
    # a snapshot holds the weights only
    assert set(torch.load(RunFolder(restarts).snapshot(3), weights_only=True)) == set(
        instantiate(cfg.model).state_dict()
    )


def test_the_ensemble_takes_the_last_snapshot_ensemble_snapshots(tmp_path):
    overrides = [
        *RUN,
        "trainer.epochs=3",
        "trainer.snapshots=true",
        "trainer.snapshot_every=1",
        "trainer.snapshot_ensemble=2",
    ]
    cfg = compose_config(overrides)
    fit(cfg, tmp_path / "run", {})
    assert snapshot_files(tmp_path / "run") == ["epoch_001.pt", "epoch_002.pt", "epoch_003.pt"]
    rows = read_metrics(tmp_path / "run")
    for row, taken in zip(rows[1:], ([1, 2], [2, 3]), strict=True):
        assert (row["ensemble_val_acc"], row["ensemble_test_acc"]) == pytest.approx(
            hand_ensemble(cfg, tmp_path / "run", taken)
        )


def test_an_ensemble_of_one_is_the_model_and_a_schedule_free_snapshot_holds_its_averaged_weights(tmp_path):
    overrides = [
        *RUN,
        "trainer.epochs=2",
        "optimizer=sgd_schedulefree",
        "optimizer.lr=0.5",
        "trainer.snapshots=true",
        "trainer.snapshot_every=1",
        "trainer.snapshot_ensemble=1",
    ]
    fit(compose_config(overrides), tmp_path / "run", {})
    for row in read_metrics(tmp_path / "run"):
        assert (row["ensemble_val_acc"], row["ensemble_test_acc"]) == (row["val_acc"], row["test_acc"])
    saved = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    snapshot = torch.load(RunFolder(tmp_path / "run").snapshot(2), weights_only=True)
    assert all(torch.equal(snapshot[k], saved["model"][k]) for k in snapshot)  # x, not the training weights y
    assert any(not torch.equal(snapshot[k], saved["train_model"][k]) for k in snapshot)


def test_a_resumed_run_keeps_its_snapshots(restarts, tmp_path, monkeypatch):
    cut = tmp_path / "cut"
    real = stop_in_epoch(monkeypatch, cut, 3)  # after epoch 2: snapshot 1 is on disk, snapshot 3 to come
    with pytest.raises(KeyboardInterrupt):
        fit(compose_config(RESTARTS), cut, {})
    assert snapshot_files(cut) == ["epoch_001.pt"]
    monkeypatch.setattr(trainer.engine.fit, "evaluate", real)
    fit(compose_config(RESTARTS), cut, {})

    def numbers(run):
        return [{k: v for k, v in r.items() if k not in TIMING} for r in read_metrics(run)]

    assert numbers(cut) == numbers(restarts)
    assert snapshot_files(cut) == snapshot_files(restarts)
    for name in snapshot_files(restarts):
        a, b = (torch.load(run / "snapshots" / name, weights_only=True) for run in (restarts, cut))
        assert all(torch.equal(a[k], b[k]) for k in a), name


@pytest.mark.slow
def test_the_report_shows_the_ensemble_beside_the_single_models(tmp_path):
    from experiments.report import write_report

    runs = {"0": RESTARTS[len(RUN) + 1 :], "1": ["scheduler=cosine"]}  # SGDR with snapshots; one cosine run
    for name, overrides in runs.items():
        fit(compose_config([*RUN, "trainer.epochs=3", *overrides]), tmp_path / "sweep" / name, {"overrides": overrides})
    report = write_report([tmp_path / "sweep"], tmp_path / "out")
    assert [m.name for m in report.metrics][:2] == ["test_acc", "ensemble_test_acc"]
    by_label = {g.label: g for g in report.groups}
    restarts = next(g for label, g in by_label.items() if "cosine_restarts" in label)
    single = next(g for label, g in by_label.items() if "cosine_restarts" not in label)
    expected = read_summary(tmp_path / "sweep" / "0")["final_ensemble_test_acc"]
    assert restarts.stats["ensemble_test_acc"].values == [expected] and single.stats["ensemble_test_acc"].n == 0
    # the test accuracy figure draws the ensemble dashed beside its group, from its first snapshot on
    lines = {s.label: s for s in report.plots["test_acc"]}
    assert set(lines) == {restarts.label, single.label, f"{restarts.label} (snapshot ensemble)"}
    ensemble = lines[f"{restarts.label} (snapshot ensemble)"]
    rows = read_metrics(tmp_path / "sweep" / "0")
    assert ensemble.linestyle == "--" and ensemble.color == lines[restarts.label].color
    assert list(ensemble.x) == [r["epoch"] for r in rows if "ensemble_test_acc" in r]
    assert list(ensemble.y) == pytest.approx([100 * r["ensemble_test_acc"] for r in rows if "ensemble_test_acc" in r])
    # runs without snapshots: no ensemble column
    alone = write_report([tmp_path / "sweep" / "1"], tmp_path / "out1")
    assert "ensemble_test_acc" not in [m.name for m in alone.metrics]


# ------------------------------------------------------------------------------------- stacked


@pytest.mark.slow
def test_snapshots_work_per_arm_in_a_stack(tmp_path):
    base = [*TINY, "trainer.snapshots=true"]
    arms = [
        ["seed=0", "scheduler=cosine_restarts", "scheduler.T_0=1", "scheduler.interval=step"],
        [
            "seed=1",
            "optimizer=momentum",
            "optimizer.lr=0.05",
            "scheduler=cosine_restarts",
            "scheduler.T_0=2",
            "scheduler.T_mult=1",
        ],
    ]
    reference = alone(tmp_path, arms, base=base)
    _, sequential = stacked(tmp_path, "sequential", arms, "sequential", base=base)
    _, batched = stacked(tmp_path, "batched", arms, "batched", base=base)
    assert [snapshot_files(r) for r in reference] == [["epoch_001.pt", "epoch_003.pt"], ["epoch_002.pt"]]
    for ref, seq, bat in zip(reference, sequential, batched, strict=True):
        assert_close(ref, seq, rel=None)
        assert_close(ref, bat, rel=1e-4)
        for other, rel in ((seq, 0), (bat, 1e-4)):
            assert snapshot_files(other) == snapshot_files(ref)
            for a, b in zip(read_metrics(ref), read_metrics(other), strict=True):
                for key in ENSEMBLE:  # None before the arm's first snapshot
                    assert (a.get(key) is None) == (b.get(key) is None)
                    assert a.get(key) is None or math.isclose(a[key], b[key], rel_tol=rel), (key, a["epoch"])


# ------------------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    "overrides,expected",
    [
        (
            ["trainer.snapshots=true"],
            "trainer.snapshots=True is not allowed: scheduler=constant has no cycles to end: "
            "use scheduler=cosine_restarts or cyclic, or set trainer.snapshot_every=<epochs>",
        ),
        (["trainer.snapshots=true", "scheduler=cosine"], "scheduler=cosine has no cycles to end"),
        (["trainer.snapshots=true", "scheduler=torch"], "scheduler=torch has no cycles to end"),
        (["trainer.snapshot_ensemble=0"], "trainer.snapshot_ensemble=0 is not allowed: must be >= 1"),
        (["trainer.snapshot_every=0"], "trainer.snapshot_every=0 is not allowed: must be >= 1"),
        (
            ["objective=final_ensemble_test_acc"],
            "objective='final_ensemble_test_acc' is not allowed: it is a snapshot "
            "ensemble's figure: set trainer.snapshots=true",
        ),
        (["trainer.snapshot=true"], "trainer.snapshot: no such key in trainer (did you mean trainer.snapshots?)"),
    ],
)
def test_bad_keys_are_one_line(capsys, overrides, expected):
    assert expected in bad_input(capsys, *overrides)


@pytest.mark.slow
def test_snapshot_every_drives_any_schedule():
    for schedule in ("scheduler=cosine", "scheduler=torch", "scheduler=constant"):
        validate(compose_config(["trainer.snapshots=true", "trainer.snapshot_every=5", schedule]))
    validate(compose_config(["trainer.snapshots=true", "scheduler=cyclic", "objective=final_ensemble_test_acc"]))


def test_the_study_sets_a_restarts_run_beside_a_cosine_run_of_the_same_budget(capsys):
    study = OmegaConf.load(CONF / "experiment" / "snapshot_ensemble.yaml").hydra.sweeper.params
    arms = {arm: compose_config(["experiment=snapshot_ensemble", f"arm={arm}"]) for arm in study.arm.split(",")}
    d2l = compose_config(["experiment=d2l_schedulers"])
    for cfg in arms.values():
        validate(cfg)
        for group in ("dataset", "model"):
            assert cfg[group] == d2l[group]
        assert (cfg.trainer.epochs, cfg.trainer.batch_size, cfg.optimizer.lr) == (30, 256, 0.3)
    assert trainer.engine.snapshots.snapshot_epochs(arms["snapshot_restarts"], 235) == [6, 12, 18, 24, 30]
    assert arms["snapshot_cosine"].scheduler.name == "cosine" and not arms["snapshot_cosine"].trainer.snapshots
    precheck(["-m", "experiment=snapshot_ensemble"])  # every job of the sweep composes and validates
    assert capsys.readouterr().err == ""
