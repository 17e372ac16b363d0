"""The task inside Hydra: which job of which sweep this is, the task run, and how it ends (the closing line and
the objective, one line for Ctrl-C, SIGTERM or a failed sweep job)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from hydra.errors import CompactHydraException

from trainer.cli.lines import (
    CONFIG_ERRORS,
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    error_line,
    fail,
    interrupted_line,
    objective,
    out_of_memory,
    outcome,
)
from trainer.cli.show import show_config
from trainer.config import validate
from trainer.records import RunFolder, Summary


def job_info() -> dict:
    """Which job of which sweep this is, from Hydra's runtime config."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc = HydraConfig.get()
    multirun = hc.mode == RunMode.MULTIRUN
    return {
        "overrides": list(hc.overrides.task),
        "num": hc.job.num if multirun else None,
        "multirun": multirun,
        "sweep": "/".join(Path(hc.sweep.dir).parts[-2:]) if multirun else None,
        "output_dir": hc.runtime.output_dir,
        "slot": parallel_slot(hc.launcher, hc.job.num) if multirun else None,
    }


def parallel_slot(launcher, num: int) -> int | None:
    """The terminal line of job `num`'s progress bar where jobs run in parallel processes that share one
    terminal (joblib): job N takes line N mod the number of parallel jobs, so bars never overwrite each other."""
    if "joblib" not in str(launcher.get("_target_", "")):
        return None
    n_jobs = int(launcher.get("n_jobs") or -1)
    if n_jobs < 0:  # joblib's convention: -1 all CPUs, -2 all but one, ...
        n_jobs = max(1, (os.cpu_count() or 1) + 1 + n_jobs)
    return num % n_jobs


def sweeper_samples() -> bool:
    """Whether this sweep's sweeper samples its jobs (Optuna): one failed trial must not end its study."""
    from hydra.core.hydra_config import HydraConfig

    return "optuna" in str(HydraConfig.get().sweeper.get("_target_", "")).lower()


class JobFailed(CompactHydraException):
    """A sweep job's failure as Hydra reports it: one line (the job printed its own, with the error, above);
    the sweep still fails."""


def run_task(cfg) -> float | None:
    """Dispatch on cfg.task; returns the sweep objective for train. What a person sees: the config once at
    the start, one line at the end; Ctrl-C (SIGTERM) one line and exit 130 (143); a failing sweep job one line
    naming the job, the error and its folder, the sweep still failing. HYDRA_FULL_ERROR=1 keeps tracebacks."""
    job = job_info()
    run_dir = Path(cfg.resume) if cfg.resume else Path(job["output_dir"])
    try:
        return _run_task(cfg, job, run_dir)
    except KeyboardInterrupt as e:  # trainer.engine.fit.Terminated (SIGTERM) too: fit has recorded it
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        code = EXIT_TERMINATED if type(e).__name__ == "Terminated" else EXIT_INTERRUPTED
        print(interrupted_line(cfg, job, run_dir, terminated=code == EXIT_TERMINATED), file=sys.stderr, flush=True)
        sys.exit(code)
    except Exception as e:
        if not job["multirun"] or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"schedlab: job {job['num']} failed: {error_line(e)}; results in {run_dir}", file=sys.stderr, flush=True)
        raise JobFailed(f"schedlab: the sweep has a failed job: job {job['num']} (its line above says why)") from None


def _run_task(cfg, job: dict, run_dir: Path) -> float | None:
    """Inside a sweep, a job whose config cannot work is recorded as failed in its folder; a sweeper that
    samples its jobs (Optuna) gets the worst objective for it and goes on with the next trial."""
    try:
        validate(cfg)
    except CONFIG_ERRORS as e:
        if not job["multirun"]:
            fail(error_line(e), e)
        _record_refused(cfg, job, run_dir, e)
        if not sweeper_samples():
            raise
        print(f"schedlab: job {job['num']} failed: {error_line(e)}", file=sys.stderr, flush=True)
        return None if cfg.objective is None else objective(Summary(status="failed"), cfg.objective)
    from trainer import tasks

    try:
        summary = tasks.run(cfg, job, run_dir, lambda c, choices=None: show_config(c, job, run_dir, choices))
        if isinstance(summary, Summary):  # task=train: the closing line, and the sweep's objective
            print(outcome(summary, run_dir), flush=True)
            return None if cfg.objective is None else objective(summary, cfg.objective)
    except CONFIG_ERRORS as e:
        if job["multirun"]:
            raise
        fail(error_line(e), e)
    except (MemoryError, RuntimeError) as e:  # torch's OutOfMemoryError is a RuntimeError
        if job["multirun"] or not out_of_memory(e):
            raise
        fail(
            f"out of memory ({out_of_memory(e)}): lower what sets the size (dataset.train_size, the model's widths, "
            f"trainer.batch_size, trainer.eval_batch_size); the run's folder records it: {run_dir}",
            e,
        )
    return None


def _record_refused(cfg, job: dict, run_dir: Path, e: BaseException) -> None:
    """A training job refused for its config gets a summary.json saying so, as a run that failed."""
    if cfg.task == "train":
        summary = Summary(status="failed", task=cfg.task, seed=int(cfg.seed), overrides=job["overrides"])
        summary.error = f"{type(e).__name__}: {error_line(e)}"
        RunFolder(run_dir).write_summary(summary)
