"""The report's figures (lr, test_acc, train_test_acc, gap, final_gap, and anytime where the runs include branches;
each as PNG, PDF and SVG): each group's mean over its runs with a 95 % CI band, cut to what the figure can be. Runs
that sat at chance are drawn apart, dotted, and kept out of their group's mean and band, so that one stuck seed
neither drags a curve down nor stretches a band over the whole axis; the title says so."""

from __future__ import annotations

import collections
import math
import statistics
import textwrap
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
from matplotlib.colors import to_hex, to_rgb
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from experiments.report.branches import Family, family_groups
from experiments.report.columns import bounds
from experiments.report.groups import Group
from experiments.report.runs import Run, run_steps
from experiments.report.statistics import CONFIDENCE, Stat, ci_half_width, finite
from trainer.records import Metric, epoch_metrics


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
    apart: bool = False  # one run at chance, drawn dotted beside its group, outside its mean and band
    role: str = ""  # in the anytime figure: "parent", "branch" (from its branch epoch on), "alone" (any other group),
    # "apart" (a run at chance)


PLOTS = {  # name -> x label, y label, title
    "lr": ("epoch", "learning rate", "Learning rate"),
    "test_acc": ("epoch", "test accuracy (%)", "Test accuracy"),
    "train_test_acc": ("epoch", "accuracy (%)", "Accuracy"),
    "gap": ("epoch", "train − test accuracy (%)", "Generalization gap"),
    "final_gap": ("final gap (%)", "", "Final gap"),
}
# the same figures from an end-of-epoch evaluation on a fixed training subset (eval_gap), where the runs have one
EVAL_GAP_PLOTS = {
    "gap": ("epoch", "train (end of epoch) − test accuracy (%)", "Generalization gap, end of epoch"),
    "final_gap": ("final gap, end of epoch (%)", "", "Final gap, end of epoch"),
}
SPLITS = {"train": "train", "val": "validation", "test": "test"}  # the panels of train_test_acc, in order
FIGURE_FORMATS = ("png", "pdf", "svg")
LEGEND_INSIDE_MAX = 4  # more entries (or long labels, or several panels): the legend goes below the axes
ACCURACY_PLOTS = ("test_acc", "train_test_acc")
RANGES = {"test_acc": (0.0, 100.0), "train_test_acc": (0.0, 100.0), "gap": (-100.0, 100.0), "lr": (0.0, math.inf)}
LOG_LR_RATIO = 30  # groups whose peak LRs lie further apart than this share a log axis (Adam's 1e-3, SGD's 0.3)


def _lr_points(run: Run) -> dict[float, float]:
    """The LR of every optimizer step at its position in epochs (0 at the first step, the last LR repeated at
    the end of the run), from steps.csv (run_steps); the LR at each epoch's first step (metrics.jsonl) without it.
    LRs that are not finite are left out."""
    rows = [s for s in run_steps(run) if finite(s.lr)]
    if rows and run.summary is not None and run.summary.batch_size:  # epochs of their own lengths
        return _lr_points_by_epoch(run_steps(run), rows)
    per_epoch = (run.summary.steps_per_epoch if run.summary else None) or sum(1 for s in rows if s.epoch == 1)
    if rows and per_epoch:
        points = {(s.step - 1) / per_epoch: s.lr for s in rows}
        return points | {rows[-1].step / per_epoch: rows[-1].lr}
    return {r.epoch - 1: float(r.lr) for r in run.history if finite(r.lr)}


def _lr_points_by_epoch(steps: list, rows: list) -> dict[float, float]:
    """As _lr_points, for a run whose epochs differ in steps (scheduler.batch_size): step k (0-based) of epoch e,
    of S_e steps, is at e - 1 + k / S_e, as the trainer places it."""
    counts = collections.Counter(s.epoch for s in steps)
    first = {}
    for s in steps:
        first.setdefault(s.epoch, s.step)
    points = {s.epoch - 1 + (s.step - first[s.epoch]) / counts[s.epoch]: s.lr for s in rows}
    last = rows[-1]
    return points | {last.epoch - 1 + (last.step - first[last.epoch] + 1) / counts[last.epoch]: last.lr}


def mean_curve(points: list[dict[float, float]], scale: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and the half-width of its 95 % CI over the runs at each x any run has (0 where one run has it);
    values that are not finite are left out."""
    xs = sorted({x for p in points for x, v in p.items() if finite(v)})
    mean, err = [], []
    for x in xs:
        values = [p[x] * scale for p in points if x in p and finite(p[x])]
        mean.append(statistics.mean(values))
        err.append(ci_half_width(statistics.stdev(values), len(values)) if len(values) > 1 else 0.0)
    return np.array(xs, dtype=float), np.array(mean), np.array(err)


def _epoch_points(runs: Sequence[Run], column: str) -> list[dict[float, float]]:
    """A metrics.jsonl figure of each run against the epoch (runs without it left out, values that are not
    finite too)."""
    points = [{r.epoch: float(v) for r in run.history if finite(v := getattr(r, column, None))} for run in runs]
    return [p for p in points if p]


def _epoch_series(label: str, runs: Sequence[Run], column: str, color: str, panel: str = "") -> Series:
    """A fraction of metrics.jsonl (accuracy, gap) in percent against the epoch."""
    points = _epoch_points(runs, column)
    return Series(label, *mean_curve(points, 100.0), len(points), color, panel=panel)


def _dotted(series: Iterable[Series]) -> list[Series]:
    """Runs at chance, one series each, as dotted lines drawn apart (one legend entry for all of a group's)."""
    return [s._replace(linestyle=":", apart=True) for s in series if s.n]


def _apart(label: str, runs: Sequence[Run], column: str, color: str, panel: str = "") -> list[Series]:
    """Each run at chance as its own dotted line."""
    return _dotted(_epoch_series(f"{label} (run at chance)", [run], column, color, panel) for run in runs)


def gap_column(groups: Sequence[Group]) -> str:
    """ "eval_gap" (the gap from an end-of-epoch evaluation on a fixed training subset) where every completed run
    with epochs has it, else "gap" (training accuracy averaged over the epoch)."""
    runs = [r for g in groups for r in g.included if r.history]
    if runs and all(any(finite(getattr(row, "eval_gap", None)) for row in r.history) for r in runs):
        return "eval_gap"
    return "gap"


def learned(group: Group) -> tuple[list[Run], list[Run]]:
    """A group's completed runs that left chance (its mean and band) and those that did not (drawn apart); all of
    them as its mean when every one sat at chance."""
    return _split_at_chance(group.included)


def _split_at_chance(runs: Sequence[Run]) -> tuple[list[Run], list[Run]]:
    """(the runs that left chance, those that did not); (all of them, none) where none left it."""
    kept = [r for r in runs if not r.at_chance]
    return (kept, [r for r in runs if r.at_chance]) if kept else (list(runs), [])


def plot_data(groups: Sequence[Group]) -> dict[str, list[Series]]:
    """The series behind every figure: one per group with completed runs (one per group and split in
    train_test_acc, for the splits any run has), in the colour of the group's place in the table; a group's runs
    at chance each drawn apart, dotted, outside its mean."""
    data: dict[str, list[Series]] = {name: [] for name in PLOTS}
    fields = {f.name for f in epoch_metrics()}
    splits = [s for s in SPLITS if f"{s}_acc" in fields]
    by_split: dict[str, list[Series]] = {s: [] for s in splits}
    gap = gap_column(groups)
    for i, g in enumerate(groups):
        runs, color = g.included, f"C{i % 10}"
        if not runs:
            continue
        kept, apart = learned(g)
        data["lr"].append(Series(g.label, *mean_curve([_lr_points(r) for r in runs]), len(runs), color))
        data["test_acc"].append(_epoch_series(g.label, kept, "test_acc", color))
        data["test_acc"] += _apart(g.label, apart, "test_acc", color)
        ensemble = _epoch_series(f"{g.label} (snapshot ensemble)", kept, "ensemble_test_acc", color)
        if ensemble.n:  # dashed, from the first snapshot on
            data["test_acc"].append(ensemble._replace(linestyle="--"))
        for split in splits:
            series = _epoch_series(g.label, kept, f"{split}_acc", color, split)
            if series.n:
                by_split[split].append(series)
                by_split[split] += _apart(g.label, apart, f"{split}_acc", color, split)
        data["gap"].append(_epoch_series(g.label, kept, gap, color))
        data["gap"] += _apart(g.label, apart, gap, color)
        final = Stat([v for r in kept if (v := r.summary.get(f"final_{gap}")) is not None])
        if final.mean is not None:
            err = 0.0 if final.std is None else ci_half_width(final.std, final.n) * 100
            data["final_gap"].append(
                Series(g.label, np.array([i]), np.array([final.mean * 100]), np.array([err]), final.n, color)
            )
    data["train_test_acc"] = [s for split in splits for s in by_split[split]]
    return data


def band_text(series: Sequence[Series]) -> str:
    """What the bands or error bars are: '95 % CI over n seeds' only where n > 1; the runs drawn apart."""
    ns = sorted({s.n for s in series if s.n and not s.apart})
    apart = sum(s.apart for s in series if s.panel == (series[0].panel if series else ""))
    tail = f"\ndotted: {apart} run(s) at chance, outside the means" if apart else ""  # a line of its own
    if not ns:
        return "no runs" + tail
    if ns == [1]:
        return "n = 1" + tail
    if len(ns) == 1:
        return f"mean and {CONFIDENCE:.0%} CI over {ns[0]} seeds".replace("%", " %") + tail
    if ns[0] == 1:
        text = f"mean over {ns[0]}–{ns[-1]} seeds per group, {CONFIDENCE:.0%} CI where n ≥ 2".replace("%", " %")
        return text + tail
    return f"mean and {CONFIDENCE:.0%} CI over {ns[0]}–{ns[-1]} seeds per group".replace("%", " %") + tail


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
    if len({x for s in series if not s.apart for x in s.x}) < 3 or (limits := _later_range(series, 2)) is None:
        return
    ax.set_ylim(*limits)
    ax.set_xlabel("epoch (epoch 1 outside the y-range)")


def _later_range(series: Sequence[Series], start: float) -> tuple[float, float] | None:
    """The y-range, padded, of the points from x = `start` on, their bands included, where a point before `start`
    lies outside it (None where none does, or there is nothing from `start` on); runs drawn apart are left out."""
    series = [s for s in series if not s.apart]
    later = [(s.y[s.x >= start] - s.err[s.x >= start], s.y[s.x >= start] + s.err[s.x >= start]) for s in series]
    later = [(lo, hi) for lo, hi in later if len(lo)]
    if not later:
        return None
    earlier = np.concatenate([s.y[s.x < start] for s in series])
    low, high = min(float(np.min(lo)) for lo, _ in later), max(float(np.max(hi)) for _, hi in later)
    if np.all((earlier >= low) & (earlier <= high)):
        return None
    pad = max(0.1 * (high - low), 0.5)
    return low - pad, high + pad


def _draw_bars(series: Sequence[Series], labels_of: dict) -> Figure:
    """Horizontal bars with their 95 % CI, one per group, top to bottom in the table's order: the labels sit
    on lines of their own, so they never overprint however many groups there are."""
    xlabel, _, title = labels_of["final_gap"]
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


def draw(name: str, series: Sequence[Series], legend_title: str | None = None, eval_gap: bool = False) -> Figure:
    """The figure of one plot: a line and a 95 % CI band per series (a panel per split for train_test_acc; the
    band cut to what the figure can be; runs at chance dotted, without band), or horizontal bars with CI error
    bars for final_gap. eval_gap: the gap figures are of the end-of-epoch gap."""
    labels_of = {**PLOTS, **EVAL_GAP_PLOTS} if eval_gap else PLOTS
    if name == "final_gap":
        return _draw_bars(series, labels_of)
    xlabel, ylabel, title = labels_of[name]
    panels = list(dict.fromkeys(s.panel for s in series)) or [""]
    width = 6.4 if len(panels) == 1 else min(4.2 * len(panels), 13.0)
    fig = Figure(figsize=(width, 4.2), layout="constrained")
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    steps = "post" if name == "lr" else None  # an LR holds from its step to the next one
    low_bound, high_bound = RANGES.get(name, (-math.inf, math.inf))
    for ax, panel in zip(axes, panels, strict=True):
        for s in (s for s in series if s.panel == panel):
            style = {"linewidth": 1.0, "alpha": 0.8} if s.apart else {"marker": "o" if len(s.x) <= 12 else None}
            ax.plot(
                s.x,
                s.y,
                color=s.color,
                linestyle=s.linestyle,
                label=s.label,
                drawstyle=f"steps-{steps}" if steps else "default",
                **style,
            )
            if np.any(s.err > 0):
                low, high = np.maximum(s.y - s.err, low_bound), np.minimum(s.y + s.err, high_bound)
                ax.fill_between(s.x, low, high, color=s.color, alpha=0.2, linewidth=0, step=steps)
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
    if name in ACCURACY_PLOTS:  # a wide interval must not stretch the axis past 0-100 %
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


# ------------------------------------------------------------------------------------------- the anytime figure

ANYTIME_NAMES = {
    "val_acc": "validation accuracy",
    "test_acc": "test accuracy",
    "val_loss": "validation loss",
    "test_loss": "test loss",
}
SHADE_SPREAD = 0.4  # a family's branches run from 40 % darker than its parent's colour to 40 % lighter


def shade(color: str, k: int, count: int) -> str:
    """The k-th of `count` shades of a colour, darker to lighter: the branches of a family in their parent's hue."""
    if count < 2:
        return to_hex(color)
    f = -SHADE_SPREAD + 2 * SHADE_SPREAD * k / (count - 1)
    rgb = np.array(to_rgb(color))
    return to_hex(rgb * (1 + f) if f < 0 else rgb + (1 - rgb) * f)


def _span_series(
    label: str, runs: Sequence[Run], metric: Metric, color: str, role: str, since: int = 0, until: float = math.inf
) -> Series:
    """A metrics.jsonl figure's mean over the runs (in the metric's scale) from epoch `since` to `until`."""
    points = [{e: v for e, v in p.items() if since <= e <= until} for p in _epoch_points(runs, metric.name)]
    points = [p for p in points if p]
    return Series(label, *mean_curve(points, metric.scale), len(points), color, role=role)


def _learned_runs(runs: Sequence[Run]) -> list[Run]:
    """The runs that left chance (all of them where none did), as a group's mean and band take them."""
    return _split_at_chance(runs)[0]


def _at_chance(label: str, runs: Sequence[Run], metric: Metric, color: str, since: int = 0) -> list[Series]:
    """Each run at chance, where some of its group's runs left it (else the mean is theirs), as its own dotted line
    outside their mean, as the other figures draw them."""
    apart = _split_at_chance(runs)[1]
    return _dotted(_span_series(f"{label} (run at chance)", [r], metric, color, "apart", since=since) for r in apart)


def _family_series(family: Family, metric: Metric, color: str, shown) -> list[Series]:
    """A family's parent (from its runs; where they are gone, from the epochs its branches share with it) and each
    of its branches from its branch epoch on, continuing from the parent's point there, in shades of its colour;
    the runs at chance of each dotted."""
    label = family.label(shown)
    parents = _learned_runs(family.parent_runs())
    out = [_span_series(f"{label} (parent)", parents, metric, color, "parent")] if parents else []
    out += _at_chance(f"{label} (parent)", family.parent_runs(), metric, color)
    with_runs = [b for b in family.branches if b.runs]
    if not parents and with_runs:  # a branch's first rows are its parent's epochs
        last = max(with_runs, key=lambda b: b.epoch)
        shared = _learned_runs(last.runs)
        out.append(
            _span_series(f"{label} (parent, from its branches)", shared, metric, color, "parent", until=last.epoch)
        )
    for k, b in enumerate(family.branches):
        tint = shade(color, k, len(family.branches))
        out.append(_span_series(b.group.label, _learned_runs(b.runs), metric, tint, "branch", since=b.epoch))
        out += _at_chance(b.group.label, b.runs, metric, tint, since=b.epoch)
    return out


def anytime_data(groups: Sequence[Group], families: Sequence[Family], metric: Metric, shown=str) -> list[Series]:
    """The series of the anytime figure against the epoch, `metric` (a metrics.jsonl figure): each family's parent
    in its group's colour and its branches; then every group that is neither a parent nor a branch (a schedule
    trained for each length), to be read at its final epoch. `shown` writes a parent folder that is not among the
    runs."""
    index = {id(g): i for i, g in enumerate(groups)}
    out = []
    for f in families:
        out += _family_series(f, metric, f"C{index[id(f.parent or f.branches[0].group)] % 10}", shown)
    in_family = family_groups(families)
    for g in groups:
        if id(g) not in in_family and g.included:
            out.append(_span_series(g.label, learned(g)[0], metric, f"C{index[id(g)] % 10}", "alone"))
            out += _at_chance(g.label, g.included, metric, f"C{index[id(g)] % 10}")
    return [s for s in out if s.n]


def _draw_anytime_series(ax, s: Series, low: float, high: float) -> None:
    """A parent: a thick line and its band; a branch: a line and its band, its end marked (●) with its CI; any other
    group: a faint line, its final epoch marked (■) with its CI; a run at chance: a thin dotted line."""
    end = slice(len(s.x) - 1, None)
    if s.apart:
        ax.plot(s.x, s.y, color=s.color, linewidth=1.0, alpha=0.8, linestyle=":", label=s.label)
        return
    if s.role == "alone":
        ax.plot(s.x, s.y, color=s.color, linewidth=1.0, alpha=0.35, label=f"_{s.label}")
        ax.plot(s.x[end], s.y[end], color=s.color, marker="s", linestyle="none", label=s.label)
    else:
        marked = {"marker": "o", "markevery": [len(s.x) - 1]} if s.role == "branch" else {}
        # a parent above its branches: each branch leaves it at its branch epoch, where the two are one point
        width, order = (2.2, 2.5) if s.role == "parent" else (1.5, 2.0)
        ax.plot(s.x, s.y, color=s.color, linewidth=width, label=s.label, zorder=order, **marked)
        if np.any(s.err > 0):
            ax.fill_between(
                s.x, np.maximum(s.y - s.err, low), np.minimum(s.y + s.err, high), color=s.color, alpha=0.15, linewidth=0
            )
    if s.role != "parent" and s.err[-1] > 0:
        ax.errorbar(s.x[end], s.y[end], yerr=s.err[end], fmt="none", ecolor=s.color, capsize=3)


def _anytime_range(ax, series: Sequence[Series]) -> None:
    """The y-range of the epochs from the first branch point on, where the branches and the runs trained for each
    length are read, when earlier epochs lie outside it: the first epochs' climb would squash the differences at
    the ends, which are a point or two."""
    starts = [float(s.x[0]) for s in series if s.role == "branch" and len(s.x)]
    if not starts or (limits := _later_range(series, start := min(starts))) is None:
        return
    bottom, top = ax.get_ylim()
    ax.set_ylim(max(bottom, limits[0]), min(top, limits[1]))
    ax.set_xlabel(f"{ax.get_xlabel()}\nepochs before {start:g} partly outside the y-range")


def draw_anytime(series: Sequence[Series], metric: Metric, legend_title: str | None = None) -> Figure:
    """The anytime figure: one epoch axis with each parent, its branches from their branch epochs on and their
    ends, and every other group's final epoch, so that a cooldown of each length reads beside a run trained for
    it; the title names the figure shown (validation or test)."""
    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.subplots()
    low, high = (b * metric.scale for b in bounds(metric))
    for s in series:
        _draw_anytime_series(ax, s, low, high)
    name = ANYTIME_NAMES.get(metric.name, metric.title.replace(" (%)", ""))
    ax.set(xlabel="epoch (●: a branch's end; ■: the final epoch of a run that is no branch)", ylabel=metric.title)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    if math.isfinite(high):  # a wide interval must not stretch the axis past what the figure can be
        bottom, top = ax.get_ylim()
        ax.set_ylim(max(bottom, low), min(top, high))
    _anytime_range(ax, series)
    ax.set_title(f"Anytime {name}: branches and their parents\n{band_text(series)}" if series else f"Anytime {name}")
    fig.set_figheight(4.2 + _legend(fig, [ax], legend_title, 1))
    return fig


def save_figure(fig: Figure, out: Path, name: str) -> dict[str, Path]:
    """name.png (150 dpi), name.pdf and name.svg in out."""
    files = {}
    for fmt in FIGURE_FORMATS:
        files[f"{name}.{fmt}"] = out / f"{name}.{fmt}"
        fig.savefig(files[f"{name}.{fmt}"], dpi=150 if fmt == "png" else "figure")
    return files
