"""The numbers behind a verdict: means and Student-t intervals, paired and Welch t-tests, Holm's correction,
stratified bootstrap intervals, the probability of improvement P(A > B) and the seeds a difference needs.

The bootstrap resamples each arm's runs on their own (stratified by arm; the seeds together for a paired
difference). Where every resample can be listed (n^n of them, the product for two arms, up to EXACT_MAX) it uses
all of them, so the interval is exact and the same at every call; beyond that BOOTSTRAP_RESAMPLES random ones
drawn from a fixed seed. Intervals are percentile intervals: they never leave the range of the data."""

from __future__ import annotations

import functools
import itertools
import math
import statistics
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy import integrate
from scipy import stats as scipy_stats

ALPHA = 0.05  # the significance level of every test
CONFIDENCE = 0.95  # of every interval, in the tables and the plots
POWER = 0.8  # the power `seeds_needed` asks for
EXACT_MAX = 20_000  # resamples listed in full up to this many
BOOTSTRAP_RESAMPLES = 10_000  # random resamples beyond it
BOOTSTRAP_SEED = 0
MAX_SEEDS = 10_000  # seeds_needed gives up beyond this


def finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@functools.cache  # a curve's CI at every step asks for the same few n
def t_quantile(n: int) -> float:
    """Student's t quantile of a two-sided 95 % interval of a mean of n values (n - 1 degrees of freedom)."""
    return float(scipy_stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1))


def ci_half_width(std: float, n: int) -> float:
    """Half the width of the 95 % confidence interval of a mean: t_{0.975, n-1} s / sqrt(n)."""
    return t_quantile(n) * std / math.sqrt(n)


@dataclass
class Stat:
    """The values of one figure over a group's runs. Values that are not finite (a NaN test loss, an infinite
    time) are facts about their runs, not numbers to average: they are counted in `nonfinite` and left out."""

    values: list[float]
    nonfinite: int = 0

    def __post_init__(self):
        kept = [float(v) for v in self.values if finite(v)]
        self.nonfinite += len(self.values) - len(kept)
        self.values = kept

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


# ---------------------------------------------------------------------------------------------------- t-tests


class TTest(NamedTuple):
    """A two-sided t-test of one group against another. p is NaN when there is nothing to test: no spread at
    all (every value equal within each sample, or every paired difference equal), where a t statistic divides
    by a zero variance and any p-value it gave would be an artefact."""

    kind: str  # "paired" (by seed) or "Welch"
    t: float
    df: float
    p: float

    @property
    def testable(self) -> bool:
        return math.isfinite(self.p)


def _no_spread(values: Sequence[float]) -> bool:
    """Every value equal up to float rounding (0.8787 - 0.8786 and 0.9001 - 0.9000 differ in their last bits)."""
    scale = max(1.0, *(abs(v) for v in values))
    return max(values) - min(values) <= 1e-9 * scale


def welch_test(a: Sequence[float], b: Sequence[float]) -> TTest:
    """Welch's two-sided t-test of mean(a) - mean(b) (unequal variances; scipy.stats.ttest_ind)."""
    if _no_spread(a) and _no_spread(b):
        return TTest("Welch", math.nan, math.nan, math.nan)
    with warnings.catch_warnings():  # one sample without spread: exact all the same, but scipy warns
        warnings.simplefilter("ignore", RuntimeWarning)
        result = scipy_stats.ttest_ind(a, b, equal_var=False)
    return TTest("Welch", float(result.statistic), float(result.df), float(result.pvalue))


def paired_test(a: Sequence[float], b: Sequence[float]) -> TTest:
    """The two-sided paired t-test of a - b, element by element (scipy.stats.ttest_rel)."""
    differences = [x - y for x, y in zip(a, b, strict=True)]
    if _no_spread(differences):
        return TTest("paired", math.nan, len(a) - 1, math.nan)
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


# ---------------------------------------------------------------------------------------------- the bootstrap


@functools.cache
def _every_resample(n: int) -> np.ndarray:
    """Every resample of n runs: n^n rows of indices."""
    rows = np.array(list(itertools.product(range(n), repeat=n)), dtype=np.intp).reshape(-1, n)
    rows.flags.writeable = False
    return rows


def _indices(n: int, rng: np.random.Generator, count: int | None) -> np.ndarray:
    """Every resample of n runs (n^n rows of indices) when count is None, else `count` random ones."""
    return _every_resample(n) if count is None else rng.integers(0, n, size=(count, n))


def _resamples(*sizes: int) -> list[np.ndarray]:
    """Row-aligned resamples of arms of these sizes, each arm on its own: the full product of every arm's
    resamples where it has at most EXACT_MAX rows, else BOOTSTRAP_RESAMPLES random rows from BOOTSTRAP_SEED."""
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    if math.prod(n**n for n in sizes) <= EXACT_MAX:
        each = [_indices(n, rng, None) for n in sizes]
        grid = np.meshgrid(*(np.arange(len(e)) for e in each), indexing="ij")
        return [e[g.ravel()] for e, g in zip(each, grid, strict=True)]
    return [_indices(n, rng, BOOTSTRAP_RESAMPLES) for n in sizes]


def _percentile(samples: np.ndarray) -> tuple[float, float]:
    tail = (1 - CONFIDENCE) / 2
    low, high = np.quantile(samples, [tail, 1 - tail], method="inverted_cdf")
    return float(low), float(high)


def bootstrap_mean_ci(values: Sequence[float]) -> tuple[float, float] | None:
    """The 95 % percentile bootstrap interval of a mean (the runs resampled); None for fewer than two values."""
    if len(values) < 2:
        return None
    x = np.asarray(values, dtype=float)
    (idx,) = _resamples(len(x))
    return _percentile(x[idx].mean(axis=1))


def bootstrap_difference_ci(a: Sequence[float], b: Sequence[float], paired: bool) -> tuple[float, float] | None:
    """The 95 % bootstrap interval of mean(a) - mean(b): the seeds resampled together when paired (a[i] and b[i]
    share one), each arm's runs on their own otherwise; None when an arm has fewer than two runs."""
    if len(a) < 2 or len(b) < 2:
        return None
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if paired:
        (idx,) = _resamples(len(x))
        return _percentile((x - y)[idx].mean(axis=1))
    ia, ib = _resamples(len(x), len(y))
    return _percentile(x[ia].mean(axis=1) - y[ib].mean(axis=1))


def _improvement(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """P(X > Y) over the last axis pairs: (x > y) + (x == y) / 2, averaged over every pair of a row."""
    diff = x[..., :, None] - y[..., None, :]
    scale = np.maximum(1.0, np.maximum(np.abs(x[..., :, None]), np.abs(y[..., None, :])))
    tie = np.abs(diff) <= 1e-12 * scale
    score = np.where(tie, 0.5, (diff > 0).astype(float))
    return score.mean(axis=(-2, -1))


def probability_of_improvement(
    a: Sequence[float], b: Sequence[float], better: str = "max"
) -> tuple[float, tuple[float, float] | None]:
    """P(A > B) as rliable defines it (Agarwal et al. 2021): the probability that a random run of A is better
    than a random run of B, ties counting half ("better": higher for "max", lower for "min"), with its 95 %
    stratified bootstrap interval (each arm's runs resampled on their own; None when an arm has one run)."""
    sign = 1.0 if better == "max" else -1.0
    x, y = sign * np.asarray(a, dtype=float), sign * np.asarray(b, dtype=float)
    p = float(_improvement(x, y))
    if len(x) < 2 or len(y) < 2:
        return p, None
    ia, ib = _resamples(len(x), len(y))
    return p, _percentile(_improvement(x[ia], y[ib]))


# -------------------------------------------------------------------------------------------------- power


def power(effect: float, n: int, paired: bool, alpha: float = ALPHA) -> float:
    """The power of a two-sided t-test at level alpha to detect a standardized difference `effect` (the
    difference over the spread) with n seeds per arm: paired, df = n - 1 and noncentrality effect * sqrt(n);
    two arms of n runs each, df = 2n - 2 and noncentrality effect * sqrt(n / 2). From the noncentral t."""
    df = n - 1 if paired else 2 * n - 2
    nc = effect * math.sqrt(n if paired else n / 2)
    critical = _critical(alpha, df)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        value = float(scipy_stats.nct.sf(critical, df, nc) + scipy_stats.nct.cdf(-critical, df, nc))
    if math.isfinite(value):
        return value
    # scipy's noncentral t gives NaN for a large noncentrality at few degrees of freedom: the same probability
    # as an integral over the chi-distributed scale of the sample std, T = (Z + nc) / (X / sqrt(df))
    scale = critical / math.sqrt(df)

    def integrand(x: float) -> float:
        return (scipy_stats.norm.cdf(nc - scale * x) + scipy_stats.norm.cdf(-nc - scale * x)) * scipy_stats.chi.pdf(
            x, df
        )

    return float(integrate.quad(integrand, 0, math.inf)[0])


@functools.cache
def _critical(alpha: float, df: int) -> float:
    return float(scipy_stats.t.ppf(1 - alpha / 2, df))


def seeds_needed(
    difference: float, spread: float | None, paired: bool, alpha: float = ALPHA, target: float = POWER
) -> float | None:
    """The fewest seeds per arm at which a two-sided t-test at level alpha detects `difference` with `target`
    power when the runs spread as observed (`spread`: the sample std of the paired differences, or the pooled
    std sqrt((s_A^2 + s_B^2) / 2) of two arms). math.inf when there is no difference (no n would do) or more
    than MAX_SEEDS would be needed; None when the spread is unknown or zero (nothing to scale by)."""
    if spread is None or not finite(spread) or spread <= 0 or not finite(difference):
        return None
    if difference == 0:
        return math.inf
    effect = abs(difference) / spread
    # the normal approximation's n, then the exact noncentral-t power stepped from it: a few evaluations
    z = scipy_stats.norm.ppf(1 - alpha / 2) + scipy_stats.norm.ppf(target)
    guess = (z / effect) ** 2 * (1 if paired else 2)
    if guess > MAX_SEEDS:
        return math.inf
    n = max(2, math.ceil(guess))
    while power(effect, n, paired, alpha) < target:
        n += 1
        if n > MAX_SEEDS:
            return math.inf
    while n > 2 and power(effect, n - 1, paired, alpha) >= target:  # power grows with n: the first n that does
        n -= 1
    return float(n)
