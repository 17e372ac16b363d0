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

from __future__ import annotations

import hashlib
import netrc
import os
import threading
import warnings
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from trainer.config import NEUTRAL_KEYS
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

    options = OmegaConf.to_container(cfg.logger, resolve=True)
    cls = get_class(options.pop("_target_", f"{__name__}.WandbTracker"))
    return cls(config=cfg, run_dir=Path(run_dir), job=job, resume_id=resume_id, **options)


# ------------------------------------------------------------------------------------------------ W&B


def api_key_configured() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        host = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai").split("://")[-1].split("/")[0]
        return netrc.netrc().authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def resolve_mode(mode: str) -> str:
    """auto: online with an API key, offline without one. WANDB_MODE in the environment wins."""
    env = os.environ.get("WANDB_MODE")
    if env in ("online", "offline", "disabled"):
        return env
    if env == "dryrun":
        return "offline"
    if mode == "auto":
        return "online" if api_key_configured() else "offline"
    return mode


def _shown(overrides: list[str], hidden: tuple[str, ...] = ()) -> list[str]:
    keep = []
    for o in overrides:
        key = o.lstrip("+~").partition("=")[0]
        if not any(key == k or key.startswith(k + ".") for k in ("hydra", *NEUTRAL_KEYS, *hidden)):
            keep.append(o.lstrip("+~"))
    return keep


def run_name(overrides: list[str]) -> str | None:
    """A readable name from the job's overrides, e.g. 'scheduler=cosine seed=1'."""
    return " ".join(_shown(overrides)) or None


def arm_name(overrides: list[str]) -> str:
    """The run's arm: its overrides but the seed (and the keys that change no number), so that W&B's grouped
    view is mean ± std over the seeds of one configuration, as in the report; 'defaults' when none is left.
    W&B caps a group name at 128 characters: a longer one keeps its start and a hash of the whole."""
    name = " ".join(_shown(overrides, hidden=("seed",))) or "defaults"
    if len(name) > 128:
        name = f"{name[:110]}… {hashlib.sha1(name.encode()).hexdigest()[:12]}"
    return name


UNREACHABLE = ".wandb_unreachable"  # in a sweep folder: a job found the W&B server unreachable
_unreachable = False  # this process found it unreachable


def _remember_unreachable(marker: Path | None) -> None:
    global _unreachable
    _unreachable = True
    if marker is not None:
        try:
            marker.touch()
        except OSError:
            pass


class WandbTracker(Tracker):
    """One W&B run per job. Every call is guarded: a W&B failure warns once and logging goes on without it."""

    def __init__(
        self,
        *,
        config,
        run_dir: Path,
        job: Job,
        resume_id: str | None = None,
        mode: str = "auto",
        project: str = "schedlab",
        entity: str | None = None,
        tags: list[str] = (),
        init_timeout: float = 30.0,
        finish_timeout: float = 120.0,
        log_steps: bool = True,
    ):
        self.run = None
        self.id = resume_id
        self._warned = False
        self._log_steps = bool(log_steps)
        self._finish_timeout = float(finish_timeout)
        mode = resolve_mode(mode)
        if mode == "disabled":
            return
        settings: dict[str, Any] = dict(
            project=project,
            entity=entity,
            group=arm_name(job.overrides),
            job_type=config.task,
            name=run_name(job.overrides),
            tags=[*tags, *([f"sweep:{job.sweep}"] if job.sweep else [])],
            config=OmegaConf.to_container(config, resolve=True),
            dir=str(run_dir),
            id=resume_id,
            resume="allow" if resume_id else None,
            reinit="create_new",  # the arms of a stack: one W&B run each, all open at once in one process
        )
        # after one job of a sweep found the server unreachable, the others go offline at once
        marker = Path(job.output_dir).parent / UNREACHABLE if job.multirun and job.output_dir else None
        if mode == "online" and (_unreachable or (marker is not None and marker.exists())):
            self._warn("W&B was unreachable for an earlier job of this sweep; logging offline (wandb sync later)")
            mode = "offline"
        self._start(mode, settings, float(init_timeout))
        if self.run is None and mode == "online":
            _remember_unreachable(marker)
            self._start("offline", settings, float(init_timeout))

    def _start(self, mode: str, settings: dict, timeout: float) -> None:
        try:
            import wandb

            self.run = wandb.init(
                mode=mode,
                settings=wandb.Settings(init_timeout=timeout, silent=True, console="off", x_disable_stats=True),
                **settings,
            )
            self.id = self.run.id
            self.run.define_metric("epoch")
            self.run.define_metric("epoch/*", step_metric="epoch")
            self.run.define_metric("step")
            self.run.define_metric("step/*", step_metric="step")
        except Exception as e:  # no key, no network, slow server, bad settings: all of them non-fatal
            self._warn(f"W&B {mode} start failed ({type(e).__name__}: {e}); continuing without it")
            self.run = None

    def _warn(self, message: str) -> None:
        if not self._warned:
            warnings.warn(message, RuntimeWarning, stacklevel=3)
            self._warned = True

    def _guard(self, fn, *args, **kwargs) -> None:
        if self.run is None:
            return
        try:
            fn(*args, **kwargs)
        except Exception as e:
            self._warn(f"W&B logging failed ({type(e).__name__}: {e}); local results are unaffected")

    def log_steps(self, steps: list[StepRow]) -> None:
        """Per-step LR and loss (read from the host copy: no device sync)."""
        if self.run is None or not self._log_steps:
            return
        for s in steps:
            self._guard(self.run.log, {"step": s.step, "step/lr": s.lr, "step/loss": s.loss})

    def log_epoch(self, row: EpochRow, steps: list[StepRow]) -> None:
        self.log_steps(steps)
        values = row.to_dict()
        epoch = values.pop("epoch")
        self._guard(lambda: self.run.log({"epoch": epoch, **{f"epoch/{k}": v for k, v in values.items()}}))

    def log_curve(self, name: str, columns: dict[str, list[float]]) -> None:
        def log():
            self.run.define_metric(f"{name}/*", step_metric=f"{name}/step")
            for step, values in enumerate(zip(*columns.values(), strict=True)):
                self.run.log({f"{name}/step": step, **{f"{name}/{k}": v for k, v in zip(columns, values, strict=True)}})

        self._guard(log)

    def summary(self, summary: Summary) -> None:
        def update():
            for key, value in summary_values(summary).items():
                self.run.summary[key] = value

        self._guard(update)

    def finish(self, exit_code: int) -> None:
        """Close the W&B run; a server that does not answer within finish_timeout is left behind."""
        if self.run is None:
            return
        run, self.run = self.run, None
        errors: list[Exception] = []

        def close():
            try:
                run.finish(exit_code=exit_code)
            except Exception as e:
                errors.append(e)

        closer = threading.Thread(target=close, daemon=True)
        closer.start()
        closer.join(self._finish_timeout)
        if closer.is_alive():
            self._warn(f"W&B finish did not return within {self._finish_timeout:.0f} s; local results are complete")
        elif errors:
            self._warn(f"W&B finish failed ({type(errors[0]).__name__}: {errors[0]})")


# ---------------------------------------------------------------------------------------- TensorBoard


class TensorBoardTracker(Tracker):
    """Event files for TensorBoard (torch's SummaryWriter) in <run folder>/<log_dir>: epoch figures under
    epoch/<name> against the epoch, per-step LR and loss under step/<name> against the step, curves under
    <curve>/<name>, and the summary's figures as text and as hparams. Resume appends to the same folder;
    TensorBoard shows the last value written for a step."""

    def __init__(
        self,
        *,
        config,
        run_dir: Path,
        job: Job,
        resume_id: str | None = None,
        log_dir: str = "tensorboard",
        log_steps: bool = True,
    ):
        from torch.utils.tensorboard import SummaryWriter

        self.id = resume_id
        self.log_dir = Path(run_dir) / log_dir
        self._log_steps = bool(log_steps)
        self._config = OmegaConf.to_container(config, resolve=True)
        self.writer = SummaryWriter(log_dir=str(self.log_dir))
        self.writer.add_text("config", "```\n" + OmegaConf.to_yaml(config, resolve=True) + "```", 0)

    def log_steps(self, steps: list[StepRow]) -> None:
        if self.writer is None or not self._log_steps:
            return
        for s in steps:
            self.writer.add_scalar("step/lr", s.lr, s.step)
            self.writer.add_scalar("step/loss", s.loss, s.step)

    def log_epoch(self, row: EpochRow, steps: list[StepRow]) -> None:
        self.log_steps(steps)
        if self.writer is None:
            return
        values = row.to_dict()
        epoch = values.pop("epoch")
        for key, value in values.items():
            self.writer.add_scalar(f"epoch/{key}", value, epoch)
        self.writer.flush()

    def log_curve(self, name: str, columns: dict[str, list[float]]) -> None:
        if self.writer is None:
            return
        for step, values in enumerate(zip(*columns.values(), strict=True)):
            for key, value in zip(columns, values, strict=True):
                self.writer.add_scalar(f"{name}/{key}", value, step)
        self.writer.flush()

    def summary(self, summary: Summary) -> None:
        if self.writer is None:
            return
        values = summary_values(summary)
        lines = [f"| {k} | {v} |" for k, v in values.items()]
        self.writer.add_text("summary", "| key | value |\n|---|---|\n" + "\n".join(lines), summary.epochs_completed)
        metrics = {f"summary/{k}": float(v) for k, v in summary.figures.items() if isinstance(v, (int, float))}
        if metrics:
            hparams = {k: v for k, v in _flat(self._config).items() if isinstance(v, (int, float, str, bool))}
            self.writer.add_hparams(hparams, metrics, run_name=".")

    def finish(self, exit_code: int) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out |= _flat(v, f"{prefix}{k}.")
        else:
            out[f"{prefix}{k}"] = v
    return out
