"""Experiment trackers: where a run's records go besides its run folder (which is always written and stays
the source of truth). `logger` in the config picks one by `_target_`:

    logger=wandb         WandbTracker: one W&B run per job, bounded in time, never fatal
    logger=tensorboard   TensorBoardTracker: event files in <run folder>/tensorboard
    logger=none          NullTracker

A tracker is built as `cls(config=cfg, run_dir=..., job=..., resume_id=..., **<the logger node's keys>)`
and receives the same records the run folder gets: the per-epoch rows with their steps, named curves
(the LR range test's), the summary, and a finish with the exit code. A new tracker subclasses Tracker,
overrides what it stores, and gets a conf/logger/<name>.yaml with its `_target_`.
"""

from trainer.tracking.base import SUMMARY_FIELDS, NullTracker, Tracker, make_tracker, summary_values
from trainer.tracking.tensorboard_tracker import TensorBoardTracker
from trainer.tracking.wandb_tracker import UNREACHABLE, WandbTracker, arm_name, resolve_mode, run_name
