"""Resume after a hard kill, divergence as a result, bad input before any work, one failure never sinks a sweep."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import FAST, ROOT, bad_input, compose_config, find_run_files, read_run, run_cli, stop_in_epoch, write_mnist

from trainer.engine.fit import fit
from trainer.errors import ConfigError
from trainer.records import machine_figures, read_metrics

TIMING_KEYS = set(machine_figures())
# big enough that an epoch takes a noticeable fraction of a second, so the kill lands mid-run
KILL_RUN = [
    *FAST,
    "dataset.train_size=6144",
    "trainer.batch_size=64",
    "trainer.epochs=5",
    "optimizer=momentum",
    "optimizer.lr=0.02",
]


def numbers(run_dir: Path) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in TIMING_KEYS} for row in read_metrics(run_dir)]


@pytest.mark.slow
def test_resume_after_sigkill_gives_the_uninterrupted_numbers(tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert run_cli([*KILL_RUN, f"hydra.run.dir={whole}"]).returncode == 0

    env = {**os.environ, "WANDB_MODE": "offline"}
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "run.py"), *KILL_RUN, "logger=wandb", f"hydra.run.dir={killed}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    while len(read_metrics(killed)) < 2 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    done = len(read_metrics(killed))
    assert 2 <= done < 5, "the kill must land mid-run"
    assert (
        not (killed / "summary.json").exists()
        or json.loads((killed / "summary.json").read_text())["status"] != "completed"
    )

    # the same command again: it finds the checkpoint in its folder and continues
    result = run_cli([*KILL_RUN, "logger=wandb", f"hydra.run.dir={killed}"], env={"WANDB_MODE": "offline"})
    assert result.returncode == 0, result.stderr
    assert numbers(killed) == numbers(whole)
    # W&B continues the same run: both offline logs carry one run id
    ids = {read_run(f).run.run_id for f in find_run_files(killed)}
    assert len(find_run_files(killed)) == 2 and len(ids) == 1
    assert (killed / "steps.csv").read_text() == (whole / "steps.csv").read_text()
    summary = json.loads((killed / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs_completed"] == 5


@pytest.mark.slow
def test_resume_key_points_at_a_run_folder(tmp_path):
    first = tmp_path / "first"
    assert run_cli([*FAST, "trainer.epochs=1", f"hydra.run.dir={first}"]).returncode == 0
    # the same run, extended to 2 epochs, is another config: resuming it is refused, nothing is touched
    before = (first / "metrics.jsonl").read_text()
    result = run_cli([*FAST, "trainer.epochs=2", f"resume={first}"])
    assert result.returncode == 2
    assert "holds a checkpoint of a different config: trainer.epochs (1 in the checkpoint, 2 now)" in result.stderr
    assert (first / "metrics.jsonl").read_text() == before
    # the same config resumes (here: nothing left to train) and keeps every number
    result = run_cli([*FAST, "trainer.epochs=1", f"resume={first}"])
    assert result.returncode == 0, result.stderr
    assert (first / "metrics.jsonl").read_text() == before


@pytest.mark.slow
def test_resume_folder_without_checkpoint(tmp_path):
    result = run_cli([*FAST, f"resume={tmp_path}"])
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == f"schedlab: error: resume='{tmp_path}' holds no checkpoint.pt: point it at a run folder that has one"
    )


@pytest.mark.slow
def test_divergence_is_a_result_and_the_sweep_goes_on(tmp_path):
    sweep = tmp_path / "sweep"
    result = run_cli(["-m", *FAST, "trainer.epochs=2", "optimizer.lr=100,0.1", f"hydra.sweep.dir={sweep}"])
    assert result.returncode == 0, result.stderr
    diverged = json.loads((sweep / "0" / "summary.json").read_text())
    completed = json.loads((sweep / "1" / "summary.json").read_text())
    assert diverged["status"] == "diverged" and completed["status"] == "completed"
    at = diverged["diverged_at"]
    assert at["epoch"] == 1 and at["lr"] == 100.0
    # the step named is the first whose loss is not finite or above 10x the first step's
    losses = [float(line.split(",")[3]) for line in (sweep / "0" / "steps.csv").read_text().splitlines()[1:]]
    first_bad = next(i for i, v in enumerate(losses) if not np.isfinite(v) or v > 10 * losses[0])
    assert at["step"] == first_bad + 1 and float(at["loss"]) == losses[first_bad]
    assert read_metrics(sweep / "0") == []  # no row for the epoch that blew up


@pytest.mark.parametrize("check_every", [1, 5, 1000])
def test_divergence_is_found_whatever_the_check_interval(tmp_path, check_every):
    cfg = compose_config(
        [*FAST, "trainer.epochs=1", "optimizer.lr=100", f"trainer.divergence.check_every={check_every}"]
    )
    summary = fit(cfg, tmp_path / "run", {})
    assert summary["status"] == "diverged" and summary["diverged_at"]["step"] == 2


@pytest.mark.slow
def test_truncated_dataset_file_is_named_before_training(tmp_path):
    write_mnist(tmp_path / "data", truncate=True)
    result = run_cli(
        [
            "dataset=mnist",
            f"dataset.root={tmp_path / 'data'}",
            "dataset.download=false",
            "logger=none",
            "trainer.batch_size=64",
            f"hydra.run.dir={tmp_path / 'run'}",
        ]
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "t10k-images-idx3-ubyte is truncated" in lines[0] and "Traceback" not in result.stderr
    assert read_metrics(tmp_path / "run") == []


@pytest.mark.slow
def test_missing_dataset_is_one_line_with_the_fix(tmp_path):
    result = run_cli(
        [
            "dataset=mnist",
            f"dataset.root={tmp_path}",
            "dataset.download=false",
            "logger=none",
            f"hydra.run.dir={tmp_path / 'run'}",
        ]
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "dataset=mnist: no data found" in result.stderr


@pytest.mark.parametrize(
    "overrides,expected",
    [
        (["scheduler=multistep", "scheduler.milestones=[20,10]"], "scheduler.milestones must be strictly increasing"),
        (["scheduler=cosine_warmup", "trainer.epochs=5"], "scheduler.warmup.epochs must be < trainer.epochs (5)"),
        (
            ["scheduler=cosine", "scheduler.horizon=3", "scheduler.warmup.epochs=3"],
            "scheduler.horizon must be > scheduler.warmup.epochs",
        ),
        (["scheduler=step", "scheduler.gamma=0"], "scheduler.gamma must be > 0"),
        (["scheduler=cosine", "scheduler.final_lr=1.0"], "scheduler.final_lr must be <= the base LR"),
        (["scheduler.interval=sometimes"], "scheduler.interval must be one of 'epoch', 'step'"),
        (["scheduler=cosin"], "scheduler='cosin' is not an option: use one of constant, cosine,"),
    ],
)
def test_schedule_bad_input_is_one_line(capsys, overrides, expected):
    assert expected in bad_input(capsys, *overrides)


def test_deterministic_mode_turns_on_torch_determinism(tmp_path):
    cfg = compose_config([*FAST, "trainer.epochs=1", "trainer.max_steps_per_epoch=2", "trainer.deterministic=true"])
    try:
        fit(cfg, tmp_path / "run", {})
        assert torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(False)


def test_cuda_requested_without_cuda(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    cfg = compose_config([*FAST, "trainer.device=cuda"])
    with pytest.raises(ConfigError, match="trainer.device='cuda' is not available on this machine"):
        fit(cfg, tmp_path / "run", {})


def test_a_run_that_failed_before_its_first_checkpoint_can_run_again(tmp_path):
    run = tmp_path / "run"
    cfg = compose_config([*FAST, "trainer.epochs=1", "trainer.device=cuda"])
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ConfigError):
        fit(cfg, run, {})
    assert json.loads((run / "summary.json").read_text())["status"] == "failed"
    summary = fit(compose_config([*FAST, "trainer.epochs=1"]), run, {})
    assert summary["status"] == "completed"


@pytest.mark.slow
def test_resuming_an_lr_find_run_keeps_the_found_lr(tmp_path, monkeypatch):
    overrides = [
        *FAST,
        "trainer.epochs=2",
        "trainer.lr_find=true",
        "lr_find.num_steps=20",
        "scheduler=cosine",
        "scheduler.horizon=null",
        "scheduler.final_lr=0",
        "scheduler.interval=step",
    ]
    fit(compose_config(overrides), tmp_path / "whole", {})

    import trainer.engine.fit as loop

    real_evaluate = stop_in_epoch(monkeypatch, tmp_path / "cut", 2)  # the process dies before epoch 2 is evaluated
    with pytest.raises(KeyboardInterrupt):
        fit(compose_config(overrides), tmp_path / "cut", {})
    assert json.loads((tmp_path / "cut" / "summary.json").read_text())["status"] == "interrupted"
    assert len(read_metrics(tmp_path / "cut")) == 1
    monkeypatch.setattr(loop, "evaluate", real_evaluate)
    fit(compose_config(overrides), tmp_path / "cut", {})
    assert numbers(tmp_path / "cut") == numbers(tmp_path / "whole")
    assert (tmp_path / "cut" / "steps.csv").read_text() == (tmp_path / "whole" / "steps.csv").read_text()


def test_sweeps_a_config_defines_are_checked_before_any_job(capsys):
    # the d2l study's arms come from hydra.sweeper.params; its warmup arm cannot run in 5 epochs
    assert "scheduler.warmup.epochs must be < trainer.epochs (5)" in bad_input(
        capsys, "-m", "experiment=d2l_schedulers", "trainer.epochs=5"
    )


def test_glob_sweeps_pass_the_check(capsys):
    from trainer.cli import precheck

    precheck(["-m", "scheduler=glob(cosine*)", "dataset=synthetic"])  # no exit
    assert capsys.readouterr().err == ""


def test_a_sweep_without_multirun_is_one_line(capsys):
    assert "seed=0,1 is a sweep: add -m" in bad_input(capsys, "seed=0,1")
    # the line names the sweep as typed, whatever the other overrides (Hydra normalizes false to False)
    assert "error: seed=0,1 is a sweep: add -m" in bad_input(capsys, "trainer.progress=false", "seed=0,1")
    assert "error: seed=0,1 optimizer.lr=0.1,0.2 is a sweep" in bad_input(capsys, "seed=0,1", "optimizer.lr=0.1,0.2")


@pytest.mark.slow
def test_schedule_task_with_an_unknown_schedule_to_compare(tmp_path):
    result = run_cli(["task=schedule", "schedule_plot.compare=[cosinee]", f"hydra.run.dir={tmp_path}"])
    assert result.returncode == 2
    assert result.stderr.strip().startswith(
        "schedlab: error: scheduler='cosinee' is not an option: use one of constant,"
    )
    assert result.stderr.count("\n") == 1


@pytest.mark.parametrize(
    "summary,name,expected",
    [
        ({"status": "completed", "best_test_acc": 0.9}, "best_test_acc", 0.9),
        ({"status": "diverged", "best_test_acc": 0.5}, "best_test_acc", 0.0),
        ({"status": "diverged"}, "final_test_loss", 1e9),
        ({"status": "completed", "final_test_loss": float("nan")}, "final_test_loss", 1e9),
    ],
)
def test_sweep_objective_is_finite_and_worst_for_runs_that_did_not_complete(summary, name, expected):
    from trainer.cli import objective

    assert objective(summary, name) == expected
