"""logger=wandb: one W&B run per job, named by its overrides, grouped by its arm, bounded in time, never fatal."""

from __future__ import annotations

import hashlib
import netrc
import os
import threading
import warnings
from pathlib import Path
from typing import Any

from trainer.config import NEUTRAL_KEYS, resolved
from trainer.records import EpochRow, Job, StepRow, Summary
from trainer.tracking.base import Tracker, summary_values


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
            config=resolved(config),
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
