r"""The report's tables: table.md (the table, its legend, the pairwise comparisons, the runs left out, the notes),
table.tex (a booktabs tabular that fits a page, its legend as LaTeX comments above it), results.csv (one row per
run), groups.csv (one row per group) and pairs.csv (one row per comparison)."""

from __future__ import annotations

import csv
import math
import os
import re
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

from experiments.report.branches import Family, branch_record
from experiments.report.columns import REPORT_METRICS, SELECTED_ON, clip
from experiments.report.compare import Comparison
from experiments.report.groups import COUNT_COLUMNS, Group, common_overrides, scored_stat, varying_keys
from experiments.report.runs import BRANCH_RECORD_COLUMNS, RESULTS_EXTRA, RUN_FIELDS, Run
from experiments.report.statistics import (
    ALPHA,
    BOOTSTRAP_RESAMPLES,
    BOOTSTRAP_SEED,
    EXACT_MAX,
    POWER,
    Stat,
    bootstrap_mean_ci,
    finite,
)
from experiments.report.targets import Target, target_stat, time_bases
from trainer.records import METRICS, Metric

DASH = "–"
MARK = "†"  # the reference and the groups not significantly different from it
UNTESTED = "‡"  # no test against the reference: n < 2, or no spread
CHANCE = "§"  # in a compact table (table.tex): some of the group's runs sat at chance


class Style(NamedTuple):
    plus_minus: str
    dash: str
    bold: str
    escape: Callable[[str], str]
    mark: str  # after the compared metric's cell of the groups not significantly different from the reference
    less_than: str
    untested: str = f" {UNTESTED}"  # after the compared metric's cell of the groups that could not be tested
    chance: str = f" {CHANCE}"  # after n, in a compact table, for a group with runs at chance


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
    "<": r"$<$",
    ">": r"$>$",
    "≥": r"$\geq$",
    "≤": r"$\leq$",
    "±": r"$\pm$",
    "−": "--",
    "–": "--",
    "—": "---",
    "†": r"$^\dagger$",
    "‡": r"$^\ddagger$",
    "§": r"$^\S$",
    "α": r"$\alpha$",
    "√": r"$\surd$",
    "·": r"$\cdot$",
    "×": r"$\times$",
    "∞": r"$\infty$",
    "≈": r"$\approx$",
    "…": r"\ldots{}",
    "’": "'",
    "“": "``",
    "”": "''",
}


def tex_escape(text: str) -> str:
    return "".join(_TEX_SPECIALS.get(c, c) for c in text)


MARKDOWN = Style(" ± ", DASH, "**{}**", _md_escape, f" {MARK}", "< ")
LATEX = Style(r" $\pm$ ", "--", r"\textbf{{{}}}", tex_escape, r" $^\dagger$", "$<$ ", r" $^\ddagger$", r"$^\S$")


def number(value: float, metric: Metric) -> str:
    return f"{value * metric.scale:.{metric.decimals}f}"


# ------------------------------------------------------------------------------------------------- the cells


def _best_groups(groups: Sequence[Group], metric: Metric, comparison: Comparison | None) -> set[int]:
    """The groups whose cell of `metric` is in bold: the best mean as shown (ties at the shown precision all
    count) when two or more groups have one; for the compared figure, the group chosen as best; for another test
    figure whose validation twin every group has, the groups with the best mean of the twin."""
    if metric.better is None:
        return set()
    if comparison is not None and metric.name == comparison.metric.name:
        chosen = comparison.chosen
        return {id(chosen)} if chosen is not None and len(_with_mean(groups, metric)) > 1 else set()
    on = REPORT_METRICS.get(SELECTED_ON.get(metric.name, ""), metric)
    with_mean = _with_mean(groups, metric)
    if on is not metric and not all(g.stats[on.name].mean is not None for g in with_mean):
        on = metric
    means = [g.stats[on.name].mean for g in with_mean if g.stats[on.name].mean is not None]
    if len(means) < 2:
        return set()
    best = number(max(means) if on.better == "max" else min(means), on)
    return {id(g) for g in with_mean if g.stats[on.name].mean is not None and number(g.stats[on.name].mean, on) == best}


def _with_mean(groups: Sequence[Group], metric: Metric) -> list[Group]:
    return [g for g in groups if g.stats[metric.name].mean is not None]


def stat_cell(stat: Stat, metric: Metric, style: Style, bold: bool = False, mark: str = "") -> str:
    """mean ± std [CI low, CI high] (the interval cut to what the figure can be): the std and the interval a dash
    where n = 1; in bold for the best; the count of values left out for not being finite."""
    if stat.mean is None:
        text = style.dash
    else:
        mean = number(stat.mean, metric)
        if stat.std is None:
            text = f"{mean}{style.plus_minus}{style.dash}"
        else:
            low, high = clip(stat.ci, metric)
            text = f"{mean}{style.plus_minus}{number(stat.std, metric)} [{number(low, metric)}, {number(high, metric)}]"
        text = style.bold.format(text) if bold else text
    if stat.nonfinite:
        text += f" ({stat.nonfinite} non-finite)"
    return text + mark


def compact_cell(stat: Stat, metric: Metric, style: Style, bold: bool = False, mark: str = "") -> str:
    """mean ± the half-width of its 95 % CI (LaTeX: mean^{+above}_{-below} where the interval is cut at what the
    figure can be), for a table that fits a page."""
    if stat.mean is None:
        return style.dash + mark
    mean = number(stat.mean, metric)
    if stat.std is None:
        text = f"{mean}{style.plus_minus}{style.dash}"
    else:
        raw = stat.ci
        low, high = clip(raw, metric)
        if (low, high) == raw:
            text = f"{mean}{style.plus_minus}{number(high - stat.mean, metric)}"
        else:
            above, below = number(high - stat.mean, metric), number(stat.mean - low, metric)
            text = f"${mean}^{{+{above}}}_{{-{below}}}$"
    text = style.bold.format(text) if bold else text
    return text + mark


def p_text(p: float, style: Style) -> str:
    return f"{style.less_than}0.001" if p < 0.001 else f"{p:.3f}"


def p_cell(group: Group, comparison: Comparison, style: Style) -> str:
    """The Holm-adjusted p-value against the reference ("best"/"baseline" for the reference itself, why not
    where untested), with P (paired) or W (Welch) when the family mixes both tests."""
    if group is comparison.reference:
        return "baseline" if comparison.baseline else "best"
    if group.test is None:
        return style.escape(group.untested) if group.untested else style.dash
    kind = f" ({group.test.kind[0].upper()})" if len(comparison.kinds) > 1 else ""
    return p_text(group.p_holm, style) + kind


def p_header(comparison: Comparison, short: bool = False) -> str:
    """The p-value column's header; short (table.tex, whose caption says against what): "p (Holm)"."""
    if short:
        return "p (Holm)"
    against = "baseline" if comparison.baseline else "best"
    return f"p vs {against} (Holm{', all pairs' if comparison.mode == 'all-pairs' else ''})"


def _mark(group: Group, comparison: Comparison | None, metric: Metric, style: Style) -> str:
    if comparison is None or metric.name != comparison.metric.name:
        return ""
    if group.marked:
        return style.mark
    return style.untested if group is not comparison.reference and group.test is None else ""


def scored_title(metric: Metric) -> str:
    return metric.title.replace(" (%)", "") + ", diverged = chance (%)"


def scored_column(groups: Sequence[Group], comparison: Comparison | None) -> bool:
    """Whether the table shows the compared accuracy with every diverged run counted at chance: when some group
    has a diverged run and every diverged run says what chance is."""
    if comparison is None or not any(g.counts["diverged"] for g in groups):
        return False
    return all(scored_stat(g, comparison.metric) is not None for g in groups)


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
        if values.mean is None:
            cells.append(f"{style.dash} {count}")
            continue
        std = style.dash if values.std is None else f"{values.std:.1f}"
        cells.append(f"{values.mean:.1f}{style.plus_minus}{std} {count}")
    return cells


def _target_headers(target: Target) -> list[str]:
    return [f"epoch to {target.shown}", f"time (s) to {target.shown}"]


def at_chance_column(groups: Sequence[Group]) -> bool:
    return any(g.at_chance for g in groups)


def table_rows(
    groups: Sequence[Group],
    metrics: Sequence[Metric],
    style: Style,
    comparison: Comparison | None = None,
    targets: Sequence[Target] = (),
    compact: bool = False,
    scored: bool | None = None,
) -> list[list[str]]:
    """The header row and one row per group, escaped for the style: n (completed / runs), the metrics (the
    p-value column after the compared one, then the compared accuracy with diverged runs at chance where some
    diverged), the targets' epochs and times, the diverged and failed counts (not in a compact table: n says
    them), the runs at chance where there are any. compact: mean ± CI half-width cells (table.tex)."""
    varying = varying_keys(groups)
    first = varying[0] if len(varying) == 1 else "group"
    compared = comparison.metric.name if comparison else None
    scored = scored_column(groups, comparison) if scored is None else scored
    chance = at_chance_column(groups)
    header = [first, "n"]
    for m in metrics:
        header.append(m.title)
        if m.name == compared:
            header.append(p_header(comparison, short=compact))
            if scored:
                header.append(scored_title(m))
    header += [h for t in targets for h in _target_headers(t)]
    header += [] if compact else list(COUNT_COLUMNS[1:])
    header += ["at chance"] if chance and not compact else []
    bold = {m.name: _best_groups(groups, m, comparison) for m in metrics}
    cell = compact_cell if compact else stat_cell
    rows = [[style.escape(c) for c in header]]
    for g in groups:
        counts = g.counts
        n = f"{counts['n']}/{len(g.runs)}" + (style.chance if compact and g.at_chance else "")
        cells = [style.escape(g.label), n]
        for m in metrics:
            cells.append(cell(g.stats[m.name], m, style, id(g) in bold[m.name], _mark(g, comparison, m, style)))
            if m.name == compared:
                cells.append(p_cell(g, comparison, style))
                if scored:
                    cells.append(cell(scored_stat(g, m)[0], m, style))
        cells += [c for t in targets for c in _target_cells(g, t, style)]  # numbers and the style's ±
        cells += [] if compact else [str(counts["diverged"]), str(counts["failed"])]
        cells += [str(len(g.at_chance))] if chance and not compact else []
        rows.append(cells)
    return rows


# ---------------------------------------------------------------------------------------- pairwise comparisons


def _interval(interval: tuple[float, float] | None, scale: float, decimals: int, style: Style) -> str:
    if interval is None:
        return ""
    return f" [{interval[0] * scale:.{decimals}f}, {interval[1] * scale:.{decimals}f}]"


def seeds_text(n: float | None, style: Style) -> str:
    if n is None:
        return style.dash
    return "∞" if math.isinf(n) else str(int(n))


def pair_rows(comparison: Comparison, style: Style) -> list[list[str]]:
    """The pairwise table: every comparison of the family, with its test, the difference and its bootstrap
    interval, the raw and Holm-adjusted p-values (bold where significant), P(A > B) with its interval and the
    seeds per arm that would detect the difference with 80 % power."""
    m = comparison.metric
    unit = " (points)" if m.scale == 100 else ""
    header = ["A", "B", "test", f"A − B{unit} [95 % CI]", "p", "p (Holm)", "P(A > B) [95 % CI]"]
    header.append(f"seeds for {POWER * 100:.0f} % power")
    rows = [[style.escape(h) for h in header]]
    for p in comparison.pairs:
        test = p.test.kind if p.test else (p.untested or style.dash)
        diff = style.dash if p.difference is None else f"{p.difference * m.scale:.{m.decimals}f}"
        diff += _interval(p.difference_ci, m.scale, m.decimals, style)
        raw = style.dash if p.test is None else p_text(p.test.p, style)
        holm = style.dash if p.p_holm is None else p_text(p.p_holm, style)
        holm = style.bold.format(holm) if p.significant else holm
        better = style.dash if p.p_better is None else f"{p.p_better:.2f}" + _interval(p.p_better_ci, 1, 2, style)
        row = [style.escape(p.a.label), style.escape(p.b.label), style.escape(test), diff, raw, holm, better]
        rows.append([*row, style.escape(seeds_text(p.seeds_needed, style))])
    return rows


def pairs_legend(comparison: Comparison) -> str:
    m = comparison.metric
    name = m.title.replace(" (%)", "")
    direction = "higher" if (m.better or "max") == "max" else "lower"
    tests = len(comparison.family)
    power = f"{POWER * 100:.0f} %"
    return (
        f"Pairwise comparisons on {name}: A − B, the difference of the means (the mean paired difference where the "
        "groups share their seeds), with its 95 % bootstrap interval; p, the t-test's two-sided p-value, and p "
        f"(Holm), corrected across the family ({_tests(tests)}; bold: below α = {ALPHA:g}); P(A > B), the "
        f"probability that a random run of A has a {direction} {name} than a random run of B (ties count half; "
        "the probability of improvement of Agarwal et al. 2021), with its 95 % stratified bootstrap interval; seeds "
        f"for {power} power: the seeds per group at which a two-sided t-test (paired or Welch, as above) would "
        f"detect the observed difference at the observed spread with {power} power at α / {max(1, tests)} = "
        f"{ALPHA / max(1, tests):.3g}, the Holm threshold that finds it whatever the other tests give (∞: no "
        "difference; – no spread or n < 2; pairs.csv also has it for one test alone, at α). Bootstrap: the runs of "
        "each group resampled on their own (the seeds together where paired), every resample listed where there "
        f"are at most {EXACT_MAX:,}, else {BOOTSTRAP_RESAMPLES:,} drawn from seed {BOOTSTRAP_SEED}; percentile "
        "intervals, which stay within what the runs scored."
    )


# ----------------------------------------------------------------------------------------------- the legend


def _tests(n: int) -> str:
    return {0: "no test", 1: "one test"}.get(n, f"{n} tests")


def _family(comparison: Comparison) -> str:
    """'every pair of the 5 groups: 10 tests', 'each group against the baseline: 4 tests'."""
    tests = _tests(len(comparison.family))
    untested = len(comparison.pairs) - len(comparison.family)
    left = f" ({untested} pair(s) untested)" if untested else ""
    if comparison.mode == "all-pairs":
        k = len({id(g) for p in comparison.pairs for g in (p.a, p.b)})  # the groups with a value
        return f"every pair of the {k} groups: {tests}{left}"
    against = "the baseline" if comparison.baseline else "the best"
    return f"each group against {against}: {tests}{left}"


def choice_line(comparison: Comparison) -> str:
    """How the reference was chosen and which family of tests the p-values belong to, in a line or two."""
    metric, ref = comparison.metric, comparison.reference
    name = metric.title.replace(" (%)", "")
    if comparison.baseline:
        text = f"Compared on {name}; reference: the baseline {ref.label}, named with --baseline."
    elif comparison.on_test:
        text = (
            f"Compared on {name}. No validation figure in these runs (trained without a validation split): the best "
            f"group, {ref.label}, is chosen on {name} itself, the test figure it is then tested on; a --baseline named "
            "in advance avoids choosing on the test set."
        )
    elif comparison.selected_on is not None and comparison.selected_on.name != metric.name:
        on = comparison.selected_on.title.replace(" (%)", "")
        text = (
            f"Compared on {name}; the best group, {ref.label}, is chosen on {on} (the validation figure): its "
            f"{name} and every group's are reported as they are."
        )
    else:
        text = f"Compared on {name}; the best group, {ref.label}, is the one with the best mean {name}."
    if comparison.passed_over:
        labels = "; ".join(f"{g.label} ({why})" for g, why in comparison.passed_over)
        text += f" Not chosen, though their mean is better: {labels}."
    if comparison.fallback:
        text += (
            " No group has every run completed and two or more of them: the best is chosen among every group with a "
            "mean."
        )
    text += f" Comparisons (--comparisons {comparison.mode}): {_family(comparison)}, Holm-corrected across them."
    if comparison.mode == "best":
        text += (
            " The best was picked by looking at the data, so these p-values are too small (testing against the observed "
            "winner); --comparisons all-pairs or a --baseline named in advance do not pick."
        )
    return text


def _test_words(comparison: Comparison) -> str:
    kinds = comparison.kinds
    if kinds == ["paired"]:
        return "a two-sided paired t-test by seed (the groups share their seeds)"
    if kinds == ["Welch"]:
        return "Welch's two-sided t-test"
    if kinds:
        return (
            "a two-sided paired t-test by seed (P) where two groups have the same seeds, Welch's t-test (W) otherwise"
        )
    return "no test: no pair of groups has two completed runs each with some spread"


def legend(
    comparison: Comparison | None,
    targets: Sequence[Target] = (),
    groups: Sequence[Group] = (),
    metrics: Sequence[Metric] = (),
    compact: bool = False,
    scored: bool = True,
) -> list[str]:
    """What the table's figures mean, one paragraph each (plain text with Unicode symbols); compact: of the
    compact table (table.tex: p (Holm), § after n); scored: the table may show the column with diverged runs at
    chance."""
    shown = {m.name for m in metrics}
    lines = [
        "n: completed runs / runs of the group. Mean ± sample standard deviation (ddof=1) [95 % confidence interval "
        "of the mean, Student t: mean ± t(0.975, n−1)·s/√n, cut to what the figure can be: accuracies 0–100 %, gaps "
        "−100–100 %, losses and times ≥ 0] over the completed runs (seeds) of each group; – for the std and the "
        "interval where n = 1 and for the mean where no run completed. Accuracies and gaps in percent with 2 "
        "decimals, losses with 3 decimals, times in seconds. The best mean of a column is in bold (never for wall "
        "and epoch times, which measure the machine's load as much as the schedule); in a test column, the group "
        "with the best validation mean where the runs have one, the group chosen as best in the compared column. "
        "Diverged and failed runs are counted, not averaged; failed counts failed, interrupted, unfinished and "
        "never-run jobs."
    ]
    if any(g.stats[m.name].nonfinite for g in groups for m in metrics):
        lines.append(
            "(k non-finite): figures of completed runs that are NaN or infinite, left out of that column's mean "
            "(the runs' other figures are in the means); they are listed under Notes."
        )
    if comparison is not None:
        ref, metric = comparison.reference, comparison.metric
        name = metric.title.replace(" (%)", "")
        on = comparison.selected_on.title.replace(" (%)", "") if comparison.selected_on is not None else name
        role = "the baseline" if comparison.baseline else f"the best group on {on}"
        untested = (
            f"{UNTESTED}: not tested against it, for fewer than two completed runs in it or in the reference (n < 2) "
            "or no spread at all (every value, or every paired difference, equal: no p-value from a zero variance)."
        )
        if comparison.family:
            lines.append(
                f"{MARK} on {name}: {role} ({ref.label}) and the groups not significantly different from it at "
                f"α = {ALPHA:g}, by {_test_words(comparison)}; p-values Holm-corrected across the family "
                f"({_family(comparison)}), in the column {p_header(comparison, compact)}. {untested} A {MARK} says the "
                "seeds at hand cannot tell the groups apart, not that they are equal: the pairwise comparisons give "
                "the seeds a difference would need."
            )
        else:
            lines.append(
                f"{MARK} on {name}: {role} ({ref.label}). No test: no pair of groups has two completed runs each with "
                f"some spread, so nothing is significantly different or tied. {untested}"
            )
        if scored and scored_column(groups, comparison):
            lines.append(
                f"{scored_title(metric)}: {name} over the completed runs and every diverged run counted as what its "
                "model scores once its weights are not finite, chance (1 / number of classes), mean ± std [95 % CI]: "
                "what the method gives when divergence is part of its cost."
            )
    if at_chance_column(groups):
        which = "; ".join(f"{g.label}: {len(g.at_chance)} of {len(g.runs)}" for g in groups if g.at_chance)
        lines.append(
            f"{f'{CHANCE} after n' if compact else 'at chance'}: completed runs that sat at chance ({which}), stuck "
            "(training accuracy never above 1.5 × chance, 1 / number of classes) or collapsed back to it "
            "(summary.json's collapsed_at); each is in the means as what it scored, listed under Notes, and drawn "
            "apart in the figures (dotted, outside the means and bands)."
        )
    if "eval_gap" in shown:
        lines.append(
            "gap, end of epoch: the training accuracy of the model at the end of the epoch, on a fixed subset of the "
            "training set, minus its test accuracy: the gap this table shows"
            + (
                "; gap (%) compares the training accuracy averaged over the epoch, while the weights moved, with "
                "the test accuracy at its end."
                if "gap" in shown
                else "."
            )
        )
    elif "gap" in shown:
        lines.append(
            "gap: the training accuracy averaged over the epoch, while the weights moved, minus the test accuracy "
            "at its end (these runs have no end-of-epoch evaluation on the training set, eval_gap): it reads low, "
            "below zero early on, and is an upper bound on the model's fit to the training set."
        )
    if targets:
        shown_targets = "; ".join(t.shown for t in targets)
        bases = time_bases([r for g in groups for r in g.runs])
        if bases == {"train_time"}:
            time = "the training time to the end of that epoch (the train_time of metrics.jsonl summed: training steps only, evaluation apart)"
        elif bases == {"epoch_time"} or not bases:
            time = (
                "the time to the end of that epoch (the epoch times of metrics.jsonl summed; these runs do not record "
                "train_time apart, so evaluation time is included)"
            )
        else:
            time = (
                "the time to the end of that epoch (train_time summed where a run records it, training only; epoch_time, "
                "evaluation included, for the runs that do not)"
            )
        lines.append(
            f"Time to target ({shown_targets}): the first epoch at which a run reached it and {time}, mean ± std over "
            "the completed runs that reached it (reached/completed)."
        )
    return lines


# ----------------------------------------------------------------------------------------------- table.md

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


def md_table(rows: list[list[str]], align: str) -> list[str]:
    lines = ["| " + " | ".join(row) + " |" for row in rows]
    lines.insert(1, "|" + "|".join("---" if a == "l" else "--:" for a in align) + "|")
    return lines


FROM_RESULTS = (
    "Computed again from results.csv alone (one row per run, its final figures), without the run folders: no "
    "per-epoch figures, no page; runs at chance judged by their final training accuracy where the row does not say."
)


def markdown_report(
    runs: Sequence[Run],
    groups: Sequence[Group],
    metrics: Sequence[Metric],
    sources: str,
    notes: Sequence[str] = (),
    comparison: Comparison | None = None,
    targets: Sequence[Target] = (),
    base: str | Path | None = None,
    from_results: bool = False,
    branches: Sequence[str] = (),
) -> str:
    """table.md: the table, its legend, the pairwise comparisons, the branches' section (`branches`, its lines:
    branches_markdown), the runs left out (paths relative to `base`, the report's folder), the notes."""
    base = Path.cwd() if base is None else base
    rows = table_rows(groups, metrics, MARKDOWN, comparison, targets)
    excluded = [r for r in runs if not r.included]
    devices = sorted(
        {f"{r.summary.device_name}, {r.summary.precision}" for r in runs if r.included and r.summary.device_name}
    )
    common = common_overrides(runs)
    lines = [
        "# schedlab report",
        "",
        f"{len(runs)} runs from {sources} in {len(groups)} groups; {len(runs) - len(excluded)} completed and in the means.",
    ]
    if from_results:
        lines.append(FROM_RESULTS)
    if devices:
        lines.append(f"Device: {'; '.join(devices)}.")
    if common:
        lines.append("Common overrides: " + " ".join(f"`{o}`" for o in common) + ".")
    if comparison is not None:
        lines.append(_md_escape(choice_line(comparison)))
    lines += ["", *md_table(rows, "l" + "r" * (len(rows[0]) - 1)), ""]
    for paragraph in legend(comparison, targets, groups, metrics):
        lines += [paragraph, ""]
    if comparison is not None and comparison.pairs:
        pairs = pair_rows(comparison, MARKDOWN)
        lines += [f"## Pairwise comparisons ({len(comparison.pairs)})", ""]
        lines += [*md_table(pairs, "lll" + "r" * (len(pairs[0]) - 3)), "", pairs_legend(comparison), ""]
    lines += list(branches)
    if excluded:
        lines += [f"## Not included ({len(excluded)})", ""]
        table = [["run", "status", "overrides", "reason"]]
        table += [
            [display_path(r.path, base), r.status, " ".join(r.overrides), scrub_paths(r.reason, base)] for r in excluded
        ]
        lines += md_table([[_md_escape(c) for c in row] for row in table], "llll") + [""]
    if extra := report_notes(runs, notes):
        lines += ["## Notes", "", *(f"- {_md_escape(scrub_paths(n, base))}" for n in extra), ""]
    return "\n".join(lines)


def _percent(value: float) -> str:
    return f"{100 * value:.2f} %"


def report_notes(runs: Sequence[Run], notes: Sequence[str] = ()) -> list[str]:
    """The report's notes: runs read twice or sweeps unreadable (`notes`), damaged files of runs still in the
    means, figures that are not finite, runs that sat at chance (collapsed or stuck), chance unknown."""
    partial = [
        f"{r.path}: {d.path.name} {d.reason}; its summary.json is whole and in the means"
        for r in runs
        if r.included
        for d in r.damaged
    ]
    nonfinite = []
    for r in runs:
        if not r.included:
            continue
        bad = [f"{m.key} is {v}" for m in METRICS.values() if (v := r.value(m)) is not None and not math.isfinite(v)]
        if bad:
            nonfinite.append(f"{r.path}: {'; '.join(bad)}: left out of those columns, its other figures in the means")
        if epochs := r.nonfinite_epochs():
            shown = ", ".join(epochs[:3]) + (f" and {len(epochs) - 3} more" if len(epochs) > 3 else "")
            nonfinite.append(
                f"{r.path}: metrics.jsonl has figures that are not finite ({shown}): left out of the figures"
            )
    chance = []
    for r in runs:
        kind = r.at_chance if r.included else None
        c = r.summary.collapsed_at if r.summary is not None else None
        if isinstance(c, dict) and {"epoch", "peak_train_acc", "peak_epoch"} <= set(c):
            chance.append(
                f"{r.path}: collapsed to chance at epoch {c['epoch']} after {100 * c['peak_train_acc']:.2f} % train "
                f"accuracy at epoch {c['peak_epoch']} (completed, and in the means)"
            )
        elif kind == "collapsed":
            chance.append(f"{r.path}: collapsed to chance (completed, and in the means as what it scored)")
        elif kind == "stuck" and r.chance is not None:
            best = max((h.train_acc for h in r.history if finite(h.train_acc)), default=None)
            reached = "" if best is None else f"{_percent(best)} at best, "
            chance.append(
                f"{r.path}: stuck at chance: its training accuracy never rose above 1.5 × chance ({reached}chance "
                f"{_percent(r.chance)}); completed, and in the means as what it scored"
            )
        elif kind == "stuck":
            chance.append(f"{r.path}: stuck at chance (completed, and in the means as what it scored)")
        elif kind == "at chance":
            final = r.summary.get("final_train_acc")
            chance.append(
                f"{r.path}: at chance at the end: {_percent(final)} final training accuracy, below 1.5 × chance "
                f"({_percent(r.chance)}); completed, and in the means as what it scored"
            )
    unknown = [r for r in runs if r.included and r.chance is None and r.at_chance is None]
    if unknown:
        chance.append(
            f"chance is unknown for {len(unknown)} completed run(s) (no dataset.num_classes in their config.yaml or "
            "results.csv row; --num-classes N gives it): whether they sat at chance is not checked"
        )
    return [*notes, *partial, *nonfinite, *chance]


# ---------------------------------------------------------------------------------------------- branches


def _epochs_text(value: float | None) -> str:
    if value is None:
        return DASH
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def _spread_cell(stat: Stat, metric: Metric | None, style: Style) -> str:
    """mean ± std (a dash for the std where n = 1), seconds with one decimal without a metric; the count of values
    left out for not being finite."""
    show = (lambda v: f"{v:.1f}") if metric is None else (lambda v: number(v, metric))
    if stat.mean is None:
        text = style.dash
    else:
        text = f"{show(stat.mean)}{style.plus_minus}{style.dash if stat.std is None else show(stat.std)}"
    return text + (f" ({stat.nonfinite} non-finite)" if stat.nonfinite else "")


def branch_rows(
    families: Sequence[Family], metric: Metric, style: Style, shown: Callable[[Path], str] = str
) -> list[list[str]]:
    """The header row and one row per branch group, escaped for the style: its family (the parent group's label,
    or its folders as `shown` writes them), its label, the epochs it spans, n (completed / runs), its own epochs
    and wall time, `metric` at its end (mean ± std)."""
    header = ["parent", "branch", "from epoch", "to epoch", "n", "own epochs", "own wall (s)", metric.title]
    rows = [[style.escape(h) for h in header]]
    for f in families:
        for b in f.branches:
            own = b.own_epochs
            cells = [f.label(shown), b.group.label, str(b.epoch), _epochs_text(b.end)]
            cells += [f"{len(b.runs)}/{len(b.group.runs)}", _epochs_text(own.mean)]
            rows.append(
                [
                    *(style.escape(c) for c in cells),
                    _spread_cell(b.own_wall_time, None, style),
                    _spread_cell(b.group.stats[metric.name], metric, style),
                ]
            )
    return rows


def family_line(family: Family, shown: Callable[[Path], str] = str) -> str:
    """'LABEL: N epochs (X s) for its k branches; trained separately: M epochs (≈ Y s)', over how many seeds; where
    some parent's cost is unknown, a line that says so and counts the branches alone."""
    cost = family.cost()
    k = len(family.branches)
    # branches, not budgets: branches of other shapes may end at one epoch
    branches = f"its {k} branch{'es' if k != 1 else ''}"
    seconds = DASH if cost.wall_time.mean is None else f"{cost.wall_time.mean:.1f}"
    nonfinite = f", {cost.wall_time.nonfinite} non-finite" if cost.wall_time.nonfinite else ""
    spent = f"{_epochs_text(cost.epochs.mean)} epochs ({seconds} s{nonfinite})"
    separate = f"{_epochs_text(cost.separate_epochs)} epochs"
    if cost.separate_wall_time is not None:
        separate += f" (≈ {cost.separate_wall_time:.1f} s)"
    seeds = f"mean over {cost.epochs.n} seed{'s' if cost.epochs.n != 1 else ''} whose branches all completed"
    if cost.epochs.n == 0:
        seeds = "no seed has every branch completed"
    if cost.parent_counted:
        return f"{family.label(shown)}: {spent} for {branches}; trained separately: {separate} ({seeds})."
    missing = ", ".join(shown(p) for p in family.missing)
    return (
        f"{family.label(shown)}: the parent's cost is unknown (its folder is gone or unreadable: {missing}); its "
        f"branches alone: {spent} for {branches}; trained separately: {separate} ({seeds})."
    )


def branches_legend(metric: Metric) -> str:
    name = metric.title.replace(" (%)", "")
    return (
        "Each branch (branch.parent, branch.epoch) starts from its parent's state at the end of the epoch it is "
        "from and trains to the epoch it is to; its first epochs are its parent's. Own epochs: those it trained "
        "after the branch point (to − from); own wall: its wall time less the seconds it shares with its parent (wall_time_s − "
        f"shared_wall_time_s); they and its {name} at its end are the mean ± std over its completed runs. A family "
        "(a parent group and the branches started from its runs) costs, per seed, the parent's epochs and wall time "
        "plus every branch's own, the shared epochs counted once; then the mean over the seeds whose branches all "
        "completed. Trained separately: each branch's length trained from scratch (the sum of the to epochs), its "
        "time estimated by each branch's wall time, its shared epochs included."
    )


def branches_markdown(families: Sequence[Family], metric: Metric, base: str | Path) -> list[str]:
    """table.md's section on the branches: their table, what it means, one line per family with its cost."""
    if not families:
        return []
    shown = lambda path: display_path(path, base)  # noqa: E731
    rows = branch_rows(families, metric, MARKDOWN, shown)
    lines = [f"## Branches ({len(rows) - 1})", "", *md_table(rows, "llrrrrrr"), "", branches_legend(metric), ""]
    lines += [f"- {_md_escape(family_line(f, shown))}" for f in families]
    return [*lines, ""]


# ---------------------------------------------------------------------------------------------- table.tex


def latex_metrics(metrics: Sequence[Metric], comparison: Comparison | None, explicit: bool) -> list[Metric]:
    """table.tex's columns: every metric asked for with --metrics; by default the compared figure, the figure that
    chose the best and a snapshot ensemble's test accuracy, so that the table fits a page's width."""
    if explicit or comparison is None:
        return list(metrics if explicit else metrics[:1])
    keep = {comparison.metric.name, "ensemble_test_acc"}
    if comparison.selected_on is not None and not comparison.baseline:
        keep.add(comparison.selected_on.name)
    return [m for m in metrics if m.name in keep]


TEX_HEADER_WIDTH = 14  # characters: a longer header goes on two lines, so that no column is wider than its cells


def _tex_header(cell: str, align: str) -> str:
    """A header cell on two lines (a nested tabular, no package needed) when it is long, split at the space
    nearest its middle; escaped text has no space inside its math, so any space is a place to split."""
    visible = re.sub(r"\\[a-zA-Z]+|[\\${}]", "", cell)
    spaces = [i for i, c in enumerate(cell) if c == " "]
    if len(visible) <= TEX_HEADER_WIDTH or not spaces:
        return cell
    middle = len(cell) / 2
    cut = min(spaces, key=lambda i: abs(i - middle))
    return rf"\begin{{tabular}}[b]{{@{{}}{align}@{{}}}}{cell[:cut]}\\{cell[cut + 1 :]}\end{{tabular}}"


def latex_table(
    groups: Sequence[Group],
    metrics: Sequence[Metric],
    comparison: Comparison | None = None,
    targets: Sequence[Target] = (),
    explicit: bool = False,
) -> str:
    """table.tex: a booktabs tabular of mean ± 95 % CI half-width cells (the columns of latex_metrics), its
    legend above it as comment lines in LaTeX (a caption to paste), ASCII only."""
    shown = latex_metrics(metrics, comparison, explicit)
    if not explicit:  # time to target and the column with diverged runs at chance are in table.md
        targets = ()
    rows = table_rows(groups, shown, LATEX, comparison, targets, compact=True, scored=None if explicit else False)
    rows[0] = [_tex_header(h, "l" if i == 0 else "r") for i, h in enumerate(rows[0])]
    body = [" & ".join(row) + r" \\" for row in rows]
    paragraphs = [
        "Mean $\\pm$ half-width of the 95\\% confidence interval of the mean (Student t, over the completed runs, "
        "seeds, of each group; an interval cut at what the figure can be is written mean$^{+above}_{-below}$); "
        "n: completed runs / runs.",
        *(tex_escape(p) for p in legend(comparison, targets, groups, shown, compact=True, scored=explicit)[1:]),
    ]
    if comparison is not None:
        paragraphs.insert(1, tex_escape(choice_line(comparison)))
    caption = ["% " + line for paragraph in paragraphs for line in textwrap.wrap(paragraph, 110)]
    return "\n".join(
        [
            "% schedlab report: the caption (paste into \\caption{...}), then the tabular; needs \\usepackage{booktabs}",
            *caption,
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


# ---------------------------------------------------------------------------------------------- the CSVs


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(["" if v is None else v for v in row] for row in rows)


def write_results_csv(path: Path, runs: Sequence[Run], groups: Sequence[Group], targets: Sequence[Target] = ()) -> None:
    """One row per run, left-out ones too: every override key as a column (full values), raw summary figures,
    the run's number of classes and whether it sat at chance, a branch's record of its parent (BRANCH_RECORD_COLUMNS),
    the epoch and seconds at which the run reached each target (empty: not reached)."""
    from experiments.report.targets import run_reached

    label = {id(r): g.full_label or g.label for g in groups for r in g.runs}
    keys = list(dict.fromkeys(k for r in runs for k in r.params))
    if "seed" not in keys:
        keys.append("seed")
    target_columns = [c for t in targets for c in (f"to_{t.spec}_epoch", f"to_{t.spec}_time_s")]
    rows = []
    for r in runs:
        params = {**({"seed": r.summary.seed} if r.summary else {}), **r.params}
        reached = [run_reached(r, t) or (None, None) for t in targets]
        rows.append(
            [
                str(r.path),
                label[id(r)],
                r.status,
                *(params.get(k) for k in keys),
                *(r.summary.get(k) if r.summary else None for k in RUN_FIELDS),
                r.num_classes,
                r.at_chance if r.included else None,
                *_branch_cells(r),
                *(v for pair in reached for v in pair),
                r.reason,
            ]
        )
    header = [
        "run",
        "group",
        "status",
        *keys,
        *RUN_FIELDS,
        *RESULTS_EXTRA,
        *BRANCH_RECORD_COLUMNS,
        *target_columns,
        "reason",
    ]
    _write_csv(path, header, rows)


def _branch_cells(run: Run) -> tuple:
    """A branch's BRANCH_RECORD_COLUMNS: its parent folder, written as the run column writes the run's own folder
    (relative to the current folder where the run's is relative, else absolute, as summary.json records it), and
    the epochs and seconds it shares with the parent; empty for a run that is no branch."""
    record = branch_record(run)
    if record is None:
        return (None, None, None)
    parent = record["parent"] if run.path.is_absolute() else os.path.relpath(record["parent"])
    return (parent, record["epoch"], record.get("shared_wall_time_s"))


STAT_COLUMNS = ("n", "mean", "std", "ci_low", "ci_high")
COMPARE_COLUMNS = ("metric", "reference", "test", "t", "df", "p", "p_holm", "marked")
# beside the test: the family and how the reference was chosen, why a group is untested, the bootstrap interval of
# its mean, the difference to the reference, P(group > reference) and the seeds for 80 % power
VERDICT_COLUMNS = (
    "mode",
    "selected_on",
    "family_size",
    "untested",
    "boot_low",
    "boot_high",
    "diff",
    "diff_ci_low",
    "diff_ci_high",
    "p_better",
    "p_better_low",
    "p_better_high",
    "seeds_needed",
    "scored_n",
    "scored_mean",
    "scored_std",
    "scored_ci_low",
    "scored_ci_high",
)


def _stat_cells(stat: Stat, metric: Metric) -> list:
    return [stat.n, stat.mean, stat.std, *(clip(stat.ci, metric) or (None, None))]


def _verdict_cells(g: Group, comparison: Comparison) -> list:
    metric, pair = comparison.metric, g.pair
    values = g.stats[metric.name].values
    boot = bootstrap_mean_ci(values) or (None, None)
    scored = scored_stat(g, metric)
    scored_cells = _stat_cells(scored[0], metric) if scored else [None] * 5
    selected = comparison.selected_on.name if comparison.selected_on is not None and not comparison.baseline else None
    cells = [comparison.mode, selected, len(comparison.family), g.untested, *boot]
    if pair is None:
        return [*cells, *([None] * 7), *scored_cells]
    return [
        *cells,
        pair.difference,
        *(pair.difference_ci or (None, None)),
        pair.p_better,
        *(pair.p_better_ci or (None, None)),
        pair.seeds_needed,
        *scored_cells,
    ]


def write_groups_csv(
    path: Path, groups: Sequence[Group], comparison: Comparison | None = None, targets: Sequence[Target] = ()
) -> None:
    """One row per group (its full label, the override values as given): its runs, completed, diverged, failed
    and at chance; n, mean, std and 95 % CI (cut to what the figure can be) of every metric as fractions, and how
    many values were not finite; the test against the reference (compare_*) and the verdict beside it; each
    target's runs that reached it and the mean and std of their epochs and seconds (to_*)."""
    names = list(dict.fromkeys(k for g in groups for k, _ in g.key))
    header = ["group", *names, *COUNT_COLUMNS] + [f"{m}_{s}" for m in METRICS for s in STAT_COLUMNS]
    header += ["runs", "at_chance"] + [f"{m}_nonfinite" for m in METRICS]
    if comparison is not None:
        header += [f"compare_{c}" for c in (*COMPARE_COLUMNS, *VERDICT_COLUMNS)]
    for t in targets:
        header += [
            f"to_{t.spec}_{c}" for c in ("reached", "runs", "epoch_mean", "epoch_std", "time_s_mean", "time_s_std")
        ]
    rows = []
    for g in groups:
        values = dict(g.key)
        row = [g.full_label or g.label, *(values.get(k) for k in names), *g.counts.values()]
        for m in METRICS:
            row += _stat_cells(g.stats[m], REPORT_METRICS[m])
        row += [len(g.runs), len(g.at_chance)] + [g.stats[m].nonfinite for m in METRICS]
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
                *_verdict_cells(g, comparison),
            ]
        for t in targets:
            stat = target_stat(g, t)
            row += [stat.epochs.n, stat.runs, stat.epochs.mean, stat.epochs.std, stat.seconds.mean, stat.seconds.std]
        rows.append(row)
    _write_csv(path, header, rows)


PAIR_COLUMNS = (
    "a",
    "b",
    "metric",
    "mode",
    "test",
    "t",
    "df",
    "p",
    "p_holm",
    "significant",
    "untested",
    "diff",
    "diff_ci_low",
    "diff_ci_high",
    "p_better",
    "p_better_low",
    "p_better_high",
    "seeds_needed",
    "seeds_needed_single",
)


def write_pairs_csv(path: Path, comparison: Comparison) -> None:
    """One row per comparison of the family: the two groups, the test, raw and Holm p, whether it is significant
    at ALPHA, the difference (fractions for accuracies) with its bootstrap interval, P(A > B) with its interval,
    the seeds per arm for 80 % power."""
    rows = []
    for p in comparison.pairs:
        test = p.test
        rows.append(
            [
                p.a.full_label or p.a.label,
                p.b.full_label or p.b.label,
                comparison.metric.name,
                comparison.mode,
                test.kind if test else None,
                test.t if test else None,
                test.df if test else None,
                test.p if test else None,
                p.p_holm,
                int(p.significant),
                p.untested,
                p.difference,
                *(p.difference_ci or (None, None)),
                p.p_better,
                *(p.p_better_ci or (None, None)),
                p.seeds_needed,
                p.seeds_needed_single,
            ]
        )
    _write_csv(path, list(PAIR_COLUMNS), rows)


BRANCH_COLUMNS = ("parent_group", "parent_cost", "group", "branch_epoch", "end_epoch", "runs", "n", "own_epochs_mean")
FAMILY_COLUMNS = ("family_epochs", "family_wall_s", "family_seeds", "separate_epochs", "separate_wall_s")


def write_branches_csv(path: Path, families: Sequence[Family], metric: Metric) -> None:
    """One row per branch group: its family's parent group (full label, or its folders), whether the parent's cost
    is counted, its full label, the epochs it spans, its runs and completed runs, its own epochs and wall time,
    `metric` at its end (fractions for accuracies), and its family's cost (mean over the seeds whose branches all
    completed) beside the branches' cost trained separately."""
    header = [*BRANCH_COLUMNS, "own_wall_s_mean", "own_wall_s_std", "own_wall_s_nonfinite"]
    header += [f"{metric.name}_{c}" for c in ("n", "mean", "std")] + list(FAMILY_COLUMNS)
    rows = []
    for f in families:
        cost = f.cost()
        parent = (f.parent.full_label or f.parent.label) if f.parent is not None else ";".join(map(str, f.parents))
        for b in f.branches:
            wall, value = b.own_wall_time, b.group.stats[metric.name]
            rows.append(
                [
                    parent,
                    "counted" if cost.parent_counted else "unknown",
                    b.group.full_label or b.group.label,
                    b.epoch,
                    b.end,
                    len(b.group.runs),
                    len(b.runs),
                    b.own_epochs.mean,
                    wall.mean,
                    wall.std,
                    wall.nonfinite,
                    value.n,
                    value.mean,
                    value.std,
                    cost.epochs.mean,
                    cost.wall_time.mean,
                    cost.epochs.n,
                    cost.separate_epochs,
                    cost.separate_wall_time,
                ]
            )
    _write_csv(path, header, rows)
