"""The tracker interface (logger=none stores nothing) and make_tracker, which builds the class cfg.logger names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainer.config import resolved
from trainer.records import EpochRow, Job, StepRow, Summary

# the summary.json fields a tracker's run summary gets besides the figures
SUMMARY_FIELDS = ("status", "epochs_completed", "diverged_at", "collapsed_at", "stopped_early_at")


class Tracker:
    """The tracker interface; this base stores nothing (logger=none). Every method is safe to call in any
    state: a tracker that failed to start or already finished ignores the call."""

    id: str | None = None  # what a resumed run passes back as resume_id (the W&B run id)

    def __init__(self, *, config, run_dir: Path, job: Job, resume_id: str | None = None, **options: Any):
        self.id = resume_id

    def log_epoch(self, row: EpochRow, steps: list[StepRow]) -> None:
        """One finished epoch: its steps, then its row."""

    def log_steps(self, steps: list[StepRow]) -> None:
        """Steps without an epoch row (the partial epoch of a diverged run)."""

    def log_curve(self, name: str, columns: dict[str, list[float]]) -> None:
        """A named curve against its own step (e.g. lr_find: lr, loss, smoothed)."""

    def summary(self, summary: Summary) -> None:
        """How the run ended and its figures."""

    def finish(self, exit_code: int) -> None:
        """Close the tracker; exit_code 1 marks a failed run."""


NullTracker = Tracker


def summary_values(summary: Summary) -> dict[str, Any]:
    """What a tracker's run summary holds: status, epochs, where it diverged, and every figure."""
    values = {k: getattr(summary, k) for k in SUMMARY_FIELDS if getattr(summary, k) is not None}
    return values | {k: v for k, v in summary.figures.items() if v is not None}


def make_tracker(cfg, run_dir: Path, job: Job, resume_id: str | None = None) -> Tracker:
    """The tracker cfg.logger names by `_target_`, given the logger node's other keys as options."""
    from hydra.utils import get_class

    options = resolved(cfg.logger)
    cls = get_class(options.pop("_target_", "trainer.tracking.WandbTracker"))
    return cls(config=cfg, run_dir=Path(run_dir), job=job, resume_id=resume_id, **options)
