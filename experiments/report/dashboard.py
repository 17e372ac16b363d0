"""The sweep dashboard: the report's index.html, one page that opens from disk with nothing to fetch.

    python -m experiments.report SWEEP                  # index.html beside table.md
    python -m experiments.report SWEEP --watch          # kept current while the sweep runs; Ctrl-C stops
    python -m experiments.report SWEEP --serve 8000     # the same, served on http://127.0.0.1:8000/ only

The page holds plotly's JavaScript inline and draws, one colour per group as in the report's figures: the
train / validation / test accuracy and loss, the LR and the gap against the epoch (metrics.jsonl), and the LR
and loss of every optimizer step (steps.csv, thinned to a few hundred points a run: every k-th LR, the mean
loss of every k steps). A group is its mean over its runs with a 95 % CI band, or its runs as thin lines (a
toggle); diverged runs and runs at chance are left out of the mean and band and drawn dotted; hovering shows
the values; clicking a group in a legend hides it in every chart, a double click
shows it alone. Below the charts: the table of table.md (sortable by any column, with its † and ‡ marks), its
pairwise comparisons, the runs left out of the means with the reason, every run with its overrides, and the notes.

A page written for --watch (experiments/report/live.py) carries `Live`: it loads live.js beside it every few
seconds and reloads when the version there differs from its own, keeping the band / lines choice and the hidden
groups (in the address's #fragment).
"""

from __future__ import annotations

import functools
import html
import json
import math
import os
import re
import statistics
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import plotly.io as pio
from matplotlib.colors import to_hex, to_rgba
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from experiments.report.groups import Group, common_overrides
from experiments.report.plots import SPLITS, gap_column, mean_curve
from experiments.report.runs import Run, run_steps, seed_of
from experiments.report.tables import (
    DASH,
    FROM_RESULTS,
    MARK,
    UNTESTED,
    Style,
    branch_rows,
    branches_legend,
    choice_line,
    display_path,
    family_line,
    legend,
    number,
    pair_rows,
    pairs_legend,
    report_notes,
    scrub_paths,
    table_rows,
)
from trainer.records import LOCK_FILE, StepRow, atomic_write_bytes

if TYPE_CHECKING:  # the report that write_report (build.py) hands over
    from experiments.report.build import Report

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
    # the values the y-axis may show: a wide band must not stretch it past them, and no band goes beyond them
    y_range: tuple[float | None, float | None] = (0, None)
    # a value that holds over its epoch (the LR of its first step): drawn as a staircase from the epoch's start
    # (epoch e over [e - 1, e], the last epoch's lr_end at its end), as lr.png draws it
    staircase: bool = False


CHARTS = {
    "accuracy": Chart(
        "Accuracy", "accuracy (%)", ("train_acc", "val_acc", "test_acc"), 100, wide=True, y_range=(0, 100)
    ),
    "loss": Chart("Loss", "loss", ("train_loss", "val_loss", "test_loss"), wide=True),
    "lr": Chart("Learning rate at each epoch's first step", "learning rate", ("lr",), staircase=True),
    "gap": Chart("Generalization gap (train − test accuracy)", "gap (%)", ("gap",), 100, y_range=(-100, 100)),
    "step_lr": Chart("Learning rate of every step", "learning rate", ("lr",), per_step=True),
    "step_loss": Chart("Training loss of every step", "loss", ("loss",), per_step=True),
}
# the gap chart where the runs evaluate a fixed training subset at each epoch's end
EVAL_GAP_CHART = Chart(
    "Generalization gap, end of epoch (train subset − test accuracy)",
    "gap (%)",
    ("eval_gap",),
    100,
    y_range=(-100, 100),
)
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
    steps.csv thinned to one point per `every` steps; a staircase chart's points at each epoch's start."""
    if chart.per_step:
        return {f: [_thin(run_steps(run), f, every) for run in runs] for f in chart.fields}
    if chart.staircase:
        out = {}
        for f in chart.fields:
            out[f] = []
            for run in runs:
                points = {r.epoch - 1: v for r in run.history if _finite(v := getattr(r, f, None))}
                end = getattr(run.history[-1], f"{f}_end", None) if run.history else None
                if points and _finite(end):
                    points[run.history[-1].epoch] = end  # where lr.png's last step ends
                out[f].append(points)
        return out
    return {
        f: [{r.epoch: v for r in run.history if _finite(v := getattr(r, f, None))} for run in runs]
        for f in chart.fields
    }


def _rounded(values) -> list[float]:
    return [float(f"{v:.6g}") for v in values]  # a smaller page: six digits are more than a chart shows


def _rgba(color: str, alpha: float) -> str:
    r, g, b, _ = to_rgba(color)
    return f"rgba({round(r * 255)}, {round(g * 255)}, {round(b * 255)}, {alpha})"


def _hv(xs: Sequence[float], ys: Sequence[float]) -> tuple[list[float], list[float]]:
    """A staircase's corners: each value held from its x to the next one."""
    x_out, y_out = [], []
    for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
        if i:
            x_out.append(x)
            y_out.append(ys[i - 1])
        x_out.append(x)
        y_out.append(y)
    return x_out, y_out


def _group_traces(group: Group, index: int, points: list[dict], chart: Chart) -> list[dict]:
    """One group in one panel, as plotly traces: its 95 % CI band (cut to the chart's range) and mean over its
    runs but the diverged ones and those at chance (over all of them when none is left), a thin line per run
    (hidden until the page shows lines), and the runs at chance as dotted lines that stay in view."""
    scale = chart.scale
    color = to_hex(f"C{index % 10}")  # the report's colour of the group's place in the table
    common = {"type": "scatter", "legendgroup": f"g{index}", "name": group.label}
    runs = [(run, p) for run, p in zip(group.runs, points, strict=True) if p]
    if not runs:
        return []
    apart = [(run, p) for run, p in runs if run.included and run.at_chance]
    kept = [p for run, p in runs if run.status != "diverged" and not (run.included and run.at_chance)]
    if not kept:
        apart, kept = [], [p for run, p in runs if run.status != "diverged"] or [p for _, p in runs]
    xs, mean, err = mean_curve(kept, scale)
    counts = [sum(x in p for p in kept) for x in xs]
    shape = {"shape": "hv"} if chart.staircase else {}
    traces = []
    if any(err > 0):
        low, high = chart.y_range
        upper = np.minimum(mean + err, math.inf if high is None else high)
        lower = np.maximum(mean - err, -math.inf if low is None else low)
        bx, by = _hv(xs, upper) if chart.staircase else (list(xs), list(upper))
        lx, ly = _hv(xs, lower) if chart.staircase else (list(xs), list(lower))
        band = {"x": [*bx, *lx[::-1]], "y": _rounded([*by, *ly[::-1]]), "fill": "toself", "mode": "lines"}
        band |= {"fillcolor": _rgba(color, 0.2), "line": {"width": 0}, "hoverinfo": "skip", "showlegend": False}
        traces.append({**common, **band, "meta": {"kind": "band"}})
    traces.append(
        {
            **common,
            "x": xs.tolist(),
            "y": _rounded(mean),
            "customdata": [[float(f"{e:.3g}"), n] for e, n in zip(err, counts, strict=True)],
            "mode": "lines+markers" if len(xs) <= 40 else "lines",
            "line": {"color": color, "width": 2, **shape},
            "marker": {"size": 5},
            "meta": {"kind": "mean"},
            "hovertemplate": "%{y:.4g} ± %{customdata[0]} (95 % CI, n = %{customdata[1]})<extra>%{fullData.name}</extra>",
        }
    )
    apart_ids = {id(run) for run, _ in apart}
    for run, p in runs:
        seed, status = html.escape(str(seed_of(run))), html.escape(run.status)
        x = sorted(p)
        at_chance = id(run) in apart_ids
        dash = "dot" if run.status == "diverged" or at_chance else "solid"
        what = f"{status}, {html.escape(run.at_chance)}" if at_chance else status
        traces.append(
            {
                **common,
                "x": x,
                "y": _rounded(p[k] * scale for k in x),
                "mode": "lines",
                "line": {"color": color, "width": 1, "dash": dash, **shape},
                "showlegend": False,
                "visible": at_chance,
                "meta": {"kind": "apart" if at_chance else "seed", "seed": seed},
                "hovertemplate": f"%{{y:.4g}}<extra>seed {seed} ({what})</extra>",
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
    charts = dict(CHARTS)
    if gap_column(report.groups) == "eval_gap":
        charts["gap"] = EVAL_GAP_CHART
    for name, chart in charts.items():
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
                for trace in _group_traces(g, i, curves[f], chart):
                    trace.update(axes)
                    if trace["meta"]["kind"] == "mean":  # one legend entry per group: the first panel's mean
                        trace["showlegend"] = not any(
                            t["legendgroup"] == trace["legendgroup"] for t in data if t.get("showlegend")
                        )
                    data.append(trace)
        out[name] = {"data": data, "layout": layout}
    return out


# ------------------------------------------------------------------------------------------------ the tables

HTML = Style(" ± ", DASH, "<b>{}</b>", html.escape, f" {MARK}", "&lt; ", f" {UNTESTED}")
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
        cells = [display_path(r.path, out), label[id(r)], str(seed_of(r) if seed_of(r) is not None else DASH), status]
        cells += [str(epochs), DASH if value is None else number(value, metric)]
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


def counts_line(runs: Sequence[Run], running: set[Path]) -> str:
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


def _branches_section(report: Report, out: Path) -> list[str]:
    """table.md's "Branches": a row per branch group, what the columns mean, each family's cost."""
    shown = lambda path: display_path(path, out)  # noqa: E731
    rows = branch_rows(report.families, report.branch_metric, HTML, shown)
    return [
        f"<h2>Branches ({len(rows) - 1})</h2>",
        html_table(rows, "llrrrrrr"),
        f'<p class="legend">{html.escape(branches_legend(report.branch_metric))}</p>',
        "<ul>",
        *(f"<li>{html.escape(family_line(f, shown))}</li>" for f in report.families),
        "</ul>",
    ]


def render(report: Report, out: Path, live: Live | None = None) -> str:
    """The page of a report whose files are in `out` (paths on the page are relative to it)."""
    groups = report.groups
    running = running_folders([r.path for r in report.runs])
    head = [
        "<h1>schedlab sweep</h1>",
        f'<p class="meta">{counts_line(report.runs, running)}, from {_sources(report.folders, out)}, in {len(groups)} groups; '
        f"{len(report.runs) - len(report.excluded)} completed and in the means.</p>",
    ]
    if common := common_overrides(report.runs):
        head.append(
            '<p class="meta">Common overrides: ' + " ".join(f"<code>{html.escape(o)}</code>" for o in common) + ".</p>"
        )
    if report.comparison is not None:
        head.append(f'<p class="meta">{html.escape(choice_line(report.comparison))}</p>')
    if report.from_results:
        head.append(f'<p class="meta">{html.escape(FROM_RESULTS)}</p>')
    head.append(_status_line(live))
    charts = figures(report)
    controls = (
        '<div class="controls">Each group: <button data-mode="band">mean and 95 % CI band</button>'
        '<button data-mode="lines">its runs as lines</button>'
        '<span class="meta">Click a group in a legend to hide it in every chart, double-click to show it alone. '
        "The mean and band leave diverged runs and runs at chance out; runs at chance stay in view, dotted."
        "</span></div>"
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
        *(
            f'<p class="legend">{html.escape(p)}</p>'
            for p in legend(report.comparison, report.targets, groups, report.metrics)
        ),
    ]
    if report.comparison is not None and report.comparison.pairs:
        pairs = pair_rows(report.comparison, HTML)
        body += [
            f"<h2>Pairwise comparisons ({len(report.comparison.pairs)})</h2>",
            html_table(pairs, "lll" + "r" * (len(pairs[0]) - 3)),
            f'<p class="legend">{html.escape(pairs_legend(report.comparison))}</p>',
        ]
    if report.families:
        body += _branches_section(report, out)
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
