"""What a run of `epochs` epochs sees of its schedule: one warning line when the schedule was planned for a
longer run, so that a short run does not silently compare schedules that never started.

A horizon, a milestone or a cycle past the end of the run (position `epochs`) is cut; a `step` schedule
warns when the run ends before its first step. A value left null to follow the run never warns.
"""

from __future__ import annotations

import itertools
import math
import sys
from collections.abc import Iterator, Sequence
from typing import Any, TextIO

# by module path (as every module of the package): its __init__ imports this one
import schedulers.config as config
import schedulers.curves as curves

SLACK = curves.SLACK


def _num(x: float) -> str:
    return f"{x:g}"


def _lr(x: float) -> str:
    return f"{x:.3g}"


def _listed(values: list[float]) -> str:
    """[15, 30] as written in an override."""
    return "[" + ", ".join(_num(v) for v in values) + "]"


def _and(values: list[float]) -> str:
    words = [_num(v) for v in values]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _after_warmup(c: config.Schedule) -> str:
    w = c.warmup.epochs
    return f" (they count from the end of the {_num(w)} warmup epochs)" if w > 0 else ""


def _path(c: config.Schedule, base: float) -> tuple[str, str]:
    """The LRs a horizon schedule moves through, and what to call that movement."""
    if isinstance(c, config.OneCycle):
        start, low = base / c.div_factor, base / c.div_factor / c.final_div_factor
        points = [start, base, start, low] if c.three_phase else [start, base, low]
        return "→".join(_lr(p) for p in points), "cycle"
    if isinstance(c, config.Linear):
        start, end = base * c.start_factor, base * c.end_factor
    else:  # wsd, rsqrt and power: from the base LR, their decay included
        end = {config.Cosine: "final_lr", config.Polynomial: "end_lr"}.get(type(c), "min_lr")
        start, end = base, getattr(c, end)
    return f"{_lr(start)}→{_lr(end)}", "rise" if end > start else "decay"


def _horizon(c: Any, epochs: int, base: float, quantum: float) -> str | None:
    if c.horizon is None or c.horizon <= epochs + SLACK:
        return None
    last = curves.make_curve(c, epochs, quantum)(epochs - 1, base)
    path, kind = _path(c, base)
    return (
        f"scheduler.horizon={_num(c.horizon)} is past the run's {epochs} epochs: {c.name} reaches {_lr(last)} "
        f"of its {path} {kind} by the last epoch"
    )


def _step(c: config.Step, epochs: int, base: float, quantum: float) -> str | None:
    if c.step_size is None:
        return None
    first = c.warmup.epochs + c.step_size
    last = epochs - 1 if c.interval == "epoch" else epochs - quantum  # the last position the run trains at
    if first <= last + SLACK:
        return None
    return (
        f"scheduler.step_size={_num(c.step_size)}: the run's {epochs} epochs never reach the first step"
        + _after_warmup(c)
    )


def _multistep(c: config.MultiStep, epochs: int, base: float, quantum: float) -> str | None:
    if c.milestones is None:
        return None
    past = [m for m in c.milestones if c.warmup.epochs + m > epochs + SLACK]
    if not past:
        return None
    verb = "is" if len(past) == 1 else "are"
    return (
        f"scheduler.milestones={_listed(c.milestones)}: {_and(past)} {verb} past the run's {epochs} epochs"
        + _after_warmup(c)
    )


def _cycles(c: config.CosineRestarts | config.Cyclic) -> Iterator[tuple[float, float]]:
    """(start, length) of each cycle of a restarting schedule, for ever, in epochs from the end of warmup; the
    starts as curves.py computes them (cosine_restarts with T_mult 1: k·T_0, else the running sum)."""
    if isinstance(c, config.Cyclic):
        down = c.step_size_up if c.step_size_down is None else c.step_size_down
        length = c.step_size_up + down
        yield from ((k * length, length) for k in itertools.count())
    elif c.T_mult == 1:
        yield from ((k * c.T_0, c.T_0) for k in itertools.count())
    else:
        start, length = 0.0, c.T_0
        while True:
            yield start, length
            start, length = start + length, length * c.T_mult


def _restarts(c: config.CosineRestarts, epochs: int, base: float, quantum: float) -> str | None:
    w, t = c.warmup.epochs, epochs - c.warmup.epochs  # cycles start at the end of warmup
    k, (start, length) = next((k, cycle) for k, cycle in enumerate(_cycles(c)) if t + SLACK < sum(cycle))
    if t <= start + SLACK:  # the run ends where a cycle ends
        return None
    which = "the first cycle" if k == 0 else "the last cycle"
    return (
        f"scheduler.T_0={_num(c.T_0)} with T_mult={_num(c.T_mult)}: {which} (epochs {_num(w + start)}–"
        f"{_num(w + start + length)}) is cut at epoch {epochs}"
    )


def _cyclic(c: config.Cyclic, epochs: int, base: float, quantum: float) -> str | None:
    down = c.step_size_up if c.step_size_down is None else c.step_size_down
    end = c.warmup.epochs + c.step_size_up + down
    if end <= epochs + SLACK:
        return None
    keys = f"scheduler.step_size_up={_num(c.step_size_up)}"
    if c.step_size_down is not None:
        keys += f", step_size_down={_num(c.step_size_down)}"
    return f"{keys}: the first cycle (epochs {_num(c.warmup.epochs)}–{_num(end)}) is cut at epoch {epochs}"


CHECKS = {
    config.Step: _step,
    config.MultiStep: _multistep,
    config.CosineRestarts: _restarts,
    config.Cyclic: _cyclic,
    config.Polynomial: _horizon,
    config.Linear: _horizon,
    config.Cosine: _horizon,
    config.OneCycle: _horizon,
    config.WSD: _horizon,
    config.Rsqrt: _horizon,  # with a decay only: without one, horizon is null and they have no end
    config.Power: _horizon,
}


def cycle_ends(cfg: Any, epochs: int, steps_per_epoch: int | Sequence[int] = 1) -> list[int] | None:
    """The epochs (counted from 1) at whose end a cycle of a restarting schedule has ended, in a run of `epochs`
    epochs: the last epoch all of whose steps come before the LR jumps back up (cosine_restarts) or starts again
    from its base (cyclic). With interval=epoch every step of epoch e runs at position e − 1; with interval=step
    at e − 1 + k / steps_per_epoch (or the count of epoch e, where each has its own: curves.position). A cycle whose
    last epoch lies past the run has not ended. None for a schedule without cycles (or a torch `_target_`)."""
    cfg = config.as_node(cfg)
    if "_target_" in cfg:
        return None
    c = config.parse(cfg)
    if not isinstance(c, (config.CosineRestarts, config.Cyclic)):
        return None
    ends: list[int] = []
    for start, length in _cycles(c):
        end = c.warmup.epochs + start + length
        quantum = curves.quantum(c.interval, steps_per_epoch, math.ceil(end - SLACK))  # of the epoch the end is in
        epoch = math.ceil(end + quantum - SLACK) - 1  # its last step, at epoch - quantum, is before the end
        if epoch > epochs:
            return ends
        if epoch >= 1 and epoch not in ends:
            ends.append(epoch)
    raise AssertionError("unreachable: cycles go on for ever")


def schedule_warnings(cfg: Any, epochs: int, base_lr: float, steps_per_epoch: int | Sequence[int] = 1) -> list[str]:
    """At most one line saying which key of the `scheduler` node reaches past a run of `epochs` epochs and
    what the run sees of it; [] when the schedule fits (or is a torch `_target_`). `cfg` must pass
    `validate_schedule`; `base_lr` is the optimizer's lr (param group 0); `steps_per_epoch` only matters
    with interval=step (each epoch's own count: the last epoch's, where the run ends)."""
    cfg = config.as_node(cfg)
    if "_target_" in cfg:
        return []
    c = config.parse(cfg)
    check = CHECKS.get(type(c))
    quantum = curves.quantum(c.interval, steps_per_epoch)
    line = check(c, int(epochs), float(base_lr), quantum) if check else None
    return [line] if line else []


def warn_schedule(
    cfg: Any, epochs: int, base_lr: float, steps_per_epoch: int | Sequence[int] = 1, file: TextIO | None = None
) -> list[str]:
    """Print `schedule_warnings` as `schedlab: warning: ...` lines on stderr (or `file`); returns them.
    Call once per run, before training (not from the checks that run for every job of a sweep)."""
    lines = schedule_warnings(cfg, epochs, base_lr, steps_per_epoch)
    for line in lines:
        print(f"schedlab: warning: {line}", file=file or sys.stderr, flush=True)
    return lines
