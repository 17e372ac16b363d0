r"""Tables and plots from finished sweeps.

    python -m experiments.report outputs/multirun/2024-05-01/12-00-00
    python -m experiments.report SWEEP_A SWEEP_B --metrics test_acc,best_test_acc --sort -test_acc
    python -m experiments.report SWEEP --group-by scheduler,optimizer.lr --out paper/tables

Runs are grouped by their Hydra overrides other than the seed (and the keys that cannot change a number:
resume, logger, trainer.progress, trainer.checkpoint); `--group-by` names the keys instead. Several folders are
pooled, e.g. one sweep launched in two goes. Each group gets n and mean ± sample std (ddof=1) over its completed
runs. Diverged, failed, interrupted, unfinished (no summary.json) and never-run jobs are counted and listed
with the reason, never averaged: a diverged run's figures come from its last finite epoch, not from a
finished schedule. Never-run jobs are found by expanding the sweep in multirun.yaml (basic sweeper only).
A file that cannot be read whole (a cut line, not JSON, binary, empty, a figure that is not a number) never
stops the report: its run is listed under "Not included" with the file and the reason, or counted with a line
under "Notes" when its summary.json is whole. A run folder reached twice is counted once.

Writes to --out (default: <first folder>/report/):
  table.md        the table (also printed) and the runs left out of it, with the reason
  table.tex       the same table as a booktabs tabular, ready to \input
  results.csv     one row per run: every override as a column, the summary figures as fractions
  groups.csv      one row per group: n, mean and std of every metric, as fractions
  lr.png, test_acc.png, train_test_acc.png, gap.png, final_gap.png
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import statistics
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import yaml
from matplotlib.figure import Figure

from trainer.config import NEUTRAL_KEYS
from trainer.records import METRICS, Damaged, EpochRow, Metric, RunFolder, Summary, epoch_metrics

# overrides that do not change a run's numbers: runs differing only in these are repeats of one setting
GROUPING_FREE_KEYS = ("seed", *NEUTRAL_KEYS)  # runs that differ only in these are one group
DASH = "–"


DEFAULT_METRICS = ("train_loss", "train_acc", "test_acc", "best_test_acc", "gap", "wall_time")
COUNT_COLUMNS = ("n", "diverged", "failed")
RUN_FIELDS = ("epochs_completed", *(m.key for m in METRICS.values()), "device_name", "precision")


def resolve_metrics(names: Iterable[str]) -> list[Metric]:
    """Metrics by column name or summary.json key; a ValueError lists the choices."""
    by_key = {m.key: m for m in METRICS.values()}
    out = []
    for name in names:
        metric = METRICS.get(name) or by_key.get(name)
        if metric is None:
            raise ValueError(f"unknown metric {name!r}: use {', '.join(METRICS)}")
        out.append(metric)
    return out


# ---------------------------------------------------------------------------------------------------- runs


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
        present = m.key in summary.figures or summary.get(m.key) is not None
        if present and not _is_number(summary.get(m.key)):
            problems.append(f"{m.key} is {_shown_value(summary.get(m.key))}, not a number")
    return problems


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


@dataclass
class Group:
    key: tuple[tuple[str, str | None], ...]  # the grouping overrides, sorted by key
    label: str
    runs: list[Run]  # every run of the group, the ones left out of the means too
    stats: dict[str, Stat]  # metric name -> the values of the completed runs

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


def _labels(keys: list[tuple], names: list[str]) -> list[str]:
    """ "key=value, ..." of the keys that differ between groups (of every key for a single group); the bare
    value when one key differs."""
    varying = _varying(keys, names)
    labels = []
    for key in keys:
        values = {k: "(default)" if v is None else v for k, v in key}  # a group_by key the runs left alone
        if len(varying) == 1:
            labels.append(values.get(varying[0], "(default)"))
        else:
            shown = varying or [k for k in names if k in values]
            labels.append(", ".join(f"{k}={values.get(k, '(default)')}" for k in shown) or "all runs")
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
    labels = _labels(keys, list(group_by) if group_by else _key_names(list(runs), keys))
    groups = []
    for key, label in zip(keys, labels, strict=True):
        members = buckets[key]
        stats = {
            m.name: Stat([v for r in members if r.included and (v := r.value(m)) is not None]) for m in METRICS.values()
        }
        groups.append(Group(key, label, members, stats))
    return _sort_groups(groups, sort)


# -------------------------------------------------------------------------------------------------- tables


class Style(NamedTuple):
    plus_minus: str
    dash: str
    bold: str
    escape: Callable[[str], str]


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
}


def tex_escape(text: str) -> str:
    return "".join(_TEX_SPECIALS.get(c, c) for c in text)


MARKDOWN = Style(" ± ", DASH, "**{}**", _md_escape)
LATEX = Style(r" $\pm$ ", "--", r"\textbf{{{}}}", tex_escape)


def _number(value: float, metric: Metric) -> str:
    return f"{value * metric.scale:.{metric.decimals}f}"


def _best(groups: Sequence[Group], metric: Metric) -> str | None:
    """The best mean as shown (ties at the shown precision all count), when two or more groups have one."""
    means = [g.stats[metric.name].mean for g in groups if g.stats[metric.name].mean is not None]
    if metric.better is None or len(means) < 2:
        return None
    return _number(max(means) if metric.better == "max" else min(means), metric)


def _cell(stat: Stat, metric: Metric, best: str | None, style: Style) -> str:
    if stat.mean is None:
        return style.dash
    mean = _number(stat.mean, metric)
    std = style.dash if stat.std is None else _number(stat.std, metric)
    text = f"{mean}{style.plus_minus}{std}"
    return style.bold.format(text) if mean == best else text


def table_rows(groups: Sequence[Group], metrics: Sequence[Metric], style: Style) -> list[list[str]]:
    """The header row and one row per group, escaped for the style."""
    varying = varying_keys(groups)
    first = varying[0] if len(varying) == 1 else "group"
    header = [first, *COUNT_COLUMNS[:1], *(m.title for m in metrics), *COUNT_COLUMNS[1:]]
    best = {m.name: _best(groups, m) for m in metrics}
    rows = [[style.escape(c) for c in header]]
    for g in groups:
        counts = g.counts
        cells = [_cell(g.stats[m.name], m, best[m.name], style) for m in metrics]
        rows.append([style.escape(g.label), str(counts["n"]), *cells, str(counts["diverged"]), str(counts["failed"])])
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


def markdown_report(
    runs: Sequence[Run], groups: Sequence[Group], metrics: Sequence[Metric], sources: str, notes: Sequence[str] = ()
) -> str:
    rows = table_rows(groups, metrics, MARKDOWN)
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
    lines += [
        "",
        "Mean ± sample standard deviation (ddof=1) over the completed runs (seeds) of each group; "
        f"{DASH} for the std where n = 1 and for the mean where no run completed. Accuracies and gap "
        "(train − test accuracy) in percent with 2 decimals, losses with 3 decimals, times in seconds. "
        "The best mean of a column is in bold. Diverged and failed runs are counted, not averaged; "
        "failed counts failed, interrupted, unfinished and never-run jobs.",
        "",
        *_md_table(rows, "l" + "r" * (len(rows[0]) - 1)),
        "",
    ]
    if excluded:
        lines += [f"## Not included ({len(excluded)})", ""]
        table = [["run", "status", "overrides", "reason"]]
        table += [[str(r.path), r.status, " ".join(r.overrides), r.reason] for r in excluded]
        lines += _md_table([[_md_escape(c) for c in row] for row in table], "llll") + [""]
    partial = [
        f"{r.path}: {d.path.name} {d.reason}; its summary.json is whole and in the means"
        for r in runs
        if r.included
        for d in r.damaged
    ]
    if notes or partial:
        lines += ["## Notes", "", *(f"- {_md_escape(n)}" for n in [*notes, *partial]), ""]
    return "\n".join(lines)


def latex_table(groups: Sequence[Group], metrics: Sequence[Metric]) -> str:
    rows = table_rows(groups, metrics, LATEX)
    body = [" & ".join(row) + r" \\" for row in rows]
    return "\n".join(
        [
            "% schedlab report: mean +- sample std (ddof=1) over seeds; accuracies and gap in percent",
            r"\begin{tabular}{l" + "r" * (len(rows[0]) - 1) + "}",
            r"\toprule",
            body[0],
            r"\midrule",
            *body[1:],
            r"\bottomrule",
            r"\end{tabular}",
            "",
        ]
    )


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(["" if v is None else v for v in row] for row in rows)


def write_results_csv(path: Path, runs: Sequence[Run], groups: Sequence[Group]) -> None:
    """One row per run, left-out ones too: every override key as a column, raw summary figures."""
    label = {id(r): g.label for g in groups for r in g.runs}
    keys = list(dict.fromkeys(k for r in runs for k in r.params))
    if "seed" not in keys:
        keys.append("seed")
    rows = []
    for r in runs:
        params = {**({"seed": r.summary.seed} if r.summary else {}), **r.params}
        rows.append(
            [
                str(r.path),
                label[id(r)],
                r.status,
                *(params.get(k) for k in keys),
                *(r.summary.get(k) if r.summary else None for k in RUN_FIELDS),
                r.reason,
            ]
        )
    _write_csv(path, ["run", "group", "status", *keys, *RUN_FIELDS, "reason"], rows)


def write_groups_csv(path: Path, groups: Sequence[Group]) -> None:
    names = list(dict.fromkeys(k for g in groups for k, _ in g.key))
    header = ["group", *names, *COUNT_COLUMNS] + [f"{m}_{s}" for m in METRICS for s in ("mean", "std")]
    rows = []
    for g in groups:
        values = dict(g.key)
        stats = [v for m in METRICS for v in (g.stats[m].mean, g.stats[m].std)]
        rows.append([g.label, *(values.get(k) for k in names), *g.counts.values(), *stats])
    _write_csv(path, header, rows)


# --------------------------------------------------------------------------------------------------- plots


class Series(NamedTuple):
    """One line of a figure (or one bar: x, y and std of length one): the mean over a group's runs."""

    label: str
    x: np.ndarray
    y: np.ndarray
    std: np.ndarray  # sample std over the runs at each x; 0 where a single run has the point
    color: str
    linestyle: str = "-"


PLOTS = {  # name -> x label, y label, title
    "lr": ("epoch", "learning rate", "Learning rate"),
    "test_acc": ("epoch", "test accuracy (%)", "Test accuracy"),
    "train_test_acc": ("epoch", "accuracy (%)", "Train (solid) and test (dashed) accuracy"),
    "gap": ("epoch", "train − test accuracy (%)", "Generalization gap"),
    "final_gap": ("", "final gap (%)", "Final gap"),
}


def _lr_points(run: Run) -> dict[float, float]:
    """The LR of every optimizer step at its position in epochs (0 at the first step, the last LR repeated at
    the end of the run), from steps.csv; the LR at each epoch's first step (metrics.jsonl) without it. What
    steps.csv holds that cannot be read is added to the run's `damaged`."""
    folder = RunFolder(run.path, create=False)
    rows = _guarded(folder, folder.steps, folder.read_steps, [])
    run.damaged += [d for d in folder.damaged if d not in run.damaged]
    per_epoch = (run.summary.steps_per_epoch if run.summary else None) or sum(1 for s in rows if s.epoch == 1)
    if rows and per_epoch:
        points = {(s.step - 1) / per_epoch: s.lr for s in rows}
        return points | {rows[-1].step / per_epoch: rows[-1].lr}
    return {r.epoch - 1: float(r.lr) for r in run.history}


def _mean_curve(points: list[dict[float, float]], scale: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and sample std over runs at each x any run has."""
    xs = sorted({x for p in points for x in p})
    mean, std = [], []
    for x in xs:
        values = [p[x] * scale for p in points if x in p]
        mean.append(statistics.mean(values))
        std.append(statistics.stdev(values) if len(values) > 1 else 0.0)
    return np.array(xs, dtype=float), np.array(mean), np.array(std)


def _epoch_curve(runs: Sequence[Run], column: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A metrics.jsonl fraction (accuracy, gap) in percent against the epoch."""
    points = [
        {r.epoch: float(getattr(r, column)) for r in run.history if getattr(r, column) is not None} for run in runs
    ]
    return _mean_curve(points, 100.0)


def plot_data(groups: Sequence[Group]) -> dict[str, list[Series]]:
    """The series behind every figure: one per group with completed runs (two in train_test_acc), in the
    colour of the group's place in the table."""
    data: dict[str, list[Series]] = {name: [] for name in PLOTS}
    for i, g in enumerate(groups):
        runs, color = g.included, f"C{i % 10}"
        if not runs:
            continue
        data["lr"].append(Series(g.label, *_mean_curve([_lr_points(r) for r in runs]), color))
        data["test_acc"].append(Series(g.label, *_epoch_curve(runs, "test_acc"), color))
        data["train_test_acc"].append(Series(f"{g.label} train", *_epoch_curve(runs, "train_acc"), color))
        data["train_test_acc"].append(Series(f"{g.label} test", *_epoch_curve(runs, "test_acc"), color, "--"))
        data["gap"].append(Series(g.label, *_epoch_curve(runs, "gap"), color))
        gap = g.stats["gap"]
        if gap.mean is not None:
            data["final_gap"].append(
                Series(g.label, np.array([i]), np.array([gap.mean * 100]), np.array([(gap.std or 0.0) * 100]), color)
            )
    return data


def draw(name: str, series: Sequence[Series], legend_title: str | None = None) -> Figure:
    """The figure of one plot: a line and a ±std band per series, or bars with error bars for final_gap."""
    xlabel, ylabel, title = PLOTS[name]
    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.subplots()
    if name == "final_gap":
        positions = [s.x[0] for s in series]  # the group's place in the table
        ax.bar(
            positions,
            [s.y[0] for s in series],
            yerr=[s.std[0] for s in series],
            color=[s.color for s in series],
            capsize=4,
        )
        ax.set_xticks(
            positions,
            [s.label for s in series],
            rotation=30 if len(series) > 4 else 0,
            ha="right" if len(series) > 4 else "center",
        )
        ax.axhline(0, color="0.4", linewidth=0.8)
    else:
        steps = "post" if name == "lr" else None  # an LR holds from its step to the next one
        for s in series:
            marker = "o" if len(s.x) <= 12 else None
            ax.plot(
                s.x,
                s.y,
                color=s.color,
                linestyle=s.linestyle,
                label=s.label,
                marker=marker,
                drawstyle=f"steps-{steps}" if steps else "default",
            )
            if np.any(s.std > 0):
                ax.fill_between(s.x, s.y - s.std, s.y + s.std, color=s.color, alpha=0.2, linewidth=0, step=steps)
        if series:
            ax.legend(title=legend_title, fontsize="small")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=f"{title} (mean ± std over seeds)")
    ax.grid(alpha=0.3)
    return fig


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
    files: dict[str, Path]  # what was written, by name (table.md, lr.png, ...)

    @property
    def excluded(self) -> list[Run]:
        return [r for r in self.runs if not r.included]


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


class OutputError(ValueError):
    """The report cannot be written where it was asked to be."""


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


def write_report(
    folders: Sequence[str | Path],
    out_dir: str | Path | None = None,
    metrics: Sequence[str] = DEFAULT_METRICS,
    sort: str | None = None,
    group_by: Sequence[str] | None = None,
) -> Report:
    """Collect, aggregate and write every table and figure to out_dir (default: <first folder>/report)."""
    folders = [Path(f) for f in folders]
    chosen = resolve_metrics(metrics)
    notes: list[str] = []
    runs = collect(folders, notes)
    if not runs:
        raise ValueError(f"no training runs under {', '.join(map(str, folders))}")
    groups = aggregate(runs, sort, group_by)
    out = Path(out_dir) if out_dir else folders[0] / "report"
    output_folder(out)
    plots = plot_data(groups)  # reads steps.csv: its damage goes into table.md's notes

    sources = ", ".join(f"`{_shown(f)}`" for f in folders)
    markdown, latex = markdown_report(runs, groups, chosen, sources, notes), latex_table(groups, chosen)
    files = {name: out / name for name in ("table.md", "table.tex", "results.csv", "groups.csv")}
    files["table.md"].write_text(markdown)
    files["table.tex"].write_text(latex)
    write_results_csv(files["results.csv"], runs, groups)
    write_groups_csv(files["groups.csv"], groups)

    varying = varying_keys(groups)
    legend_title = varying[0] if len(varying) == 1 else None
    figures = {name: draw(name, series, legend_title) for name, series in plots.items()}
    for name, fig in figures.items():
        files[f"{name}.png"] = out / f"{name}.png"
        fig.savefig(files[f"{name}.png"], dpi=150)
    return Report(runs, groups, chosen, markdown, latex, plots, figures, files)


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
        description="Tables (md, tex, csv) and plots, mean ± std over seeds, from multirun or run folders.",
    )
    parser.add_argument(
        "folders", nargs="+", type=Path, help="multirun folders (pooled), run folders, or folders of them"
    )
    parser.add_argument("--out", type=Path, help="where to write (default: FOLDER/report of the first folder)")
    parser.add_argument(
        "--metrics", default=",".join(DEFAULT_METRICS), help=f"comma list of columns from: {', '.join(METRICS)}"
    )
    parser.add_argument(
        "--sort",
        help="order of the groups: group, n, diverged, failed or a metric; -COLUMN for descending (default: sweep order)",
    )
    parser.add_argument("--group-by", help="comma list of override keys (default: every override but the seed)")
    argv = list(sys.argv[1:] if argv is None else argv)
    for i, arg in enumerate(argv[:-1]):
        if arg == "--sort" and argv[i + 1].startswith("-"):  # argparse would take "-test_acc" for an option
            argv[i : i + 2] = [f"--sort={argv[i + 1]}"]
            break
    args = parser.parse_args(argv)
    try:
        report = write_report(
            args.folders, args.out, _comma_list(args.metrics) or DEFAULT_METRICS, args.sort, _comma_list(args.group_by)
        )
    except (ValueError, OSError) as e:  # bad arguments, missing folders, a report folder that cannot be written
        print(f"report: error: {_one_line(e)}", file=sys.stderr)
        return 2
    print(report.markdown)
    out = report.files["table.md"].parent
    print(f"wrote {', '.join(report.files)} to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
