"""The run folder and what a run records in it: one owner, one writer, one reader.

A run folder holds config.yaml, metrics.jsonl (one `EpochRow` per epoch), steps.csv (one `StepRow` per
optimizer step), summary.json (a `Summary`), provenance.json, checkpoint.pt (trainer/engine/checkpoint.py), with
trainer.snapshots snapshots/epoch_NNN.pt, and with trainer.keep_checkpoints checkpoints/epoch_NNN.pt.
Training, the LR range test, the trackers, the command line's closing line and objective, the report and
the benchmarks all read and write these files through this module, so a new per-epoch metric is one field
of `EpochRow` (with its `metric(...)` description): it then lands in metrics.jsonl, in every tracker, as
`final_<name>` in summary.json, as a sweep objective and as a column of the report.

Every whole-file write is atomic (temp file + rename), so an interrupted run never leaves a half-written
file; the appended files (metrics.jsonl, steps.csv) are read defensively (a cut last line is reported,
not fatal). This module needs no torch, so the report can read runs without importing it.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from trainer.errors import ConfigError

LOCK_FILE = ".lock"

# ------------------------------------------------------------------------------------------ file writes


TMP_MARK = ".tmp"  # .<name>.tmp<pid>: a whole-file write in progress


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write a whole file or nothing: a temp file beside it, renamed over it; the temp file is removed when
    the write fails (a full disk, a folder that stopped accepting writes)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def finite(value: Any) -> Any:
    """JSON has no NaN or infinity: write them as strings so every reader can parse the file."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(finite(obj), indent=2) + "\n").encode())


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


# ------------------------------------------------------------------------------------------ the records


def metric(
    title: str,
    *,
    scale: float = 1,
    decimals: int = 3,
    better: str | None = None,
    summary: str | None = "final",
    key: str | None = None,
    requires: str | tuple[str, ...] | None = None,
    machine: bool = False,
    **kwargs,
):
    """A per-epoch figure of EpochRow and how it is shown: `title` its table header, `scale` 100 for a
    fraction shown in percent, `better` "max"/"min" when the best mean of a column is worth bolding,
    `summary` how summary.json condenses it: "final" (its last value) or "mean" (over the epochs), under
    `key` (default final_<name> / mean_<name>), or None (not summarized: the LR, memory); `requires`
    what a run needs to have the figure (VALIDATION: a validation set, SNAPSHOTS, ...; a tuple: all of them);
    `machine` a measurement of the machine (time, memory), not a number of the run: it differs between two runs
    that are otherwise equal bit for bit."""
    key = key or (f"{summary}_{{}}" if summary else None)
    meta = {"title": title, "scale": scale, "decimals": decimals, "better": better, "summary": summary, "key": key}
    return field(metadata={**meta, "requires": requires, "machine": machine}, **kwargs)


# what a figure needs (Metric.requires): a validation set; a best epoch (validation, or select_on_test=true);
# select_on_test=true itself; snapshots (trainer.snapshots=true); the weight averages (trainer.ema, trainer.swa_start)
VALIDATION, SELECTION, TEST_SELECTION, SNAPSHOTS = "validation", "selection", "test selection", "snapshots"
EMA, SWA = "ema", "swa"


def _memory(title: str):
    return metric(title, decimals=0, summary=None, machine=True, default=None)


@dataclass
class EpochRow:
    """One line of metrics.jsonl: the figures of one finished epoch. Training selects on validation figures
    only (the best epoch, plateau, objectives); test figures are reported."""

    epoch: int
    _: KW_ONLY
    train_loss: float = metric("train loss", better="min")
    train_acc: float = metric("train acc (%)", scale=100, decimals=2, better="max")
    val_loss: float | None = metric("val loss", better="min", requires=VALIDATION, default=None)
    val_acc: float | None = metric(
        "val acc (%)", scale=100, decimals=2, better="max", requires=VALIDATION, default=None
    )
    test_loss: float = metric("test loss", better="min")
    test_acc: float = metric("test acc (%)", scale=100, decimals=2, better="max")
    # small is not better when both accuracies are low
    gap: float = metric("gap (%)", scale=100, decimals=2)  # train acc - test acc
    # the same gap measured honestly: the model at the epoch's end evaluated on a fixed subset of the training
    # part (trainer.train_eval_size examples, the same every epoch and every arm), then its gap to test accuracy;
    # `gap` compares the accuracy averaged while the weights moved with an end-of-epoch test figure
    train_eval_loss: float | None = metric("train loss, end of epoch", better="min", default=None)
    train_eval_acc: float | None = metric(
        "train acc, end of epoch (%)", scale=100, decimals=2, better="max", default=None
    )
    eval_gap: float | None = metric("gap, end of epoch (%)", scale=100, decimals=2, default=None)
    # snapshot ensembles (trainer.snapshots): the accuracy of the mean softmax of the last snapshots, as the
    # ensemble stands after the epoch: set at each snapshot, the last value held until the next, None before the
    # first (so final_* is the ensemble the run ends with)
    ensemble_val_acc: float | None = metric(
        "ensemble val acc (%)", scale=100, decimals=2, better="max", requires=(VALIDATION, SNAPSHOTS), default=None
    )
    ensemble_test_acc: float | None = metric(
        "ensemble test acc (%)", scale=100, decimals=2, better="max", requires=SNAPSHOTS, default=None
    )
    # weight averages (trainer/engine/averages.py), evaluated beside the raw weights after every epoch: the EMA of the
    # weights (trainer.ema, updated every optimizer step) and the equal-weight mean of the end-of-epoch weights from
    # epoch trainer.swa_start on (SWA; None before it)
    ema_val_loss: float | None = metric("EMA val loss", better="min", requires=(VALIDATION, EMA), default=None)
    ema_val_acc: float | None = metric(
        "EMA val acc (%)", scale=100, decimals=2, better="max", requires=(VALIDATION, EMA), default=None
    )
    ema_test_loss: float | None = metric("EMA test loss", better="min", requires=EMA, default=None)
    ema_test_acc: float | None = metric(
        "EMA test acc (%)", scale=100, decimals=2, better="max", requires=EMA, default=None
    )
    swa_val_loss: float | None = metric("SWA val loss", better="min", requires=(VALIDATION, SWA), default=None)
    swa_val_acc: float | None = metric(
        "SWA val acc (%)", scale=100, decimals=2, better="max", requires=(VALIDATION, SWA), default=None
    )
    swa_test_loss: float | None = metric("SWA test loss", better="min", requires=SWA, default=None)
    swa_test_acc: float | None = metric(
        "SWA test acc (%)", scale=100, decimals=2, better="max", requires=SWA, default=None
    )
    lr: float = metric("LR at the epoch's first step", decimals=4, summary=None)
    lr_end: float = metric("LR at the epoch's last step", decimals=4, summary=None)
    # the epoch's batch size where scheduler.batch_size schedules it (None, left out of the row, where it does not)
    batch_size: int | None = metric("batch size", decimals=0, summary=None, default=None)
    epoch_time: float = metric(
        "epoch time (s)", decimals=2, better="min", summary="mean", key="mean_epoch_time_s", machine=True
    )
    # the epoch's seconds split: training steps alone, and evaluation (validation, test, the training subset,
    # snapshot ensembles); time to a target counts train_time only
    train_time: float | None = metric(
        "train time (s)", decimals=2, better="min", summary="mean", key="mean_train_time_s", machine=True, default=None
    )
    eval_time: float | None = metric(
        "eval time (s)", decimals=2, better="min", summary="mean", key="mean_eval_time_s", machine=True, default=None
    )
    rss_mb: float | None = _memory("resident memory (MiB)")
    peak_rss_mb: float | None = _memory("peak resident memory (MiB)")
    cuda_mb: float | None = _memory("CUDA memory (MiB)")
    cuda_peak_mb: float | None = _memory("peak CUDA memory (MiB)")

    def to_dict(self) -> dict:
        """The row as metrics.jsonl holds it: figures a device does not have (CUDA memory on a CPU) left out."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, d: dict) -> EpochRow:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: _number(v) for k, v in d.items() if k in names})


def machine_figures() -> tuple[str, ...]:
    """The EpochRow figures that measure the machine (times, memory): the ones two equal runs may differ in."""
    return tuple(f.name for f in epoch_metrics() if f.metadata["machine"])


def _number(v: Any) -> Any:
    return float(v) if isinstance(v, str) and v in ("nan", "inf", "-inf") else v


def epoch_metrics() -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(EpochRow) if f.metadata]


class StepRow(NamedTuple):
    """One line of steps.csv: the LR an optimizer step ran with, and its loss."""

    step: int  # counted from 1 over the whole run
    epoch: int  # from 1
    lr: float
    loss: float


STEP_HEADER = "step,epoch,lr,loss\n"


def _csv_line(row: StepRow) -> str:
    return ",".join(repr(v) for v in row) + "\n"


@dataclass(frozen=True)
class Metric:
    """A figure of summary.json as the report and the sweep objective name it."""

    name: str  # the column's name on the report's command line
    key: str  # its summary.json key
    title: str  # its header in the tables
    scale: float  # 100: a fraction shown in percent
    decimals: int
    better: str | None = None  # "max" or "min": the best mean of the column is set in bold
    objective: bool = True  # a sweep may optimize it (timings and the best epoch's number are no objective)
    # what a run needs to have the figure: VALIDATION (a validation set), SELECTION (a best epoch: a
    # validation set, or select_on_test=true), TEST_SELECTION (select_on_test=true), SNAPSHOTS
    # (trainer.snapshots=true), EMA (trainer.ema), SWA (trainer.swa_start), a tuple of them, or None
    requires: str | tuple[str, ...] | None = None


def _summary_metrics() -> list[Metric]:
    out = []
    for f in epoch_metrics():
        m = f.metadata
        if m["summary"] is None:
            continue
        key = m["key"].format(f.name)
        final = m["summary"] == "final"
        out.append(Metric(f.name, key, m["title"], m["scale"], m["decimals"], m["better"], final, m["requires"]))
        scale, decimals = m["scale"], m["decimals"]
        if f.name == "val_acc":  # the best epoch: the one with the best validation accuracy
            out.append(
                Metric("best_val_acc", "best_val_acc", "best val acc (%)", scale, decimals, "max", True, VALIDATION)
            )
        if f.name == "test_acc":  # the test accuracy at the best epoch, beside the final one
            title = "test acc at best epoch (%)"
            out.append(
                Metric("best_epoch_test_acc", "best_epoch_test_acc", title, scale, decimals, "max", True, SELECTION)
            )
            out.append(
                Metric(
                    "best_test_acc", "best_test_acc", "best test acc (%)", scale, decimals, "max", True, TEST_SELECTION
                )
            )
    out.append(Metric("best_epoch", "best_epoch", "best epoch", 1, 1, objective=False, requires=SELECTION))
    out.append(Metric("wall_time", "wall_time_s", "wall time (s)", 1, 1, "min", objective=False))
    return out


# Every figure summary.json can hold, in report order: the final value of each summarized EpochRow field,
# the mean epoch time, the best epoch's figures and the epoch itself, the wall time.
METRICS: dict[str, Metric] = {m.name: m for m in _summary_metrics()}
# What a sweep may optimize: any figure of the run's results (not its timing).
OBJECTIVES = tuple(m.key for m in METRICS.values() if m.objective)


def missing_for(
    key: str,
    has_validation: bool,
    select_on_test: bool,
    has_snapshots: bool = True,
    has_ema: bool = True,
    has_swa: bool = True,
) -> str | None:
    """Why a run without a validation set (or without select_on_test, snapshots, an EMA or an SWA) has no figure
    `key`; None if it has it."""
    metric = next((m for m in METRICS.values() if m.key == key), None)
    requires = metric.requires if metric else None
    needs = requires if isinstance(requires, tuple) else (requires,)
    if VALIDATION in needs and not has_validation:
        return "it is a validation figure"
    if SELECTION in needs and not (has_validation or select_on_test):
        return "it needs a best epoch, chosen on the validation set"
    if TEST_SELECTION in needs and not select_on_test:
        return "it selects on the test set"
    if SNAPSHOTS in needs and not has_snapshots:
        return "it is a snapshot ensemble's figure"
    if EMA in needs and not has_ema:
        return "it is a figure of the EMA of the weights: set trainer.ema (a decay, e.g. 0.999)"
    if SWA in needs and not has_swa:
        return "it is a figure of the SWA of the weights: set trainer.swa_start (the first epoch averaged)"
    return None


def selected(row: EpochRow, name: str, select_on_test: bool) -> str | None:
    """The figure a run selects on (best epoch, plateau, early stopping) for the validation figure `name`
    ("val_loss", "val_acc"): itself in a run with a validation set, its test twin where select_on_test
    stands in for a missing one, None otherwise."""
    if row.val_acc is not None:
        return name
    return name.replace("val_", "test_", 1) if select_on_test else None


def results_summary(history: list[EpochRow], select_on_test: bool = False) -> dict:
    """The figures of summary.json from the completed epochs: final values, mean epoch time, and the best
    epoch: the one with the best validation accuracy (with its test accuracy beside it); without a
    validation set, the one with the best test accuracy only when select_on_test asks for it (it then also
    gives best_test_acc, a figure chosen on the test set)."""
    if not history:
        return {"epochs_completed": 0}
    last = history[-1]
    out: dict[str, Any] = {"epochs_completed": last.epoch}
    for f in epoch_metrics():
        kind, key = f.metadata["summary"], f.metadata["key"]
        if kind == "final" and getattr(last, f.name) is not None:
            out[key.format(f.name)] = getattr(last, f.name)
        elif kind == "mean":
            values = [v for r in history if (v := getattr(r, f.name)) is not None]
            out[key.format(f.name)] = sum(values) / len(values) if values else None
    key = selected(last, "val_acc", select_on_test)
    if key is None:
        return out
    best = max(history, key=lambda r: getattr(r, key))  # the first of equals: the earliest epoch
    if key == "val_acc":
        out["best_val_acc"] = best.val_acc
    out["best_epoch"], out["best_epoch_test_acc"] = best.epoch, best.test_acc
    if select_on_test:
        out["best_test_acc"] = max(r.test_acc for r in history)
    return out


def collapse(history: list[EpochRow], num_classes: int) -> dict | None:
    """A run that learned and then fell back to chance with its loss stuck: a finding, not a crash. Its
    training accuracy reached at least twice chance, and its last epochs (at least one) sit at chance
    (below 1.5 x 1/num_classes) with a training loss within 5 % of ln(num_classes), a uniform guess. Returns
    the first epoch of that final stretch, the peak it fell from and its epoch; None for any other run."""
    if num_classes < 2 or not history:
        return None
    chance, uniform = 1 / num_classes, math.log(num_classes)
    peak = max(history, key=lambda r: r.train_acc)
    stuck = 0
    for r in reversed(history):
        if r.train_acc < 1.5 * chance and abs(r.train_loss - uniform) < 0.05 * uniform:
            stuck += 1
        else:
            break
    if not stuck or peak.train_acc < 2 * chance or peak.epoch > history[-stuck].epoch:
        return None
    return {"epoch": history[-stuck].epoch, "peak_train_acc": peak.train_acc, "peak_epoch": peak.epoch}


@dataclass
class Job:
    """Which job this is: its overrides, its number in a sweep, the sweep, its Hydra output folder."""

    overrides: list[str] = field(default_factory=list)
    num: int | None = None
    multirun: bool = False
    sweep: str | None = None
    output_dir: str | None = None
    slot: int | None = None  # its line in a terminal that parallel jobs share (its progress bar's position)

    @classmethod
    def of(cls, job: Job | dict | None) -> Job:
        if isinstance(job, Job):
            return job
        return cls(**(job or {}))


STATUSES = ("running", "completed", "diverged", "failed", "interrupted")
FINISHED = ("completed", "diverged")


@dataclass
class Summary:
    """summary.json: how a run ended, what it ran on, and its figures (`figures`, flat in the file)."""

    status: str = "running"
    task: str = "train"
    seed: int = 0
    overrides: list[str] = field(default_factory=list)
    started_at: str | None = None
    finished_at: str | None = None
    wall_time_s: float | None = None
    device: str | None = None
    device_name: str | None = None
    precision: str | None = None
    epochs: int | None = None
    steps_per_epoch: int | None = None
    epochs_completed: int = 0
    diverged_at: dict | None = None  # epoch, step, lr, loss of the first blown-up step
    collapsed_at: dict | None = None  # a run that learned and fell back to chance: see collapse()
    stopped_early_at: int | None = None  # the epoch trainer.early_stopping ended the run at
    error: str | None = None
    lr_find: dict | None = None  # rule, lr, suggestions, stop_reason when trainer.lr_find ran
    stack: dict | None = None  # a stacked sweep's: the jobs that trained in one process with this one, how
    # a branch's (branch.parent, branch.epoch): the parent folder (absolute), the epoch it branched at, and what it
    # shares with the parent: its first `epoch` epochs (metrics.jsonl's rows 1..epoch are the parent's), their
    # optimizer steps and seconds (counted in wall_time_s: the cost of the branch alone is wall_time_s - shared)
    branch: dict | None = None
    # a scheduled batch size's (scheduler.batch_size): each epoch's batch size and optimizer steps, as lists from
    # epoch 1 (steps_per_epoch is then null: the epochs differ)
    batch_size: dict | None = None
    figures: dict[str, float] = field(default_factory=dict)  # METRICS keys: final_*, best_*, mean_*

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "figures"}
        d.update(self.figures)
        for key in ("error", "stack", "branch", "batch_size"):  # only where there is one
            if d[key] is None:
                del d[key]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Summary:
        names = {f.name for f in dataclasses.fields(cls)} - {"figures"}
        known = {k: v for k, v in d.items() if k in names}
        figures = {k: _number(v) for k, v in d.items() if k not in names}
        return cls(**known, figures=figures)

    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]

    def get(self, key: str, default: Any = None) -> Any:
        """A field or a figure by its summary.json key."""
        if key in self.figures:
            return self.figures[key]
        return getattr(self, key, default) if key != "figures" else default

    def record_history(
        self, history: list[EpochRow], select_on_test: bool = False, num_classes: int | None = None
    ) -> None:
        results = results_summary(history, select_on_test)
        self.epochs_completed = results.pop("epochs_completed")
        self.figures = results
        self.collapsed_at = collapse(history, num_classes) if num_classes else None


# ------------------------------------------------------------------------------------------ the folder


class Damaged(NamedTuple):
    """A file of a run folder that could not be read whole: which, and why."""

    path: Path
    reason: str


class RunFolder:
    """The files of one run folder: the one writer and the one reader of each of them."""

    def __init__(self, run_dir: Path, create: bool = True):
        self.dir = Path(run_dir)
        if create:
            self.dir.mkdir(parents=True, exist_ok=True)
        self.config = self.dir / "config.yaml"
        self.metrics = self.dir / "metrics.jsonl"
        self.steps = self.dir / "steps.csv"
        self.summary = self.dir / "summary.json"
        self.provenance = self.dir / "provenance.json"
        self.checkpoint = self.dir / "checkpoint.pt"
        self.best = self.dir / "best.pt"  # the state at the best epoch (validation accuracy)
        self.snapshots = self.dir / "snapshots"  # trainer.snapshots: the model's weights at each cycle end
        self.checkpoints = self.dir / "checkpoints"  # trainer.keep_checkpoints: the states a branch starts from
        self.overrides = self.dir / ".hydra" / "overrides.yaml"
        self.hydra_config = self.dir / ".hydra" / "config.yaml"
        self.damaged: list[Damaged] = []  # what the readers found unreadable, for the report to list

    def snapshot(self, epoch: int) -> Path:
        return self.snapshots / f"epoch_{epoch:03d}.pt"

    def kept(self, epoch: int) -> Path:
        """checkpoints/epoch_NNN.pt: the state at the end of epoch `epoch` (trainer.keep_checkpoints)."""
        return self.checkpoints / f"epoch_{epoch:03d}.pt"

    def kept_epochs(self) -> list[int]:
        """The epochs of checkpoints/ (trainer.keep_checkpoints), in order."""
        names = self.checkpoints.glob("epoch_*.pt") if self.checkpoints.is_dir() else []
        return sorted(int(p.stem[len("epoch_") :]) for p in names if p.stem[len("epoch_") :].isdigit())

    # --- ownership

    @contextmanager
    def owned(self):
        """Hold the folder for one process: an exclusive lock on .lock for as long as the run writes to it.
        A second process is refused with one line; the lock goes with the process, however it ends."""
        import fcntl

        handle = open(self.dir / LOCK_FILE, "a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise ConfigError(
                f"{self.dir} is in use by another process: one run folder has one writer; wait for it to end or "
                "choose another folder"
            ) from None
        try:
            self.remove_temp_files()  # what an earlier owner left half-written
            yield self
        finally:
            handle.close()

    def remove_temp_files(self) -> None:
        for tmp in self.dir.glob(f".*{TMP_MARK}*"):
            tmp.unlink(missing_ok=True)

    # --- writing

    def write_config(self, cfg) -> None:
        """config.yaml: the resolved config (a DictConfig or a typed run config)."""
        from omegaconf import OmegaConf

        atomic_write_bytes(self.config, OmegaConf.to_yaml(cfg, resolve=True).encode())

    def write_history(self, history: Iterable[EpochRow], steps: Iterable[StepRow]) -> None:
        """Rewrite metrics.jsonl and steps.csv from a checkpoint's records (on resume)."""
        atomic_write_bytes(self.metrics, "".join(_jsonl(r) for r in history).encode())
        atomic_write_bytes(self.steps, (STEP_HEADER + "".join(_csv_line(s) for s in steps)).encode())

    def append_epoch(self, row: EpochRow, steps: list[StepRow]) -> None:
        with open(self.metrics, "a") as f:
            f.write(_jsonl(row))
        self.append_steps(steps)

    def append_steps(self, steps: list[StepRow]) -> None:
        new = not self.steps.exists()
        with open(self.steps, "a") as f:
            f.write((STEP_HEADER if new else "") + "".join(_csv_line(s) for s in steps))

    def write_summary(self, summary: Summary) -> None:
        write_json(self.summary, summary.to_dict())

    def write_provenance(self, provenance: dict) -> None:
        write_json(self.provenance, provenance)

    # --- reading

    def _damaged(self, path: Path, reason: str) -> None:
        self.damaged.append(Damaged(path, reason))

    def read_metrics(self) -> list[EpochRow]:
        """The epochs of metrics.jsonl; a line that does not parse (a run killed mid-write) ends the read
        and is recorded in `damaged`."""
        if not self.metrics.exists():
            return []
        rows = []
        for i, line in enumerate(self.metrics.read_text(errors="replace").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rows.append(EpochRow.from_dict(json.loads(line)))
            except (TypeError, ValueError, AttributeError) as e:  # JSONDecodeError is a ValueError
                self._damaged(self.metrics, f"line {i} unreadable ({type(e).__name__})")
                break
        return rows

    def read_steps(self) -> list[StepRow]:
        if not self.steps.exists():
            return []
        rows = []
        with open(self.steps, newline="", errors="replace") as f:
            try:
                for r in csv.DictReader(f):
                    rows.append(StepRow(int(r["step"]), int(r["epoch"]), float(r["lr"]), float(r["loss"])))
            except (KeyError, TypeError, ValueError, csv.Error) as e:
                self._damaged(self.steps, f"line {len(rows) + 2} unreadable ({type(e).__name__})")
        return rows

    def read_summary(self) -> Summary | None:
        """summary.json, or None when there is none (a run stopped before writing it) or it is unreadable."""
        d = self._read_json(self.summary)
        return None if d is None else Summary.from_dict(d)

    def read_provenance(self) -> dict | None:
        return self._read_json(self.provenance)

    def _read_json(self, path: Path) -> dict | None:
        if not path.exists():
            return None
        try:
            d = json.loads(path.read_text())
            if not isinstance(d, dict):
                raise ValueError("not an object")
            return d
        except (OSError, ValueError) as e:
            self._damaged(path, f"unreadable ({type(e).__name__})")
            return None

    def read_overrides(self) -> list[str] | None:
        """The job's command-line overrides: Hydra's .hydra/overrides.yaml, else the summary's copy."""
        if self.overrides.exists():
            overrides = self._read_yaml(self.overrides)
            if isinstance(overrides, list):
                return [str(o) for o in overrides]
        summary = self._read_json(self.summary) if self.summary.exists() else None
        return None if summary is None else [str(o) for o in summary.get("overrides", [])]

    def read_task(self) -> str:
        """The task of the run (train, lr_find, schedule), from summary.json or Hydra's config."""
        summary = self._read_json(self.summary) if self.summary.exists() else None
        if summary is not None:
            return summary.get("task", "train")
        config = self._read_yaml(self.hydra_config) if self.hydra_config.exists() else None
        return (config or {}).get("task", "train") if isinstance(config, dict) else "train"

    def _read_yaml(self, path: Path) -> Any:
        import yaml

        try:
            return yaml.safe_load(path.read_text())
        except (OSError, ValueError, yaml.YAMLError) as e:  # UnicodeDecodeError is a ValueError
            self._damaged(path, f"unreadable ({type(e).__name__})")
            return None

    def is_run(self) -> bool:
        """A run folder: one with a summary.json or Hydra's .hydra/overrides.yaml."""
        return self.summary.is_file() or self.overrides.is_file()


def _jsonl(row: EpochRow) -> str:
    return json.dumps(finite(row.to_dict())) + "\n"


def read_metrics(run_dir: Path) -> list[dict]:
    """metrics.jsonl as plain dicts (for tests and scripts)."""
    return [r.to_dict() for r in RunFolder(run_dir, create=False).read_metrics()]


def read_summary(run_dir: Path) -> dict | None:
    summary = RunFolder(run_dir, create=False).read_summary()
    return None if summary is None else summary.to_dict()
