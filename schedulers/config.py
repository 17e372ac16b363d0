"""Typed schemas of the `scheduler` config group, and the checks that run before any data is loaded.

The values live in conf/scheduler/<name>.yaml and nowhere else: a schema only types the keys (every
field is MISSING), so Hydra rejects a misspelt key or a wrong type at composition, naming the key.
A plain dict given to the library is completed from the same yaml file.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from trainer.errors import ConfigError

CONF_DIR = Path(__file__).resolve().parents[1] / "conf" / "scheduler"
INTERVALS = ("epoch", "step")


def _require(ok: bool, key: str, allowed: str, got: Any) -> None:
    if not ok:
        raise ConfigError(f"scheduler.{key} must be {allowed}, got {got!r}")


@dataclass
class Warmup:
    epochs: float = MISSING
    start_lr: float = MISSING


@dataclass
class Schedule:
    name: str = MISSING
    interval: str = MISSING
    warmup: Warmup = field(default_factory=Warmup)

    # What each schedule's keys allow, checked by `check`. A key set to null (where its type allows it)
    # means "derived" and is not checked.
    floors: ClassVar[tuple[str, ...]] = ()  # an LR of param group 0: >= 0 and <= the base LR
    positive: ClassVar[tuple[str, ...]] = ()
    non_negative: ClassVar[tuple[str, ...]] = ()
    below_one: ClassVar[tuple[str, ...]] = ()  # in [0, 1): momenta
    choices: ClassVar[dict[str, tuple[str, ...]]] = {}

    def end(self, epochs: int) -> float | None:
        """Where the schedule ends, in epochs from the start of the run; None where it has no end."""
        if not hasattr(self, "horizon"):
            return None
        return float(epochs) if self.horizon is None else self.horizon

    def check(self, epochs: int, base_lr: float | None = None) -> None:
        """Raise ConfigError naming the first key whose value cannot work; `base_lr` None: not known yet."""
        for key, options in {"interval": INTERVALS, **self.choices}.items():
            value = getattr(self, key)
            _require(value in options, key, "one of " + ", ".join(repr(o) for o in options), value)
        warmup = self.warmup.epochs
        _require(warmup >= 0 and math.isfinite(warmup), "warmup.epochs", ">= 0", warmup)
        end = self.end(epochs)
        if end is not None:
            got = self.horizon if self.horizon is not None else f"null = the run's {epochs} epochs"
            _require(end > warmup, "horizon", f"> scheduler.warmup.epochs ({warmup})", got)
        _require(warmup < epochs, "warmup.epochs", f"< trainer.epochs ({epochs}): warmup must end before the run", warmup)
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


@dataclass
class Factor(Schedule):
    factor: float = MISSING
    min_lr: float = MISSING
    floors: ClassVar = ("min_lr",)
    positive: ClassVar = ("factor",)


@dataclass
class Step(Schedule):
    step_size: float = MISSING
    gamma: float = MISSING
    positive: ClassVar = ("step_size", "gamma")


@dataclass
class MultiStep(Schedule):
    milestones: list[float] = MISSING
    gamma: float = MISSING
    positive: ClassVar = ("gamma",)

    def check(self, epochs: int, base_lr: float | None = None) -> None:
        m = list(self.milestones)
        _require(all(a < b for a, b in zip(m, m[1:], strict=False)), "milestones", "strictly increasing", m)
        _require(all(x > 0 for x in m), "milestones", "> 0 (epochs after warmup)", m)
        super().check(epochs, base_lr)


@dataclass
class Exponential(Schedule):
    gamma: float = MISSING
    positive: ClassVar = ("gamma",)


@dataclass
class InverseTime(Schedule):
    decay: float = MISSING
    non_negative: ClassVar = ("decay",)


@dataclass
class Polynomial(Schedule):
    power: float = MISSING
    end_lr: float = MISSING
    horizon: float | None = MISSING
    floors: ClassVar = ("end_lr",)
    positive: ClassVar = ("power",)


@dataclass
class Linear(Schedule):
    start_factor: float = MISSING
    end_factor: float = MISSING
    horizon: float | None = MISSING
    non_negative: ClassVar = ("start_factor", "end_factor")


@dataclass
class Cosine(Schedule):
    final_lr: float = MISSING
    horizon: float | None = MISSING
    floors: ClassVar = ("final_lr",)


@dataclass
class Plateau(Schedule):
    mode: str = MISSING
    factor: float = MISSING
    patience: int = MISSING
    threshold: float = MISSING
    threshold_mode: str = MISSING
    cooldown: int = MISSING
    min_lr: float = MISSING
    eps: float = MISSING
    floors: ClassVar = ("min_lr",)
    non_negative: ClassVar = ("patience", "cooldown", "threshold", "eps")
    choices: ClassVar = {"mode": ("min", "max"), "threshold_mode": ("rel", "abs")}

    def check(self, epochs: int, base_lr: float | None = None) -> None:
        super().check(epochs, base_lr)
        _require(0 < self.factor < 1, "factor", "in (0, 1)", self.factor)


@dataclass
class Momentum:
    """Momentum (SGD, RMSprop) or Adam's beta1, cycled against the LR as torch does."""

    cycle_momentum: bool = MISSING
    base_momentum: float = MISSING
    max_momentum: float = MISSING


@dataclass
class OneCycle(Schedule, Momentum):
    pct_start: float = MISSING
    anneal_strategy: str = MISSING
    div_factor: float = MISSING
    final_div_factor: float = MISSING
    three_phase: bool = MISSING
    horizon: float | None = MISSING
    positive: ClassVar = ("div_factor", "final_div_factor")
    below_one: ClassVar = ("base_momentum", "max_momentum")
    choices: ClassVar = {"anneal_strategy": ("cos", "linear")}

    def check(self, epochs: int, base_lr: float | None = None) -> None:
        super().check(epochs, base_lr)
        top = 0.5 if self.three_phase else 1  # three phases rise and fall back within 2 * pct_start
        _require(0 < self.pct_start < top, "pct_start", f"in (0, {top})", self.pct_start)


@dataclass
class Cyclic(Schedule, Momentum):
    max_lr: float = MISSING
    step_size_up: float = MISSING
    step_size_down: float | None = MISSING
    mode: str = MISSING
    gamma: float = MISSING
    positive: ClassVar = ("step_size_up", "step_size_down", "gamma")
    non_negative: ClassVar = ("max_lr",)
    below_one: ClassVar = ("base_momentum", "max_momentum")
    choices: ClassVar = {"mode": ("triangular", "triangular2", "exp_range")}

    def check(self, epochs: int, base_lr: float | None = None) -> None:
        super().check(epochs, base_lr)
        if base_lr is not None:  # a ceiling, where the other LR keys are floors
            _require(self.max_lr >= base_lr, "max_lr", f">= the base LR (the optimizer's lr, {base_lr})", self.max_lr)


@dataclass
class CosineRestarts(Schedule):
    T_0: float = MISSING
    T_mult: float = MISSING
    eta_min: float = MISSING
    floors: ClassVar = ("eta_min",)
    positive: ClassVar = ("T_0",)

    def check(self, epochs: int, base_lr: float | None = None) -> None:
        super().check(epochs, base_lr)
        _require(self.T_mult >= 1, "T_mult", ">= 1", self.T_mult)


@dataclass
class WSD(Schedule):
    decay_fraction: float = MISSING
    shape: str = MISSING
    min_lr: float = MISSING
    horizon: float | None = MISSING
    floors: ClassVar = ("min_lr",)
    choices: ClassVar = {"shape": ("linear", "cosine", "1-sqrt")}

    def check(self, epochs: int, base_lr: float | None = None) -> None:
        super().check(epochs, base_lr)
        _require(0 < self.decay_fraction <= 1, "decay_fraction", "in (0, 1]", self.decay_fraction)


SCHEMAS: dict[str, type[Schedule]] = {
    "constant": Schedule,  # no keys of its own
    "factor": Factor,
    "step": Step,
    "multistep": MultiStep,
    "exponential": Exponential,
    "inverse_time": InverseTime,
    "sqrt": Schedule,
    "polynomial": Polynomial,
    "linear": Linear,
    "cosine": Cosine,
    "cosine_warmup": Cosine,
    "plateau": Plateau,
    "onecycle": OneCycle,
    "cyclic": Cyclic,
    "cosine_restarts": CosineRestarts,
    "wsd": WSD,
}


def register_configs() -> None:
    """Store one schema per schedule as scheduler/<name>_schema; call before @hydra.main runs."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    for name, schema in SCHEMAS.items():
        store.store(group="scheduler", name=f"{name}_schema", node=schema)


def _defaults(name: str) -> DictConfig:
    values = OmegaConf.load(CONF_DIR / f"{name}.yaml")
    values.pop("defaults", None)
    return values


def as_node(cfg: Any) -> DictConfig:
    """The `scheduler` node as a DictConfig, whether composed by Hydra or written as a dict."""
    return cfg if isinstance(cfg, DictConfig) else OmegaConf.create(dict(cfg))


def parse(cfg: Any) -> Schedule:
    """The `scheduler` node as its typed schema; a bad key or type raises ConfigError naming the key."""
    cfg = as_node(cfg)
    name = cfg.get("name")
    if name not in SCHEMAS:
        raise ConfigError(f"scheduler.name must be one of {', '.join(SCHEMAS)} (or give a _target_), got {name!r}")
    try:
        # as a plain dict: a composed node may carry keys forced in with `+`, which a merge would let through
        values = OmegaConf.to_container(cfg, resolve=True)
        return OmegaConf.to_object(OmegaConf.merge(SCHEMAS[name], _defaults(name), values))
    except OmegaConfBaseException as e:
        raise ConfigError(f"scheduler.{e.full_key}: {str(e).splitlines()[0]}") from None
