"""Typed schemas of the `scheduler` config group, with their defaults, and the checks that run before any
data is loaded.

Every key's default lives here, in the dataclass of its schedule, and nowhere else: conf/scheduler/<name>.yaml
extends `<name>_schema` and holds only its name and what differs from the schema. Hydra rejects a
misspelt key or a wrong type at composition, naming the key; a plain dict given to the library is
completed from the same schema (`parse`), so both give a schedule the same values.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException, ValidationError
from omegaconf.nodes import EnumNode

import schedulers.custom as custom
from schedulers.choice import AnnealStrategy, Choice, CyclicMode, Interval, Monitor, PlateauMode, Shape, ThresholdMode
from schedulers.errors import ConfigError

INTERVALS = Interval.values()
# What a schedule drives besides the LR: each a scheduler node of its own (scheduler.momentum, ...), what it
# sets on every param group, named as the refusals name it
VALUES = {"momentum": "momentum or beta1", "beta2": "beta2", "weight_decay": "weight_decay"}
BELOW_ONE = ("momentum", "beta2")  # momenta: a schedule of theirs must stay in [0, 1)
# not as a schedule of a value: plateau steps on a metric, onecycle and cyclic are LR shapes with absolute
# LR keys that cycle the momentum themselves
NOT_FOR_VALUES = ("plateau", "onecycle", "cyclic")
VALUE_GRID = 16  # positions per epoch at which a value schedule is checked to stay in range, over [0, epochs)
# The trainer's batch size (trainer.batch_size its base), scheduled as the values are but once per epoch: epoch e
# (from 1) trains with round(value at t = e - 1) examples a batch (schedulers.curves.batch_sizes)
BATCH_SIZE = "batch_size"
BATCH_SIZE_INTERVAL = (
    "scheduler.batch_size.interval={!r} is not allowed: a batch size changes between epochs: use epoch"
)


def _require(ok: bool, key: str, allowed: str, got: Any) -> None:
    if not ok:
        raise ConfigError(f"scheduler.{key} must be {allowed}, got {got!r}")


def within(key: str, check: Any, base_name: str | None = None) -> Any:
    """check(), its errors naming the keys of the value schedule scheduler.<key> (scheduler.momentum.final_lr,
    ...) and `base_name` for what is its base; returns what check() returns."""
    try:
        return check()
    except ConfigError as e:
        message = re.sub(r"\bscheduler\.", f"scheduler.{key}.", str(e))
        if base_name is not None:
            message = message.replace("the base LR (the optimizer's lr,", f"the base value ({base_name},")
        raise ConfigError(message) from None


@functools.cache
def choice_keys(schema: type) -> dict[str, type[Choice]]:
    """The choice keys of a schema class, each with its Choice (its field's type, the type of its default)."""
    return {f.name: type(f.default) for f in dataclasses.fields(schema) if isinstance(f.default, Choice)}


def refused_choice(e: OmegaConfBaseException) -> type[Choice] | None:
    """The Choice whose key OmegaConf refused a value for in `e`; None where `e` is about another key, or is not
    a refusal of a value (an interpolation that does not resolve)."""
    node = getattr(e, "child_node", None)
    kind = node.enum_type if isinstance(node, EnumNode) and isinstance(e, ValidationError) else None
    return kind if isinstance(kind, type) and issubclass(kind, Choice) else None


@contextmanager
def one_line_refusals() -> Iterator[None]:
    """OmegaConf's refusal of a key of a scheduler node inside as a ConfigError naming it: a choice key's in its
    Choice's words (Choice.refusal; the key named from the run config's root where the node is its `scheduler`),
    any other's as `scheduler.<key>: <OmegaConf's first line>` (the key named as the choice key's is)."""
    try:
        yield
    except OmegaConfBaseException as e:
        key = "scheduler." + e.full_key.removeprefix("scheduler.")
        if kind := refused_choice(e):
            raise ConfigError(kind.refusal(key, e.value)) from None
        raise ConfigError(f"{key}: {str(e).splitlines()[0]}") from None


@dataclass
class Warmup:
    """Linear from start_lr to the base LR (optimizer.lr) over `epochs`; the schedule then starts after it."""

    epochs: float = 0.0  # 0: no warmup
    start_lr: float = 0.0


@dataclass
class Schedule:
    """The keys every schedule has. `constant` (the base LR throughout) and `sqrt` have no others."""

    name: str = MISSING  # the conf/scheduler option, which picks the curve (curves.FACTORIES)
    # epoch: the LR changes once per epoch (d2l staircase); step: every optimizer step, smooth
    interval: Interval = Interval.epoch
    warmup: Warmup = field(default_factory=Warmup)
    # Schedules of the optimizer's other values (optax's inject_hyperparams; timm's param_group_field): each a
    # scheduler node of its own, {name: cosine, final_lr: 0.85, warmup: {...}}, from the optimizer's value (its
    # base) with the same curves, at the same position t and interval as the LR. Its LR-valued keys (final_lr,
    # min_lr, end_lr, eta_min, warmup.start_lr) are values of what it schedules. null: left as the optimizer sets it.
    momentum: Any = None  # momentum (SGD, RMSprop) or Adam's beta1, as onecycle's cycling (torch's rule)
    beta2: Any = None  # Adam's beta2
    weight_decay: Any = None  # every param group's, scaled from its own (a no-decay group stays at 0)
    # the trainer's batch size, from trainer.batch_size, set at every epoch's start (batch-size warmup); its
    # interval is epoch whatever the LR's
    batch_size: Any = None

    # What each schedule's keys allow, checked by `check`. A key set to null (where its type allows it)
    # means "derived" and is not checked.
    floors: ClassVar[tuple[str, ...]] = ()  # an LR of param group 0: >= 0 and <= the base LR
    positive: ClassVar[tuple[str, ...]] = ()
    non_negative: ClassVar[tuple[str, ...]] = ()
    below_one: ClassVar[tuple[str, ...]] = ()  # in [0, 1): momenta

    def __post_init__(self) -> None:
        """Each choice key's value as its Choice member, where a schema built in Python is given it as a string."""
        self.check_choices()
        for key, kind in choice_keys(type(self)).items():
            setattr(self, key, kind(getattr(self, key)))

    def check_choices(self) -> None:
        """Raise ConfigError naming the first choice key whose value is none of its Choice's."""
        for key, kind in choice_keys(type(self)).items():
            if getattr(self, key) not in kind.values():
                raise ConfigError(kind.refusal(f"scheduler.{key}", getattr(self, key)))

    def resolve(self, epochs: int) -> Schedule:
        """This schedule with the keys left null to follow the run's length filled in for a run of
        `epochs` epochs (step_size, milestones); horizons are filled in by `end`."""
        return self

    def end(self, epochs: int) -> float | None:
        """Where the schedule ends, in epochs from the start of the run; None where it has no end."""
        if not hasattr(self, "horizon"):
            return None
        return float(epochs) if self.horizon is None else self.horizon

    def check(self, epochs: int, base_lr: float | None = None) -> None:
        """Raise ConfigError naming the first key whose value cannot work; `base_lr` None: not known yet."""
        self.check_choices()
        warmup = self.warmup.epochs
        _require(warmup >= 0 and math.isfinite(warmup), "warmup.epochs", ">= 0", warmup)
        _require(
            warmup < epochs, "warmup.epochs", f"< trainer.epochs ({epochs}): warmup must end before the run", warmup
        )
        end = self.end(epochs)
        if end is not None:
            got = self.horizon if self.horizon is not None else f"null = the run's {epochs} epochs"
            _require(end > warmup, "horizon", f"> scheduler.warmup.epochs ({warmup})", got)
        lr_keys = ("warmup.start_lr", *self.floors)
        rules = [
            (self.positive, lambda v: v > 0 and math.isfinite(v), "> 0"),
            (self.non_negative, lambda v: v >= 0, ">= 0"),
            (self.below_one, lambda v: 0 <= v < 1, "in [0, 1)"),
            (lr_keys, lambda v: v >= 0, ">= 0"),
        ]
        if base_lr is not None:
            rules.append((lr_keys, lambda v: v <= base_lr, f"<= the base LR (the optimizer's lr, {base_lr})"))
        for keys, ok, allowed in rules:
            for key in keys:
                value = functools.reduce(getattr, key.split("."), self)
                if value is not None:
                    _require(ok(value), key, allowed, value)
        for key, sub in self.value_schedules().items():
            within(key, lambda sub=sub: sub.check(epochs))
            if key == "momentum" and getattr(self, "cycle_momentum", False):
                raise ConfigError(
                    f"scheduler.momentum must be null with scheduler.cycle_momentum=true ({self.name} "
                    "cycles the momentum itself): set scheduler.cycle_momentum=false to schedule it"
                )
        sizes = self.batch_size_schedule()
        if sizes is not None:
            within(BATCH_SIZE, lambda: sizes.check(epochs))
            # onecycle ends its phases one step early: with epochs of different lengths no one step is "the" step
            _require(
                self.name != "onecycle" or self.interval == "epoch",
                BATCH_SIZE,
                "null with scheduler=onecycle at interval=step (its phases end one step early, which needs every "
                "epoch to have the same steps): use interval=epoch",
                sizes.name,
            )

    def _sub_node(self, key: str) -> dict | None:
        """The node of the schedule scheduler.<key> (a value's, or the batch size's) as a dict, None where it is
        null; refuses what no such schedule can be."""
        node = getattr(self, key, None)
        if node is None:
            return None
        _require(
            isinstance(node, (dict, DictConfig)),
            key,
            "null or a scheduler node, e.g. {name: cosine, final_lr: 0.85}",
            node,
        )
        node = dict(node)
        _require(
            node.get("name") not in NOT_FOR_VALUES,
            f"{key}.name",
            f"a schedule that is a function of the position alone, not {', '.join(NOT_FOR_VALUES)}",
            node.get("name"),
        )
        nested = next((k for k in (*VALUES, BATCH_SIZE) if node.get(k) is not None), None)
        _require(nested is None, f"{key}.{nested}", "null: a value schedule drives one value", node.get(nested))
        return node

    def value_schedules(self) -> dict[str, Schedule]:
        """The parsed schedules of the values other than the LR (VALUES) that this schedule sets, at its interval."""
        out = {}
        for key in VALUES:
            node = getattr(self, key, None)
            if isinstance(node, Schedule):  # already parsed (a plain loop's schedule object)
                out[key] = node
                continue
            node = self._sub_node(key)
            if node is None:
                continue
            _require(
                node.get("interval", self.interval) == self.interval,
                f"{key}.interval",
                f"the LR's scheduler.interval ({self.interval!r}): every value moves at the same positions",
                node.get("interval"),
            )
            out[key] = within(key, lambda node=node: parse({**node, "interval": self.interval}))
        return out

    def batch_size_schedule(self) -> Schedule | None:
        """The parsed schedule of the batch size (scheduler.batch_size), at interval epoch; None where it is null."""
        if isinstance(self.batch_size, Schedule):
            return self.batch_size
        node = self._sub_node(BATCH_SIZE)
        if node is None:
            return None
        if node.get("interval", "epoch") != "epoch":
            raise ConfigError(BATCH_SIZE_INTERVAL.format(node["interval"]))
        return within(BATCH_SIZE, lambda: parse({**node, "interval": "epoch"}))

    def check_batch_size(self, epochs: int, base: int) -> None:
        """Raise ConfigError for a batch-size schedule that cannot work from the base `base` (trainer.batch_size):
        its floors above it, or a curve that rises above it at an epoch's start."""
        from schedulers import curves  # not at the top: curves imports this module

        sizes = self.batch_size_schedule()
        if sizes is None:
            return
        within(BATCH_SIZE, lambda: sizes.check(epochs, base), base_name="trainer.batch_size")
        curve = curves.make_curve(sizes, epochs, 1.0)
        t, top = max(((float(e), curve(float(e), base)) for e in range(epochs)), key=lambda p: p[1])
        _require(
            top <= base,
            BATCH_SIZE,
            f"a schedule that stays at or below trainer.batch_size ({base}), reaching {top:.4g} at epoch {t:g}",
            sizes.name,
        )

    def check_values(self, epochs: int, bases: dict[str, float | None], owner: str) -> None:
        """Raise ConfigError for a value schedule the optimizer cannot take: `bases` holds each value as param group 0
        has it (None: the optimizer has no such knob), `owner` names the optimizer's class."""
        from schedulers import curves  # not at the top: curves imports this module

        for key, sub in self.value_schedules().items():
            base = bases.get(key)
            what = VALUES[key]
            if base is None:
                raise ConfigError(f"scheduler.{key} must be null: {owner} has no {what} to schedule")
            _require(
                base > 0,
                key,
                f"null where the optimizer's {what} is 0: a schedule scales it from its value "
                f"(set it > 0 on the optimizer)",
                sub.name,
            )
            within(key, lambda sub=sub, base=base: sub.check(epochs, base), base_name=f"the optimizer's {what}")
            if key in BELOW_ONE:
                curve = curves.make_curve(sub, epochs, 1.0 / VALUE_GRID)
                t, top = max(
                    ((k / VALUE_GRID, curve(k / VALUE_GRID, base)) for k in range(epochs * VALUE_GRID)),
                    key=lambda p: p[1],
                )
                _require(
                    top < 1, key, f"a schedule that stays below 1 ({what}), reaching {top:.4g} at epoch {t:g}", sub.name
                )


@dataclass
class Factor(Schedule):
    """max(min_lr, lr * factor^t), t in epochs (README, Schedules). This is the LR d2l's FactorScheduler trains
    with in epoch t: d2l calls its stateful scheduler once at the end of each epoch, so after t calls it
    holds lr(t), and the call at the end of epoch t (its (t+1)-th) returns lr(t + 1), not lr(t)."""

    factor: float = 0.9  # per epoch
    min_lr: float = 1e-7  # d2l's stop_factor_lr default (its chapter uses 0.01 with a base LR of 2)
    floors: ClassVar = ("min_lr",)
    positive: ClassVar = ("factor",)


@dataclass
class Step(Schedule):
    """lr * gamma^floor(t / step_size): torch StepLR, step_size in epochs after warmup."""

    step_size: float | None = None  # epochs after warmup; None: a third of them (two steps, as 30 of ImageNet's 90)
    gamma: float = 0.1
    positive: ClassVar = ("step_size", "gamma")

    def resolve(self, epochs: int) -> Step:
        if self.step_size is not None:
            return self
        return dataclasses.replace(self, step_size=(epochs - self.warmup.epochs) / 3)


@dataclass
class MultiStep(Schedule):
    """lr * gamma^(milestones passed): torch MultiStepLR. Milestones in epochs after warmup, or (milestones
    null) as fractions of the epochs after warmup."""

    milestones: list[float] | None = None  # epochs after warmup, strictly increasing; None: milestone_fractions
    milestone_fractions: list[float] = field(default_factory=lambda: [0.5, 0.75])  # of the epochs after warmup
    gamma: float = 0.5
    positive: ClassVar = ("gamma",)

    def check(self, epochs: int, base_lr: float | None = None) -> None:
        if self.milestones is not None:
            m = list(self.milestones)
            _require(all(a < b for a, b in zip(m, m[1:], strict=False)), "milestones", "strictly increasing", m)
            _require(all(x > 0 for x in m), "milestones", "> 0 (epochs after warmup)", m)
        f = list(self.milestone_fractions)
        _require(all(a < b for a, b in zip(f, f[1:], strict=False)), "milestone_fractions", "strictly increasing", f)
        _require(
            all(0 < x < 1 for x in f), "milestone_fractions", "in (0, 1) (fractions of the epochs after warmup)", f
        )
        super().check(epochs, base_lr)

    def resolve(self, epochs: int) -> MultiStep:
        if self.milestones is not None:
            return self
        span = epochs - self.warmup.epochs
        return dataclasses.replace(self, milestones=[f * span for f in self.milestone_fractions])


@dataclass
class Exponential(Schedule):
    """lr * gamma^t = lr * e^(-d t): torch ExponentialLR."""

    gamma: float = 0.9  # per epoch
    positive: ClassVar = ("gamma",)


@dataclass
class InverseTime(Schedule):
    """lr / (1 + decay * t): time-based decay."""

    decay: float = 0.1  # per epoch: a quarter of the base LR at epoch 30
    non_negative: ClassVar = ("decay",)


@dataclass
class Polynomial(Schedule):
    """(lr - end_lr) * (1 - t / horizon)^power + end_lr, held after the horizon: torch PolynomialLR."""

    power: float = 2.0  # 1.0 is the linear schedule
    end_lr: float = 0.0
    horizon: float | None = None  # epochs from the start of the run; None: the run's epochs
    floors: ClassVar = ("end_lr",)
    positive: ClassVar = ("power",)


@dataclass
class Linear(Schedule):
    """lr * (start_factor -> end_factor linearly over the horizon), held after it: torch LinearLR."""

    start_factor: float = 1.0
    end_factor: float = 0.0
    horizon: float | None = None  # epochs from the start of the run; None: the run's epochs
    non_negative: ClassVar = ("start_factor", "end_factor")


@dataclass
class Cosine(Schedule):
    """Cosine from the base LR to final_lr at the horizon, held after it: d2l CosineScheduler, torch
    CosineAnnealingLR. With warmup the cosine spans horizon - warmup.epochs."""

    final_lr: float = 0.0  # d2l's and torch's default (eta_min); the d2l chapter's 0.01: arm=d2l_cosine
    horizon: float | None = None  # epochs from the start of the run; None: the run's epochs
    floors: ClassVar = ("final_lr",)


@dataclass
class Plateau(Schedule):
    """torch ReduceLROnPlateau on a validation figure (the loss by default), once per epoch in both
    intervals; warmup epochs do not count."""

    monitor: Monitor = Monitor.val_loss  # the validation figure it watches: val_loss or val_acc
    mode: PlateauMode = PlateauMode.min  # min: lower is better (a loss); max: higher is better (an accuracy)
    factor: float = 0.5  # torch's 0.1 and patience 10 rarely fire in a 20-30 epoch run
    patience: int = 3  # epochs without improvement before a reduction
    threshold: float = 1.0e-4
    # rel: better than best * (1 -/+ threshold); abs: best -/+ threshold
    threshold_mode: ThresholdMode = ThresholdMode.rel
    cooldown: int = 0  # epochs after a reduction before bad epochs count again
    min_lr: float = 0.0
    eps: float = 1.0e-8  # reductions smaller than this are skipped
    floors: ClassVar = ("min_lr",)
    non_negative: ClassVar = ("patience", "cooldown", "threshold", "eps")

    def check(self, epochs: int, base_lr: float | None = None) -> None:
        super().check(epochs, base_lr)
        _require(0 < self.factor < 1, "factor", "in (0, 1)", self.factor)
        direction = "max" if self.monitor.endswith("_acc") else "min"
        _require(self.mode == direction, "mode", f"{direction!r} for scheduler.monitor={self.monitor!r}", self.mode)


@dataclass
class Momentum:
    """Momentum (SGD, RMSprop) or Adam's beta1, cycled against the LR as torch does; each schedule
    that cycles it sets its own range."""

    cycle_momentum: bool = True
    base_momentum: float = MISSING  # at the LR peak
    max_momentum: float = MISSING  # at the base LR


@dataclass
class OneCycle(Schedule, Momentum):
    """torch OneCycleLR with the base LR (optimizer.lr) as its max_lr; momentum or Adam's beta1 cycled
    inversely."""

    base_momentum: float = 0.85  # at the LR peak
    max_momentum: float = 0.95  # at the start and the end
    pct_start: float = 0.3  # share of the horizon spent rising
    anneal_strategy: AnnealStrategy = AnnealStrategy.cos  # cos or linear
    div_factor: float = 25.0  # starts at lr / div_factor
    final_div_factor: float = 1.0e4  # ends at lr / div_factor / final_div_factor
    three_phase: bool = False
    horizon: float | None = None  # epochs from the start of the run; None: the run's epochs
    positive: ClassVar = ("div_factor", "final_div_factor")
    below_one: ClassVar = ("base_momentum", "max_momentum")

    def check(self, epochs: int, base_lr: float | None = None) -> None:
        super().check(epochs, base_lr)
        top = 0.5 if self.three_phase else 1  # three phases rise and fall back within 2 * pct_start
        _require(0 < self.pct_start < top, "pct_start", f"in (0, {top})", self.pct_start)


@dataclass
class Cyclic(Schedule, Momentum):
    """torch CyclicLR between the base LR (optimizer.lr) and max_lr; momentum or Adam's beta1 cycled
    inversely."""

    base_momentum: float = 0.8  # at the LR peak
    max_momentum: float = 0.9  # at the base LR
    max_lr: float = 1.0  # absolute; Smith suggests 3-4x the base LR, or the top of an LR range test
    step_size_up: float = 2.0  # epochs rising
    step_size_down: float | None = None  # epochs falling; None: step_size_up
    # triangular, triangular2 (amplitude halves every cycle), exp_range (amplitude * gamma^t)
    mode: CyclicMode = CyclicMode.triangular
    gamma: float = 1.0  # exp_range only, per epoch
    positive: ClassVar = ("step_size_up", "step_size_down", "gamma")
    non_negative: ClassVar = ("max_lr",)
    below_one: ClassVar = ("base_momentum", "max_momentum")

    def check(self, epochs: int, base_lr: float | None = None) -> None:
        super().check(epochs, base_lr)
        if base_lr is not None:  # a ceiling, where the other LR keys are floors
            _require(self.max_lr >= base_lr, "max_lr", f">= the base LR (the optimizer's lr, {base_lr})", self.max_lr)


@dataclass
class CosineRestarts(Schedule):
    """SGDR (torch CosineAnnealingWarmRestarts): cosine to eta_min, restarting after T_0, T_0*T_mult, ... epochs."""

    T_0: float = 10.0  # epochs in the first cycle
    T_mult: float = 2.0  # each cycle this many times longer than the last (SGDR's CIFAR setting)
    eta_min: float = 0.0
    floors: ClassVar = ("eta_min",)
    positive: ClassVar = ("T_0",)

    def check(self, epochs: int, base_lr: float | None = None) -> None:
        super().check(epochs, base_lr)
        _require(self.T_mult >= 1, "T_mult", ">= 1", self.T_mult)


DECAY_SHAPES = Shape.values()  # curves.DECAY_SHAPES has their formulas


@dataclass
class Decaying(Schedule):
    """A schedule with a decay at its end, WSD's: over the last decay_fraction of the span after warmup, from the
    LR the schedule has reached where the decay starts down to min_lr at the horizon, in `shape`, then held.
    rsqrt and power default to decay_fraction 0: no decay and no end, so they are horizon-free (nothing of
    theirs follows the run's length) and their horizon must stay null."""

    decay_fraction: float = 0.0  # share of the span after warmup; 0: no decay
    shape: Shape = Shape["1-sqrt"]  # linear, cosine or 1-sqrt (Hägele et al. 2024's cooldown)
    min_lr: float = 0.0
    horizon: float | None = None  # where the decay ends, epochs from the start of the run; None: the run's epochs
    floors: ClassVar = ("min_lr",)
    needs_decay: ClassVar[bool] = False  # WSD: the decay is the schedule

    def end(self, epochs: int) -> float | None:
        return super().end(epochs) if self.decay_fraction > 0 else None

    def check(self, epochs: int, base_lr: float | None = None) -> None:
        if self.needs_decay:
            _require(0 < self.decay_fraction <= 1, "decay_fraction", "in (0, 1]", self.decay_fraction)
        else:
            _require(0 <= self.decay_fraction <= 1, "decay_fraction", "in [0, 1] (0: no decay)", self.decay_fraction)
            no_end = f"null when scheduler.decay_fraction is 0 ({self.name} then has no end: set a decay_fraction)"
            _require(self.decay_fraction > 0 or self.horizon is None, "horizon", no_end, self.horizon)
        super().check(epochs, base_lr)
        if base_lr is None or self.decay_fraction == 0:
            return
        from schedulers import curves  # not at the top: curves imports this module

        c = self.resolve(epochs)
        start = c.warmup.epochs + (1 - c.decay_fraction) * (c.end(epochs) - c.warmup.epochs)
        top = curves.make_curve(c, epochs, 1.0)(start, base_lr)
        where = f"<= the LR where the decay starts ({top:.3g} at epoch {start:g})"
        _require(self.min_lr <= top, "min_lr", where, self.min_lr)


@dataclass
class WSD(Decaying):
    """Warmup-stable-decay (MiniCPM): the base LR, then a decay over the last decay_fraction to min_lr."""

    decay_fraction: float = 0.2  # share of the span after warmup
    needs_decay: ClassVar = True


@dataclass
class Rsqrt(Decaying):
    """Inverse square root, horizon-free: lr * (1 + t / timescale)^(-1/2), t in epochs after warmup
    (schedulers.custom.rsqrt, which scheduler=sqrt is at timescale 1). The form of Zhai et al. 2022 ("Scaling
    Vision Transformers", big_vision's rsqrt: lr / sqrt((step + timescale - warmup) / timescale)) and the
    1/sqrt(t) schedule of Meterez et al. 2026 ("Anytime Pretraining: Horizon-Free Learning-Rate Schedules with
    Weight Averaging", lr * sqrt(alpha / (t + alpha)), alpha = timescale). It needs no horizon: pair it with
    weight averaging (an average of the weights along the run), which does the work a final decay would. The
    LR is the base LR at the end of warmup, about 0.71 of it a timescale later and sqrt(timescale / t) of it
    long after; T5's "constant for timescale, then lr * sqrt(timescale / t)" has the same tail. An optional
    decay at the end (decay_fraction > 0, a cooldown as Zhai et al.'s and Hägele et al. 2024's) gives it a
    horizon; it starts from the LR reached, as WSD's and power's (big_vision multiplies the still-falling curve
    by its linear cooldown instead)."""

    timescale: float = 3.0  # epochs; absolute (horizon-free): a tenth of the default 30-epoch run
    positive: ClassVar = ("timescale",)


@dataclass
class Power(Decaying):
    """Shen et al. 2024's Power scheduler ("Power Scheduler: A Batch Size and Token Number Agnostic Learning Rate
    Scheduler", arXiv:2408.13359), horizon-free: lr * min(1, a * t^(-b)), t in epochs after warmup. The paper
    writes min(eta_max, beta * a * n^(-b)) with n the tokens seen, beta the batch size, eta_max the peak, and
    a = 4, b = 0.51; here the peak is the base LR (optimizer.lr) and a is a factor of it, so that a schedule's
    keys mean the same for every optimizer and param group. b does not depend on the unit of t (counting t in
    tokens instead of epochs only rescales a), so b keeps the paper's 0.51; a = 1 holds the base LR for the
    first epoch after warmup, then decays as t^(-0.51) (0.18 of it 30 epochs later); a = t_c^b holds it for
    t_c epochs. An optional decay at the end (decay_fraction > 0, from the LR reached there to min_lr), as the
    paper's decay phase and WSD's, gives it a horizon."""

    a: float = 1.0  # factor of the base LR one epoch after warmup (before the min with 1)
    b: float = 0.51  # the exponent of the power law (the paper's)
    positive: ClassVar = ("a", "b")


@dataclass
class Custom(Schedule):
    """Your own schedule: `fn` is the import path of a callable `fn(t, **kwargs) -> factor`, the LR at t being
    factor * the base LR of each param group (so per-group LRs keep their ratios, as with every built-in).
    t is the position in epochs counted from the end of the warmup: fractional with interval=step, whole with
    interval=epoch (shifted by a fractional warmup). The warmup ramps to the base LR (factor 1) and hands over
    to fn at t = 0, as it does to every built-in; fn(0) need not be 1 (the LR then jumps, as onecycle's does).
    fn may be a class: it is instantiated once with `kwargs` and its instance called as instance(t).
    It must be pure (the trainer and task=schedule call it at any t, in any order, and a resume only restores
    the step count) and return a real number >= 0; it is imported and probed at t = 0 and over the run when the
    config is checked, before any data is loaded. No horizon or cycles of its own: for a shape that follows the
    run's length, pass it one, e.g. `+scheduler.kwargs.epochs=${trainer.epochs}`."""

    # module.name of the callable (from Python, the callable itself: schedulers.torch_scheduler takes one); the
    # default is the template, (1 + t / timescale)^(-1/2): scheduler=rsqrt's formula, scheduler=sqrt at timescale 1
    fn: str = "schedulers.custom.rsqrt"
    kwargs: dict[str, Any] = field(default_factory=dict)  # passed to fn at every call (a class: to its constructor)

    def check(self, epochs: int, base_lr: float | None = None) -> None:
        super().check(epochs, base_lr)
        custom.probe(self.factor(), epochs, self.warmup.epochs, self.interval)

    def factor(self) -> custom.Factor:
        """t -> the factor fn gives at t, each value checked; ConfigError naming scheduler.fn when it cannot work."""
        return custom.factor_function(self.fn, self.kwargs)


# Each option's schema, as a dataclass instance: its defaults are the class's, except where two options
# share a class (cosine_warmup is cosine with d2l's warmup; constant and sqrt have only the common keys).
# Horizons, step sizes and milestones default to the run's length (trainer.epochs); the d2l chapter's
# absolute values are spelt out in conf/arm/d2l_*.yaml.
SCHEMAS: dict[str, Schedule] = {
    "constant": Schedule(),
    "factor": Factor(),
    "step": Step(),
    "multistep": MultiStep(),
    "exponential": Exponential(),
    "inverse_time": InverseTime(),
    "sqrt": Schedule(),
    "polynomial": Polynomial(),
    "linear": Linear(),
    "cosine": Cosine(),
    "cosine_warmup": Cosine(
        warmup=Warmup(epochs=5.0)
    ),  # d2l's 5 warmup epochs from 0, then the cosine to the run's end
    "plateau": Plateau(),
    "onecycle": OneCycle(),
    "cyclic": Cyclic(),
    "cosine_restarts": CosineRestarts(),
    "wsd": WSD(),
    "custom": Custom(),
    # Bergsma et al. 2025 ("Straight to Zero"): linear decay to exactly 0 at the run's end, and cosine to 0; the
    # same classes as linear and cosine, their end pinned at 0 here whatever those defaults become
    "linear_to_zero": Linear(start_factor=1.0, end_factor=0.0),
    "cosine_to_zero": Cosine(final_lr=0.0),
    "rsqrt": Rsqrt(),
    "power": Power(),
}


def register_configs() -> None:
    """Store one schema per schedule as scheduler/<name>_schema; call before @hydra.main runs."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    for name, schema in SCHEMAS.items():
        store.store(group="scheduler", name=f"{name}_schema", node=schema)


def as_node(cfg: Any) -> DictConfig:
    """The `scheduler` node as a DictConfig, whether composed by Hydra or written as a dict."""
    if isinstance(cfg, DictConfig):
        return cfg
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):  # a typed run config's schedule
        with one_line_refusals():
            return OmegaConf.structured(cfg)
    return OmegaConf.create(dict(cfg))


def parse(cfg: Any) -> Schedule:
    """The `scheduler` node as its typed schema, a key it leaves out taking the schema's default; a bad
    key or type raises ConfigError naming the key."""
    cfg = as_node(cfg)
    name = cfg.get("name")
    if name not in SCHEMAS:
        raise ConfigError(f"scheduler.name must be one of {', '.join(SCHEMAS)} (or give a _target_), got {name!r}")
    with one_line_refusals():
        # as a plain dict: a composed node may carry keys forced in with `+`, which a merge would let through
        values = OmegaConf.to_container(cfg, resolve=True)
        return OmegaConf.to_object(OmegaConf.merge(SCHEMAS[name], values))
