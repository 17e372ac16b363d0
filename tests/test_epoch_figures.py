"""The end-of-epoch figures beside the running ones: the model at the epoch's end evaluated on a fixed subset of the
training part (train_eval_acc, and eval_gap = train_eval_acc - test_acc, the honest gap), and the epoch's seconds
split into training and evaluation (train_time + eval_time = epoch_time)."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import FAST, bad_input, compose_config
from hydra.utils import instantiate

from trainer import data
from trainer.engine.fit import fit
from trainer.engine.loop import evaluate
from trainer.engine.setup import build
from trainer.records import Job, read_metrics


def test_the_fixed_subset_is_spread_evenly_and_the_same_for_every_seed():
    runs = [build(compose_config([*FAST, f"seed={s}", "trainer.train_eval_size=100"]), Job()) for s in (0, 1)]
    train, subset = runs[0].train_set, runs[0].train_eval_set
    n = len(train)
    expected = torch.linspace(0, n - 1, 100).round().long()  # every (n / 100)-th example, both ends included
    assert len(subset) == 100
    assert torch.equal(subset.labels, train.labels[expected]) and torch.equal(subset.images, train.images[expected])
    assert torch.equal(runs[1].train_eval_set.images, subset.images)  # the same examples whatever the seed
    assert torch.equal(subset.scale, train.scale) and torch.equal(subset.shift, train.shift)  # normalized alike
    assert train.fixed_subset(0) is None
    whole = train.fixed_subset(10 * n)
    assert torch.equal(whole.images, train.images)


def test_train_eval_figures_are_the_models_at_the_epochs_end_on_the_subset(tmp_path):
    overrides = [*FAST, "trainer.epochs=1", "trainer.max_steps_per_epoch=4", "trainer.train_eval_size=300"]
    cfg = compose_config(overrides)
    fit(cfg, tmp_path, {})
    (row,) = read_metrics(tmp_path)
    # the oracle: the checkpoint's weights (the model at the epoch's end) evaluated on the same 300 examples
    model = instantiate(cfg.model)
    model.load_state_dict(torch.load(tmp_path / "checkpoint.pt", weights_only=True)["model"])
    train_set, _, _ = data.load(cfg.dataset, torch.device("cpu"), cfg.trainer.channels_last)
    loss, acc = evaluate(
        model, train_set.fixed_subset(300), cfg.trainer.eval_batch_size, torch.autocast("cpu", enabled=False)
    )
    assert row["train_eval_acc"] == pytest.approx(acc, abs=1e-12)
    assert row["train_eval_loss"] == pytest.approx(loss, rel=1e-5)
    assert row["eval_gap"] == pytest.approx(row["train_eval_acc"] - row["test_acc"], abs=1e-12)
    assert row["gap"] == pytest.approx(row["train_acc"] - row["test_acc"], abs=1e-12)  # the running gap stays
    assert row["train_time"] > 0 and row["eval_time"] > 0
    assert row["epoch_time"] == pytest.approx(row["train_time"] + row["eval_time"], rel=1e-9)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["final_eval_gap"] == row["eval_gap"] and summary["final_train_eval_acc"] == row["train_eval_acc"]
    assert summary["mean_train_time_s"] == row["train_time"] and summary["mean_eval_time_s"] == row["eval_time"]


def test_train_eval_size_zero_leaves_the_figures_out(tmp_path):
    fit(
        compose_config([*FAST, "trainer.epochs=1", "trainer.max_steps_per_epoch=2", "trainer.train_eval_size=0"]),
        tmp_path,
        {},
    )
    (row,) = read_metrics(tmp_path)
    assert "train_eval_acc" not in row and "eval_gap" not in row and "gap" in row


def test_a_negative_train_eval_size_is_one_line(capsys):
    message = bad_input(capsys, *FAST, "trainer.train_eval_size=-1")
    assert (
        message
        == "schedlab: error: trainer.train_eval_size=-1 is not allowed: must be >= 0 (examples; 0: no end-of-epoch train figures)"
    )
