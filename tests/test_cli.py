"""What a person sees on the command line: task=eval, debug=fast, the config once at the start,
--help with schedlab's own groups, and one line (not a traceback) for Ctrl-C, SIGTERM and a failing sweep job."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import CONF, FAST, ROOT, compose_config, run_cli

from trainer.cli import EXIT_INTERRUPTED, EXIT_TERMINATED, precheck
from trainer.config import validate
from trainer.records import read_metrics, read_summary

TREE_TITLE = "schedlab: config of the run in"
SHORT = [*FAST, "trainer.epochs=2", "trainer.max_steps_per_epoch=4"]


def stderr_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


# ------------------------------------------------------------------------------------------ task=eval


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("eval") / "run"
    result = run_cli([*SHORT, f"hydra.run.dir={run}"])
    assert result.returncode == 0, result.stderr
    return run


@pytest.mark.slow
def test_eval_gives_the_numbers_of_the_runs_last_epoch(trained):
    overrides_before = (trained / ".hydra" / "overrides.yaml").read_text()
    result = run_cli(["task=eval", f"resume={trained}"])
    assert result.returncode == 0, result.stderr
    last = read_metrics(trained)[-1]
    figures = json.loads((trained / "eval.json").read_text())
    assert (figures["checkpoint"], figures["epoch"]) == ("checkpoint.pt", 2)
    assert (figures["val_acc"], figures["test_acc"]) == (last["val_acc"], last["test_acc"])
    assert figures["val_loss"] == pytest.approx(last["val_loss"], rel=1e-6)
    assert figures["test_loss"] == pytest.approx(last["test_loss"], rel=1e-6)
    lines = result.stdout.strip().splitlines()
    assert lines[-1].startswith("eval of checkpoint.pt (epoch 2): val acc ") and lines[-1].endswith(
        f"{trained / 'eval.json'}"
    )
    assert result.stdout.count(TREE_TITLE) == 1 and "dataset (synthetic): name=synthetic" in result.stdout
    assert (trained / ".hydra" / "overrides.yaml").read_text() == overrides_before  # the training run's record stays
    assert read_summary(trained)["status"] == "completed"


@pytest.mark.slow
def test_eval_of_the_best_checkpoint(trained):
    result = run_cli(["task=eval", f"resume={trained}", "eval.checkpoint=best"])
    assert result.returncode == 0, result.stderr
    figures = json.loads((trained / "eval.json").read_text())
    if (trained / "best.pt").exists():
        assert figures["checkpoint"] == "best.pt" and figures["epoch"] == read_summary(trained)["best_epoch"]
    else:  # a run that saved no best.pt: the last epoch's, and it says so
        assert figures["checkpoint"] == "checkpoint.pt" and "no best.pt" in figures["note"]


@pytest.mark.slow
def test_eval_takes_the_training_command_and_refuses_another_config(trained):
    same = run_cli(["task=eval", f"resume={trained}", *SHORT, "trainer.eval_batch_size=100"])
    assert same.returncode == 0, same.stderr
    assert json.loads((trained / "eval.json").read_text())["eval_batch_size"] == 100
    other = run_cli(["task=eval", f"resume={trained}", "dataset=synthetic", "dataset.train_size=4096"])
    assert other.returncode == 2
    assert stderr_lines(other.stderr) == [other.stderr.strip()]
    assert other.stderr.startswith(
        "schedlab: error: dataset.train_size=4096 does not match the run (dataset.train_size=2048"
    )


@pytest.mark.slow
def test_eval_without_a_checkpoint_is_refused_in_one_line(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_cli(["task=eval", f"resume={empty}"])
    assert result.returncode == 2
    assert (
        result.stderr.strip() == f"schedlab: error: resume={str(empty)!r} holds no checkpoint.pt: nothing to evaluate"
    )
    assert not (empty / "eval.json").exists() and not (empty / ".hydra").exists()
    result = run_cli(["task=eval"])
    assert result.returncode == 2 and "task='eval' is not allowed: needs resume=<run folder>" in result.stderr


# ------------------------------------------------------------------------------------------ debug=fast


GROUPS = sorted(p.name for p in CONF.iterdir() if p.is_dir() and p.name not in ("hydra", "debug"))
OPTIONS = [f"{g}={p.stem}" for g in GROUPS for p in sorted((CONF / g).glob("*.yaml"))]


@pytest.mark.parametrize("option", OPTIONS)
@pytest.mark.slow
def test_debug_fast_composes_with_every_option(option):
    cfg = compose_config(["debug=fast", option])
    validate(cfg)
    t = cfg.trainer
    assert (t.max_steps_per_epoch, t.checkpoint, t.progress) == (5, False, False)
    if not option.startswith("logger="):  # a logger on the command line wins over debug=fast's none
        assert cfg.logger._target_ == "trainer.tracking.NullTracker"
    assert t.epochs >= 2


def test_debug_fast_keeps_a_run_long_enough_for_its_warmup():
    assert compose_config(["debug=fast"]).trainer.epochs == 2
    assert compose_config(["debug=fast", "scheduler=cosine_warmup"]).trainer.epochs == 6  # 5 warmup epochs
    assert compose_config(["debug=fast", "scheduler=step", "scheduler.warmup.epochs=3"]).trainer.epochs == 4
    assert compose_config(["debug=fast", "trainer.epochs=3"]).trainer.epochs == 3  # the command line wins


@pytest.mark.parametrize("scheduler,epochs", [("onecycle", 2), ("plateau", 2), ("cosine_warmup", 6)])
@pytest.mark.slow
def test_debug_fast_runs_in_seconds(tmp_path, scheduler, epochs):
    run = tmp_path / "run"
    started = time.perf_counter()
    result = run_cli(["debug=fast", f"scheduler={scheduler}", *FAST, f"hydra.run.dir={run}"])
    assert result.returncode == 0, result.stderr
    assert time.perf_counter() - started < 120
    rows = read_metrics(run)
    assert [r["epoch"] for r in rows] == list(range(1, epochs + 1))
    steps = (run / "steps.csv").read_text().splitlines()[1:]
    assert len(steps) == 5 * epochs
    assert not (run / "checkpoint.pt").exists() and not (run / "tensorboard").exists() and not (run / "wandb").exists()
    assert result.stdout.count(TREE_TITLE) == 1
    assert f"  trainer (default): epochs={epochs} " in result.stdout


# ------------------------------------------------------------------------------------------ --help, options


def test_help_lists_schedlabs_groups_and_options_and_no_schema():
    result = run_cli(["--help"], env={"PYTHONPROFILEIMPORTTIME": "1"})  # stderr: every module imported
    assert result.returncode == 0, result.stderr
    imported = {
        line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")
    }
    assert "trainer.cli" in imported and not [
        m for m in imported if m.split(".")[0] == "torch"
    ]  # --help loads no torch
    assert "_schema" not in result.stdout
    listed: dict[str, list[str]] = {}
    block = result.stdout.split("config groups", 1)[1].split("\n\n", 1)[0].splitlines()[1:]
    for line in block:
        if not line.startswith("   "):  # "  group  option option ...", continued on more indented lines
            group, *options = line.split()
            listed[group] = options
        else:
            listed[group] += line.split()
    for group in sorted(p.name for p in CONF.iterdir() if p.is_dir() and p.name != "hydra"):
        options = sorted(p.stem for p in (CONF / group).glob("*.yaml"))
        assert sorted(o.rstrip("*") for o in listed[group]) == options, group
    assert "fashion_mnist*" in listed["dataset"] and "sgd*" in listed["optimizer"]  # the defaults marked
    assert {"basic*", "joblib", "slurm"} <= set(listed["hydra/launcher"])
    assert "task=eval resume=<run folder>" in result.stdout and "debug=fast" in result.stdout


@pytest.mark.parametrize("argv", [["optimizer=adam_schema"], ["-m", "optimizer=sgd,adam_schema"]])
def test_a_schema_is_not_an_option(capsys, argv):
    with pytest.raises(SystemExit) as e:
        precheck(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert (
        err
        == "schedlab: error: optimizer='adam_schema' is not an option: use one of adadelta, adagrad, adam, adamw, adamw_schedulefree, momentum, nesterov, rmsprop, sgd, sgd_schedulefree"
    )


def test_scheduler_schema_is_not_an_option_either(capsys):
    with pytest.raises(SystemExit):
        precheck(["scheduler=cosine_schema"])
    assert "scheduler='cosine_schema' is not an option: use one of " in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ sweeps


@pytest.mark.slow
def test_a_failing_sweep_job_is_one_line_and_the_sweep_fails(tmp_path):
    empty, sweep = tmp_path / "no-data", tmp_path / "sweep"
    empty.mkdir()
    result = run_cli(
        [
            "-m",
            "dataset=mnist,synthetic",
            f"dataset.root={empty}",
            "dataset.download=false",
            "dataset.val_size=0.1",
            "logger=none",
            "trainer.progress=false",
            "trainer.epochs=1",
            "trainer.max_steps_per_epoch=2",
            f"hydra.sweep.dir={sweep}",
        ]
    )
    assert result.returncode != 0  # Hydra sees the failure
    assert "Traceback" not in result.stderr
    failed = [line for line in stderr_lines(result.stderr) if line.startswith("schedlab: job 0 failed: ")]
    assert (
        len(failed) == 1
        and "dataset=mnist: no data found" in failed[0]
        and failed[0].endswith(f"; results in {sweep / '0'}")
    )
    assert read_summary(sweep / "0")["status"] == "failed" and read_summary(sweep / "1")["status"] == "completed"
    assert TREE_TITLE not in result.stdout  # a sweep job prints its folder, not a tree
    assert f"schedlab: job 1: results in {sweep / '1'}" in result.stdout


# ------------------------------------------------------------------------------------------ Ctrl-C, SIGTERM


SLOW = [*FAST, "trainer.batch_size=64", "trainer.epochs=3"]


def start_and_signal(run: Path, sig: int) -> subprocess.CompletedProcess:
    """run.py SLOW in a subprocess, sent `sig` once its first epoch is saved."""
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONUNBUFFERED": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    args = [sys.executable, str(ROOT / "run.py"), *SLOW, f"hydra.run.dir={run}"]
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while (
        not (read_metrics(run) and (run / "checkpoint.pt").exists()) and proc.poll() is None and time.time() < deadline
    ):
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


@pytest.mark.slow
def test_ctrl_c_is_one_line_exit_130_and_the_same_command_resumes(tmp_path):
    run = tmp_path / "run"
    result = start_and_signal(run, signal.SIGINT)
    assert result.returncode == EXIT_INTERRUPTED == 130
    done = read_summary(run)["epochs_completed"]
    assert stderr_lines(result.stderr) == [
        f"schedlab: interrupted at epoch {done + 1}; results in {run}; run the same command to resume"
    ]
    assert read_summary(run)["status"] == "interrupted"
    assert result.stdout.count(TREE_TITLE) == 1
    first = read_metrics(run)[0]
    again = run_cli([*SLOW, f"hydra.run.dir={run}"])
    assert again.returncode == 0, again.stderr
    rows = read_metrics(run)
    assert [r["epoch"] for r in rows] == [1, 2, 3] and rows[0] == first  # epoch 1 kept, not run again
    assert read_summary(run)["status"] == "completed"


@pytest.mark.slow
def test_sigterm_is_one_line_and_exit_143(tmp_path):
    run = tmp_path / "run"
    result = start_and_signal(run, signal.SIGTERM)
    assert result.returncode == EXIT_TERMINATED == 143
    lines = stderr_lines(result.stderr)
    assert len(lines) == 1 and lines[0].startswith("schedlab: terminated (SIGTERM) at epoch ")
    assert lines[0].endswith(f"; results in {run}; run the same command to resume")
    assert read_summary(run)["status"] == "interrupted"
