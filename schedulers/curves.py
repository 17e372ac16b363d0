"""The schedules as pure functions lr(t, base) of the position t in epochs (the README's Schedules table).

`base` is the base LR of param group 0; LR-valued parameters (final_lr, min_lr, ...) are absolute for
that group, and the scheduler scales the result for the other groups. A factory takes the parsed
config, `span` (epochs from the end of warmup to the horizon; None without a horizon) and `quantum`
(the distance between two positions the run visits: 1 per epoch, 1/steps_per_epoch per step).

`steps_per_epoch` is one count for every epoch, or, where the batch size is scheduled (scheduler.batch_size),
each epoch's own count in order: step k (from 0) of epoch e (from 1) is then at e - 1 + k / S_e (`position`).
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

import schedulers.config as config
from schedulers.custom import rsqrt as rsqrt_factor  # the one rsqrt formula: sqrt, rsqrt and custom's template

Curve = Callable[[float, float], float]

# Positions are step / steps_per_epoch and parameters such as 0.3 epochs are inexact in binary, so a
# boundary is compared with a slack: t = 2.9999999999999996 is epoch 3.
SLACK = 1e-9


def _count(x: float) -> int:
    return math.floor(x + SLACK)


def momentum_of(curve: Curve, t: float) -> float | None:
    """The momentum (or beta1) a curve sets at t, None where it leaves it alone."""
    momentum = getattr(curve, "momentum", None)
    return momentum(t) if momentum else None


def constant(c: config.Schedule, span: None, quantum: float) -> Curve:
    return lambda t, base: base


def factor(c: config.Factor, span: None, quantum: float) -> Curve:
    return lambda t, base: max(c.min_lr, base * c.factor**t)


def step(c: config.Step, span: None, quantum: float) -> Curve:
    return lambda t, base: base * c.gamma ** _count(t / c.step_size)


def multistep(c: config.MultiStep, span: None, quantum: float) -> Curve:
    return lambda t, base: base * c.gamma ** sum(m <= t + SLACK for m in c.milestones)


def exponential(c: config.Exponential, span: None, quantum: float) -> Curve:
    return lambda t, base: base * c.gamma**t


def inverse_time(c: config.InverseTime, span: None, quantum: float) -> Curve:
    return lambda t, base: base / (1 + c.decay * t)


def sqrt(c: config.Schedule, span: None, quantum: float) -> Curve:
    """(t + 1)^(-1/2): rsqrt at timescale 1."""
    return lambda t, base: base * rsqrt_factor(t)


def polynomial(c: config.Polynomial, span: float, quantum: float) -> Curve:
    return lambda t, base: c.end_lr + (base - c.end_lr) * (1 - min(t, span) / span) ** c.power


def linear(c: config.Linear, span: float, quantum: float) -> Curve:
    return lambda t, base: base * (c.start_factor + (c.end_factor - c.start_factor) * min(t, span) / span)


def _cos_anneal(start: float, end: float, pct: float) -> float:
    return end + (start - end) * (1 + math.cos(math.pi * pct)) / 2


def _linear_anneal(start: float, end: float, pct: float) -> float:
    return start + (end - start) * pct


def cosine(c: config.Cosine, span: float, quantum: float) -> Curve:
    return lambda t, base: _cos_anneal(base, c.final_lr, min(t, span) / span)


def cosine_restarts(c: config.CosineRestarts, span: None, quantum: float) -> Curve:
    def lr(t: float, base: float) -> float:
        if c.T_mult == 1:
            start, length = _count(t / c.T_0) * c.T_0, c.T_0
        else:
            start, length = 0.0, c.T_0
            while t + SLACK >= start + length:
                start, length = start + length, length * c.T_mult
        return _cos_anneal(base, c.eta_min, max(t - start, 0.0) / length)

    return lr


DECAY_SHAPES: dict[str, Callable[[float], float]] = {  # from 1 at progress 0 to 0 at progress 1
    "linear": lambda p: 1 - p,
    "cosine": lambda p: (1 + math.cos(math.pi * p)) / 2,
    "1-sqrt": lambda p: 1 - math.sqrt(p),
}


def _decaying(main: Curve, c: config.Decaying, span: float | None) -> Curve:
    """`main`, then over the last decay_fraction of the span from the LR main has where the decay starts down to
    min_lr at the span's end, in c.shape, held after it (WSD's decay; Shen et al.'s decay phase); main alone
    where there is no decay (decay_fraction 0: no horizon, span None)."""
    if span is None or c.decay_fraction == 0:
        return main
    decay = c.decay_fraction * span
    start = span - decay
    shape = DECAY_SHAPES[c.shape]

    def lr(t: float, base: float) -> float:
        if t <= start:
            return main(t, base)
        return c.min_lr + (main(start, base) - c.min_lr) * shape(min((t - start) / decay, 1.0))

    return lr


def wsd(c: config.WSD, span: float, quantum: float) -> Curve:
    """Stable at the base LR, then decays over the last decay_fraction of the span to min_lr."""
    return _decaying(constant(c, None, quantum), c, span)


def rsqrt(c: config.Rsqrt, span: float | None, quantum: float) -> Curve:
    """lr * (1 + t / timescale)^(-1/2), horizon-free; the optional decay at the end."""
    return _decaying(lambda t, base: base * rsqrt_factor(t, c.timescale), c, span)


def power(c: config.Power, span: float | None, quantum: float) -> Curve:
    """lr * min(1, a * t^(-b)), horizon-free (the base LR at t = 0); the optional decay at the end."""

    def lr(t: float, base: float) -> float:
        if t <= 0:
            return base
        try:
            return base * min(1.0, c.a * t**-c.b)
        except OverflowError:  # t^(-b) past the largest float: far above 1
            return base

    return _decaying(lr, c, span)


def custom(c: config.Custom, span: None, quantum: float) -> Curve:
    """The user's factor of the base LR (schedulers/custom.py has the contract)."""
    factor = c.factor()
    return lambda t, base: base * factor(t)


class OneCycle:
    """torch's OneCycleLR with the base LR as its max_lr. torch ends each phase one scheduler step
    early (the last step of the run lands on min_lr), so the phase ends here are `quantum` early."""

    def __init__(self, c: config.OneCycle, span: float, quantum: float):
        self.c = c
        self.anneal = _cos_anneal if c.anneal_strategy == "cos" else _linear_anneal
        start = 1 / c.div_factor  # LRs as factors of the base LR
        low = start / c.final_div_factor
        hi_m, lo_m = c.max_momentum, c.base_momentum
        peak = c.pct_start * span - quantum
        # (end position, LR from, LR to, momentum from, momentum to)
        if c.three_phase:
            self.phases = [
                (peak, start, 1.0, hi_m, lo_m),
                (2 * c.pct_start * span - 2 * quantum, 1.0, start, lo_m, hi_m),
                (span - quantum, start, low, hi_m, hi_m),
            ]
        else:
            self.phases = [(peak, start, 1.0, hi_m, lo_m), (span - quantum, 1.0, low, lo_m, hi_m)]

    def _phase(self, t: float) -> tuple[tuple[float, float, float, float, float], float]:
        begin = 0.0
        for phase in self.phases:
            end = phase[0]
            if t <= end + SLACK or phase is self.phases[-1]:
                return phase, (min((t - begin) / (end - begin), 1.0) if end > begin else 1.0)
            begin = end
        raise AssertionError("unreachable: the last phase always matches")

    def __call__(self, t: float, base: float) -> float:
        (_, lr_from, lr_to, _, _), pct = self._phase(t)
        return self.anneal(base * lr_from, base * lr_to, pct)

    def momentum(self, t: float) -> float | None:
        if not self.c.cycle_momentum:
            return None
        (_, _, _, m_from, m_to), pct = self._phase(t)
        return self.anneal(m_from, m_to, pct)


class Cyclic:
    """torch's CyclicLR between the base LR and max_lr; gamma (exp_range) is per epoch."""

    def __init__(self, c: config.Cyclic, span: None, quantum: float):
        self.c = c
        down = c.step_size_up if c.step_size_down is None else c.step_size_down
        self.cycle = c.step_size_up + down
        self.up = c.step_size_up / self.cycle

    def _height(self, t: float) -> float:
        """Where t sits between the base (0) and the top of its cycle (1), amplitude scaling included."""
        cycle = _count(1 + t / self.cycle)
        x = max(1.0 + t / self.cycle - cycle, 0.0)
        rise = x / self.up if x <= self.up else (x - 1) / (self.up - 1)
        if self.c.mode == "triangular2":
            return rise / 2.0 ** (cycle - 1)
        if self.c.mode == "exp_range":
            return rise * self.c.gamma**t
        return rise

    def __call__(self, t: float, base: float) -> float:
        return base + (self.c.max_lr - base) * self._height(t)

    def momentum(self, t: float) -> float | None:
        if not self.c.cycle_momentum:
            return None
        return self.c.max_momentum - (self.c.max_momentum - self.c.base_momentum) * self._height(t)


class Plateau:
    """torch's ReduceLROnPlateau as a controller: the LR only moves when `step` sees a metric."""

    def __init__(self, c: config.Plateau, span: None, quantum: float):
        self.c = c
        self.current: float | None = None  # None: not reduced yet, the base LR
        self.best = math.inf if c.mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0

    def __call__(self, t: float, base: float) -> float:
        return base if self.current is None else self.current

    def _is_better(self, metric: float) -> bool:
        c, best = self.c, self.best
        if c.threshold_mode == "rel":
            return metric < best * (1 - c.threshold) if c.mode == "min" else metric > best * (1 + c.threshold)
        return metric < best - c.threshold if c.mode == "min" else metric > best + c.threshold

    def step(self, metric: float, base: float) -> None:
        if self._is_better(metric):
            self.best, self.num_bad_epochs = metric, 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.c.patience:
            old = self(0.0, base)
            new = max(old * self.c.factor, self.c.min_lr)
            if old - new > self.c.eps:
                self.current = new
            self.cooldown_counter, self.num_bad_epochs = self.c.cooldown, 0

    def state_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("current", "best", "num_bad_epochs", "cooldown_counter")}

    def load_state_dict(self, state: dict) -> None:
        for key, value in state.items():
            setattr(self, key, value)


class Warmup:
    """Linear from start_lr to the base LR over `epochs`, then the main schedule shifted by `epochs`."""

    def __init__(self, main: Curve, epochs: float, start_lr: float):
        self.main, self.epochs, self.start_lr = main, epochs, start_lr

    def __call__(self, t: float, base: float) -> float:
        if t < self.epochs - SLACK:
            return self.start_lr + (base - self.start_lr) * t / self.epochs
        return self.main(max(t - self.epochs, 0.0), base)

    def momentum(self, t: float) -> float | None:
        return momentum_of(self.main, max(t - self.epochs, 0.0))


FACTORIES: dict[str, Callable[..., Curve]] = {
    "constant": constant,
    "factor": factor,
    "step": step,
    "multistep": multistep,
    "exponential": exponential,
    "inverse_time": inverse_time,
    "sqrt": sqrt,
    "polynomial": polynomial,
    "linear": linear,
    "cosine": cosine,
    "cosine_warmup": cosine,
    "plateau": Plateau,
    "onecycle": OneCycle,
    "cyclic": Cyclic,
    "cosine_restarts": cosine_restarts,
    "wsd": wsd,
    "custom": custom,
    "linear_to_zero": linear,
    "cosine_to_zero": cosine,
    "rsqrt": rsqrt,
    "power": power,
}


def make_curve(c: config.Schedule, epochs: int, quantum: float) -> Curve:
    """The whole schedule of a parsed config: warmup (if any) in front of the main schedule."""
    c = c.resolve(epochs)
    end = c.end(epochs)
    span = None if end is None else end - c.warmup.epochs
    curve = FACTORIES[c.name](c, span, quantum)
    return Warmup(curve, c.warmup.epochs, c.warmup.start_lr) if c.warmup.epochs > 0 else curve


def epoch_ends(steps_per_epoch: int | Sequence[int]) -> list[int] | None:
    """The steps done at the end of each epoch, for each epoch's own count; None for one count."""
    return list(itertools.accumulate(steps_per_epoch)) if isinstance(steps_per_epoch, Sequence) else None


def position(steps: int, steps_per_epoch: int | Sequence[int], ends: list[int] | None = None) -> float:
    """The position in epochs after `steps` optimizer steps: steps / steps_per_epoch, or with each epoch's own
    count, e - 1 + k / S_e for step k of epoch e (past the last epoch, at the last epoch's rate). `ends`:
    epoch_ends(steps_per_epoch), for a caller that asks at every step."""
    if not isinstance(steps_per_epoch, Sequence):
        return steps / steps_per_epoch
    ends = ends if ends is not None else epoch_ends(steps_per_epoch)
    done = min(bisect.bisect_right(ends, steps), len(ends) - 1)  # whole epochs before the step
    start = ends[done - 1] if done else 0
    return done + (steps - start) / steps_per_epoch[done]


def quantum(interval: str, steps_per_epoch: int | Sequence[int], epoch: int | None = None) -> float:
    """The distance between two positions the run visits in epoch `epoch` (from 1; None: the last): 1 with
    interval=epoch, one step of that epoch with interval=step."""
    if interval == "epoch":
        return 1.0
    if not isinstance(steps_per_epoch, Sequence):
        return 1.0 / steps_per_epoch
    last = len(steps_per_epoch)
    return 1.0 / steps_per_epoch[min(max(epoch or last, 1), last) - 1]


def batch_sizes(cfg: Any, epochs: int, base: int) -> list[int] | None:
    """The batch size of every epoch of a run of `epochs` epochs under the `scheduler` node's batch_size, from the
    base `base` (trainer.batch_size): epoch e (from 1) takes the curve's value at t = e - 1, rounded (Python's
    round: a tie goes to the even number), at least 1 and at most the base. None where the batch size is not
    scheduled (or the schedule is a torch `_target_`, which cannot schedule it)."""
    node = cfg if isinstance(cfg, config.Schedule) else config.as_node(cfg)
    if not isinstance(node, config.Schedule) and "_target_" in node:
        return None
    sizes = (node if isinstance(node, config.Schedule) else config.parse(node)).batch_size_schedule()
    if sizes is None:
        return None
    curve = make_curve(sizes, epochs, 1.0)
    return [min(base, max(1, round(curve(float(e), base)))) for e in range(epochs)]


def make_value_curves(c: config.Schedule, epochs: int, quantum: float) -> dict[str, Curve]:
    """The curves of the values other than the LR that a parsed config schedules (config.VALUES), each
    value(t, base) with the same contract as the LR's."""
    return {key: make_curve(sub, epochs, quantum) for key, sub in c.value_schedules().items()}
