"""Selection never on the test set: the validation split, and every choice made on it (plateau, the best
epoch, the sweep objective, the LR range test); runs without one refuse those choices before any work."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import FAST, bad_input, compose_config

import trainer.engine.fit as loop
from trainer import data
from trainer.config import validate
from trainer.engine.fit import fit
from trainer.engine.setup import build
from trainer.errors import ConfigError
from trainer.records import Job, read_metrics


def numbered_split(labels: list[int]) -> data.Split:
    """Images that carry their own index (in two pixels), so a split's members can be read back."""
    n = len(labels)
    images = torch.zeros(n, 1, 4, 4, dtype=torch.uint8)
    images[:, 0, 0, 0] = torch.arange(n) % 256
    images[:, 0, 0, 1] = torch.arange(n) // 256
    return data.Split(images, torch.tensor(labels))


def ids(split: data.Split) -> set[int]:
    return set((split.images[:, 0, 0, 0].long() + 256 * split.images[:, 0, 0, 1].long()).tolist())


def test_the_split_is_stratified_disjoint_and_fixed_by_its_seed():
    labels = [0] * 600 + [1] * 300 + [2] * 100  # 60 / 30 / 10 %
    split = numbered_split(labels)
    train, val = data.split_validation(split, 100, seed=0)
    assert ids(train).isdisjoint(ids(val)) and ids(train) | ids(val) == set(range(1000))
    assert torch.bincount(val.labels).tolist() == [60, 30, 10]  # each class its share
    again, _ = data.split_validation(split, 100, seed=0)
    other, _ = data.split_validation(split, 100, seed=1)
    assert ids(again) == ids(train) and ids(other) != ids(train)
    # a count that does not divide evenly: the largest remainders get the extra examples, the total is exact
    _, odd = data.split_validation(split, 7, seed=0)
    assert len(odd.labels) == 7 and torch.bincount(odd.labels, minlength=3).tolist() == [4, 2, 1]


@pytest.mark.parametrize("size,expected", [(0, 0), (171, 171), (0.1, 205), (0.0833, 171)])
def test_val_size_is_a_count_or_a_fraction(size, expected):
    cfg = compose_config([*FAST, f"dataset.val_size={size}"])
    assert data.val_count(cfg.dataset, 2048) == expected
    assert data.train_size(cfg.dataset) == 2048 - expected


def test_every_seed_and_arm_of_a_sweep_validates_on_the_same_examples_and_never_trains_on_them():
    sets = []
    for overrides in (["seed=0"], ["seed=1"], ["seed=2", "optimizer=adam", "scheduler=cosine"]):
        run = build(compose_config([*FAST, *overrides]), Job())
        sets.append(run)
    first = sets[0]
    assert len(first.val_set) == 171 and len(first.train_set) == 2048 - 171
    for run in sets[1:]:
        assert torch.equal(run.val_set.images, first.val_set.images)
        assert torch.equal(run.val_set.labels, first.val_set.labels)
    train_rows = {bytes(r) for r in first.train_set.images.flatten(1).numpy()}
    val_rows = {bytes(r) for r in first.val_set.images.flatten(1).numpy()}
    assert train_rows.isdisjoint(val_rows)
    # every training batch is drawn from the training part: an epoch's batches hold exactly its examples
    seen = torch.cat([y for _, y in first.train_set.batches(128, torch.Generator().manual_seed(0))])
    assert sorted(seen.tolist()) == sorted(first.train_set.labels.tolist())


class Scripted:
    """evaluate() replaced by fixed figures per epoch: which split is asked is told by its size."""

    def __init__(self, val: list[tuple[float, float]], test: list[tuple[float, float]], val_len: int):
        self.val, self.test, self.val_len, self.calls = val, test, val_len, []

    def __call__(self, model, dataset, batch_size, amp):
        split = "val" if len(dataset) == self.val_len else "test"
        self.calls.append(split)
        figures = self.val if split == "val" else self.test
        return figures[sum(c == split for c in self.calls) - 1]


def scripted_run(tmp_path, monkeypatch, overrides, val, test):
    cfg = compose_config(
        [*FAST, "trainer.epochs=3", "trainer.max_steps_per_epoch=2", "trainer.train_eval_size=0", *overrides]
    )
    script = Scripted(val, test, data.val_count(cfg.dataset, 2048))
    monkeypatch.setattr(loop, "evaluate", script)
    summary = fit(cfg, tmp_path / "run", {})
    return summary, read_metrics(tmp_path / "run"), script


def test_the_best_epoch_is_chosen_on_validation_and_reports_the_test_accuracy_there(tmp_path, monkeypatch):
    summary, rows, _ = scripted_run(
        tmp_path, monkeypatch, [], val=[(1.0, 0.5), (0.5, 0.9), (0.7, 0.7)], test=[(0.2, 0.95), (0.9, 0.6), (0.5, 0.8)]
    )
    assert [r["val_acc"] for r in rows] == [0.5, 0.9, 0.7]
    assert summary["best_epoch"] == 2 and summary["best_val_acc"] == 0.9
    assert summary["best_epoch_test_acc"] == 0.6  # not the 0.95 of epoch 1: the test set chooses nothing
    assert summary["final_test_acc"] == 0.8 and summary["final_val_acc"] == 0.7
    assert "best_test_acc" not in summary.to_dict()


def test_plateau_steps_on_the_validation_loss(tmp_path, monkeypatch):
    # validation gets worse while test gets better: the LR is halved after epoch 2 (patience 0)
    overrides = ["scheduler=plateau", "scheduler.patience=0", "optimizer.lr=0.1"]
    _, rows, _ = scripted_run(
        tmp_path,
        monkeypatch,
        overrides,
        val=[(1.0, 0.5), (2.0, 0.5), (3.0, 0.5)],
        test=[(3.0, 0.5), (2.0, 0.5), (1.0, 0.5)],
    )
    assert [r["lr"] for r in rows] == [0.1, 0.1, 0.05]


def test_plateau_can_watch_the_validation_accuracy(tmp_path, monkeypatch):
    overrides = [
        "scheduler=plateau",
        "scheduler.patience=0",
        "scheduler.monitor=val_acc",
        "scheduler.mode=max",
        "optimizer.lr=0.1",
    ]
    _, rows, _ = scripted_run(
        tmp_path, monkeypatch, overrides, val=[(9.0, 0.5), (8.0, 0.6), (7.0, 0.4)], test=[(1.0, 0.5)] * 3
    )
    assert [r["lr"] for r in rows] == [0.1, 0.1, 0.1]  # accuracy improved after epoch 2; the drop comes later
    with pytest.raises(ConfigError, match=r"scheduler.mode must be 'max' for scheduler.monitor='val_acc'"):
        validate(compose_config([*FAST, "scheduler=plateau", "scheduler.monitor=val_acc"]))


def test_select_on_test_reproduces_a_protocol_that_chose_on_the_test_set(tmp_path, monkeypatch):
    overrides = [
        "dataset.val_size=0",
        "select_on_test=true",
        "scheduler=plateau",
        "scheduler.patience=0",
        "optimizer.lr=0.1",
    ]
    summary, rows, script = scripted_run(
        tmp_path, monkeypatch, overrides, val=[], test=[(1.0, 0.5), (2.0, 0.9), (3.0, 0.7)]
    )
    assert set(script.calls) == {"test"}
    assert [r["lr"] for r in rows] == [0.1, 0.1, 0.05]  # plateau on the test loss, as asked
    assert summary["best_epoch"] == 2 and summary["best_test_acc"] == summary["best_epoch_test_acc"] == 0.9
    assert "val_acc" not in rows[0] and "best_val_acc" not in summary.to_dict()


@pytest.mark.parametrize(
    "overrides",
    [
        ["scheduler=plateau"],
        [
            "scheduler=torch",
            "scheduler._target_=torch.optim.lr_scheduler.ReduceLROnPlateau",
            "~scheduler.step_size",
            "~scheduler.gamma",
        ],
        ["objective=best_val_acc"],
        ["objective=final_val_loss"],
        ["objective=best_epoch_test_acc"],
    ],
)
@pytest.mark.slow
def test_choices_that_need_validation_are_refused_without_it_naming_val_size(overrides, capsys):
    message = bad_input(capsys, *FAST, "dataset.val_size=0", *overrides)
    assert "dataset.val_size=0 holds out no validation set" in message and "select_on_test=true" in message


def test_choosing_on_the_test_set_must_be_asked_for():
    with pytest.raises(ConfigError, match="objective='best_test_acc' is not allowed: it selects on the test set"):
        validate(compose_config([*FAST, "objective=best_test_acc"]))
    validate(compose_config([*FAST, "objective=best_test_acc", "select_on_test=true"]))
    validate(compose_config([*FAST, "dataset.val_size=0", "scheduler=plateau", "select_on_test=true"]))


def test_the_optuna_search_optimizes_a_validation_figure_and_the_d2l_study_keeps_the_chapter_protocol():
    assert compose_config(["hparams_search=optuna_lr"]).objective == "best_val_acc"
    d2l = compose_config(["experiment=d2l_schedulers"])
    assert d2l.dataset.val_size == 0 and d2l.objective is None
    validate(d2l)


@pytest.mark.slow
def test_the_lr_range_test_never_touches_the_test_set(tmp_path, monkeypatch):
    from trainer.tasks.lr_find import run_lr_find

    drawn = []
    real = data.DeviceDataset.batches

    def batches(self, *args, **kwargs):
        drawn.append(len(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(data.DeviceDataset, "batches", batches)
    run_lr_find(compose_config([*FAST, "task=lr_find", "lr_find.num_steps=20"]), tmp_path, {})
    assert set(drawn) == {2048 - 171}  # the training part only
    assert json.loads((tmp_path / "lr_find.json").read_text())["num_points"] == 20


def test_every_run_records_its_validation_figures(tmp_path):
    summary = fit(compose_config([*FAST, "trainer.epochs=1", "trainer.max_steps_per_epoch=3"]), tmp_path, {})
    row = read_metrics(tmp_path)[0]
    assert 0 <= row["val_acc"] <= 1 and row["val_loss"] > 0
    assert summary["final_val_acc"] == row["val_acc"] == summary["best_val_acc"] and summary["best_epoch"] == 1
