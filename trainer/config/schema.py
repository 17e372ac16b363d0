"""Typed schemas for every config group.

The schemas are registered with Hydra's ConfigStore; each group option's yaml starts with
`defaults: [<name>_schema, _self_]`, so a misspelt key or a wrong type fails at composition with the
key's name. Each schema's `check()` then checks what a type cannot express (ranges, choices) for its
own group; trainer/config/checks.py runs them all plus the checks that span groups.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from schedulers.choice import StrChoice
from trainer.config.rules import _at_least, _finite, _require, _sampled
from trainer.errors import ConfigError


class Choice(StrChoice):
    """The allowed values of a choice key, as its field's type: OmegaConf refuses any other value at composition
    (trainer/cli words it as one line naming the key and these values). A member is its value: it compares,
    hashes, prints, formats and serializes as that string."""


Task = Choice.of("Task", ("train", "lr_find", "schedule", "eval", "toy"), __name__)
Precision = Choice.of("Precision", ("auto", "fp32", "bf16", "fp16"), __name__)
LoggerMode = Choice.of("LoggerMode", ("auto", "online", "offline", "disabled"), __name__)
LRFindMode = Choice.of("LRFindMode", ("exp", "linear"), __name__)
LRFindRule = Choice.of("LRFindRule", ("half_drop", "steepest", "min_div10", "valley"), __name__)
EvalCheckpoint = Choice.of("EvalCheckpoint", ("last", "best"), __name__)  # checkpoint.pt, or best.pt
Monitor = Choice.of("Monitor", ("val_acc", "val_loss"), __name__)  # a validation figure
ToyFunction = Choice.of("ToyFunction", ("quadratic", "rosenbrock", "beale"), __name__)
# the reader of your own data (dataset=image_folder, torchvision, tensors)
DatasetFormat = Choice.of("DatasetFormat", ("image_folder", "torchvision", "tensors"), __name__)

TASKS = Task.values()
TOY_FUNCTIONS = ToyFunction.values()
TOY_MAX_STEPS = 100_000  # every point of every trajectory goes into toy.json
EVAL_CHECKPOINTS = EvalCheckpoint.values()  # checkpoint.pt (the last epoch) or best.pt (the epoch chosen on validation)
DEVICES = "auto, cpu, cuda or cuda:N"
PRECISIONS = Precision.values()
LOGGER_MODES = LoggerMode.values()
LR_FIND_RULES = LRFindRule.values()
# What a key means beyond its value, declared once on its field with roles(...); keys_with(role) lists them:
NEUTRAL = "neutral"  # it cannot change a run's numbers: it may differ between an interruption and its resume
PER_ARM = "per arm"  # it may differ between the arms of one stack (hydra/launcher=stacked); all other keys may not
EVAL_SETS = "eval sets"  # task=eval may set it: it changes where and how an evaluation runs, not what it evaluates
EVAL_IGNORES = "eval ignores"  # task=eval does not use it: the command line's value is neither compared nor used
BRANCHES = "branches"  # a branch (branch.parent) may set it apart from its parent: the schedule, the run's length


def roles(*names: str, **kwargs):
    """A schema field with its roles (NEUTRAL, PER_ARM, EVAL_SETS, EVAL_IGNORES, BRANCHES)."""
    return field(metadata={"roles": frozenset(names)}, **kwargs)


LENET_MIN_IMAGE_SIZE = 12  # conv k5 pad2, pool 2, conv k5, pool 2: ((12 // 2) - 4) // 2 = 1 pixel left
SEED_LIMIT = 2**32  # numpy's seed range


@dataclass
class ImageDatasetConfig:
    name: str = "fashion_mnist"
    channels: int = 1
    image_size: int = 28
    num_classes: int = 10
    root: str | None = roles(EVAL_SETS, default=None)  # None: $SCHEDLAB_DATA, else ~/.cache/schedlab/data
    download: bool = roles(EVAL_SETS, default=True)
    normalize: bool = True
    # held out of the training split, stratified by class: a count (>= 1) or a fraction (< 1); 0: none.
    # 5,000 of Fashion-MNIST's / MNIST's 60,000 and CIFAR-10's 50,000 (Lightning's MNIST convention)
    val_size: float = 5000
    split_seed: int = 0  # which examples are held out: the same for every seed and arm of a sweep

    def check(self) -> None:
        _finite(self, "dataset")
        _at_least("dataset.channels", self.channels, 1)
        _at_least("dataset.image_size", self.image_size, 1)
        _at_least("dataset.num_classes", self.num_classes, 1)
        _require(self.val_size >= 0, "dataset.val_size", self.val_size, "must be >= 0: a count, a fraction (< 1) or 0")
        _require(
            self.val_size < 1 or self.val_size == int(self.val_size),
            "dataset.val_size",
            self.val_size,
            "must be a whole count of examples, or a fraction below 1",
        )
        _require(0 <= self.split_seed < SEED_LIMIT, "dataset.split_seed", self.split_seed, "must be in [0, 2**32)")


@dataclass
class SyntheticDatasetConfig(ImageDatasetConfig):
    name: str = "synthetic"
    # 64 batches of 256 an epoch: enough steps for the d2l LeNet at SGD 0.3 to learn it in two epochs
    train_size: int = 16384
    test_size: int = 2048
    val_size: float = 0.0833  # 1/12: Fashion-MNIST's share (5,000 of 60,000)
    noise: float = 0.35
    generator_seed: int = 1234

    def check(self) -> None:
        super().check()
        _require(self.test_size >= 1, "dataset.test_size", self.test_size, "must be >= 1")
        _require(self.noise >= 0, "dataset.noise", self.noise, "must be >= 0")


# Your own data (README "Your own model, data and schedule"): read by trainer/data.py by `format`, which the
# option sets; held on the device, split and normalized as the shipped sets are. Their files are checked here,
# before any data is loaded, where that is cheap (an image folder's class folders, a tensors file's keys, dtypes
# and shapes); a root or path left unset, and what only the loaded data tells, are refused once loaded.
Layout = Choice.of("Layout", ("NCHW", "NHWC"), __name__)


@dataclass
class OwnDatasetConfig(ImageDatasetConfig):
    option: ClassVar[str] = ""
    format: DatasetFormat = DatasetFormat.image_folder  # the reader: fixed by the option (its schema's default)
    val_size: float = 0.1  # a fraction: right for any size

    def check(self) -> None:
        super().check()
        _require(
            self.format == self.option,
            "dataset.format",
            self.format,
            f"it is set by the option: use dataset={self.format} for that format",
        )


@dataclass
class ImageFolderDatasetConfig(OwnDatasetConfig):
    """dataset=image_folder dataset.root=DIR: DIR/train/<class>/<image> and DIR/test/<class>/<image> (torchvision's
    ImageFolder layout; the sorted class folder names of train/ are the labels 0, 1, ...), every image converted
    to grey (channels 1) or RGB (3) and resized to image_size x image_size once, when it is loaded."""

    option: ClassVar[str] = "image_folder"
    name: str = "image_folder"
    format: DatasetFormat = DatasetFormat.image_folder
    channels: int = 3
    image_size: int = 32

    def check(self) -> None:
        super().check()
        _require(
            self.channels in (1, 3),
            "dataset.channels",
            self.channels,
            "must be 1 (images converted to grey) or 3 (to RGB)",
        )
        if self.root is not None and not _sampled("dataset"):
            from trainer.data import check_image_folder

            check_image_folder(self)


@dataclass
class TorchvisionDatasetConfig(OwnDatasetConfig):
    """dataset=torchvision dataset.name=SVHN: a classification set of torchvision.datasets by its class name, in
    dataset.root (downloaded there with dataset.download and a network); its `train` argument (True / False) or
    its `split` (train_split / test_split) gives the two splits. FakeData (the default) needs no files."""

    option: ClassVar[str] = "torchvision"
    name: str = "FakeData"
    format: DatasetFormat = DatasetFormat.torchvision
    channels: int = 3
    image_size: int = 32
    train_split: str = "train"  # the `split` argument of sets that have one (SVHN, STL10, Flowers102, ...)
    test_split: str = "test"
    kwargs: dict[str, Any] = field(default_factory=dict)  # the class's other arguments (EMNIST: split=digits)

    def check(self) -> None:
        super().check()
        if not _sampled("dataset"):
            from trainer.data import check_torchvision_name

            check_torchvision_name(self)


@dataclass
class TensorsDatasetConfig(OwnDatasetConfig):
    """dataset=tensors dataset.path=FILE: a .pt (torch.save of a dict) or .npz (numpy.savez) file holding
    train_images, train_labels, test_images, test_labels; images uint8 (0..255) or floats in [0, 1], N x C x H x W
    (layout NCHW) or N x H x W x C (NHWC), or N x H x W for one channel; labels integers 0..num_classes-1."""

    option: ClassVar[str] = "tensors"
    name: str = "tensors"
    format: DatasetFormat = DatasetFormat.tensors
    path: str | None = None
    layout: Layout = Layout.NCHW

    def check(self) -> None:
        super().check()
        if self.path is not None and not _sampled("dataset"):
            from trainer.data import check_tensor_file

            check_tensor_file(self)


@dataclass
class ModelConfig:
    _target_: str = "trainer.models.LeNet"
    in_channels: int = 1
    num_classes: int = 10

    def check(self) -> None:
        _finite(self, "model")
        _at_least("model.in_channels", self.in_channels, 1)
        _at_least("model.num_classes", self.num_classes, 1)


@dataclass
class LeNetConfig(ModelConfig):
    image_size: int = 28

    def check(self) -> None:
        super().check()
        _at_least(
            "model.image_size",
            self.image_size,
            LENET_MIN_IMAGE_SIZE,
            f"must be >= {LENET_MIN_IMAGE_SIZE}: LeNet's two conv+pool stages leave no pixel of a smaller image",
        )


@dataclass
class MLPConfig(ModelConfig):
    _target_: str = "trainer.models.MLP"
    image_size: int = 28
    hidden: list[int] = field(default_factory=lambda: [256, 128])
    dropout: float = 0.0

    def check(self) -> None:
        super().check()
        _at_least("model.image_size", self.image_size, 1)
        for i, width in enumerate(self.hidden):
            _at_least(f"model.hidden[{i}]", width, 1, "must be >= 1 (a layer width)")
        _require(0 <= self.dropout < 1, "model.dropout", self.dropout, "must be in [0, 1)")


@dataclass
class ResNetConfig(ModelConfig):
    _target_: str = "trainer.models.ResNet"
    widths: list[int] = field(default_factory=lambda: [16, 32, 64])
    blocks_per_stage: int = 1

    def check(self) -> None:
        super().check()
        _require(len(self.widths) >= 1, "model.widths", self.widths, "must list at least one stage width")
        for i, width in enumerate(self.widths):
            _at_least(f"model.widths[{i}]", width, 1, "must be >= 1 (a stage width)")
        _at_least("model.blocks_per_stage", self.blocks_per_stage, 1)


@dataclass
class CustomModelConfig(ModelConfig):
    """model=custom model._target_=<module>.<Class>: your own nn.Module class (or a function returning one),
    importable from PYTHONPATH. Its constructor gets those of in_channels, image_size and num_classes (the
    dataset's, by conf/model/custom.yaml's interpolations) that it names as parameters, and `kwargs`, its own
    arguments (which win). Imported, built and run on a zero batch of the dataset's shape when the config is
    checked, before any data is loaded; on a batch of the data, on the run's device, once it is loaded."""

    image_size: int = 28
    kwargs: dict[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        super().check()
        _at_least("model.image_size", self.image_size, 1)
        if not _sampled("model", "dataset"):
            from trainer.models import check_model

            check_model(self._target_, self.kwargs, self.in_channels, self.image_size, self.num_classes)


@dataclass
class OptimizerConfig:
    _target_: str = "torch.optim.SGD"
    _partial_: bool = True
    lr: float = 0.1
    weight_decay: float = 0.0
    # torch's implementation switch (the benchmarks time it); None: torch picks, as it does by default
    foreach: bool | None = None
    # param groups (schedulers.param_groups): weight_decay 0 for every parameter of a normalization layer
    # (BatchNorm, LayerNorm, GroupNorm, ...) and every bias, the usual AdamW recipe
    no_decay_norm_and_bias: bool = False
    # module-name prefix -> factor of lr for the parameters under it ({features.0: 0.1}); the longest prefix
    # that holds a parameter decides; every schedule keeps each group at its factor of group 0. Any, not a
    # typed dict: Hydra's struct mode refuses new keys in a dict field, so `optimizer.lr_multipliers={...}` sets it
    lr_multipliers: Any = None

    def check(self) -> None:
        _finite(self, "optimizer")
        _require(self.lr > 0, "optimizer.lr", self.lr, "must be > 0")
        self.non_negative("weight_decay")
        multipliers = self.lr_multipliers
        _require(
            multipliers is None or isinstance(multipliers, dict),
            "optimizer.lr_multipliers",
            multipliers,
            "must be null or a mapping of module-name prefixes to factors of optimizer.lr, e.g. {features.0:0.1}",
        )
        for prefix, factor in (multipliers or {}).items():
            key = f"optimizer.lr_multipliers[{prefix}]"
            _require(
                bool(str(prefix).strip()),
                key,
                factor,
                "a prefix names a module (e.g. features.0); the whole model's LR is optimizer.lr",
            )
            number = isinstance(factor, (int, float)) and not isinstance(factor, bool)
            _require(number and 0 < factor < float("inf"), key, factor, "must be > 0 (a factor of optimizer.lr)")

    def hyperparameters(self) -> dict[str, float | None]:
        """The values a schedule can drive besides the LR (scheduler.momentum, beta2, weight_decay), as this
        optimizer's config sets them; None where the optimizer has no such knob."""
        betas = getattr(self, "betas", None)
        momentum = betas[0] if betas is not None else getattr(self, "momentum", None)
        return {
            "momentum": momentum,
            "beta2": betas[1] if betas is not None else None,
            "weight_decay": self.weight_decay,
        }

    def non_negative(self, *names: str) -> None:
        for name in names:
            _require(getattr(self, name) >= 0, f"optimizer.{name}", getattr(self, name), "must be >= 0")


@dataclass
class FusedOptimizerConfig(OptimizerConfig):
    """An optimizer torch also has as a fused kernel (SGD, Adam, AdamW, Adagrad; not Adadelta or RMSprop)."""

    fused: bool | None = None


@dataclass
class SGDConfig(FusedOptimizerConfig):
    momentum: float = 0.0
    dampening: float = 0.0
    nesterov: bool = False

    def check(self) -> None:
        super().check()
        _require(0 <= self.momentum < 1, "optimizer.momentum", self.momentum, "must be in [0, 1)")
        _require(
            not self.nesterov or self.momentum > 0,
            "optimizer.nesterov",
            self.nesterov,
            "needs optimizer.momentum > 0",
            needs=("optimizer.momentum",),
        )
        _require(0 <= self.dampening <= 1, "optimizer.dampening", self.dampening, "must be in [0, 1]")


@dataclass
class AdamConfig(FusedOptimizerConfig):
    _target_: str = "torch.optim.Adam"
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8

    def check(self) -> None:
        super().check()
        for i, b in enumerate(self.betas):
            _require(0 <= b < 1, f"optimizer.betas[{i}]", b, "must be in [0, 1)")
        self.non_negative("eps")


# The adaptive optimizers: each coordinate's step is the LR divided by a running size of its own gradients.
# Defaults are torch's. What `lr` means differs: Adagrad's and RMSprop's is the step size, as for Adam;
# Adadelta's multiplies an update that already has the parameters' units (its paper has no LR: 1.0).


@dataclass
class AdagradConfig(FusedOptimizerConfig):
    _target_: str = "torch.optim.Adagrad"
    lr: float = 0.01
    lr_decay: float = 0.0  # torch's own decay, lr / (1 + (step - 1) lr_decay), on top of any schedule
    initial_accumulator_value: float = 0.0
    eps: float = 1e-10

    def check(self) -> None:
        super().check()
        self.non_negative("lr_decay", "initial_accumulator_value", "eps")


@dataclass
class AdadeltaConfig(OptimizerConfig):
    _target_: str = "torch.optim.Adadelta"
    lr: float = 1.0  # a multiplier of the update (1.0: the paper's Adadelta); a schedule scales it from here
    rho: float = 0.9
    eps: float = 1e-6

    def check(self) -> None:
        super().check()
        _require(0 <= self.rho <= 1, "optimizer.rho", self.rho, "must be in [0, 1]")
        self.non_negative("eps")


@dataclass
class RMSpropConfig(OptimizerConfig):
    _target_: str = "torch.optim.RMSprop"
    lr: float = 0.01
    alpha: float = 0.99  # the smoothing of the squared gradients' running average
    eps: float = 1e-8
    momentum: float = 0.0  # onecycle and cyclic cycle it, as torch's schedulers do
    centered: bool = False

    def check(self) -> None:
        super().check()
        _require(0 <= self.alpha <= 1, "optimizer.alpha", self.alpha, "must be in [0, 1]")
        _require(0 <= self.momentum < 1, "optimizer.momentum", self.momentum, "must be in [0, 1)")
        self.non_negative("eps")


# Schedule-free SGD and AdamW (Defazio et al. 2024; the `schedulefree` package, defaults its own): they replace
# the schedule, averaging their iterates instead of annealing the LR, so they run at a constant LR, with a
# warmup at most (SCHEDULE_FREE_SCHEDULES). Their train() / eval() switch wraps every evaluation and checkpoint.
SCHEDULE_FREE_SCHEDULES = "scheduler=constant, with a warmup if wanted (scheduler.warmup.epochs)"


@dataclass
class ScheduleFreeConfig(OptimizerConfig):
    # plain lists, not OmegaConf's: the package keeps betas as given, and a checkpoint holds only plain types
    _convert_: str = "all"
    warmup_steps: int = 0  # the package's own linear warmup, in optimizer steps (or scheduler.warmup, in epochs)
    r: float = 0.0  # the average weights step k by k^r
    weight_lr_power: float = 2.0  # ... and by the LR^weight_lr_power reached so far (warmup steps weigh less)
    foreach: bool | None = True  # the package's default; null and false: a loop over the parameters

    def check(self) -> None:
        super().check()
        self.non_negative("warmup_steps", "r", "weight_lr_power")


@dataclass
class SGDScheduleFreeConfig(ScheduleFreeConfig):
    option: ClassVar[str] = "sgd_schedulefree"
    _target_: str = "schedulefree.SGDScheduleFree"
    lr: float = 1.0
    momentum: float = 0.9  # the interpolation between the average x and the SGD iterate z

    def check(self) -> None:
        super().check()
        _require(0 < self.momentum < 1, "optimizer.momentum", self.momentum, "must be in (0, 1)")


@dataclass
class AdamWScheduleFreeConfig(ScheduleFreeConfig):
    option: ClassVar[str] = "adamw_schedulefree"
    _target_: str = "schedulefree.AdamWScheduleFree"
    lr: float = 0.0025
    betas: tuple[float, float] = (0.9, 0.999)  # beta1: the interpolation, as SGDScheduleFree's momentum
    eps: float = 1e-8

    def check(self) -> None:
        super().check()
        _require(0 < self.betas[0] < 1, "optimizer.betas[0]", self.betas[0], "must be in (0, 1)")
        _require(0 <= self.betas[1] < 1, "optimizer.betas[1]", self.betas[1], "must be in [0, 1)")
        self.non_negative("eps")


@dataclass
class DivergenceConfig:
    check_every: int = 50  # steps between host reads of the loss (one sync each)
    factor: float = 10.0  # diverged when loss > factor x the first step's loss (or not finite)

    def check(self) -> None:
        _finite(self, "trainer.divergence")
        _require(self.check_every >= 1, "trainer.divergence.check_every", self.check_every, "must be >= 1")
        _require(self.factor > 1, "trainer.divergence.factor", self.factor, "must be > 1")


@dataclass
class EarlyStoppingConfig:
    patience: int | None = None  # epochs without improvement of `monitor` before the run stops; null: never
    monitor: Monitor = Monitor.val_acc  # a validation figure: val_acc (higher is better) or val_loss (lower is better)
    min_delta: float = 0.0  # the smallest change that counts as an improvement

    def check(self) -> None:
        _finite(self, "trainer.early_stopping")
        if self.patience is not None:
            _require(
                self.patience >= 1,
                "trainer.early_stopping.patience",
                self.patience,
                "must be >= 1 or null (never stop early)",
            )
        _require(self.min_delta >= 0, "trainer.early_stopping.min_delta", self.min_delta, "must be >= 0")


@dataclass
class TrainerConfig:
    epochs: int = roles(BRANCHES, default=30)
    batch_size: int = 256
    eval_batch_size: int = roles(EVAL_SETS, default=2048)
    device: str = roles(EVAL_SETS, default="auto")
    precision: Precision = roles(EVAL_SETS, default=Precision.auto)
    channels_last: bool = roles(
        EVAL_SETS, default=True
    )  # ~10 % faster fp32 LeNet epochs on CPU; bf16 needs it (benchmarks/README.md)
    num_threads: int | None = roles(EVAL_SETS, default=None)  # torch CPU threads; None: torch's default (one per core)
    compile: bool = roles(EVAL_IGNORES, default=False)
    max_steps_per_epoch: int | None = None  # cap the batches of an epoch (smoke runs)
    deterministic: bool = False
    progress: bool = roles(NEUTRAL, PER_ARM, EVAL_IGNORES, default=True)
    checkpoint: bool = roles(NEUTRAL, EVAL_IGNORES, default=True)
    lr_find: bool = roles(
        PER_ARM, EVAL_IGNORES, default=False
    )  # run the LR range test first and train with its suggestion
    # snapshot ensembles (Huang et al. 2017): the model saved at the end of every cycle of a restarting schedule
    # (cosine_restarts, cyclic) into snapshots/, and the ensemble of the last ones evaluated after each
    snapshots: bool = False
    snapshot_every: int | None = None  # epochs between snapshots, whatever the schedule; null: its cycle ends
    snapshot_ensemble: int | None = None  # how many of the last snapshots the ensemble averages; null: all
    # weight averages evaluated beside the raw weights after every epoch (trainer/engine/averages.py): an exponential
    # moving average of the weights with this decay, updated after every optimizer step (ema_* figures); null: none
    ema: float | None = roles(EVAL_IGNORES, default=None)
    # the epoch from which an equal-weight average of the end-of-epoch weights is taken (SWA, tail averaging),
    # updated at the end of every epoch from this one on (swa_* figures); null: none
    swa_start: int | None = roles(EVAL_IGNORES, default=None)
    # epochs whose end-of-epoch state is kept as checkpoints/epoch_NNN.pt besides checkpoint.pt (the same state,
    # written atomically): what branch.parent / branch.epoch start a new run from (a WSD run's cooldowns)
    keep_checkpoints: list[int] = roles(NEUTRAL, EVAL_IGNORES, default_factory=list)
    # examples of the training part evaluated at each epoch's end (evenly spread, the same every epoch and arm): the
    # honest train accuracy and gap (train_eval_acc, eval_gap) beside the running average of the epoch; 0: none
    train_eval_size: int = roles(EVAL_IGNORES, default=5000)
    divergence: DivergenceConfig = roles(PER_ARM, EVAL_IGNORES, default_factory=DivergenceConfig)
    early_stopping: EarlyStoppingConfig = roles(PER_ARM, default_factory=EarlyStoppingConfig)

    def check(self) -> None:
        _require(self.epochs >= 1, "trainer.epochs", self.epochs, "must be an integer >= 1")
        _require(self.batch_size >= 1, "trainer.batch_size", self.batch_size, "must be an integer >= 1")
        _require(self.eval_batch_size >= 1, "trainer.eval_batch_size", self.eval_batch_size, "must be >= 1")
        if self.max_steps_per_epoch is not None:
            _require(
                self.max_steps_per_epoch >= 1,
                "trainer.max_steps_per_epoch",
                self.max_steps_per_epoch,
                "must be >= 1 or null",
            )
        _require(
            bool(re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.device)), "trainer.device", self.device, f"use {DEVICES}"
        )
        if self.num_threads is not None:
            _require(
                self.num_threads >= 1, "trainer.num_threads", self.num_threads, "must be >= 1 or null (one per core)"
            )
        if self.snapshot_every is not None:
            _at_least(
                "trainer.snapshot_every",
                self.snapshot_every,
                1,
                "must be >= 1 (epochs) or null (the schedule's cycle ends)",
            )
        if self.snapshot_ensemble is not None:
            _at_least(
                "trainer.snapshot_ensemble", self.snapshot_ensemble, 1, "must be >= 1 (snapshots) or null (all of them)"
            )
        if self.ema is not None:
            _require(
                0 < self.ema < 1, "trainer.ema", self.ema, "must be a decay in (0, 1), e.g. 0.999, or null (no EMA)"
            )
        if self.swa_start is not None:
            _require(
                1 <= self.swa_start <= self.epochs,
                "trainer.swa_start",
                self.swa_start,
                f"must be an epoch in [1, trainer.epochs={self.epochs}] (the first epoch averaged), or null (no SWA)",
                needs=("trainer.epochs",),
            )
        for i, epoch in enumerate(self.keep_checkpoints):
            _require(
                1 <= epoch <= self.epochs,
                f"trainer.keep_checkpoints[{i}]",
                epoch,
                f"must be an epoch in [1, trainer.epochs={self.epochs}] (its end-of-epoch state is kept)",
                needs=("trainer.epochs",),
            )
        _at_least(
            "trainer.train_eval_size",
            self.train_eval_size,
            0,
            "must be >= 0 (examples; 0: no end-of-epoch train figures)",
        )
        self.divergence.check()
        self.early_stopping.check()


@dataclass
class LoggerConfig:
    """No tracker: the local files only. Each option's `_target_` is the tracker class, built as
    instantiate(cfg.logger, config=cfg, run_dir=..., job=..., resume_id=...)."""

    _target_: str = "trainer.tracking.NullTracker"

    def check(self) -> None:
        _finite(self, "logger")


@dataclass
class WandbConfig(LoggerConfig):
    _target_: str = "trainer.tracking.WandbTracker"
    mode: LoggerMode = LoggerMode.auto
    project: str = "schedlab"
    entity: str | None = None
    tags: list[str] = field(default_factory=list)
    init_timeout: float = 30.0  # seconds before W&B is given up for this run
    finish_timeout: float = 120.0  # seconds to wait for W&B to close (upload) at the end of a run
    log_steps: bool = True  # per-step LR and loss, sent once per epoch

    def check(self) -> None:
        super().check()
        _require(self.init_timeout > 0, "logger.init_timeout", self.init_timeout, "must be > 0 seconds")
        _require(self.finish_timeout > 0, "logger.finish_timeout", self.finish_timeout, "must be > 0 seconds")


@dataclass
class TensorBoardConfig(LoggerConfig):
    _target_: str = "trainer.tracking.TensorBoardTracker"
    log_dir: str = "tensorboard"  # relative to the run folder
    log_steps: bool = True  # per-step LR and loss, written once per epoch

    def check(self) -> None:
        super().check()
        _require(
            bool(self.log_dir.strip()) and not self.log_dir.startswith("/"),
            "logger.log_dir",
            self.log_dir,
            "must be a folder relative to the run folder",
        )


@dataclass
class LRFindConfig:
    # 1e-5: sgd, momentum and adam leave the d2l LeNet's loss flat below it (benchmarks/lr_find_compare.py); one
    # epoch then spends ~36 steps a decade where the curve moves
    start_lr: float = 1e-5
    end_lr: float = 10.0
    num_steps: int | None = None  # None: one epoch
    mode: LRFindMode = LRFindMode.exp  # exp | linear
    beta: float = 0.98
    diverge_factor: float = 4.0
    suggestion: LRFindRule = (
        LRFindRule.half_drop
    )  # the middle of the descent: 1.4-3.4x below the best LR of sgd, momentum, adam

    def check(self) -> None:
        _finite(self, "lr_find")
        _require(
            0 < self.start_lr < self.end_lr,
            "lr_find.start_lr",
            self.start_lr,
            f"must be > 0 and below lr_find.end_lr ({self.end_lr})",
            needs=("lr_find.end_lr",),
        )
        _require(0 <= self.beta < 1, "lr_find.beta", self.beta, "must be in [0, 1)")
        _require(self.diverge_factor > 1, "lr_find.diverge_factor", self.diverge_factor, "must be > 1")
        if self.num_steps is not None:
            _require(self.num_steps >= 2, "lr_find.num_steps", self.num_steps, "must be >= 2 or null (one epoch)")


@dataclass
class SchedulePlotConfig:
    compare: list[str] = field(default_factory=list)  # other conf/scheduler options to overlay
    steps_per_epoch: int | None = None  # None: from the dataset size and batch size


@dataclass
class ToyConfig:
    """task=toy: optimizers and schedules on a 2-D test function, drawn over its contours. One toy step is one
    epoch of the schedule (horizons, milestones and warmups count steps)."""

    function: ToyFunction = ToyFunction.quadratic  # quadratic: (mu x^2 + L y^2) / 2; rosenbrock; beale
    condition: float = 100.0  # quadratic: kappa = L / mu, the ratio of its two curvatures
    curvature: float = 500.0  # quadratic: L, the larger curvature (gradient descent is stable for lr < 2 / L)
    start: list[float] | None = None  # [x, y]; null: the function's own starting point
    steps: int = 200
    compare: list[str] = field(default_factory=list)  # other optimizer options, or overrides, to overlay

    def check(self) -> None:
        _finite(self, "toy")
        _require(
            self.condition >= 1, "toy.condition", self.condition, "must be >= 1 (the larger curvature over the smaller)"
        )
        _require(self.curvature > 0, "toy.curvature", self.curvature, "must be > 0")
        if self.start is not None:
            _require(len(self.start) == 2, "toy.start", self.start, "must be a point [x, y]")
        _require(1 <= self.steps <= TOY_MAX_STEPS, "toy.steps", self.steps, f"must be in [1, {TOY_MAX_STEPS}]")

    def check_schedule(self, scheduler: Any, base_lr: float | None) -> None:
        """The schedule over `steps` epochs of one step each; a plateau steps on the function's value."""
        from schedulers import validate_schedule

        try:
            validate_schedule(scheduler, self.steps, base_lr=base_lr)
        except ConfigError as e:  # the run's length here is toy.steps
            raise ConfigError(str(e).replace("trainer.epochs", "toy.steps")) from None
        monitor = scheduler.get("monitor", "val_loss") if isinstance(scheduler, DictConfig) else "val_loss"
        _require(
            monitor == "val_loss",
            "scheduler.monitor",
            monitor,
            "task=toy reduces on the function's value, a loss: use val_loss",
            needs=("scheduler",),
        )


@dataclass
class EvalConfig:
    """task=eval resume=<run folder>: which of the folder's checkpoints to evaluate."""

    checkpoint: EvalCheckpoint = (
        EvalCheckpoint.last
    )  # last: checkpoint.pt; best: best.pt (checkpoint.pt where the run saved none)

    def check(self) -> None:
        """eval.checkpoint's type (EvalCheckpoint) is its check."""


@dataclass
class BranchConfig:
    """branch.parent=<run folder> branch.epoch=N: a new run from that run's state at the end of its epoch N (its
    checkpoints/epoch_NNN.pt, kept with trainer.keep_checkpoints, or its checkpoint.pt where that is epoch N's) with
    a schedule of its own, the cooldown of a WSD run. The branch's schedule starts at t = 0 there and spans epochs
    N+1..trainer.epochs (horizons, milestones and decay fractions follow that span); nothing but the schedule,
    trainer.epochs and the keys that cannot change a run's numbers may differ from the parent's config (checked
    against its checkpoint when the branch starts, before any data is loaded)."""

    parent: str | None = None  # the run folder to branch from
    epoch: int | None = None  # the parent's epoch whose end-of-epoch state the branch starts from

    def check(self, trainer: Any) -> None:
        """The keys and the parent folder's files (`trainer`: the run's TrainerConfig)."""
        if self.parent is None and self.epoch is None:
            return
        _require(
            self.parent is not None,
            "branch.epoch",
            self.epoch,
            "needs branch.parent=<run folder>: the run to branch from",
            needs=("branch.parent",),
        )
        _require(
            self.epoch is not None,
            "branch.parent",
            self.parent,
            "needs branch.epoch=N: the parent's epoch to branch at",
            needs=("branch.epoch",),
        )
        _require(
            1 <= self.epoch < trainer.epochs,
            "branch.epoch",
            self.epoch,
            f"must be an epoch in [1, trainer.epochs={trainer.epochs}): the branch trains the epochs after it",
            needs=("trainer.epochs",),
        )
        _require(
            not trainer.snapshots,
            "trainer.snapshots",
            trainer.snapshots,
            "a branch takes no snapshots (its ensemble would mix two schedules' cycles): set trainer.snapshots=false",
            needs=("branch",),
        )
        if _sampled("branch"):
            return
        from pathlib import Path

        from trainer.records import RunFolder

        folder = RunFolder(Path(self.parent), create=False)
        _require(
            folder.config.is_file(),
            "branch.parent",
            self.parent,
            "must be a schedlab run folder (one with a config.yaml) to branch from",
        )
        kept = folder.kept_epochs()
        _require(
            self.epoch in kept or folder.checkpoint.is_file(),
            "branch.epoch",
            self.epoch,
            f"{self.parent} holds no checkpoint of epoch {self.epoch} (it keeps "
            f"{', '.join(map(str, kept)) or 'none'}): run the parent with trainer.keep_checkpoints=[{self.epoch}]",
        )


@dataclass
class SchedlabConfig:
    dataset: Any = None
    model: Any = None
    optimizer: Any = roles(PER_ARM, default=None)
    scheduler: Any = roles(PER_ARM, BRANCHES, default=None)
    trainer: Any = None
    logger: Any = roles(NEUTRAL, PER_ARM, EVAL_IGNORES, default=None)
    task: Task = roles(EVAL_IGNORES, default=Task.train)
    seed: int = roles(PER_ARM, EVAL_IGNORES, default=0)
    resume: str | None = roles(NEUTRAL, EVAL_IGNORES, default=None)
    # the summary.json figure a sweep returns (Optuna optimizes it); null: none
    objective: str | None = roles(PER_ARM, EVAL_IGNORES, BRANCHES, default=None)
    # allow choices on the test set where there is no validation set (plateau on the test loss, the best
    # epoch by test accuracy, best_test_acc): for reproducing protocols that did so, never for new results
    select_on_test: bool = roles(EVAL_IGNORES, default=False)
    lr_find: LRFindConfig = roles(PER_ARM, EVAL_IGNORES, default_factory=LRFindConfig)
    schedule_plot: SchedulePlotConfig = roles(PER_ARM, EVAL_IGNORES, default_factory=SchedulePlotConfig)
    eval: EvalConfig = roles(PER_ARM, EVAL_IGNORES, default_factory=EvalConfig)
    toy: ToyConfig = roles(PER_ARM, EVAL_IGNORES, default_factory=ToyConfig)
    # a new run from another run's state at one of its epochs, with a schedule of its own (BranchConfig)
    branch: BranchConfig = roles(EVAL_IGNORES, BRANCHES, default_factory=BranchConfig)


# the schema each group's options share: where keys_with() finds the roles of a group's own keys
GROUP_SCHEMAS = {"trainer": TrainerConfig, "dataset": ImageDatasetConfig}


def keys_with(role: str, schema: type = SchedlabConfig, prefix: str = "") -> tuple[str, ...]:
    """Every dotted key whose field declares `role`, the top level's first, then each group's (trainer, dataset)."""
    own, nested = [], []
    for f in dataclasses.fields(schema):
        if role in f.metadata.get("roles", ()):
            own.append(prefix + f.name)
        elif sub := GROUP_SCHEMAS.get(f.name) if not prefix else None:
            nested.append((sub, f.name))
        elif dataclasses.is_dataclass(f.type if isinstance(f.type, type) else None):
            nested.append((f.type, f.name))
    order = list(GROUP_SCHEMAS)
    for sub, name in sorted(nested, key=lambda n: order.index(n[1]) if n[1] in order else len(order)):
        own += keys_with(role, sub, f"{prefix}{name}.")
    return tuple(own)


NEUTRAL_KEYS = keys_with(NEUTRAL)


def epochs_for_schedule(scheduler: Any, at_least: int) -> int:
    """The fewest epochs from `at_least` on that the schedule can run in (debug=fast: 2, or more where a warmup
    needs them); `at_least` when the schedule cannot run for another reason (validation then says which)."""
    from schedulers import validate_schedule

    for epochs in range(int(at_least), int(at_least) + 1000):
        try:
            validate_schedule(scheduler, epochs)
            return epochs
        except ConfigError as e:
            if "epochs" not in str(e):  # not a matter of the run's length
                return int(at_least)
        except Exception:  # an interpolation that cannot resolve yet: composition reports it
            return int(at_least)
    return int(at_least)


# (group, ConfigStore name, schema) of every group option's schema: conf/<group>/<option>.yaml starts with
# `defaults: [<name>, _self_]` (the scheduler's are the schedule library's, one per schedule)
SCHEMA_OPTIONS = [
    ("dataset", "image_dataset_schema", ImageDatasetConfig),
    ("dataset", "synthetic_dataset_schema", SyntheticDatasetConfig),
    ("dataset", "image_folder_dataset_schema", ImageFolderDatasetConfig),
    ("dataset", "torchvision_dataset_schema", TorchvisionDatasetConfig),
    ("dataset", "tensors_dataset_schema", TensorsDatasetConfig),
    ("model", "lenet_schema", LeNetConfig),
    ("model", "mlp_schema", MLPConfig),
    ("model", "resnet_schema", ResNetConfig),
    ("model", "custom_model_schema", CustomModelConfig),
    ("optimizer", "sgd_schema", SGDConfig),
    ("optimizer", "adam_schema", AdamConfig),
    ("optimizer", "adagrad_schema", AdagradConfig),
    ("optimizer", "adadelta_schema", AdadeltaConfig),
    ("optimizer", "rmsprop_schema", RMSpropConfig),
    ("optimizer", "sgd_schedulefree_schema", SGDScheduleFreeConfig),
    ("optimizer", "adamw_schedulefree_schema", AdamWScheduleFreeConfig),
    ("trainer", "trainer_schema", TrainerConfig),
    ("logger", "logger_schema", LoggerConfig),
    ("logger", "wandb_schema", WandbConfig),
    ("logger", "tensorboard_schema", TensorBoardConfig),
]


def register_configs() -> None:
    """Put every schema in Hydra's ConfigStore before composing; a later call finds them there and returns
    (storing the 42 schemas again costs a tenth of a second, which tests composing hundreds of configs pay)."""
    from schedulers.config import register_configs as register_schedule_configs

    # ${if_null:${resume},default}: a resumed run writes into the folder it resumes
    OmegaConf.register_new_resolver("if_null", lambda value, default: default if value is None else value, replace=True)
    # ${epochs_for_schedule:${scheduler},2}: conf/debug/fast.yaml's trainer.epochs
    OmegaConf.register_new_resolver("epochs_for_schedule", epochs_for_schedule, replace=True)
    cs = ConfigStore.instance()
    if "schedlab_schema.yaml" in cs.repo:
        return
    cs.store(name="schedlab_schema", node=SchedlabConfig)
    for group, name, node in SCHEMA_OPTIONS:
        cs.store(group=group, name=name, node=node)
    register_schedule_configs()
