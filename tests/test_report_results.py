"""A results.csv computed again without its run folders (`python -m experiments.report results.csv`): the same
tables as from the folders, the committed studies' readings under all-pairs Holm, and one-line errors."""

from __future__ import annotations

import csv
import math
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT
from omegaconf import OmegaConf

from experiments.report import build, main, write_report
from experiments.report.tables import FROM_RESULTS
from trainer.records import EpochRow, RunFolder, Summary

STUDIES = ROOT / "experiments"
BASE = {"train_loss": 0.5, "train_acc": 0.8, "test_loss": 0.6, "test_acc": 0.75, "gap": 0.05, "lr": 0.1, "lr_end": 0.1}


def make_run(folder: Path, arm: str, seed: int, rows: list[dict], status: str = "completed", **fields) -> Path:
    """A run folder as the trainer leaves it, through trainer.records' writers: config.yaml (10 classes),
    metrics.jsonl from `rows` over BASE, summary.json from that history."""
    history = [EpochRow(epoch=i + 1, **{**BASE, "epoch_time": 1.0, **r}) for i, r in enumerate(rows)]
    run = RunFolder(folder)
    run.write_config(OmegaConf.create({"dataset": {"num_classes": 10}}))
    run.write_history(history, [])
    overrides = [f"scheduler={arm}", f"seed={seed}"]
    summary = Summary(status=status, seed=seed, overrides=overrides, epochs=len(rows), wall_time_s=1.0, **fields)
    summary.record_history(history)
    run.write_summary(summary)
    return folder


@pytest.fixture(autouse=True)
def no_figure_files(monkeypatch):
    monkeypatch.setattr(build, "save_figure", lambda fig, out, name: {})


def tables(markdown: str) -> list[str]:
    """The rows of table.md's main table and of its pairwise comparisons."""
    return [
        line for line in markdown.split("## Not included")[0].split("## Notes")[0].splitlines() if line.startswith("|")
    ]


def rows(path: Path, key: str = "group") -> dict[str, dict]:
    with open(path, newline="") as f:
        return {r[key]: r for r in csv.DictReader(f)}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """Three arms with a validation split: one seed of `risky` diverged, one of `slow` stuck at chance."""
    folder = tmp_path_factory.mktemp("results") / "sweep"
    finals = {"fast": (0.91, 0.92, 0.905), "slow": (0.88, 0.1, 0.87), "risky": (0.93, None, 0.925)}
    i = 0
    for arm, accs in finals.items():
        for seed, acc in enumerate(accs):
            if acc is None:
                at = {"epoch": 2, "step": 8, "lr": 1.0, "loss": "inf"}
                make_run(folder / str(i), arm, seed, [{"test_acc": 0.5}], status="diverged", diverged_at=at)
            else:
                train = 0.1 if acc == 0.1 else acc + 0.02
                row = {"test_acc": acc, "val_acc": acc - 0.005, "val_loss": 0.4, "train_acc": train}
                make_run(folder / str(i), arm, seed, [{**row, "test_acc": acc - 0.1, "train_acc": train - 0.0}, row])
            i += 1
    return folder


def test_a_results_csv_gives_the_tables_of_its_run_folders(sweep, tmp_path, capsys):
    first = write_report([sweep], tmp_path / "folders")
    assert main([str(tmp_path / "folders" / "results.csv"), "--out", str(tmp_path / "again")]) == 0
    again = (tmp_path / "again" / "table.md").read_text()
    assert capsys.readouterr().out.strip() == again.strip()
    assert tables(again) == tables(first.markdown) and FROM_RESULTS in again
    assert sorted(p.name for p in (tmp_path / "again").iterdir()) == [
        "groups.csv",
        "pairs.csv",
        "table.md",
        "table.tex",
    ]
    before, after = rows(tmp_path / "folders" / "groups.csv"), rows(tmp_path / "again" / "groups.csv")
    for group, row in before.items():
        for column in (
            c for c in row if c.endswith(("_n", "_mean", "_std", "_ci_low", "_ci_high")) or c.startswith("compare_")
        ):
            assert after[group][column] == row[column], (group, column)
    assert (tmp_path / "again" / "pairs.csv").read_text() == (tmp_path / "folders" / "pairs.csv").read_text()
    # what the rows recorded: the diverged seed's reason, the seed stuck at chance, chance itself
    assert "diverged at epoch 2, step 8 (loss inf)" in again and "stuck at chance" in again
    assert "test acc, diverged = chance (%)" in again


def test_the_default_report_folder_of_a_results_csv_is_beside_it(sweep, tmp_path):
    write_report([sweep], tmp_path / "study")
    report = write_report([tmp_path / "study" / "results.csv"])
    assert report.files["table.md"] == tmp_path / "study" / "report" / "table.md" and report.from_results


def p_of(markdown: str, label: str, column: str) -> str:
    lines = markdown.split("## Pairwise")[0].splitlines()
    header = next(line for line in lines if line.startswith("| arm |"))
    names = [c.strip() for c in header.strip("|").split(" | ")]
    row = next(line for line in lines if line.startswith(f"| {label} |"))
    return dict(zip(names, (c.strip() for c in row.strip("|").split(" | ")), strict=True))[column]


@pytest.mark.parametrize(
    "study, arm, vs_best, all_pairs",
    [("d2l_schedulers", "d2l_sqrt", "0.038", "0.086"), ("adaptive_vs_schedules", "adaptive_adagrad", "0.031", "0.098")],
)
@pytest.mark.slow
def test_the_committed_studies_under_all_pairs_holm(study, arm, vs_best, all_pairs, tmp_path):
    """On each committed study: against the observed best, Holm across k - 1 tests (--comparisons best), the arm is
    "worse"; across every pair (the default) it is not."""
    results = STUDIES / study / "results.csv"
    report = write_report([results], tmp_path / "all", num_classes=10)
    assert p_of(report.markdown, arm, "p vs best (Holm, all pairs)") == all_pairs
    best = write_report([results], tmp_path / "best", comparisons="best", num_classes=10)
    assert p_of(best.markdown, arm, "p vs best (Holm)") == vs_best
    assert "No validation figure in these runs" in report.markdown  # both studies train on every image


@pytest.mark.slow
def test_the_committed_studies_tables_are_the_reports_own(tmp_path):
    """table.md, table.tex and groups.csv of the committed studies are what the report now writes from their
    results.csv (regenerated with the commands their READMEs give)."""
    for study in ("d2l_schedulers", "adaptive_vs_schedules", "snapshot_ensemble"):
        out = tmp_path / study
        assert main([str(STUDIES / study / "results.csv"), "--out", str(out), "--num-classes", "10"]) == 0
        committed = (STUDIES / study / "table.md").read_text()
        assert tables((out / "table.md").read_text()) == tables(committed), study
        for name in ("table.tex", "groups.csv", "pairs.csv"):
            assert (out / name).read_text() == (STUDIES / study / name).read_text(), (study, name)


def test_multistep_seeds_at_chance_in_the_d2l_study(tmp_path):
    report = write_report([STUDIES / "d2l_schedulers" / "results.csv"], tmp_path / "out", num_classes=10)
    multistep = next(g for g in report.groups if g.label == "d2l_multistep")
    assert [r.at_chance for r in multistep.runs] == [None, "at chance", "at chance"]
    low, high = (
        float(v) for v in p_of(report.markdown, "d2l_multistep", "test acc (%)").split("[")[1].split("]")[0].split(", ")
    )
    assert (low, high) == (0.0, 100.0)  # not [-77.29, 150.15]
    unknown = write_report([STUDIES / "d2l_schedulers" / "results.csv"], tmp_path / "unknown")
    assert "chance is unknown for 15 completed run(s)" in unknown.markdown and "at chance |" not in unknown.markdown


@pytest.fixture(scope="module")
def results_csv(sweep, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("folders")
    write_report([sweep], out)
    return out / "results.csv"


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--comparisons", "some"], "argument --comparisons: invalid choice: 'some'"),
        (["--comparisons", "baseline"], "--comparisons baseline needs --baseline LABEL"),
        (["--comparisons", "best", "--baseline", "fast"], "--comparisons best tests against the best group"),
        (["--num-classes", "1"], "--num-classes 1: a classifier has 2 classes or more"),
        (["--num-classes", "ten"], "argument --num-classes: invalid int value: 'ten'"),
        (["--target", "test_acc=0.5"], "--target test_acc=0.5: the results.csv has no to_test_acc=0.5_epoch column"),
        (["--watch"], "--watch and --serve follow run folders as their jobs write them, not a results.csv"),
    ],
)
@pytest.mark.slow
def test_bad_arguments_are_one_line_before_any_work(results_csv, tmp_path, capsys, args, expected):
    try:
        code = main([str(results_csv), "--out", str(tmp_path / "out"), *args])
    except SystemExit as e:  # argparse's own errors
        code = e.code
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("report: error: ") and expected in err, err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_the_command_line_reads_a_results_csv(results_csv, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "experiments.report", str(results_csv), "--out", str(tmp_path / "out")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert FROM_RESULTS in done.stdout and done.stderr.startswith("wrote table.md, table.tex, groups.csv, pairs.csv to")


def test_a_results_csv_is_not_mixed_with_run_folders_and_must_be_one(results_csv, sweep, tmp_path, capsys):
    assert main([str(results_csv), str(sweep), "--out", str(tmp_path / "out")]) == 2
    assert "give results.csv files or run folders, not both" in capsys.readouterr().err
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    assert main([str(other), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a results.csv a report wrote (no run, status, epochs_completed column)" in err
    assert not (tmp_path / "out").exists()


def test_a_figure_that_is_not_a_number_damages_its_row_only(results_csv, tmp_path):
    path = tmp_path / "results.csv"
    lines = results_csv.read_text().splitlines()
    header = lines[0].split(",")
    cells = next(csv.reader([lines[1]]))
    cells[header.index("final_test_acc")] = "high"
    lines[1] = ",".join(f'"{c}"' if "," in c else c for c in cells)
    path.write_text("\n".join(lines) + "\n")
    report = write_report([path], tmp_path / "again")
    (damaged,) = report.excluded[:1]
    assert damaged.status == "damaged" and 'final_test_acc is "high", not a number' in damaged.reason
    assert report.groups[0].counts["n"] == 2 and math.isfinite(report.groups[0].stats["test_acc"].mean)
