"""fit(): one training run, from its config to its run folder. Read it top to bottom: set up (trainer/setup.py),
resume from the checkpoint if there is one (trainer/checkpoint.py), then per epoch train (trainer/loop.py),
evaluate, step the schedule, record (trainer/records.py, trainer/tracking.py) and checkpoint."""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch
from tqdm.auto import tqdm

from schedulers import build_schedule, warn_schedule
from trainer import checkpoint
from trainer.loop import epochs_without_improvement, evaluate, train_epoch
from trainer.lr_find import find_and_set_lr
from trainer.records import EpochRow, Job, RunFolder, StepRow, Summary
from trainer.setup import build, device_name, memory_use, provenance
from trainer.tracking import make_tracker

log = logging.getLogger("schedlab")


@dataclass
class Progress:
    """Where a run is: what the checkpoint stores besides the model, optimizer, schedule and RNGs."""

    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps completed
    history: list[EpochRow] = field(default_factory=list)
    steps: list[StepRow] = field(default_factory=list)
    first_loss: float | None = None  # divergence is measured against it
    elapsed: float = 0.0  # seconds of fit() before an interruption
    lr_find: dict | None = None  # the LR range test's outcome when trainer.lr_find ran

    def to_dict(self) -> dict:
        d = asdict(self)
        d["history"] = [r.to_dict() for r in self.history]
        d["steps"] = [tuple(s) for s in self.steps]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Progress:
        history = [EpochRow.from_dict(r) for r in d["history"]]
        return cls(**{**d, "history": history, "steps": [StepRow(*s) for s in d["steps"]]})


def monitored(name: str | None, val_loss, val_acc, test_loss, test_acc, select_on_test: bool) -> float | None:
    """The figure a schedule steps on (plateau's monitor): a validation one; its test twin only where the run
    has no validation set and select_on_test allows it."""
    if name is None:
        return None
    figures = {"val_loss": val_loss, "val_acc": val_acc}
    if select_on_test and val_loss is None:
        figures = {"val_loss": test_loss, "val_acc": test_acc}
    return figures[name]


def is_best(history: list[EpochRow], select_on_test: bool) -> bool:
    """Whether the last epoch is the run's best so far: the highest validation accuracy (the first of equals),
    or the highest test accuracy where select_on_test stands in for a missing validation set."""
    key = "val_acc" if history[-1].val_acc is not None else "test_acc" if select_on_test else None
    if key is None:
        return False
    return all(getattr(r, key) < getattr(history[-1], key) for r in history[:-1])


def stop_early(history: list[EpochRow], settings, select_on_test: bool) -> bool:
    """trainer.early_stopping: the monitored validation figure (its test twin where select_on_test stands in
    for a missing validation set) has not improved for `patience` epochs."""
    if settings.patience is None:
        return False
    name = settings.monitor
    if history[-1].val_acc is None and select_on_test:
        name = name.replace("val_", "test_")
    values = [getattr(r, name) for r in history]
    mode = "max" if name.endswith("_acc") else "min"
    return epochs_without_improvement(values, mode, float(settings.min_delta)) >= settings.patience


def epoch_line(row: EpochRow, epochs: int) -> str:
    """One line per epoch for logs: what a progress bar shows in a terminal."""
    val = "" if row.val_acc is None else f", val loss {row.val_loss:.4f} acc {row.val_acc:.2%}"
    return (
        f"epoch {row.epoch}/{epochs}: train loss {row.train_loss:.4f} acc {row.train_acc:.2%}{val}, "
        f"test loss {row.test_loss:.4f} acc {row.test_acc:.2%}, lr {row.lr:.4g}, {row.epoch_time:.1f} s"
    )


def now() -> str:
    return datetime.now(timezone.utc).isoformat()


class Terminated(KeyboardInterrupt):
    """SIGTERM (what SLURM and `kill` send before killing): the run stops as after Ctrl-C, resumable."""


@contextmanager
def terminate_as_interrupt():
    """While it lasts, SIGTERM raises Terminated in the main thread instead of ending the process unrecorded."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Terminated("SIGTERM")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def fit(cfg, run_dir: Path, job: Job | dict | None = None) -> Summary:
    """Train one run; write its results to run_dir; return its summary (status completed / diverged).
    An exception still leaves summary.json (status failed or interrupted, the error) and the epochs
    already written. The run holds its folder for itself while it writes to it."""
    folder = RunFolder(run_dir)
    with folder.owned(), terminate_as_interrupt():
        return train(cfg, folder, Job.of(job))


def train(cfg, folder: RunFolder, job: Job) -> Summary:
    t = cfg.trainer
    saved = checkpoint.load(folder, cfg)  # before any data is loaded, so a mismatch fails fast
    progress = Progress.from_dict(saved["state"]) if saved else Progress()
    summary = Summary(task=cfg.task, seed=int(cfg.seed), overrides=job.overrides, started_at=now())
    folder.write_config(cfg)
    folder.write_history(progress.history, progress.steps)
    tracker = None
    exit_code = 1
    started = time.perf_counter() - progress.elapsed
    try:
        tracker = make_tracker(cfg, folder.dir, job, resume_id=saved.get("wandb_id") if saved else None)
        run = build(cfg, job)
        model, optimizer, device = run.model, run.optimizer, run.device
        folder.write_provenance(provenance(cfg, device, job))
        steps_per_epoch = run.train_set.num_batches(t.batch_size, t.max_steps_per_epoch)
        summary.device, summary.device_name, summary.precision = str(device), device_name(device), run.precision
        summary.epochs, summary.steps_per_epoch = int(t.epochs), steps_per_epoch
        if saved is not None:
            log.info(f"resuming {folder.dir} from epoch {progress.epoch}")
        if t.lr_find and saved is None:
            progress.lr_find = find_and_set_lr(cfg, model, optimizer, run.train_set, folder.dir, run.amp, tracker)
        elif progress.lr_find and progress.lr_find["lr"] is not None:  # resuming: the schedule's base is the found LR
            for group in optimizer.param_groups:
                group["lr"] = progress.lr_find["lr"]
        schedule = build_schedule(cfg.scheduler, optimizer, steps_per_epoch, int(t.epochs))
        if saved is None:  # once per run: a schedule planned for a longer run than this one says so
            warn_schedule(cfg.scheduler, int(t.epochs), float(optimizer.param_groups[0]["initial_lr"]), steps_per_epoch)
        scaler = torch.amp.GradScaler(device.type, enabled=run.precision == "fp16")
        shuffle = torch.Generator(device=device).manual_seed(int(cfg.seed))
        parts = dict(model=model, optimizer=optimizer, schedule=schedule, scaler=scaler, shuffle=shuffle)
        if saved is not None:
            checkpoint.restore(saved, **parts)
        forward = torch.compile(model) if t.compile else model
        bar = tqdm(
            total=int(t.epochs) * steps_per_epoch,
            initial=progress.step,
            disable=None if t.progress else True,
            desc=" ".join(job.overrides) or "train",
            leave=False,
            dynamic_ncols=True,
        )
        for epoch in range(progress.epoch + 1, int(t.epochs) + 1):
            epoch_start = time.perf_counter()
            result = train_epoch(
                forward,
                optimizer,
                schedule,
                run.train_set.batches(t.batch_size, shuffle, t.max_steps_per_epoch),
                epoch=epoch,
                step=progress.step,
                max_steps=steps_per_epoch,
                amp=run.amp,
                scaler=scaler,
                first_loss=progress.first_loss,
                check_every=int(t.divergence.check_every),
                factor=float(t.divergence.factor),
                progress=bar,
            )
            progress.first_loss = result.first_loss
            progress.step += len(result.steps)
            if result.diverged:
                summary.diverged_at = result.diverged
                folder.append_steps(result.steps)  # how it blew up stays visible; the partial epoch gets no row
                tracker.log_steps(result.steps)
                break
            val_loss, val_acc = evaluate(forward, run.val_set, t.eval_batch_size, run.amp) if run.val_set else (None, None)
            test_loss, test_acc = evaluate(forward, run.test_set, t.eval_batch_size, run.amp)
            schedule.step_epoch(monitored(schedule.monitor, val_loss, val_acc, test_loss, test_acc, cfg.select_on_test))
            row = EpochRow(
                epoch=epoch,
                train_loss=result.train_loss,
                train_acc=result.train_acc,
                val_loss=val_loss,
                val_acc=val_acc,
                test_loss=test_loss,
                test_acc=test_acc,
                gap=result.train_acc - test_acc,
                lr=result.steps[0].lr,
                lr_end=result.steps[-1].lr,
                epoch_time=time.perf_counter() - epoch_start,
                **memory_use(device),
            )
            progress.history.append(row)
            progress.steps += result.steps
            progress.epoch = epoch
            progress.elapsed = time.perf_counter() - started
            folder.append_epoch(row, result.steps)
            tracker.log_epoch(row, result.steps)
            bar.set_postfix(loss=f"{row.train_loss:.3f}", test_acc=f"{test_acc:.3f}", lr=f"{row.lr_end:.3g}")
            log.info(epoch_line(row, int(t.epochs)))  # run.log, and the console where there is no progress bar
            if t.checkpoint:  # the commit point: a resume rewrites the result files from it
                state = dict(progress=progress.to_dict(), tracker_id=tracker.id)
                checkpoint.save(folder, cfg, **parts, **state)
                if is_best(progress.history, bool(cfg.select_on_test)):  # best.pt: the epoch chosen on validation
                    checkpoint.save(folder, cfg, **parts, **state, path=folder.best)
            if stop_early(progress.history, t.early_stopping, bool(cfg.select_on_test)):
                summary.stopped_early_at = epoch
                log.info(f"stopping early at epoch {epoch}: {t.early_stopping.monitor} has not improved for "
                         f"{t.early_stopping.patience} epochs")
                break
        summary.status = "diverged" if summary.diverged_at else "completed"
        exit_code = 0
        bar.close()
    except BaseException as e:
        summary.status = "interrupted" if isinstance(e, KeyboardInterrupt) else "failed"
        summary.error = f"{type(e).__name__}: {e}"
        raise
    finally:
        summary.record_history(progress.history, bool(cfg.select_on_test), int(cfg.dataset.num_classes))
        summary.wall_time_s = time.perf_counter() - started
        summary.finished_at = now()
        summary.lr_find = progress.lr_find
        try:
            folder.write_summary(summary)
        except OSError as e:  # a full disk: the error that stopped the run matters more than this one
            print(f"schedlab: could not write {folder.summary}: {e}", file=sys.stderr, flush=True)
        if tracker is not None:
            tracker.summary(summary)
            tracker.finish(exit_code)
    return summary
