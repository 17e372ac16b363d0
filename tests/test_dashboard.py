"""experiments/report/dashboard.py: the report's index.html (its structure and numbers, without a browser), --watch and
--serve while a sweep's jobs append their epochs, and the page rendered by headless Chromium where there is one."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import matplotlib.image as mpimg
import numpy as np
import pytest
import yaml
from helpers import ROOT, cells_of
from matplotlib.colors import to_rgb

from experiments.report import dashboard, live, main, write_report
from experiments.report.dashboard import CHARTS, LIVE_SCRIPT, MAX_STEP_POINTS, figures, sort_value
from experiments.report.live import run_files, watch
from trainer.config.sweeps import BASIC_SWEEPER
from trainer.records import EpochRow, RunFolder, StepRow, Summary

STEPS = 4  # optimizer steps per epoch
SCHEDULERS = ("constant", "cosine", "step")
SEEDS = (0, 1, 2)


# --- run folders as the trainer writes them, epoch by epoch -----------------------------------------------------


def start_job(folder: Path, overrides: list[str]) -> RunFolder:
    """A job's folder as Hydra leaves it at the job's start: .hydra/overrides.yaml."""
    run = RunFolder(folder)
    run.overrides.parent.mkdir(parents=True, exist_ok=True)
    run.overrides.write_text(yaml.safe_dump(overrides))
    return run


def add_epoch(run: RunFolder, acc: float, lr: float = 0.1) -> EpochRow:
    """One more epoch, appended as the trainer appends it: its metrics.jsonl row and its steps.csv rows."""
    epoch = len(run.read_metrics()) + 1
    row = EpochRow(
        epoch,
        train_loss=2 - acc,
        train_acc=acc + 0.05,
        val_loss=2.1 - acc,
        val_acc=acc - 0.01,
        test_loss=2.2 - acc,
        test_acc=acc,
        gap=0.05,
        lr=lr,
        lr_end=lr,
        epoch_time=1.0,
    )
    run.append_epoch(row, [StepRow((epoch - 1) * STEPS + i + 1, epoch, lr, 2.0 - acc + 0.01 * i) for i in range(STEPS)])
    return row


def finish(run: RunFolder, overrides: list[str], seed: int, status: str = "completed", **fields) -> None:
    """summary.json as the trainer writes it at the end of a run."""
    history = run.read_metrics()
    summary = Summary(status=status, seed=seed, overrides=overrides, epochs=3, steps_per_epoch=STEPS, **fields)
    summary.wall_time_s = float(len(history))
    summary.record_history(history)
    run.write_summary(summary)


def job(sweep: Path, scheduler: str, seed: int) -> Path:
    return sweep / str(SCHEDULERS.index(scheduler) * len(SEEDS) + SEEDS.index(seed))


def overrides_of(scheduler: str, seed: int) -> list[str]:
    return [f"scheduler={scheduler}", f"seed={seed}"]


def write_multirun(sweep: Path) -> None:
    """multirun.yaml as Hydra's basic sweeper leaves it: the jobs that never ran are listed from it."""
    sweep.mkdir(parents=True, exist_ok=True)
    hydra = {"sweeper": {"_target_": BASIC_SWEEPER, "params": None}}
    hydra["overrides"] = {"task": [f"scheduler={','.join(SCHEDULERS)}", f"seed={','.join(map(str, SEEDS))}"]}
    (sweep / "multirun.yaml").write_text(yaml.safe_dump({"hydra": hydra}))


def accuracy(scheduler: str, seed: int, epoch: int) -> float:
    return 0.5 + 0.1 * SCHEDULERS.index(scheduler) + 0.01 * seed + 0.05 * epoch


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """constant: three completed seeds; cosine: two completed, one diverged in epoch 3; step: one failed after
    an epoch, one stopped after two epochs without a summary, one never run."""
    sweep = tmp_path_factory.mktemp("dashboard") / "sweep"
    write_multirun(sweep)
    for scheduler in SCHEDULERS:
        for seed in SEEDS:
            if (scheduler, seed) == ("step", 2):
                continue  # never run
            overrides = overrides_of(scheduler, seed)
            run = start_job(job(sweep, scheduler, seed), overrides)
            epochs = {("cosine", 2): 2, ("step", 0): 1, ("step", 1): 2}.get((scheduler, seed), 3)
            for epoch in range(1, epochs + 1):
                add_epoch(run, accuracy(scheduler, seed, epoch), lr=0.1 / epoch)
            if (scheduler, seed) == ("cosine", 2):
                run.append_steps([StepRow(2 * STEPS + 1, 3, 0.1, float("inf"))])  # how it blew up
                at = {"epoch": 3, "step": 2 * STEPS + 1, "lr": 0.1, "loss": "inf"}
                finish(run, overrides, seed, "diverged", diverged_at=at)
            elif (scheduler, seed) == ("step", 0):
                finish(run, overrides, seed, "failed", error="RuntimeError: boom")
            elif (scheduler, seed) != ("step", 1):
                finish(run, overrides, seed)
    return sweep


@pytest.fixture(scope="module")
def report(sweep, tmp_path_factory):
    return write_report([sweep], tmp_path_factory.mktemp("out"))


class Tables(HTMLParser):
    """Every <table> of a page: its rows as lists of the cells' text (tags left out, entities read)."""

    def __init__(self, page: str):
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


# --- the page, without a browser --------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_page_holds_everything_it_draws_and_fetches_nothing(report):
    page = report.files["index.html"].read_text()
    assert report.files["index.html"].parent == report.files["table.md"].parent
    assert not re.search(r"<script[^>]*\bsrc=|<link\b|<iframe\b|@import", page)  # nothing loaded from elsewhere
    assert dashboard.get_plotlyjs() in page  # plotly's JavaScript, inline
    for name in CHARTS:
        assert page.count(f'id="chart-{name}"') == 1
    assert "dashboardVersion" not in page.split("</head>")[1]  # a finished report does not reload itself


def test_the_table_is_table_md_sortable_with_its_marks(report):
    main_table, *_ = Tables(report.files["index.html"].read_text()).tables
    header, *rows = main_table
    assert [r[0] for r in rows] == list(SCHEDULERS)
    for row in rows:  # every cell as table.md has it, bold aside
        expected = {k: v.replace("**", "") for k, v in cells_of(report.markdown, row[0]).items()}
        assert dict(zip(header, row, strict=True)) == expected
    assert any(c.endswith(" †") for r in rows for c in r) and "p vs best (Holm, all pairs)" in header
    assert "mean ± sample standard deviation" in report.files["index.html"].read_text().lower()


def test_every_run_is_listed_with_its_overrides_and_the_left_out_ones_with_the_reason(sweep, report):
    _, pairs, excluded, runs = Tables(report.files["index.html"].read_text()).tables
    assert [row[:2] for row in pairs[1:]] == [["constant", "cosine"]]  # step has no completed run to compare
    by_status = {row[1]: row[3] for row in excluded[1:]}
    assert by_status == {
        "diverged": "diverged at epoch 3, step 9 (loss inf)",
        "failed": "RuntimeError: boom",
        "no summary": "no summary.json: stopped after 2 epoch(s)",
        "not run": "job of the sweep in multirun.yaml without a folder",
    }
    header, *rows = runs
    assert len(rows) == len(report.runs) == len(SCHEDULERS) * len(SEEDS)
    column = dict(zip(header, zip(*rows, strict=True), strict=True))
    assert list(column["overrides"]) == [" ".join(overrides_of(s, seed)) for s in SCHEDULERS for seed in SEEDS]
    assert list(column["epochs"]) == ["3", "3", "3", "3", "3", "2", "1", "2", "0"]
    assert column["final test acc (%)"][0] == f"{100 * accuracy('constant', 0, 3):.2f}"
    assert not any(c.startswith("/") for c in column["run"])  # relative to the page, as in table.md


def test_the_charts_draw_each_groups_mean_band_and_runs(sweep, report):
    charts = figures(report)
    assert list(charts) == list(CHARTS)
    accuracy_chart = charts["accuracy"]
    panels = [a["text"] for a in accuracy_chart["layout"]["annotations"]]
    assert panels == ["train", "validation", "test"]
    test_panel = [t for t in accuracy_chart["data"] if t["xaxis"] == "x3"]
    colors = {t["legendgroup"]: t["line"]["color"] for t in test_panel if t["meta"]["kind"] == "mean"}
    assert colors == {"g0": "#1f77b4", "g1": "#ff7f0e", "g2": "#2ca02c"}  # the report's colours, in table order

    def traces(group: str, kind: str) -> list[dict]:
        return [t for t in test_panel if t["legendgroup"] == group and t["meta"]["kind"] == kind]

    (constant,) = traces("g0", "mean")
    expected = [statistics.mean(100 * accuracy("constant", s, e) for s in SEEDS) for e in (1, 2, 3)]
    assert constant["x"] == [1, 2, 3] and constant["y"] == pytest.approx(expected, rel=1e-5)
    assert [n for _, n in constant["customdata"]] == [3, 3, 3]
    assert len(traces("g0", "band")) == 1 and len(traces("g0", "seed")) == 3
    (cosine,) = traces("g1", "mean")  # the diverged seed is drawn as a line, left out of the mean
    assert cosine["y"][0] == pytest.approx(statistics.mean(100 * accuracy("cosine", s, 1) for s in (0, 1)), rel=1e-5)
    assert [t["line"]["dash"] for t in traces("g1", "seed")] == ["solid", "solid", "dot"]
    assert all(t["visible"] is False for t in test_panel if t["meta"]["kind"] == "seed")  # the band first
    assert sum(bool(t.get("showlegend", True)) for t in accuracy_chart["data"]) == 3  # one legend entry a group

    step_lr = [t for t in charts["step_lr"]["data"] if t["meta"]["kind"] == "seed" and t["legendgroup"] == "g0"]
    assert step_lr[0]["x"] == list(range(1, 3 * STEPS + 1)) and step_lr[0]["y"][-1] == pytest.approx(0.1 / 3)
    step_loss = [t for t in charts["step_loss"]["data"] if t["meta"]["kind"] == "seed" and t["legendgroup"] == "g1"]
    assert all(math.isfinite(y) for t in step_loss for y in t["y"])  # the blown-up step is left out
    assert charts["accuracy"]["layout"]["yaxis"]["autorangeoptions"] == {"minallowed": 0, "maxallowed": 100}


def test_long_runs_are_thinned_keeping_the_lr_schedule(tmp_path):
    steps = 5000
    rows = [StepRow(s, (s - 1) // 100 + 1, 0.1 * 0.5 ** ((s - 1) // 1000), 1.0 + (s % 2)) for s in range(1, steps + 1)]
    every = math.ceil(steps / MAX_STEP_POINTS)
    lr = dashboard._thin(rows, "lr", every)
    assert len(lr) <= MAX_STEP_POINTS + 1 and lr[1] == 0.1 and lr[steps] == rows[-1].lr
    assert all(v == rows[int(x) - 1].lr for x, v in lr.items())
    loss = dashboard._thin(rows, "loss", every)
    assert len(loss) <= MAX_STEP_POINTS
    for b, (x, v) in enumerate(sorted(loss.items())):  # the mean of each stretch of `every` steps, at its middle
        assert x == b * every + (every + 1) / 2 and v == statistics.fmean(
            r.loss for r in rows[b * every : (b + 1) * every]
        )


@pytest.mark.parametrize(
    "cell, value",
    [
        ("<b>87.81 ± 0.77 [85.91, 89.72]</b> †", 87.81),
        ("-1.5 ± –", -1.5),
        ("&lt; 0.001", 0.001),
        ("3", 3.0),
        ("best", None),
        ("–", None),
        ("not reached (0/3)", None),
    ],
)
def test_cells_sort_by_their_leading_number(cell, value):
    assert sort_value(cell) == value


# --- live: --watch and --serve ----------------------------------------------------------------------------------


def live_version(out: Path) -> str | None:
    try:
        return json.loads((out / LIVE_SCRIPT).read_text().removeprefix("dashboardVersion(").removesuffix(");\n"))
    except (OSError, ValueError):
        return None


def wait_for_version(out: Path, old: str | None, timeout: float = 30) -> str:
    """The version of live.js once it differs from `old` (a page written whole before it)."""
    deadline = time.monotonic() + timeout
    while (version := live_version(out)) in (None, old):
        assert time.monotonic() < deadline, f"live.js still at {old}"
        time.sleep(0.05)
    return version


def wait_for_page(out: Path, old: str | None, holds, timeout: float = 30) -> tuple[str, str]:
    """The first version after `old` whose page satisfies `holds` (the watcher may write the states between)."""
    deadline = time.monotonic() + timeout
    while True:
        old = wait_for_version(out, old, max(deadline - time.monotonic(), 0.1))
        page = (out / "index.html").read_text()
        if f'const version = "{old}"' in page and holds(page):
            return old, page
        assert time.monotonic() < deadline, f"no page satisfying the condition by version {old}"


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under a folder with its size and mtime."""
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()
    }


class Watcher:
    """watch() in a thread, as `python -m experiments.report SWEEP --watch` runs it; stop() ends it."""

    def __init__(self, folders, out=None, port=None, interval=0.05, options=None):
        self.lines: list[str] = []
        self.event = threading.Event()
        self.code = None
        args = (folders, out, options or {}, interval, port, self.event, self.lines.append)
        self.thread = threading.Thread(target=self._run, args=args, daemon=True)
        self.thread.start()

    def _run(self, *args):
        self.code = watch(*args)

    def stop(self, timeout: float = 120) -> int:
        self.event.set()
        self.thread.join(timeout)
        assert not self.thread.is_alive()
        return self.code


@pytest.mark.slow
def test_watch_follows_a_sweep_as_its_jobs_append_epochs(tmp_path):
    sweep, out = tmp_path / "sweep", tmp_path / "sweep" / "report"
    watcher = Watcher([sweep])
    deadline = time.monotonic() + 30
    while not any("waiting for" in line for line in watcher.lines):
        assert time.monotonic() < deadline, watcher.lines
        time.sleep(0.05)
    time.sleep(0.2)  # a few looks at the missing folder
    assert not sweep.exists()  # nothing written meanwhile
    sweep.mkdir()  # as Hydra makes it
    version = wait_for_version(out, None)
    page = (out / "index.html").read_text()
    assert "No training run under" in page and f'const version = "{version}"' in page
    write_multirun(sweep)
    version, page = wait_for_page(out, version, lambda page: "9 runs" in page)
    assert "9 runs: 9 not run" in page and "No run has finished an epoch yet" in page

    first, second = overrides_of("constant", 0), overrides_of("constant", 1)
    run = start_job(sweep / "0", first)
    with run.owned():  # the run holds its folder as the trainer does
        add_epoch(run, 0.6)
        # the watcher may first show the job started with no epoch yet
        version, page = wait_for_page(out, version, lambda page: "running: 1 epoch(s) so far" in page)
        tables = Tables(page).tables
        runs = {row[0]: row for row in tables[-1][1:]}
        assert runs["../0"][3:5] == ["running", "1"] and "running: 1 epoch(s) so far" in runs["../0"]
        assert 'id="chart-accuracy"' in page and "9 runs" in page  # the jobs of multirun.yaml, 8 not run yet
        with open(run.metrics, "a") as f:
            f.write('{"epoch": 2, "train_loss": 1.')  # an epoch's row half-written
        version = wait_for_version(out, version)
        assert [row[4] for row in Tables((out / "index.html").read_text()).tables[-1][1:2]] == ["1"]
    run.write_history(run.read_metrics(), [])  # a resume drops the cut line
    add_epoch(run, 0.7)
    finish(run, first, 0)
    second_run = start_job(sweep / "1", second)
    add_epoch(second_run, 0.65)
    finish(second_run, second, 1)
    written = {folder: snapshot(sweep / folder) for folder in ("0", "1")}
    version = wait_for_version(out, version)
    deadline = time.monotonic() + 30
    while "2 completed" not in (page := (out / "index.html").read_text()):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert watcher.stop() == 0
    assert (out / "index.html").read_text() != page and (out / "test_acc.png").exists()  # the whole report at the end
    assert "dashboardVersion" not in (out / "index.html").read_text().split("</head>")[1]
    assert live_version(out) != version  # an open page reloads into the finished report
    # the watcher reads the run folders and writes nothing there
    assert {folder: snapshot(sweep / folder) for folder in ("0", "1")} == written
    assert set(written["1"]) == {".hydra/overrides.yaml", "metrics.jsonl", "steps.csv", "summary.json"}


def test_run_files_are_those_the_report_reads(sweep, report):
    out = report.files["index.html"].parent
    files = {Path(p).relative_to(sweep).as_posix() for p, _, _ in run_files([sweep], out)}
    assert "multirun.yaml" in files and "0/metrics.jsonl" in files and "0/.hydra/overrides.yaml" in files
    assert not any(f.startswith("report/") for f in files)
    assert run_files([sweep], out) == run_files([sweep], out)


def test_serve_binds_to_loopback_and_a_port_in_use_is_one_line(sweep, tmp_path, monkeypatch):
    monkeypatch.setattr(live, "_final", lambda *args: 0)  # the whole report at the end: tested below
    watcher = Watcher([sweep], tmp_path / "out", port=0)
    deadline = time.monotonic() + 60
    while (
        not (serving := [line for line in watcher.lines if "serving" in line]) or live_version(tmp_path / "out") is None
    ):
        assert time.monotonic() < deadline and watcher.thread.is_alive(), watcher.lines
        time.sleep(0.05)
    url = serving[0].split()[2]
    assert url.startswith("http://127.0.0.1:")
    with urllib.request.urlopen(url + "index.html", timeout=10) as response:
        assert response.status == 200 and b'id="chart-accuracy"' in response.read()
    with urllib.request.urlopen(url + LIVE_SCRIPT, timeout=10) as response:
        assert response.headers["Cache-Control"] == "no-store" and b"dashboardVersion" in response.read()

    port = int(url.rstrip("/").rsplit(":", 1)[1])
    second = Watcher([sweep], tmp_path / "out2", port=port)  # the same port, taken
    second.thread.join(60)
    assert second.code == 2 and second.lines[-1] == (
        f"report: error: cannot serve on 127.0.0.1:{port}: address already in use; choose another --serve PORT"
    )
    assert watcher.stop() == 0


def run_report(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "MPLBACKEND": "Agg"}
    return subprocess.Popen(
        [sys.executable, "-m", "experiments.report", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


@pytest.mark.slow
def test_watch_from_the_command_line_ends_on_ctrl_c_with_the_whole_report(sweep, tmp_path):
    out = tmp_path / "out"
    process = run_report(str(sweep), "--watch", "--interval", "0.1", "--out", str(out))
    try:
        wait_for_version(out, None, timeout=60)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert "Traceback" not in err and err.splitlines()[-1].startswith("report: stopped; wrote table.md")
    assert (out / "lr.png").exists() and (out / "table.md").exists()


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--serve", "70000"], "argument --serve: 70000 is not a port (0-65535)"),
        (["--interval", "0"], "argument --interval: 0 is not a positive number of seconds"),
        (["--serve", "http"], "argument --serve: invalid int value: 'http'"),
    ],
)
def test_bad_live_arguments_are_one_line(sweep, tmp_path, capsys, args, expected):
    with pytest.raises(SystemExit) as stopped:
        main([str(sweep), "--out", str(tmp_path / "out"), *args])
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and err.count("\n") == 1 and expected in err, err
    assert not (tmp_path / "out").exists()


def test_a_report_folder_that_cannot_be_written_stops_watch_in_one_line(sweep, tmp_path):
    (tmp_path / "file").write_text("")
    watcher = Watcher([sweep], tmp_path / "file")
    watcher.thread.join(60)
    assert watcher.code == 2 and watcher.lines[-1].startswith("report: error: ") and "is a file" in watcher.lines[-1]


# --- in a browser -----------------------------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def chromium(url: str, profile: Path, *flags: str) -> subprocess.Popen:
    """Headless Chromium started on a page (offline: a file:// address), its console on stderr."""
    command = [CHROMIUM, "--headless", "--disable-gpu", "--hide-scrollbars", "--no-first-run"]
    command += [f"--user-data-dir={profile}", "--enable-logging=stderr", "--virtual-time-budget=10000"]
    command += ["--window-size=1400,2600", *flags, url]
    if os.geteuid() == 0:
        command.insert(1, "--no-sandbox")  # Chromium's sandbox refuses to run as root
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def console(stderr: str) -> list[str]:
    """What the page wrote to its console: errors, and anything else."""
    return re.findall(r"CONSOLE[^\]]*\] (.*)", stderr)


# A person's clicks on the page, once (before the live page reloads): the "lines" button, the first group in the
# accuracy chart's legend, the test accuracy header twice; the order the table then has is shown after the reload.
CLICKS = """<script>
(() => {
  if (sessionStorage.getItem("clicked")) { document.body.dataset.sorted = sessionStorage.getItem("sorted"); return; }
  sessionStorage.setItem("clicked", "1");
  document.querySelector('[data-mode="lines"]').click();
  const chart = document.getElementById("chart-accuracy");
  chart.emit("plotly_legendclick", {data: chart.data, curveNumber: chart.data.findIndex(t => t.legendgroup === "g0")});
  const table = document.querySelector("table.sortable"), header = table.querySelectorAll("th")[2];
  header.click();
  header.click();
  sessionStorage.setItem("sorted", [...table.tBodies[0].rows].map(row => row.cells[0].textContent).join(","));
})();
</script>
"""


def drawn_traces(dom: str) -> int:
    return len(re.findall(r'<g class="trace scatter', dom))


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine (Debian: apt-get install chromium)")
@pytest.mark.slow
def test_the_page_renders_in_chromium(sweep, report, tmp_path):
    """The finished page as it opens (band mode): every chart, table and colour drawn, nothing on the console.
    A live page, clicked as a person would (the lines button, a group in a legend, a column header twice): it
    draws the runs' lines without that group in every chart, sorts, and when live.js has a new version it
    reloads, keeping the lines and the hidden group."""
    page = report.files["index.html"].resolve()
    png = tmp_path / "page.png"
    live = tmp_path / "live"  # the page --watch writes, looking at live.js every second
    write_report([sweep], live, live=dashboard.Live("v1", 1.0, "12:00:00"))
    (live / LIVE_SCRIPT).write_text(  # a new version once: the page reloads, then says so in its title
        'if (!sessionStorage.getItem("reloaded")) { sessionStorage.setItem("reloaded", "1"); dashboardVersion("v2"); }\n'
        'else { dashboardVersion("v1"); document.title = "reloaded " + location.hash; }\n'
    )
    head, body, tail = (live / "index.html").read_text().rpartition("</body>")
    (live / "index.html").write_text(head + CLICKS + body + tail)
    browsers = [  # side by side: each takes seconds to start
        chromium(page.as_uri(), tmp_path / "band", f"--screenshot={png}", "--dump-dom"),
        chromium((live / "index.html").as_uri(), tmp_path / "lines", "--dump-dom"),
    ]
    try:
        (dom, err), (lines_dom, lines_err) = (b.communicate(timeout=180) for b in browsers)
    finally:
        for b in browsers:
            b.kill()
    assert [b.returncode for b in browsers] == [0, 0], err[-2000:] + lines_err[-2000:]
    assert console(err) == [] and console(lines_err) == []  # no error, no message at all
    for name in CHARTS:  # every chart is drawn: its axes and lines with data
        chart = dom.split(f'id="chart-{name}"')[1].split('id="chart-')[0]
        assert 'class="main-svg"' in chart and re.search(r'class="js-line"[^>]* d="M', chart), name
    main_table, pairs, excluded, runs = Tables(dom).tables
    assert len(pairs) - 1 == len(report.comparison.pairs)
    assert len(main_table) - 1 == len(report.groups) and len(runs) - 1 == len(report.runs)
    assert len(excluded) - 1 == len(report.excluded)

    data = [t for fig in figures(report).values() for t in fig["data"]]
    band = sum(t["meta"]["kind"] in ("band", "mean", "apart") for t in data)
    assert drawn_traces(dom) == band  # the band first: each group's mean and band, no run's line
    lines = sum(t["meta"]["kind"] in ("mean", "seed") and t["legendgroup"] != "g0" for t in data)
    assert drawn_traces(lines_dom) == lines  # the runs' lines, the first group hidden in every chart
    (title,) = re.findall(r"<title>reloaded #(.*?)</title>", lines_dom)  # the live page reloaded, keeping its state
    assert json.loads(unquote(title)) == {"mode": "lines", "hidden": ["g0"]}
    assert 'data-sorted="cosine,constant,step"' in lines_dom  # by test accuracy, descending; no mean last

    image = mpimg.imread(png)[..., :3]
    assert (image.reshape(-1, 3).std(axis=0) > 0.05).all() and (image < 0.9).any(axis=-1).mean() > 0.03
    for i in range(len(SCHEDULERS)):  # every group's colour is on the screen
        close = np.abs(image - np.array(to_rgb(f"C{i}"))).max(axis=-1) < 0.06
        assert close.sum() > 100, f"group {i}'s colour"
