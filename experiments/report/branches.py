"""Branched runs (branch.parent, branch.epoch: cooldowns started from a run's kept checkpoints, as WSD does): the
families they form, a parent group and the branch groups started from its runs, what each family cost with the
epochs its branches share with their parent counted once, and the figure the anytime plot and branches.csv show.

A branch's summary.json names its parent folder (absolute) and what it shares with it: its first `epoch` epochs
(the first rows of its metrics.jsonl are the parent's), their steps and seconds. Its wall_time_s counts those
seconds, so the branch's own cost is wall_time_s - shared_wall_time_s, over the epochs after the branch point."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from experiments.report.columns import REPORT_METRICS
from experiments.report.compare import Comparison
from experiments.report.groups import Group, common_overrides
from experiments.report.runs import NONFINITE_STRINGS, Run, read_run
from experiments.report.statistics import Stat
from trainer.records import Metric, RunFolder, epoch_metrics


def _int(value) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return int(value) if isinstance(value, str) and value.strip().isdigit() else None


def _seconds(value) -> float | None:
    """A time of summary.json as a number ("nan", "inf" as themselves); None where it is missing or not one."""
    if isinstance(value, str) and value in NONFINITE_STRINGS:
        return float(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def branch_record(run: Run) -> dict | None:
    """summary.json's `branch` of a run, where it names a parent folder and an epoch; None otherwise."""
    record = run.summary.branch if run.summary is not None else None
    if not isinstance(record, dict) or not isinstance(record.get("parent"), str) or _int(record.get("epoch")) is None:
        return None
    return record


def parent_folder(run: Run) -> Path | None:
    """The folder a branch started from: its summary's record (absolute), else its branch.parent override."""
    record = branch_record(run)
    parent = record["parent"] if record else run.params.get("branch.parent")
    return Path(parent).resolve() if parent else None


def branch_epoch(run: Run) -> int | None:
    """The parent's epoch a branch started from, or None for a run that is not a branch."""
    if parent_folder(run) is None:
        return None
    record = branch_record(run)
    return _int(record["epoch"]) if record else _int(run.params.get("branch.epoch"))


def own_epochs(run: Run) -> int | None:
    """The epochs a branch trained after its branch point (trainer.epochs - branch.epoch, fewer where it stopped
    early)."""
    epoch = branch_epoch(run)
    return None if epoch is None or run.summary is None else run.summary.epochs_completed - epoch


def own_wall_time(run: Run) -> float | None:
    """A branch's seconds of its own: its wall time less the seconds it shares with its parent (NaN where either
    is not finite); None where its summary does not say."""
    record = branch_record(run)
    if record is None:
        return None
    total, shared = _seconds(run.summary.get("wall_time_s")), _seconds(record.get("shared_wall_time_s"))
    return None if total is None or shared is None else total - shared


@dataclass
class BranchGroup:
    """A group of branches: the same schedule started from the same epoch of each seed's parent."""

    group: Group
    epoch: int  # branch.epoch: the parent's epoch it starts from
    end: int | None  # trainer.epochs: its last epoch (None: no run says)

    @property
    def runs(self) -> list[Run]:
        """Its completed runs that say where they branched from: the ones in its figures and costs."""
        return [r for r in self.group.included if parent_folder(r) is not None]

    @property
    def own_epochs(self) -> Stat:
        return Stat([v for r in self.runs if (v := own_epochs(r)) is not None])

    @property
    def own_wall_time(self) -> Stat:
        return Stat([v for r in self.runs if (v := own_wall_time(r)) is not None])

    @property
    def wall_time(self) -> Stat:
        """Its runs' whole wall time, the shared epochs in it: the time of training it from scratch."""
        return Stat([v for r in self.runs if (v := _seconds(r.summary.get("wall_time_s"))) is not None])


@dataclass
class Cost:
    """What a family cost, per seed (one parent run and the branches started from it) and then over the seeds."""

    epochs: Stat
    wall_time: Stat
    parent_counted: bool  # False: some parent's cost is unknown, and only the branches are counted
    separate_epochs: int | None  # the branches trained from scratch, each to its length
    separate_wall_time: float | None  # estimated by each branch's wall time, its shared epochs included


@dataclass
class Family:
    """A parent group and the branch groups started from its runs."""

    branches: list[BranchGroup]
    parent: Group | None = None  # the collected group holding the parents; None: they are not among the runs
    parents: dict[Path, Run | None] = field(default_factory=dict)  # by folder; None: gone or unreadable

    @property
    def missing(self) -> list[Path]:
        """The parent folders whose cost is unknown: gone, not a run, or without a readable summary.json."""
        return [p for p, run in self.parents.items() if run is None or run.summary is None]

    def label(self, shown: Callable[[Path], str] = str) -> str:
        """The parent group's label; where it was not collected, its folders (`shown`: how a path is written),
        after the overrides its runs share where they can still be read."""
        if self.parent is not None:
            return self.parent.label
        folders = list(self.parents)
        if not folders:
            return "unknown parent"
        where = shown(folders[0]) + (f" and {len(folders) - 1} more" if len(folders) > 1 else "")
        settings = ", ".join(common_overrides([r for r in self.parents.values() if r is not None]))
        return f"{settings} ({where})" if settings else where

    def parent_runs(self) -> list[Run]:
        """The parent's completed runs with epochs: of its group, or read from the folders the branches name."""
        runs = self.parent.included if self.parent is not None else [r for r in self.parents.values() if r]
        return [r for r in runs if r.included and r.history]

    def cost(self) -> Cost:
        """Per parent run: its epochs and wall time, plus each branch's own, over the parent runs whose branches all
        completed; only the branches where some parent's cost is unknown. Beside it, the branches trained on their
        own from scratch."""
        members: dict[Path, list[list[Run]]] = {p: [[] for _ in self.branches] for p in self.parents}
        for i, b in enumerate(self.branches):
            for r in b.runs:
                members.setdefault(parent_folder(r), [[] for _ in self.branches])[i].append(r)
        complete = {p: runs for p, runs in members.items() if all(runs)}
        counted = not any(p in self.missing for p in (complete or self.parents))
        epochs, seconds = [], []
        for p, runs in complete.items():
            parent = self.parents.get(p)
            own = [r for rs in runs for r in rs]
            counts = [parent.summary.epochs_completed] if counted else []
            counts += [own_epochs(r) for r in own]
            times = [_seconds(parent.summary.get("wall_time_s"))] if counted else []
            times += [own_wall_time(r) for r in own]
            # a part that does not say leaves the seed's total unknown: NaN, counted apart from the mean
            epochs.append(math.nan if None in counts else sum(counts))
            seconds.append(math.nan if None in times else sum(times))
        ends = [b.end for b in self.branches]
        walls = [b.wall_time.mean for b in self.branches]
        return Cost(
            Stat(epochs),
            Stat(seconds),
            counted,
            None if None in ends else sum(ends),
            None if None in walls else sum(walls),
        )


def _read_parent(folder: Path) -> Run | None:
    """The run in a parent folder that is not among the collected runs; None where it is gone or not a run."""
    try:
        return read_run(folder) if RunFolder(folder, create=False).is_run() else None
    except Exception:  # noqa: BLE001 -- a parent that cannot be read only costs the family's parent cost
        return None


def _branch_group(group: Group) -> BranchGroup | None:
    """The group as a group of branches, or None where none of its runs is a branch."""
    epochs = [e for r in group.runs if (e := branch_epoch(r)) is not None]
    if not epochs:
        return None
    ends = [r.summary.epochs for r in group.runs if r.summary is not None and _int(r.summary.epochs) is not None]
    end = ends[0] if ends else _int(group.runs[0].params.get("trainer.epochs"))
    return BranchGroup(group, max(set(epochs), key=epochs.count), end)


def branch_families(runs: Sequence[Run], groups: Sequence[Group]) -> list[Family]:
    """The families of the groups of branches, in the order of the groups: branch groups whose runs name parents of
    one collected group (or the same parent folders) are one family. A parent that is not among the runs is read
    from its folder where it still exists."""
    collected = {r.path.resolve(): r for r in runs}
    group_of = {id(r): g for g in groups for r in g.runs}
    read: dict[Path, Run | None] = {}
    families: list[tuple[set, Family]] = []
    for g in groups:
        b = _branch_group(g)
        if b is None:
            continue
        folders = list(dict.fromkeys(p for r in g.runs if (p := parent_folder(r)) is not None))
        for p in folders:
            if p not in collected and p not in read:
                read[p] = _read_parent(p)
        parents = {p: collected.get(p) or read[p] for p in folders}
        keys = {id(group_of[id(run)]) if p in collected else p for p, run in parents.items()}
        joined = [(k, f) for k, f in families if k & keys]
        families = [(k, f) for k, f in families if not k & keys]
        family = Family([x for _, f in joined for x in f.branches] + [b])
        for _, f in joined:
            family.parents.update(f.parents)
        family.parents.update(parents)
        family.parent = next((group_of[id(collected[p])] for p in family.parents if p in collected), None)
        families.append((keys.union(*(k for k, _ in joined)), family))
    order = {id(g): i for i, g in enumerate(groups)}
    out = [f for _, f in families]
    for f in out:
        f.branches.sort(key=lambda b: (b.epoch, b.end or 0, order[id(b.group)]))
    return sorted(out, key=lambda f: order[id(f.parent or f.branches[0].group)])


def anytime_metric(groups: Sequence[Group], comparison: Comparison | None) -> Metric:
    """The figure the anytime plot and branches.csv show: the one the report chooses the best group on (the
    compared metric's validation twin, val_acc for test_acc, where the runs have one; the compared metric itself
    where they have none), as metrics.jsonl records it every epoch; val_acc, or test_acc without a validation
    split, where that figure has no per-epoch column (best_val_acc) or nothing is compared."""
    columns = {f.name for f in epoch_metrics()}
    if comparison is not None:
        for metric in (comparison.selected_on, comparison.metric):
            if metric is not None and metric.better is not None and metric.name in columns:
                return metric
    with_test = [g for g in groups if g.stats["test_acc"].mean is not None]
    has_val = bool(with_test) and all(g.stats["val_acc"].mean is not None for g in with_test)
    return REPORT_METRICS["val_acc" if has_val else "test_acc"]


def family_groups(families: Sequence[Family]) -> set[int]:
    """The ids of the groups that are a parent or a branch of some family."""
    ids = {id(f.parent) for f in families if f.parent is not None}
    return ids | {id(b.group) for f in families for b in f.branches}
