"""Verdicts a reviewer can defend, each on run folders written here with the project's own writers:
the best chosen on validation, all-pairs Holm, a NaN or an infinity anywhere, diverged and failed seeds, runs stuck
at chance, n = 1, zero spread, intervals within what a figure can be, bootstrap intervals, P(A > B), the seeds a
difference needs, the honest gap and the training time to a target."""

from __future__ import annotations

import csv
import itertools
import json
import math
import statistics
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf
from scipy import stats as scipy_stats

from experiments.report import build, main, write_report
from experiments.report.compare import compare_groups
from experiments.report.dashboard import figures
from experiments.report.groups import Group
from experiments.report.statistics import (
    Stat,
    bootstrap_difference_ci,
    bootstrap_mean_ci,
    paired_test,
    power,
    probability_of_improvement,
    seeds_needed,
)
from trainer.records import METRICS, EpochRow, RunFolder, StepRow, Summary

BASE = {"train_loss": 0.5, "train_acc": 0.8, "test_loss": 0.6, "test_acc": 0.75, "gap": 0.05, "lr": 0.1, "lr_end": 0.1}


@pytest.fixture(autouse=True)
def no_figure_files(monkeypatch):
    """The figures are drawn (report.figures) but not written as PNG, PDF and SVG: that is tested in
    test_report.py, and takes most of a report's time."""
    monkeypatch.setattr(build, "save_figure", lambda fig, out, name: {})


def make_run(
    folder: Path,
    arm: str,
    seed: int,
    rows: list[dict],
    status: str = "completed",
    num_classes: int | None = 10,
    **fields,
) -> Path:
    """A run folder as the trainer leaves it: config.yaml (dataset.num_classes), metrics.jsonl and steps.csv from
    `rows` (over BASE, epoch_time 1 s unless given; four steps an epoch at the epoch's LR), summary.json from that
    history, through trainer.records' writers."""
    history = [EpochRow(epoch=i + 1, **{**BASE, "epoch_time": 1.0, **r}) for i, r in enumerate(rows)]
    steps = [StepRow(4 * (r.epoch - 1) + k + 1, r.epoch, r.lr, r.train_loss) for r in history for k in range(4)]
    run = RunFolder(folder)
    if num_classes is not None:
        run.write_config(OmegaConf.create({"dataset": {"num_classes": num_classes}}))
    run.write_history(history, steps)
    summary = Summary(
        status=status,
        seed=seed,
        overrides=[f"scheduler={arm}", f"seed={seed}"],
        epochs=len(rows),
        steps_per_epoch=4,
        wall_time_s=sum(r.epoch_time for r in history),
        **fields,
    )
    summary.record_history(history)
    run.write_summary(summary)
    return folder


def cells(markdown: str, label: str) -> dict[str, str]:
    """A group's row of the main table of table.md by column header."""
    lines = markdown.split("## Pairwise")[0].splitlines()
    header = next(line for line in lines if line.startswith("| ") and " n |" in line)
    names = [c.strip() for c in header.strip("|").split(" | ")]
    row = next(line for line in lines if line.startswith(f"| {label} |"))
    return dict(zip(names, (c.strip() for c in row.strip("|").split(" | ")), strict=True))


def csv_rows(path: Path, key: str = "group") -> dict[str, dict]:
    with open(path, newline="") as f:
        return {r[key]: r for r in csv.DictReader(f)}


def pct(values) -> str:
    return f"{100 * statistics.mean(values):.2f}"


# --- 1. the best is chosen on validation; every pair is tested ------------------------------------------------

# constant is best on test (91 %), cosine on validation (91 % val, 89 % test)
VAL_VS_TEST = {
    "constant": [(0.85, 0.910), (0.86, 0.915), (0.84, 0.908)],  # (val, test) per seed
    "cosine": [(0.910, 0.890), (0.912, 0.892), (0.908, 0.888)],
}


def val_vs_test_sweep(folder: Path, with_val: bool = True) -> Path:
    i = 0
    for arm, seeds in VAL_VS_TEST.items():
        for seed, (val, test) in enumerate(seeds):
            last = {"test_acc": test, **({"val_acc": val, "val_loss": 0.5} if with_val else {})}
            make_run(folder / str(i), arm, seed, [{"test_acc": 0.5, **({"val_acc": 0.5} if with_val else {})}, last])
            i += 1
    return folder


def test_the_best_is_chosen_on_validation_and_test_figures_are_reported(tmp_path):
    report = write_report([val_vs_test_sweep(tmp_path / "sweep")], tmp_path / "out")
    md, c = report.markdown, report.comparison
    assert c.reference.label == "cosine" and c.selected_on.name == "val_acc" and c.metric.name == "test_acc"
    assert "the best group, cosine, is chosen on val acc (the validation figure)" in md
    constant, cosine = cells(md, "constant"), cells(md, "cosine")
    p = "p vs best (Holm, all pairs)"
    assert cosine[p] == "best" and cosine["test acc (%)"].startswith("**")  # bold follows the choice
    assert cosine["val acc (%)"].startswith("**") and not constant["test acc (%)"].startswith("**")
    # constant's higher test accuracy is reported as it is, tested against the group chosen on validation
    a, b = ([t for _, t in VAL_VS_TEST[arm]] for arm in ("constant", "cosine"))
    assert constant["test acc (%)"].startswith(pct(a))
    expected = paired_test(a, b).p
    assert constant[p] == ("< 0.001" if expected < 0.001 else f"{expected:.3f}")
    assert float(csv_rows(report.files["groups.csv"])["constant"]["compare_p"]) == pytest.approx(expected, rel=1e-12)
    assert csv_rows(report.files["groups.csv"])["constant"]["compare_selected_on"] == "val_acc"

    # without a validation figure the table says the best was chosen on the test set
    alone = write_report([val_vs_test_sweep(tmp_path / "noval", with_val=False)], tmp_path / "out2")
    assert alone.comparison.reference.label == "constant" and alone.comparison.on_test
    assert "No validation figure in these runs" in alone.markdown and "chosen on test acc itself" in alone.markdown
    assert "No validation figure in these runs" in alone.latex.replace("\n% ", " ")
    # a baseline named in advance: the header says so, and the family is every group against it
    named = write_report([tmp_path / "noval"], tmp_path / "out3", baseline="cosine")
    assert named.comparison.mode == "baseline" and "the baseline cosine, named with --baseline" in named.markdown
    assert cells(named.markdown, "cosine")["p vs baseline (Holm)"] == "baseline"


@pytest.mark.slow
def test_all_pairs_holm_keeps_the_family_wise_error_and_testing_the_winner_does_not():
    """Five identical arms, three paired seeds, 300 sweeps: all-pairs Holm calls a difference in at most 5 % of
    them (its guarantee); testing every arm against the observed winner does in more."""
    rng = np.random.default_rng(0)
    calls = {"all-pairs": 0, "best": 0}
    sweeps = 300
    for _ in range(sweeps):
        seeds = rng.normal(0.0, 0.01, 3)  # a seed effect every arm shares: the tests pair by seed
        groups = []
        for k in range(5):
            values = list(0.8 + seeds + rng.normal(0.0, 0.01, 3))
            runs = [_memory_run(f"arm{k}", s, v) for s, v in enumerate(values)]
            groups.append(Group((("arm", f"arm{k}"),), f"arm{k}", runs, {"test_acc": Stat(values)} | _empty()))
        for mode in calls:
            comparison = compare_groups(groups, METRICS["test_acc"], mode=mode)
            calls[mode] += any(p.significant for p in comparison.pairs)
    assert calls["all-pairs"] / sweeps <= 0.05 + 2 * math.sqrt(0.05 * 0.95 / sweeps)
    assert calls["best"] >= calls["all-pairs"]


def _memory_run(arm: str, seed: int, value: float):
    from experiments.report.runs import Run

    summary = Summary(status="completed", seed=seed, figures={"final_test_acc": value})
    return Run(Path(arm) / str(seed), [f"arm={arm}", f"seed={seed}"], "completed", summary)


def _empty() -> dict[str, Stat]:
    return {m: Stat([]) for m in METRICS if m != "test_acc"}


# --- 2. a NaN or an infinity anywhere is a fact about its run -------------------------------------------------


def test_nan_and_inf_anywhere_are_listed_and_the_rest_is_tabled(tmp_path):
    sweep = tmp_path / "sweep"
    good = [{"test_acc": 0.7}, {"test_acc": 0.8}]
    make_run(sweep / "0", "a", 0, good)
    make_run(sweep / "1", "a", 1, [{"test_acc": 0.7}, {"test_acc": 0.82, "test_loss": math.nan}])  # the summary too
    make_run(sweep / "2", "a", 2, [{"test_acc": 0.7, "train_loss": math.inf}, {"test_acc": 0.81}])  # one epoch
    make_run(sweep / "3", "b", 0, good)
    make_run(sweep / "4", "b", 1, good)
    make_run(sweep / "5", "b", 2, [{"test_acc": 0.7}, {"test_acc": 0.79, "epoch_time": math.nan}])
    # the project's own strings, and a raw NaN token as json.dumps would write it
    summary = json.loads((sweep / "1" / "summary.json").read_text())
    assert summary["final_test_loss"] == "nan"
    summary["wall_time_s"] = "inf"
    (sweep / "1" / "summary.json").write_text(json.dumps(summary))
    with open(sweep / "4" / "metrics.jsonl", "a") as f:
        f.write(json.dumps({**BASE, "epoch": 3, "epoch_time": 1.0, "test_acc": float("nan")}) + "\n")
    with open(sweep / "4" / "steps.csv", "a") as f:
        f.write("9,3,inf,nan\n")
    assert main([str(sweep), "--out", str(tmp_path / "out"), "--target", "test_acc=0.75"]) == 0
    report = write_report([sweep], tmp_path / "out", targets=["test_acc=0.75"])
    a, b = report.groups
    assert a.counts["n"] == 3 and b.counts["n"] == 3  # every run completed and in the means
    assert a.stats["test_loss"].n == 2 and a.stats["test_loss"].nonfinite == 1
    assert a.stats["wall_time"].nonfinite == 1 and a.stats["test_acc"].values == pytest.approx([0.8, 0.82, 0.81])
    row = cells(report.markdown, "a")
    assert row["wall time (s)"].endswith("(1 non-finite)")
    notes = report.markdown.split("## Notes")[1]
    assert "final_test_loss is nan" in notes and "wall_time_s is inf" in notes
    assert "train_loss inf at epoch 1" in notes and "test_acc nan at epoch 3" in notes
    assert all(np.isfinite(s.y).all() for series in report.plots.values() for s in series)
    target = cells(report.markdown, "b")["epoch to test acc ≥ 75%"]
    assert target.startswith("2.0 ± 0.0 (3/3)")  # the NaN epoch time does not hide the epoch it was reached at
    groups = csv_rows(report.files["groups.csv"])
    assert groups["a"]["test_loss_nonfinite"] == "1" and groups["a"]["test_loss_n"] == "2"


# --- 3. survivorship: diverged and failed seeds ------------------------------------------------------------------


def test_an_arm_whose_seeds_diverged_is_never_silently_best(tmp_path):
    sweep = tmp_path / "sweep"
    make_run(sweep / "0", "risky", 0, [{"test_acc": 0.5}, {"test_acc": 0.95}])
    for seed in (1, 2):
        at = {"epoch": 2, "step": 6, "lr": 0.5, "loss": "nan"}
        make_run(sweep / str(seed), "risky", seed, [{"test_acc": 0.4}], status="diverged", diverged_at=at)
    for seed, acc in enumerate((0.90, 0.91, 0.905)):
        make_run(sweep / str(3 + seed), "safe", seed, [{"test_acc": 0.5}, {"test_acc": acc}])
    report = write_report([sweep], tmp_path / "out")
    risky, safe = cells(report.markdown, "risky"), cells(report.markdown, "safe")
    assert report.comparison.reference.label == "safe"
    assert risky["n"] == "1/3" and safe["n"] == "3/3"
    assert risky["p vs best (Holm, all pairs)"] == "n < 2" and risky["test acc (%)"].endswith(" ‡")
    assert "**" not in risky["test acc (%)"] and safe["test acc (%)"].startswith("**")
    assert "Not chosen, though their mean is better: risky (2 of 3 runs did not complete)." in report.markdown
    # the column where a diverged seed counts as what its model scores: chance
    column = "test acc, diverged = chance (%)"
    scored = [0.95, 0.1, 0.1]
    low, high = Stat(scored).ci
    expected = (
        f"{pct(scored)} ± {100 * statistics.stdev(scored):.2f} [{100 * max(low, 0):.2f}, {100 * min(high, 1):.2f}]"
    )
    assert risky[column] == expected and safe[column].startswith(pct([0.90, 0.91, 0.905]))
    assert "diverged = chance" in report.markdown and "what the method gives when divergence" in report.markdown
    row = csv_rows(report.files["groups.csv"])["risky"]
    assert (row["runs"], row["n"], row["diverged"], row["compare_scored_n"]) == ("3", "1", "2", "3")
    assert float(row["compare_scored_mean"]) == pytest.approx(statistics.mean(scored))


# --- 4. runs stuck at chance ---------------------------------------------------------------------------------


def stuck_sweep(folder: Path) -> Path:
    """multistep: one seed learns, two never leave chance (10 classes); cosine: three seeds learn."""
    chance = {"train_acc": 0.1, "test_acc": 0.1, "train_loss": math.log(10)}
    make_run(folder / "0", "multistep", 0, [{"train_acc": 0.6, "test_acc": 0.6}, {"train_acc": 0.9, "test_acc": 0.89}])
    make_run(folder / "1", "multistep", 1, [chance, chance])
    make_run(folder / "2", "multistep", 2, [chance, {**chance, "train_acc": 0.12}])
    for seed, acc in enumerate((0.89, 0.9, 0.895)):
        make_run(folder / str(3 + seed), "cosine", seed, [{"train_acc": 0.7, "test_acc": 0.7}, {"test_acc": acc}])
    return folder


def test_runs_stuck_at_chance_are_flagged_counted_and_drawn_apart(tmp_path):
    report = write_report([stuck_sweep(tmp_path / "sweep")], tmp_path / "out")
    multistep = cells(report.markdown, "multistep")
    assert multistep["at chance"] == "2" and cells(report.markdown, "cosine")["at chance"] == "0"
    assert multistep["test acc (%)"].startswith(pct([0.89, 0.1, 0.1]))  # in the means as what they scored
    assert "[0.00, " in multistep["test acc (%)"]  # the interval is cut at 0 %, not -77 %
    notes = report.markdown.split("## Notes")[1]
    assert notes.count("stuck at chance") == 2 and "chance 10.00 %" in notes
    assert "1.5 × chance" in report.markdown and "drawn apart in the figures" in report.markdown
    assert r"3/3$^\S$" in report.latex and "multistep: 2 of 3" in report.latex.replace("\n% ", " ")
    assert csv_rows(report.files["results.csv"], "run")[str(tmp_path / "sweep" / "1")]["at_chance"] == "stuck"
    # the figures: the group's mean and band over the seed that learned, the two others dotted beside it
    test_acc = [s for s in report.plots["test_acc"] if s.label.startswith("multistep")]
    main_line, *apart = test_acc
    assert main_line.n == 1 and list(main_line.y) == pytest.approx([60.0, 89.0]) and not main_line.err.any()
    assert len(apart) == 2 and all(s.apart and s.linestyle == ":" for s in apart)
    title = report.figures["test_acc"].axes[0].get_title()
    assert "dotted: 2 run(s) at chance, outside the means" in title
    low, high = report.figures["test_acc"].axes[0].get_ylim()
    assert low >= 0 and high <= 100
    # the page: the same, runs at chance dotted and in view with the band
    accuracy = figures(report)["accuracy"]["data"]
    group = [t for t in accuracy if t["legendgroup"] == "g0" and t["xaxis"] == "x2"]  # the test panel
    (mean,) = [t for t in group if t["meta"]["kind"] == "mean"]
    apart = [t for t in group if t["meta"]["kind"] == "apart"]
    assert mean["y"] == pytest.approx([60.0, 89.0]) and len(apart) == 2
    assert all(t["visible"] is True and t["line"]["dash"] == "dot" for t in apart)


def test_the_anytime_figure_draws_runs_at_chance_dotted_outside_the_mean(tmp_path):
    from experiments.report.branches import anytime_metric
    from experiments.report.plots import anytime_data, draw_anytime

    report = write_report([stuck_sweep(tmp_path / "sweep")], tmp_path / "out")
    metric = anytime_metric(report.groups, report.comparison)
    series = anytime_data(report.groups, [], metric)
    multistep = [s for s in series if s.label.startswith("multistep")]
    main_line, *apart = multistep
    assert main_line.role == "alone" and main_line.n == 1 and list(main_line.y) == pytest.approx([60.0, 89.0])
    assert [(s.role, s.linestyle, s.apart, s.n) for s in apart] == [("apart", ":", True, 1)] * 2
    assert not [s for s in series if s.label.startswith("cosine") and s.apart]  # every cosine seed learned
    ax = draw_anytime(series, metric).axes[0]
    dotted = [line for line in ax.get_lines() if line.get_linestyle() == ":"]
    assert len(dotted) == 2 and "dotted: 2 run(s) at chance, outside the means" in ax.get_title()


# --- 5. marks that do not mislead: n = 1, no spread, intervals within bounds -----------------------------------


def test_no_spread_gives_no_test_and_intervals_stay_within_what_is_possible(tmp_path):
    sweep = tmp_path / "sweep"
    for seed, acc in enumerate((0.8787, 0.9001, 0.8655)):  # one image of 10,000 apart in every seed
        make_run(sweep / str(seed), "a", seed, [{"test_acc": acc, "epoch_time": 1.0}])
        make_run(sweep / str(3 + seed), "b", seed, [{"test_acc": acc - 0.0001, "epoch_time": (1.0, 50.0, 1.0)[seed]}])
    make_run(sweep / "6", "c", 0, [{"test_acc": 0.999}])
    make_run(sweep / "7", "c", 1, [{"test_acc": 0.999}])
    make_run(sweep / "8", "c", 2, [{"test_acc": 0.5}])
    report = write_report([sweep], tmp_path / "out", metrics=["test_acc", "wall_time"])
    a, b, c = (cells(report.markdown, g) for g in "abc")
    p = "p vs best (Holm, all pairs)"
    assert a[p] == "best" and b[p] == "no spread" and b["test acc (%)"].endswith(" ‡")
    with open(report.files["pairs.csv"], newline="") as f:
        pairs = {(r["a"], r["b"]): r for r in csv.DictReader(f)}
    assert pairs[("a", "b")]["untested"] == "no spread" and pairs[("a", "b")]["p"] == ""
    assert "no p-value from a zero variance" in report.markdown
    high = float(c["test acc (%)"].split("[")[1].split(",")[1].rstrip("]†‡ "))
    assert high == 100.0  # t-interval 83.27 ± 71.7: cut at 100 %
    wall = b["wall time (s)"]
    assert wall.split("[")[1].startswith("0.0,")  # times are never negative
    assert "cut to what the figure can be" in report.markdown
    row = csv_rows(report.files["groups.csv"])["c"]
    assert float(row["test_acc_ci_high"]) == 1.0 and float(row["test_acc_ci_low"]) > 0


# --- 6. beyond the t-table: bootstrap, P(A > B), seeds for power -----------------------------------------------


def test_probability_of_improvement_counts_ties_half_with_its_exact_bootstrap_interval():
    a, b = [1.0, 2.0, 3.0], [2.0, 2.0, 0.0]
    p, (low, high) = probability_of_improvement(a, b)
    assert p == pytest.approx(6 / 9)  # 1: 0 + 0 + 1; 2: 1/2 + 1/2 + 1; 3: 1 + 1 + 1
    assert probability_of_improvement(a, b, better="min")[0] == pytest.approx(3 / 9)

    # by hand: every resample of each arm (27 x 27), each equally likely; the 2.5 % and 97.5 % quantiles
    def score(xs, ys):
        return sum(Fraction(1) if x > y else Fraction(1, 2) if x == y else Fraction(0) for x in xs for y in ys) / 9

    resampled = sorted(
        score([a[i] for i in ia], [b[j] for j in ib])
        for ia in itertools.product(range(3), repeat=3)
        for ib in itertools.product(range(3), repeat=3)
    )
    n = len(resampled)
    assert (low, high) == (float(resampled[math.ceil(0.025 * n) - 1]), float(resampled[math.ceil(0.975 * n) - 1]))


def test_bootstrap_intervals_match_scipy_and_stay_within_the_data():
    values = [0.81, 0.84, 0.79, 0.88, 0.83, 0.86, 0.80, 0.85]
    low, high = bootstrap_mean_ci(values)  # 8^8 resamples: drawn, not listed
    reference = scipy_stats.bootstrap((values,), np.mean, method="percentile", n_resamples=20000, random_state=1)
    assert low == pytest.approx(reference.confidence_interval.low, abs=0.002)
    assert high == pytest.approx(reference.confidence_interval.high, abs=0.002)
    assert min(values) <= low < high <= max(values)
    assert bootstrap_mean_ci([0.5]) is None
    d_low, d_high = bootstrap_difference_ci([0.9, 0.91, 0.92], [0.8, 0.82, 0.81], paired=True)
    assert 0.08 <= d_low < d_high <= 0.12  # the paired differences 0.10, 0.09, 0.11


@pytest.mark.parametrize(
    "effect, paired, n",
    [(0.5, False, 64), (0.8, False, 26), (1.0, False, 17), (0.5, True, 34), (1.0, True, 10)],
)
def test_seeds_needed_are_those_of_the_power_tables(effect, paired, n):
    """Cohen's (1988) and G*Power's sample sizes for 80 % power at alpha = 0.05, two-sided."""
    assert seeds_needed(effect, 1.0, paired) == n
    assert power(effect, n, paired) >= 0.8 > power(effect, n - 1, paired)


def test_power_holds_where_scipys_noncentral_t_gives_nan():
    """A large effect at three seeds (nct gives NaN there): the power against 200,000 simulated t statistics."""
    effect, n, alpha = 8.0, 3, 0.05 / 21
    rng = np.random.default_rng(0)
    t = (rng.standard_normal(200_000) + effect * math.sqrt(n)) / np.sqrt(rng.chisquare(n - 1, 200_000) / (n - 1))
    critical = scipy_stats.t.ppf(1 - alpha / 2, n - 1)
    assert power(effect, n, True, alpha) == pytest.approx(np.mean(np.abs(t) > critical), abs=0.005)
    powers = [power(effect, k, True, alpha) for k in range(2, 8)]
    assert all(np.isfinite(powers)) and powers == sorted(powers)


def test_seeds_needed_are_infinite_without_a_difference_and_unknown_without_spread():
    assert seeds_needed(0.0, 1.0, True) == math.inf and seeds_needed(0.1, 0.0, True) is None
    assert seeds_needed(1e-6, 1.0, False) == math.inf  # beyond MAX_SEEDS


def test_the_pairwise_table_carries_the_bootstrap_p_better_and_seeds(tmp_path):
    report = write_report([val_vs_test_sweep(tmp_path / "sweep")], tmp_path / "out", metrics=["test_acc"])
    (pair,) = report.comparison.pairs
    section = report.markdown.split("## Pairwise comparisons (1)")[1]
    assert "| constant | cosine | paired |" in section and "P(A > B)" in section and "seeds for 80 % power" in section
    assert pair.p_better == 1.0 and pair.difference > 0  # constant's every run beats cosine's on test
    assert pair.seeds_needed == seeds_needed(pair.difference, pair.spread, True)
    with open(report.files["pairs.csv"], newline="") as f:
        (row,) = csv.DictReader(f)
    assert float(row["p_better"]) == 1.0 and float(row["seeds_needed"]) == pair.seeds_needed
    groups = csv_rows(report.files["groups.csv"])
    assert float(groups["constant"]["compare_p_better"]) == 1.0 and groups["cosine"]["compare_p_better"] == ""


# --- 8. the honest gap and the training time to a target -------------------------------------------------------


def test_the_gap_column_prefers_the_end_of_epoch_gap_and_says_which(tmp_path):
    honest, averaged = tmp_path / "honest", tmp_path / "averaged"
    for seed in range(2):
        rows = [{"train_eval_acc": 0.82, "eval_gap": 0.07, "train_time": 0.6, "eval_time": 0.4}] * 2
        make_run(honest / str(seed), "a", seed, rows)
        make_run(averaged / str(seed), "a", seed, [{}, {}])
    report = write_report([honest], tmp_path / "out1", targets=["test_acc=0.7"])
    names = [m.name for m in report.metrics]
    assert "eval_gap" in names and "gap" not in names
    assert "gap, end of epoch (%)" in report.markdown and "the gap this table shows" in report.markdown
    row = cells(report.markdown, "scheduler=a")
    assert row["time (s) to test acc ≥ 70%"] == "0.6 ± 0.0 (2/2)"  # train_time, not the epoch's 1.0 s
    assert row["gap, end of epoch (%)"].startswith("7.00 ± 0.00")
    assert "train_time of metrics.jsonl summed: training steps only" in report.markdown
    assert "end of epoch" in report.figures["gap"].axes[0].get_title()
    old = write_report([averaged], tmp_path / "out2", targets=["test_acc=0.7"])
    assert "gap" in [m.name for m in old.metrics] and "below zero early on" in old.markdown
    assert cells(old.markdown, "scheduler=a")["time (s) to test acc ≥ 70%"] == "1.0 ± 0.0 (2/2)"
    assert "evaluation time is included" in old.markdown
