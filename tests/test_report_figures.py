"""What a journal takes: table.tex compiled by pdflatex (where TeX is installed) within the text width, its caption
in LaTeX; the page's charts: no stray markers on the bands of short runs, the LR chart the staircase lr.png draws."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import ROOT
from omegaconf import OmegaConf

from experiments.report import build, write_report
from experiments.report.dashboard import figures
from trainer.records import EpochRow, RunFolder, StepRow, Summary

STEPS = 4
PDFLATEX = shutil.which("pdflatex")


@pytest.fixture(autouse=True)
def no_figure_files(monkeypatch):
    monkeypatch.setattr(build, "save_figure", lambda fig, out, name: {})


def make_run(folder: Path, arm: str, seed: int, accs: list[float], lrs: list[float], status: str = "completed", **f):
    """A run folder through trainer.records' writers: an LR per epoch (held for its STEPS steps), the accuracies."""
    history = [
        EpochRow(
            epoch=e + 1,
            train_loss=1 - a,
            train_acc=a,
            val_loss=1 - a,
            val_acc=a - 0.01,
            test_loss=1 - a,
            test_acc=a - 0.02,
            gap=0.02,
            lr=lr,
            lr_end=lr,
            epoch_time=1.0,
        )
        for e, (a, lr) in enumerate(zip(accs, lrs, strict=True))
    ]
    steps = [StepRow(STEPS * (r.epoch - 1) + k + 1, r.epoch, r.lr, r.train_loss) for r in history for k in range(STEPS)]
    run = RunFolder(folder)
    run.write_config(OmegaConf.create({"dataset": {"num_classes": 10}}))
    run.write_history(history, steps)
    overrides = [f"scheduler={arm}", f"seed={seed}"]
    summary = Summary(status=status, seed=seed, overrides=overrides, epochs=len(accs), steps_per_epoch=STEPS, **f)
    summary.wall_time_s = float(len(accs))
    summary.record_history(history)
    run.write_summary(summary)
    return folder


@pytest.fixture(scope="module")
def short(tmp_path_factory):
    """Two arms, three seeds, five epochs: a stepped LR and a decaying one."""
    folder = tmp_path_factory.mktemp("short") / "sweep"
    lrs = {"step": [0.3, 0.3, 0.03, 0.03, 0.003], "decay": [0.3 / (e + 1) for e in range(5)]}
    i = 0
    for arm, lr in lrs.items():
        for seed in range(3):
            make_run(folder / str(i), arm, seed, [0.5 + 0.08 * e + 0.01 * seed + 0.02 * i for e in range(5)], lr)
            i += 1
    return folder


def test_bands_of_short_runs_are_areas_without_markers(short, tmp_path):
    report = write_report([short], tmp_path / "out")
    charts = figures(report)
    bands = [t for chart in charts.values() for t in chart["data"] if t["meta"]["kind"] == "band"]
    assert bands and all(t["mode"] == "lines" and t["line"]["width"] == 0 for t in bands)  # no dot at a corner
    accuracy = [t for t in charts["accuracy"]["data"] if t["meta"]["kind"] == "band"]
    assert all(0 <= y <= 100 for t in accuracy for y in t["y"])  # cut at what an accuracy can be


def test_the_pages_lr_chart_is_the_staircase_of_lr_png(short, tmp_path):
    report = write_report([short], tmp_path / "out")
    chart = figures(report)["lr"]
    for g, series in zip(report.groups, report.plots["lr"], strict=True):
        index = report.groups.index(g)
        (mean,) = [t for t in chart["data"] if t["legendgroup"] == f"g{index}" and t["meta"]["kind"] == "mean"]
        assert mean["line"]["shape"] == "hv" and mean["x"] == [0, 1, 2, 3, 4, 5]  # epoch e over [e - 1, e]
        png = dict(zip(series.x, series.y, strict=True))  # lr.png: every step at its position in epochs
        assert mean["y"] == pytest.approx([png[x] for x in mean["x"]], rel=1e-5)
        seeds = [t for t in chart["data"] if t["legendgroup"] == f"g{index}" and t["meta"]["kind"] == "seed"]
        assert all(t["line"]["shape"] == "hv" and t["x"] == mean["x"] for t in seeds)


def compile_table(tex: str, folder: Path) -> tuple[float, float]:
    """table.tex in a one-page article, its comment lines as the table's caption: (table width, text width) in pt;
    pdflatex must succeed."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "table.tex").write_text(tex)
    caption = " ".join(line[2:] for line in tex.splitlines()[1:] if line.startswith("% "))
    document = "\n".join(
        [
            r"\documentclass{article}",
            r"\IfFileExists{booktabs.sty}{\usepackage{booktabs}}"
            r"{\newcommand\toprule{\hline}\newcommand\midrule{\hline}\newcommand\bottomrule{\hline}}",
            r"\newsavebox\tablebox",
            r"\begin{document}",
            r"\begin{table}\caption{" + caption + "}",
            r"\sbox\tablebox{\input{table.tex}}\usebox\tablebox",
            r"\typeout{TABLEWIDTH=\the\wd\tablebox}\typeout{TEXTWIDTH=\the\textwidth}",
            r"\end{table}",
            r"\end{document}",
        ]
    )
    (folder / "main.tex").write_text(document)
    done = subprocess.run(
        [PDFLATEX, "-interaction=nonstopmode", "-halt-on-error", "main.tex"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    assert "Overfull" not in done.stdout and (folder / "main.pdf").exists()
    widths = dict(re.findall(r"(TABLEWIDTH|TEXTWIDTH)=([\d.]+)pt", done.stdout))
    return float(widths["TABLEWIDTH"]), float(widths["TEXTWIDTH"])


@pytest.mark.skipif(PDFLATEX is None, reason="no pdflatex on this machine (Debian: apt-get install texlive-latex-base)")
@pytest.mark.slow
def test_table_tex_compiles_within_the_text_width(short, tmp_path):
    """The committed studies' tables, and a sweep with a validation split, a diverged seed and a target."""
    make_run(short / "9", "step", 3, [0.5, 0.1], [0.3, 0.3], status="diverged", diverged_at={"epoch": 2})
    tables = {
        "sweep": write_report([short], tmp_path / "sweep", targets=["val_acc=0.6"]).latex,
        **{
            study: write_report([ROOT / "experiments" / study / "results.csv"], tmp_path / study, num_classes=10).latex
            for study in ("d2l_schedulers", "adaptive_vs_schedules", "snapshot_ensemble")
        },
    }
    assert r"\ddagger" in tables["snapshot_ensemble"] and r"$^\S$" in tables["d2l_schedulers"]
    for name, tex in tables.items():
        table, text = compile_table(tex, tmp_path / "tex" / name)
        assert table <= text, f"{name}: {table:.0f}pt wide, the text {text:.0f}pt"
    shutil.rmtree(short / "9")
