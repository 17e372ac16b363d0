"""Weights & Biases for one run: optional, bounded in time, never fatal. Local files stay the source of truth."""

from __future__ import annotations

import netrc
import os
import threading
import warnings
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from trainer.config import NEUTRAL_KEYS


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


def run_name(overrides: list[str]) -> str | None:
    """A readable name from the job's overrides, e.g. 'scheduler=cosine seed=1'."""
    shown = [o.lstrip("+~") for o in overrides if not o.lstrip("+~").startswith(("hydra", *NEUTRAL_KEYS))]
    return " ".join(shown) or None


class Tracker:
    """One W&B run per job. Every call is guarded: a W&B failure warns once and logging goes on without it."""

    def __init__(self, cfg, run_dir: Path, job: dict, resume_id: str | None = None):
        self.run = None
        self.id = resume_id
        self._warned = False
        mode = resolve_mode(cfg.logger.mode)
        if mode == "disabled":
            return
        settings: dict[str, Any] = dict(
            project=cfg.logger.project,
            entity=cfg.logger.entity,
            group=job.get("sweep"),
            job_type=cfg.task,
            name=run_name(job.get("overrides", [])),
            tags=list(cfg.logger.tags),
            config=OmegaConf.to_container(cfg, resolve=True),
            dir=str(run_dir),
            id=resume_id,
            resume="allow" if resume_id else None,
        )
        self._log_steps = bool(cfg.logger.log_steps)
        self._finish_timeout = float(cfg.logger.finish_timeout)
        self._start(mode, settings, float(cfg.logger.init_timeout))
        if self.run is None and mode == "online":
            self._start("offline", settings, float(cfg.logger.init_timeout))

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

    def log_steps(self, steps: list[tuple]) -> None:
        """Per-step LR and loss (read from the host copy: no device sync)."""
        if self.run is None or not self._log_steps:
            return
        for step, _epoch, lr, loss in steps:
            self._guard(self.run.log, {"step": step, "step/lr": lr, "step/loss": loss})

    def log_epoch(self, row: dict, steps: list[tuple]) -> None:
        """One epoch: its steps, then its row against the epoch."""
        self.log_steps(steps)
        self._guard(lambda: self.run.log({"epoch": row["epoch"], **{f"epoch/{k}": v for k, v in row.items() if k != "epoch"}}))

    def define_metric(self, name: str, **kwargs) -> None:
        self._guard(lambda: self.run.define_metric(name, **kwargs))

    def log(self, data: dict) -> None:
        self._guard(lambda: self.run.log(data))

    def summary(self, summary: dict) -> None:
        def update():
            for key in ("status", "final_test_acc", "best_test_acc", "final_gap", "final_train_loss", "diverged_at"):
                if summary.get(key) is not None:
                    self.run.summary[key] = summary[key]

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
