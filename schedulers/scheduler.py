"""Drives an optimizer's LR from a schedule: per epoch (the d2l staircase) or per optimizer step (smooth); and the
momentum (or Adam's beta1), beta2 and weight decay where the schedule has schedules for them (scheduler.momentum, ...).

The trainer calls `step_batch()` after every optimizer.step() and `step_epoch(val_loss)` after every
epoch's evaluation. The LR is a Python float written to each param group, so stepping never touches
the device (no host sync, no recompilation of a compiled model).
"""

from __future__ import annotations

import abc
import inspect
from collections.abc import Sequence
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

import schedulers.config as config
import schedulers.curves as curves
from schedulers.errors import ConfigError

NO_METRIC = "scheduler {} reduces the LR on the validation loss, but the run gives none each epoch"


class Scheduler(abc.ABC):
    interval: str  # "epoch" or "step"

    @abc.abstractmethod
    def step_batch(self) -> None:
        """After every optimizer.step()."""

    @abc.abstractmethod
    def step_epoch(self, val_loss: float | None = None) -> None:
        """After every epoch's evaluation; plateau schedules need the validation loss."""

    @property
    @abc.abstractmethod
    def lr(self) -> float:
        """The LR of param group 0 now, a Python float."""

    @abc.abstractmethod
    def state_dict(self) -> dict: ...

    @abc.abstractmethod
    def load_state_dict(self, state: dict) -> None: ...


def _detached(lr: float | torch.Tensor) -> float | torch.Tensor:
    """A copy of a tensor LR (torch's LRScheduler does the same): `_set` writes the group's LR tensor in
    place, and the base LR kept as `initial_lr` must not move with it."""
    return lr.clone() if isinstance(lr, torch.Tensor) else lr


def _set(group: dict, key: str, value: float) -> None:
    if isinstance(group[key], torch.Tensor):  # an optimizer built with a tensor LR keeps its tensor
        group[key].fill_(value)
    else:
        group[key] = value


def plateau_of(curve: curves.Curve) -> tuple[curves.Plateau | None, float]:
    """The plateau controller a curve steps on a metric (None: the curve is a pure function of t), and the
    warmup epochs in front of it, which do not count toward its patience."""
    warmup = curve if isinstance(curve, curves.Warmup) else None
    main = warmup.main if warmup else curve
    return (main if isinstance(main, curves.Plateau) else None), (warmup.epochs if warmup else 0.0)


def lrs_at(curve: curves.Curve, t: float, base_lrs: list[float]) -> list[float]:
    """Every param group's LR at t: the curve's for group 0, scaled for the others by their base LRs. The one
    rule of both drivers (CurveScheduler here, SchedlabLR in a plain torch loop), so they give the same LRs."""
    lr = float(curve(t, base_lrs[0]))
    return [lr * (base / base_lrs[0]) for base in base_lrs]


def momentum_key(optimizer: torch.optim.Optimizer) -> str | None:
    """torch's rule for which knob momentum cycling turns: Adam's betas, else momentum, else none."""
    defaults = optimizer.defaults
    return "betas" if "betas" in defaults else "momentum" if "momentum" in defaults else None


def set_momentum(optimizer: torch.optim.Optimizer, key: str | None, momentum: float | None) -> None:
    """Write a cycled momentum (or beta1) to every param group; None: the schedule leaves it alone."""
    if momentum is None or key is None:
        return
    for group in optimizer.param_groups:
        if key == "betas":
            group["betas"] = (momentum, *group["betas"][1:])
        else:
            _set(group, "momentum", momentum)


def value_of(group: dict, key: str, momentum: str | None) -> float | torch.Tensor | None:
    """A param group's value of `key` (config.VALUES; `momentum`: momentum_key's answer), None where it has none."""
    if key == "momentum":
        return None if momentum is None else group["betas"][0] if momentum == "betas" else group["momentum"]
    if key == "beta2":
        return group["betas"][1] if "betas" in group else None
    return group.get("weight_decay")


def set_value(group: dict, key: str, value: float, momentum: str | None) -> None:
    if key == "momentum" and momentum == "betas" or key == "beta2":
        betas = list(group["betas"])
        betas[0 if key == "momentum" else 1] = value
        group["betas"] = tuple(betas)
    else:
        _set(group, "momentum" if key == "momentum" else key, value)


def value_bases(optimizer: torch.optim.Optimizer) -> dict[str, float | None]:
    """Param group 0's base of every value a schedule can drive (its initial_<key> where a schedule keeps one),
    None where the optimizer has no such knob: what config.Schedule.check_values checks against."""
    group, key = optimizer.param_groups[0], momentum_key(optimizer)
    out = {}
    for name in config.VALUES:
        value = group.get(f"initial_{name}", value_of(group, name, key))
        out[name] = None if value is None else float(value)
    return out


def optimizer_name(optimizer: torch.optim.Optimizer) -> str:
    """torch.optim.Adagrad, schedulefree.SGDScheduleFree: the class as a config's _target_ names it."""
    cls = type(optimizer)
    module = "torch.optim" if cls.__module__.startswith("torch.optim") else cls.__module__.split(".")[0]
    return f"{module}.{cls.__name__}"


class ValueSchedules:
    """The schedules of the values other than the LR (config.VALUES): each value of each param group is
    curve(t, base of group 0) scaled by the group's own base, as the LR is (lrs_at), set in place. The bases are
    kept in the groups as initial_<key> (torch's initial_lr), so a schedule built after the optimizer's state was
    loaded still starts from them; the state is the position, as for the LR."""

    def __init__(self, value_curves: dict[str, curves.Curve], optimizer: torch.optim.Optimizer):
        self.curves, self.optimizer = value_curves, optimizer
        self.key = momentum_key(optimizer)
        for name in value_curves:
            for group in optimizer.param_groups:
                if f"initial_{name}" not in group:
                    group[f"initial_{name}"] = float(value_of(group, name, self.key))
        self.bases = {name: [float(g[f"initial_{name}"]) for g in optimizer.param_groups] for name in value_curves}

    def apply(self, t: float) -> None:
        for name, curve in self.curves.items():
            for group, value in zip(self.optimizer.param_groups, lrs_at(curve, t, self.bases[name]), strict=True):
                set_value(group, name, value, self.key)


class CurveScheduler(Scheduler):
    """One of the library's schedules: the LR is curve(t), t the position in epochs; `values`: the curves of the
    other values it schedules (momentum, beta2, weight_decay), at the same t. `steps_per_epoch`: one count, or each
    epoch's own (a scheduled batch size; curves.position)."""

    def __init__(
        self,
        curve: curves.Curve,
        optimizer: torch.optim.Optimizer,
        interval: str,
        steps_per_epoch: int | Sequence[int],
        values: dict[str, curves.Curve] | None = None,
    ):
        self.curve, self.optimizer, self.interval = curve, optimizer, interval
        self.steps_per_epoch, self.epoch_ends = steps_per_epoch, curves.epoch_ends(steps_per_epoch)
        self.plateau, self.warmup_epochs = plateau_of(curve)
        for group in optimizer.param_groups:
            if "initial_lr" not in group or group["initial_lr"] is group["lr"]:  # the one tensor: give it its own
                group["initial_lr"] = _detached(group["lr"])
        self.base_lrs = [float(group["initial_lr"]) for group in optimizer.param_groups]
        self.momentum_key = momentum_key(optimizer)
        self.values = ValueSchedules(values or {}, optimizer)
        self.steps = 0  # step_batch calls
        self.epochs = 0  # step_epoch calls
        self._apply()

    @property
    def t(self) -> float:
        """The position in epochs."""
        if self.interval == "epoch":
            return float(self.epochs)
        return curves.position(self.steps, self.steps_per_epoch, self.epoch_ends)

    @property
    def lr(self) -> float:
        return self._lr

    def step_batch(self) -> None:
        if self.interval == "step":
            self.steps += 1
            self._apply()

    @property
    def monitor(self) -> str | None:
        """The validation figure step_epoch needs (plateau's scheduler.monitor), None when it needs none."""
        return self.plateau.c.monitor if self.plateau is not None else None

    def step_epoch(self, metric: float | None = None) -> None:
        # warmup epochs do not count toward the plateau's patience
        if self.plateau is not None and self.epochs >= self.warmup_epochs:
            if metric is None:
                raise ConfigError(NO_METRIC.format("plateau"))
            self.plateau.step(float(metric), self.base_lrs[0])
        self.epochs += 1
        self._apply()

    def _apply(self) -> None:
        t = self.t
        lrs = lrs_at(self.curve, t, self.base_lrs)
        self._lr = lrs[0]
        for group, lr in zip(self.optimizer.param_groups, lrs, strict=True):
            _set(group, "lr", lr)
        set_momentum(self.optimizer, self.momentum_key, curves.momentum_of(self.curve, t))
        self.values.apply(t)

    def state_dict(self) -> dict:
        plateau = self.plateau.state_dict() if self.plateau else None
        return {"steps": self.steps, "epochs": self.epochs, "plateau": plateau}

    def load_state_dict(self, state: dict) -> None:
        self.steps, self.epochs = state["steps"], state["epochs"]
        if self.plateau is not None:
            self.plateau.load_state_dict(state["plateau"])
        self._apply()


# keys of the scheduler node that are the library's, not the torch class's
OWN_KEYS = ("name", "interval")


def _torch_class(cfg: DictConfig) -> type:
    from hydra.utils import get_class

    try:
        return get_class(cfg["_target_"])
    except Exception as e:  # hydra raises ImportError or ValueError depending on what is missing
        raise ConfigError(
            f"scheduler._target_ cannot be imported: {cfg['_target_']!r} ({e.__class__.__name__})"
        ) from None


def _torch_kwargs(cfg: DictConfig) -> dict:
    return {k: v for k, v in OmegaConf.to_container(cfg, resolve=True).items() if k not in OWN_KEYS}


def _nested_target(value: Any, key: str) -> str | None:
    """The key of the first node with a `_target_` inside a torch scheduler's arguments, None when there is none."""
    if isinstance(value, dict):
        if "_target_" in value:
            return key
        return next((k for name, v in value.items() if (k := _nested_target(v, f"{key}.{name}"))), None)
    if isinstance(value, list):
        return next((k for i, v in enumerate(value) if (k := _nested_target(v, f"{key}[{i}]"))), None)
    return None


def _is_plateau_class(cls: type) -> bool:
    return issubclass(cls, torch.optim.lr_scheduler.ReduceLROnPlateau)


def validate_torch(cfg: DictConfig, has_val_metric: bool = True, why_no_metric: str | None = None) -> None:
    if "warmup" in cfg:
        raise ConfigError(
            "scheduler.warmup is not available with _target_: chain a warmup with torch.optim.lr_scheduler.SequentialLR"
        )
    if value := next((k for k in (*config.VALUES, config.BATCH_SIZE) if cfg.get(k) is not None), None):
        raise ConfigError(
            f"scheduler.{value} is not available with _target_: torch's schedulers drive the LR only "
            "(schedule it with one of schedlab's schedules, e.g. scheduler=cosine)"
        )
    interval = cfg.get("interval", "epoch")
    if interval not in config.INTERVALS:
        raise ConfigError(f"scheduler.interval must be one of 'epoch', 'step', got {interval!r}")
    cls = _torch_class(cfg)
    kwargs = {k: v for k, v in _torch_kwargs(cfg).items() if k != "_target_"}
    # an argument is a value, never a config node that builds something: nothing but the scheduler is instantiated
    if nested := next((k for name, v in kwargs.items() if (k := _nested_target(v, f"scheduler.{name}"))), None):
        raise ConfigError(f"{nested}: a value is expected, not a node with _target_ (only scheduler._target_ is built)")
    try:
        inspect.signature(cls).bind(None, **kwargs)
    except TypeError as e:
        raise ConfigError(f"scheduler: {cls.__name__} {e}") from None
    if _is_plateau_class(cls) and not has_val_metric:
        raise ConfigError(_no_metric(cls.__name__, "val_loss", why_no_metric))


def _no_metric(name: str, monitor: str, why: str | None) -> str:
    if why is None:
        return NO_METRIC.format(name)
    return f"scheduler {name} steps on the validation figure {monitor}, but {why}"


class TorchScheduler(Scheduler):
    """Any torch.optim.lr_scheduler class named by `_target_`, stepped per its `interval` (default epoch);
    its arguments are in torch's units (scheduler steps). ReduceLROnPlateau is stepped per epoch on the
    validation loss in both intervals."""

    def __init__(self, cfg: DictConfig, optimizer: torch.optim.Optimizer):
        from hydra.utils import instantiate

        self.interval = cfg.get("interval", "epoch")
        self.optimizer = optimizer
        self.scheduler = instantiate(_torch_kwargs(cfg), optimizer=optimizer, _convert_="all", _recursive_=False)
        self.on_metric = _is_plateau_class(type(self.scheduler))

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    @property
    def monitor(self) -> str | None:
        return "val_loss" if self.on_metric else None

    def step_batch(self) -> None:
        if self.interval == "step" and not self.on_metric:
            self.scheduler.step()

    def step_epoch(self, metric: float | None = None) -> None:
        if self.on_metric:
            if metric is None:
                raise ConfigError(NO_METRIC.format(type(self.scheduler).__name__))
            self.scheduler.step(float(metric))
        elif self.interval == "epoch":
            self.scheduler.step()

    def state_dict(self) -> dict:
        return self.scheduler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.scheduler.load_state_dict(state)
        for group, lr in zip(self.optimizer.param_groups, self.scheduler.get_last_lr(), strict=True):
            _set(group, "lr", lr)


def validate_schedule(
    cfg: Any,
    epochs: int,
    *,
    base_lr: float | None = None,
    has_val_metric: bool = True,
    why_no_metric: str | None = None,
    values: dict[str, float | None] | None = None,
    optimizer: str = "the optimizer",
    batch_size: int | None = None,
) -> None:
    """Raise ConfigError, one line naming the key, for a schedule that cannot work. Needs no data and no
    optimizer; give `base_lr` (the optimizer's lr) to also check floors against it now, and
    `has_val_metric=False` when the run has no validation figure each epoch (`why_no_metric`: the reason,
    naming the key to change). `values`: the optimizer's momentum (or beta1), beta2 and weight_decay as its config
    sets them (None where it has no such knob; OptimizerConfig.hyperparameters()), to check the schedules of
    scheduler.momentum, beta2 and weight_decay against them now; `optimizer`: its class, for the message;
    `batch_size`: trainer.batch_size, to check the schedule of scheduler.batch_size against it now."""
    cfg = config.as_node(cfg)
    if "_target_" in cfg:
        validate_torch(cfg, has_val_metric, why_no_metric)
        return
    c = config.parse(cfg)
    c.check(epochs, base_lr)
    if values is not None:
        c.check_values(epochs, values, optimizer)
    if batch_size is not None:
        c.check_batch_size(epochs, batch_size)
    if isinstance(c, config.Plateau) and not has_val_metric:
        raise ConfigError(_no_metric(c.name, c.monitor, why_no_metric))


def build_schedule(
    cfg: Any, optimizer: torch.optim.Optimizer, steps_per_epoch: int | Sequence[int], epochs: int
) -> Scheduler:
    """The scheduler for `optimizer`, its LR already set for t = 0. `steps_per_epoch`: the optimizer steps of every
    epoch, or of each epoch in order where their number varies (a scheduled batch size)."""
    if min(steps_per_epoch if isinstance(steps_per_epoch, Sequence) else [steps_per_epoch], default=0) < 1:
        raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
    cfg = config.as_node(cfg)
    if "_target_" in cfg:
        validate_torch(cfg)
        return TorchScheduler(cfg, optimizer)
    group = optimizer.param_groups[0]
    base_lr = float(group.get("initial_lr", group["lr"]))
    if base_lr <= 0:
        raise ConfigError(f"optimizer.lr must be > 0 to be scheduled, got {base_lr}")
    c = config.parse(cfg)
    c.check(epochs, base_lr)
    c.check_values(epochs, value_bases(optimizer), optimizer_name(optimizer))
    quantum = curves.quantum(c.interval, steps_per_epoch)  # onecycle's, which needs one count (config.Schedule.check)
    curve, values = curves.make_curve(c, epochs, quantum), curves.make_value_curves(c, epochs, quantum)
    return CurveScheduler(curve, optimizer, c.interval, steps_per_epoch, values)
