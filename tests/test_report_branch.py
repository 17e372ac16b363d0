"""experiments/report over branched runs (branch.parent, branch.epoch): per seed, a constant-LR parent that keeps
its epoch-2 and epoch-3 states, a linear cooldown branched from each of them and a cosine run trained to the
parent's length; reported with the parents among the runs, without them (read from their folders), and once their
folders are gone."""

from __future__ import annotations

import csv
import html
import json
import shutil
import statistics
from pathlib import Path

import numpy as np
import pytest
from helpers import TINY, compose_config

from experiments.report import build, write_report
from experiments.report.columns import REPORT_METRICS
from experiments.report.plots import Series, draw_anytime
from experiments.report.runs import BRANCH_RECORD_COLUMNS
from trainer.engine.fit import fit

RUN = [*TINY, "trainer.max_steps_per_epoch=4"]
SEEDS = (0, 1)
PARENT_EPOCHS = 4
BRANCHES = {2: 4, 3: 5}  # branch epoch -> the branch's last epoch (trainer.epochs)
FAMILY = "scheduler=constant"  # the parent group's label begins so


def train(folder: Path, *overrides: str) -> None:
    fit(compose_config([*RUN, *overrides]), folder, {"overrides": list(overrides)})


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("branched")
    for seed in SEEDS:
        parent = root / "parents" / str(seed)
        keep = f"trainer.keep_checkpoints=[{','.join(map(str, BRANCHES))}]"
        train(parent, "scheduler=constant", f"trainer.epochs={PARENT_EPOCHS}", keep, f"seed={seed}")
        for epoch, end in BRANCHES.items():
            branch = [f"trainer.epochs={end}", f"branch.parent={parent}", f"branch.epoch={epoch}", f"seed={seed}"]
            train(root / "cooldowns" / f"{epoch}_{seed}", "scheduler=linear_to_zero", *branch)
        train(root / "cosine" / str(seed), "scheduler=cosine", f"trainer.epochs={PARENT_EPOCHS}", f"seed={seed}")
    return root


@pytest.fixture(scope="module")
def reports(runs, summaries, tmp_path_factory) -> dict:
    """The report with the parents collected ("all"), computed again from its results.csv ("results"), of the
    folder given relative to the current folder ("relative"), without the parents among the folders ("read": read from the folders the branches name), and once those folders are deleted
    ("gone"; the summaries are read before). Of the
    figures, only the anytime one is written to files (the others are test_report's, and take seconds)."""
    save = build.save_figure
    with pytest.MonkeyPatch.context() as m:
        m.setattr(build, "save_figure", lambda fig, folder, name: save(fig, folder, name) if name == "anytime" else {})
        out = {"all": write_report([runs], tmp_path_factory.mktemp("all"))}
        out["results"] = write_report([out["all"].files["results.csv"]], tmp_path_factory.mktemp("results"))
        m.chdir(runs.parent)  # the folders given relative to the current folder, as a person types them
        out["relative"] = write_report([Path(runs.name)], tmp_path_factory.mktemp("relative"))
        out["read"] = write_report([runs / "cooldowns", runs / "cosine"], tmp_path_factory.mktemp("read"))
        shutil.rmtree(runs / "parents")
        out["gone"] = write_report([runs / "cooldowns", runs / "cosine"], tmp_path_factory.mktemp("gone"))
    return out


def summary(folder: Path) -> dict:
    return json.loads((folder / "summary.json").read_text())


@pytest.fixture(scope="module")
def summaries(runs) -> dict:
    """Every run's summary.json, read before the parents' folders are deleted: (kind, seed) -> summary, the
    kinds "parent", "cosine" and each branch epoch."""
    out = {}
    for seed in SEEDS:
        out["parent", seed] = summary(runs / "parents" / str(seed))
        out["cosine", seed] = summary(runs / "cosine" / str(seed))
        for epoch in BRANCHES:
            out[epoch, seed] = summary(runs / "cooldowns" / f"{epoch}_{seed}")
    return out


def by_hand(summaries: dict, with_parent: bool = True) -> dict:
    """The branches' own epochs and seconds, and the family's cost per seed then its mean, from the summaries."""
    own_epochs = {e: [summaries[e, s]["epochs"] - summaries[e, s]["branch"]["epoch"] for s in SEEDS] for e in BRANCHES}
    own_wall = {
        e: [summaries[e, s]["wall_time_s"] - summaries[e, s]["branch"]["shared_wall_time_s"] for s in SEEDS]
        for e in BRANCHES
    }
    parent_epochs = [summaries["parent", s]["epochs_completed"] if with_parent else 0 for s in SEEDS]
    parent_wall = [summaries["parent", s]["wall_time_s"] if with_parent else 0.0 for s in SEEDS]
    family_epochs = [parent_epochs[i] + sum(own_epochs[e][i] for e in BRANCHES) for i in range(len(SEEDS))]
    family_wall = [parent_wall[i] + sum(own_wall[e][i] for e in BRANCHES) for i in range(len(SEEDS))]
    return {
        "own_epochs": own_epochs,
        "own_wall": own_wall,
        "family_epochs": statistics.mean(family_epochs),
        "family_wall": statistics.mean(family_wall),
        "separate_wall": sum(statistics.mean(summaries[e, s]["wall_time_s"] for s in SEEDS) for e in BRANCHES),
    }


def branches_csv(report) -> list[dict]:
    with open(report.files["branches.csv"], newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_a_branch_groups_with_its_seeds_not_by_its_parent_folder(reports, summaries):
    report = reports["all"]
    assert len(report.groups) == 2 + len(BRANCHES)
    branch_groups = [g for g in report.groups if any("branch.parent" in r.params for r in g.runs)]
    assert sorted(int(g.runs[0].params["branch.epoch"]) for g in branch_groups) == list(BRANCHES)
    for g in branch_groups:
        assert len({r.params["branch.parent"] for r in g.runs}) == len(SEEDS) == len(g.runs)
        assert g.counts["n"] == len(SEEDS) and "branch.parent" not in g.label
    with open(report.files["results.csv"], newline="") as f:  # the parent folders are kept, one per run
        rows = list(csv.DictReader(f))
    assert sorted(r["branch.parent"] for r in rows if r["branch.parent"]) == sorted(
        str(reports["all"].folders[0] / "parents" / str(s)) for s in SEEDS for _ in BRANCHES
    )
    for row in (r for r in rows if r["branch.parent"]):  # and each branch's record of what it shares
        seed, epoch = int(row["seed"]), int(row["branch.epoch"])
        record = summaries[epoch, seed]["branch"]
        assert row["parent_folder"] == record["parent"] and int(row["shared_epochs"]) == epoch == record["epoch"]
        assert float(row["shared_wall_time_s"]) == pytest.approx(record["shared_wall_time_s"])
    assert all(r["parent_folder"] == r["shared_epochs"] == "" for r in rows if not r["branch.parent"])


@pytest.mark.parametrize("kind", ["all", "read", "results"])
@pytest.mark.slow
def test_branches_csv_counts_the_shared_epochs_once(reports, summaries, kind):
    # "results": from results.csv alone, whose rows keep each branch's record of its parent
    report, expected = reports[kind], by_hand(summaries)
    rows = branches_csv(report)
    assert [int(r["branch_epoch"]) for r in rows] == list(BRANCHES)
    assert [int(r["end_epoch"]) for r in rows] == list(BRANCHES.values())
    for row, epoch in zip(rows, BRANCHES, strict=True):
        assert row["parent_cost"] == "counted" and int(row["n"]) == len(SEEDS)
        assert float(row["own_epochs_mean"]) == statistics.mean(expected["own_epochs"][epoch])
        assert float(row["own_wall_s_mean"]) == pytest.approx(statistics.mean(expected["own_wall"][epoch]))
        assert float(row["own_wall_s_std"]) == pytest.approx(statistics.stdev(expected["own_wall"][epoch]))
        values = [summaries[epoch, s]["final_val_acc"] for s in SEEDS]  # the runs have a validation split
        assert float(row["val_acc_mean"]) == pytest.approx(statistics.mean(values))
        assert float(row["val_acc_std"]) == pytest.approx(statistics.stdev(values))
        assert (
            float(row["family_epochs"])
            == expected["family_epochs"]
            == PARENT_EPOCHS + sum(end - e for e, end in BRANCHES.items())
        )
        assert float(row["family_wall_s"]) == pytest.approx(expected["family_wall"])
        assert int(row["family_seeds"]) == len(SEEDS)
        assert int(row["separate_epochs"]) == sum(BRANCHES.values())
        assert float(row["separate_wall_s"]) == pytest.approx(expected["separate_wall"])
    line = (
        f"{expected['family_epochs']} epochs ({expected['family_wall']:.1f} s) for its {len(BRANCHES)} branches; "
        f"trained separately: {sum(BRANCHES.values())} epochs"
    )
    assert "## Branches (2)" in report.markdown and line in report.markdown
    if kind == "read":  # the parents are named by their folders
        assert rows[0]["parent_group"] == ";".join(str(report.folders[0].parent / "parents" / str(s)) for s in SEEDS)


@pytest.mark.slow
def test_the_anytime_figure_draws_the_parent_and_each_branch_from_its_epoch(reports):
    report = reports["all"]
    for fmt in ("png", "pdf", "svg"):
        assert report.files[f"anytime.{fmt}"].stat().st_size > 0
    assert "<svg" in report.files["anytime.svg"].read_text()[:1000]
    ax = report.figures["anytime"].axes[0]
    assert ax.get_title().startswith("Anytime validation accuracy") and ax.get_ylabel() == "val acc (%)"
    lines = {line.get_label(): line for line in ax.get_lines()}
    parents = [line for label, line in lines.items() if label.endswith("(parent)")]
    assert len(parents) == 1 and parents[0].get_label().startswith(FAMILY)
    parent_x, parent_y = list(parents[0].get_xdata()), list(parents[0].get_ydata())
    assert parent_x == list(range(1, PARENT_EPOCHS + 1))
    for g in report.groups:
        if "branch.epoch" not in g.runs[0].params:
            continue
        epoch = int(g.runs[0].params["branch.epoch"])
        x, y = list(lines[g.label].get_xdata()), list(lines[g.label].get_ydata())
        assert x == list(range(epoch, BRANCHES[epoch] + 1))
        assert y[0] == pytest.approx(parent_y[parent_x.index(epoch)])  # from the parent's point
    cosine = next(g for g in report.groups if g.label.startswith("scheduler=cosine"))
    assert list(lines[cosine.label].get_xdata()) == [PARENT_EPOCHS]  # its final epoch, marked; its curve faint
    assert list(lines[f"_{cosine.label}"].get_xdata()) == list(range(1, PARENT_EPOCHS + 1))
    roles = [s.role for s in report.plots["anytime"]]
    assert roles == ["parent", *["branch"] * len(BRANCHES), "alone"]


@pytest.mark.slow
def test_without_the_parents_folders_the_report_says_their_cost_is_unknown(reports, summaries):
    report, expected = reports["gone"], by_hand(summaries, with_parent=False)
    for name in ("table.md", "table.tex", "results.csv", "groups.csv", "branches.csv", "anytime.svg", "index.html"):
        assert report.files[name].is_file(), name
    rows = branches_csv(report)
    assert [r["parent_cost"] for r in rows] == ["unknown"] * len(BRANCHES)
    for row, epoch in zip(rows, BRANCHES, strict=True):
        assert float(row["own_epochs_mean"]) == statistics.mean(expected["own_epochs"][epoch])
        assert float(row["own_wall_s_mean"]) == pytest.approx(statistics.mean(expected["own_wall"][epoch]))
        assert float(row["family_epochs"]) == expected["family_epochs"] == sum(end - e for e, end in BRANCHES.items())
        assert float(row["family_wall_s"]) == pytest.approx(expected["family_wall"])
    lines = [line for line in report.markdown.splitlines() if "the parent's cost is unknown" in line]
    assert len(lines) == 1 and f"its branches alone: {expected['family_epochs']} epochs" in lines[0]
    assert "the parent's cost is unknown" in html.unescape(report.files["index.html"].read_text())
    parent = [s for s in report.plots["anytime"] if s.role == "parent"]  # the epochs its branches share with it
    assert len(parent) == 1 and list(parent[0].x) == list(range(1, max(BRANCHES) + 1))


@pytest.mark.slow
def test_a_results_csv_gives_the_branches_from_any_folder_and_none_without_their_records(
    reports, tmp_path, monkeypatch
):
    monkeypatch.setattr(build, "save_figure", lambda fig, folder, name: {})
    source = reports["relative"]
    monkeypatch.chdir(tmp_path)  # another folder than the one the relative run folders were given from
    again = write_report([source.files["results.csv"]], tmp_path / "again")
    assert again.files["branches.csv"].read_text() == source.files["branches.csv"].read_text()
    assert again.markdown.split("## Branches")[1] == source.markdown.split("## Branches")[1]
    # a results.csv without the branches' records: no Branches section rather than one with unknown costs
    with open(source.files["results.csv"], newline="") as f:
        rows = list(csv.DictReader(f))
    (tmp_path / "old").mkdir()
    with open(tmp_path / "old" / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, [k for k in rows[0] if k not in BRANCH_RECORD_COLUMNS])
        writer.writeheader()
        writer.writerows({k: v for k, v in r.items() if k not in BRANCH_RECORD_COLUMNS} for r in rows)
    old = write_report([tmp_path / "old" / "results.csv"], tmp_path / "old_report")
    assert "## Branches" not in old.markdown and "branches.csv" not in old.files
    assert len(old.groups) == len(again.groups)  # the tables themselves as before


@pytest.mark.slow
def test_runs_without_branches_get_no_branch_files(runs, tmp_path, monkeypatch):
    monkeypatch.setattr(build, "save_figure", lambda fig, folder, name: {})
    report = write_report([runs / "cosine"], tmp_path)
    assert "anytime" not in report.figures and "anytime" not in report.plots
    assert not (tmp_path / "branches.csv").exists() and "## Branches" not in report.markdown


def test_the_anytime_axis_shows_the_epochs_from_the_first_branch_point_on():
    """A first epoch far below the rest (50 % against 85-90 %) would squash the ends the figure is read at: the
    y-range covers the epochs from the first branch point on, bands included, and the axis says so."""

    def series(label, x, y, err, role):
        return Series(label, np.array(x, float), np.array(y), np.array(err), 2, "C0", role=role)

    parent = series("constant (parent)", [1, 2, 3, 4], [50.0, 85.0, 86.0, 87.0], [1.0, 1.0, 1.0, 1.0], "parent")
    branch = series("cooldown", [2, 3, 4], [85.0, 88.0, 90.0], [1.0, 0.5, 0.5], "branch")
    alone = series("cosine", [1, 2, 3, 4], [55.0, 84.0, 87.0, 89.0], [0.0, 0.0, 0.0, 2.0], "alone")
    metric = REPORT_METRICS["val_acc"]
    ax = draw_anytime([parent, branch, alone], metric).axes[0]
    low, high = ax.get_ylim()
    assert 80 < low < 84 and 91 <= high < 92.5  # 84 - 0.1 * (91 - 84) .. 91 + 0.7: the later points and bands
    assert ax.get_xlabel().endswith("epochs before 2 partly outside the y-range")
    # where every epoch lies within the later range, the axis is left as drawn
    ax = draw_anytime([branch, series("cosine", [2, 3, 4], [85.0, 87.0, 89.0], [0.0] * 3, "alone")], metric).axes[0]
    assert "outside the y-range" not in ax.get_xlabel()
