"""Typed schemas for every config group, and the value checks that run before any data is loaded.

The schemas are registered with Hydra's ConfigStore; each group option's yaml starts with
`defaults: [<name>_schema, _self_]`, so a misspelt key or a wrong type fails at composition with the
key's name. `validate` then checks what a type cannot express (ranges, choices, cross-group limits).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from trainer.errors import ConfigError

TASKS = ("train", "lr_find", "schedule")
DEVICES = "auto, cpu, cuda or cuda:N"
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
LOGGER_MODES = ("auto", "online", "offline", "disabled")
LR_FIND_RULES = ("steepest", "min_div10", "valley")
# keys that cannot change a run's numbers: they may differ between an interruption and its resume
NEUTRAL_KEYS = ("resume", "logger", "trainer.progress", "trainer.checkpoint")
OBJECTIVES = ("best_test_acc", "final_test_acc", "final_test_loss", "final_train_loss", "final_gap")


@dataclass
class ImageDatasetConfig:
    name: str = "fashion_mnist"
    channels: int = 1
    image_size: int = 28
    num_classes: int = 10
    root: str | None = None  # None: $SCHEDLAB_DATA, else ~/.cache/schedlab/data
    download: bool = True
    normalize: bool = True


@dataclass
class SyntheticDatasetConfig(ImageDatasetConfig):
    name: str = "synthetic"
    train_size: int = 2048
    test_size: int = 512
    noise: float = 0.35
    generator_seed: int = 1234


@dataclass
class ModelConfig:
    _target_: str = "trainer.models.LeNet"
    in_channels: int = 1
    num_classes: int = 10


@dataclass
class LeNetConfig(ModelConfig):
    image_size: int = 28


@dataclass
class MLPConfig(ModelConfig):
    _target_: str = "trainer.models.MLP"
    image_size: int = 28
    hidden: list[int] = field(default_factory=lambda: [256, 128])
    dropout: float = 0.0


@dataclass
class ResNetConfig(ModelConfig):
    _target_: str = "trainer.models.ResNet"
    widths: list[int] = field(default_factory=lambda: [16, 32, 64])
    blocks_per_stage: int = 1


@dataclass
class OptimizerConfig:
    _target_: str = "torch.optim.SGD"
    _partial_: bool = True
    lr: float = 0.1
    weight_decay: float = 0.0


@dataclass
class SGDConfig(OptimizerConfig):
    momentum: float = 0.0
    dampening: float = 0.0
    nesterov: bool = False


@dataclass
class AdamConfig(OptimizerConfig):
    _target_: str = "torch.optim.Adam"
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8


@dataclass
class DivergenceConfig:
    check_every: int = 50  # steps between host reads of the loss (one sync each)
    factor: float = 10.0  # diverged when loss > factor x the first step's loss (or not finite)


@dataclass
class TrainerConfig:
    epochs: int = 30
    batch_size: int = 256
    eval_batch_size: int = 2048
    device: str = "auto"
    precision: str = "auto"
    channels_last: bool = True  # ~10 % faster fp32 LeNet epochs on CPU; bf16 needs it (benchmarks/README.md)
    num_threads: int | None = None  # torch CPU threads; None: torch's default (one per core)
    compile: bool = False
    max_steps_per_epoch: int | None = None  # cap the batches of an epoch (smoke runs)
    deterministic: bool = False
    progress: bool = True
    checkpoint: bool = True
    lr_find: bool = False  # run the LR range test first and train with its suggestion
    divergence: DivergenceConfig = field(default_factory=DivergenceConfig)


@dataclass
class WandbConfig:
    mode: str = "auto"
    project: str = "schedlab"
    entity: str | None = None
    tags: list[str] = field(default_factory=list)
    init_timeout: float = 30.0  # seconds before W&B is given up for this run
    finish_timeout: float = 120.0  # seconds to wait for W&B to close (upload) at the end of a run
    log_steps: bool = True  # per-step LR and loss, sent once per epoch


@dataclass
class LRFindConfig:
    start_lr: float = 1e-8
    end_lr: float = 10.0
    num_steps: int | None = None  # None: one epoch
    mode: str = "exp"  # exp | linear
    beta: float = 0.98
    diverge_factor: float = 4.0
    suggestion: str = "valley"  # fastai's default: steepest sits too close to the blow-up on short tests


@dataclass
class SchedulePlotConfig:
    compare: list[str] = field(default_factory=list)  # other conf/scheduler options to overlay
    steps_per_epoch: int | None = None  # None: from the dataset size and batch size


@dataclass
class SchedlabConfig:
    dataset: Any = None
    model: Any = None
    optimizer: Any = None
    scheduler: Any = None
    trainer: Any = None
    logger: Any = None
    task: str = "train"
    seed: int = 0
    resume: str | None = None
    objective: str = "best_test_acc"
    lr_find: LRFindConfig = field(default_factory=LRFindConfig)
    schedule_plot: SchedulePlotConfig = field(default_factory=SchedulePlotConfig)


def register_configs() -> None:
    """Put every schema in Hydra's ConfigStore; call once before composing."""
    from schedulers.config import register_configs as register_schedule_configs

    # ${if_null:${resume},default}: a resumed run writes into the folder it resumes
    OmegaConf.register_new_resolver("if_null", lambda value, default: default if value is None else value, replace=True)
    cs = ConfigStore.instance()
    cs.store(name="schedlab_schema", node=SchedlabConfig)
    for group, name, node in [
        ("dataset", "image_dataset_schema", ImageDatasetConfig),
        ("dataset", "synthetic_dataset_schema", SyntheticDatasetConfig),
        ("model", "lenet_schema", LeNetConfig),
        ("model", "mlp_schema", MLPConfig),
        ("model", "resnet_schema", ResNetConfig),
        ("optimizer", "sgd_schema", SGDConfig),
        ("optimizer", "adam_schema", AdamConfig),
        ("trainer", "trainer_schema", TrainerConfig),
        ("logger", "wandb_schema", WandbConfig),
    ]:
        cs.store(group=group, name=name, node=node)
    register_schedule_configs()


def _require(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={value!r} is not allowed: {allowed}")


def _one_of(cfg: Any, key: str, allowed: tuple[str, ...]) -> None:
    value = _select(cfg, key)
    _require(value in allowed, key, value, "use one of " + ", ".join(allowed))


def _select(cfg: Any, key: str) -> Any:
    node = cfg
    for part in key.split("."):
        node = node[part]
    return node


def validate(cfg: Any) -> None:
    """Check every value a run depends on; raise ConfigError naming the first bad key."""
    from trainer.data import train_size

    _one_of(cfg, "task", TASKS)
    _require(cfg.seed >= 0, "seed", cfg.seed, "must be an integer >= 0")
    _one_of(cfg, "objective", OBJECTIVES)
    t = cfg.trainer
    _require(t.epochs >= 1, "trainer.epochs", t.epochs, "must be an integer >= 1")
    _require(t.batch_size >= 1, "trainer.batch_size", t.batch_size, "must be an integer >= 1")
    _require(t.eval_batch_size >= 1, "trainer.eval_batch_size", t.eval_batch_size, "must be >= 1")
    n_train = train_size(cfg.dataset)
    _require(
        t.batch_size <= n_train,
        "trainer.batch_size",
        t.batch_size,
        f"must be at most the training set size ({n_train} for dataset={cfg.dataset.name})",
    )
    if t.max_steps_per_epoch is not None:
        _require(t.max_steps_per_epoch >= 1, "trainer.max_steps_per_epoch", t.max_steps_per_epoch, "must be >= 1 or null")
    _require(
        bool(re.fullmatch(r"auto|cpu|cuda(:\d+)?", t.device)), "trainer.device", t.device, f"use {DEVICES}"
    )
    _one_of(cfg, "trainer.precision", PRECISIONS)
    if t.num_threads is not None:
        _require(t.num_threads >= 1, "trainer.num_threads", t.num_threads, "must be >= 1 or null (one per core)")
    if "dropout" in cfg.model:
        _require(0 <= cfg.model.dropout < 1, "model.dropout", cfg.model.dropout, "must be in [0, 1)")
    _require(t.divergence.check_every >= 1, "trainer.divergence.check_every", t.divergence.check_every, "must be >= 1")
    _require(t.divergence.factor > 1, "trainer.divergence.factor", t.divergence.factor, "must be > 1")
    _one_of(cfg, "logger.mode", LOGGER_MODES)
    _require(cfg.logger.init_timeout > 0, "logger.init_timeout", cfg.logger.init_timeout, "must be > 0 seconds")
    _require(cfg.logger.finish_timeout > 0, "logger.finish_timeout", cfg.logger.finish_timeout, "must be > 0 seconds")

    o = cfg.optimizer
    _require(o.lr > 0, "optimizer.lr", o.lr, "must be > 0")
    _require(o.weight_decay >= 0, "optimizer.weight_decay", o.weight_decay, "must be >= 0")
    if "momentum" in o:
        _require(0 <= o.momentum < 1, "optimizer.momentum", o.momentum, "must be in [0, 1)")
        _require(not o.nesterov or o.momentum > 0, "optimizer.nesterov", o.nesterov, "needs optimizer.momentum > 0")
    if "betas" in o:
        for i, b in enumerate(o.betas):
            _require(0 <= b < 1, f"optimizer.betas[{i}]", b, "must be in [0, 1)")

    f = cfg.lr_find
    _require(0 < f.start_lr < f.end_lr, "lr_find.start_lr", f.start_lr, f"must be > 0 and below lr_find.end_lr ({f.end_lr})")
    _one_of(cfg, "lr_find.mode", ("exp", "linear"))
    _require(0 <= f.beta < 1, "lr_find.beta", f.beta, "must be in [0, 1)")
    _require(f.diverge_factor > 1, "lr_find.diverge_factor", f.diverge_factor, "must be > 1")
    _one_of(cfg, "lr_find.suggestion", LR_FIND_RULES)
    if f.num_steps is not None:
        _require(f.num_steps >= 2, "lr_find.num_steps", f.num_steps, "must be >= 2 or null (one epoch)")

    if cfg.dataset.name == "synthetic":
        _require(cfg.dataset.test_size >= 1, "dataset.test_size", cfg.dataset.test_size, "must be >= 1")
        _require(cfg.dataset.noise >= 0, "dataset.noise", cfg.dataset.noise, "must be >= 0")

    from schedulers import validate_schedule

    validate_schedule(cfg.scheduler, t.epochs, base_lr=float(o.lr))
