"""task=schedule: draw the configured schedule, and any others named in schedule_plot.compare, without
data or training. Every curve uses the run's optimizer LR, epochs and steps per epoch.

A curve holds the LR of every optimizer step up to MAX_POINTS steps. A longer run (trainer.epochs x
schedule_plot.steps_per_epoch above it) is drawn at MAX_POINTS of its steps: the first step of every epoch
while there are fewer epochs than that, evenly spread epochs otherwise, and the last step; the library's
schedules are pure functions of the position, so those LRs are exact. A torch scheduler (`_target_`) is
stepped through every step, so it is drawn up to MAX_TORCH_STEPS steps and refused in one line above.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
from hydra import compose
from hydra.core.hydra_config import HydraConfig

from schedulers import config as schedule_config
from schedulers import curves as schedule_curves
from schedulers import key_epochs, lr_curve, plot_schedules
from trainer.config import typed, validate
from trainer.data import num_batches, train_size
from trainer.errors import ConfigError
from trainer.records import write_json

MAX_POINTS = 200_000  # LRs drawn per curve
MAX_TORCH_STEPS = 1_000_000  # steps a torch scheduler is driven through to draw it


def steps_per_epoch(cfg) -> int:
    if cfg.schedule_plot.steps_per_epoch:
        return cfg.schedule_plot.steps_per_epoch
    return num_batches(train_size(cfg.dataset), cfg.trainer.batch_size, cfg.trainer.max_steps_per_epoch)


def compared_configs(cfg) -> dict:
    """label -> config: the run's own, then each entry of schedule_plot.compare composed with the same
    command-line overrides (so trainer.epochs=50 or optimizer.lr=0.1 apply to every curve)."""
    return {
        cfg.scheduler.name: cfg,
        **compose_entries(cfg.schedule_plot.compare, "scheduler", ("scheduler", "schedule_plot")),
    }


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def compose_entries(entries: Iterable[str], group: str, replaced: tuple[str, ...]) -> dict:
    """entry -> config for each entry of a task's compare list: an option of `group`, or overrides (`key=value`,
    any group option such as arm=d2l_sqrt; several separated by spaces). Each is composed with the command
    line's overrides, less those whose key starts with one of `replaced` and those of a key or group the entry
    sets itself."""
    command_line = list(HydraConfig.get().overrides.task)
    configs = {}
    for entry in entries:
        own = shlex.split(entry) if "=" in entry else [f"{group}={entry}"]
        keys = tuple(_key(o) for o in own)
        kept = [
            o
            for o in command_line
            if not _key(o).startswith(replaced) and not any(_key(o) == k or _key(o).startswith(k + ".") for k in keys)
        ]
        configs[entry] = compose(config_name="config", overrides=[*kept, *own])
    return configs


def checked(configs: dict, own) -> dict:
    """Each of a task's configs (its own, `own`, checked before the task started, and its compare entries) checked,
    then as its typed config, in their order."""
    for c in configs.values():
        if c is not own:
            validate(c)
    return {label: typed(c) for label, c in configs.items()}


def drawn_steps(epochs: int, spe: int, limit: int = MAX_POINTS, epochs_shown: Iterable[int] = ()) -> np.ndarray:
    """The optimizer steps (0-based over the run) a curve is drawn at: every one when there are at most
    `limit`; else `limit // epochs` evenly spread steps of every epoch, its first step included, when that
    is at least one; else the first steps of about `limit` evenly spread epochs. The last step and the
    first step of each of `epochs_shown` always."""
    total = epochs * spe
    if total <= limit:
        return np.arange(total, dtype=np.int64)
    per_epoch = limit // epochs
    if per_epoch >= 1:
        within = np.unique(np.arange(per_epoch, dtype=np.int64) * spe // per_epoch)
        steps = (np.arange(epochs, dtype=np.int64)[:, None] * spe + within[None, :]).ravel()
    else:
        steps = np.unique(np.linspace(0, epochs - 1, limit - 1).round().astype(np.int64)) * spe
    shown = np.asarray([e * spe for e in epochs_shown if 0 <= e < epochs], dtype=np.int64)
    return np.unique(np.concatenate([steps, shown, [total - 1]]))


def _library_lr(scheduler, base_lr: float, epochs: int, spe: int) -> Callable[[int], float]:
    """The LR at an optimizer step of the library's schedule, as the trainer's scheduler computes it (no
    validation loss: a plateau schedule keeps its LR after warmup)."""
    c = schedule_config.parse(schedule_config.as_node(scheduler))
    c.check(epochs, base_lr)
    by_step = c.interval == "step"
    curve = schedule_curves.make_curve(c, epochs, 1.0 / spe if by_step else 1.0)
    return lambda step: float(curve(step / spe if by_step else float(step // spe), base_lr))


def draw_curve(
    label: str, scheduler, base_lr: float, epochs: int, spe: int, epochs_shown: Iterable[int] = ()
) -> tuple[list[float], list[float]]:
    """(t in epochs, LR) at the drawn steps of the run: every step up to MAX_POINTS, else those of
    drawn_steps (the first steps of `epochs_shown` among them)."""
    total = epochs * spe
    if total <= MAX_POINTS:
        return lr_curve(scheduler, base_lr, epochs, spe)
    steps = drawn_steps(epochs, spe, MAX_POINTS, epochs_shown)
    if "_target_" not in schedule_config.as_node(scheduler):
        lr_at = _library_lr(scheduler, base_lr, epochs, spe)
        return (steps / spe).tolist(), [lr_at(int(s)) for s in steps]
    if total > MAX_TORCH_STEPS:
        raise ConfigError(
            f"trainer.epochs={epochs} x schedule_plot.steps_per_epoch={spe} = {total} steps is too many to draw "
            f"{label} (scheduler._target_: torch's scheduler is stepped through every step, at most "
            f"{MAX_TORCH_STEPS}): lower trainer.epochs or schedule_plot.steps_per_epoch"
        )
    t, lr = lr_curve(scheduler, base_lr, epochs, spe)
    return [t[s] for s in steps], [lr[s] for s in steps]


def value_curves(c, t: list[float], epochs: int, spe: int) -> dict[str, list[float]]:
    """The values other than the LR that the config's schedule drives, at the drawn positions `t` (in epochs, one per
    drawn step): scheduler.momentum, beta2 and weight_decay from the optimizer's own value as their base, and the
    momentum onecycle and cyclic cycle, at the LR's position (the epoch's start with interval=epoch), as the
    trainer's scheduler sets them; the batch size (scheduler.batch_size) of each step's epoch. {} for a torch
    `_target_` schedule, which drives the LR alone."""
    node = schedule_config.as_node(c.scheduler)
    if "_target_" in node:
        return {}
    parsed = schedule_config.parse(node)
    by_step = parsed.interval == "step"
    epoch_of = [round(x * spe) // spe for x in t]  # each drawn step's epoch (from 0)
    at = t if by_step else [float(e) for e in epoch_of]
    bases = c.optimizer.hyperparameters()
    quantum = 1.0 / spe if by_step else 1.0
    out = {
        key: [float(curve(x, bases[key])) for x in at]
        for key, curve in schedule_curves.make_value_curves(parsed, epochs, quantum).items()
    }
    lr_curve_of = schedule_curves.make_curve(parsed, epochs, quantum)
    cycled = [schedule_curves.momentum_of(lr_curve_of, x) for x in at]  # onecycle's and cyclic's cycle_momentum
    if bases["momentum"] is not None and all(m is not None for m in cycled):
        out["momentum"] = [float(m) for m in cycled]
    sizes = schedule_curves.batch_sizes(parsed, epochs, c.trainer.batch_size)
    if sizes is not None:
        out["batch_size"] = [float(sizes[e]) for e in epoch_of]
    return out


def run(cfg, job: dict, run_dir: Path, show) -> None:
    run_schedule_task(cfg, run_dir)


def run_schedule_task(cfg, run_dir: Path) -> dict:
    configs = checked(compared_configs(cfg), cfg)
    cfg = next(iter(configs.values()))
    spe = steps_per_epoch(cfg)
    epochs = cfg.trainer.epochs
    curves = {}
    points = sorted({e for c in configs.values() for e in key_epochs(c.scheduler, epochs)})
    values: dict[str, dict[str, list[float]]] = {}  # label -> value -> its value at each drawn step
    for label, c in configs.items():
        curves[label] = draw_curve(label, c.scheduler, c.optimizer.lr, epochs, spe, points)
        values[label] = value_curves(c, curves[label][0], epochs, spe)
    run_dir.mkdir(parents=True, exist_ok=True)
    png = run_dir / "schedule.png"
    drawn = len(next(iter(curves.values()))[0])
    sampled = f", drawn at {drawn} of the {epochs * spe} steps" if drawn < epochs * spe else ""
    panels = {
        key: {label: (curves[label][0], v[key]) for label, v in values.items() if key in v}
        for key in dict.fromkeys(k for v in values.values() for k in v)
    }
    plot_schedules(curves, png, title=f"{epochs} epochs x {spe} steps{sampled}", values=panels)
    write_json(run_dir / "schedule.json", {k: {"t": t, "lr": lr, **values[k]} for k, (t, lr) in curves.items()})

    width = max(len(k) for k in curves) + max((len(f" {key}") for key in panels), default=0)
    header = "at epoch" if panels else "LR at epoch"  # the LR's rows, and each other value's below its LR's
    print(f"{header:<{width}}  " + "  ".join(f"{e:>9d}" for e in points))
    for label, (t, lr) in curves.items():
        index = {round(x * spe): i for i, x in enumerate(t)} if len(t) < epochs * spe else None
        rows = {label: lr, **{f"{label} {key}": v for key, v in values[label].items()}}
        for name, ys in rows.items():
            at = [ys[index[e * spe] if index is not None else e * spe] for e in points]
            print(f"{name:<{width}}  " + "  ".join(f"{v:9.3g}" for v in at))
    if sampled:
        which = "the first step of evenly spread epochs" if epochs > MAX_POINTS else "every epoch's first step"
        print(f"{epochs * spe} steps: drawn at {drawn} of them ({which}, and the last step)")
    print(f"plot: {png}")
    return curves
