"""Which differences are real: the reference arm, chosen on a validation figure (or named in advance), and the
family of t-tests, Holm-corrected across the whole family, with what goes beside each test (a bootstrap interval
of the difference, the probability of improvement, the seeds that would detect it).

Families (--comparisons):
  all-pairs  every pair of arms, k (k - 1) / 2 tests: no test depends on which arm looked best (the default
             without --baseline)
  baseline   every arm against the --baseline named in advance, k - 1 tests (the default with --baseline)
  best       every arm against the arm that looked best, k - 1 tests: a choice made after looking, whose
             p-values are too small (kept to reproduce earlier tables)
"""

from __future__ import annotations

import functools
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from experiments.report.columns import SELECTED_ON, resolve_metrics, selection_metric
from experiments.report.groups import Group
from experiments.report.runs import seed_of
from experiments.report.statistics import (
    ALPHA,
    TTest,
    bootstrap_difference_ci,
    holm,
    paired_test,
    probability_of_improvement,
    seeds_needed,
    welch_test,
)
from trainer.records import Metric

MODES = ("all-pairs", "baseline", "best")
TEST_FIGURES = (*SELECTED_ON, "best_test_acc")  # figures of the test set: choosing on them is choosing on test


@dataclass(eq=False)
class Pair:
    """One comparison of the family: arm a against arm b on the compared metric. The figures beside the test (the
    bootstrap interval of the difference, P(a > b) and its interval, the seeds for power) are computed when first
    asked for; the pair seen from b's side (facing) reads them from this one, turned round."""

    a: Group
    b: Group
    paired: bool = False
    test: TTest | None = None  # None: untested (see untested)
    untested: str | None = None  # "n < 2" (an arm with fewer than two runs) or "no spread" (a zero variance)
    p_holm: float | None = None
    difference: float | None = None  # mean(a) - mean(b) (the mean paired difference when paired)
    spread: float | None = None  # the std of the paired differences, or the pooled std of the two arms
    values: tuple[list[float], list[float]] = ([], [])  # a's and b's, by seed where paired
    better: str = "max"
    family: int = 1  # the tests of the family: the seeds for power are at ALPHA / family
    origin: Pair | None = field(default=None, repr=False)  # the pair this one is the other side of

    @property
    def significant(self) -> bool:
        return self.p_holm is not None and self.p_holm < ALPHA

    @functools.cached_property
    def _extras(self) -> dict:
        if self.origin is not None:
            o = self.origin
            return {
                "difference_ci": None if o.difference_ci is None else (-o.difference_ci[1], -o.difference_ci[0]),
                "p_better": None if o.p_better is None else 1 - o.p_better,
                "p_better_ci": None if o.p_better_ci is None else (1 - o.p_better_ci[1], 1 - o.p_better_ci[0]),
                "seeds_needed": o.seeds_needed,
                "seeds_needed_single": o.seeds_needed_single,
            }
        xa, xb = self.values
        p_better, p_better_ci = probability_of_improvement(xa, xb, self.better) if xa and xb else (None, None)
        return {
            "difference_ci": bootstrap_difference_ci(xa, xb, self.paired) if self.spread is not None else None,
            "p_better": p_better,
            "p_better_ci": p_better_ci,
            # at the Holm threshold of the family's first step, which finds the pair whatever the others give
            "seeds_needed": seeds_needed(self.difference, self.spread, self.paired, ALPHA / max(1, self.family)),
            "seeds_needed_single": seeds_needed(self.difference, self.spread, self.paired, ALPHA),
        }

    @property
    def difference_ci(self) -> tuple[float, float] | None:
        """The 95 % bootstrap interval of the difference."""
        return self._extras["difference_ci"]

    @property
    def p_better(self) -> float | None:
        """P(a > b): a random run of a beats a random run of b (ties half)."""
        return self._extras["p_better"]

    @property
    def p_better_ci(self) -> tuple[float, float] | None:
        """The 95 % stratified bootstrap interval of p_better."""
        return self._extras["p_better_ci"]

    @property
    def seeds_needed(self) -> float | None:
        """Per arm, for 80 % power at the observed spread, at ALPHA / family size."""
        return self._extras["seeds_needed"]

    @property
    def seeds_needed_single(self) -> float | None:
        """The same for one test alone, at ALPHA."""
        return self._extras["seeds_needed_single"]

    def facing(self, group: Group) -> Pair:
        """The pair as seen from `group` (group as a): the difference, t and P(A > B) turned round."""
        if self.a is group:
            return self
        xa, xb = self.values
        return Pair(
            self.b,
            self.a,
            self.paired,
            None if self.test is None else self.test._replace(t=-self.test.t),
            self.untested,
            self.p_holm,
            None if self.difference is None else -self.difference,
            self.spread,
            (xb, xa),
            self.better,
            self.family,
            origin=self,
        )


@dataclass
class Comparison:
    """The groups compared on one metric: the reference, the family of tests, how the reference was chosen."""

    metric: Metric
    reference: Group
    baseline: bool  # the reference was named (--baseline); else it is the best group on `selected_on`
    groups: list[Group]
    mode: str = "best"
    selected_on: Metric | None = None  # the figure that chose the best (val_acc for test_acc; the metric itself)
    chosen: Group | None = None  # the best group on `selected_on`, among the eligible ones
    pairs: list[Pair] = field(default_factory=list)  # every comparison of the family, tested or not
    # better on the selection figure but not chosen, and why: some of their runs did not complete, or n < 2
    passed_over: list[tuple[Group, str]] = field(default_factory=list)
    fallback: bool = False  # no group was eligible: the best is chosen among all groups with a mean

    @property
    def tested(self) -> list[Group]:
        return [g for g in self.groups if g.test is not None]

    @property
    def family(self) -> list[Pair]:
        """The pairs with a test: the ones Holm corrects across."""
        return [p for p in self.pairs if p.test is not None]

    @property
    def kinds(self) -> list[str]:
        """The tests used: "paired", "Welch" or both."""
        return sorted({p.test.kind for p in self.family}, reverse=True)

    @property
    def on_test(self) -> bool:
        """The best was chosen on the very test figure it is compared on (no validation twin)."""
        return (
            not self.baseline
            and self.selected_on is not None
            and self.selected_on.name == self.metric.name
            and self.metric.name in TEST_FIGURES
        )


def _by_seed(group: Group, metric: Metric) -> dict | None:
    """The group's values by seed, or None when a seed repeats (pooled runs) or is unknown."""
    pairs = [(seed_of(r), v) for r in group.included if (v := r.value(metric)) is not None and math.isfinite(v)]
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


def _selection(groups: Sequence[Group], metric: Metric) -> Metric:
    """The figure the best is chosen on: the metric's validation twin when every group with a mean of the metric
    has one, else the metric itself."""
    twin = selection_metric(metric)
    with_mean = [g for g in groups if g.stats[metric.name].mean is not None]
    if twin is not None and with_mean and all(g.stats[twin.name].mean is not None for g in with_mean):
        return twin
    return metric


def _unfit(group: Group, metric: Metric, on: Metric) -> str | None:
    """Why a group cannot be chosen as best: some of its runs did not complete (a survivor's mean is no mean of
    the setting), or it has fewer than two (nothing to test it with); None when it can."""
    if not group.complete:
        return f"{len(group.runs) - len(group.included)} of {len(group.runs)} runs did not complete"
    if group.stats[on.name].n < 2 or group.stats[metric.name].n < 2:
        return "n < 2"
    return None


def _choose(groups: Sequence[Group], metric: Metric, on: Metric) -> tuple[Group | None, list[tuple[Group, str]], bool]:
    """The best group on `on` among the eligible ones (every run completed, two or more of them), the groups with
    a better mean passed over and why, and whether no group was eligible (then the best of every group with a
    mean)."""
    if on.better is None:
        return None, [], False
    best = max if on.better == "max" else min
    with_mean = [g for g in groups if g.stats[on.name].mean is not None and g.stats[metric.name].mean is not None]
    eligible = [g for g in with_mean if _unfit(g, metric, on) is None]
    pool = eligible or with_mean
    if not pool:
        return None, [], False
    chosen = best(pool, key=lambda g: g.stats[on.name].mean)
    sign = 1 if on.better == "max" else -1
    passed = [
        (g, _unfit(g, metric, on))
        for g in with_mean
        if g not in eligible and sign * g.stats[on.name].mean > sign * chosen.stats[on.name].mean
    ]
    return chosen, (passed if eligible else []), not eligible


def _pair(a: Group, b: Group, metric: Metric) -> Pair:
    """The test of a against b (paired by seed when both have the same seeds, Welch's otherwise); untested when
    either has fewer than two runs, or there is no spread."""
    va, vb = a.stats[metric.name].values, b.stats[metric.name].values
    sa, sb = _by_seed(a, metric), _by_seed(b, metric)
    paired = sa is not None and sb is not None and set(sa) == set(sb) and len(sa) >= 2
    if paired:
        order = sorted(sa, key=str)
        va, vb = [sa[s] for s in order], [sb[s] for s in order]
    pair = Pair(a, b, paired, values=(va, vb), better=metric.better or "max")
    if va and vb:
        pair.difference = statistics.mean(va) - statistics.mean(vb)
    if len(va) < 2 or len(vb) < 2:
        pair.untested = "n < 2"
        return pair
    if paired:
        test = paired_test(va, vb)
        pair.spread = statistics.stdev([x - y for x, y in zip(va, vb, strict=True)])
    else:
        test = welch_test(va, vb)
        pair.spread = math.sqrt((statistics.variance(va) + statistics.variance(vb)) / 2)
    if test.testable:
        pair.test = test
    else:
        pair.untested = "no spread"
    return pair


def compare_groups(
    groups: Sequence[Group], metric: Metric, baseline: str | None = None, mode: str | None = None
) -> Comparison | None:
    """Choose the reference (the group named `baseline`, else the best on the metric's validation figure, or on
    the metric itself without one) and test the family of `mode` (default: all-pairs, or baseline when one is
    named): paired t-tests by seed where two groups share their seeds, Welch's otherwise, two-sided, the p-values
    Holm-adjusted across the whole family. Sets each group's test, p_holm, untested and marked (the reference and
    the groups not significantly different from it at ALPHA). None when no group has a mean."""
    mode = mode or ("baseline" if baseline is not None else "all-pairs")
    check_mode(mode, baseline)
    for g in groups:
        g.test, g.p_holm, g.marked, g.untested, g.pair = None, None, False, None, None
    on = _selection(groups, metric)
    chosen, passed_over, fallback = _choose(groups, metric, on)
    reference = find_group(groups, baseline) if baseline is not None else chosen
    if reference is None:
        return None
    present = [g for g in groups if g.stats[metric.name].n or g is reference]  # a group without a value: no pair
    if mode == "all-pairs":
        pairs = [_pair(a, b, metric) for i, a in enumerate(present) for b in present[i + 1 :]]
    else:
        pairs = [_pair(g, reference, metric) for g in present if g is not reference]
    family = [p for p in pairs if p.test is not None]
    for p, adjusted in zip(family, holm([p.test.p for p in family]), strict=True):
        p.p_holm = adjusted
    for p in pairs:
        p.family = len(family)
    reference.marked = True
    for p in pairs:
        if reference not in (p.a, p.b):
            continue
        g = p.b if p.a is reference else p.a
        g.pair = p.facing(g)
        g.test, g.p_holm, g.untested = g.pair.test, g.pair.p_holm, g.pair.untested
        g.marked = g.test is not None and not p.significant
    return Comparison(
        metric,
        reference,
        baseline is not None,
        list(groups),
        mode,
        on if on.better is not None else None,
        chosen,
        pairs,
        passed_over,
        fallback and chosen is not None,
    )


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


def check_mode(mode: str | None, baseline: str | None) -> None:
    """The --comparisons / --baseline combination, checked before any run is read (a ValueError in one line)."""
    if mode is None:
        return
    if mode not in MODES:
        raise ValueError(f"--comparisons {mode}: use one of {', '.join(MODES)}")
    if mode == "baseline" and baseline is None:
        raise ValueError("--comparisons baseline needs --baseline LABEL: the group named in advance")
    if mode == "best" and baseline is not None:
        raise ValueError(
            "--comparisons best tests against the best group, not a baseline: drop --baseline, or use "
            "--comparisons baseline or all-pairs"
        )
