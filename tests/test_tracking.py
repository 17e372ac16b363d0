"""Trackers: TensorBoard event files hold what the run folder holds (epochs, steps, the LR range test's curve,
the summary), a resumed run keeps one event folder with every epoch, logger=none writes nothing, and the
tracker is the class the logger node's `_target_` names, built with that node's keys."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from helpers import FAST, compose_config, stop_in_epoch
from omegaconf import open_dict
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import trainer.engine.fit
from trainer.engine.fit import fit
from trainer.records import Job
from trainer.tracking import NullTracker, TensorBoardTracker, Tracker, make_tracker

TB = [*FAST, "logger=tensorboard"]


def events(folder: Path) -> EventAccumulator:
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def scalars(acc: EventAccumulator, tag: str) -> list[tuple[int, float]]:
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def texts(acc: EventAccumulator, name: str) -> list[tuple[int, str]]:
    return [(e.step, e.tensor_proto.string_val[0].decode()) for e in acc.Tensors(f"{name}/text_summary")]


def as_float32(values) -> np.ndarray:
    return np.array([float(v) for v in values], dtype=np.float32)


def assert_same_values(logged: list[float], written: list[float], what: str) -> None:
    """Event files store float32: the values written as float64 must round to exactly what was logged."""
    a, b = as_float32(logged), as_float32(written)
    assert a.shape == b.shape, f"{what}: {len(a)} values in the event files, {len(b)} in the run folder"
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=0, equal_nan=True, err_msg=what)


def metrics_rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def step_rows(run: Path) -> list[dict]:
    with open(run / "steps.csv", newline="") as f:
        return list(csv.DictReader(f))


def event_files(run: Path) -> list[Path]:
    return sorted(run.rglob("events.out.tfevents.*"))


def assert_events_match_run_folder(run: Path) -> EventAccumulator:
    acc = events(run / "tensorboard")
    tags = set(acc.Tags()["scalars"])
    rows = metrics_rows(run)
    figures = [k for k in rows[0] if k != "epoch"]
    assert figures, rows
    for name in figures:
        assert f"epoch/{name}" in tags, f"epoch/{name} missing from {sorted(tags)}"
        logged = scalars(acc, f"epoch/{name}")
        assert [s for s, _ in logged] == [r["epoch"] for r in rows], name
        assert_same_values([v for _, v in logged], [r[name] for r in rows], f"epoch/{name}")
    assert not {t for t in tags if t.startswith("epoch/")} - {f"epoch/{n}" for n in figures}
    steps = step_rows(run)
    for name in ("lr", "loss"):
        logged = scalars(acc, f"step/{name}")
        assert [s for s, _ in logged] == [int(r["step"]) for r in steps], name
        assert_same_values([v for _, v in logged], [r[name] for r in steps], f"step/{name}")
    return acc


# ------------------------------------------------------------------------------------------- TensorBoard


def test_tensorboard_events_equal_the_run_folder(tmp_path):
    run = tmp_path / "run"
    summary = fit(compose_config([*TB, "trainer.epochs=2", "trainer.max_steps_per_epoch=5"]), run, {})
    assert summary.status == "completed" and summary.epochs_completed == 2
    assert event_files(run) and all(f.parent == run / "tensorboard" for f in event_files(run))

    acc = assert_events_match_run_folder(run)
    assert len(step_rows(run)) == 10  # 2 epochs of 5 steps

    # the summary: a text table of its figures at the last epoch, and each figure as a scalar
    written = json.loads((run / "summary.json").read_text())
    [(step, text)] = texts(acc, "summary")
    assert step == 2
    assert "| status | completed |" in text
    for key in ("final_test_acc", "best_val_acc", "final_train_loss", "best_epoch"):
        assert f"| {key} | {written[key]} |" in text
        assert scalars(acc, f"summary/{key}")[-1][1] == pytest.approx(written[key], rel=1e-6)
    # the config as text, at step 0
    [(step, config_text)] = texts(acc, "config")
    assert step == 0 and "TensorBoardTracker" in config_text


def test_lr_find_curve_in_tensorboard_equals_lr_find_json(tmp_path):
    from trainer.tasks.lr_find import run_lr_find

    run = tmp_path / "find"
    cfg = compose_config([*TB, "task=lr_find", "lr_find.num_steps=15"])
    run_lr_find(cfg, run, {})
    written = json.loads((run / "lr_find.json").read_text())
    acc = events(run / "tensorboard")
    for name, column in (("lr", "lrs"), ("loss", "losses"), ("smoothed", "smoothed")):
        logged = scalars(acc, f"lr_find/{name}")
        assert [s for s, _ in logged] == list(range(len(written[column]))), name
        assert len(logged) >= 2
        assert_same_values([v for _, v in logged], written[column], f"lr_find/{name}")
    assert not any(t.startswith(("epoch/", "step/")) for t in acc.Tags()["scalars"])


@pytest.mark.slow
def test_resumed_run_keeps_one_event_folder_with_every_epoch(tmp_path, monkeypatch):
    overrides = [*TB, "trainer.epochs=3", "trainer.max_steps_per_epoch=4"]
    run = tmp_path / "run"

    class Killed(RuntimeError):
        pass

    real_evaluate = stop_in_epoch(monkeypatch, run, 2, Killed)  # the process dies in epoch 2
    with pytest.raises(Killed):
        fit(compose_config(overrides), run, {})
    assert [r["epoch"] for r in metrics_rows(run)] == [1]
    assert [s for s, _ in scalars(events(run / "tensorboard"), "epoch/test_acc")] == [1]

    monkeypatch.setattr(trainer.engine.fit, "evaluate", real_evaluate)
    summary = fit(compose_config(overrides), run, {})
    assert summary.status == "completed" and summary.epochs_completed == 3

    folders = {f.parent for f in event_files(run)}
    assert folders == {run / "tensorboard"}, folders
    assert len(event_files(run)) >= 2  # the second process appended its own file to the same folder
    acc = assert_events_match_run_folder(run)
    assert [s for s, _ in scalars(acc, "epoch/test_acc")] == [1, 2, 3]
    assert [s for s, _ in scalars(acc, "step/lr")] == list(range(1, 13))
    summaries = texts(acc, "summary")
    assert summaries[-1][0] == 3 and "| status | completed |" in summaries[-1][1]
    assert any("| status | failed |" in text for _, text in summaries)  # the killed run's summary, at epoch 1


# ------------------------------------------------------------------------------------------ no tracker


def test_logger_none_writes_no_tracker_folder(tmp_path):
    cfg = compose_config([*FAST, "trainer.epochs=1", "trainer.max_steps_per_epoch=3"])
    assert cfg.logger._target_ == "trainer.tracking.NullTracker"
    tracker = make_tracker(cfg, tmp_path / "probe", Job())
    assert type(tracker) is NullTracker is Tracker
    run = tmp_path / "run"
    summary = fit(cfg, run, {})
    assert summary.status == "completed"
    assert (run / "metrics.jsonl").exists()
    assert not list(run.rglob("events.out.tfevents.*"))
    assert not (run / "tensorboard").exists() and not (run / "wandb").exists()
    assert not any(p.is_dir() for p in run.iterdir()), sorted(run.iterdir())


def test_logger_tensorboard_builds_the_tensorboard_tracker_with_its_keys(tmp_path):
    cfg = compose_config([*TB, "logger.log_dir=events", "logger.log_steps=false"])
    tracker = make_tracker(cfg, tmp_path, Job())
    try:
        assert type(tracker) is TensorBoardTracker
        assert tracker.log_dir == tmp_path / "events" and tracker._log_steps is False
    finally:
        tracker.finish(0)


# ----------------------------------------------------------------------------------- a tracker by _target_


class RecordingTracker(Tracker):
    """A tracker defined outside the package: keeps every call it gets."""

    built: list[RecordingTracker] = []

    def __init__(self, *, config, run_dir, job, resume_id=None, label: str = "", every: int = 1):
        super().__init__(config=config, run_dir=run_dir, job=job, resume_id=resume_id)
        self.options = {"label": label, "every": every}
        self.run_dir, self.job, self.config = run_dir, job, config
        self.epochs, self.steps, self.summaries, self.finished = [], [], [], []
        RecordingTracker.built.append(self)

    def log_epoch(self, row, steps):
        self.epochs.append(row.to_dict())
        self.steps += steps

    def summary(self, summary):
        self.summaries.append(summary.to_dict())

    def finish(self, exit_code):
        self.finished.append(exit_code)


def with_logger(cfg, node: dict):
    with open_dict(cfg):
        cfg.logger = node
    return cfg


def test_make_tracker_builds_the_class_target_names_with_the_nodes_keys(tmp_path):
    cfg = with_logger(compose_config(FAST), {"_target_": f"{__name__}.RecordingTracker", "label": "x", "every": 3})
    job = Job(overrides=["seed=1"], num=4)
    tracker = make_tracker(cfg, str(tmp_path), job, resume_id="abc")
    assert type(tracker) is RecordingTracker
    assert tracker.options == {"label": "x", "every": 3}
    assert tracker.run_dir == tmp_path and tracker.job is job and tracker.id == "abc"
    assert tracker.config is cfg

    # a key the class does not take is refused, not dropped
    cfg = with_logger(compose_config(FAST), {"_target_": f"{__name__}.RecordingTracker", "colour": "red"})
    with pytest.raises(TypeError, match="colour"):
        make_tracker(cfg, tmp_path, Job())


def test_a_tracker_named_by_target_receives_the_run_folders_records(tmp_path):
    RecordingTracker.built.clear()
    cfg = compose_config([*FAST, "trainer.epochs=2", "trainer.max_steps_per_epoch=3"])
    cfg = with_logger(cfg, {"_target_": f"{__name__}.RecordingTracker", "label": "fit"})
    run = tmp_path / "run"
    fit(cfg, run, {"overrides": ["trainer.epochs=2"]})
    [tracker] = RecordingTracker.built
    assert tracker.options["label"] == "fit" and tracker.job.overrides == ["trainer.epochs=2"]
    rows = metrics_rows(run)
    assert [r["epoch"] for r in rows] == [1, 2]
    for seen, row in zip(tracker.epochs, rows, strict=True):
        assert seen.keys() == row.keys()
        for key, value in row.items():
            assert seen[key] == pytest.approx(value) or (isinstance(value, float) and math.isnan(value))
    assert [(s.step, s.lr, s.loss) for s in tracker.steps] == [
        (int(r["step"]), pytest.approx(float(r["lr"])), pytest.approx(float(r["loss"]))) for r in step_rows(run)
    ]
    written = json.loads((run / "summary.json").read_text())
    [summary] = tracker.summaries
    assert summary["status"] == "completed" and summary["final_test_acc"] == pytest.approx(written["final_test_acc"])
    assert tracker.finished == [0]
