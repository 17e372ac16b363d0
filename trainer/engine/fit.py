"""fit(): one training run, from its config to its run folder. Read it top to bottom: set up (trainer/engine/setup.py),
resume from the checkpoint if there is one, or start a branch from its parent's (trainer/engine/checkpoint.py), then
per epoch train (trainer/engine/loop.py), evaluate (the weight averages too: trainer/engine/averages.py), step the
schedule, record (trainer/records.py, trainer/tracking/) and checkpoint."""

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

from schedulers import batch_sizes, build_schedule, rebase_lr, warn_schedule
from trainer.config import typed
from trainer.engine import checkpoint
from trainer.engine.averages import Averages
from trainer.engine.loop import EpochResult, epochs_without_improvement, evaluate, train_epoch
from trainer.engine.lr_find import find_and_set_lr
from trainer.engine.schedulefree import averaged, batch_norm_at_average, train_mode
from trainer.engine.setup import Setup, build, device_name, memory_use, provenance
from trainer.engine.snapshots import ensemble_accuracy, snapshot_epochs
from trainer.errors import ConfigError
from trainer.records import EpochRow, Job, RunFolder, StepRow, Summary, selected
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
    branch: dict | None = None  # a branch's parent, epoch and what it shares with it (summary.json's `branch`)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["history"] = [r.to_dict() for r in self.history]
        d["steps"] = [tuple(s) for s in self.steps]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Progress:
        history = [EpochRow.from_dict(r) for r in d["history"]]
        return cls(**{**d, "history": history, "steps": [StepRow(*s) for s in d["steps"]]})


def monitored(name: str | None, row: EpochRow, select_on_test: bool) -> float | None:
    """The figure a schedule steps on (plateau's monitor, a validation figure) in this epoch's row."""
    key = selected(row, name, select_on_test) if name else None
    return None if key is None else getattr(row, key)


def is_best(history: list[EpochRow], select_on_test: bool) -> bool:
    """Whether the last epoch is the run's best so far by the accuracy it selects on (the first of equals)."""
    key = selected(history[-1], "val_acc", select_on_test)
    if key is None:
        return False
    return all(getattr(r, key) < getattr(history[-1], key) for r in history[:-1])


def stop_early(history: list[EpochRow], settings, select_on_test: bool) -> bool:
    """trainer.early_stopping: the figure it monitors (as selected) has not improved for `patience` epochs."""
    name = selected(history[-1], settings.monitor, select_on_test)
    if settings.patience is None or name is None:
        return False
    values = [getattr(r, name) for r in history]
    mode = "max" if name.endswith("_acc") else "min"
    return epochs_without_improvement(values, mode, settings.min_delta) >= settings.patience


def epoch_line(row: EpochRow, epochs: int) -> str:
    """One line per epoch for logs: what a progress bar shows in a terminal."""
    val = "" if row.val_acc is None else f", val loss {row.val_loss:.4f} acc {row.val_acc:.2%}"
    ensemble = "" if row.ensemble_test_acc is None else f", ensemble test acc {row.ensemble_test_acc:.2%}"
    ema = "" if row.ema_test_acc is None else f", EMA test acc {row.ema_test_acc:.2%}"
    swa = "" if row.swa_test_acc is None else f", SWA test acc {row.swa_test_acc:.2%}"
    return (
        f"epoch {row.epoch}/{epochs}: train loss {row.train_loss:.4f} acc {row.train_acc:.2%}{val}, "
        f"test loss {row.test_loss:.4f} acc {row.test_acc:.2%}{ensemble}{ema}{swa}, lr {row.lr:.4g}, "
        f"{row.epoch_time:.1f} s"
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
        return train(typed(cfg), folder, Job.of(job))


def train(cfg, folder: RunFolder, job: Job) -> Summary:
    # before any data is loaded, so a mismatch fails fast: the folder's own checkpoint, else a branch's start
    saved = checkpoint.load(folder, cfg) or checkpoint.branch(cfg)
    arm = Arm(cfg, folder, job, saved)
    try:
        arm.open_tracker()
        run = build(cfg, job)
        arm.begin(run)
        forward = torch.compile(arm.model) if cfg.trainer.compile else arm.model
        for epoch in arm.epochs():
            epoch_start = time.perf_counter()
            batches = run.train_set.batches(arm.batch_size(epoch), arm.shuffle, cfg.trainer.max_steps_per_epoch)
            result = train_epoch(forward, arm.optimizer, arm.schedule, batches, **arm.epoch_settings(epoch))
            if not arm.record(epoch, result, forward, run, time.perf_counter() - epoch_start):
                break
        arm.finish()
    except BaseException as e:
        arm.finish(e)
        raise
    return arm.summary


class Arm:
    """One run's parts and records: its config and folder, model, optimizer, schedule, grad scaler, data
    order, tracker and progress. train() above drives one; a stack (trainer/engine/stack.py) drives several side by
    side. Each arm writes its own folder exactly as a run of its own would."""

    def __init__(self, cfg, folder: RunFolder, job: Job, saved: dict | None):
        if saved is None and cfg.branch.parent is not None:  # fit() passes a branch its start; a stack does not
            raise ConfigError(
                f"branch.parent={cfg.branch.parent!r} is not allowed in a stack: a branch trains on its "
                "own (run its sweep with the basic launcher)"
            )
        self.cfg, self.folder, self.job, self.saved = cfg, folder, job, saved
        self.t = cfg.trainer
        self.progress = Progress.from_dict(saved["state"]) if saved else Progress()
        self.branched = bool(saved and saved.get("branched"))  # a branch's first start, from its parent's state
        # where the schedule's t = 0 is: a branch's own schedule spans the epochs after its branch point
        self.schedule_start = self.progress.branch["epoch"] if self.progress.branch else 0
        self.summary = Summary(task=cfg.task, seed=cfg.seed, overrides=job.overrides, started_at=now())
        self.summary.branch = self.progress.branch
        self.tracker = None
        self.bar = None
        self.finished = False
        self.log = log  # a stack gives each arm its own, writing to the arm's run.log
        self.started = time.perf_counter() - self.progress.elapsed
        folder.write_config(cfg)
        folder.write_history(self.progress.history, self.progress.steps)

    def open_tracker(self) -> None:
        resume_id = self.saved.get("wandb_id") if self.saved else None
        self.tracker = make_tracker(self.cfg, self.folder.dir, self.job, resume_id=resume_id)
        if self.branched:  # a branch's run of its own starts with the epochs it shares with its parent
            for row in self.progress.history:
                self.tracker.log_epoch(row, [s for s in self.progress.steps if s.epoch == row.epoch])

    def begin(self, run: Setup, restore: bool = True) -> None:
        """Take the run's model and optimizer; run the LR range test if asked; build the weight averages, the
        schedule, the grad scaler and the data order; put a checkpoint's state into them (unless the caller restores
        it)."""
        cfg, t, progress, summary = self.cfg, self.t, self.progress, self.summary
        self.model, self.optimizer, self.device, self.amp = run.model, run.optimizer, run.device, run.amp
        train_mode(run.optimizer)  # a schedule-free optimizer steps only in train mode
        self.folder.write_provenance(self.provenance(run))
        span = t.epochs - self.schedule_start  # a branch's schedule: over the epochs after its branch point
        self.plan_epochs(run, span)
        self.snapshot_epochs = snapshot_epochs(cfg, self.schedule_steps)
        summary.device, summary.device_name, summary.precision = str(run.device), device_name(run.device), run.precision
        summary.epochs = t.epochs
        summary.steps_per_epoch = None if self.batch_sizes else self.steps_per_epoch
        if self.batch_sizes:
            epochs = range(1, t.epochs + 1)
            summary.batch_size = {
                "per_epoch": [self.batch_size(e) for e in epochs],
                "steps_per_epoch": [self.steps_in(e) for e in epochs],
            }
        if self.branched:
            self.log.info(f"branching {self.folder.dir} from {progress.branch['parent']} at epoch {progress.epoch}")
        elif self.saved is not None:
            self.log.info(f"resuming {self.folder.dir} from epoch {progress.epoch}")
        if t.lr_find and self.saved is None:
            progress.lr_find = find_and_set_lr(
                cfg, run.model, run.optimizer, run.train_set, self.folder.dir, run.amp, self.tracker
            )
        elif progress.lr_find and progress.lr_find["lr"] is not None:  # resuming: the schedule's base is the found LR
            rebase_lr(run.optimizer, progress.lr_find["lr"])
        # after the range test, which steps the optimizer: the EMA follows training's steps only
        self.averages = Averages(run.model, run.optimizer, t.ema, t.swa_start)
        self.schedule = build_schedule(cfg.scheduler, run.optimizer, self.schedule_steps, span)
        if self.saved is None or self.branched:  # once per run: a schedule planned for a longer run says so
            initial_lr = float(run.optimizer.param_groups[0]["initial_lr"])
            warn_schedule(cfg.scheduler, span, initial_lr, self.schedule_steps)
        self.scaler = torch.amp.GradScaler(run.device.type, enabled=run.precision == "fp16")
        self.shuffle = torch.Generator(device=run.device).manual_seed(cfg.seed)
        if self.saved is not None and restore:
            checkpoint.restore(self.saved, **self.parts())
        if self.branched and progress.steps and progress.steps[-1].lr != self.schedule.lr:
            print(
                f"schedlab: warning: the branch starts at LR {self.schedule.lr:.4g} where its parent's epoch "
                f"{progress.epoch} ended at {progress.steps[-1].lr:.4g}",
                file=sys.stderr,
                flush=True,
            )
        self.bar = tqdm(
            total=sum(self.steps_in(e) for e in range(1, t.epochs + 1)),
            initial=progress.step,
            disable=None if t.progress else True,
            desc=" ".join(self.job.overrides) or "train",
            position=self.job.slot,
            leave=False,
            dynamic_ncols=True,
        )

    def plan_epochs(self, run: Setup, span: int) -> None:
        """Each epoch's batch size and steps: trainer.batch_size's in every epoch (steps_per_epoch), or where
        scheduler.batch_size schedules it, the schedule's over the `span` epochs it spans (batch_sizes, epoch_steps);
        schedule_steps is what the LR's position counts in (curves.position)."""
        t = self.t
        self.steps_per_epoch = run.train_set.num_batches(t.batch_size, t.max_steps_per_epoch)
        self.batch_sizes = batch_sizes(self.cfg.scheduler, span, t.batch_size)
        self.epoch_steps = None
        if self.batch_sizes:
            self.epoch_steps = tuple(run.train_set.num_batches(b, t.max_steps_per_epoch) for b in self.batch_sizes)
        self.schedule_steps = self.epoch_steps or self.steps_per_epoch

    def batch_size(self, epoch: int) -> int:
        """The batch size epoch `epoch` (from 1) trains with; a branch's epochs shared with its parent: the parent's."""
        if self.batch_sizes is None:
            return self.t.batch_size
        if epoch <= self.schedule_start:
            return self.progress.history[epoch - 1].batch_size or self.t.batch_size
        return self.batch_sizes[epoch - 1 - self.schedule_start]

    def steps_in(self, epoch: int) -> int:
        """The optimizer steps of epoch `epoch` (from 1), at its batch size; a branch's shared epochs: the parent's."""
        if self.epoch_steps is None:
            return self.steps_per_epoch
        if epoch <= self.schedule_start:
            return sum(1 for s in self.progress.steps if s.epoch == epoch)
        return self.epoch_steps[epoch - 1 - self.schedule_start]

    def provenance(self, run: Setup) -> dict:
        """provenance.json; a branch's also names its parent (its folder, epoch, commit and command)."""
        out = provenance(self.cfg, run.device, self.job)
        if self.progress.branch:
            parent = RunFolder(Path(self.progress.branch["parent"]), create=False).read_provenance() or {}
            out["branch"] = {
                **self.progress.branch,
                **{f"parent_{k}": parent.get(k) for k in ("git_commit", "command")},
            }
        return out

    def parts(self) -> dict:
        return dict(
            model=self.model,
            optimizer=self.optimizer,
            schedule=self.schedule,
            scaler=self.scaler,
            shuffle=self.shuffle,
            averages=self.averages,
        )

    def epochs(self) -> range:
        return range(self.progress.epoch + 1, self.t.epochs + 1)

    def epoch_settings(self, epoch: int) -> dict:
        """train_epoch()'s keyword arguments for this arm's epoch `epoch`."""
        return dict(
            epoch=epoch,
            step=self.progress.step,
            max_steps=self.steps_in(epoch),
            amp=self.amp,
            scaler=self.scaler,
            first_loss=self.progress.first_loss,
            check_every=self.t.divergence.check_every,
            factor=self.t.divergence.factor,
            progress=self.bar,
        )

    def record(
        self, epoch: int, result: EpochResult, forward, run: Setup, train_time: float, commit: bool = True
    ) -> bool:
        """After epoch `epoch` trained (for `train_time` seconds): evaluate, step the schedule, write the row and
        steps, log, checkpoint (`commit`: this arm's own checkpoint.pt; a stack commits all its arms at once).
        False when the run ends here (diverged, or stopped early)."""
        self.progress.first_loss = result.first_loss
        self.progress.step += len(result.steps)
        if result.diverged:
            self.record_divergence(result)
            return False
        self.averages.end_epoch(epoch)
        row = self.epoch_row(epoch, result, forward, run, train_time)
        self.schedule.step_epoch(monitored(self.schedule.monitor, row, self.cfg.select_on_test))
        self.append(row, result.steps)
        if self.t.checkpoint:  # the commit point: a resume rewrites the result files from it
            self.save_checkpoints(commit)
        if epoch in self.t.keep_checkpoints:  # what a branch starts from (in a stack too: its arm's own state)
            checkpoint.keep(self.folder, epoch, self.cfg, **self.parts(), **self.state())
        return not self.stops_early(epoch)

    def record_divergence(self, result: EpochResult) -> None:
        """How it blew up stays visible (its steps); the partial epoch gets no row."""
        self.summary.diverged_at = result.diverged
        self.folder.append_steps(result.steps)
        self.tracker.log_steps(result.steps)

    def epoch_row(self, epoch: int, result: EpochResult, forward, run: Setup, train_time: float) -> EpochRow:
        """The epoch's row: its training figures, and the model at the epoch's end evaluated (a schedule-free
        optimizer's averaged weights) on the validation and test sets, the fixed training subset and the snapshot
        ensemble, and the weight averages (EMA, SWA) on the validation and test sets; train_time and eval_time apart,
        epoch_time their sum."""
        start = time.perf_counter()
        figures = self.evaluate(epoch, forward, run)
        eval_time = time.perf_counter() - start
        gap = None if figures["train_eval_acc"] is None else figures["train_eval_acc"] - figures["test_acc"]
        return EpochRow(
            epoch=epoch,
            train_loss=result.train_loss,
            train_acc=result.train_acc,
            gap=result.train_acc - figures["test_acc"],
            eval_gap=gap,
            lr=result.steps[0].lr,
            lr_end=result.steps[-1].lr,
            batch_size=None if self.batch_sizes is None else self.batch_size(epoch),
            epoch_time=train_time + eval_time,
            train_time=train_time,
            eval_time=eval_time,
            **figures,
            **memory_use(run.device),
        )

    def evaluate(self, epoch: int, forward, run: Setup) -> dict:
        """The evaluated figures of the model as it stands, without drawing a random number or moving training."""
        size = self.t.eval_batch_size
        with averaged(self.optimizer) as at_average:
            if at_average:
                batch_norm_at_average(self.model, run.train_set, self.t.batch_size, run.amp)
            val = evaluate(forward, run.val_set, size, run.amp) if run.val_set else (None, None)
            test = evaluate(forward, run.test_set, size, run.amp)
            train = evaluate(forward, run.train_eval_set, size, run.amp) if run.train_eval_set else (None, None)
            ensemble = self.ensemble(epoch, run)
        averages = self.averages.figures(run, self.t.batch_size, size)  # their own copies of the model
        names = ("val_loss", "val_acc", "test_loss", "test_acc", "train_eval_loss", "train_eval_acc")
        return dict(zip(names, (*val, *test, *train), strict=True)) | ensemble | averages

    def append(self, row: EpochRow, steps: list[StepRow]) -> None:
        """The row and its steps into the progress, the run folder, the tracker, the bar and run.log."""
        progress = self.progress
        progress.history.append(row)
        progress.steps += steps
        progress.epoch = row.epoch
        progress.elapsed = time.perf_counter() - self.started
        self.folder.append_epoch(row, steps)
        self.tracker.log_epoch(row, steps)
        self.bar.set_postfix(loss=f"{row.train_loss:.3f}", test_acc=f"{row.test_acc:.3f}", lr=f"{row.lr_end:.3g}")
        self.log.info(epoch_line(row, self.t.epochs))  # run.log, and the console where there is no progress bar

    def save_checkpoints(self, commit: bool) -> None:
        """checkpoint.pt (unless a stack commits it), and best.pt at the epoch chosen on validation."""
        if commit:
            checkpoint.save(self.folder, self.cfg, **self.parts(), **self.state())
        if is_best(self.progress.history, self.cfg.select_on_test):
            checkpoint.save(self.folder, self.cfg, **self.parts(), **self.state(), path=self.folder.best)

    def stops_early(self, epoch: int) -> bool:
        settings = self.t.early_stopping
        if not stop_early(self.progress.history, settings, self.cfg.select_on_test):
            return False
        self.summary.stopped_early_at = epoch
        self.log.info(
            f"stopping early at epoch {epoch}: {settings.monitor} has not improved for {settings.patience} epochs"
        )
        return True

    def ensemble(self, epoch: int, run: Setup) -> dict:
        """The snapshot ensemble's figures after epoch `epoch` (called with the weights it is evaluated with in
        the model). At a snapshot epoch: save the model into snapshots/, then the accuracy of the mean softmax of
        the last trainer.snapshot_ensemble snapshots (read back from their files, as a resumed run reads the
        earlier ones) on the validation and test sets; at any other epoch, the last ensemble's figures."""
        names = ("ensemble_val_acc", "ensemble_test_acc")
        if epoch not in self.snapshot_epochs:
            last = self.progress.history[-1] if self.progress.history else None
            return {name: getattr(last, name, None) for name in names}
        checkpoint.save_snapshot(self.folder, epoch, self.model)
        taken = [e for e in self.snapshot_epochs if e <= epoch][-(self.t.snapshot_ensemble or epoch) :]
        weights = [checkpoint.load_snapshot(self.folder, e, self.device) for e in taken]
        size = self.t.eval_batch_size
        sets = (run.val_set, run.test_set)
        figures = [None if s is None else ensemble_accuracy(self.model, weights, s, size, self.amp) for s in sets]
        return dict(zip(names, figures, strict=True))

    def state(self) -> dict:
        """What a checkpoint stores besides the parts."""
        return dict(progress=self.progress.to_dict(), tracker_id=self.tracker.id if self.tracker else None)

    def finish(self, error: BaseException | None = None) -> None:
        """The run ends: completed or diverged, or with `error` (interrupted, failed); summary.json and the
        tracker record how. Called once; later calls do nothing."""
        if self.finished:
            return
        self.finished = True
        summary, progress = self.summary, self.progress
        if error is None:
            summary.status = "diverged" if summary.diverged_at else "completed"
        else:
            summary.status = "interrupted" if isinstance(error, KeyboardInterrupt) else "failed"
            summary.error = f"{type(error).__name__}: {error}"
        if self.bar is not None:
            self.bar.close()
        summary.record_history(progress.history, self.cfg.select_on_test, self.cfg.dataset.num_classes)
        summary.wall_time_s = time.perf_counter() - self.started
        summary.finished_at = now()
        summary.lr_find = progress.lr_find
        try:
            self.folder.write_summary(summary)
        except OSError as e:  # a full disk: the error that stopped the run matters more than this one
            print(f"schedlab: could not write {self.folder.summary}: {e}", file=sys.stderr, flush=True)
        if self.tracker is not None:
            self.tracker.summary(summary)
            self.tracker.finish(0 if error is None else 1)
