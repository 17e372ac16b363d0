"""Time to target (--target FIGURE=VALUE, as AlgoPerf measures it): the first epoch at which a run's figure
reached a value, and the training time to the end of that epoch. Training time is the epochs' train_time (the
training steps alone) where the run records it, else their epoch_time (evaluation included)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from experiments.report.groups import Group
from experiments.report.runs import Run
from experiments.report.statistics import Stat, finite
from trainer.records import EpochRow, epoch_metrics


class Target(NamedTuple):
    """--target NAME=VALUE: the first epoch at which a run's figure reached VALUE (>= for a figure better
    high, <= for one better low), and the training time to it."""

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
        """(epoch, seconds of training up to the end of that epoch) of the first epoch at the target, or None.
        The seconds are the epochs' train_time summed where every epoch has one, else their epoch_time; NaN
        where a time is not finite."""
        basis = time_basis(history)
        elapsed = 0.0
        for row in history:
            seconds = getattr(row, basis, None)
            elapsed += float(seconds) if finite(seconds) else math.nan
            value = getattr(row, self.name, None)
            if value is None or not finite(value):
                continue
            if (value >= self.value) if self.better == "max" else (value <= self.value):
                return row.epoch, elapsed
        return None


def time_basis(history: Sequence[EpochRow]) -> str:
    """ "train_time" when every epoch records its training time apart from its evaluation, else "epoch_time"."""
    if history and all(getattr(r, "train_time", None) is not None for r in history):
        return "train_time"
    return "epoch_time"


def run_reached(run: Run, target: Target) -> tuple[int, float] | None:
    """Where the run reached the target: from its epochs, or as its results.csv row recorded it."""
    if run.history or run.recorded is None:
        return target.reached(run.history)
    return run.recorded.get("reached", {}).get(target.spec)


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
    reached = [x for r in group.included if (x := run_reached(r, target)) is not None]
    return TargetStat(Stat([float(e) for e, _ in reached]), Stat([t for _, t in reached]), len(group.included))


def time_bases(runs: Sequence[Run]) -> set[str]:
    """The time bases of the completed runs with epochs: {"train_time"}, {"epoch_time"} or both."""
    return {time_basis(r.history) for r in runs if r.included and r.history}
