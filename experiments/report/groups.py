"""Groups: runs that differ only in their seed (or share the --group-by keys), their labels, and the statistics
of every figure over their completed runs."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from experiments.report.columns import is_accuracy
from experiments.report.runs import Run, natural_key, split_override
from experiments.report.statistics import Stat, TTest
from trainer.config import NEUTRAL_KEYS
from trainer.records import METRICS, Metric

if TYPE_CHECKING:
    from experiments.report.compare import Pair

# overrides that do not change a run's numbers: runs differing only in these are repeats of one setting; a branch's
# parent folder is its seed's parent run, so it differs between the seeds of one setting as the seed does
GROUPING_FREE_KEYS = ("seed", "branch.parent", *NEUTRAL_KEYS)
COUNT_COLUMNS = ("n", "diverged", "failed")


@dataclass
class Group:
    key: tuple[tuple[str, str | None], ...]  # the grouping overrides, sorted by key
    label: str  # as the tables and plots show it (float values shortened)
    runs: list[Run]  # every run of the group, the ones left out of the means too
    stats: dict[str, Stat]  # metric name -> the values of the completed runs
    full_label: str = ""  # with every value as given (the CSV files)
    test: TTest | None = None  # against the reference group, on the compared metric; None: not tested
    p_holm: float | None = None  # test.p, Holm-adjusted across the family of tests
    marked: bool = False  # the reference, or not significantly different from it
    untested: str | None = None  # why it has no test against the reference: "n < 2", "no spread"
    pair: Pair | None = field(default=None, repr=False)  # its comparison with the reference

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

    @property
    def at_chance(self) -> list[Run]:
        """Its completed runs that sat at chance (stuck there, or collapsed back to it)."""
        return [r for r in self.included if r.at_chance]

    @property
    def complete(self) -> bool:
        """Every run of the group completed: none diverged, failed, unfinished or never run."""
        return len(self.included) == len(self.runs)


def is_neutral(key: str) -> bool:
    return any(key == k or key.startswith(k + ".") for k in GROUPING_FREE_KEYS)


def _group_key(run: Run, group_by: Sequence[str] | None) -> tuple:
    params = run.params
    if group_by:
        return tuple(sorted((k, params.get(k)) for k in group_by))
    return tuple(sorted((k, v) for k, v in params.items() if not is_neutral(k)))


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
    """ "key=value, ..." of the keys that differ between groups (of every key for a single group), each group
    naming those it sets (a key it leaves at its default is left out, "(defaults)" where it sets none); the bare
    value, or "(default)", when one key differs. short: float values shortened (short_values)."""
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
            present = [k for k in varying or names if values.get(k, "(default)") != "(default)"]
            labels.append(", ".join(f"{k}={values[k]}" for k in present) or ("(defaults)" if varying else "all runs"))
    return labels


def _sort_groups(groups: list[Group], sort: str | None) -> list[Group]:
    if not sort:
        return groups  # the order of the sweep
    column = sort.lstrip("+-")
    descending = sort.startswith("-")
    if column in ("group", "label"):
        return sorted(groups, key=lambda g: natural_key(g.label), reverse=descending)
    if column in COUNT_COLUMNS:
        return sorted(groups, key=lambda g: g.counts[column], reverse=descending)
    if column not in METRICS:
        raise ValueError(f"cannot sort by {column!r}: use group, {', '.join(COUNT_COLUMNS)} or {', '.join(METRICS)}")
    with_mean = [g for g in groups if g.stats[column].mean is not None]
    without = [g for g in groups if g.stats[column].mean is None]  # last, whatever the direction
    return sorted(with_mean, key=lambda g: g.stats[column].mean, reverse=descending) + without


def check_sort(sort: str | None) -> None:
    """A ValueError in one line for a --sort that names no column, before any run is read."""
    _sort_groups([], sort)


def aggregate(runs: Sequence[Run], sort: str | None = None, group_by: Sequence[str] | None = None) -> list[Group]:
    """Runs grouped by their overrides other than the seed (or by the group_by keys), with the mean and std of
    every metric in METRICS over each group's completed runs (figures that are not finite counted apart);
    sort: a column, "-" in front for descending."""
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


def scored_stat(group: Group, metric: Metric) -> tuple[Stat, int] | None:
    """The metric over every completed and every diverged run of the group, a diverged run counting as what its
    model scores (chance: 1 / num_classes; its weights are not finite), and how many diverged runs were
    counted; None for a figure that is not an accuracy, or when a diverged run's chance is unknown."""
    diverged = [r for r in group.runs if r.status == "diverged"]
    if not is_accuracy(metric) or any(r.chance is None for r in diverged):
        return None
    values = [v for r in group.included if (v := r.value(metric)) is not None] + [r.chance for r in diverged]
    return Stat(values), len(diverged)


def common_overrides(runs: Sequence[Run]) -> list[str]:
    """The overrides every run shares, but the neutral ones."""
    if not runs:
        return []
    return [
        o for o in runs[0].overrides if all(o in r.overrides for r in runs) and not is_neutral(split_override(o)[0])
    ]
