"""write_report: collect the runs, group them, compare the groups and write every table, figure and the page."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from matplotlib.figure import Figure

from experiments.report.branches import Family, anytime_metric, branch_families, branch_record
from experiments.report.columns import default_metrics, resolve_metrics
from experiments.report.compare import Comparison, check_mode, compare_groups, compared_metric, find_group
from experiments.report.dashboard import Live, write_dashboard
from experiments.report.groups import Group, aggregate, check_sort, varying_keys
from experiments.report.plots import Series, anytime_data, draw, draw_anytime, gap_column, plot_data, save_figure
from experiments.report.runs import Run, collect, is_results_csv
from experiments.report.tables import (
    branches_markdown,
    display_path,
    latex_table,
    markdown_report,
    write_branches_csv,
    write_groups_csv,
    write_pairs_csv,
    write_results_csv,
)
from experiments.report.targets import Target, parse_targets
from trainer.records import Metric


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
    from_results: bool = False  # computed from results.csv files, without the run folders
    families: list[Family] = field(default_factory=list)  # the branched runs: each parent group and its branches
    branch_metric: Metric | None = None  # the figure of the anytime plot and branches.csv (where there are branches)

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


def one_line(e: Exception) -> str:
    if isinstance(e, OSError) and e.strerror:  # raised by the system: "[Errno 28] ..." without the number
        text = f"{e.filename}: {e.strerror}" if e.filename else e.strerror
    else:
        text = str(e)
    return " ".join(text.split())


def check_options(
    metrics: Sequence[str] | None = None,
    sort: str | None = None,
    compare: str | None = None,
    baseline: str | None = None,
    targets: Sequence[str] = (),
    comparisons: str | None = None,
    num_classes: int | None = None,
    **_,
) -> None:
    """Every option that can be checked without the runs, in one line each (a ValueError), before any work."""
    if metrics:
        resolve_metrics(metrics)
    parse_targets(targets)
    if compare:
        resolve_metrics([compare])
    check_sort(sort)
    check_mode(comparisons, baseline)
    if num_classes is not None and num_classes < 2:
        raise ValueError(f"--num-classes {num_classes}: a classifier has 2 classes or more")


def _sources(folders: list[Path], live: Live | None) -> bool:
    """Whether the inputs are results.csv files (then all of them must be), checked before any work."""
    tables = [f for f in folders if is_results_csv(f)]
    if tables and len(tables) != len(folders):
        raise ValueError("a results.csv is computed again on its own: give results.csv files or run folders, not both")
    if tables and live is not None:
        raise ValueError("--watch and --serve follow run folders as their jobs write them, not a results.csv")
    return bool(tables)


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
    comparisons: str | None = None,
    num_classes: int | None = None,
) -> Report:
    """Collect, aggregate, compare and write every table and figure to out_dir (default: <first folder>/report).
    metrics: the columns (default: DEFAULT_METRICS, those the runs have); compare: the metric the groups are
    tested on (default: the first column with a better direction); baseline: the label of the reference group
    (default: the best on the compared metric's validation figure); comparisons: the family of tests (all-pairs,
    baseline, best; default all-pairs, or baseline with a baseline); targets: 'FIGURE=VALUE' strings for
    time-to-target columns; num_classes: for runs that do not say (chance is 1 / num_classes); live: while the
    sweep runs (--watch), the tables and a page that reloads itself, without the figures. Folders may instead be
    results.csv files an earlier report wrote: the tables alone are computed again from them."""
    folders = [Path(f) for f in folders]
    check_options(metrics, sort, compare, baseline, targets, comparisons, num_classes)
    from_results = _sources(folders, live)
    chosen = resolve_metrics(metrics) if metrics else None
    parsed_targets = parse_targets(targets)
    notes: list[str] = []
    runs = _runs(folders, num_classes, from_results, parsed_targets, notes)
    chosen = chosen or default_metrics(runs)
    groups = aggregate(runs, sort, group_by)
    metric = compared_metric(chosen, compare, baseline)
    if baseline is not None:
        find_group(groups, baseline)  # before anything is written
    out = Path(out_dir) if out_dir else (folders[0].parent if from_results else folders[0]) / "report"
    output_folder(out)
    comparison = None if metric is None else compare_groups(groups, metric, baseline, comparisons)
    # a results.csv row carries its branch's record where the file has the columns (runs.BRANCH_RECORD_COLUMNS);
    # without them a branch's own seconds are unknown: no Branches section then
    has_records = not from_results or any(branch_record(r) is not None for r in runs)
    families = branch_families(runs, groups) if has_records else []
    report = Report(
        runs,
        groups,
        _columns(chosen, metric, comparison),
        markdown="",
        latex="",
        plots={} if live or from_results else plot_data(groups),  # reads steps.csv: its damage goes into the notes
        figures={},
        files={},
        comparison=comparison,
        targets=parsed_targets,
        folders=folders,
        notes=notes,
        from_results=from_results,
        families=families,
        branch_metric=anytime_metric(groups, comparison) if families else None,
    )
    _write_tables(report, out, explicit=bool(metrics))
    _draw_figures(report, out)
    if not from_results:
        report.files["index.html"] = write_dashboard(report, out, live)
    return report


def _runs(
    folders: list[Path], num_classes: int | None, from_results: bool, targets: list[Target], notes: list[str]
) -> list[Run]:
    """The runs under the folders (or in the results.csv files), each with its number of classes."""
    runs = collect(folders, notes)
    if not runs:
        raise NoRunsError(f"no training runs under {', '.join(map(str, folders))}")
    for run in runs:
        if run.num_classes is None and num_classes is not None:
            run.num_classes = num_classes
    if from_results:
        for t in targets:
            if any(r.included and t.spec not in r.recorded.get("reached", {}) for r in runs):
                raise ValueError(
                    f"--target {t.spec}: the results.csv has no to_{t.spec}_epoch column (time to a new target needs "
                    "the runs' metrics.jsonl: give the run folders)"
                )
    return runs


def _columns(chosen: list[Metric], metric: Metric | None, comparison: Comparison | None) -> list[Metric]:
    """The table's columns: the chosen ones, then the compared metric (the marks need its column) and the
    figure that chose the best, beside the one it is compared on, where they are not among them."""
    on = comparison.selected_on if comparison is not None and not comparison.baseline else None
    columns = list(chosen)
    for extra in (metric, on):
        if extra is not None and extra.name not in {m.name for m in columns}:
            columns.append(extra)
    return columns


def _write_tables(report: Report, out: Path, explicit: bool) -> None:
    """table.md, table.tex, results.csv (not from a results.csv), groups.csv, pairs.csv and branches.csv."""
    r, files = report, report.files
    sources = ", ".join(f"`{display_path(f, out)}`" for f in r.folders)
    branches = branches_markdown(r.families, r.branch_metric, out)
    r.markdown = markdown_report(
        r.runs, r.groups, r.metrics, sources, r.notes, r.comparison, r.targets, out, r.from_results, branches
    )
    r.latex = latex_table(r.groups, r.metrics, r.comparison, r.targets, explicit=explicit)
    names = ("table.md", "table.tex", "results.csv", "groups.csv")
    files.update({name: out / name for name in names if not (r.from_results and name == "results.csv")})
    files["table.md"].write_text(r.markdown)
    files["table.tex"].write_text(r.latex)
    if not r.from_results:
        write_results_csv(files["results.csv"], r.runs, r.groups, r.targets)
    write_groups_csv(files["groups.csv"], r.groups, r.comparison, r.targets)
    if r.comparison is not None:
        files["pairs.csv"] = out / "pairs.csv"
        write_pairs_csv(files["pairs.csv"], r.comparison)
    if r.families:
        files["branches.csv"] = out / "branches.csv"
        write_branches_csv(files["branches.csv"], r.families, r.branch_metric)


def _draw_figures(report: Report, out: Path) -> None:
    """One figure per plotted series (lr, losses, accuracies, the gap) and the anytime figure where the runs
    include branches, each saved as PNG, PDF and SVG (save_figure)."""
    r = report
    varying = varying_keys(r.groups)
    legend_title = varying[0] if len(varying) == 1 else None
    eval_gap = gap_column(r.groups) == "eval_gap"
    r.figures.update({name: draw(name, series, legend_title, eval_gap) for name, series in r.plots.items()})
    if r.plots and r.families:  # beside the other figures, where the runs include branches
        r.plots["anytime"] = anytime_data(r.groups, r.families, r.branch_metric, lambda path: display_path(path, out))
        r.figures["anytime"] = draw_anytime(r.plots["anytime"], r.branch_metric)
    for name, fig in r.figures.items():
        r.files.update(save_figure(fig, out, name))
