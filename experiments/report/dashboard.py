"""The sweep dashboard: the report's index.html, one page that opens from disk with nothing to fetch.

    python -m experiments.report SWEEP                  # index.html beside table.md
    python -m experiments.report SWEEP --watch          # kept current while the sweep runs; Ctrl-C stops
    python -m experiments.report SWEEP --serve 8000     # the same, served on http://127.0.0.1:8000/ only

The page holds plotly's JavaScript inline and draws, one colour per group as in the report's figures: the
train / validation / test accuracy and loss, the LR and the gap against the epoch (metrics.jsonl), and the LR
and loss of every optimizer step (steps.csv, thinned to a few hundred points a run: every k-th LR, the mean
loss of every k steps). A group is its mean over its runs with a 95 % CI band, or its runs as thin lines (a
toggle); hovering shows the values; clicking a group in a legend hides it in every chart, a double click
shows it alone. Below the charts: the table of table.md (sortable by any column, with its † marks), the runs
left out of the means with the reason, every run with its overrides, and the notes.

--watch looks at the run files every few seconds and, when one changed, rewrites the tables and the page
(not the figures) and live.js beside the page with the page's version; the open page loads live.js as often
and reloads when the version differs, keeping the band / lines choice and the hidden groups (in the address's
#fragment). It reads the run folders through the report's readers, which take a half-written last line as
the end of the file, and writes only into the report's folder. Ctrl-C stops it and writes the whole report.
"""

from __future__ import annotations

import functools
import hashlib
import html
import json
import math
import os
import re
import signal
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import plotly.io as pio
from matplotlib.colors import to_hex, to_rgba
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from experiments.report import (
    DASH,
    MARK,
    SPLITS,
    NoRunsError,
    Style,
    _common_overrides,
    _mean_curve,
    _number,
    _one_line,
    _seed,
    display_path,
    legend,
    output_folder,
    report_notes,
    run_steps,
    scrub_paths,
    table_rows,
    write_report,
)
from trainer.records import LOCK_FILE, StepRow, atomic_write_bytes

if TYPE_CHECKING:
    from experiments.report import Group, Report, Run

PAGE = "index.html"
LIVE_SCRIPT = "live.js"  # dashboardVersion("<version>"): what the open page compares its own version with
MAX_STEP_POINTS = 600  # per run and chart: steps.csv of a long run has hundreds of thousands of rows


class Chart(NamedTuple):
    title: str
    y_title: str
    fields: tuple[str, ...]  # EpochRow fields (StepRow fields with per_step): one panel each, where a run has it
    scale: float = 1.0  # 100: a fraction shown in percent
    per_step: bool = False
    wide: bool = False  # the page's whole width (several panels)
    # the values the y-axis may show: a wide band (a seed stuck at chance) must not stretch it past them
    y_range: tuple[float | None, float | None] = (0, None)


CHARTS = {
    "accuracy": Chart(
        "Accuracy", "accuracy (%)", ("train_acc", "val_acc", "test_acc"), 100, wide=True, y_range=(0, 100)
    ),
    "loss": Chart("Loss", "loss", ("train_loss", "val_loss", "test_loss"), wide=True),
    "lr": Chart("Learning rate at each epoch's first step", "learning rate", ("lr",)),
    "gap": Chart("Generalization gap (train − test accuracy)", "gap (%)", ("gap",), 100, y_range=(None, None)),
    "step_lr": Chart("Learning rate of every step", "learning rate", ("lr",), per_step=True),
    "step_loss": Chart("Training loss of every step", "loss", ("loss",), per_step=True),
}
PLOTLY_CONFIG = {"displaylogo": False, "responsive": True}


class Live(NamedTuple):
    """A page that follows a running sweep: it loads live.js every `interval` seconds and reloads when the
    version there differs from its own."""

    version: str
    interval: float
    updated: str  # when the run files last changed, as the page says it


# ------------------------------------------------------------------------------------------------ the charts


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _panel(field: str) -> str:
    """'val_acc' -> 'validation'; '' for a chart of one panel."""
    split = field.split("_")[0]
    return SPLITS.get(split, "")


def _thin(rows: Sequence[StepRow], field: str, every: int) -> dict[float, float]:
    """A run's steps.csv thinned to one point per `every` steps: the LR of the first step of each stretch (and
    of the last step), the mean loss of each stretch at its middle. Points that are not finite are left out."""
    if field == "lr":
        return {
            r.step: r.lr
            for i, r in enumerate(rows)
            if _finite(r.lr) and ((r.step - 1) % every == 0 or i == len(rows) - 1)
        }
    stretches: dict[int, list[float]] = {}
    for r in rows:
        if _finite(r.loss):
            stretches.setdefault((r.step - 1) // every, []).append(r.loss)
    return {b * every + (every + 1) / 2: statistics.fmean(v) for b, v in stretches.items()}


def run_curves(runs: Sequence[Run], chart: Chart, every: int) -> dict[str, list[dict]]:
    """For each field of the chart, each run's points {x: value} (unscaled; empty where the run has none);
    steps.csv thinned to one point per `every` steps."""
    if chart.per_step:
        return {f: [_thin(run_steps(run), f, every) for run in runs] for f in chart.fields}
    return {
        f: [{r.epoch: v for r in run.history if _finite(v := getattr(r, f, None))} for run in runs]
        for f in chart.fields
    }


def _rounded(values) -> list[float]:
    return [float(f"{v:.6g}") for v in values]  # a smaller page: six digits are more than a chart shows


def _rgba(color: str, alpha: float) -> str:
    r, g, b, _ = to_rgba(color)
    return f"rgba({round(r * 255)}, {round(g * 255)}, {round(b * 255)}, {alpha})"


def _group_traces(group: Group, index: int, points: list[dict], scale: float) -> list[dict]:
    """One group in one panel, as plotly traces: its 95 % CI band and mean (over its runs but the diverged ones,
    or over all of them when every run diverged), and a thin line per run (hidden until the page shows lines)."""
    color = to_hex(f"C{index % 10}")  # the report's colour of the group's place in the table
    common = {"type": "scatter", "legendgroup": f"g{index}", "name": group.label}
    runs = [(run, p) for run, p in zip(group.runs, points, strict=True) if p]
    if not runs:
        return []
    kept = [p for run, p in runs if run.status != "diverged"] or [p for _, p in runs]
    xs, mean, err = _mean_curve(kept, scale)
    counts = [sum(x in p for p in kept) for x in xs]
    traces = []
    if any(err > 0):
        band = {"x": [*xs, *xs[::-1]], "y": _rounded([*(mean + err), *(mean - err)[::-1]]), "fill": "toself"}
        band |= {"fillcolor": _rgba(color, 0.2), "line": {"width": 0}, "hoverinfo": "skip", "showlegend": False}
        traces.append({**common, **band, "meta": {"kind": "band"}})
    traces.append(
        {
            **common,
            "x": xs.tolist(),
            "y": _rounded(mean),
            "customdata": [[float(f"{e:.3g}"), n] for e, n in zip(err, counts, strict=True)],
            "mode": "lines+markers" if len(xs) <= 40 else "lines",
            "line": {"color": color, "width": 2},
            "marker": {"size": 5},
            "meta": {"kind": "mean"},
            "hovertemplate": "%{y:.4g} ± %{customdata[0]} (95 % CI, n = %{customdata[1]})<extra>%{fullData.name}</extra>",
        }
    )
    for run, p in runs:
        seed, status = html.escape(str(_seed(run))), html.escape(run.status)
        x = sorted(p)
        traces.append(
            {
                **common,
                "x": x,
                "y": _rounded(p[k] * scale for k in x),
                "mode": "lines",
                "line": {"color": color, "width": 1, "dash": "dot" if run.status == "diverged" else "solid"},
                "showlegend": False,
                "visible": False,
                "meta": {"kind": "seed", "seed": seed},
                "hovertemplate": f"%{{y:.4g}}<extra>seed {seed} ({status})</extra>",
            }
        )
    return traces


@functools.cache
def _template() -> dict:
    return pio.templates["plotly_white"].to_plotly_json()  # resolved once: plotly.js knows no template by name


def figures(report: Report) -> dict[str, dict]:
    """The page's charts as plotly figures (dicts), by name: those some run has data for, with a panel per
    split the runs have."""
    last = max((steps[-1].step for g in report.groups for r in g.runs if (steps := run_steps(r))), default=1)
    every = max(1, math.ceil(last / MAX_STEP_POINTS))  # the same stretches for every run: their means line up
    out = {}
    for name, chart in CHARTS.items():
        by_group = [run_curves(g.runs, chart, every) for g in report.groups]
        fields = [f for f in chart.fields if any(p for curves in by_group for p in curves[f])]
        if not fields:
            continue
        layout = make_subplots(
            rows=1,
            cols=len(fields),
            shared_yaxes=True,
            subplot_titles=[_panel(f) for f in fields] if len(fields) > 1 else None,
            horizontal_spacing=0.04,
        )
        x_title = "step" if chart.per_step else "epoch"
        layout.update_xaxes(title_text=x_title)
        layout.update_yaxes(title_text=chart.y_title, row=1, col=1)
        low, high = chart.y_range
        layout.update_yaxes(autorangeoptions={"minallowed": low, "maxallowed": high})
        layout = layout.layout.to_plotly_json() | {
            "title": {"text": chart.title, "x": 0.01},
            "template": _template(),
            "height": 420,
            "margin": {"l": 60, "r": 20, "t": 70, "b": 40},
            "hovermode": "x unified",
            "legend": {"orientation": "h", "yanchor": "top", "y": -0.18, "x": 0},
        }
        data = []
        for col, f in enumerate(fields, start=1):
            axes = {"xaxis": f"x{col if col > 1 else ''}", "yaxis": f"y{col if col > 1 else ''}"}
            for i, (g, curves) in enumerate(zip(report.groups, by_group, strict=True)):
                for trace in _group_traces(g, i, curves[f], chart.scale):
                    trace.update(axes)
                    if trace["meta"]["kind"] == "mean":  # one legend entry per group: the first panel's mean
                        trace["showlegend"] = not any(
                            t["legendgroup"] == trace["legendgroup"] for t in data if t.get("showlegend")
                        )
                    data.append(trace)
        out[name] = {"data": data, "layout": layout}
    return out


# ------------------------------------------------------------------------------------------------ the tables

HTML = Style(" ± ", DASH, "<b>{}</b>", html.escape, f" {MARK}", "&lt; ")
_LEADING_NUMBER = re.compile(r"\s*(?:<\s*)?([-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)")


def sort_value(cell: str) -> float | None:
    """The number a cell sorts by (its mean, its count, its p-value), or None for text."""
    text = html.unescape(re.sub(r"<[^>]+>", "", cell))
    match = _LEADING_NUMBER.match(text)
    return float(match.group(1)) if match else None


def html_table(rows: Sequence[Sequence[str]], align: str = "") -> str:
    """A sortable table of cells that are HTML already: the first row the header; `align` "l"/"r" a column."""
    header, body = rows[0], rows[1:]

    def td(i: int, cell: str) -> str:
        number = sort_value(cell)
        attrs = f' data-num="{number!r}"' if number is not None and math.isfinite(number) else ""
        attrs += ' class="num"' if i < len(align) and align[i] == "r" else ""
        return f"<td{attrs}>{cell}</td>"

    head = "".join(f'<th title="sort">{h}</th>' for h in header)
    lines = ["<tr>" + "".join(td(i, c) for i, c in enumerate(row)) + "</tr>" for row in body]
    table = f'<table class="sortable"><thead><tr>{head}</tr></thead><tbody>\n' + "\n".join(lines) + "\n</tbody></table>"
    return f'<div class="scroll">{table}</div>'


def running_folders(paths: Sequence[Path]) -> set[Path]:
    """The run folders whose run is at work: it holds its folder's lock (.lock), which Linux lists in
    /proc/locks; none where that cannot be read. The lock is looked up, never taken: a reader must not stand in
    the way of a run starting or resuming."""
    try:
        text = Path("/proc/locks").read_text()
    except OSError:
        return set()
    held = {(int(m[1], 16), int(m[2], 16), int(m[3])) for m in re.finditer(r"\b([0-9a-f]+):([0-9a-f]+):(\d+)\b", text)}
    running = set()
    for path in paths:
        try:
            st = os.stat(Path(path) / LOCK_FILE)
        except OSError:
            continue
        if (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino) in held:
            running.add(Path(path))
    return running


def _shown(run: Run, running: set[Path]) -> tuple[str, str]:
    """The run's status and reason as the page shows them: "running" for a run at work."""
    if run.path in running:
        return "running", f"running: {len(run.history)} epoch(s) so far"
    return run.status, run.reason


def _code(overrides: Sequence[str]) -> str:
    return f"<code>{html.escape(' '.join(overrides))}</code>"


def _runs_rows(report: Report, out: Path, running: set[Path]) -> list[list[str]]:
    """Every run: its folder, group, seed, status, epochs, the first column's figure, overrides, reason."""
    metric = report.metrics[0]
    label = {id(r): g.label for g in report.groups for r in g.runs}
    rows = [["run", "group", "seed", "status", "epochs", f"final {metric.title}", "overrides", "reason"]]
    for r in report.runs:
        value = r.value(metric)
        epochs = r.summary.epochs_completed if r.summary else len(r.history)
        status, reason = _shown(r, running)
        cells = [display_path(r.path, out), label[id(r)], str(_seed(r) if _seed(r) is not None else DASH), status]
        cells += [str(epochs), DASH if value is None else _number(value, metric)]
        rows.append([*map(html.escape, cells), _code(r.overrides), html.escape(scrub_paths(reason, out))])
    return rows


def _excluded_rows(report: Report, out: Path, running: set[Path]) -> list[list[str]]:
    """The runs left out of the means (table.md's "Not included"): folder, status, overrides, reason."""
    rows = [["run", "status", "overrides", "reason"]]
    for r in report.excluded:
        status, reason = _shown(r, running)
        path, reason = display_path(r.path, out), scrub_paths(reason, out)
        rows.append([html.escape(path), html.escape(status), _code(r.overrides), html.escape(reason)])
    return rows


def _counts(runs: Sequence[Run], running: set[Path]) -> str:
    """'6 runs: 4 completed, 1 running, 1 diverged'."""
    counts = Counter(_shown(r, running)[0] for r in runs)
    return f"{len(runs)} runs: " + ", ".join(f"{n} {status}" for status, n in counts.items())


# -------------------------------------------------------------------------------------------------- the page

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 0 auto; padding: 16px 24px; max-width: 1600px; color: #222; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; }
.meta, .legend { color: #555; } .legend { max-width: 1100px; }
.controls { margin: 12px 0; display: flex; gap: 12px; align-items: center; flex-wrap: wrap; }
.controls button { border: 1px solid #999; background: #fff; padding: 4px 12px; border-radius: 4px; cursor: pointer; }
.controls button.on { background: #333; color: #fff; border-color: #333; }
.live { color: #0a6; } .charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(560px, 1fr)); gap: 8px; }
.chart.wide { grid-column: 1 / -1; }
table { border-collapse: collapse; margin: 8px 0; } th, td { padding: 4px 8px; border-bottom: 1px solid #ddd; text-align: left; }
td.num { text-align: right; white-space: nowrap; } th { cursor: pointer; background: #f4f4f4; position: sticky; top: 0; }
th[data-dir=asc]::after { content: " ▲"; } th[data-dir=desc]::after { content: " ▼"; }
code { font-size: 12px; } .scroll { overflow-x: auto; } .empty { color: #777; font-style: italic; }
"""

# The band / lines toggle, group hiding shared by every chart (both kept in the address's #fragment, so a live
# page keeps them when it reloads), and sorting the tables by a click on a header.
SCRIPT = """
(() => {
  const charts = [...document.querySelectorAll(".plotly-graph-div")];
  const state = {mode: "band", hidden: []};
  try { Object.assign(state, JSON.parse(decodeURIComponent(location.hash.slice(1)) || "{}")); } catch (e) {}
  const hidden = new Set(state.hidden);
  function apply() {
    for (const div of charts) {
      const visible = div.data.map(t => {
        const kind = t.meta && t.meta.kind;
        const shown = kind === "band" ? state.mode === "band" : kind === "seed" ? state.mode === "lines" : true;
        return shown && hidden.has(t.legendgroup) ? "legendonly" : shown;
      });
      Plotly.restyle(div, {visible}, visible.map((_, i) => i));
    }
    state.hidden = [...hidden];
    history.replaceState(null, "", "#" + encodeURIComponent(JSON.stringify(state)));
    document.querySelectorAll("[data-mode]").forEach(b => b.classList.toggle("on", b.dataset.mode === state.mode));
  }
  const groupOf = e => e.data[e.curveNumber].legendgroup;
  for (const div of charts) {
    div.on("plotly_legendclick", e => { const g = groupOf(e); hidden.delete(g) || hidden.add(g); apply(); return false; });
    div.on("plotly_legenddoubleclick", e => {
      const g = groupOf(e), others = [...new Set(div.data.map(t => t.legendgroup))].filter(x => x !== g);
      const alone = others.every(x => hidden.has(x));
      hidden.clear();
      if (!alone) others.forEach(x => hidden.add(x));
      apply();
      return false;
    });
  }
  document.querySelectorAll("[data-mode]").forEach(b => b.addEventListener("click", () => { state.mode = b.dataset.mode; apply(); }));
  if (charts.length) apply();
  const collator = new Intl.Collator(undefined, {numeric: true});
  for (const table of document.querySelectorAll("table.sortable")) {
    table.querySelectorAll("th").forEach((th, col) => th.addEventListener("click", () => {
      const up = th.dataset.dir !== "asc";
      table.querySelectorAll("th").forEach(h => delete h.dataset.dir);
      th.dataset.dir = up ? "asc" : "desc";
      const body = table.tBodies[0], sign = up ? 1 : -1;
      const rows = [...body.rows].sort((a, b) => {
        const x = a.cells[col], y = b.cells[col], nx = "num" in x.dataset, ny = "num" in y.dataset;
        if (nx && ny) return sign * (x.dataset.num - y.dataset.num);
        if (nx !== ny) return nx ? -1 : 1;  // cells without a number (–) last either way
        return sign * collator.compare(x.textContent, y.textContent);
      });
      body.append(...rows);
    }));
  }
})();
"""

LIVE = """
(() => {
  const version = %s;
  window.dashboardVersion = v => { if (v !== version) location.reload(); };
  setInterval(() => {
    const s = document.createElement("script");
    s.src = "%s?" + Date.now();
    s.onload = s.onerror = () => s.remove();
    document.head.append(s);
  }, %d);
})();
"""


def _page(title: str, body: str, live: Live | None) -> str:
    live_script = "" if live is None else LIVE % (json.dumps(live.version), LIVE_SCRIPT, round(live.interval * 1000))
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>{html.escape(title)}</title>",
            f"<style>{STYLE}</style>",
            f'<script type="text/javascript">{get_plotlyjs()}</script>',
            "</head><body>",
            body,
            f"<script>{SCRIPT}{live_script}</script>",
            "</body></html>",
            "",
        ]
    )


def _status_line(live: Live | None) -> str:
    if live is None:
        return f'<p class="meta">Written {time.strftime("%Y-%m-%d %H:%M")}.</p>'
    return (
        f'<p class="meta live">Live: the run files last changed at {html.escape(live.updated)}; this page looks every '
        f"{live.interval:g} s and reloads when they change.</p>"
    )


def _sources(folders: Sequence[Path], out: Path) -> str:
    return ", ".join(f"<code>{html.escape(display_path(f, out))}</code>" for f in folders)


def render(report: Report, out: Path, live: Live | None = None) -> str:
    """The page of a report whose files are in `out` (paths on the page are relative to it)."""
    groups = report.groups
    running = running_folders([r.path for r in report.runs])
    head = [
        "<h1>schedlab sweep</h1>",
        f'<p class="meta">{_counts(report.runs, running)}, from {_sources(report.folders, out)}, in {len(groups)} groups; '
        f"{len(report.runs) - len(report.excluded)} completed and in the means.</p>",
    ]
    if common := _common_overrides(report.runs):
        head.append(
            '<p class="meta">Common overrides: ' + " ".join(f"<code>{html.escape(o)}</code>" for o in common) + ".</p>"
        )
    head.append(_status_line(live))
    charts = figures(report)
    controls = (
        '<div class="controls">Each group: <button data-mode="band">mean and 95 % CI band</button>'
        '<button data-mode="lines">its runs as lines</button>'
        '<span class="meta">Click a group in a legend to hide it in every chart, double-click to show it alone. '
        "The mean and band leave diverged runs out.</span></div>"
    )
    plots = [
        f'<div class="chart{" wide" if CHARTS[name].wide else ""}">'
        + pio.to_html(
            fig, include_plotlyjs=False, full_html=False, div_id=f"chart-{name}", config=PLOTLY_CONFIG, validate=False
        )
        + "</div>"
        for name, fig in charts.items()
    ]
    rows = table_rows(groups, report.metrics, HTML, report.comparison, report.targets)
    body = [
        *head,
        controls if charts else '<p class="empty">No run has finished an epoch yet.</p>',
        f'<div class="charts">{"".join(plots)}</div>',
        "<h2>Table</h2>",
        html_table(rows, "l" + "r" * (len(rows[0]) - 1)),
        *(f'<p class="legend">{html.escape(p)}</p>' for p in legend(report.comparison, report.targets)),
    ]
    if report.excluded:
        body += [f"<h2>Not included ({len(report.excluded)})</h2>", html_table(_excluded_rows(report, out, running))]
    body += ["<h2>Runs</h2>", html_table(_runs_rows(report, out, running), "llrlrr")]
    if notes := report_notes(report.runs, report.notes):
        body += ["<h2>Notes</h2>", "<ul>", *(f"<li>{html.escape(scrub_paths(n, out))}</li>" for n in notes), "</ul>"]
    return _page("schedlab sweep", "\n".join(body), live)


def write_dashboard(report: Report, out: Path, live: Live | None = None) -> Path:
    """index.html in `out`, written whole or not at all."""
    path = Path(out) / PAGE
    atomic_write_bytes(path, render(report, Path(out), live).encode())
    return path


def write_waiting_page(folders: Sequence[Path], out: Path, live: Live) -> Path:
    body = (
        f'<h1>schedlab sweep</h1><p class="meta">No training run under {_sources(folders, out)} yet.</p>'
        + _status_line(live)
    )
    path = Path(out) / PAGE
    atomic_write_bytes(path, _page("schedlab sweep", body, live).encode())
    return path


# ------------------------------------------------------------------------------------------------ live mode

WATCHED = {"summary.json", "metrics.jsonl", "steps.csv", "overrides.yaml", "multirun.yaml"}


def run_files(folders: Sequence[Path], out: Path) -> tuple:
    """(path, mtime, size) of every file under the folders that the report reads, the report's folder aside:
    what changes when a job starts, finishes an epoch or ends."""
    skip = Path(out).resolve()
    found = []
    for folder in folders:
        for root, dirs, files in os.walk(folder):
            dirs[:] = [d for d in dirs if (Path(root) / d).resolve() != skip and d not in ("wandb", "tensorboard")]
            for name in WATCHED.intersection(files):
                path = os.path.join(root, name)
                try:
                    st = os.stat(path)
                except OSError:  # removed between the listing and the look
                    continue
                found.append((path, st.st_mtime_ns, st.st_size))
    return tuple(sorted(found))


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 -- the base class's name
        pass

    def end_headers(self):
        self.send_header("Cache-Control", "no-store")  # live.js and the page are new at every look
        super().end_headers()


def serve(folder: Path, port: int) -> ThreadingHTTPServer:
    """Serve `folder` on http://127.0.0.1:PORT/ (loopback only) from a background thread; an OSError in one
    line when the port cannot be had."""
    try:
        server = ThreadingHTTPServer(("127.0.0.1", port), partial(_QuietHandler, directory=str(folder)))
    except OSError as e:
        reason = (e.strerror or type(e).__name__).lower()
        raise OSError(f"cannot serve on 127.0.0.1:{port}: {reason}; choose another --serve PORT") from None
    threading.Thread(target=server.serve_forever, name="report-server", daemon=True).start()
    return server


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def watch(
    folders: Sequence[str | Path],
    out: str | Path | None,
    options: dict,
    interval: float = 2.0,
    port: int | None = None,
    stop: threading.Event | None = None,
    say: Callable[[str], None] = _say,
) -> int:
    """Keep the tables and the page in `out` (default: <first folder>/report) current until Ctrl-C, SIGTERM or
    `stop`, then write the whole report; `options` are write_report's. Returns the exit code: 2 after a one-line
    error (a folder that cannot be written, a port in use, a bad argument)."""
    if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
        return _watch([Path(f) for f in folders], out, options, interval, port, stop or threading.Event(), say)
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)  # kill ends it as Ctrl-C does
    try:
        return _watch([Path(f) for f in folders], out, options, interval, port, stop or threading.Event(), say)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _watch(folders: list[Path], out, options: dict, interval: float, port, stop: threading.Event, say) -> int:
    server = None
    try:
        if missing := [f for f in folders if not f.is_dir()]:
            say(f"report: waiting for {', '.join(map(str, missing))} to appear (Ctrl-C to stop)")
        while [f for f in folders if not f.is_dir()]:
            if stop.wait(interval):
                return 0
    except KeyboardInterrupt:
        return 0
    out = Path(out) if out else folders[0] / "report"
    try:
        try:
            output_folder(out)
            if port is not None:
                server = serve(out, port)
        except (ValueError, OSError) as e:
            say(f"report: error: {_one_line(e)}")
            return 2
        if server is not None:
            say(f"report: serving http://127.0.0.1:{server.server_address[1]}/ (Ctrl-C to stop)")
        say(f"report: watching {', '.join(map(str, folders))}; the page is {out / PAGE}")
        seen = None
        while not stop.is_set():
            files = run_files(folders, out)
            if files != seen:
                live = Live(hashlib.sha1(repr(files).encode()).hexdigest()[:16], interval, time.strftime("%H:%M:%S"))
                try:
                    report = write_report(folders, out, live=live, **options)
                    running = running_folders([r.path for r in report.runs])
                    say(f"report: {live.updated} {_counts(report.runs, running)}")
                except NoRunsError:
                    write_waiting_page(folders, out, live)
                except (ValueError, OSError) as e:
                    say(f"report: error: {_one_line(e)}")
                    if seen is None:  # the arguments themselves: nothing will change that
                        return 2
                atomic_write_bytes(out / LIVE_SCRIPT, f"dashboardVersion({json.dumps(live.version)});\n".encode())
                seen = files
            stop.wait(interval)
    except KeyboardInterrupt:
        pass
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
    return _final(folders, out, options, say)


def _final(folders: list[Path], out: Path, options: dict, say: Callable[[str], None]) -> int:
    """The whole report, figures included; live.js then tells an open page to load it."""
    try:
        report = write_report(folders, out, **options)
    except NoRunsError:
        say("report: stopped; no training run to report")
        return 0
    except (ValueError, OSError) as e:
        say(f"report: error: {_one_line(e)}")
        return 2
    except KeyboardInterrupt:
        say("report: stopped before the whole report was written")
        return 130
    atomic_write_bytes(out / LIVE_SCRIPT, f"dashboardVersion({json.dumps('final ' + time.ctime())});\n".encode())
    say(f"report: stopped; wrote {', '.join(report.files)} to {out}")
    return 0
