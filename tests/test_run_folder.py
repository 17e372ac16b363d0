"""The run folder's rules: the checkpoint is the commit point, one folder has one writer, a damaged or foreign
checkpoint is refused in one line, faults leave a summary and no temp files, SIGTERM is an interruption."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import FAST, ROOT, compose_config, run_cli, stop_in_epoch

import trainer.records
from trainer.engine.fit import fit
from trainer.errors import ConfigError
from trainer.records import RunFolder, machine_figures, read_metrics

TIMING_KEYS = set(machine_figures())
RUN = [*FAST, "trainer.epochs=2", "trainer.max_steps_per_epoch=4"]


def numbers(run_dir: Path) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in TIMING_KEYS} for row in read_metrics(run_dir)]


def killed_in(run_dir: Path, patch: str) -> None:
    """Run fit() in a child process that `patch` makes SIGKILL itself at some moment of epoch 1."""
    script = "\n".join(
        [
            "import os, signal, sys",
            f"sys.path.insert(0, {str(ROOT / 'tests')!r})",
            "from helpers import compose_config",
            "import trainer.engine.checkpoint, trainer.records",
            "from trainer.engine.fit import fit",
            "die = lambda: os.kill(os.getpid(), signal.SIGKILL)",
            patch,
            f"fit(compose_config({RUN!r}), {str(run_dir)!r}, {{}})",
        ]
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == -signal.SIGKILL, done.stderr


@pytest.mark.parametrize(
    "moment,patch",
    [
        # the first epoch's row is in metrics.jsonl, its checkpoint not yet
        (
            "after the first row",
            "real = trainer.records.RunFolder.append_epoch\n"
            "trainer.records.RunFolder.append_epoch = lambda self, *a: (real(self, *a), die())",
        ),
        # the first checkpoint is half-written: its temp file exists, the rename has not happened
        pytest.param(
            "inside the first checkpoint write",
            "real = trainer.records.os.replace\n"
            "trainer.records.os.replace = lambda src, dst: die() if str(dst).endswith('checkpoint.pt') else real(src, dst)",
            marks=pytest.mark.slow,
        ),
    ],
)
def test_a_kill_in_the_first_epoch_leaves_a_folder_the_same_command_finishes(tmp_path, moment, patch):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    fit(compose_config(RUN), whole, {})
    killed_in(killed, patch)
    assert not (killed / "summary.json").exists()
    summary = fit(compose_config(RUN), killed, {})  # no "already holds the results of a run"
    assert summary.status == "completed"
    assert numbers(killed) == numbers(whole)
    assert (killed / "steps.csv").read_text() == (whole / "steps.csv").read_text()
    assert not list(killed.glob(".*.tmp*")), "the half-written temp file is cleaned up"


def test_a_finished_run_is_never_written_over(tmp_path):
    cfg = compose_config([*RUN, "trainer.checkpoint=false"])
    fit(cfg, tmp_path, {})
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    with pytest.raises(ConfigError, match="already holds the results of a run"):
        fit(cfg, tmp_path, {})
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file() and p.name in before} == before


@pytest.mark.slow
def test_a_second_writer_of_one_run_folder_is_refused_in_one_line(tmp_path):
    run = tmp_path / "run"
    with RunFolder(run).owned():
        result = run_cli([*RUN, f"hydra.run.dir={run}"])
    assert result.returncode == 2
    assert result.stderr.startswith(f"schedlab: error: {run} is in use by another process")
    assert result.stderr.count("\n") == 1
    assert not (run / "metrics.jsonl").exists()
    # once the owner is gone the folder is free again
    assert fit(compose_config(RUN), run, {}).status == "completed"


@pytest.mark.slow
def test_runs_launched_together_get_folders_of_their_own(tmp_path):
    """`for s in 0 1; do python run.py seed=$s & done`: default folder names must not collide."""
    env = {**os.environ, "WANDB_MODE": "disabled"}
    procs = [
        subprocess.Popen(
            [sys.executable, str(ROOT / "run.py"), *RUN, f"seed={seed}"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in (0, 1)
    ]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    folders = sorted(p.parent for p in (tmp_path / "outputs" / "runs").rglob("summary.json"))
    assert len(folders) == 2
    assert sorted(json.loads((f / "summary.json").read_text())["seed"] for f in folders) == [0, 1]
    assert all(len(read_metrics(f)) == 2 for f in folders)


@pytest.mark.slow
def test_a_damaged_checkpoint_is_named_with_what_to_do(tmp_path):
    run = tmp_path / "run"
    fit(compose_config([*RUN, "trainer.epochs=1"]), run, {})
    (run / "summary.json").unlink()  # as if killed before the end
    (run / "checkpoint.pt").write_bytes(b"not a checkpoint")
    result = run_cli([*RUN, "trainer.epochs=1", f"hydra.run.dir={run}"])
    assert result.returncode == 2
    line = result.stderr.strip()
    assert line.startswith(f"schedlab: error: {run / 'checkpoint.pt'} cannot be loaded") and "delete it" in line
    assert result.stderr.count("\n") == 1


class Payload:
    """A pickle that runs code when unpickled: what a hostile checkpoint.pt would hold."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_checkpoint_that_would_run_code_is_refused_without_running_it(tmp_path):
    run, marker = tmp_path / "run", tmp_path / "pwned"
    run.mkdir()
    torch.save({"config": {}, "state": {}, "x": Payload(marker)}, run / "checkpoint.pt")
    with pytest.raises(ConfigError, match="cannot be loaded"):
        fit(compose_config(RUN), run, {})
    assert not marker.exists()


@pytest.mark.slow
def test_a_full_disk_mid_run_leaves_a_summary_and_no_temp_files(tmp_path, monkeypatch):
    run = tmp_path / "run"
    real_fsync, calls = os.fsync, []

    def fsync(fd):
        # the checkpoint of epoch 2 hits a full disk
        if os.readlink(f"/proc/self/fd/{fd}").endswith(f".checkpoint.pt.tmp{os.getpid()}"):
            calls.append(fd)
            if len(calls) == 2:
                raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(trainer.records.os, "fsync", fsync)
    with pytest.raises(OSError, match="No space left"):
        fit(compose_config(RUN), run, {})
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "failed" and "No space left on device" in summary["error"]
    assert summary["epochs_completed"] == len(read_metrics(run)) == 2  # the summary tells what the files hold
    assert not list(run.glob(".*.tmp*"))
    monkeypatch.setattr(trainer.records.os, "fsync", real_fsync)
    assert fit(compose_config(RUN), run, {}).status == "completed"  # resumes from epoch 1's checkpoint


@pytest.mark.slow
def test_sigterm_is_an_interruption_that_resumes(tmp_path):
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    slow = [*FAST, "dataset.train_size=6144", "trainer.batch_size=64", "trainer.epochs=4"]
    assert run_cli([*slow, f"hydra.run.dir={whole}"]).returncode == 0
    env = {**os.environ, "WANDB_MODE": "disabled"}
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "run.py"), *slow, f"hydra.run.dir={cut}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    while not read_metrics(cut) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)
    assert proc.returncode != 0
    summary = json.loads((cut / "summary.json").read_text())
    assert summary["status"] == "interrupted" and "SIGTERM" in summary["error"]
    assert 1 <= summary["epochs_completed"] < 4
    assert run_cli([*slow, f"hydra.run.dir={cut}"]).returncode == 0
    assert numbers(cut) == numbers(whole)


def test_resuming_with_another_thread_count_says_so(tmp_path, monkeypatch):
    """trainer.num_threads=null takes the machine's cores: a requeued job may land on another machine."""
    import trainer.engine.fit as loop
    import trainer.engine.setup

    run = tmp_path / "run"
    real_evaluate = stop_in_epoch(monkeypatch, run, 2)
    monkeypatch.setattr(trainer.engine.setup, "DEFAULT_THREADS", 1)
    with pytest.raises(KeyboardInterrupt):
        fit(compose_config(RUN), run, {})
    monkeypatch.setattr(loop, "evaluate", real_evaluate)
    monkeypatch.setattr(trainer.engine.setup, "DEFAULT_THREADS", 2)
    with pytest.warns(RuntimeWarning, match="resuming with 2 CPU threads where the run had 1"):
        fit(compose_config(RUN), run, {})


def test_an_lr_range_test_that_blew_up_at_once_is_not_trained_from(tmp_path):
    run = tmp_path / "run"
    cfg = compose_config(
        [*RUN, "trainer.lr_find=true", "lr_find.start_lr=10", "lr_find.end_lr=1e9", "lr_find.num_steps=50"]
    )
    with pytest.raises(ConfigError, match="points are needed before an LR can be suggested"):
        fit(cfg, run, {})
    assert json.loads((run / "summary.json").read_text())["status"] == "failed"
    assert (run / "lr_find.png").exists()


@pytest.mark.slow
def test_a_size_too_large_to_allocate_is_one_line_and_recorded(tmp_path):
    run = tmp_path / "run"
    result = run_cli([*RUN, "dataset.train_size=10000000000", f"hydra.run.dir={run}"])
    assert result.returncode == 2
    assert (
        result.stderr.startswith("schedlab: error: out of memory (tried to allocate ")
        and "dataset.train_size" in result.stderr
    )
    assert result.stderr.count("\n") == 1
    assert json.loads((run / "summary.json").read_text())["status"] == "failed"


@pytest.mark.slow
def test_an_interrupted_sweep_continues_in_its_folder(tmp_path):
    """The README's recipe: the same command with the sweep's folder keeps finished jobs and runs the rest."""
    sweep = tmp_path / "sweep"
    command = ["-m", *RUN, "seed=0,1", f"hydra.sweep.dir={sweep}"]
    assert run_cli(command).returncode == 0
    finished = (sweep / "0" / "metrics.jsonl").read_text()
    for name in ("summary.json", "checkpoint.pt", "metrics.jsonl", "steps.csv"):  # job 1 never got to run
        (sweep / "1" / name).unlink()
    result = run_cli(command)
    assert result.returncode == 0, result.stderr
    assert (sweep / "0" / "metrics.jsonl").read_text() == finished
    assert [json.loads((sweep / j / "summary.json").read_text())["status"] for j in "01"] == ["completed"] * 2
    assert len(read_metrics(sweep / "1")) == 2
