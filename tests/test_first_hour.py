"""What a new user meets first: the synthetic set learns at the defaults, a collapse is reported as a finding,
a run without a terminal says what it does each epoch (and its run.log keeps it), the best epoch is kept."""

from __future__ import annotations

import json
import math

import pytest
import torch
from helpers import FAST, bad_input, compose_config, run_cli, stop_in_epoch

from experiments.report import write_report
from trainer.engine.fit import fit
from trainer.records import EpochRow, collapse, read_metrics


@pytest.mark.slow
def test_the_synthetic_example_learns_in_two_epochs_at_the_defaults(tmp_path):
    """README: `python run.py dataset=synthetic trainer.epochs=2` (the d2l LeNet, SGD 0.3, batch 256)."""
    result = run_cli(["dataset=synthetic", "trainer.epochs=2", "logger=none", f"hydra.run.dir={tmp_path}"])
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["final_test_acc"] >= 0.9 and summary["collapsed_at"] is None


def row(epoch: int, acc: float, loss: float) -> EpochRow:
    return EpochRow(
        epoch, train_loss=loss, train_acc=acc, test_loss=loss, test_acc=acc, gap=0.0, lr=0.3, lr_end=0.3, epoch_time=1.0
    )


CHANCE_LOSS = math.log(10)


@pytest.mark.parametrize(
    "history,expected",
    [
        # learned to 95 %, then chance with the loss stuck at ln 10 from epoch 3 on
        (
            [(0.6, 1.0), (0.95, 0.2), (0.1, CHANCE_LOSS), (0.098, CHANCE_LOSS * 1.01)],
            {"epoch": 3, "peak_train_acc": 0.95, "peak_epoch": 2},
        ),
        ([(0.1, CHANCE_LOSS), (0.1, CHANCE_LOSS)], None),  # never learned: not a collapse
        ([(0.9, 0.3), (0.1, CHANCE_LOSS), (0.8, 0.5)], None),  # fell and recovered
        ([(0.9, 0.3), (0.12, 1.2)], None),  # near chance, but the loss is not stuck at a uniform guess
    ],
)
def test_a_collapse_is_a_run_that_learned_then_sat_at_chance(history, expected):
    rows = [row(i + 1, acc, loss) for i, (acc, loss) in enumerate(history)]
    assert collapse(rows, 10) == expected


@pytest.mark.slow
def test_a_collapsed_run_is_completed_and_flagged_in_its_summary_and_the_report(tmp_path, monkeypatch):
    import trainer.engine.fit as loop

    real = loop.train_epoch

    def collapsing(*args, **kwargs):  # epoch 1 learns; from epoch 2 on the network outputs a uniform guess
        result = real(*args, **kwargs)
        if kwargs["epoch"] >= 2:
            result.train_acc, result.train_loss = 0.1, CHANCE_LOSS
        return result

    monkeypatch.setattr(loop, "train_epoch", collapsing)
    summary = fit(
        compose_config([*FAST, "trainer.epochs=3", "optimizer.lr=0.05", "optimizer=momentum"]), tmp_path / "run", {}
    )
    assert summary.status == "completed"
    assert summary.collapsed_at["epoch"] == 2 and summary.collapsed_at["peak_epoch"] == 1
    report = write_report([tmp_path])
    assert "collapsed to chance at epoch 2" in report.markdown


@pytest.mark.slow
def test_without_a_terminal_each_epoch_is_one_line_and_run_log_keeps_them(tmp_path):
    run = tmp_path / "run"
    result = run_cli(
        [*FAST, "trainer.epochs=2", "trainer.max_steps_per_epoch=3", "trainer.progress=true", f"hydra.run.dir={run}"]
    )
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if "] - epoch " in line]
    assert [line.split("] - ")[1].split(":")[0] for line in lines] == ["epoch 1/2", "epoch 2/2"]
    rows = read_metrics(run)
    assert f"test loss {rows[1]['test_loss']:.4f} acc {rows[1]['test_acc']:.2%}" in lines[1]
    assert f"val loss {rows[1]['val_loss']:.4f}" in lines[1]
    log = (run / "run.log").read_text()
    assert "epoch 1/2: " in log and "epoch 2/2: " in log
    assert result.stdout.splitlines()[-1].startswith("completed: test acc")


@pytest.mark.slow
def test_a_resumed_run_says_so(tmp_path, monkeypatch):
    run = tmp_path / "run"
    overrides = [*FAST, "trainer.epochs=2", "trainer.max_steps_per_epoch=3"]
    stop_in_epoch(monkeypatch, run, 2)
    with pytest.raises(KeyboardInterrupt):
        fit(compose_config(overrides), run, {})
    monkeypatch.undo()
    result = run_cli([*overrides, f"hydra.run.dir={run}"])
    assert result.returncode == 0, result.stderr
    assert f"resuming {run} from epoch 1" in result.stdout
    assert f"resuming {run} from epoch 1" in (run / "run.log").read_text()


def test_best_pt_holds_the_epoch_chosen_on_validation(tmp_path, monkeypatch):
    import trainer.engine.fit as loop

    figures = iter([(1.0, 0.5), (0.5, 0.5), (0.5, 0.9), (0.5, 0.5), (0.7, 0.7), (0.5, 0.5)])  # val, test per epoch
    monkeypatch.setattr(loop, "evaluate", lambda *args, **kwargs: next(figures))
    fit(
        compose_config([*FAST, "trainer.epochs=3", "trainer.max_steps_per_epoch=2", "trainer.train_eval_size=0"]),
        tmp_path,
        {},
    )
    best = torch.load(tmp_path / "best.pt", weights_only=True)
    last = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert best["state"]["epoch"] == 2 and last["state"]["epoch"] == 3
    assert json.loads((tmp_path / "summary.json").read_text())["best_epoch"] == 2


@pytest.mark.slow
def test_a_schedule_planned_for_a_longer_run_says_so_once_at_the_start(tmp_path):
    result = run_cli(
        [
            *FAST,
            "trainer.epochs=2",
            "trainer.max_steps_per_epoch=2",
            "scheduler=cosine",
            "scheduler.horizon=20",
            "optimizer.lr=0.3",
            f"hydra.run.dir={tmp_path}",
        ]
    )
    assert result.returncode == 0, result.stderr
    line = "schedlab: warning: scheduler.horizon=20 is past the run's 2 epochs: cosine reaches 0.298 of its 0.3→0 decay"
    assert result.stderr.count(line) == 1
    # the default horizon is the run: no warning, and the decay completes
    result = run_cli(
        [
            *FAST,
            "trainer.epochs=2",
            "trainer.max_steps_per_epoch=2",
            "scheduler=cosine",
            f"hydra.run.dir={tmp_path / 'fits'}",
        ]
    )
    assert result.returncode == 0 and "schedlab: warning" not in result.stderr


@pytest.mark.parametrize(
    "values,mode,delta,expected",
    [
        ([0.5, 0.6, 0.6, 0.59], "max", 0.0, 2),
        ([0.5, 0.6, 0.605, 0.61], "max", 0.01, 2),
        ([3.0, 2.0, 2.5, 1.0], "min", 0.0, 0),
        ([1.0], "min", 0.0, 0),
    ],
)
def test_epochs_without_improvement(values, mode, delta, expected):
    from trainer.engine.loop import epochs_without_improvement

    assert epochs_without_improvement(values, mode, delta) == expected


def test_early_stopping_ends_the_run_on_validation_and_says_so(tmp_path, monkeypatch):
    import trainer.engine.fit as loop

    figures = iter([(1.0, 0.5), (0.5, 0.5), (0.9, 0.6), (0.5, 0.9), (0.9, 0.55), (0.5, 0.5), (0.9, 0.6), (0.5, 0.5)])
    monkeypatch.setattr(loop, "evaluate", lambda *args, **kwargs: next(figures))  # (loss, acc): val, then test
    cfg = compose_config(
        [
            *FAST,
            "trainer.epochs=10",
            "trainer.max_steps_per_epoch=2",
            "trainer.early_stopping.patience=2",
            "trainer.train_eval_size=0",
        ]
    )
    summary = fit(cfg, tmp_path, {})
    assert summary.status == "completed" and summary.stopped_early_at == 4 and summary.epochs_completed == 4
    assert [r["val_acc"] for r in read_metrics(tmp_path)] == [0.5, 0.6, 0.55, 0.6]  # epochs 3 and 4 do not beat 0.6


def test_early_stopping_needs_validation(capsys):
    message = bad_input(capsys, *FAST, "dataset.val_size=0", "trainer.early_stopping.patience=3")
    assert message.startswith(
        "schedlab: error: trainer.early_stopping.patience=3 is not allowed: stops on a validation figure"
    )
    assert "dataset.val_size=0 holds out no validation set" in message
