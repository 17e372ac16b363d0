"""Reading runs: the run folders under the report's folders (through trainer.records), the jobs of a sweep that
never ran, or the rows of a results.csv an earlier report wrote. A damaged file is recorded on its run, never
raised; what a run's figures say about it (not finite, stuck at chance) is its own fact, kept beside it."""

from __future__ import annotations

import csv
import json
import math
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from experiments.report.statistics import finite
from trainer.config.sweeps import basic_sweeper_jobs
from trainer.records import METRICS, Damaged, EpochRow, RunFolder, StepRow, Summary, epoch_metrics

RUN_FIELDS = ("epochs_completed", *(m.key for m in METRICS.values()), "device_name", "precision")
RESULTS_EXTRA = ("num_classes", "at_chance")  # results.csv columns after the figures: what chance is for the run
# and, for a branch, what its summary.json records of its parent (`branch`): the parent folder, the epochs and
# seconds the two share (the first `epoch` epochs), so that the Branches section is computed again from the file
BRANCH_RECORD_COLUMNS = ("parent_folder", "shared_epochs", "shared_wall_time_s")
CHANCE_FACTOR = 1.5  # a run whose training accuracy never rose above 1.5 x chance (1 / num_classes) is stuck


def split_override(override: str) -> tuple[str, str]:
    """'+optimizer.lr=0.1' -> ('optimizer.lr', '0.1'); a deletion '~key' -> ('key', '~')."""
    key, _, value = override.partition("=")
    if key.startswith("~"):
        return key[1:], "~" + value
    return key.lstrip("+"), value


@dataclass
class Run:
    path: Path
    overrides: list[str]
    status: str  # a summary.json status, "no summary" (stopped before writing one), "damaged" or "not run"
    summary: Summary | None = None  # None: no readable summary.json
    history: list[EpochRow] = field(default_factory=list)  # the rows of metrics.jsonl
    damaged: list[Damaged] = field(default_factory=list)  # files of the folder that could not be read whole
    steps: list[StepRow] | None = field(default=None, repr=False)  # steps.csv once read (run_steps)
    num_classes: int | None = None  # dataset.num_classes of its config.yaml: chance is 1 / num_classes
    # a run read from a results.csv row: the reason, chance flag and targets reached that the row recorded
    recorded: dict | None = field(default=None, repr=False)

    @property
    def params(self) -> dict[str, str]:
        return dict(split_override(o) for o in self.overrides)

    @property
    def included(self) -> bool:
        return self.status == "completed"

    def value(self, metric) -> float | None:
        v = None if self.summary is None else self.summary.get(metric.key)
        return None if v is None else float(v)

    @property
    def chance(self) -> float | None:
        """The accuracy of a guess: 1 / num_classes, where the run says how many classes it has."""
        return 1 / self.num_classes if self.num_classes and self.num_classes >= 2 else None

    @property
    def at_chance(self) -> str | None:
        """ "collapsed": it learned, then fell back to chance (summary.json's collapsed_at); "stuck": its training
        accuracy (averaged over an epoch, or of the end-of-epoch evaluation) never rose above CHANCE_FACTOR x chance; "at chance": without the epochs to tell which (a
        results.csv row), its final training accuracy is there; None: it learned, or chance is unknown."""
        if self.recorded is not None and self.recorded.get("at_chance") is not None:
            return self.recorded["at_chance"] or None
        if self.summary is not None and isinstance(self.summary.collapsed_at, dict):
            return "collapsed"
        if self.chance is None:
            return None
        train = [v for r in self.history for v in (r.train_acc, r.train_eval_acc) if finite(v)]
        if train:
            return "stuck" if max(train) < CHANCE_FACTOR * self.chance else None
        final = self.summary.get("final_train_acc") if self.summary is not None else None
        return "at chance" if finite(final) and final < CHANCE_FACTOR * self.chance else None

    @property
    def reason(self) -> str:
        """Why the run is not in the means ("" when it is)."""
        epochs = self.summary.epochs_completed if self.summary else len(self.history)
        if self.status == "completed":
            return ""
        if self.recorded is not None and self.recorded.get("reason"):
            return self.recorded["reason"]
        if self.status == "not run":
            return "job of the sweep in multirun.yaml without a folder"
        if self.status == "damaged":
            return "; ".join(f"{d.path.name}: {d.reason}" for d in self.damaged)
        if self.status == "no summary":
            return f"no summary.json: stopped after {epochs} epoch(s)"
        if self.status == "diverged":
            at = self.summary.diverged_at or {}
            return f"diverged at epoch {at.get('epoch', '?')}, step {at.get('step', '?')} (loss {at.get('loss', '?')})"
        if self.status == "failed":
            return self.summary.error or "failed"
        return f"{self.status} after {epochs} epoch(s)"

    def nonfinite_epochs(self) -> list[str]:
        """'test_loss nan at epoch 3' for every figure of metrics.jsonl that is not finite."""
        out = []
        for row in self.history:
            for f in epoch_metrics():
                value = getattr(row, f.name)
                if isinstance(value, float) and not math.isfinite(value):
                    out.append(f"{f.name} {value} at epoch {row.epoch}")
        return out


def natural_key(text: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def seed_of(run: Run) -> int | str | None:
    seed = run.summary.seed if run.summary is not None else None
    return seed if isinstance(seed, (int, str)) and not isinstance(seed, bool) else run.params.get("seed")


def find_runs(folder: Path) -> Iterator[Path]:
    """Every run folder at or below folder (summary.json or Hydra's .hydra/overrides.yaml), in job order."""
    for root, dirs, _files in os.walk(folder):
        if RunFolder(Path(root), create=False).is_run():
            dirs[:] = []
            yield Path(root)
        else:
            dirs[:] = sorted((d for d in dirs if not d.startswith(".")), key=natural_key)


def _guarded(folder: RunFolder, path: Path, read: Callable, default):
    """read(), or default with `path` recorded as damaged when it raises: whatever a file holds (binary,
    another type of document, a permission), one run must not sink the report."""
    try:
        return read()
    except Exception as e:  # noqa: BLE001
        folder.damaged.append(Damaged(path, f"unreadable ({type(e).__name__})"))
        return default


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def shown_value(value) -> str:
    """A value as the JSON file has it (null, "abc"), shortened."""
    text = json.dumps(value, default=repr)
    return text if len(text) <= 40 else text[:37] + "..."


# summary.json fields the report computes with, and the types they must have
_SUMMARY_TYPES: dict[str, tuple[type, ...]] = {
    "status": (str,),
    "epochs_completed": (int,),
    "steps_per_epoch": (int, type(None)),
    "diverged_at": (dict, type(None)),
    "error": (str, type(None)),
    "device_name": (str, type(None)),
    "precision": (str, type(None)),
}
# the figures every finished run has: those of an EpochRow field without a None default (null is damage)
_REQUIRED_FIGURES = {f.name for f in epoch_metrics() if f.default is not None}


def summary_problems(summary: Summary) -> list[str]:
    """What makes a summary.json unusable for the tables: a figure of METRICS that is not a number (a string,
    null, a list), or a field of another type than the trainer writes. NaN and infinity ("nan", "inf" in the
    file) are numbers: a fact about the run, listed by the report, not damage."""
    problems = []
    for name, types in _SUMMARY_TYPES.items():
        value = getattr(summary, name)
        if not isinstance(value, types) or isinstance(value, bool):
            problems.append(f"{name} is {shown_value(value)}")
    for m in METRICS.values():
        value = summary.get(m.key)
        present = m.key in summary.figures or value is not None
        if value is None and m.name not in _REQUIRED_FIGURES:
            continue  # a figure a run may lack: the validation split's without one, a device's memory
        if present and not _is_number(value):
            problems.append(f"{m.key} is {shown_value(value)}, not a number")
    return problems


def history_problem(row: EpochRow) -> str | None:
    """Why a metrics.jsonl row cannot be plotted (a figure that is not a number), or None."""
    if not isinstance(row.epoch, int) or isinstance(row.epoch, bool):
        return f"epoch is {shown_value(row.epoch)}"
    for f in epoch_metrics():
        value = getattr(row, f.name)
        optional = f.default is None  # figures a device does not have (CUDA memory on a CPU)
        if not (_is_number(value) or (optional and value is None)):
            return f"epoch {row.epoch}: {f.name} is {shown_value(value)}, not a number"
    return None


NONFINITE_STRINGS = ("nan", "inf", "-inf")  # how trainer.records writes what JSON cannot hold


def _read_nonfinite(summary: Summary) -> None:
    """Figures kept in Summary's own fields (wall_time_s) written as "nan" or "inf": the numbers they stand for,
    as Summary.from_dict reads the other figures."""
    for m in METRICS.values():
        if m.key in summary.figures or not hasattr(summary, m.key):
            continue
        value = getattr(summary, m.key)
        if isinstance(value, str) and value in NONFINITE_STRINGS:
            setattr(summary, m.key, float(value))


def _num_classes(folder: RunFolder) -> int | None:
    """dataset.num_classes of the run's config.yaml; None where it cannot be read (the report does not need it
    to table the run, only to tell a run stuck at chance)."""
    try:
        config = yaml.safe_load(folder.config.read_text()) if folder.config.is_file() else None
        value = config["dataset"]["num_classes"]
    except Exception:  # noqa: BLE001 -- no config, another shape, unreadable: chance unknown
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 2 else None


def read_run(path: Path) -> Run | None:
    """One run folder, or None when it holds another task (lr_find, schedule). Files that cannot be read
    whole are recorded on the run, never raised: one damaged run must not sink a report. A summary.json
    whose figures or fields have the wrong type is damaged (the run is left out of the means); a
    metrics.jsonl row with a figure that is not a number ends its history, as a cut line does."""
    folder = RunFolder(path, create=False)
    task = _guarded(folder, folder.hydra_config, folder.read_task, "train")
    if not isinstance(task, str):
        folder.damaged.append(Damaged(folder.summary, f"task is {shown_value(task)}"))
    elif task != "train":
        return None
    overrides_file = folder.overrides if folder.overrides.exists() else folder.summary
    overrides = _guarded(folder, overrides_file, folder.read_overrides, None) or []
    summary = _guarded(folder, folder.summary, folder.read_summary, None)
    if summary is not None:
        _read_nonfinite(summary)
    if summary is not None and not overrides and isinstance(summary.overrides, list):
        overrides = [str(o) for o in summary.overrides]  # .hydra/overrides.yaml unreadable: the summary's copy
    if summary is not None and (problems := summary_problems(summary)):
        folder.damaged.append(Damaged(folder.summary, "; ".join(problems)))
        summary = None
    history = _guarded(folder, folder.metrics, folder.read_metrics, [])
    for i, row in enumerate(history):
        if (problem := history_problem(row)) is not None:
            folder.damaged.append(Damaged(folder.metrics, f"row {i + 1} unreadable ({problem})"))
            history = history[:i]
            break
    damaged = list(dict.fromkeys(folder.damaged))  # a file read twice (summary.json) is listed once
    if summary is not None:
        status = summary.status
    else:
        status = "damaged" if damaged else "no summary"
    return Run(path, overrides, status, summary, history, damaged, num_classes=_num_classes(folder))


def run_steps(run: Run) -> list[StepRow]:
    """The rows of a run's steps.csv, read once; what it holds that cannot be read is added to the run's
    `damaged`. A run read from results.csv has none."""
    if run.steps is None:
        if run.recorded is not None:
            run.steps = []
            return run.steps
        folder = RunFolder(run.path, create=False)
        run.steps = _guarded(folder, folder.steps, folder.read_steps, [])
        run.damaged += [d for d in folder.damaged if d not in run.damaged]
    return run.steps


def sweep_jobs(multirun_yaml: Path, notes: list[str] | None = None) -> list[list[str]]:
    """The override lists of the jobs Hydra's basic sweeper launches for this multirun.yaml, in job order
    (the strings equal the jobs' .hydra/overrides.yaml); [] for other sweepers, whose jobs are not known in
    advance, and for an unreadable file (with a line in `notes`)."""
    try:
        config = yaml.safe_load(multirun_yaml.read_text())
        if not isinstance(config, dict) or not isinstance(config.get("hydra"), dict):
            raise ValueError("no hydra node")
        return basic_sweeper_jobs(config["hydra"])
    except Exception as e:  # noqa: BLE001 -- an unreadable sweep only costs the list of never-run jobs
        if notes is not None:
            notes.append(
                f"{multirun_yaml}: unreadable ({type(e).__name__}); jobs of the sweep that never ran are not listed"
            )
        return []


def is_results_csv(path: Path) -> bool:
    return path.is_file() and path.suffix == ".csv"


def collect(folders: Iterable[str | Path], notes: list[str] | None = None) -> list[Run]:
    """The training runs under the folders (multiruns, single runs, or folders holding them), plus a Run with
    status "not run" for each job of a sweep that has no folder in any of them. A run folder reached twice
    (the same folder given twice, or a folder and its parent) counts once, with a line in `notes`. A
    results.csv an earlier report wrote stands for its runs (read_results_csv)."""
    runs: list[Run] = []
    notes = [] if notes is None else notes
    visited: set[Path] = set()
    seen: set[tuple[str, ...]] = set()  # the override sets of every run folder, whatever its task
    expected: list[tuple[Path, list[str]]] = []
    for folder in map(Path, folders):
        if is_results_csv(folder):
            runs += read_results_csv(folder)
            continue
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: no such folder")
        for path in find_runs(folder):
            if path.resolve() in visited:
                notes.append(f"{path}: the same run folder as one already read; counted once")
                continue
            visited.add(path.resolve())
            run = read_run(path)
            overrides = run.overrides if run else (RunFolder(path, create=False).read_overrides() or [])
            seen.add(tuple(sorted(overrides)))
            if run is not None:
                runs.append(run)
        for multirun_yaml in sorted(folder.rglob("multirun.yaml")):
            jobs = sweep_jobs(multirun_yaml, notes)
            expected += [(multirun_yaml.parent / str(i), job) for i, job in enumerate(jobs)]
    for path, overrides in expected:
        key = tuple(sorted(overrides))
        if key not in seen:
            seen.add(key)
            runs.append(Run(path, overrides, "not run"))
    if any(r.recorded is not None for r in runs):
        return runs  # a results.csv keeps its own order
    return sorted(runs, key=lambda r: natural_key(str(r.path)))


# ---------------------------------------------------------------------------------------- results.csv


class ResultsError(ValueError):
    """A file given as a results.csv that is not one."""


def _cell_number(text: str) -> float | None:
    text = text.strip()
    return None if text == "" else float(text)  # "nan", "inf" read as themselves


def read_results_csv(path: Path) -> list[Run]:
    """The runs of a results.csv written by an earlier report (one row per run: its folder, group, status, the
    override columns up to epochs_completed, the summary figures, the reason): each a Run without its epochs,
    so the tables can be computed again without the run folders. A row whose figure is not a number is
    damaged, as its summary.json would be; a file without the columns a report writes is one ResultsError."""
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            header = list(reader.fieldnames or [])
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise ResultsError(f"{path}: cannot read it as a results.csv ({type(e).__name__})") from None
    missing = [c for c in ("run", "status", "epochs_completed") if c not in header]
    if not rows or missing:
        what = "no rows" if not rows else f"no {', '.join(missing)} column"
        raise ResultsError(f"{path}: not a results.csv a report wrote ({what})")
    override_keys = header[header.index("status") + 1 : header.index("epochs_completed")]
    figures = {m.key for m in METRICS.values()}
    targets = sorted({c[3:].rsplit("_", 1)[0] for c in header if c.startswith("to_") and c.endswith("_epoch")})
    runs = []
    for i, row in enumerate(rows, start=2):
        overrides = [f"{k}={row[k]}" for k in override_keys if (row.get(k) or "") != ""]
        status = row["status"] or "damaged"
        problems, values = [], {}
        for key in (k for k in header if k in figures or k == "epochs_completed"):
            try:
                value = _cell_number(row.get(key) or "")
            except ValueError:
                problems.append(f"{key} is {shown_value(row[key])}, not a number")
                continue
            if value is not None:
                values[key] = value
        recorded = {"reason": row.get("reason") or "", "line": i, "reached": {}}
        if "at_chance" in header:
            recorded["at_chance"] = row.get("at_chance") or ""
        for spec in targets:
            epoch, seconds = row.get(f"to_{spec}_epoch") or "", row.get(f"to_{spec}_time_s") or ""
            recorded["reached"][spec] = (int(float(epoch)), float(seconds or "nan")) if epoch else None
        num_classes = row.get("num_classes") or ""
        branch = _branch_of_row(row)
        run = Run(Path(row["run"]), overrides, status, recorded=recorded)
        run.num_classes = int(num_classes) if num_classes.isdigit() else None
        if problems:
            run.status = "damaged"
            run.damaged = [Damaged(path, f"row {i}: " + "; ".join(problems))]
            run.recorded["reason"] = f"{path.name} row {i}: " + "; ".join(problems)
        elif status in ("completed", "diverged", "failed", "interrupted", "running"):
            seed = row.get("seed") or ""
            epochs = int(values.pop("epochs_completed", 0))
            run.summary = Summary(
                status=status,
                seed=int(seed) if re.fullmatch(r"-?\d+", seed) else seed,
                overrides=overrides,
                epochs_completed=epochs,
                device_name=row.get("device_name") or None,
                precision=row.get("precision") or None,
                figures=values,
                branch=branch,
            )
        runs.append(run)
    return runs


def _branch_of_row(row: dict) -> dict | None:
    """A results.csv row's branch record (summary.json's `branch`), the parent folder resolved as the row's run
    folder is; None for a run that is no branch, or a file written without the columns."""
    parent, epochs, seconds = (row.get(c) or "" for c in BRANCH_RECORD_COLUMNS)
    if not parent or not epochs.isdigit():
        return None
    try:
        shared = float(seconds) if seconds else None
    except ValueError:
        shared = None
    return {"parent": str(Path(parent).resolve()), "epoch": int(epochs), "shared_wall_time_s": shared}
