"""schedlab's schedules in a plain PyTorch loop: a real `torch.optim.lr_scheduler.LRScheduler`.

    sched = schedulers.torch_scheduler(opt, "cosine", epochs=30, steps_per_epoch=len(loader),
                                       warmup={"epochs": 5})
    for epoch in range(30):
        for batch in loader:
            loss = ...; loss.backward(); opt.step(); opt.zero_grad()
            sched.step()

`step()` goes after every optimizer.step(), whatever the schedule's `interval`, and `steps_per_epoch` is the
number of those steps in an epoch: the position is t = steps / steps_per_epoch epochs, and interval says how
the LR follows it, as in the trainer: interval=step moves it every step (smooth), interval=epoch (the
configs' default) holds it through each epoch of steps_per_epoch steps (the d2l staircase), so a
loop cannot run through the schedule too fast by stepping it in the wrong unit. (To step once per epoch,
torch's other habit, pass steps_per_epoch=1.) The LR of every param group is the trainer's (`build_schedule`)
at the same position, from the same pure function; the state is the step count (`last_epoch`, in torch's
name), so `state_dict()` holds no callable and a loop resumed from it continues exactly.

A schedule is a conf/scheduler option's name with its keys as keyword arguments, a `scheduler` node (OmegaConf
or dict, as conf/scheduler/*.yaml compose it), or a callable: your own factor of the base LR, as
scheduler=custom takes it (schedulers/custom.py). plateau steps on a metric: `torch_scheduler` gives a
SchedlabPlateauLR, stepped once per epoch with it, `sched.step(val_loss)`, as torch's ReduceLROnPlateau
is. A `_target_` node is torch's own class, which `torch_scheduler` instantiates and returns (stepped in its
own units).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch.optim.lr_scheduler import LRScheduler

import schedulers.config as config
import schedulers.curves as curves
import schedulers.custom as custom
from schedulers.errors import ConfigError
from schedulers.scheduler import (
    ValueSchedules,
    _set,
    _torch_kwargs,
    lrs_at,
    momentum_key,
    optimizer_name,
    plateau_of,
    set_momentum,
    validate_torch,
    value_bases,
)

ScheduleLike = str | Mapping | DictConfig | config.Schedule | Callable[[float], float]


def _merged(base: dict, keys: Mapping) -> dict:
    """`base` with `keys` over it, nested dicts (warmup) merged key by key."""
    out = dict(base)
    for key, value in keys.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            value = _merged(dict(out[key]), value)
        out[key] = value
    return out


def parse_schedule(schedule: ScheduleLike, keys: Mapping | None = None) -> config.Schedule | DictConfig:
    """The parsed schedule (its schema, defaults filled in) of a conf option's name, a `scheduler` node or a
    callable (scheduler=custom with it as `fn`), `keys` over it; a `_target_` node is returned as a DictConfig."""
    if isinstance(schedule, config.Schedule):  # one level deep: a callable fn is kept as it is, not copied
        values = {f.name: getattr(schedule, f.name) for f in dataclasses.fields(schedule)}
        values["warmup"] = dataclasses.asdict(schedule.warmup)
    elif isinstance(schedule, str):
        values = {"name": schedule}
    elif isinstance(schedule, DictConfig):
        values = OmegaConf.to_container(schedule, resolve=True)
    elif isinstance(schedule, Mapping):
        values = dict(schedule)
    elif callable(schedule):
        values = {"name": "custom", "fn": schedule}
    else:
        raise TypeError(
            f"a schedule is an option's name, a scheduler node or a callable, got {type(schedule).__name__}"
        )
    values = _merged(values, keys or {})
    if "_target_" in values:
        return config.as_node(values)
    fn = values.get("fn")
    if fn is None or isinstance(fn, str):
        return config.parse(values)
    # a callable cannot live in an OmegaConf node: parse the rest, then put it in the schema's place
    return dataclasses.replace(config.parse({**values, "fn": custom.label(fn).split("=", 1)[1]}), fn=fn)


class SchedlabLR(LRScheduler):
    """One of schedlab's schedules as a torch LRScheduler: `step()` after every optimizer.step().

    `schedule`: a conf/scheduler option's name, a scheduler node or a callable (see the module); `epochs`: the
    run's length, which horizons, step sizes and milestones left null follow and a warmup must end before;
    `steps_per_epoch`: optimizer steps (step() calls) per epoch; `keys`: schedule keys over the schedule's
    (warmup={...}, interval="step", final_lr=...). A plateau schedule is SchedlabPlateauLR's."""

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        schedule: ScheduleLike = "constant",
        *,
        epochs: int,
        steps_per_epoch: int,
        last_epoch: int = -1,
        **keys: Any,
    ):
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
        if isinstance(steps_per_epoch, bool) or not isinstance(steps_per_epoch, int) or steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be an integer >= 1, got {steps_per_epoch!r}")
        c = parse_schedule(schedule, keys)
        if isinstance(c, DictConfig):
            raise ConfigError(
                f"scheduler._target_={c['_target_']} is torch's own class: build it directly, or with "
                "schedulers.torch_scheduler, which returns it"
            )
        if isinstance(c, config.Plateau) is not isinstance(self, SchedlabPlateauLR):
            which = "SchedlabPlateauLR" if isinstance(c, config.Plateau) else "SchedlabLR"
            raise ConfigError(
                f"scheduler {c.name} is a {which} (schedulers.torch_scheduler picks the class from the schedule)"
            )
        if c.batch_size is not None:
            raise ConfigError(
                "scheduler.batch_size is not available in a plain loop: it sets the trainer's batches "
                "(trainer.batch_size), and a loop batches its own data"
            )
        if isinstance(c, config.Plateau) and c.interval == "step":
            raise ConfigError(
                "scheduler.interval=step: a plateau schedule in a plain loop steps once per epoch, "
                "sched.step(val_loss), and its warmup with it: use interval=epoch"
            )
        group = optimizer.param_groups[0]
        base_lr = float(group.get("initial_lr", group["lr"]))
        if base_lr <= 0:
            raise ConfigError(f"optimizer.lr must be > 0 to be scheduled, got {base_lr}")
        c.check(int(epochs), base_lr)
        c.check_values(int(epochs), value_bases(optimizer), optimizer_name(optimizer))
        self.schedule, self.interval, self.steps_per_epoch = c, c.interval, steps_per_epoch
        quantum = 1.0 if c.interval == "epoch" else 1.0 / steps_per_epoch
        self.curve = curves.make_curve(c, int(epochs), quantum)
        self.plateau, self.warmup_epochs = plateau_of(self.curve)
        self.momentum_key = momentum_key(optimizer)
        self.values = ValueSchedules(curves.make_value_curves(c, int(epochs), quantum), optimizer)
        super().__init__(optimizer, last_epoch)  # steps once: the LRs of t = 0

    @property
    def t(self) -> float:
        """The position in epochs, as the trainer's: steps / steps_per_epoch with interval=step, the epoch
        the step is in with interval=epoch."""
        if self.interval == "step":
            return self.last_epoch / self.steps_per_epoch
        return float(self.last_epoch // self.steps_per_epoch)

    def get_lr(self) -> list[float]:
        """The LR of every param group at the current position; sets a cycled momentum (onecycle, cyclic) and the
        scheduled values (scheduler.momentum, beta2, weight_decay)."""
        t = self.t
        set_momentum(self.optimizer, self.momentum_key, curves.momentum_of(self.curve, t))
        self.values.apply(t)
        return lrs_at(self.curve, t, [float(base) for base in self.base_lrs])

    _get_closed_form_lr = get_lr  # a pure function of the position: step(epoch) (SequentialLR) jumps exactly

    def step(self, epoch: int | None = None) -> None:
        if epoch is not None and (isinstance(epoch, bool) or not isinstance(epoch, int)):
            raise TypeError(
                f"SchedlabLR.step() takes no metric: scheduler {self.schedule.name} is a function of the position, "
                "call sched.step()"
            )
        super().step(epoch)

    STATE = ("last_epoch", "_step_count", "base_lrs", "_last_lr")

    def state_dict(self) -> dict[str, Any]:
        """The step count and base LRs (no callable: torch.save takes it); the plateau's counters if any."""
        state = {key: self.__dict__[key] for key in self.STATE}
        if self.plateau is not None:
            state["plateau"] = self.plateau.state_dict()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the position, and write its LRs to the optimizer, so that the loop continues exactly
        whether the optimizer's state was loaded before this, after it, or not at all."""
        state = dict(state_dict)
        plateau = state.pop("plateau", None)
        self.__dict__.update({key: state[key] for key in self.STATE if key in state})
        if self.plateau is not None and plateau is not None:
            self.plateau.load_state_dict(plateau)
        for group, lr in zip(self.optimizer.param_groups, self.get_lr(), strict=True):
            _set(group, "lr", lr)


class SchedlabPlateauLR(SchedlabLR):
    """schedlab's plateau (torch's ReduceLROnPlateau, with an optional warmup in front) in a plain loop:
    `step(metric)` once per epoch, as torch's, with the validation figure `scheduler.monitor` names (mode min:
    a loss, max: an accuracy); warmup epochs do not count toward its patience. It counts epochs, so it takes
    no steps_per_epoch, and interval=epoch only (its warmup moves at its one step call)."""

    def __init__(self, optimizer: torch.optim.Optimizer, schedule: ScheduleLike = "plateau", **kwargs: Any):
        kwargs.pop("steps_per_epoch", None)
        super().__init__(optimizer, schedule, steps_per_epoch=1, **kwargs)

    def step(self, metrics: float | None = None) -> None:  # type: ignore[override]
        if self._step_count == 0:  # LRScheduler.__init__'s own step: the LRs of t = 0
            super().step()
            return
        if metrics is None:
            raise TypeError(
                f"scheduler {self.schedule.name} reduces the LR on {self.plateau.c.monitor}: call sched.step(metric) "
                "once per epoch"
            )
        if self.last_epoch >= self.warmup_epochs:
            self.plateau.step(float(metrics), float(self.base_lrs[0]))
        super().step()


def torch_scheduler(
    optimizer: torch.optim.Optimizer,
    schedule: ScheduleLike = "constant",
    *,
    epochs: int,
    steps_per_epoch: int,
    **keys: Any,
) -> LRScheduler:
    """A torch LRScheduler for `schedule` (see the module): a SchedlabLR, stepped after every optimizer step;
    a SchedlabPlateauLR for plateau, `step(metric)` once per epoch; or for a `_target_` node torch's own class,
    with its own arguments in its own units. Bad input raises ConfigError, one line naming the key."""
    c = parse_schedule(schedule, keys)
    if isinstance(c, DictConfig):
        from hydra.utils import instantiate

        validate_torch(c)
        return instantiate(_torch_kwargs(c), optimizer=optimizer, _convert_="all", _recursive_=False)
    if isinstance(c, config.Plateau):
        return SchedlabPlateauLR(optimizer, c, epochs=epochs)
    return SchedlabLR(optimizer, c, epochs=epochs, steps_per_epoch=steps_per_epoch)
