"""`hydra/launcher=stacked`: a sweep whose jobs train in stacks (trainer/engine/stack.py), one process each stack.

The launcher composes every job's config and creates every job's folder and `.hydra/` as Hydra's basic
launcher does (through Hydra's own `run_job`), partitions the training jobs into stacks that can share one
process (`stack.plan`), trains each stack, and returns one JobReturn per job with its objective, so a
sweeper (Optuna too: a batch of trials is a stack) works unchanged. A job that cannot share a process with
any other runs as an ordinary job, after one line saying why.
"""

from __future__ import annotations

import copy
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from hydra.core.utils import JobReturn, JobStatus, configure_log, run_job, setup_globals
from omegaconf import DictConfig, OmegaConf, open_dict

from trainer.cli import EXIT_INTERRUPTED, EXIT_TERMINATED, fail, job_info, objective, outcome
from trainer.config import validate
from trainer.engine import stack
from trainer.errors import ConfigError

log = logging.getLogger("schedlab")


def launch(launcher, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[JobReturn]:
    setup_globals()
    config = launcher.config
    configure_log(config.hydra.hydra_logging, config.hydra.verbose)
    sweep_dir = Path(str(config.hydra.sweep.dir))
    sweep_dir.mkdir(parents=True, exist_ok=True)
    configs = []
    for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
        sweep_config = launcher.hydra_context.config_loader.load_sweep_config(config, list(overrides))
        with open_dict(sweep_config):
            sweep_config.hydra.job.id = idx
            sweep_config.hydra.job.num = idx
        configs.append(sweep_config)
    tasks = [_task_config(c) for c in configs]
    candidates = [i for i, c in enumerate(tasks) if _stackable(c)]
    alone = {}
    for i in list(candidates):  # a job folder that a run of its own left a checkpoint in continues on its own
        if (_job_dir(configs[i]) / "checkpoint.pt").exists():
            candidates.remove(i)
            alone[i] = f"its folder holds a checkpoint of a run of its own ({_job_dir(configs[i]) / 'checkpoint.pt'})"
    names = [str(configs[i].hydra.job.num) for i in candidates]
    plan = stack.plan([tasks[i] for i in candidates], launcher.max_stack, names)
    stacks = [[candidates[p] for p in s] for s in plan.stacks]
    alone.update({candidates[p]: why for p, why in plan.alone.items()})
    in_stack = {i for s in stacks for i in s}
    units = sorted([[i] for i in range(len(configs)) if i not in in_stack] + stacks, key=lambda u: u[0])
    log.info(
        f"schedlab: {len(configs)} jobs in {len(stacks)} stack(s) of {', '.join(str(len(s)) for s in stacks) or '-'} "
        f"and {len(configs) - len(in_stack)} on their own; sweep folder {sweep_dir}"
    )
    returns: dict[int, JobReturn] = {}
    for unit in units:
        if len(unit) == 1:
            i = unit[0]
            if i in alone:
                print(f"schedlab: job {configs[i].hydra.job.num} runs on its own: {alone[i]}", flush=True)
            returns[i] = run_job(
                hydra_context=launcher.hydra_context,
                task_function=launcher.task_function,
                config=configs[i],
                job_dir_key="hydra.sweep.dir",
                job_subdir_key="hydra.sweep.subdir",
            )
        else:
            returns.update(_run_stack(launcher, unit, configs, sweep_dir))
        configure_log(config.hydra.hydra_logging, config.hydra.verbose)
    return [returns[i] for i in range(len(configs))]


def check_settings(max_stack, strategy: str) -> None:
    """The launcher's own keys: one line and exit 2 for a bad value."""
    try:
        stack.check_strategy(strategy)
    except ConfigError as e:
        fail(str(e))
    if max_stack is not None and (isinstance(max_stack, bool) or not isinstance(max_stack, int) or max_stack < 1):
        fail(f"hydra.launcher.max_stack={max_stack!r} is not allowed: must be an integer >= 1, or null for no limit")


def _job_dir(sweep_config: DictConfig) -> Path:
    return Path(str(sweep_config.hydra.sweep.dir)) / str(sweep_config.hydra.sweep.subdir)


def _task_config(sweep_config: DictConfig) -> DictConfig:
    cfg = copy.deepcopy(sweep_config)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def _stackable(cfg: DictConfig) -> bool:
    """Training jobs whose config is valid (the others run alone, and fail there as they would anyway)."""
    if cfg.get("task") != "train" or cfg.get("resume"):
        return False
    try:
        validate(cfg)
    except Exception:
        return False
    return True


def _prepare(task_cfg: DictConfig) -> dict:
    """What run_job runs for a stacked job: the folder and .hydra/ exist by now; training comes later."""
    return job_info()


def _run_stack(launcher, unit: list[int], configs: list[DictConfig], sweep_dir: Path) -> dict[int, JobReturn]:
    returns, jobs, log_files = {}, [], []
    for i in unit:
        returns[i] = ret = run_job(
            hydra_context=launcher.hydra_context,
            task_function=_prepare,
            config=configs[i],
            job_dir_key="hydra.sweep.dir",
            job_subdir_key="hydra.sweep.subdir",
        )
        if ret.status != JobStatus.COMPLETED:  # not a training failure: the folder could not be made
            return {j: returns.get(j, ret) for j in unit}
        jobs.append(ret.return_value)
        log_files.append(_log_file(ret.hydra_cfg))
    cfgs = [returns[i].cfg for i in unit]
    run_dirs = [Path(job["output_dir"]) for job in jobs]
    nums = ", ".join(str(job["num"]) for job in jobs)
    print(f"schedlab: jobs {nums} train as one stack", flush=True)
    loggers = [_arm_logger(job["num"], path) for job, path in zip(jobs, log_files, strict=True)]
    state_path = stack.checkpoint_path(sweep_dir, run_dirs)
    try:
        summaries = stack.fit_stack(
            cfgs, run_dirs, jobs, state_path=state_path, strategy=launcher.strategy, loggers=loggers
        )
    except KeyboardInterrupt as e:  # trainer.engine.fit.Terminated (SIGTERM) too: every arm has recorded it
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        terminated = type(e).__name__ == "Terminated"
        print(
            f"schedlab: {'terminated' if terminated else 'interrupted'}: jobs {nums} stopped (status interrupted); "
            f"run the same command again to continue them from {state_path}",
            file=sys.stderr,
            flush=True,
        )
        sys.exit(EXIT_TERMINATED if terminated else EXIT_INTERRUPTED)
    except Exception as e:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"schedlab: the stack of jobs {nums} failed: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        for i in unit:
            returns[i].status, returns[i].return_value = JobStatus.FAILED, e
        return returns
    finally:
        for logger in loggers:
            for handler in list(logger.handlers):
                logger.removeHandler(handler)
                handler.close()
    for i, summary, run_dir in zip(unit, summaries, run_dirs, strict=True):
        cfg = returns[i].cfg
        print(outcome(summary, run_dir), flush=True)
        returns[i].status = JobStatus.COMPLETED
        returns[i].return_value = None if cfg.objective is None else objective(summary, cfg.objective)
    return returns


def _log_file(hydra_cfg: DictConfig) -> Path | None:
    """The job's own log file as Hydra's job_logging names it (run.log), if it writes one."""
    handlers = OmegaConf.select(hydra_cfg, "hydra.job_logging.handlers", default=None) or {}
    for handler in handlers.values():
        if "filename" in handler:
            return Path(str(handler["filename"]))
    return None


def _arm_logger(num: int, path: Path | None) -> logging.Logger:
    """The logger of one arm: its lines go to its own run.log, and to the console as any job's do. The file
    handler Hydra left on the root logger (the last prepared job's) is taken off, so no arm writes into
    another's log."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, logging.FileHandler):
            root.removeHandler(handler)
            handler.close()
    logger = logging.getLogger(f"schedlab.job{num}")
    logger.setLevel(logging.INFO)
    if path is not None:
        handler = logging.FileHandler(path)
        handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
        logger.addHandler(handler)
    return logger
