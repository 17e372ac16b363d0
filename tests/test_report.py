"""experiments/report over one real sweep (2 schedules x 3 seeds on synthetic data), a damaged copy of it, and
runs built in memory."""

from __future__ import annotations

import csv
import io
import json
import math
import re
import shutil
import statistics
import subprocess
import sys
import warnings
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest
from helpers import FAST, ROOT, run_cli
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.container import BarContainer
from scipy import stats as scipy_stats

from experiments.report import columns, main, write_report
from experiments.report.groups import aggregate, short_values
from experiments.report.plots import PLOTS, SPLITS, Series, draw, plot_data
from experiments.report.runs import Run, collect
from experiments.report.statistics import Stat, holm, paired_test, t_quantile, welch_test
from experiments.report.tables import display_path, tex_escape
from trainer.records import METRICS, EpochRow, RunFolder, Summary

SCHEDULES = ("constant", "cosine")
SEEDS = (0, 1, 2)
EPOCHS = 2
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="session")
def sweep(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("multirun") / "sweep"
    args = [
        "-m",
        *FAST,  # 2048 training images: every run leaves chance in two epochs
        f"trainer.epochs={EPOCHS}",
        f"scheduler={','.join(SCHEDULES)}",
        f"seed={','.join(map(str, SEEDS))}",
        f"hydra.sweep.dir={folder}",
    ]
    done = run_cli(args, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return folder


@pytest.fixture(scope="session")
def report(sweep, tmp_path_factory):
    return write_report([sweep], tmp_path_factory.mktemp("report"))


def job(folder: Path, schedule: str, seed: int) -> Path:
    return folder / str(SCHEDULES.index(schedule) * len(SEEDS) + SEEDS.index(seed))


def edit_summary(run_dir: Path, **changes) -> None:
    path = run_dir / "summary.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


@pytest.fixture(scope="session")
def damaged(sweep, tmp_path_factory) -> Path:
    """The sweep with one job failed, one diverged, one killed before its summary and one never started."""
    folder = tmp_path_factory.mktemp("damaged") / "sweep"
    shutil.copytree(sweep, folder)
    edit_summary(job(folder, "constant", 1), status="failed", error="RuntimeError: CUDA error: out of memory")
    at = {"epoch": 2, "step": 6, "lr": 0.3, "loss": "nan"}
    edit_summary(job(folder, "constant", 2), status="diverged", diverged_at=at)
    (job(folder, "cosine", 1) / "summary.json").unlink()
    shutil.rmtree(job(folder, "cosine", 2))
    return folder


def summaries(folder: Path, schedule: str) -> list[dict]:
    """The completed runs' summary.json of one schedule, read straight from the files."""
    out = []
    for path in sorted(folder.glob("*/summary.json")):
        s = json.loads(path.read_text())
        if f"scheduler={schedule}" in s["overrides"] and s["status"] == "completed":
            out.append(s)
    return out


def row_of(markdown: str, label: str) -> list[str]:
    line = next(line for line in markdown.splitlines() if line.startswith(f"| {label} |"))
    return [c.strip().removesuffix(" †").strip("*") for c in line.strip("|").split(" | ")]  # without bold, mark


def cells_of(markdown: str, label: str) -> dict[str, str]:
    """A group's row of table.md by column header (bold kept)."""
    lines = markdown.splitlines()
    header = next(line for line in lines if line.startswith("| ") and " n |" in line)
    names = [c.strip() for c in header.strip("|").split(" | ")]
    row = next(line for line in lines if line.startswith(f"| {label} |"))
    return dict(zip(names, (c.strip() for c in row.strip("|").split(" | ")), strict=True))


T_975 = {2: 4.303, 3: 3.182, 4: 2.776}  # Student t quantiles t(0.975, df), from a printed table


def ci_by_hand(values: list[float]) -> tuple[float, float]:
    n, mean, s = len(values), statistics.mean(values), statistics.stdev(values)
    half = scipy_stats.t.ppf(0.975, n - 1) * s / math.sqrt(n)
    return mean - half, mean + half


@pytest.mark.slow
def test_means_and_stds_are_those_of_the_summaries(sweep, report):
    assert [g.label for g in report.groups] == list(SCHEDULES)
    for g in report.groups:
        expected = summaries(sweep, g.label)
        assert g.counts == {"n": len(SEEDS), "diverged": 0, "failed": 0}
        for metric, key in ((m.name, m.key) for m in METRICS.values() if expected[0].get(m.key) is not None):
            values = [s[key] for s in expected]
            assert g.stats[metric].mean == pytest.approx(statistics.mean(values), rel=1e-12)
            assert g.stats[metric].std == pytest.approx(statistics.stdev(values), rel=1e-12)
        accs = [100 * s["final_test_acc"] for s in expected]
        low, high = ci_by_hand(accs)
        shown = max(low, 0.0), min(high, 100.0)  # the table cuts the interval at what an accuracy can be
        cell = f"{statistics.mean(accs):.2f} ± {statistics.stdev(accs):.2f} [{shown[0]:.2f}, {shown[1]:.2f}]"
        assert row_of(report.markdown, g.label)[2] == cell
        assert row_of(report.markdown, g.label)[1] == "3/3"  # completed / runs
        assert g.stats["test_acc"].ci == pytest.approx((low / 100, high / 100), rel=1e-12)
    assert (report.files["table.md"]).read_text() == report.markdown
    assert "| scheduler | n | test acc (%) | p vs best (Holm, all pairs) |" in report.markdown
    assert "wall time (s) |" in report.markdown and "**" not in cells_of(report.markdown, "cosine")["wall time (s)"]
    assert "95 % confidence interval of the mean" in report.markdown

    with open(report.files["groups.csv"], newline="") as f:
        rows = {r["group"]: r for r in csv.DictReader(f)}
    for g in report.groups:
        low, high = ci_by_hand([s["final_test_acc"] for s in summaries(sweep, g.label)])
        low, high = max(low, 0.0), min(high, 1.0)
        row = rows[g.label]
        assert (int(row["test_acc_n"]), float(row["test_acc_ci_low"]), float(row["test_acc_ci_high"])) == (
            3,
            pytest.approx(low, rel=1e-9),
            pytest.approx(high, rel=1e-9),
        )
    assert "`dataset.train_size=2048`" in report.markdown  # the overrides all runs share
    assert "Not included" not in report.markdown


@pytest.mark.slow
def test_missing_failed_diverged_and_unfinished_jobs_are_listed_not_averaged(damaged, tmp_path):
    report = write_report([damaged], tmp_path)
    constant, cosine = report.groups
    assert constant.counts == {"n": 1, "diverged": 1, "failed": 1}
    assert cosine.counts == {"n": 1, "diverged": 0, "failed": 2}
    for g in report.groups:
        (only,) = summaries(damaged, g.label)
        assert g.stats["test_acc"].mean == only["final_test_acc"]
        assert g.stats["test_acc"].std is None
        assert row_of(report.markdown, g.label)[2].removesuffix(" ‡").endswith("± –")  # n = 1: no spread, no CI
        assert row_of(report.markdown, g.label)[1] == "1/3"
        assert row_of(report.markdown, g.label)[3] in ("best", "n < 2")  # n = 1: no test

    listed = report.markdown.split("## Not included (4)")[1]
    expected = {
        job(damaged, "constant", 1): ("failed", "RuntimeError: CUDA error: out of memory"),
        job(damaged, "constant", 2): ("diverged", "diverged at epoch 2, step 6 (loss nan)"),
        job(damaged, "cosine", 1): ("no summary", "no summary.json: stopped after 2 epoch(s)"),
        job(damaged, "cosine", 2): ("not run", "job of the sweep in multirun.yaml without a folder"),
    }
    assert {r.path: (r.status, r.reason) for r in report.excluded} == expected
    for path, (status, reason) in expected.items():
        assert f"| {display_path(path, tmp_path)} | {status} |" in listed and reason in listed
    assert str(tmp_path.parent) not in report.markdown  # paths relative to the report's folder
    assert "scheduler=cosine seed=2" in listed  # the never-run job's overrides, from multirun.yaml

    with open(report.files["results.csv"], newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(SCHEDULES) * len(SEEDS)
    assert [(r["scheduler"], r["seed"], r["status"]) for r in rows] == [
        ("constant", "0", "completed"),
        ("constant", "1", "failed"),
        ("constant", "2", "diverged"),
        ("cosine", "0", "completed"),
        ("cosine", "1", "no summary"),
        ("cosine", "2", "not run"),
    ]
    assert {r["dataset.train_size"] for r in rows} == {"2048"} and {r["logger"] for r in rows} == {"none"}


def test_latex_table_has_a_row_per_group_and_balanced_braces(report):
    tex = (report.files["table.tex"]).read_text()
    assert tex == report.latex and "\\begin{table}" not in tex
    lines = tex.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(r"\begin{tabular}{"))
    spec = re.fullmatch(r"\\begin\{tabular\}\{(lr*)\}", lines[start])
    assert spec and lines[start + 1] == r"\toprule" and lines[-1] == r"\end{tabular}"
    assert start > 3 and all(line.startswith("% ") for line in lines[:start])  # the legend, above: a caption
    assert tex.isascii()  # no raw Unicode: ± is \pm, † \dagger, α \alpha
    assert r"$^\dagger$" in tex and "Holm" in tex and r"$\alpha$" in tex and "±" not in tex
    body = lines[lines.index(r"\midrule") + 1 : lines.index(r"\bottomrule")]
    assert [row.split(" & ")[0] for row in body] == list(SCHEDULES)
    header = lines[lines.index(r"\midrule") - 1]
    assert all(row.count(" & ") + 1 == len(spec.group(1)) and row.endswith(r" \\") for row in [header, *body])
    # by default the compared figure, its p-value and the validation figure that chose the best: a page's width
    assert header.startswith(r"scheduler & n & test acc (\%) & p (Holm) & val acc (\%)") and len(spec.group(1)) == 5
    assert r"$\pm$" in body[0]
    depth = 0
    for char in re.sub(r"\\[{}]", "", tex):
        depth += {"{": 1, "}": -1}.get(char, 0)
        assert depth >= 0
    assert depth == 0
    assert all(line.startswith("%") or not re.search(r"(?<!\\)%", line) for line in lines)


def epoch_means(folder: Path, schedule: str, column: str) -> list[float]:
    """Mean over seeds of one metrics.jsonl column (in percent) at each epoch, computed here."""
    per_seed = [
        [
            100 * json.loads(line)[column]
            for line in (job(folder, schedule, seed) / "metrics.jsonl").read_text().splitlines()
        ]
        for seed in SEEDS
    ]
    return [statistics.mean(values) for values in zip(*per_seed, strict=True)]


def test_every_plot_is_a_png_pdf_and_svg_with_one_series_per_group(sweep, report):
    for name in ("lr", "test_acc", "train_test_acc", "gap", "final_gap"):
        path = report.files[f"{name}.png"]
        assert path.read_bytes()[:8] == PNG_SIGNATURE
        assert mpimg.imread(path).ndim == 3
        assert report.files[f"{name}.pdf"].read_bytes()[:5] == b"%PDF-"
        assert b"<svg" in report.files[f"{name}.svg"].read_bytes()[:2000]

    n = len(SCHEDULES)
    panels = list(dict.fromkeys(s.panel for s in report.plots["train_test_acc"]))
    assert {"train", "test"} <= set(panels) and panels == [p for p in SPLITS if p in panels]
    assert {name: len(series) for name, series in report.plots.items()} == {
        "lr": n,
        "test_acc": n,
        "train_test_acc": len(panels) * n,
        "gap": n,
        "final_gap": n,
    }
    for name in ("lr", "test_acc", "gap"):
        lines = report.figures[name].axes[0].get_lines()
        assert [line.get_label() for line in lines] == [s.label for s in report.plots[name]]
        for line, s in zip(lines, report.plots[name], strict=True):
            np.testing.assert_allclose(line.get_ydata(), s.y)
    for schedule, s in zip(SCHEDULES, report.plots["test_acc"], strict=True):
        np.testing.assert_allclose(s.x, range(1, EPOCHS + 1))
        np.testing.assert_allclose(s.y, epoch_means(sweep, schedule, "test_acc"))
        assert s.n == len(SEEDS)
    for schedule, s in zip(SCHEDULES, report.plots["gap"], strict=True):  # the gap of an end-of-epoch evaluation
        np.testing.assert_allclose(s.y, epoch_means(sweep, schedule, "eval_gap"))
    assert "end of epoch" in report.figures["gap"].axes[0].get_title()

    # the bands are 95 % CIs of the mean: t(0.975, 2) s / sqrt(3) at each epoch
    for schedule, s in zip(SCHEDULES, report.plots["test_acc"], strict=True):
        per_seed = [
            [
                100 * json.loads(line)["test_acc"]
                for line in (job(sweep, schedule, seed) / "metrics.jsonl").read_text().splitlines()
            ]
            for seed in SEEDS
        ]
        halves = [T_975[2] * statistics.stdev(v) / math.sqrt(3) for v in zip(*per_seed, strict=True)]
        np.testing.assert_allclose(s.err, halves, rtol=1e-3)
    assert report.figures["test_acc"].axes[0].get_title() == "Test accuracy\nmean and 95 % CI over 3 seeds"

    # one panel per split, each with a line per group in the group's colour
    acc = report.figures["train_test_acc"]
    assert [ax.get_title() for ax in acc.axes] == [SPLITS[p] for p in panels]
    for ax in acc.axes:
        assert [line.get_label() for line in ax.get_lines()] == list(SCHEDULES)
        assert [line.get_color() for line in ax.get_lines()] == ["C0", "C1"]
    for panel in ("train", "test"):
        for schedule, s in zip(SCHEDULES, [s for s in report.plots["train_test_acc"] if s.panel == panel], strict=True):
            np.testing.assert_allclose(s.y, epoch_means(sweep, schedule, f"{panel}_acc"))

    for schedule, s in zip(SCHEDULES, report.plots["lr"], strict=True):  # every optimizer step, from steps.csv
        with open(job(sweep, schedule, 0) / "steps.csv", newline="") as f:
            lrs = [float(row["lr"]) for row in csv.DictReader(f)]
        per_epoch = len(lrs) // EPOCHS
        np.testing.assert_allclose(s.x, np.arange(len(lrs) + 1) / per_epoch)  # and the end of the last step
        np.testing.assert_allclose(s.y, [*lrs, lrs[-1]])
    assert set(report.plots["lr"][0].y) == {0.3} and report.plots["lr"][1].y[-1] < 0.3

    ax = report.figures["final_gap"].axes[0]
    (bars,) = [c for c in ax.containers if isinstance(c, BarContainer)]
    widths = [p.get_width() for p in bars.patches]
    assert widths == pytest.approx([100 * g.stats["eval_gap"].mean for g in report.groups])
    segments = bars.errorbar.lines[2][0].get_segments()
    half_lengths = [(seg[1][0] - seg[0][0]) / 2 for seg in segments]
    halves = [100 * T_975[2] * g.stats["eval_gap"].std / math.sqrt(3) for g in report.groups]
    assert half_lengths == pytest.approx(halves, rel=1e-3)
    assert [t.get_text() for t in ax.get_yticklabels()] == list(SCHEDULES)


@pytest.mark.slow
def test_command_line_chooses_columns_and_order(sweep, tmp_path, capsys):
    assert main([str(sweep), "--out", str(tmp_path), "--metrics", "test_acc,train_loss", "--sort", "-test_acc"]) == 0
    printed = capsys.readouterr().out
    header = next(line for line in printed.splitlines() if line.startswith("| scheduler"))
    assert header == (  # val acc: the figure the best was chosen on, beside the one it is compared on
        "| scheduler | n | test acc (%) | p vs best (Holm, all pairs) | train loss | val acc (%) | diverged | failed |"
    )
    table = printed.split("## Pairwise")[0]
    order = [line.split(" | ")[0][2:] for line in table.splitlines() if line.startswith(("| constant", "| cosine"))]
    mean_acc = {s: statistics.mean(x["final_test_acc"] for x in summaries(sweep, s)) for s in SCHEDULES}
    assert order == sorted(SCHEDULES, key=mean_acc.get, reverse=True)
    assert printed.strip() == (tmp_path / "table.md").read_text().strip()

    assert main([str(sweep), "--out", str(tmp_path), "--metrics", "accuracy"]) == 2
    assert "unknown metric 'accuracy'" in capsys.readouterr().err
    assert main([str(sweep / "nowhere")]) == 2

    done = subprocess.run(
        [sys.executable, "-m", "experiments.report", str(sweep), "--out", str(tmp_path / "cli")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "| constant | 3/3 |" in done.stdout and (tmp_path / "cli" / "final_gap.png").exists()
    assert not (sweep / "report").exists()  # --out was honoured


def test_a_sweep_run_in_two_goes_is_pooled(sweep, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    for folder, jobs in ((first, range(0, 3)), (second, range(3, 6))):
        folder.mkdir()
        shutil.copy(sweep / "multirun.yaml", folder)
        for i in jobs:
            shutil.copytree(sweep / str(i), folder / str(i))
    alone = collect([first])
    assert [r.status for r in alone].count("not run") == 3  # the cosine jobs, from multirun.yaml
    pooled = aggregate(collect([first, second]))
    assert [(g.label, g.counts["n"], g.counts["failed"]) for g in pooled] == [("constant", 3, 0), ("cosine", 3, 0)]


def fake(overrides: str, test_acc: float | None, status: str = "completed") -> Run:
    summary = (
        Summary.from_dict({"final_test_acc": test_acc, "final_gap": 0.01, "status": status})
        if test_acc is not None
        else None
    )
    return Run(Path("runs") / overrides.replace(" ", "_"), overrides.split(), status, summary)


def test_groups_are_labelled_by_the_keys_that_differ():
    runs = [
        fake(f"scheduler={s} optimizer.lr={lr} seed={seed} logger=wandb trainer.progress=false", 0.5 + lr + seed / 100)
        for s in ("cosine", "step")
        for lr in (0.1, 0.3)
        for seed in (0, 1)
    ]
    groups = aggregate(runs)
    assert [g.label for g in groups] == [
        "scheduler=cosine, optimizer.lr=0.1",
        "scheduler=cosine, optimizer.lr=0.3",
        "scheduler=step, optimizer.lr=0.1",
        "scheduler=step, optimizer.lr=0.3",
    ]
    assert all(g.counts["n"] == 2 for g in groups)
    by_schedule = aggregate(runs, group_by=["scheduler"])
    assert [(g.label, g.counts["n"]) for g in by_schedule] == [("cosine", 4), ("step", 4)]
    assert by_schedule[0].stats["test_acc"].mean == pytest.approx(
        statistics.mean(r.summary["final_test_acc"] for r in runs[:4])
    )
    by_lr = aggregate(runs, sort="-test_acc", group_by=["optimizer.lr"])
    assert [g.label for g in by_lr] == ["0.3", "0.1"]


def test_a_group_is_labelled_by_the_keys_it_sets_and_one_that_sets_none_by_defaults():
    # a parent at the defaults beside branches that set several keys: each names only what it sets
    runs = [
        fake("trainer.epochs=24", 0.80),
        fake("trainer.epochs=24 branch.epoch=12 scheduler=wsd scheduler.shape=linear", 0.90),
        fake("trainer.epochs=24 branch.epoch=18 scheduler=wsd", 0.91),
        fake("trainer.epochs=24 scheduler.shape=linear", 0.85),
    ]
    assert [g.label for g in aggregate(runs)] == [
        "(defaults)",
        "branch.epoch=12, scheduler=wsd, scheduler.shape=linear",
        "branch.epoch=18, scheduler=wsd",
        "scheduler.shape=linear",
    ]
    assert [g.label for g in aggregate(runs[:2], group_by=["scheduler"])] == ["(default)", "wsd"]


def test_sorting_puts_groups_without_a_completed_run_last():
    runs = [fake("scheduler=a", 0.2), fake("scheduler=b", None, "failed"), fake("scheduler=c", 0.9)]
    for sort, order in (("test_acc", "acb"), ("-test_acc", "cab"), ("-group", "cba"), ("-failed", "bac")):
        assert "".join(g.label for g in aggregate(runs, sort=sort)) == order
    with pytest.raises(ValueError, match="cannot sort by 'speed'"):
        aggregate(runs, sort="speed")


def test_latex_escapes_what_latex_would_read_as_markup():
    assert tex_escape("model_name=a&b 50% #1 {x} ~^\\") == (
        r"model\_name=a\&b 50\% \#1 \{x\} \textasciitilde{}\textasciicircum{}\textbackslash{}"
    )


def test_draw_makes_one_line_per_series_and_a_bar_per_group():
    runs = [fake("scheduler=a", 0.5), fake("scheduler=a seed=1", 0.6), fake("scheduler=b", 0.7)]
    groups = aggregate(runs)
    for g, history in zip(groups, ([0.1, 0.2], [0.3]), strict=True):
        for r in g.runs:
            r.history = [
                EpochRow(
                    e + 1,
                    train_loss=1.0,
                    train_acc=a,
                    test_loss=1.0,
                    test_acc=a,
                    gap=0.0,
                    lr=0.1,
                    lr_end=0.1,
                    epoch_time=1.0,
                )
                for e, a in enumerate(history)
            ]
    data = plot_data(groups)
    assert len(draw("test_acc", data["test_acc"]).axes[0].get_lines()) == 2
    (bars,) = [c for c in draw("final_gap", data["final_gap"]).axes[0].containers if isinstance(c, BarContainer)]
    assert len(bars.patches) == 2


# --- the run folder is sacred: damaged files, a run counted once, output errors in one line --------------


def cut_last_line(path: Path) -> None:
    text = path.read_text()
    path.write_text(text[: len(text.rstrip("\n")) - 7])  # the last row loses its end: a run killed mid-write


def listed_reason(markdown: str, run_dir: Path, out: Path) -> str:
    section = markdown.split("## Not included")[1].split("## Notes")[0]
    line = next(line for line in section.splitlines() if line.startswith(f"| {display_path(run_dir, out)} |"))
    return line


def notes_of(markdown: str) -> str:
    return markdown.split("## Notes", 1)[1] if "## Notes" in markdown else ""


@pytest.fixture(scope="session")
def broken(sweep, tmp_path_factory) -> Path:
    """The sweep with a damaged file in every job and in multirun.yaml."""
    folder = tmp_path_factory.mktemp("broken") / "sweep"
    shutil.copytree(sweep, folder)
    c0, c1, c2 = (job(folder, "constant", s) for s in SEEDS)
    k0, k1, k2 = (job(folder, "cosine", s) for s in SEEDS)
    cut_last_line(c0 / "metrics.jsonl")  # summary whole: in the means, with a note
    (c0 / "steps.csv").write_bytes(b"step,epoch,lr,loss\n1,1,0.3,2.3\n\x00\xff\xfe\x00garbage\n")
    (c1 / "summary.json").write_text('{"status": "completed", "final_test_acc": 0.')  # not JSON
    (c2 / "summary.json").write_text("")  # empty
    edit_summary(k0, final_test_acc="abc")
    edit_summary(k1, final_test_acc=None, steps_per_epoch="many")
    (k2 / ".hydra" / "overrides.yaml").write_bytes(bytes(range(256)))  # binary: the summary's copy is used
    rows = (k2 / "metrics.jsonl").read_text().splitlines()
    (k2 / "metrics.jsonl").write_text("\n".join([rows[0], '{"epoch": 2, "train_loss": 1.0}']) + "\n")  # keys missing
    (folder / "multirun.yaml").write_bytes(b"\x00\x01\x02 not yaml \xff")
    return folder


@pytest.mark.slow
def test_damaged_files_are_listed_with_the_reason_and_the_rest_is_tabled(broken, tmp_path, capsys):
    out = tmp_path / "out"
    assert main([str(broken), "--out", str(out)]) == 0
    markdown = (out / "table.md").read_text()
    assert capsys.readouterr().out.strip() == markdown.strip()
    for name in ("table.tex", "results.csv", "groups.csv", "lr.png", "final_gap.png"):
        assert (out / name).exists(), name

    report = write_report([broken], tmp_path / "again")
    constant, cosine = report.groups
    assert (constant.counts, cosine.counts) == (
        {"n": 1, "diverged": 0, "failed": 2},
        {"n": 1, "diverged": 0, "failed": 2},
    )
    c0, c1, c2 = (job(broken, "constant", s) for s in SEEDS)
    k0, k1, k2 = (job(broken, "cosine", s) for s in SEEDS)
    assert constant.stats["test_acc"].values == [json.loads((c0 / "summary.json").read_text())["final_test_acc"]]
    assert cosine.stats["test_acc"].values == [json.loads((k2 / "summary.json").read_text())["final_test_acc"]]
    assert {r.path: r.status for r in report.excluded} == dict.fromkeys([c1, c2, k0, k1], "damaged")

    assert "## Not included (4)" in markdown
    assert "summary.json: unreadable (JSONDecodeError)" in listed_reason(markdown, c1, out)
    assert "summary.json: unreadable (JSONDecodeError)" in listed_reason(markdown, c2, out)
    assert 'summary.json: final_test_acc is "abc", not a number' in listed_reason(markdown, k0, out)
    reason = listed_reason(markdown, k1, out)
    assert "final_test_acc is null, not a number" in reason and 'steps_per_epoch is "many"' in reason
    assert "scheduler=cosine" in listed_reason(markdown, k1, out)  # its overrides, from .hydra/overrides.yaml

    notes = notes_of(markdown)
    assert f"{display_path(c0, out)}: metrics.jsonl line {EPOCHS} unreadable (JSONDecodeError)" in notes
    assert f"{display_path(c0, out)}: steps.csv" in notes
    assert f"{display_path(k2, out)}: overrides.yaml unreadable (UnicodeDecodeError)" in notes
    assert f"{display_path(k2, out)}: metrics.jsonl line 2 unreadable (TypeError)" in notes
    assert f"{display_path(broken / 'multirun.yaml', out)}: unreadable" in notes
    assert [len(r.history) for r in (report.runs[0], report.runs[5])] == [EPOCHS - 1, 1]  # read up to the damage
    assert report.runs[5].params["scheduler"] == "cosine"  # overrides from summary.json's copy


@pytest.mark.slow
def test_wrong_types_in_any_file_damage_the_run_not_the_report(sweep, tmp_path):
    folder = tmp_path / "sweep"
    shutil.copytree(sweep, folder)
    c0, c1, c2 = (job(folder, "constant", s) for s in SEEDS)
    k0, k1, k2 = (job(folder, "cosine", s) for s in SEEDS)
    edit_summary(c0, status=5, diverged_at="epoch 3", error=["x"])
    (c1 / "summary.json").write_text("[1, 2, 3]")  # JSON, not an object
    rows = (c2 / "metrics.jsonl").read_text().splitlines()
    (c2 / "metrics.jsonl").write_text("\n".join([rows[0].replace('"test_acc": ', '"test_acc": "abc", "x": '), rows[1]]))
    (k0 / "metrics.jsonl").write_text("[1, 2]\nnull\n")  # JSON rows that are not objects
    (k1 / "metrics.jsonl").write_bytes(b"")  # empty
    (k1 / "steps.csv").write_bytes(b"")
    (k2 / ".hydra" / "config.yaml").write_bytes(b"\xff\xfe\x00")  # not even text
    (k2 / "summary.json").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    (folder / "multirun.yaml").write_text("")
    report = write_report([folder], tmp_path / "out")
    by_path = {r.path: r for r in report.runs}
    assert by_path[c0].status == "damaged" and "status is 5" in by_path[c0].reason
    assert 'diverged_at is "epoch 3"' in by_path[c0].reason and 'error is ["x"]' in by_path[c0].reason
    assert by_path[c1].status == "damaged" and "summary.json: unreadable (ValueError)" in by_path[c1].reason
    assert by_path[c2].included and by_path[c2].history == []  # the first row is not a number: nothing to plot
    assert 'row 1 unreadable (epoch 1: test_acc is "abc", not a number)' in notes_of(report.markdown)
    assert by_path[k0].included and by_path[k0].history == [] and by_path[k0].damaged
    assert by_path[k1].included and by_path[k1].damaged == []
    assert by_path[k2].status == "damaged" and "summary.json: unreadable (UnicodeDecodeError)" in by_path[k2].reason
    assert by_path[k2].reason.count("summary.json") == 1  # read by three readers, listed once
    assert [g.counts["n"] for g in report.groups] == [1, 2]
    assert "multirun.yaml: unreadable" in notes_of(report.markdown)


@pytest.mark.slow
def test_a_run_reached_twice_is_counted_once(sweep, report, tmp_path):
    for folders in ([sweep, sweep], [job(sweep, "constant", 0), sweep], [sweep, sweep / ".." / sweep.name]):
        again = write_report(folders, tmp_path / str(len(list(tmp_path.iterdir()))))
        assert len(again.runs) == len(SCHEDULES) * len(SEEDS)
        for g, first in zip(again.groups, report.groups, strict=True):
            assert g.counts == {"n": 3, "diverged": 0, "failed": 0}
            assert g.stats["test_acc"].std == first.stats["test_acc"].std
            assert g.stats["test_acc"].mean == first.stats["test_acc"].mean
        notes = notes_of(again.files["table.md"].read_text())
        assert "the same run folder as one already read; counted once" in notes


def run_report(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "experiments.report", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def one_line_error(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith("report: error: ")
    return line


@pytest.mark.slow
def test_an_out_that_cannot_be_written_is_one_line(sweep, tmp_path, capsys):
    existing = tmp_path / "table.md"
    existing.write_text("not a folder")
    line = one_line_error(run_report(str(sweep), "--out", str(existing)))
    assert f"{existing} is a file, not a folder" in line and existing.read_text() == "not a folder"
    assert main([str(sweep), "--out", str(existing / "inside")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"cannot make the report folder {existing / 'inside'}" in err
    assert not (sweep / "report").exists()


@pytest.mark.skipif(sys.platform == "win32" or __import__("os").geteuid() == 0, reason="root writes anywhere")
def test_an_out_in_a_read_only_folder_is_one_line(sweep, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        assert main([str(sweep), "--out", str(locked / "report")]) == 2
        assert capsys.readouterr().err.startswith("report: error: cannot make the report folder")
        assert main([str(sweep), "--out", str(locked)]) == 2
        assert "cannot write to the report folder" in capsys.readouterr().err
    finally:
        locked.chmod(0o700)


@pytest.mark.parametrize(
    "args,expected",
    [
        (["--metrics", "accuracy"], "unknown metric 'accuracy'"),
        (["--metrics", "test_acc,\nspeed"], "unknown metric 'speed'"),
        (["--sort", "-speed"], "cannot sort by 'speed'"),
        (["--sort"], "expected one argument"),
        (["--group-by"], "expected one argument"),
        (["--colour", "red"], "unrecognized arguments"),
    ],
)
def test_argument_errors_are_one_line(sweep, tmp_path, capsys, args, expected):
    try:
        code = main([str(sweep), "--out", str(tmp_path / "out"), *args])
    except SystemExit as e:  # argparse's own errors
        code = e.code
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("report: error: ") and err.count("\n") == 1 and expected in err, err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_argument_errors_from_the_command_line_are_one_line(sweep, tmp_path):
    assert "cannot sort by 'speed'" in one_line_error(
        run_report(str(sweep), "--out", str(tmp_path), "--sort", "-speed")
    )
    assert "expected one argument" in one_line_error(run_report(str(sweep), "--group-by"))


# --- statistics: oracles computed here with the formulas ----------------------------------------------------


def t_two_sided_p(t: float, df: float, steps: int = 20000) -> float:
    """P(|T| >= |t|) for Student's t with df degrees of freedom: 1 - 2 * the integral of its density from 0 to
    |t| (Simpson's rule), the density written out with math.gamma."""
    c = math.gamma((df + 1) / 2) / (math.sqrt(df * math.pi) * math.gamma(df / 2))

    def density(x: float) -> float:
        return c * (1 + x * x / df) ** (-(df + 1) / 2)

    h = abs(t) / steps
    total = density(0) + density(abs(t)) + sum((4 if i % 2 else 2) * density(i * h) for i in range(1, steps))
    return 1 - 2 * total * h / 3


def test_the_confidence_interval_is_the_student_t_interval():
    values = [1.0, 2.0, 4.0]
    mean = 7 / 3
    s = math.sqrt(((1 - mean) ** 2 + (2 - mean) ** 2 + (4 - mean) ** 2) / 2)
    half = 4.302652729749464 * s / math.sqrt(3)  # t(0.975, 2), tabled as 4.303
    stat = Stat(values)
    assert (stat.n, stat.mean, stat.std) == (3, pytest.approx(mean), pytest.approx(s))
    assert stat.ci == pytest.approx((mean - half, mean + half), rel=1e-12)
    assert t_quantile(3) == pytest.approx(T_975[2], abs=5e-4)
    assert Stat([0.5]).ci is None and Stat([]).ci is None


def test_welch_test_equals_the_formulas():
    a, b = [1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 6.0, 8.0, 10.0]
    va, vb = 5 / 3, 40 / 4  # sample variances: sums of squared deviations 5 and 40
    se2 = va / 4 + vb / 5
    t = (2.5 - 6.0) / math.sqrt(se2)
    df = se2**2 / ((va / 4) ** 2 / 3 + (vb / 5) ** 2 / 4)  # Welch-Satterthwaite
    result = welch_test(a, b)
    assert result.kind == "Welch"
    assert (result.t, result.df) == (pytest.approx(t, rel=1e-12), pytest.approx(df, rel=1e-12))
    assert result.p == pytest.approx(t_two_sided_p(t, df), rel=1e-7)
    # no spread at all: no p-value from a zero variance (it would read p = 1 or p = 0)
    assert math.isnan(welch_test([0.5, 0.5], [0.5, 0.5]).p) and math.isnan(welch_test([0.5, 0.5], [0.7, 0.7]).p)
    assert not welch_test([0.5, 0.5], [0.7, 0.7]).testable and welch_test(a, b).testable


def test_paired_test_equals_the_formulas():
    a, b = [1.0, 2.0, 4.0, 7.0], [1.5, 2.0, 5.0, 8.5]
    d = [-0.5, 0.0, -1.0, -1.5]
    mean = -0.75
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / 3)
    t = mean / (sd / 2)
    result = paired_test(a, b)
    assert (result.kind, result.df) == ("paired", 3)
    assert result.t == pytest.approx(t, rel=1e-12)
    assert result.p == pytest.approx(t_two_sided_p(t, 3), rel=1e-7)
    assert math.isnan(paired_test([1.0, 2.0], [1.0, 2.0]).p) and math.isnan(paired_test([1.0, 2.0], [2.0, 3.0]).p)
    # a constant one-image difference of 10,000 (floats differ in their last bits): no spread either
    assert not paired_test([0.8787, 0.9001, 0.8655], [0.8786, 0.9000, 0.8654]).testable


def test_holm_adjusts_step_down():
    # sorted: 0.005 x 4 = 0.02, 0.01 x 3 = 0.03, 0.03 x 2 = 0.06, 0.04 x 1 = 0.04 -> kept non-decreasing: 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])  # capped at 1, then monotone
    assert holm([0.02]) == [0.02] and holm([]) == []


# --- run folders written here: fake histories -----------------------------------------------------------------

ROW = {"train_loss": 1.0, "train_acc": 0.5, "test_loss": 1.0, "test_acc": 0.5, "gap": 0.0, "lr": 0.1, "lr_end": 0.1}


def make_run(
    folder: Path, overrides: list[str], seed: int, rows: list[dict], status: str = "completed", **fields
) -> Path:
    """A finished run folder as the trainer writes it: metrics.jsonl from `rows` (over ROW, epoch_time 1 s
    unless given), summary.json from that history."""
    history = [EpochRow(epoch=i + 1, **{**ROW, "epoch_time": 1.0, **r}) for i, r in enumerate(rows)]
    run = RunFolder(folder)
    run.write_history(history, [])
    wall = sum(r.epoch_time for r in history)
    summary = Summary(
        status=status, seed=seed, overrides=[*overrides, f"seed={seed}"], epochs=len(rows), wall_time_s=wall, **fields
    )
    summary.record_history(history)
    run.write_summary(summary)
    return folder


def make_sweep(folder: Path, finals: dict[str, dict[int, float]]) -> Path:
    """One run per (scheduler, seed), two epochs, the last test accuracy given; wall times differ."""
    i = 0
    for scheduler, by_seed in finals.items():
        for seed, acc in by_seed.items():
            rows = [{"test_acc": acc - 0.1}, {"test_acc": acc, "epoch_time": 1.0 + i}]
            make_run(folder / str(i), [f"scheduler={scheduler}"], seed, rows)
            i += 1
    return folder


TIED_AND_WORSE = {
    "best": {0: 0.90, 1: 0.92, 2: 0.91},
    "tied": {0: 0.90, 1: 0.915, 2: 0.905},
    "worse": {0: 0.50, 1: 0.53, 2: 0.51},
    "other_seeds": {10: 0.60, 11: 0.65, 12: 0.62},
    "single": {0: 0.95},
}


@pytest.mark.slow
def test_groups_not_significantly_different_from_the_best_are_marked(tmp_path, capsys):
    folder = make_sweep(tmp_path / "sweep", TIED_AND_WORSE)
    report = write_report([folder], tmp_path / "out", metrics=["test_acc", "wall_time"])
    md = report.markdown
    best, tied, worse, other, single = (cells_of(md, label) for label in TIED_AND_WORSE)
    p = "p vs best (Holm, all pairs)"
    # "single" has the highest mean but one run: never silently best; the best has two runs or more
    assert report.comparison.reference.label == "best" and report.comparison.mode == "all-pairs"
    assert best[p] == "best" and best["test acc (%)"].startswith("**") and best["test acc (%)"].endswith("†")
    assert single[p] == "n < 2" and single["test acc (%)"].endswith(" ‡") and "**" not in single["test acc (%)"]
    assert "Not chosen, though their mean is better: single (n < 2)." in md
    # every pair of the four groups with two runs: six tests, Holm-corrected across all six (by hand)
    values = {k: list(v.values()) for k, v in TIED_AND_WORSE.items()}
    shared = ("best", "tied", "worse")  # seeds 0, 1, 2: paired
    family = [("best", "tied"), ("best", "worse"), ("best", "other_seeds"), ("tied", "worse")]
    family += [("tied", "other_seeds"), ("worse", "other_seeds")]
    raw = {
        (a, b): (paired_test if a in shared and b in shared else welch_test)(values[a], values[b]).p for a, b in family
    }
    adjusted, running = {}, 0.0
    for rank, pair in enumerate(sorted(raw, key=raw.get)):
        running = max(running, min(1.0, (6 - rank) * raw[pair]))
        adjusted[pair] = running
    shown = {pair: "< 0.001" if q < 0.001 else f"{q:.3f}" for pair, q in adjusted.items()}
    assert tied[p] == f"{shown[('best', 'tied')]} (P)" and tied["test acc (%)"].endswith("†")
    assert worse[p] == f"{shown[('best', 'worse')]} (P)" and not worse["test acc (%)"].endswith(("†", "‡"))
    with open(report.files["pairs.csv"], newline="") as f:
        pairs = {(r["a"], r["b"]): r for r in csv.DictReader(f)}
    assert len(pairs) == 10 and sum(r["untested"] == "n < 2" for r in pairs.values()) == 4
    for pair, p_holm in adjusted.items():
        assert float(pairs[pair]["p"]) == pytest.approx(raw[pair], rel=1e-12)
        assert float(pairs[pair]["p_holm"]) == pytest.approx(p_holm, rel=1e-12)
        assert pairs[pair]["significant"] == str(int(p_holm < 0.05))
    assert "every pair of the 5 groups: 6 tests (4 pair(s) untested)" in md

    # the old family, every group against the observed best, is still there, and says what it costs
    old = write_report([folder], tmp_path / "old", metrics=["test_acc"], comparisons="best")
    assert "| p vs best (Holm) |" in old.markdown and "these p-values are too small" in old.markdown

    report = write_report([folder], tmp_path / "out", metrics=["test_acc", "wall_time"], baseline="best")
    md = report.markdown
    best, tied, worse, other, single = (cells_of(md, label) for label in TIED_AND_WORSE)
    p = "p vs baseline (Holm)"
    raw = {
        "tied": paired_test(list(TIED_AND_WORSE["tied"].values()), list(TIED_AND_WORSE["best"].values())).p,
        "worse": paired_test(list(TIED_AND_WORSE["worse"].values()), list(TIED_AND_WORSE["best"].values())).p,
        "other_seeds": welch_test(
            list(TIED_AND_WORSE["other_seeds"].values()), list(TIED_AND_WORSE["best"].values())
        ).p,
    }
    # by hand: the paired differences of "worse" are -0.40, -0.39, -0.40
    d = [-0.40, -0.39, -0.40]
    t = statistics.mean(d) / (statistics.stdev(d) / math.sqrt(3))
    assert raw["worse"] == pytest.approx(t_two_sided_p(t, 2), rel=1e-6)
    ordered = sorted(raw, key=raw.get)
    adjusted, running = {}, 0.0
    for rank, label in enumerate(ordered):
        running = max(running, min(1.0, (3 - rank) * raw[label]))
        adjusted[label] = running
    assert adjusted["tied"] > 0.05 > adjusted["worse"]

    assert best[p] == "baseline" and best["test acc (%)"].endswith("†")
    assert tied["test acc (%)"].endswith("†") and tied[p] == f"{adjusted['tied']:.3f} (P)"
    assert not worse["test acc (%)"].endswith("†") and worse[p].endswith("(P)")
    assert other[p].endswith("(W)") and single[p] == "n < 2" and single["test acc (%)"].endswith(" ‡")
    assert "**" not in "".join(g["wall time (s)"] for g in (best, tied, worse, other, single))  # timings: no best
    assert "† on test acc: the baseline (best)" in md and "α = 0.05" in md and "Holm" in md
    assert "paired t-test by seed (P)" in md and "Welch's t-test (W)" in md
    assert r"$^\dagger$" in report.latex and "(P)" in report.latex
    assert r"$<$ 0.001 (P)" in report.latex and r"\$" not in report.latex  # escaped once, as LaTeX reads it

    with open(report.files["groups.csv"], newline="") as f:
        rows = {r["group"]: r for r in csv.DictReader(f)}
    for label, p_raw in raw.items():
        assert float(rows[label]["compare_p"]) == pytest.approx(p_raw, rel=1e-12)
        assert float(rows[label]["compare_p_holm"]) == pytest.approx(adjusted[label], rel=1e-12)
    assert rows["tied"]["compare_test"] == "paired" and rows["other_seeds"]["compare_test"] == "Welch"
    assert [rows[k]["compare_marked"] for k in TIED_AND_WORSE] == ["1", "1", "0", "0", "0"]
    assert rows["single"]["compare_p"] == "" and {r["compare_reference"] for r in rows.values()} == {"best"}
    assert rows["single"]["compare_untested"] == "n < 2" and rows["tied"]["compare_mode"] == "baseline"
    assert {r["compare_family_size"] for r in rows.values()} == {"3"}

    # --compare on a figure without a direction needs a baseline; an unknown baseline lists the labels
    assert main([str(folder), "--out", str(tmp_path / "o2"), "--compare", "wall_time"]) == 2
    assert "no better direction" in capsys.readouterr().err
    assert main([str(folder), "--out", str(tmp_path / "o3"), "--baseline", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no group 'nope'" in err and "'tied'" in err and "'single'" in err
    assert not (tmp_path / "o3").exists()


@pytest.mark.slow
def test_time_to_target_counts_the_runs_that_reached_it(tmp_path, capsys):
    folder = tmp_path / "sweep"
    histories = {
        "fast": [
            ([0.5, 0.8, 0.9], [1.0, 2.0, 3.0]),  # 0.85 first reached at epoch 3, after 6 s
            ([0.6, 0.85, 0.95], [1.0, 2.0, 3.0]),  # at epoch 2 (>=), after 3 s
            ([0.4, 0.7, 0.8], [1.0, 1.0, 1.0]),  # never
        ],
        "slow": [([0.1, 0.2, 0.3], [1.0, 1.0, 1.0])] * 2,
    }
    i = 0
    for scheduler, runs in histories.items():
        for seed, (accs, times) in enumerate(runs):
            rows = [{"test_acc": a, "epoch_time": t, "train_loss": 1.0 - a} for a, t in zip(accs, times, strict=True)]
            make_run(folder / str(i), [f"scheduler={scheduler}"], seed, rows)
            i += 1
    out = tmp_path / "out"
    assert (
        main([str(folder), "--out", str(out), "--target", "test_acc=0.85", "--target", "train_loss=0.3,test_acc=0.95"])
        == 0
    )
    md = (out / "table.md").read_text()
    fast, slow = cells_of(md, "fast"), cells_of(md, "slow")
    assert fast["epoch to test acc ≥ 85%"] == f"2.5 ± {statistics.stdev([3, 2]):.1f} (2/3)"
    assert fast["time (s) to test acc ≥ 85%"] == f"4.5 ± {statistics.stdev([6.0, 3.0]):.1f} (2/3)"
    # train loss 1 - acc <= 0.3: epochs 2, 2 and 3 (1 - 0.7 is 0.30000000000000004), after 3 s each
    assert fast["epoch to train loss ≤ 0.3"] == f"2.3 ± {statistics.stdev([2, 2, 3]):.1f} (3/3)"
    assert fast["time (s) to train loss ≤ 0.3"] == "3.0 ± 0.0 (3/3)"
    assert fast["epoch to test acc ≥ 95%"] == "3.0 ± – (1/3)" and fast["time (s) to test acc ≥ 95%"] == "6.0 ± – (1/3)"
    assert slow["epoch to test acc ≥ 85%"] == "not reached (0/2)"
    assert "Time to target (test acc ≥ 85%; train loss ≤ 0.3; test acc ≥ 95%)" in md

    with open(out / "results.csv", newline="") as f:
        runs = list(csv.DictReader(f))
    assert [(r["to_test_acc=0.85_epoch"], r["to_test_acc=0.85_time_s"]) for r in runs] == [
        ("3", "6.0"),
        ("2", "3.0"),
        ("", ""),
        ("", ""),
        ("", ""),
    ]
    with open(out / "groups.csv", newline="") as f:
        groups = {r["group"]: r for r in csv.DictReader(f)}
    assert (groups["fast"]["to_test_acc=0.85_reached"], groups["fast"]["to_test_acc=0.85_runs"]) == ("2", "3")
    assert float(groups["fast"]["to_test_acc=0.85_time_s_mean"]) == 4.5

    capsys.readouterr()
    for bad, expected in (
        ("speed=1", "unknown --target figure 'speed'"),
        ("test_acc", "bad --target 'test_acc': use FIGURE=VALUE"),
        ("test_acc=high", "bad --target 'test_acc=high'"),
        ("test_acc=88", "test_acc is a fraction"),
        ("gap=0.1", "unknown --target figure 'gap'"),  # no better direction: no target
    ):
        assert main([str(folder), "--out", str(tmp_path / "bad"), "--target", bad]) == 2
        err = capsys.readouterr().err
        assert err.startswith("report: error: ") and err.count("\n") == 1 and expected in err, err
    assert not (tmp_path / "bad").exists()


OPTUNA_LRS = [0.058463261216434144, 0.1123456789, 0.0031415926535, 0.2718281828, 0.0005772156649]


@pytest.fixture(scope="module")
def optuna_like(tmp_path_factory) -> Path:
    """Ten groups, as an Optuna study leaves them: float-valued overrides with every digit, 1 to 3 seeds, eight
    epochs whose first has a gap far below the others."""
    folder = tmp_path_factory.mktemp("optuna") / "study"
    i = 0
    for g in range(10):
        lr, wd = OPTUNA_LRS[g % 5], 10 ** -(2 + g / 7)
        for seed in range(1 + g % 3):
            rows = [
                {
                    "test_acc": 0.3 + 0.05 * e + 0.01 * g + 0.005 * seed,
                    "train_acc": 0.3 + 0.06 * e + 0.01 * g if e else 0.05,
                    "gap": (0.01 * e + 0.002 * seed) if e else -0.35,
                }
                for e in range(8)
            ]
            make_run(
                folder / str(i), [f"optimizer.lr={lr}", f"optimizer.weight_decay={wd}", "scheduler=cosine"], seed, rows
            )
            i += 1
    return folder


@pytest.mark.slow
def test_plots_of_many_groups_draw_without_warnings_legends_outside_and_labels_apart(optuna_like, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a collapsed constrained layout, a legend that cannot be placed, ...
        report = write_report([optuna_like], tmp_path / "out")
        for fig in report.figures.values():
            for fmt in ("png", "pdf", "svg"):
                fig.savefig(io.BytesIO(), format=fmt)
    for name in PLOTS:
        for fmt in ("png", "pdf", "svg"):
            assert report.files[f"{name}.{fmt}"].stat().st_size > 0

    labels = [g.label for g in report.groups]
    assert "optimizer.lr=0.0585" in labels[0] and "0.058463261216434144" not in "".join(labels)
    assert len(set(labels)) == 10
    with open(report.files["groups.csv"], newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows[0]["optimizer.lr"] == "0.058463261216434144" and "0.058463261216434144" in rows[0]["group"]

    for name in ("lr", "test_acc", "train_test_acc", "gap"):
        fig = report.figures[name]
        renderer = FigureCanvasAgg(fig).get_renderer()
        fig.draw(renderer)
        (legend,) = fig.legends
        box = legend.get_window_extent(renderer)
        for ax in fig.axes:
            assert not box.overlaps(ax.get_window_extent(renderer)), name  # below the axes, never on the data
            ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
            assert all(float(t).is_integer() for t in ticks), (name, ticks)
    titles = {
        name: (fig.texts[0].get_text() if fig.texts else fig.axes[0].get_title())
        for name, fig in report.figures.items()
    }
    assert all("mean over 1–3 seeds per group, 95 % CI where n ≥ 2" in t for t in titles.values()), titles

    gap = report.figures["gap"].axes[0]
    low, high = gap.get_ylim()
    assert low > -10 and high < 10  # epoch 1 (-35 %) is left off the range of the later epochs
    assert "epoch 1 outside the y-range" in gap.get_xlabel()

    bars = report.figures["final_gap"]
    renderer = FigureCanvasAgg(bars).get_renderer()
    bars.draw(renderer)
    boxes = [t.get_window_extent(renderer) for t in bars.axes[0].get_yticklabels()]
    assert len(boxes) == 10
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])


@pytest.mark.slow
def test_figures_say_n_equals_1_when_every_group_has_one_run(tmp_path):
    folder = make_sweep(tmp_path / "sweep", {"a": {0: 0.5}, "b": {0: 0.6}})
    report = write_report([folder], tmp_path / "out")
    assert report.figures["test_acc"].axes[0].get_title() == "Test accuracy\nn = 1"
    assert "seeds" not in report.figures["final_gap"].axes[0].get_title()
    assert all(not np.any(s.err) for s in report.plots["test_acc"])


def test_float_labels_are_shortened_but_kept_apart():
    shown = short_values(["0.058463261216434144", "0.1", "0.05846999", "cosine", "128", "1e-05"])
    assert shown["0.1"] == "0.1" and shown["cosine"] == "cosine" and shown["128"] == "128" and shown["1e-05"] == "1e-05"
    assert (shown["0.058463261216434144"], shown["0.05846999"]) == ("0.05846", "0.05847")
    assert short_values(["0.058463261216434144"]) == {"0.058463261216434144": "0.0585"}


@pytest.mark.slow
def test_default_columns_skip_figures_the_runs_or_the_records_lack(tmp_path, monkeypatch):
    folder = make_sweep(tmp_path / "sweep", {"a": {0: 0.5, 1: 0.6}})
    monkeypatch.setattr(columns, "DEFAULT_METRICS", ("no_such_figure", "val_acc", "test_acc", "wall_time"))
    report = write_report([folder], tmp_path / "out")
    assert [m.name for m in report.metrics] == ["test_acc", "wall_time"]  # no validation split in these runs
    with pytest.raises(ValueError, match="unknown metric 'no_such_figure'"):
        write_report([folder], tmp_path / "out", metrics=["no_such_figure"])


@pytest.mark.slow
def test_table_md_shows_no_absolute_paths(tmp_path):
    folder = make_sweep(tmp_path / "sweep", {"a": {0: 0.5, 1: 0.6}})
    data = Path.home() / "data" / "cifar"
    make_run(folder / "9", ["scheduler=a"], 9, [{}], status="failed", error=f"FileNotFoundError: {data}/train.bin")
    report = write_report([folder], tmp_path / "out")
    listed = report.markdown.split("## Not included")[1]
    assert "| ../sweep/9 | failed |" in listed and "FileNotFoundError: ~/data/cifar/train.bin" in listed
    assert str(tmp_path) not in report.markdown and str(Path.home()) + "/" not in report.markdown


def test_an_accuracy_axis_stays_within_0_and_100_percent_whatever_the_interval():
    x = np.arange(1, 6, dtype=float)
    wide = Series("stuck seeds", x, np.full(5, 40.0), np.full(5, 120.0), 3, "C0")  # CI far past 0 and 100
    narrow = Series("fine", x, np.full(5, 88.0), np.full(5, 0.5), 3, "C1")
    low, high = draw("test_acc", [wide, narrow]).axes[0].get_ylim()
    assert 0.0 <= low and high <= 100.0
    assert low <= 40.0 and 88.5 <= high  # the means themselves stay in view


def test_learning_rates_decades_apart_share_a_log_axis_and_close_ones_a_linear_one():
    x = np.arange(0, 5, dtype=float)
    cosine = Series("sgd cosine", x, 0.3 * (1 + np.cos(np.pi * x / 4)) / 2, np.zeros(5), 1, "C0")  # ends at 0
    adam = Series("adam", x, np.full(5, 1e-3), np.zeros(5), 1, "C1")
    step = Series("sgd step", x, np.array([0.5, 0.5, 0.05, 0.05, 0.05]), np.zeros(5), 1, "C2")
    ax = draw("lr", [cosine, adam]).axes[0]
    assert ax.get_yscale() == "log" and "log scale" in ax.get_ylabel()
    low, high = ax.get_ylim()
    assert 0 < low <= 1e-3 and high >= 0.3  # the cosine's final 0 is masked, not clipped to a tiny value
    assert low > 1e-5
    assert draw("lr", [cosine, step]).axes[0].get_yscale() == "linear"  # 0.3 and 0.5: the d2l study stays linear
    assert draw("lr", [adam]).axes[0].get_yscale() == "linear"
