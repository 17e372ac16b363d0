"""Learning-rate schedules as pure functions of the position in epochs, driven per epoch or per step.

The error type, the schemas, the run-length warnings (`schedule_warnings`) and each epoch's batch size under
scheduler.batch_size (`batch_sizes`) load without torch, so that `trainer.errors` (which re-exports `ConfigError`)
and the config checks that run before any work starts stay light; the schedules, which drive a torch optimizer, load
on first use: `build_schedule` for the trainer, and `torch_scheduler` / `SchedlabLR`, the same schedules as a torch
LRScheduler for a plain PyTorch loop, and `param_groups`, a model's param groups with LR multipliers per module and no
weight decay on norms and biases.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from schedulers.config import register_configs
from schedulers.curves import batch_sizes
from schedulers.errors import ConfigError
from schedulers.run_length import cycle_ends, schedule_warnings, warn_schedule

if TYPE_CHECKING:
    from schedulers.groups import param_groups, rebase_lr
    from schedulers.lr_scheduler import SchedlabLR, SchedlabPlateauLR, torch_scheduler
    from schedulers.plot import key_epochs, lr_curve, plot_schedules
    from schedulers.scheduler import Scheduler, build_schedule, validate_schedule

_NEEDS_TORCH = {
    "Scheduler": "schedulers.scheduler",
    "build_schedule": "schedulers.scheduler",
    "validate_schedule": "schedulers.scheduler",
    "key_epochs": "schedulers.plot",
    "lr_curve": "schedulers.plot",
    "plot_schedules": "schedulers.plot",
    "SchedlabLR": "schedulers.lr_scheduler",
    "SchedlabPlateauLR": "schedulers.lr_scheduler",
    "torch_scheduler": "schedulers.lr_scheduler",
    "param_groups": "schedulers.groups",
    "rebase_lr": "schedulers.groups",
}

__all__ = [
    "ConfigError",
    "SchedlabLR",
    "SchedlabPlateauLR",
    "Scheduler",
    "batch_sizes",
    "build_schedule",
    "cycle_ends",
    "key_epochs",
    "lr_curve",
    "param_groups",
    "plot_schedules",
    "rebase_lr",
    "register_configs",
    "schedule_warnings",
    "torch_scheduler",
    "validate_schedule",
    "warn_schedule",
]


def __getattr__(name: str) -> Any:  # PEP 562: `from schedulers import build_schedule` loads torch then
    if name in _NEEDS_TORCH:
        return getattr(importlib.import_module(_NEEDS_TORCH[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_NEEDS_TORCH})
