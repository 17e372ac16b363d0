"""The figures a report can show: summary.json's METRICS as the report shows them, the default columns, the
validation figure that chooses for each test figure, and the range each figure can take."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable

from trainer.records import METRICS, Metric

# the columns without --metrics, the first with a better direction the one the groups are compared on; a figure
# that METRICS lacks (a trainer without it) or that no completed run has (no validation split) is left out;
# eval_gap (measured on a fixed training subset at the epoch's end) stands in for gap where the runs have it
DEFAULT_METRICS = (
    "test_acc",
    "ensemble_test_acc",
    "ema_test_acc",
    "swa_test_acc",
    "best_epoch_test_acc",
    "best_test_acc",
    "val_acc",
    "train_acc",
    "train_loss",
    "eval_gap",
    "gap",
    "wall_time",
)
# timings measure the machine's load as much as the schedule: never the "best" of a column in the report
MACHINE_LOAD = ("wall_time", "epoch_time", "train_time", "eval_time")
REPORT_METRICS: dict[str, Metric] = {
    name: dataclasses.replace(m, better=None) if name in MACHINE_LOAD else m for name, m in METRICS.items()
}
# the validation figure that chooses among the arms when the groups are compared on a test figure: the arm with
# the best validation mean is the reference, and its test figure is reported as it is
SELECTED_ON = {
    "test_acc": "val_acc",
    "test_loss": "val_loss",
    "best_epoch_test_acc": "best_val_acc",
    "ensemble_test_acc": "ensemble_val_acc",
    "ema_test_acc": "ema_val_acc",
    "swa_test_acc": "swa_val_acc",
}
GAPS = ("eval_gap", "gap")  # the two generalization gaps, the honest one first


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


def selection_metric(metric: Metric) -> Metric | None:
    """The validation twin that chooses for a test figure (val_acc for test_acc), or None (the figure is not
    a test figure, or the records have no twin)."""
    twin = SELECTED_ON.get(metric.name)
    return REPORT_METRICS.get(twin) if twin else None


def is_accuracy(metric: Metric) -> bool:
    return metric.scale == 100 and metric.name not in GAPS


def bounds(metric: Metric) -> tuple[float, float]:
    """What a figure can be: accuracies in [0, 1], gaps (a difference of two accuracies) in [-1, 1], losses,
    times and epochs at least 0."""
    if metric.name in GAPS:
        return -1.0, 1.0
    if is_accuracy(metric):
        return 0.0, 1.0
    return 0.0, math.inf


def clip(interval: tuple[float, float] | None, metric: Metric) -> tuple[float, float] | None:
    """An interval cut to what the figure can be."""
    if interval is None:
        return None
    low, high = bounds(metric)
    return max(interval[0], low), min(interval[1], high)


def default_metrics(runs) -> list[Metric]:
    """DEFAULT_METRICS that METRICS has and some completed run reports (no validation columns without a
    validation split); the end-of-epoch gap instead of the averaged one where the runs have it."""
    chosen = [REPORT_METRICS[name] for name in DEFAULT_METRICS if name in REPORT_METRICS]
    reported = [m for m in chosen if any(r.value(m) is not None for r in runs if r.included)]
    if any(m.name == "eval_gap" for m in reported):
        reported = [m for m in reported if m.name != "gap"]
    return reported or chosen
