"""Learning-rate schedules as pure functions of the position in epochs, driven per epoch or per step."""

from schedulers.config import register_configs
from schedulers.plot import key_epochs, lr_curve, plot_schedules
from schedulers.scheduler import Scheduler, build_schedule, validate_schedule

__all__ = [
    "Scheduler",
    "build_schedule",
    "key_epochs",
    "lr_curve",
    "plot_schedules",
    "register_configs",
    "validate_schedule",
]
