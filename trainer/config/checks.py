"""The checks that run before any data is loaded: unknown keys, each group's own `check()`, and the checks that
span groups (objective, schedule against optimizer, snapshots, validation set)."""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Iterable, Iterator
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from trainer.config.rules import _SAMPLED, _one_of, _require, _sampled
from trainer.config.schema import (
    SCHEDULE_FREE_SCHEDULES,
    SEED_LIMIT,
    BranchConfig,
    EvalConfig,
    ImageDatasetConfig,
    LoggerConfig,
    LRFindConfig,
    ModelConfig,
    OptimizerConfig,
    ScheduleFreeConfig,
    ToyConfig,
    TrainerConfig,
)
from trainer.errors import ConfigError
from trainer.records import OBJECTIVES, missing_for


def unknown_key(key: str, valid: Iterable[str]) -> str:
    """The one line for a key no schema declares, with the closest valid key when there is one."""
    parent, _, name = key.rpartition(".")
    close = difflib.get_close_matches(name, [str(k) for k in valid], n=1)
    hint = f"did you mean {parent + '.' if parent else ''}{close[0]}?" if close else "check the spelling"
    return f"{key}: no such key{f' in {parent}' if parent else ''} ({hint})"


def _declared(node: DictConfig) -> list[str] | None:
    schema = OmegaConf.get_type(node)
    return [f.name for f in dataclasses.fields(schema)] if dataclasses.is_dataclass(schema) else None


def _unknown_keys(node: DictConfig, prefix: str = "") -> Iterator[str]:
    declared = _declared(node)
    for key, child in node.items_ex(resolve=False):
        full = f"{prefix}{key}"
        if full == "hydra":
            continue
        if declared is not None and key not in declared:
            yield unknown_key(full, declared)
        if isinstance(child, DictConfig):
            yield from _unknown_keys(child, full + ".")


_SCALARS = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


def _nodes_in_scalar_lists(node: DictConfig | ListConfig, prefix: str = "") -> Iterator[str]:
    """A config node inside a list the schema types as scalars (model.hidden=[{_target_:...},1]): OmegaConf
    lets an override put one there, and nothing may instantiate or compare it."""
    if node._is_none() or node._is_missing() or node._is_interpolation():
        return
    children = node.items_ex(resolve=False) if isinstance(node, DictConfig) else enumerate(node._iter_ex(resolve=False))
    for key, child in children:
        if isinstance(node, ListConfig):
            full = f"{prefix}[{key}]"
        else:
            full = f"{prefix}.{key}" if prefix else str(key)
        if full == "hydra":
            continue
        if isinstance(child, (DictConfig, ListConfig)):
            expected = _SCALARS.get(node._metadata.element_type) if isinstance(node, ListConfig) else None
            if expected is not None:
                yield f"{full}={OmegaConf.to_container(child)!r} is not allowed: must be {expected}, not a config node"
            else:
                yield from _nodes_in_scalar_lists(child, full)


def check_keys(cfg: DictConfig) -> None:
    """Refuse any key that no schema declares (Hydra lets `+key=value` add one to a typed config) and any config
    node where the schema declares a list of scalars."""
    for message in (*_unknown_keys(cfg), *_nodes_in_scalar_lists(cfg)):
        raise ConfigError(message)


def _typed(cfg: Any, group: str, schema: type) -> Any:
    """A group's node as its schema object (so its `check()` runs on typed values)."""
    obj = OmegaConf.to_object(cfg[group])
    if not isinstance(obj, schema):
        raise ConfigError(f"{group}: the option has no schema: start its yaml with `defaults: [<name>_schema, _self_]`")
    return obj


def validate(cfg: Any, sampled: Iterable[str] = ()) -> None:
    """Check every value a run depends on; raise ConfigError naming the first bad key.

    `sampled`: keys a sweeper picks while it runs; the checks that depend on them are skipped."""
    token = _SAMPLED.set(frozenset(sampled))
    try:
        _validate(cfg)
    finally:
        _SAMPLED.reset(token)


def _validate(cfg: Any) -> None:
    from schedulers import validate_schedule
    from trainer.data import file_train_size, train_size, val_count

    check_keys(cfg)
    if cfg.task == "eval":
        _require(
            cfg.resume is not None,
            "task",
            cfg.task,
            "needs resume=<run folder>: the run whose checkpoint to evaluate",
            needs=("resume",),
        )
    _typed(cfg, "eval", EvalConfig).check()
    _require(cfg.seed >= 0, "seed", cfg.seed, "must be an integer >= 0")
    _require(cfg.seed < SEED_LIMIT, "seed", cfg.seed, "must be an integer in [0, 2**32)")
    trainer = _typed(cfg, "trainer", TrainerConfig)
    trainer.check()
    _typed(cfg, "branch", BranchConfig).check(trainer)
    _typed(cfg, "dataset", ImageDatasetConfig).check()
    if not _sampled("trainer.batch_size", "dataset"):
        n_file = file_train_size(cfg.dataset)
        _require(
            val_count(cfg.dataset, n_file) < n_file,
            "dataset.val_size",
            cfg.dataset.val_size,
            f"must leave examples to train on (the training split of dataset={cfg.dataset.name} has {n_file})",
        )
        n_train = train_size(cfg.dataset)
        _require(
            trainer.batch_size <= n_train,
            "trainer.batch_size",
            trainer.batch_size,
            f"must be at most the training set size ({n_train} for dataset={cfg.dataset.name})",
        )
    has_validation = _sampled("dataset") or bool(cfg.dataset.get("val_size"))
    if cfg.objective is not None:
        _one_of("objective", cfg.objective, OBJECTIVES)
        why = missing_for(cfg.objective, has_validation, cfg.select_on_test)
        _require(why is None, "objective", cfg.objective, f"{why}, and {_no_validation(cfg)}", needs=("dataset",))
        why = missing_for(cfg.objective, True, True, has_snapshots=trainer.snapshots)
        _require(
            why is None, "objective", cfg.objective, f"{why}: set trainer.snapshots=true", needs=("trainer.snapshots",)
        )
        why = missing_for(
            cfg.objective, True, True, has_ema=trainer.ema is not None, has_swa=trainer.swa_start is not None
        )
        _require(why is None, "objective", cfg.objective, why or "", needs=("trainer.ema", "trainer.swa_start"))
    _typed(cfg, "model", ModelConfig).check()
    _typed(cfg, "logger", LoggerConfig).check()
    optimizer = _typed(cfg, "optimizer", OptimizerConfig)
    optimizer.check()
    _check_momentum_cycle(cfg.scheduler, optimizer)
    _check_param_groups(cfg.model, optimizer)
    _check_schedule_free(cfg.scheduler, optimizer, cfg.task)
    _typed(cfg, "lr_find", LRFindConfig).check()
    toy = _typed(cfg, "toy", ToyConfig)
    toy.check()
    metric = None if has_validation or cfg.select_on_test else _no_validation(cfg)
    _require(
        metric is None or trainer.early_stopping.patience is None,
        "trainer.early_stopping.patience",
        trainer.early_stopping.patience,
        f"stops on a validation figure, and {metric}",
        needs=("dataset",),
    )
    if not _sampled("scheduler", "trainer.epochs", "toy.steps"):
        base_lr = None if _sampled("optimizer.lr") else float(optimizer.lr)
        if cfg.task == "toy":
            toy.check_schedule(cfg.scheduler, base_lr)
        else:
            values = None if _sampled("optimizer") else optimizer.hyperparameters()
            validate_schedule(
                cfg.scheduler,
                trainer.epochs,
                base_lr=base_lr,
                has_val_metric=metric is None,
                why_no_metric=metric,
                values=values,
                optimizer=optimizer._target_,
                batch_size=None if _sampled("trainer.batch_size") else trainer.batch_size,
            )
            _check_snapshots(cfg.scheduler, trainer)


def _check_snapshots(scheduler: Any, trainer: TrainerConfig) -> None:
    """Snapshots are taken at the ends of a restarting schedule's cycles, or every trainer.snapshot_every epochs."""
    from schedulers import cycle_ends

    if not trainer.snapshots or trainer.snapshot_every is not None:
        return
    name = scheduler.get("name") or scheduler.get("_target_")
    _require(
        cycle_ends(scheduler, trainer.epochs) is not None,
        "trainer.snapshots",
        trainer.snapshots,
        f"scheduler={name} has no cycles to end: use scheduler=cosine_restarts or cyclic, or set "
        "trainer.snapshot_every=<epochs>",
        needs=("trainer.snapshot_every",),
    )


def _check_param_groups(model: Any, optimizer: OptimizerConfig) -> None:
    """Each prefix of optimizer.lr_multipliers must hold a parameter of the model, built on the meta device (no
    memory, no random numbers drawn); a model that cannot be built there is checked when the run builds it."""
    if not optimizer.lr_multipliers or _sampled("model", "optimizer.lr_multipliers"):
        return
    import torch

    from schedulers import param_groups
    from trainer.models import build_model

    try:
        with torch.device("meta"):
            net = build_model(model)
    except Exception:  # model=custom's own check names what fails; the run's build checks the prefixes
        return
    param_groups(net, lr=optimizer.lr, lr_multipliers=optimizer.lr_multipliers)


def _check_momentum_cycle(scheduler: Any, optimizer: OptimizerConfig) -> None:
    """onecycle and cyclic cycle the optimizer's momentum, or Adam's beta1, inversely to the LR (torch's rule);
    an optimizer with neither (Adagrad, Adadelta) is refused, as torch's OneCycleLR and CyclicLR refuse it."""
    cycles = scheduler.get("cycle_momentum", False) if isinstance(scheduler, DictConfig) else False
    knobs = {f.name for f in dataclasses.fields(optimizer)} & {"momentum", "betas"}
    _require(
        not cycles or bool(knobs),
        "scheduler.cycle_momentum",
        cycles,
        f"{optimizer._target_} has no momentum or beta1 to cycle: set scheduler.cycle_momentum=false",
        needs=("scheduler", "optimizer"),
    )


def _check_schedule_free(scheduler: Any, optimizer: OptimizerConfig, task: str) -> None:
    """A schedule-free optimizer is its own schedule: only a constant LR, warmed up or not, drives it; task=toy
    draws the training iterate, not the average it evaluates, so it takes none."""
    if not isinstance(optimizer, ScheduleFreeConfig):
        return
    node = scheduler if isinstance(scheduler, DictConfig) else {}
    which = f"optimizer={optimizer.option} ({optimizer._target_})"
    _require(
        task != "toy",
        "task",
        task,
        f"{which} is not drawn by task=toy (it evaluates an average of its steps)",
        needs=("optimizer",),
    )
    _require(
        node.get("name") == "constant" and "_target_" not in node,
        "scheduler",
        node.get("name") or node.get("_target_"),
        f"{which} replaces the schedule: use {SCHEDULE_FREE_SCHEDULES}",
        needs=("scheduler", "optimizer"),
    )


def _no_validation(cfg: Any) -> str:
    return (
        f"dataset.val_size={cfg.dataset.val_size:g} holds out no validation set: set dataset.val_size (e.g. 5000 or "
        "0.1), or select_on_test=true to choose on the test set"
    )
