"""experiments/report over one real sweep (2 schedules x 3 seeds on synthetic data), a damaged copy of it, and
runs built in memory."""

from __future__ import annotations

import csv
import json
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest
from conftest import FAST, ROOT, run_cli
from matplotlib.container import BarContainer

from experiments.report import Run, aggregate, collect, draw, main, plot_data, tex_escape, write_report
from trainer.records import EpochRow, Summary

SCHEDULES = ("constant", "cosine")
SEEDS = (0, 1, 2)
EPOCHS = 2
SUMMARY_KEYS = {  # report metric -> summary.json key
    "train_loss": "final_train_loss",
    "train_acc": "final_train_acc",
    "test_acc": "final_test_acc",
    "best_test_acc": "best_test_acc",
    "gap": "final_gap",
    "wall_time": "wall_time_s",
}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="session")
def sweep(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("multirun") / "sweep"
    args = [
        "-m",
        *FAST,
        "dataset.train_size=512",
        "dataset.test_size=256",
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
    return [c.strip().strip("*") for c in line.strip("|").split(" | ")]  # without the bold


def test_means_and_stds_are_those_of_the_summaries(sweep, report):
    assert [g.label for g in report.groups] == list(SCHEDULES)
    for g in report.groups:
        expected = summaries(sweep, g.label)
        assert g.counts == {"n": len(SEEDS), "diverged": 0, "failed": 0}
        for metric, key in SUMMARY_KEYS.items():
            values = [s[key] for s in expected]
            assert g.stats[metric].mean == pytest.approx(statistics.mean(values), rel=1e-12)
            assert g.stats[metric].std == pytest.approx(statistics.stdev(values), rel=1e-12)
        accs = [100 * s["final_test_acc"] for s in expected]
        cell = f"{statistics.mean(accs):.2f} ± {statistics.stdev(accs):.2f}"
        assert row_of(report.markdown, g.label)[4] == cell
    assert (report.files["table.md"]).read_text() == report.markdown
    assert "| scheduler | n | train loss | train acc (%) | test acc (%) |" in report.markdown
    assert "`dataset.train_size=512`" in report.markdown  # the overrides all runs share
    assert "Not included" not in report.markdown


def test_missing_failed_diverged_and_unfinished_jobs_are_listed_not_averaged(damaged, tmp_path):
    report = write_report([damaged], tmp_path)
    constant, cosine = report.groups
    assert constant.counts == {"n": 1, "diverged": 1, "failed": 1}
    assert cosine.counts == {"n": 1, "diverged": 0, "failed": 2}
    for g in report.groups:
        (only,) = summaries(damaged, g.label)
        assert g.stats["test_acc"].mean == only["final_test_acc"]
        assert g.stats["test_acc"].std is None
        assert row_of(report.markdown, g.label)[4].endswith("± –")  # n = 1: no spread

    listed = report.markdown.split("## Not included (4)")[1]
    expected = {
        job(damaged, "constant", 1): ("failed", "RuntimeError: CUDA error: out of memory"),
        job(damaged, "constant", 2): ("diverged", "diverged at epoch 2, step 6 (loss nan)"),
        job(damaged, "cosine", 1): ("no summary", "no summary.json: stopped after 2 epoch(s)"),
        job(damaged, "cosine", 2): ("not run", "job of the sweep in multirun.yaml without a folder"),
    }
    assert {r.path: (r.status, r.reason) for r in report.excluded} == expected
    for path, (status, reason) in expected.items():
        assert f"| {path} | {status} |" in listed and reason in listed
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
    assert {r["dataset.train_size"] for r in rows} == {"512"} and {r["logger"] for r in rows} == {"none"}


def test_latex_table_has_a_row_per_group_and_balanced_braces(report):
    tex = (report.files["table.tex"]).read_text()
    assert tex == report.latex and "\\begin{table}" not in tex
    lines = tex.splitlines()
    spec = re.fullmatch(r"\\begin\{tabular\}\{(lr*)\}", lines[1])
    assert spec and lines[2] == r"\toprule" and lines[-1] == r"\end{tabular}"
    body = lines[lines.index(r"\midrule") + 1 : lines.index(r"\bottomrule")]
    assert [row.split(" & ")[0] for row in body] == list(SCHEDULES)
    header = lines[lines.index(r"\midrule") - 1]
    assert all(row.count(" & ") + 1 == len(spec.group(1)) and row.endswith(r" \\") for row in [header, *body])
    assert r"test acc (\%)" in header and r"$\pm$" in body[0]
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


def test_every_plot_is_a_png_with_one_series_per_group(sweep, report):
    for name in ("lr", "test_acc", "train_test_acc", "gap", "final_gap"):
        path = report.files[f"{name}.png"]
        assert path.read_bytes()[:8] == PNG_SIGNATURE
        assert mpimg.imread(path).ndim == 3

    n = len(SCHEDULES)
    assert {name: len(series) for name, series in report.plots.items()} == {
        "lr": n,
        "test_acc": n,
        "train_test_acc": 2 * n,
        "gap": n,
        "final_gap": n,
    }
    for name in ("lr", "test_acc", "train_test_acc", "gap"):
        lines = report.figures[name].axes[0].get_lines()
        assert [line.get_label() for line in lines] == [s.label for s in report.plots[name]]
        for line, s in zip(lines, report.plots[name], strict=True):
            np.testing.assert_allclose(line.get_ydata(), s.y)
    for schedule, s in zip(SCHEDULES, report.plots["test_acc"], strict=True):
        np.testing.assert_allclose(s.x, range(1, EPOCHS + 1))
        np.testing.assert_allclose(s.y, epoch_means(sweep, schedule, "test_acc"))
    for schedule, s in zip(SCHEDULES, report.plots["gap"], strict=True):
        np.testing.assert_allclose(s.y, epoch_means(sweep, schedule, "gap"))

    lines = report.figures["train_test_acc"].axes[0].get_lines()
    assert [line.get_linestyle() for line in lines] == ["-", "--"] * n
    assert [line.get_color() for line in lines[::2]] == [line.get_color() for line in lines[1::2]]

    for schedule, s in zip(SCHEDULES, report.plots["lr"], strict=True):  # every optimizer step, from steps.csv
        with open(job(sweep, schedule, 0) / "steps.csv", newline="") as f:
            lrs = [float(row["lr"]) for row in csv.DictReader(f)]
        per_epoch = len(lrs) // EPOCHS
        np.testing.assert_allclose(s.x, np.arange(len(lrs) + 1) / per_epoch)  # and the end of the last step
        np.testing.assert_allclose(s.y, [*lrs, lrs[-1]])
    assert set(report.plots["lr"][0].y) == {0.3} and report.plots["lr"][1].y[-1] < 0.3

    ax = report.figures["final_gap"].axes[0]
    (bars,) = [c for c in ax.containers if isinstance(c, BarContainer)]
    heights = [p.get_height() for p in bars.patches]
    assert heights == pytest.approx([100 * g.stats["gap"].mean for g in report.groups])
    segments = bars.errorbar.lines[2][0].get_segments()
    half_lengths = [(seg[1][1] - seg[0][1]) / 2 for seg in segments]
    assert half_lengths == pytest.approx([100 * g.stats["gap"].std for g in report.groups])
    assert [t.get_text() for t in ax.get_xticklabels()] == list(SCHEDULES)


def test_command_line_chooses_columns_and_order(sweep, tmp_path, capsys):
    assert main([str(sweep), "--out", str(tmp_path), "--metrics", "test_acc,train_loss", "--sort", "-test_acc"]) == 0
    printed = capsys.readouterr().out
    header = next(line for line in printed.splitlines() if line.startswith("| scheduler"))
    assert header == "| scheduler | n | test acc (%) | train loss | diverged | failed |"
    order = [line.split(" | ")[0][2:] for line in printed.splitlines() if line.startswith(("| constant", "| cosine"))]
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
    assert "| constant | 3 |" in done.stdout and (tmp_path / "cli" / "final_gap.png").exists()
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
    summary = Summary.from_dict({"final_test_acc": test_acc, "final_gap": 0.01, "status": status}) if test_acc is not None else None
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
                EpochRow(e + 1, train_loss=1.0, train_acc=a, test_loss=1.0, test_acc=a, gap=0.0, lr=0.1, lr_end=0.1, epoch_time=1.0)
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


def listed_reason(markdown: str, run_dir: Path) -> str:
    section = markdown.split("## Not included")[1].split("## Notes")[0]
    line = next(line for line in section.splitlines() if line.startswith(f"| {run_dir} |"))
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


def test_damaged_files_are_listed_with_the_reason_and_the_rest_is_tabled(broken, tmp_path, capsys):
    out = tmp_path / "out"
    assert main([str(broken), "--out", str(out)]) == 0
    markdown = (out / "table.md").read_text()
    assert capsys.readouterr().out.strip() == markdown.strip()
    for name in ("table.tex", "results.csv", "groups.csv", "lr.png", "final_gap.png"):
        assert (out / name).exists(), name

    report = write_report([broken], tmp_path / "again")
    constant, cosine = report.groups
    assert (constant.counts, cosine.counts) == ({"n": 1, "diverged": 0, "failed": 2}, {"n": 1, "diverged": 0, "failed": 2})
    c0, c1, c2 = (job(broken, "constant", s) for s in SEEDS)
    k0, k1, k2 = (job(broken, "cosine", s) for s in SEEDS)
    assert constant.stats["test_acc"].values == [json.loads((c0 / "summary.json").read_text())["final_test_acc"]]
    assert cosine.stats["test_acc"].values == [json.loads((k2 / "summary.json").read_text())["final_test_acc"]]
    assert {r.path: r.status for r in report.excluded} == dict.fromkeys([c1, c2, k0, k1], "damaged")

    assert "## Not included (4)" in markdown
    assert "summary.json: unreadable (JSONDecodeError)" in listed_reason(markdown, c1)
    assert "summary.json: unreadable (JSONDecodeError)" in listed_reason(markdown, c2)
    assert 'summary.json: final_test_acc is "abc", not a number' in listed_reason(markdown, k0)
    reason = listed_reason(markdown, k1)
    assert "final_test_acc is null, not a number" in reason and 'steps_per_epoch is "many"' in reason
    assert "scheduler=cosine" in listed_reason(markdown, k1)  # its overrides, from .hydra/overrides.yaml

    notes = notes_of(markdown)
    assert f"{c0}: metrics.jsonl line {EPOCHS} unreadable (JSONDecodeError)" in notes
    assert f"{c0}: steps.csv" in notes
    assert f"{k2}: overrides.yaml unreadable (UnicodeDecodeError)" in notes
    assert f"{k2}: metrics.jsonl line 2 unreadable (TypeError)" in notes
    assert f"{broken / 'multirun.yaml'}: unreadable" in notes
    assert [len(r.history) for r in (report.runs[0], report.runs[5])] == [EPOCHS - 1, 1]  # read up to the damage
    assert report.runs[5].params["scheduler"] == "cosine"  # overrides from summary.json's copy


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


def test_argument_errors_from_the_command_line_are_one_line(sweep, tmp_path):
    assert "cannot sort by 'speed'" in one_line_error(run_report(str(sweep), "--out", str(tmp_path), "--sort", "-speed"))
    assert "expected one argument" in one_line_error(run_report(str(sweep), "--group-by"))
