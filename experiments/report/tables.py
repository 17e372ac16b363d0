r"""Tables and plots from finished sweeps.

    python -m experiments.report outputs/multirun/2024-05-01/12-00-00
    python -m experiments.report SWEEP_A SWEEP_B --metrics test_acc,best_test_acc --sort -test_acc
    python -m experiments.report SWEEP --group-by scheduler,optimizer.lr --out paper/tables
    python -m experiments.report SWEEP --compare val_acc --baseline constant --target val_acc=0.88

Runs are grouped by their Hydra overrides other than the seed (and the keys that cannot change a number:
resume, logger, trainer.progress, trainer.checkpoint); `--group-by` names the keys instead. Several folders are
pooled, e.g. one sweep launched in two goes. Each group gets n, the mean, the sample std (ddof=1) and a 95 %
confidence interval of the mean (Student t) over its completed runs. Diverged, failed, interrupted, unfinished
(no summary.json) and never-run jobs are counted and listed with the reason, never averaged: a diverged run's
figures come from its last finite epoch, not from a finished schedule. Never-run jobs are found by expanding the
sweep in multirun.yaml (basic sweeper only). A file that cannot be read whole (a cut line, not JSON, binary,
empty, a figure that is not a number) never stops the report: its run is listed under "Not included" with the
file and the reason, or counted with a line under "Notes" when its summary.json is whole. A run folder reached
twice is counted once.

Every group is compared with the best group on one metric (the first of --metrics with a better direction, or
--compare; --baseline names the reference group instead): a two-sided t-test (paired by seed when the two groups
have the same seeds, Welch's otherwise), Holm-corrected across the groups compared; the groups not
significantly different from the reference at alpha = 0.05 are marked. --target FIGURE=VALUE adds the epoch and
the training time at which each run first reached a value (time to target, as AlgoPerf measures it).

Writes to --out (default: <first folder>/report/):
  table.md        the table (also printed) and the runs left out of it, with the reason
  table.tex       the same table as a booktabs tabular, ready to \input
  results.csv     one row per run: every override as a column, the summary figures as fractions
  groups.csv      one row per group: n, mean, std and 95 % CI of every metric as fractions, the test's p-values
  lr, test_acc, train_test_acc (a panel per split), gap, final_gap: each as .png, .pdf and .svg
  index.html      one page, offline: interactive charts, the table, the runs (experiments/dashboard.py); --watch
                  and --serve PORT keep it and the tables current while the sweep runs
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import functools
import json
import math
import os
import re
import statistics
import sys
import textwrap
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import yaml
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from scipy import stats as scipy_stats

from trainer.config import NEUTRAL_KEYS
from trainer.records import METRICS, Damaged, EpochRow, Metric, RunFolder, StepRow, Summary, epoch_metrics

if TYPE_CHECKING:
    from experiments.dashboard import Live

# overrides that do not change a run's numbers: runs differing only in these are repeats of one setting
GROUPING_FREE_KEYS = ("seed", *NEUTRAL_KEYS)  # runs that differ only in these are one group
DASH = "–"


# the columns without --metrics, the first with a better direction the one the groups are compared on; a figure
# that METRICS lacks (a trainer without it) or that no completed run has (no validation split) is left out
DEFAULT_METRICS = (
    "test_acc",
    "ensemble_test_acc",
    "best_epoch_test_acc",
    "best_test_acc",
    "val_acc",
    "train_acc",
    "train_loss",
    "gap",
    "wall_time",
)
COUNT_COLUMNS = ("n", "diverged", "failed")
RUN_FIELDS = ("epochs_completed", *(m.key for m in METRICS.values()), "device_name", "precision")
# timings measure the machine's load as much as the schedule: never the "best" of a column in the report
MACHINE_LOAD = ("wall_time", "epoch_time")
REPORT_METRICS: dict[str, Metric] = {
    name: dataclasses.replace(m, better=None) if name in MACHINE_LOAD else m for name, m in METRICS.items()
}
ALPHA = 0.05  # the significance level of the comparison with the best group
CONFIDENCE = 0.95  # of the intervals of the means, in the tables and the plots


def resolve_metrics(names: Iterable[str]) -> list[Metric]:
    """Metrics by column name or summary.json key (as the report shows them: timings have no better direction);
    a ValueError lists the choices."""
    by_key = {m.key: m for m in REPORT_METRICS.values()}
    out = []
    for name in names:
        metric = REPORT_METRICS.get(name) or by_key.get(name)
        if metric is None:
            raise ValueError(f"unknown metric {name!r}: use {', '.join(REPORT_METRICS)}")
        out.append(metric)
    return out


# -------------------------------------------------------------------------------------------------- runs


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

    @property
    def params(self) -> dict[str, str]:
        return dict(split_override(o) for o in self.overrides)

    @property
    def included(self) -> bool:
        return self.status == "completed"

    def value(self, metric: Metric) -> float | None:
        v = None if self.summary is None else self.summary.get(metric.key)
        return None if v is None else float(v)

    @property
    def reason(self) -> str:
        """Why the run is not in the means ("" when it is)."""
        epochs = self.summary.epochs_completed if self.summary else len(self.history)
        if self.status == "completed":
            return ""
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


def _natural(text: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def find_runs(folder: Path) -> Iterator[Path]:
    """Every run folder at or below folder (summary.json or Hydra's .hydra/overrides.yaml), in job order."""
    for root, dirs, _files in os.walk(folder):
        if RunFolder(Path(root), create=False).is_run():
            dirs[:] = []
            yield Path(root)
        else:
            dirs[:] = sorted((d for d in dirs if not d.startswith(".")), key=_natural)


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


def _shown_value(value) -> str:
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


def summary_problems(summary: Summary) -> list[str]:
    """What makes a summary.json unusable for the tables: a figure of METRICS that is not a number (a string,
    null, a list), or a field of another type than the trainer writes."""
    problems = []
    for name, types in _SUMMARY_TYPES.items():
        value = getattr(summary, name)
        if not isinstance(value, types) or isinstance(value, bool):
            problems.append(f"{name} is {_shown_value(value)}")
    for m in METRICS.values():
        value = summary.get(m.key)
        present = m.key in summary.figures or value is not None
        if value is None and m.name not in _REQUIRED_FIGURES:
            continue  # a figure a run may lack: the validation split's without one, a device's memory
        if present and not _is_number(value):
            problems.append(f"{m.key} is {_shown_value(value)}, not a number")
    return problems


# the figures every finished run has: those of an EpochRow field without a None default (null is damage)
_REQUIRED_FIGURES = {f.name for f in epoch_metrics() if f.default is not None}


def history_problem(row: EpochRow) -> str | None:
    """Why a metrics.jsonl row cannot be plotted (a figure that is not a number), or None."""
    if not isinstance(row.epoch, int) or isinstance(row.epoch, bool):
        return f"epoch is {_shown_value(row.epoch)}"
    for f in epoch_metrics():
        value = getattr(row, f.name)
        optional = f.default is None  # figures a device does not have (CUDA memory on a CPU)
        if not (_is_number(value) or (optional and value is None)):
            return f"epoch {row.epoch}: {f.name} is {_shown_value(value)}, not a number"
    return None


def read_run(path: Path) -> Run | None:
    """One run folder, or None when it holds another task (lr_find, schedule). Files that cannot be read
    whole are recorded on the run, never raised: one damaged run must not sink a report. A summary.json
    whose figures or fields have the wrong type is damaged (the run is left out of the means); a
    metrics.jsonl row with a figure that is not a number ends its history, as a cut line does."""
    folder = RunFolder(path, create=False)
    task = _guarded(folder, folder.hydra_config, folder.read_task, "train")
    if not isinstance(task, str):
        folder.damaged.append(Damaged(folder.summary, f"task is {_shown_value(task)}"))
    elif task != "train":
        return None
    overrides_file = folder.overrides if folder.overrides.exists() else folder.summary
    overrides = _guarded(folder, overrides_file, folder.read_overrides, None) or []
    summary = _guarded(folder, folder.summary, folder.read_summary, None)
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
    return Run(path, overrides, status, summary, history, damaged)


def sweep_jobs(multirun_yaml: Path, notes: list[str] | None = None) -> list[list[str]]:
    """The override lists of the jobs Hydra's basic sweeper launches for this multirun.yaml, in job order
    (the strings equal the jobs' .hydra/overrides.yaml); [] for other sweepers, whose jobs are not known in
    advance, and for an unreadable file (with a line in `notes`)."""
    from trainer.sweeps import basic_sweeper_jobs

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


def collect(folders: Iterable[str | Path], notes: list[str] | None = None) -> list[Run]:
    """The training runs under the folders (multiruns, single runs, or folders holding them), plus a Run with
    status "not run" for each job of a sweep that has no folder in any of them. A run folder reached twice
    (the same folder given twice, or a folder and its parent) counts once, with a line in `notes`."""
    runs: list[Run] = []
    notes = [] if notes is None else notes
    visited: set[Path] = set()
    seen: set[tuple[str, ...]] = set()  # the override sets of every run folder, whatever its task
    expected: list[tuple[Path, list[str]]] = []
    for folder in map(Path, folders):
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
    return sorted(runs, key=lambda r: _natural(str(r.path)))


# -------------------------------------------------------------------------------------------------- groups


@functools.cache  # a curve's CI at every step asks for the same few n
def t_quantile(n: int) -> float:
    """Student's t quantile of a two-sided 95 % interval of a mean of n values (n - 1 degrees of freedom)."""
    return float(scipy_stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1))


def ci_half_width(std: float, n: int) -> float:
    """Half the width of the 95 % confidence interval of a mean: t_{0.975, n-1} s / sqrt(n)."""
    return t_quantile(n) * std / math.sqrt(n)


@dataclass
class Stat:
    values: list[float]

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float | None:
        return statistics.mean(self.values) if self.values else None

    @property
    def std(self) -> float | None:
        """Sample standard deviation (ddof=1); None for fewer than two values."""
        return statistics.stdev(self.values) if len(self.values) > 1 else None

    @property
    def ci(self) -> tuple[float, float] | None:
        """The 95 % confidence interval of the mean (Student t): mean +- t_{0.975,n-1} s / sqrt(n); None for n < 2."""
        if self.n < 2:
            return None
        half = ci_half_width(self.std, self.n)
        return self.mean - half, self.mean + half


class TTest(NamedTuple):
    """A two-sided t-test of one group against the reference group."""

    kind: str  # "paired" (by seed) or "Welch"
    t: float
    df: float
    p: float


def _degenerate(kind: str, difference: float, df: float) -> TTest:
    """No spread at all (every value equal within each sample, or every paired difference equal): the means
    are equal (p = 1) or apart by a gap no noise explains (p = 0); scipy would warn and return nan."""
    if difference == 0:
        return TTest(kind, 0.0, df, 1.0)
    return TTest(kind, math.copysign(math.inf, difference), df, 0.0)


def welch_test(a: Sequence[float], b: Sequence[float]) -> TTest:
    """Welch's two-sided t-test of mean(a) - mean(b) (unequal variances; scipy.stats.ttest_ind)."""
    if len(set(a)) == 1 and len(set(b)) == 1:
        return _degenerate("Welch", a[0] - b[0], math.nan)
    with warnings.catch_warnings():  # one sample without spread: exact all the same, but scipy warns
        warnings.simplefilter("ignore", RuntimeWarning)
        result = scipy_stats.ttest_ind(a, b, equal_var=False)
    return TTest("Welch", float(result.statistic), float(result.df), float(result.pvalue))


def paired_test(a: Sequence[float], b: Sequence[float]) -> TTest:
    """The two-sided paired t-test of a - b, element by element (scipy.stats.ttest_rel)."""
    differences = [x - y for x, y in zip(a, b, strict=True)]
    if len(set(differences)) == 1:
        return _degenerate("paired", differences[0], len(a) - 1)
    with warnings.catch_warnings():  # differences nearly all equal: scipy warns of precision loss
        warnings.simplefilter("ignore", RuntimeWarning)
        result = scipy_stats.ttest_rel(a, b)
    return TTest("paired", float(result.statistic), float(result.df), float(result.pvalue))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given: the i-th smallest (from 1) of m is multiplied by
    m - i + 1, capped at 1, and made non-decreasing along the sorted order. Reject where adjusted < alpha."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


@dataclass
class Group:
    key: tuple[tuple[str, str | None], ...]  # the grouping overrides, sorted by key
    label: str  # as the tables and plots show it (float values shortened)
    runs: list[Run]  # every run of the group, the ones left out of the means too
    stats: dict[str, Stat]  # metric name -> the values of the completed runs
    full_label: str = ""  # with every value as given (the CSV files)
    test: TTest | None = None  # against the reference group, on the compared metric; None: not tested
    p_holm: float | None = None  # test.p, Holm-adjusted across the groups tested
    marked: bool = False  # the reference, or not significantly different from it

    @property
    def included(self) -> list[Run]:
        return [r for r in self.runs if r.included]

    @property
    def counts(self) -> dict[str, int]:
        """n: runs in the means; failed: every run neither completed nor diverged (failed, interrupted,
        unfinished, never run)."""
        diverged = sum(r.status == "diverged" for r in self.runs)
        n = len(self.included)
        return {"n": n, "diverged": diverged, "failed": len(self.runs) - n - diverged}


def _is_neutral(key: str) -> bool:
    return any(key == k or key.startswith(k + ".") for k in GROUPING_FREE_KEYS)


def _group_key(run: Run, group_by: Sequence[str] | None) -> tuple:
    params = run.params
    if group_by:
        return tuple(sorted((k, params.get(k)) for k in group_by))
    return tuple(sorted((k, v) for k, v in params.items() if not _is_neutral(k)))


def _key_names(runs: list[Run], keys: list[tuple]) -> list[str]:
    """The grouping keys in the order they first appear on the command lines."""
    grouping = {k for key in keys for k, _ in key}
    ordered = [k for r in runs for k in r.params if k in grouping]
    return list(dict.fromkeys(ordered + sorted(grouping)))


def _varying(keys: Sequence[tuple], names: Sequence[str]) -> list[str]:
    return [k for k in names if len({dict(key).get(k) for key in keys}) > 1]


def varying_keys(groups: Sequence[Group]) -> list[str]:
    """The override keys whose value differs between groups."""
    return _varying([g.key for g in groups], list(dict.fromkeys(k for g in groups for k, _ in g.key)))


def _float_value(value: str) -> float | None:
    """The number of an override value written as a float (0.1, 1e-4), or None (ints, names, lists)."""
    if not re.fullmatch(r"[-+]?(\d+\.\d*|\.\d+|\d+(\.\d*)?[eE][-+]?\d+)", value.strip()):
        return None
    return float(value)


def short_values(values: Iterable[str]) -> dict[str, str]:
    """Float values at 3 significant digits (0.058463261216434144 -> 0.0585), more where 3 would make two
    distinct values look alike; other values as they are."""
    values = set(values)
    floats = {v: x for v in values if (x := _float_value(v)) is not None}
    shown = {v: v for v in values}
    for digits in range(3, 18):
        short = {v: f"{x:.{digits}g}" for v, x in floats.items()}
        if len(set(short.values())) == len(set(floats.values())):
            break
    shown.update({v: short[v] for v in floats if len(short[v]) < len(v)})
    return shown


def _labels(keys: list[tuple], names: list[str], short: bool = True) -> list[str]:
    """ "key=value, ..." of the keys that differ between groups (of every key for a single group); the bare
    value when one key differs. short: float values shortened (short_values)."""
    varying = _varying(keys, names)
    shown = {
        k: short_values(v for key in keys for kk, v in key if kk == k and v is not None) if short else {} for k in names
    }
    labels = []
    for key in keys:
        # None: a group_by key the runs left alone
        values = {k: "(default)" if v is None else shown[k].get(v, v) for k, v in key}
        if len(varying) == 1:
            labels.append(values.get(varying[0], "(default)"))
        else:
            present = varying or [k for k in names if k in values]
            labels.append(", ".join(f"{k}={values.get(k, '(default)')}" for k in present) or "all runs")
    return labels


def _sort_groups(groups: list[Group], sort: str | None) -> list[Group]:
    if not sort:
        return groups  # the order of the sweep
    column = sort.lstrip("+-")
    descending = sort.startswith("-")
    if column in ("group", "label"):
        return sorted(groups, key=lambda g: _natural(g.label), reverse=descending)
    if column in COUNT_COLUMNS:
        return sorted(groups, key=lambda g: g.counts[column], reverse=descending)
    if column not in METRICS:
        raise ValueError(f"cannot sort by {column!r}: use group, {', '.join(COUNT_COLUMNS)} or {', '.join(METRICS)}")
    with_mean = [g for g in groups if g.stats[column].mean is not None]
    without = [g for g in groups if g.stats[column].mean is None]  # last, whatever the direction
    return sorted(with_mean, key=lambda g: g.stats[column].mean, reverse=descending) + without


def aggregate(runs: Sequence[Run], sort: str | None = None, group_by: Sequence[str] | None = None) -> list[Group]:
    """Runs grouped by their overrides other than the seed (or by the group_by keys), with the mean and std of
    every metric in METRICS over each group's completed runs; sort: a column, "-" in front for descending."""
    buckets: dict[tuple, list[Run]] = {}
    for run in runs:
        buckets.setdefault(_group_key(run, group_by), []).append(run)
    keys = list(buckets)
    names = list(group_by) if group_by else _key_names(list(runs), keys)
    labels, full_labels = _labels(keys, names), _labels(keys, names, short=False)
    groups = []
    for key, label, full_label in zip(keys, labels, full_labels, strict=True):
        members = buckets[key]
        stats = {
            m.name: Stat([v for r in members if r.included and (v := r.value(m)) is not None]) for m in METRICS.values()
        }
        groups.append(Group(key, label, members, stats, full_label))
    return _sort_groups(groups, sort)


# ---------------------------------------------------------------------------------------------- comparison


@dataclass
class Comparison:
    """Every group tested against one reference group on one metric."""

    metric: Metric
    reference: Group
    baseline: bool  # the reference was named (--baseline); else it is the best group on the metric
    groups: list[Group]

    @property
    def tested(self) -> list[Group]:
        return [g for g in self.groups if g.test is not None]

    @property
    def kinds(self) -> list[str]:
        """The tests used: "paired", "Welch" or both."""
        return sorted({g.test.kind for g in self.tested}, reverse=True)


def _seed(run: Run) -> int | str | None:
    seed = run.summary.seed if run.summary is not None else None
    return seed if isinstance(seed, (int, str)) and not isinstance(seed, bool) else run.params.get("seed")


def _by_seed(group: Group, metric: Metric) -> dict | None:
    """The group's values by seed, or None when a seed repeats (pooled runs) or is unknown."""
    pairs = [(_seed(r), v) for r in group.included if (v := r.value(metric)) is not None]
    seeds = [s for s, _ in pairs]
    if None in seeds or len(set(seeds)) != len(seeds):
        return None
    return dict(pairs)


def find_group(groups: Sequence[Group], label: str) -> Group:
    """The group shown as `label` (or with that full label); a ValueError lists the labels."""
    for g in groups:
        if label in (g.label, g.full_label):
            return g
    raise ValueError(f"no group {label!r} for --baseline: use one of {', '.join(repr(g.label) for g in groups)}")


def compare_groups(groups: Sequence[Group], metric: Metric, baseline: str | None = None) -> Comparison | None:
    """Test every group against the reference (the group named `baseline`, else the one with the best mean on
    the metric): the paired t-test by seed when both have the same seeds, Welch's otherwise, two-sided;
    p-values Holm-adjusted across the tests. Sets each group's test, p_holm and marked (the reference and the
    groups not significantly different from it at ALPHA). Groups with fewer than two values are not tested.
    None when no group has a mean."""
    for g in groups:
        g.test, g.p_holm, g.marked = None, None, False
    with_mean = [g for g in groups if g.stats[metric.name].mean is not None]
    if baseline is not None:
        reference = find_group(groups, baseline)
    elif not with_mean:
        return None
    else:
        best = max if metric.better == "max" else min
        reference = best(with_mean, key=lambda g: g.stats[metric.name].mean)
    reference.marked = True
    ref_values = reference.stats[metric.name].values
    ref_seeds = _by_seed(reference, metric)
    tested = []
    for g in groups:
        values = g.stats[metric.name].values
        if g is reference or len(values) < 2 or len(ref_values) < 2:
            continue
        seeds = _by_seed(g, metric)
        if seeds is not None and ref_seeds is not None and set(seeds) == set(ref_seeds):
            order = sorted(seeds, key=str)
            g.test = paired_test([seeds[s] for s in order], [ref_seeds[s] for s in order])
        else:
            g.test = welch_test(values, ref_values)
        tested.append(g)
    for g, p in zip(tested, holm([g.test.p for g in tested]), strict=True):
        g.p_holm = p
        g.marked = p >= ALPHA
    return Comparison(metric, reference, baseline is not None, list(groups))


def compared_metric(metrics: Sequence[Metric], compare_name: str | None, baseline: str | None) -> Metric | None:
    """The metric the groups are compared on: --compare, else the first shown metric with a better direction
    (the first shown at all with --baseline); None: no comparison."""
    if compare_name:
        (metric,) = resolve_metrics([compare_name])
        if metric.better is None and baseline is None:
            raise ValueError(
                f"--compare {compare_name}: {metric.name} has no better direction to find the best group by "
                "(timings measure the machine's load); name the reference with --baseline LABEL"
            )
        return metric
    directed = [m for m in metrics if m.better is not None]
    if directed:
        return directed[0]
    return metrics[0] if baseline is not None and metrics else None


# -------------------------------------------------------------------------------------------- time to target


class Target(NamedTuple):
    """--target NAME=VALUE: the first epoch at which a run's figure reached VALUE (>= for a figure better
    high, <= for one better low), and the training time to it (the epochs' epoch_time summed)."""

    name: str  # an EpochRow field
    value: float  # as metrics.jsonl holds it: a fraction for accuracies
    better: str  # "max" or "min"
    title: str
    scale: float

    @property
    def spec(self) -> str:
        return f"{self.name}={self.value:g}"

    @property
    def shown(self) -> str:
        """'test acc >= 88%', 'train loss <= 0.5'."""
        value = f"{self.value * self.scale:g}"
        title = self.title.replace(" (%)", "")
        return f"{title} {'≥' if self.better == 'max' else '≤'} {value}{'%' if self.scale == 100 else ''}"

    def reached(self, history: Sequence[EpochRow]) -> tuple[int, float] | None:
        """(epoch, seconds of training up to the end of that epoch) of the first epoch at the target, or None."""
        elapsed = 0.0
        for row in history:
            elapsed += float(row.epoch_time or 0.0)
            value = getattr(row, self.name, None)
            if value is None or not math.isfinite(value):
                continue
            if (value >= self.value) if self.better == "max" else (value <= self.value):
                return row.epoch, elapsed
        return None


def target_figures() -> dict[str, dataclasses.Field]:
    """The EpochRow figures a target can be set on: those with a better direction."""
    return {f.name: f for f in epoch_metrics() if f.metadata.get("better")}


def parse_targets(specs: Iterable[str]) -> list[Target]:
    """Targets from 'NAME=VALUE' strings (each may hold several, comma-separated); a ValueError in one line."""
    figures = target_figures()
    targets = []
    for spec in (t.strip() for s in specs for t in s.split(",")):
        if not spec:
            continue
        name, sep, text = (part.strip() for part in spec.partition("="))
        try:
            value = float(text) if sep else None
        except ValueError:
            value = None
        if value is None or not math.isfinite(value):
            raise ValueError(f"bad --target {spec!r}: use FIGURE=VALUE, e.g. val_acc=0.88")
        if name not in figures:
            raise ValueError(f"unknown --target figure {name!r}: use one of {', '.join(figures)}")
        meta = figures[name].metadata
        if meta["scale"] == 100 and not 0 <= value <= 1:
            raise ValueError(f"bad --target {spec!r}: {name} is a fraction (0.88 for 88 %)")
        targets.append(Target(name, value, meta["better"], meta["title"], meta["scale"]))
    return list(dict.fromkeys(targets))


class TargetStat(NamedTuple):
    epochs: Stat  # of the runs that reached the target
    seconds: Stat
    runs: int  # completed runs


def target_stat(group: Group, target: Target) -> TargetStat:
    reached = [x for r in group.included if (x := target.reached(r.history)) is not None]
    return TargetStat(Stat([float(e) for e, _ in reached]), Stat([t for _, t in reached]), len(group.included))


# -------------------------------------------------------------------------------------------------- tables


class Style(NamedTuple):
    plus_minus: str
    dash: str
    bold: str
    escape: Callable[[str], str]
    mark: str  # after the compared metric's cell of the groups not significantly different from the reference
    less_than: str


def _md_escape(text: str) -> str:
    return " ".join(text.splitlines()).replace("|", r"\|")  # a cell or list item is one line


_TEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "≥": r"$\geq$",
    "≤": r"$\leq$",
    "±": r"$\pm$",
    "−": "--",
    "–": "--",
}


def tex_escape(text: str) -> str:
    return "".join(_TEX_SPECIALS.get(c, c) for c in text)


MARK = "†"
MARKDOWN = Style(" ± ", DASH, "**{}**", _md_escape, f" {MARK}", "< ")
LATEX = Style(r" $\pm$ ", "--", r"\textbf{{{}}}", tex_escape, r" $^\dagger$", "$<$ ")


def _number(value: float, metric: Metric) -> str:
    return f"{value * metric.scale:.{metric.decimals}f}"


def _best(groups: Sequence[Group], metric: Metric) -> str | None:
    """The best mean as shown (ties at the shown precision all count), when two or more groups have one."""
    means = [g.stats[metric.name].mean for g in groups if g.stats[metric.name].mean is not None]
    if metric.better is None or len(means) < 2:
        return None
    return _number(max(means) if metric.better == "max" else min(means), metric)


def _cell(stat: Stat, metric: Metric, best: str | None, style: Style, mark: bool = False) -> str:
    """mean ± std [CI low, CI high]: the std and the interval a dash where n = 1; in bold for the best mean."""
    if stat.mean is None:
        return style.dash
    mean = _number(stat.mean, metric)
    if stat.std is None:
        text = f"{mean}{style.plus_minus}{style.dash}"
    else:
        low, high = stat.ci
        text = f"{mean}{style.plus_minus}{_number(stat.std, metric)} [{_number(low, metric)}, {_number(high, metric)}]"
    text = style.bold.format(text) if mean == best else text
    return text + (style.mark if mark else "")


def _p_text(p: float, style: Style) -> str:
    return f"{style.less_than}0.001" if p < 0.001 else f"{p:.3f}"


def _p_cell(group: Group, comparison: Comparison, style: Style) -> str:
    """The Holm-adjusted p-value against the reference ("best"/"baseline" for the reference itself, a dash
    when untested), with P (paired) or W (Welch) when the table mixes both tests."""
    if group is comparison.reference:
        return "baseline" if comparison.baseline else "best"
    if group.test is None:
        return style.dash
    kind = f" ({group.test.kind[0].upper()})" if len(comparison.kinds) > 1 else ""
    return _p_text(group.p_holm, style) + kind


def _p_header(comparison: Comparison) -> str:
    return f"p vs {'baseline' if comparison.baseline else 'best'} (Holm)"


def _target_cells(group: Group, target: Target, style: Style) -> list[str]:
    """Epochs and seconds to the target: mean ± std over the runs that reached it (reached/completed)."""
    stat = target_stat(group, target)
    if stat.runs == 0:
        return [style.dash, style.dash]
    count = f"({stat.epochs.n}/{stat.runs})"
    if stat.epochs.n == 0:
        return [f"not reached {count}"] * 2
    cells = []
    for values in (stat.epochs, stat.seconds):
        std = style.dash if values.std is None else f"{values.std:.1f}"
        cells.append(f"{values.mean:.1f}{style.plus_minus}{std} {count}")
    return cells


def _target_headers(target: Target) -> list[str]:
    return [f"epoch to {target.shown}", f"time (s) to {target.shown}"]


def table_rows(
    groups: Sequence[Group],
    metrics: Sequence[Metric],
    style: Style,
    comparison: Comparison | None = None,
    targets: Sequence[Target] = (),
) -> list[list[str]]:
    """The header row and one row per group, escaped for the style: n, the metrics (the p-value column after
    the compared one), the targets' epochs and times, the diverged and failed counts."""
    varying = varying_keys(groups)
    first = varying[0] if len(varying) == 1 else "group"
    compared = comparison.metric.name if comparison else None
    header = [first, *COUNT_COLUMNS[:1]]
    for m in metrics:
        header += [m.title, _p_header(comparison)] if m.name == compared else [m.title]
    header += [h for t in targets for h in _target_headers(t)] + list(COUNT_COLUMNS[1:])
    best = {m.name: _best(groups, m) for m in metrics}
    rows = [[style.escape(c) for c in header]]
    for g in groups:
        counts = g.counts
        cells = [style.escape(g.label), str(counts["n"])]
        for m in metrics:
            cells.append(_cell(g.stats[m.name], m, best[m.name], style, g.marked and m.name == compared))
            if m.name == compared:
                cells.append(_p_cell(g, comparison, style))
        cells += [c for t in targets for c in _target_cells(g, t, style)]  # numbers and the style's ±
        rows.append([*cells, str(counts["diverged"]), str(counts["failed"])])
    return rows


def _md_table(rows: list[list[str]], align: str) -> list[str]:
    lines = ["| " + " | ".join(row) + " |" for row in rows]
    lines.insert(1, "|" + "|".join("---" if a == "l" else "--:" for a in align) + "|")
    return lines


def _common_overrides(runs: Sequence[Run]) -> list[str]:
    """The overrides every run shares, but the neutral ones."""
    return [
        o for o in runs[0].overrides if all(o in r.overrides for r in runs) and not _is_neutral(split_override(o)[0])
    ]


def legend(comparison: Comparison | None, targets: Sequence[Target] = ()) -> list[str]:
    """What the table's figures mean, one paragraph each (plain text with Unicode symbols)."""
    lines = [
        "Mean ± sample standard deviation (ddof=1) [95 % confidence interval of the mean, Student t: mean ± "
        "t(0.975, n−1)·s/√n] over the completed runs (seeds) of each group; – for the std and the interval where "
        "n = 1 and for the mean where no run completed. Accuracies and gap (train − test accuracy) in percent "
        "with 2 decimals, losses with 3 decimals, times in seconds. The best mean of a column is in bold (never "
        "for wall and epoch times, which measure the machine's load as much as the schedule). Diverged and "
        "failed runs are counted, not averaged; failed counts failed, interrupted, unfinished and never-run jobs."
    ]
    if comparison is not None:
        ref, metric = comparison.reference, comparison.metric
        kinds = comparison.kinds
        if kinds == ["paired"]:
            test = "a two-sided paired t-test by seed (the groups share their seeds)"
        elif kinds == ["Welch"]:
            test = "Welch's two-sided t-test"
        elif kinds:
            test = (
                "a two-sided paired t-test by seed (P) where a group has the same seeds as the reference, "
                "Welch's t-test (W) otherwise"
            )
        else:
            test = "no test: no group other than the reference has two completed runs (or the reference has one)"
        name = metric.title.replace(" (%)", "")
        role = "the baseline" if comparison.baseline else f"the group with the best mean {name}"
        lines.append(
            f"{MARK} on {name}: {role} ({ref.label}) and the groups not significantly different from it at "
            f"α = {ALPHA:g}, by {test}; p-values Holm-corrected across the {len(comparison.tested)} group(s) "
            f"tested, in the column {_p_header(comparison)}; – no test (n < 2)."
        )
    if targets:
        shown = "; ".join(t.shown for t in targets)
        lines.append(
            f"Time to target ({shown}): the first epoch at which a run reached it and the training time to the end "
            "of that epoch (the epoch times of metrics.jsonl summed), mean ± std over the completed runs that "
            "reached it (reached/completed)."
        )
    return lines


_ABSOLUTE_PATH = re.compile(r"(?<![\w.~/:])/[^\s:;,'\"()\[\]{}|`<>=]+")


def display_path(path: str | Path, base: str | Path) -> str:
    """A path as table.md shows it, never absolute: relative to the report's folder when near it
    (../sweep/3), else relative to the current folder when under it, else from home (~/...), else relative to
    the report's folder all the same."""
    path, base = os.path.abspath(path), os.path.abspath(base)
    relative = os.path.relpath(path, base)
    if relative.split(os.sep).count("..") <= 2:
        return relative
    cwd = os.getcwd()
    if path.startswith(cwd.rstrip(os.sep) + os.sep):
        return os.path.relpath(path, cwd)
    home = os.path.expanduser("~")
    if home not in ("", os.sep) and path.startswith(home + os.sep):
        return "~" + path[len(home) :]
    return relative


def scrub_paths(text: str, base: str | Path) -> str:
    """Every absolute path in a text (an error message, a note) shown as display_path shows it."""
    return _ABSOLUTE_PATH.sub(lambda m: display_path(m.group(0), base), text)


def markdown_report(
    runs: Sequence[Run],
    groups: Sequence[Group],
    metrics: Sequence[Metric],
    sources: str,
    notes: Sequence[str] = (),
    comparison: Comparison | None = None,
    targets: Sequence[Target] = (),
    base: str | Path | None = None,
) -> str:
    """table.md: the table, its legend, the runs left out (paths relative to `base`, the report's folder)."""
    base = Path.cwd() if base is None else base
    rows = table_rows(groups, metrics, MARKDOWN, comparison, targets)
    excluded = [r for r in runs if not r.included]
    devices = sorted(
        {f"{r.summary.device_name}, {r.summary.precision}" for r in runs if r.included and r.summary.device_name}
    )
    common = _common_overrides(runs)
    lines = [
        "# schedlab report",
        "",
        f"{len(runs)} runs from {sources} in {len(groups)} groups; {len(runs) - len(excluded)} completed and in the means.",
    ]
    if devices:
        lines.append(f"Device: {'; '.join(devices)}.")
    if common:
        lines.append("Common overrides: " + " ".join(f"`{o}`" for o in common) + ".")
    lines += ["", *_md_table(rows, "l" + "r" * (len(rows[0]) - 1)), ""]
    for paragraph in legend(comparison, targets):
        lines += [paragraph, ""]
    if excluded:
        lines += [f"## Not included ({len(excluded)})", ""]
        table = [["run", "status", "overrides", "reason"]]
        table += [
            [display_path(r.path, base), r.status, " ".join(r.overrides), scrub_paths(r.reason, base)] for r in excluded
        ]
        lines += _md_table([[_md_escape(c) for c in row] for row in table], "llll") + [""]
    if extra := report_notes(runs, notes):
        lines += ["## Notes", "", *(f"- {_md_escape(scrub_paths(n, base))}" for n in extra), ""]
    return "\n".join(lines)


def report_notes(runs: Sequence[Run], notes: Sequence[str] = ()) -> list[str]:
    """The report's notes: runs read twice or sweeps unreadable (`notes`), damaged files of runs still in the
    means, runs that collapsed to chance."""
    partial = [
        f"{r.path}: {d.path.name} {d.reason}; its summary.json is whole and in the means"
        for r in runs
        if r.included
        for d in r.damaged
    ]
    collapsed = [
        f"{r.path}: collapsed to chance at epoch {c['epoch']} after {100 * c['peak_train_acc']:.2f} % train accuracy "
        f"at epoch {c['peak_epoch']} (completed, and in the means)"
        for r in runs
        if r.summary is not None and isinstance(c := r.summary.collapsed_at, dict)
        and {"epoch", "peak_train_acc", "peak_epoch"} <= set(c)
    ]
    return [*notes, *partial, *collapsed]


def latex_table(
    groups: Sequence[Group],
    metrics: Sequence[Metric],
    comparison: Comparison | None = None,
    targets: Sequence[Target] = (),
) -> str:
    """table.tex: a booktabs tabular; its legend (for the caption) in comment lines above it."""
    rows = table_rows(groups, metrics, LATEX, comparison, targets)
    body = [" & ".join(row) + r" \\" for row in rows]
    caption = [
        "% " + line
        for paragraph in legend(comparison, targets)
        for line in textwrap.wrap(paragraph.replace(MARK, r"$^\dagger$"), 110)
    ]
    return "\n".join(
        [
            "% schedlab report: mean +- sample std (ddof=1) [95 % CI] over seeds; accuracies and gap in percent",
            r"\begin{tabular}{l" + "r" * (len(rows[0]) - 1) + "}",
            r"\toprule",
            body[0],
            r"\midrule",
            *body[1:],
            r"\bottomrule",
            r"\end{tabular}",
            *caption,
            "",
        ]
    )


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(["" if v is None else v for v in row] for row in rows)


def write_results_csv(path: Path, runs: Sequence[Run], groups: Sequence[Group], targets: Sequence[Target] = ()) -> None:
    """One row per run, left-out ones too: every override key as a column (full values), raw summary figures,
    the epoch and seconds at which the run reached each target (empty: not reached)."""
    label = {id(r): g.full_label or g.label for g in groups for r in g.runs}
    keys = list(dict.fromkeys(k for r in runs for k in r.params))
    if "seed" not in keys:
        keys.append("seed")
    target_columns = [c for t in targets for c in (f"to_{t.spec}_epoch", f"to_{t.spec}_time_s")]
    rows = []
    for r in runs:
        params = {**({"seed": r.summary.seed} if r.summary else {}), **r.params}
        reached = [t.reached(r.history) or (None, None) for t in targets]
        rows.append(
            [
                str(r.path),
                label[id(r)],
                r.status,
                *(params.get(k) for k in keys),
                *(r.summary.get(k) if r.summary else None for k in RUN_FIELDS),
                *(v for pair in reached for v in pair),
                r.reason,
            ]
        )
    _write_csv(path, ["run", "group", "status", *keys, *RUN_FIELDS, *target_columns, "reason"], rows)


STAT_COLUMNS = ("n", "mean", "std", "ci_low", "ci_high")
COMPARE_COLUMNS = ("metric", "reference", "test", "t", "df", "p", "p_holm", "marked")


def write_groups_csv(
    path: Path, groups: Sequence[Group], comparison: Comparison | None = None, targets: Sequence[Target] = ()
) -> None:
    """One row per group (its full label, the override values as given): n, mean, std and 95 % CI of every
    metric as fractions; the test against the reference (compare_*); each target's runs that reached it and
    the mean and std of their epochs and seconds (to_*)."""
    names = list(dict.fromkeys(k for g in groups for k, _ in g.key))
    header = ["group", *names, *COUNT_COLUMNS] + [f"{m}_{s}" for m in METRICS for s in STAT_COLUMNS]
    if comparison is not None:
        header += [f"compare_{c}" for c in COMPARE_COLUMNS]
    for t in targets:
        header += [
            f"to_{t.spec}_{c}" for c in ("reached", "runs", "epoch_mean", "epoch_std", "time_s_mean", "time_s_std")
        ]
    rows = []
    for g in groups:
        values = dict(g.key)
        row = [g.full_label or g.label, *(values.get(k) for k in names), *g.counts.values()]
        for m in METRICS:
            stat = g.stats[m]
            row += [stat.n, stat.mean, stat.std, *(stat.ci or (None, None))]
        if comparison is not None:
            test = g.test
            row += [
                comparison.metric.name,
                comparison.reference.full_label or comparison.reference.label,
                test.kind if test else None,
                test.t if test else None,
                test.df if test else None,
                test.p if test else None,
                g.p_holm,
                int(g.marked),
            ]
        for t in targets:
            stat = target_stat(g, t)
            row += [stat.epochs.n, stat.runs, stat.epochs.mean, stat.epochs.std, stat.seconds.mean, stat.seconds.std]
        rows.append(row)
    _write_csv(path, header, rows)


# --------------------------------------------------------------------------------------------------- plots


class Series(NamedTuple):
    """One line of a figure (or one bar: x, y and err of length one): the mean over a group's runs."""

    label: str
    x: np.ndarray
    y: np.ndarray
    err: np.ndarray  # half-width of the 95 % CI of the mean at each x; 0 where fewer than two runs have the point
    n: int  # the runs behind the series
    color: str
    linestyle: str = "-"
    panel: str = ""  # the panel of a figure with one per data split: train, val, test


PLOTS = {  # name -> x label, y label, title
    "lr": ("epoch", "learning rate", "Learning rate"),
    "test_acc": ("epoch", "test accuracy (%)", "Test accuracy"),
    "train_test_acc": ("epoch", "accuracy (%)", "Accuracy"),
    "gap": ("epoch", "train − test accuracy (%)", "Generalization gap"),
    "final_gap": ("final gap (%)", "", "Final gap"),
}
SPLITS = {"train": "train", "val": "validation", "test": "test"}  # the panels of train_test_acc, in order
FIGURE_FORMATS = ("png", "pdf", "svg")
LEGEND_INSIDE_MAX = 4  # more entries (or long labels, or several panels): the legend goes below the axes


def run_steps(run: Run) -> list[StepRow]:
    """The rows of a run's steps.csv, read once; what it holds that cannot be read is added to the run's
    `damaged`."""
    if run.steps is None:
        folder = RunFolder(run.path, create=False)
        run.steps = _guarded(folder, folder.steps, folder.read_steps, [])
        run.damaged += [d for d in folder.damaged if d not in run.damaged]
    return run.steps


def _lr_points(run: Run) -> dict[float, float]:
    """The LR of every optimizer step at its position in epochs (0 at the first step, the last LR repeated at
    the end of the run), from steps.csv (run_steps); the LR at each epoch's first step (metrics.jsonl) without it."""
    rows = run_steps(run)
    per_epoch = (run.summary.steps_per_epoch if run.summary else None) or sum(1 for s in rows if s.epoch == 1)
    if rows and per_epoch:
        points = {(s.step - 1) / per_epoch: s.lr for s in rows}
        return points | {rows[-1].step / per_epoch: rows[-1].lr}
    return {r.epoch - 1: float(r.lr) for r in run.history}


def _mean_curve(points: list[dict[float, float]], scale: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and the half-width of its 95 % CI over the runs at each x any run has (0 where one run has it)."""
    xs = sorted({x for p in points for x in p})
    mean, err = [], []
    for x in xs:
        values = [p[x] * scale for p in points if x in p]
        mean.append(statistics.mean(values))
        err.append(ci_half_width(statistics.stdev(values), len(values)) if len(values) > 1 else 0.0)
    return np.array(xs, dtype=float), np.array(mean), np.array(err)


def _epoch_points(runs: Sequence[Run], column: str) -> list[dict[float, float]]:
    """A metrics.jsonl figure of each run against the epoch (runs without it left out)."""
    points = [{r.epoch: float(v) for r in run.history if (v := getattr(r, column, None)) is not None} for run in runs]
    return [p for p in points if p]


def _epoch_series(label: str, runs: Sequence[Run], column: str, color: str, panel: str = "") -> Series:
    """A fraction of metrics.jsonl (accuracy, gap) in percent against the epoch."""
    points = _epoch_points(runs, column)
    return Series(label, *_mean_curve(points, 100.0), len(points), color, panel=panel)


def plot_data(groups: Sequence[Group]) -> dict[str, list[Series]]:
    """The series behind every figure: one per group with completed runs (one per group and split in
    train_test_acc, for the splits any run has), in the colour of the group's place in the table."""
    data: dict[str, list[Series]] = {name: [] for name in PLOTS}
    fields = {f.name for f in epoch_metrics()}
    splits = [s for s in SPLITS if f"{s}_acc" in fields]
    by_split: dict[str, list[Series]] = {s: [] for s in splits}
    for i, g in enumerate(groups):
        runs, color = g.included, f"C{i % 10}"
        if not runs:
            continue
        data["lr"].append(Series(g.label, *_mean_curve([_lr_points(r) for r in runs]), len(runs), color))
        data["test_acc"].append(_epoch_series(g.label, runs, "test_acc", color))
        ensemble = _epoch_series(f"{g.label} (snapshot ensemble)", runs, "ensemble_test_acc", color)
        if ensemble.n:  # dashed, from the first snapshot on
            data["test_acc"].append(ensemble._replace(linestyle="--"))
        for split in splits:
            series = _epoch_series(g.label, runs, f"{split}_acc", color, split)
            if series.n:
                by_split[split].append(series)
        data["gap"].append(_epoch_series(g.label, runs, "gap", color))
        gap = g.stats["gap"]
        if gap.mean is not None:
            err = 0.0 if gap.std is None else ci_half_width(gap.std, gap.n) * 100
            data["final_gap"].append(
                Series(g.label, np.array([i]), np.array([gap.mean * 100]), np.array([err]), gap.n, color)
            )
    data["train_test_acc"] = [s for split in splits for s in by_split[split]]
    return data


def band_text(series: Sequence[Series]) -> str:
    """What the bands or error bars are: '95 % CI over n seeds' only where n > 1."""
    ns = sorted({s.n for s in series if s.n})
    if not ns:
        return "no runs"
    if ns == [1]:
        return "n = 1"
    if len(ns) == 1:
        return f"mean and {CONFIDENCE:.0%} CI over {ns[0]} seeds".replace("%", " %")
    if ns[0] == 1:
        return f"mean over {ns[0]}–{ns[-1]} seeds per group, {CONFIDENCE:.0%} CI where n ≥ 2".replace("%", " %")
    return f"mean and {CONFIDENCE:.0%} CI over {ns[0]}–{ns[-1]} seeds per group".replace("%", " %")


def _wrap(label: str, width: int) -> str:
    return textwrap.fill(label, width, break_on_hyphens=False) if len(label) > width else label


def _legend(fig: Figure, axes: Sequence, title: str | None, panels: int) -> float:
    """A figure legend of every line (one entry per label) that never covers data: to the right of a single
    axes for a few short entries, else below the axes in as many columns as fit. Returns the height (inches)
    the legend needs below the axes."""
    handles: dict[str, object] = {}
    for ax in axes:
        for line in ax.get_lines():
            if not line.get_label().startswith("_"):
                handles.setdefault(line.get_label(), line)
    if not handles:
        return 0.0
    labels = list(handles)
    longest = max(len(label) for label in labels)
    if len(labels) <= LEGEND_INSIDE_MAX and longest <= 24 and panels == 1:
        fig.legend(handles.values(), labels, loc="outside right upper", title=title, fontsize="small")
        return 0.0
    width = fig.get_figwidth() * 72  # points
    wrapped = [_wrap(label, 48) for label in labels]
    chars = max(len(line) for label in wrapped for line in label.splitlines())
    ncols = int(max(1, min(len(labels), width // (chars * 5.2 + 40))))
    fig.legend(handles.values(), wrapped, loc="outside lower center", ncols=ncols, title=title, fontsize="small")
    rows = math.ceil(len(labels) / ncols)
    lines_per_row = max(label.count("\n") + 1 for label in wrapped)
    return 0.4 + rows * lines_per_row * 0.19 + (0.2 if title else 0.0)


ACCURACY_PLOTS = ("test_acc", "train_test_acc")


LOG_LR_RATIO = 30  # groups whose peak LRs lie further apart than this share a log axis (Adam's 1e-3, SGD's 0.3)


def _decades_apart(series: Sequence[Series]) -> bool:
    """Whether the groups' peak LRs are LOG_LR_RATIO or more apart: on a linear axis the lower ones would lie flat
    on the zero line."""
    peaks = [float(np.max(s.y)) for s in series if len(s.y) and np.max(s.y) > 0]
    return len(peaks) > 1 and max(peaks) >= LOG_LR_RATIO * min(peaks)


def _gap_range(ax, series: Sequence[Series]) -> None:
    """The y-range of the epochs after the first, when there are at least three and epoch 1 lies outside it.
    Epoch 1's train accuracy is the mean over an epoch of a model still learning while its test accuracy is
    measured at the end, so its gap is far below the later ones and would squash them on a linear axis; a
    symlog axis would keep it but bend the differences between the later gaps, the ones worth reading."""
    later = [(s.y[s.x >= 2] - s.err[s.x >= 2], s.y[s.x >= 2] + s.err[s.x >= 2]) for s in series]
    first = np.concatenate([s.y[s.x < 2] for s in series]) if series else np.array([])
    if len({x for s in series for x in s.x}) < 3 or not any(len(low) for low, _ in later):
        return
    low = min(float(np.min(lo)) for lo, _ in later if len(lo))
    high = max(float(np.max(hi)) for _, hi in later if len(hi))
    if np.all((first >= low) & (first <= high)):
        return
    pad = max(0.1 * (high - low), 0.5)
    ax.set_ylim(low - pad, high + pad)
    ax.set_xlabel("epoch (epoch 1 outside the y-range)")


def _draw_bars(series: Sequence[Series]) -> Figure:
    """Horizontal bars with their 95 % CI, one per group, top to bottom in the table's order: the labels sit
    on lines of their own, so they never overprint however many groups there are."""
    xlabel, _, title = PLOTS["final_gap"]
    labels = [_wrap(s.label, 32) for s in series]
    lines = [label.count("\n") + 1 for label in labels]
    fig = Figure(figsize=(6.4, max(2.6, 1.4 + sum(0.2 * n + 0.12 for n in lines))), layout="constrained")
    ax = fig.subplots()
    positions = np.arange(len(series))
    ax.barh(
        positions,
        [s.y[0] for s in series],
        xerr=[s.err[0] for s in series],
        color=[s.color for s in series],
        capsize=4,
        height=0.6,
    )
    ax.set_yticks(positions, labels)
    ax.invert_yaxis()
    ax.axvline(0, color="0.4", linewidth=0.8)
    ax.set(xlabel=xlabel, title=f"{title}\n{band_text(series)}")  # two lines: never wider than the axes
    ax.grid(axis="x", alpha=0.3)
    return fig


def draw(name: str, series: Sequence[Series], legend_title: str | None = None) -> Figure:
    """The figure of one plot: a line and a 95 % CI band per series (a panel per split for train_test_acc),
    or horizontal bars with CI error bars for final_gap."""
    if name == "final_gap":
        return _draw_bars(series)
    xlabel, ylabel, title = PLOTS[name]
    panels = list(dict.fromkeys(s.panel for s in series)) or [""]
    width = 6.4 if len(panels) == 1 else min(4.2 * len(panels), 13.0)
    fig = Figure(figsize=(width, 4.2), layout="constrained")
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    steps = "post" if name == "lr" else None  # an LR holds from its step to the next one
    for ax, panel in zip(axes, panels, strict=True):
        for s in (s for s in series if s.panel == panel):
            ax.plot(
                s.x,
                s.y,
                color=s.color,
                linestyle=s.linestyle,
                label=s.label,
                marker="o" if len(s.x) <= 12 else None,
                drawstyle=f"steps-{steps}" if steps else "default",
            )
            if np.any(s.err > 0):
                ax.fill_between(s.x, s.y - s.err, s.y + s.err, color=s.color, alpha=0.2, linewidth=0, step=steps)
        ax.set_xlabel(xlabel)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if panel:
            ax.set_title(SPLITS.get(panel, panel))
    axes[0].set_ylabel(ylabel)
    if name == "gap":
        _gap_range(axes[0], series)
    if name == "lr" and _decades_apart(series):
        axes[0].set_yscale("log", nonpositive="mask")  # an LR of 0 (a cosine's end) is left out, not clipped
        axes[0].set_ylabel(f"{ylabel} (log scale)")
    if name in ACCURACY_PLOTS:  # a wide interval (a seed stuck at chance) must not stretch the axis past 0-100 %
        low, high = axes[0].get_ylim()
        axes[0].set_ylim(max(low, 0.0), min(high, 100.0))
    heading = f"{title}\n{band_text(series)}" if series else title  # two lines: never wider than the axes
    if len(panels) > 1 or panels[0]:
        fig.suptitle(heading)
    else:
        axes[0].set_title(heading)
    below = _legend(fig, axes, legend_title, len(panels))
    fig.set_figheight(4.2 + below)
    return fig


def save_figure(fig: Figure, out: Path, name: str) -> dict[str, Path]:
    """name.png (150 dpi), name.pdf and name.svg in out."""
    files = {}
    for fmt in FIGURE_FORMATS:
        files[f"{name}.{fmt}"] = out / f"{name}.{fmt}"
        fig.savefig(files[f"{name}.{fmt}"], dpi=150 if fmt == "png" else "figure")
    return files


# ---------------------------------------------------------------------------------------------- the report


@dataclass
class Report:
    runs: list[Run]
    groups: list[Group]
    metrics: list[Metric]
    markdown: str
    latex: str
    plots: dict[str, list[Series]]  # the data behind each figure
    figures: dict[str, Figure]
    files: dict[str, Path]  # what was written, by name (table.md, lr.png, lr.pdf, ...)
    comparison: Comparison | None = None  # the groups tested against the best (or the baseline)
    targets: list[Target] = field(default_factory=list)
    folders: list[Path] = field(default_factory=list)  # the folders the runs were collected from
    notes: list[str] = field(default_factory=list)  # runs counted once, unreadable sweeps (see report_notes)

    @property
    def excluded(self) -> list[Run]:
        return [r for r in self.runs if not r.included]


class OutputError(ValueError):
    """The report cannot be written where it was asked to be."""


class NoRunsError(ValueError):
    """The folders hold no training run (yet)."""


def output_folder(out: Path) -> None:
    """Make `out` (and its parents), or raise OutputError in one line saying why it cannot be written to."""
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out} is a file, not a folder: give --out a folder (new or existing)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot make the report folder {out}: {e.strerror or type(e).__name__}") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write to the report folder {out}: permission denied")


def _default_metrics(runs: Sequence[Run]) -> list[Metric]:
    """DEFAULT_METRICS that METRICS has and some completed run reports (no validation columns without a
    validation split)."""
    chosen = [REPORT_METRICS[name] for name in DEFAULT_METRICS if name in REPORT_METRICS]
    reported = [m for m in chosen if any(r.value(m) is not None for r in runs if r.included)]
    return reported or chosen


def write_report(
    folders: Sequence[str | Path],
    out_dir: str | Path | None = None,
    metrics: Sequence[str] | None = None,
    sort: str | None = None,
    group_by: Sequence[str] | None = None,
    compare: str | None = None,
    baseline: str | None = None,
    targets: Sequence[str] = (),
    live: Live | None = None,
) -> Report:
    """Collect, aggregate, compare and write every table and figure to out_dir (default: <first folder>/report).
    metrics: the columns (default: DEFAULT_METRICS, those the runs have); compare: the metric the groups are
    tested on (default: the first column with a better direction); baseline: the label of the reference group
    (default: the best on that metric); targets: 'FIGURE=VALUE' strings for time-to-target columns; live: while
    the sweep runs (--watch), the tables and a page that reloads itself, without the figures."""
    folders = [Path(f) for f in folders]
    chosen = resolve_metrics(metrics) if metrics else None
    parsed_targets = parse_targets(targets)
    if compare:
        resolve_metrics([compare])
    notes: list[str] = []
    runs = collect(folders, notes)
    if not runs:
        raise NoRunsError(f"no training runs under {', '.join(map(str, folders))}")
    chosen = chosen or _default_metrics(runs)
    groups = aggregate(runs, sort, group_by)
    metric = compared_metric(chosen, compare, baseline)
    if baseline is not None:
        find_group(groups, baseline)  # before anything is written
    out = Path(out_dir) if out_dir else folders[0] / "report"
    output_folder(out)
    if metric is not None and metric.name not in {m.name for m in chosen}:
        chosen.append(metric)  # the marks need the compared metric's column
    comparison = None if metric is None else compare_groups(groups, metric, baseline)
    plots = {} if live else plot_data(groups)  # reads steps.csv: its damage goes into table.md's notes

    sources = ", ".join(f"`{display_path(f, out)}`" for f in folders)
    markdown = markdown_report(runs, groups, chosen, sources, notes, comparison, parsed_targets, out)
    latex = latex_table(groups, chosen, comparison, parsed_targets)
    files = {name: out / name for name in ("table.md", "table.tex", "results.csv", "groups.csv")}
    files["table.md"].write_text(markdown)
    files["table.tex"].write_text(latex)
    write_results_csv(files["results.csv"], runs, groups, parsed_targets)
    write_groups_csv(files["groups.csv"], groups, comparison, parsed_targets)

    varying = varying_keys(groups)
    legend_title = varying[0] if len(varying) == 1 else None
    figures = {name: draw(name, series, legend_title) for name, series in plots.items()}
    for name, fig in figures.items():
        files.update(save_figure(fig, out, name))
    report = Report(
        runs, groups, chosen, markdown, latex, plots, figures, files, comparison, parsed_targets, folders, notes
    )
    from experiments.dashboard import write_dashboard  # it draws on this module

    files["index.html"] = write_dashboard(report, out, live)
    return report


def _comma_list(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def _one_line(e: Exception) -> str:
    if isinstance(e, OSError) and e.strerror:  # raised by the system: "[Errno 28] ..." without the number
        text = f"{e.filename}: {e.strerror}" if e.filename else e.strerror
    else:
        text = str(e)
    return " ".join(text.split())


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        """A usage error in one line, exit 2 (argparse prints the whole usage first)."""
        self.exit(2, f"report: error: {' '.join(message.split())} (see --help)\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _Parser(
        prog="python -m experiments.report",
        description="Tables (md, tex, csv) and plots from multirun or run folders: mean ± std and 95 % CI over "
        "seeds, every group tested against the best, time to target.",
    )
    parser.add_argument(
        "folders", nargs="+", type=Path, help="multirun folders (pooled), run folders, or folders of them"
    )
    parser.add_argument("--out", type=Path, help="where to write (default: FOLDER/report of the first folder)")
    parser.add_argument(
        "--metrics",
        help=f"comma list of columns from: {', '.join(METRICS)} (default: those of {', '.join(DEFAULT_METRICS)} "
        "the runs have)",
    )
    parser.add_argument(
        "--sort",
        help="order of the groups: group, n, diverged, failed or a metric; -COLUMN for descending (default: sweep order)",
    )
    parser.add_argument("--group-by", help="comma list of override keys (default: every override but the seed)")
    parser.add_argument(
        "--compare",
        metavar="METRIC",
        help="the metric every group is tested on against the best (default: the first of --metrics with a "
        "better direction)",
    )
    parser.add_argument(
        "--baseline",
        metavar="LABEL",
        help="test every group against this group (its label in the table) instead of the best",
    )
    parser.add_argument(
        "--target",
        action="append",
        default=[],
        metavar="FIGURE=VALUE",
        help=f"time to target: the epoch and seconds at which each run first reached VALUE (a fraction for "
        f"accuracies); repeatable or comma list; FIGURE one of {', '.join(target_figures())}",
    )
    parser.add_argument(
        "--watch",
        action="store_true",
        help="keep the tables and index.html current while the sweep runs, from the files its jobs append; "
        "Ctrl-C stops, then writes the whole report",
    )
    parser.add_argument(
        "--serve",
        type=int,
        metavar="PORT",
        help="--watch, and serve the report on http://127.0.0.1:PORT/ only (0: a free port)",
    )
    parser.add_argument(
        "--interval", type=float, default=2.0, metavar="SECONDS", help="how often --watch looks at the run files (2)"
    )
    argv = list(sys.argv[1:] if argv is None else argv)
    for i, arg in enumerate(argv[:-1]):
        if arg == "--sort" and argv[i + 1].startswith("-"):  # argparse would take "-test_acc" for an option
            argv[i : i + 2] = [f"--sort={argv[i + 1]}"]
            break
    args = parser.parse_args(argv)
    if args.serve is not None and not 0 <= args.serve <= 65535:
        parser.error(f"argument --serve: {args.serve} is not a port (0-65535)")
    if not (math.isfinite(args.interval) and args.interval > 0):
        parser.error(f"argument --interval: {args.interval:g} is not a positive number of seconds")
    options = dict(
        metrics=_comma_list(args.metrics),
        sort=args.sort,
        group_by=_comma_list(args.group_by),
        compare=args.compare,
        baseline=args.baseline,
        targets=args.target,
    )
    if args.watch or args.serve is not None:
        from experiments.dashboard import watch

        return watch(args.folders, args.out, options, args.interval, args.serve)
    try:
        report = write_report(args.folders, args.out, **options)
    except (ValueError, OSError) as e:  # bad arguments, missing folders, a report folder that cannot be written
        print(f"report: error: {_one_line(e)}", file=sys.stderr)
        return 2
    print(report.markdown)
    out = report.files["table.md"].parent
    print(f"wrote {', '.join(report.files)} to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
