"""task=toy: optimizers and schedules on a 2-D test function, each trajectory drawn over its contours and its
loss against the step, several configs in one figure (toy.compare, composed as schedule_plot.compare is).

Every run is built as training builds it: the optimizer by trainer.engine.setup.build_optimizer, the schedule by
schedulers.build_schedule, stepped after every optimizer step; one toy step is one epoch of the schedule, so
horizons, milestones and warmups count steps, and a plateau schedule steps on the function's value. The point
is a float64 2-vector, so the closed forms of the quadratic hold to rounding.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from schedulers import build_schedule
from schedulers.config import as_node
from trainer.config import resolved
from trainer.engine.setup import build_optimizer
from trainer.errors import ConfigError
from trainer.records import write_json
from trainer.tasks.schedule import checked, compose_entries

BLOWUP = 1e6  # a run stops as diverged once f is not finite or above BLOWUP x its value at the start
SOLVED = 1e-6  # the table's "steps to" column: the first step with f <= SOLVED x f(start)


@dataclass(frozen=True)
class Function:
    """A 2-D test function with f* = 0 at `minimum`; `f` uses arithmetic only, so it takes torch scalars (the
    optimized point) and numpy grids (the contours) alike."""

    name: str
    formula: str
    f: Callable
    minimum: tuple[float, float]
    start: tuple[float, float]


def make_function(toy) -> Function:
    if toy.function == "quadratic":
        big = toy.curvature
        small = big / toy.condition
        formula = f"(μx² + Ly²)/2, μ = {small:g}, L = {big:g}, κ = {toy.condition:g}"
        return Function("quadratic", formula, lambda x, y: 0.5 * (small * x**2 + big * y**2), (0.0, 0.0), (-1.0, 0.3))
    if toy.function == "rosenbrock":
        return Function(
            "rosenbrock",
            "(1 − x)² + 100(y − x²)²",
            lambda x, y: (1 - x) ** 2 + 100 * (y - x**2) ** 2,
            (1.0, 1.0),
            (-1.2, 1.0),
        )
    formula = "(1.5 − x + xy)² + (2.25 − x + xy²)² + (2.625 − x + xy³)²"
    return Function(
        "beale",
        formula,
        lambda x, y: (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2,
        (3.0, 0.5),
        (1.0, 1.5),
    )


def trajectory(cfg) -> dict:
    """Run cfg's optimizer and schedule on cfg.toy's function: every point, f at every point, the LR of every step."""
    fn = make_function(cfg.toy)
    steps = cfg.toy.steps
    w = torch.tensor(list(cfg.toy.start or fn.start), dtype=torch.float64, requires_grad=True)
    optimizer = build_optimizer(cfg.optimizer, [w])
    schedule = build_schedule(cfg.scheduler, optimizer, 1, steps)  # one step = one epoch of the schedule
    value = fn.f(w[0], w[1])
    points, losses, lrs = [w.tolist()], [value.item()], []
    diverged_at = None
    for step in range(1, steps + 1):
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        lrs.append(float(optimizer.param_groups[0]["lr"]))
        optimizer.step()
        schedule.step_batch()
        value = fn.f(w[0], w[1])
        points.append(w.tolist())
        losses.append(value.item())
        if not math.isfinite(losses[-1]) or losses[-1] > BLOWUP * max(losses[0], 1e-300):
            diverged_at = step
            break
        schedule.step_epoch(losses[-1])
    return {
        "status": "diverged" if diverged_at else "completed",
        "diverged_at": diverged_at,
        "points": points,
        "loss": losses,
        "lr": lrs,
    }


def describe(cfg) -> str:
    """The optimizer's class, LR and every setting that differs from torch's default; the schedule unless constant."""
    optimizer = build_optimizer(cfg.optimizer, [torch.zeros(1, requires_grad=True)])
    defaults = {k: p.default for k, p in inspect.signature(type(optimizer)).parameters.items()}
    shown = [f"lr={optimizer.defaults['lr']:g}"] + [
        f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in optimizer.defaults.items()
        if k != "lr" and k in defaults and v != defaults[k]
    ]
    node = as_node(cfg.scheduler)
    schedule = node.get("name") or str(node.get("_target_", "")).rsplit(".", 1)[-1]
    return f"{type(optimizer).__name__} {' '.join(shown)}" + ("" if schedule == "constant" else f", {schedule}")


def steps_to(losses: list[float], fraction: float = SOLVED) -> int | None:
    target = fraction * losses[0]
    return next((k for k, v in enumerate(losses) if v <= target), None)


def view(fn: Function, runs: list[dict]) -> tuple[tuple[float, float], tuple[float, float]]:
    """The box drawn: the start points and the minimum, widened to the trajectories by at most its larger side."""
    corners = np.array([fn.minimum, *(r["points"][0] for r in runs)])
    low, high = corners.min(axis=0), corners.max(axis=0)
    span = max(high - low)
    points = np.concatenate([np.asarray(r["points"], dtype=float) for r in runs])
    points = points[np.isfinite(points).all(axis=1)]
    low = np.maximum(np.minimum(low, points.min(axis=0)), low - span)
    high = np.minimum(np.maximum(high, points.max(axis=0)), high + span)
    pad = 0.08 * (high - low)
    return (low[0] - pad[0], high[0] + pad[0]), (low[1] - pad[1], high[1] + pad[1])


def plot_toy(fn: Function, runs: list[dict], path: Path) -> None:
    """Left: the trajectories over log-spaced contours of f; right: f against the step, log scale."""
    from matplotlib.colors import LogNorm
    from matplotlib.figure import Figure  # no pyplot: no global backend or figure state

    fig = Figure(figsize=(13, 5.2), layout="constrained")
    ax, ax_loss = fig.subplots(1, 2, width_ratios=[1.25, 1])
    (x0, x1), (y0, y1) = view(fn, runs)
    grid_x, grid_y = np.meshgrid(np.linspace(x0, x1, 400), np.linspace(y0, y1, 400))
    z = fn.f(grid_x, grid_y)
    top = float(z.max())
    levels = np.geomspace(max(float(z[z > 0].min()), top * 1e-9), top, 30)
    ax.contour(grid_x, grid_y, z, levels=levels, norm=LogNorm(), cmap="viridis", linewidths=0.6, alpha=0.45)
    for run in runs:
        p = np.asarray(run["points"], dtype=float)
        (line,) = ax.plot(p[:, 0], p[:, 1], marker=".", markersize=3, linewidth=1.1, label=run["label"])
        ax.plot(*p[0], marker="o", color=line.get_color(), markersize=5)
        ax_loss.plot(range(len(run["loss"])), run["loss"], color=line.get_color(), label=run["label"])
    ax.plot(*fn.minimum, marker="*", color="black", markersize=12, linestyle="none", label="minimum")
    ax.set(xlim=(x0, x1), ylim=(y0, y1), xlabel="x", ylabel="y", title=f"{fn.name}: f = {fn.formula}")
    ax.legend(fontsize=8, loc="best")
    ax_loss.set_yscale("log", nonpositive="mask")
    ax_loss.set(xlabel="step", ylabel="f(w) − f*  (f* = 0)", title="loss against step")
    ax_loss.grid(alpha=0.3, which="both")
    fig.savefig(path, dpi=120)


def run(cfg, job: dict, run_dir: Path, show) -> None:
    run_toy(cfg, run_dir)


def run_toy(cfg, run_dir: Path) -> list[dict]:
    """task=toy: the run's config and every toy.compare entry, drawn into toy.png, recorded in toy.json."""
    configs = checked({"": cfg, **compose_entries(cfg.toy.compare, "optimizer", ("toy.compare",))}, cfg)
    cfg = configs[""]
    fn = make_function(cfg.toy)
    for entry, c in configs.items():
        if make_function(c.toy).formula != fn.formula:
            raise ConfigError(
                f"toy.compare entry {entry!r} changes toy.function or its keys: one figure draws one function"
            )
    runs = []
    for entry, c in configs.items():
        label = describe(c)
        if any(r["label"] == label for r in runs):
            label += f" [{entry}]"
        runs.append(
            {
                "label": label,
                "overrides": entry,
                "optimizer": resolved(c.optimizer),
                "scheduler": resolved(c.scheduler),
                **trajectory(c),
            }
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    png, data = run_dir / "toy.png", run_dir / "toy.json"
    plot_toy(fn, runs, png)
    toy = resolved(cfg.toy)
    toy.update(name=fn.name, formula=fn.formula, minimum=list(fn.minimum), start=list(cfg.toy.start or fn.start))
    write_json(data, {"function": toy, "runs": runs})

    width = max(len(r["label"]) for r in runs)
    print(f"{fn.name}: f = {fn.formula}")
    print(f"{'':<{width}}  {'f(start)':>9}  {'f(end)':>9}  {'steps to 1e-6 f(start)':>22}")
    for r in runs:
        reached = steps_to(r["loss"])
        to = (
            f"diverged at step {r['diverged_at']}"
            if r["diverged_at"]
            else "not reached"
            if reached is None
            else reached
        )
        print(f"{r['label']:<{width}}  {r['loss'][0]:9.3g}  {r['loss'][-1]:9.3g}  {to:>22}")
    print(f"plot: {png}")
    print(f"data: {data}")
    return runs
