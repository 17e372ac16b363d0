"""Everything a run trains with, built the same way for training and for the LR range test: the device,
the precision, the seeds and threads, the data on the device, the model and the optimizer; and the
description of the machine that provenance.json and the benchmarks record."""

from __future__ import annotations

import os
import platform
import random
import resource
import socket
import subprocess
import sys
from contextlib import nullcontext
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.utils import instantiate

from trainer import data, models
from trainer.errors import ConfigError
from trainer.records import Job

DEFAULT_THREADS = torch.get_num_threads()
PROJECT_ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("torch", "torchvision", "hydra-core", "omegaconf", "wandb", "numpy", "matplotlib")


def resolve_device(name: str, job_num: int | None = None) -> torch.device:
    """auto: CUDA when there is one (job N of a parallel sweep takes GPU N mod the GPU count), else CPU."""
    if name == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        return torch.device("cuda", (job_num or 0) % torch.cuda.device_count())
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"trainer.device={name!r} is not available on this machine: use auto or cpu")
    return device


def resolve_precision(name: str, device: torch.device) -> str:
    if name == "auto":
        return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    return str(name)  # trainer.precision's Enum member as its plain value


def autocast(device: torch.device, precision: str):
    if precision == "fp32":
        return nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
    # off again for the next job of the same process; only where it changes: torch's first call of it takes seconds
    if torch.are_deterministic_algorithms_enabled() != deterministic:
        torch.use_deterministic_algorithms(deterministic)


@dataclass
class Setup:
    """What one run trains with."""

    device: torch.device
    precision: str
    amp: Any  # the autocast context (a nullcontext in fp32)
    train_set: data.DeviceDataset
    val_set: data.DeviceDataset | None  # None: dataset.val_size is 0
    test_set: data.DeviceDataset
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    # trainer.train_eval_size examples of the training part, evaluated at each epoch's end (the honest gap); None: 0
    train_eval_set: data.DeviceDataset | None = None


def build(cfg, job: Job, shared: Setup | None = None) -> Setup:
    """Seed, set the threads, pick the device and precision, load the data onto the device, build the model
    and its optimizer. `shared`: another run's setup whose device and data this one uses (a stack's arms)."""
    t = cfg.trainer
    seed_everything(cfg.seed, t.deterministic)
    torch.set_num_threads(t.num_threads or DEFAULT_THREADS)  # jobs of one process must not inherit it
    device = shared.device if shared else resolve_device(t.device, job.num)
    precision = resolve_precision(t.precision, device)
    if shared:
        train_set, val_set, test_set = shared.train_set, shared.val_set, shared.test_set
    else:
        train_set, val_set, test_set = data.load(cfg.dataset, device, t.channels_last)
        # a set whose size only its loading tells (trainer/data.py SIZE_UNKNOWN) is checked here
        if t.batch_size > len(train_set):
            raise ConfigError(
                f"trainer.batch_size={t.batch_size} is not allowed: must be at most the training set "
                f"size ({len(train_set)} for dataset={cfg.dataset.name})"
            )
    memory_format = torch.channels_last if t.channels_last else torch.preserve_format
    model = models.build_model(cfg.model).to(device, memory_format=memory_format)
    # before any training: the model on two examples of the data, on the run's device (one line if it fails)
    x, _ = next(train_set.batches(models.PROBE_BATCH))
    models.probe(model, x, cfg.dataset.num_classes, cfg.model._target_, autocast(device, precision))
    optimizer = build_optimizer(cfg.optimizer, model)
    train_eval_set = shared.train_eval_set if shared else train_set.fixed_subset(t.train_eval_size)
    return Setup(
        device, precision, autocast(device, precision), train_set, val_set, test_set, model, optimizer, train_eval_set
    )


# optimizer keys that shape the param groups (schedulers.groups), not arguments of the optimizer's class
GROUP_KEYS = ("lr_multipliers", "no_decay_norm_and_bias")


def build_optimizer(optimizer: Any, model: torch.nn.Module | Any) -> torch.optim.Optimizer:
    """The configured torch optimizer (conf/optimizer/<option>.yaml: a `_partial_` of its class) over `model`'s
    parameters, in the param groups optimizer.lr_multipliers and optimizer.no_decay_norm_and_bias ask for (one
    group when neither is set). `model`: an nn.Module, or an iterable of tensors (a model without modules)."""
    from schedulers import param_groups
    from trainer.config import resolved

    node = dict(resolved(optimizer))  # a copy: the group keys are taken out of it
    settings = {key: node.pop(key, None) for key in GROUP_KEYS}
    groups = param_groups(
        model,
        lr=node["lr"],
        weight_decay=node.get("weight_decay", 0.0),
        lr_multipliers=settings["lr_multipliers"],
        no_decay_norm_and_bias=settings["no_decay_norm_and_bias"] or False,
    )
    return instantiate(node)(groups if len(groups) > 1 else groups[0]["params"])


# --------------------------------------------------------------------------------- the machine


def memory_use(device: torch.device) -> dict:
    """Current and peak resident memory of this process (MiB), and the device's on CUDA."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    try:
        with open("/proc/self/statm") as f:
            rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:  # no /proc (macOS): the peak is the best figure there is
        rss = peak
    use = {"rss_mb": rss, "peak_rss_mb": peak}
    if device.type == "cuda":
        use["cuda_mb"] = torch.cuda.memory_allocated(device) / 2**20
        use["cuda_peak_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return use


def cpu_model() -> str:
    """The CPU's model name (platform.processor() is empty on Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_model()}, {torch.get_num_threads()} threads"


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def provenance(cfg, device: torch.device, job: Job) -> dict:
    """provenance.json: the code, the packages, the machine, the seed and the command of a run."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    status = _git("status", "--porcelain")
    return {
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": None if status is None else bool(status),
        "python": sys.version.split()[0],
        "packages": versions,
        "device": str(device),
        "device_name": device_name(device),
        "cuda": torch.version.cuda if device.type == "cuda" else None,
        "host": socket.gethostname(),
        "seed": cfg.seed,
        "command": " ".join([sys.executable, *sys.argv]),
        "overrides": job.overrides,
    }
