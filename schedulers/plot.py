"""Schedules drawn without a model or data: the LR at every optimizer step of a run, and a figure."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

import schedulers.config as config
from schedulers.scheduler import build_schedule


def _without_metric(cfg: Any) -> Any:
    """Plateau needs a validation loss that a drawing does not have: draw its LR before any reduction,
    i.e. constant after its warmup. The LR alone: the schedules of other values (scheduler.momentum, ...) are
    left out, as the drawing's optimizer has none of the run's values to drive."""
    cfg = config.as_node(cfg)
    target = cfg.get("_target_", "")
    if cfg.get("name") == "plateau" or target.endswith("ReduceLROnPlateau"):
        return {"name": "constant", **{k: cfg[k] for k in ("interval", "warmup") if k in cfg}}
    if any(cfg.get(k) is not None for k in config.VALUES) and not target:
        return {k: v for k, v in cfg.items() if k not in config.VALUES}
    return cfg


def lr_curve(cfg: Any, base_lr: float, epochs: int, steps_per_epoch: int) -> tuple[list[float], list[float]]:
    """(t in epochs of each optimizer step, LR applied at that step) over a whole run."""
    param = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.SGD([param], lr=base_lr)
    scheduler = build_schedule(_without_metric(cfg), optimizer, steps_per_epoch, epochs)
    optimizer.step()  # no gradient, so a no-op; a torch scheduler (_target_) warns if the optimizer never stepped
    ts, lrs = [], []
    for epoch in range(epochs):
        for k in range(steps_per_epoch):
            ts.append(epoch + k / steps_per_epoch)
            lrs.append(scheduler.lr)
            scheduler.step_batch()
        scheduler.step_epoch()
    return ts, lrs


def key_epochs(cfg: Any, epochs: int) -> list[int]:
    """Epochs worth printing the LR at: start, end of warmup, milestones, horizon, quarters, last."""
    points = {0, epochs // 4, epochs // 2, 3 * epochs // 4, epochs - 1}
    cfg = config.as_node(cfg)
    if "_target_" not in cfg:
        c = config.parse(cfg).resolve(epochs)
        warmup = c.warmup.epochs
        points.add(math.ceil(warmup))
        end = c.end(epochs)
        points.update([math.ceil(end)] if end is not None else [])
        points.update(math.ceil(warmup + m) for m in getattr(c, "milestones", []))
    return sorted(p for p in points if 0 <= p < epochs)


# the y-axis label of each value a schedule can drive besides the LR, in the order their panels are drawn
VALUE_TITLES = {
    "momentum": "momentum / beta1",
    "beta2": "beta2",
    "weight_decay": "weight decay",
    "batch_size": "batch size",
}


def plot_schedules(
    curves: dict[str, tuple[list, list]],
    path: str | Path,
    title: str | None = None,
    values: dict[str, dict[str, tuple[list, list]]] | None = None,
) -> None:
    """All curves overlaid in one figure, written to `path` (PNG by its suffix); `values`: the other values the
    schedules drive (momentum, beta2, weight_decay, batch_size; VALUE_TITLES) as {value: {label: (t, value)}},
    each in a panel of its own below the LR's, on the same epoch axis and in each label's colour."""
    from matplotlib.figure import Figure  # no pyplot: no global backend or figure state

    panels = [key for key in VALUE_TITLES if (values or {}).get(key)]
    fig = Figure(figsize=(8, 4.5 + 2.0 * len(panels)), layout="constrained")
    axes = fig.subplots(1 + len(panels), 1, sharex=True, squeeze=False, height_ratios=[2.25] + [1] * len(panels))
    colors = {label: f"C{i % 10}" for i, label in enumerate(curves)}
    for ax, key in zip(axes[:, 0], ["lr", *panels], strict=True):
        drawn = curves if key == "lr" else values[key]
        for label, (t, y) in drawn.items():
            ax.plot(
                t, y, label=label, color=colors.get(label), drawstyle="steps-post"
            )  # a value holds until the next step
        ax.set_ylabel("learning rate" if key == "lr" else VALUE_TITLES[key])
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("epoch")
    if title:
        axes[0, 0].set_title(title)
    if curves:
        axes[0, 0].legend()
    fig.savefig(path, dpi=120)
