"""The tasks `task=...` runs, one module each, and the registry that dispatches to them.

Each task module has `run(cfg, job, run_dir, show)`: `job` is the job's Hydra info (trainer/cli's job_info),
`show(cfg, choices=None)` prints the config a task runs with once at its start (what a person sees first),
and it returns the run's Summary (train) or None. The task names are the config's choices (trainer.config
TASKS, checked before any work); the registry holds module names only, so reading it imports no task."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

from trainer.records import Summary

REGISTRY = {
    "train": "trainer.tasks.train",  # train one run: trainer/engine/fit.py
    "lr_find": "trainer.tasks.lr_find",  # the LR range test
    "schedule": "trainer.tasks.schedule",  # draw the configured schedule(s), no training
    "eval": "trainer.tasks.eval",  # evaluate a run folder's checkpoint
    "toy": "trainer.tasks.toy",  # optimizers and schedules on 2-D test functions
}


def run(cfg, job: dict, run_dir: Path, show: Callable) -> Summary | None:
    """Run the task cfg.task names."""
    return importlib.import_module(REGISTRY[str(cfg.task)]).run(cfg, job, run_dir, show)
