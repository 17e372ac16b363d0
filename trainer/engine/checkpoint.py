"""checkpoint.pt: the state at the end of the last epoch (model, optimizer, schedule, grad scaler, every RNG, the
weight averages, the progress so far), saved atomically, and loaded only for the same config; the same state kept at
chosen epochs (checkpoints/epoch_NNN.pt, trainer.keep_checkpoints), which a branch starts from (branch.parent,
branch.epoch: loaded for the same config but its schedule and length); and the snapshots of a snapshot ensemble
(weights only)."""

from __future__ import annotations

import copy
import io
import random
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from schedulers import validate_schedule
from trainer.config import BRANCHES, NEUTRAL_KEYS, keys_with, resolved
from trainer.engine.schedulefree import averaged
from trainer.errors import ConfigError
from trainer.records import FINISHED, RunFolder, atomic_write_bytes


def comparable_config(cfg) -> dict:
    """The resolved config without the keys that may change between an interruption and a resume."""
    return without(resolved(cfg), NEUTRAL_KEYS)


def without(c: dict, keys) -> dict:
    """`c` (a config as a dict) with the dotted `keys` taken out, in place."""
    for key in keys:
        *parents, last = key.split(".")
        node = c
        for p in parents:
            node = node.get(p, {})
        node.pop(last, None)
    return c


def config_differences(a: dict, b: dict, prefix: str = "") -> list[str]:
    """The keys whose values differ between the config now (`a`) and a checkpoint's (`b`). A key the checkpoint
    does not have is newer than it: its default keeps what that version did, so it is not compared."""
    out = []
    for k in sorted(b):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += config_differences(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.append(f"{prefix}{k} ({vb!r} in the checkpoint, {va!r} now)")
    return out


def rng_state(generator: torch.Generator) -> dict:
    """Every RNG a run draws from, as tensors and plain values (a checkpoint loads with weights_only=True)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": (name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "shuffle": generator.get_state(),
    }


def set_rng_state(state: dict, generator: torch.Generator) -> None:
    random.setstate(state["python"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    generator.set_state(state["shuffle"])


def atomic_torch_save(path: Path, obj: Any) -> None:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def state_dict(cfg, *, model, optimizer, schedule, scaler, shuffle, progress: dict, tracker_id, averages=None) -> dict:
    """Everything a resume of one run needs. "model" holds the weights to evaluate: with a schedule-free optimizer,
    its averaged x (what task=eval and best.pt are for), and "train_model" the training weights y a resume
    continues from (x and z give y back only to the last bits); "averages" the weight averages (trainer.ema,
    trainer.swa_start: each one's weights and count) where the run keeps any."""
    with averaged(optimizer) as swapped:
        weights = {k: v.clone() for k, v in model.state_dict().items()} if swapped else model.state_dict()
    state = {
        "model": weights,
        "optimizer": optimizer.state_dict(),  # in train mode, as training goes on
        "schedule": schedule.state_dict(),
        "scaler": scaler.state_dict(),
        "rng": rng_state(shuffle),
        "state": progress,
        "config": comparable_config(cfg),
        "wandb_id": tracker_id,
        "num_threads": torch.get_num_threads(),
    }
    if swapped:
        state["train_model"] = model.state_dict()
    if averages:
        state["averages"] = averages.state_dict()
    return state


def save(folder: RunFolder, cfg, *, path: Path | None = None, **parts) -> None:
    """state_dict() to checkpoint.pt (or `path`: best.pt, the best epoch's state)."""
    atomic_torch_save(path or folder.checkpoint, state_dict(cfg, **parts))


def keep(folder: RunFolder, epoch: int, cfg, **parts) -> None:
    """checkpoints/epoch_NNN.pt: the state of checkpoint.pt at the end of epoch `epoch`, kept (trainer.keep_checkpoints)."""
    folder.checkpoints.mkdir(exist_ok=True)
    save(folder, cfg, path=folder.kept(epoch), **parts)


def save_snapshot(folder: RunFolder, epoch: int, model) -> None:
    """snapshots/epoch_NNN.pt: the model's weights (a state_dict, nothing else) at the end of epoch `epoch`, as
    copies (a stacked arm's weights are views of every arm's tensors)."""
    folder.snapshots.mkdir(exist_ok=True)
    atomic_torch_save(folder.snapshot(epoch), {k: v.detach().clone() for k, v in model.state_dict().items()})


def load_snapshot(folder: RunFolder, epoch: int, device) -> dict:
    return torch.load(folder.snapshot(epoch), map_location=device, weights_only=True)


def check_config(saved: dict, cfg, where: Path) -> None:
    """A checkpoint resumes only the config it was written for."""
    diff = config_differences(comparable_config(cfg), saved["config"])
    if diff:
        raise ConfigError(f"resume: {where} holds a checkpoint of a different config: {'; '.join(diff[:5])}")


def load(folder: RunFolder, cfg) -> dict | None:
    """The run folder's checkpoint, if any. The checkpoint is the commit point of a run: without one, rows
    in metrics.jsonl are those of an interrupted first epoch and the run starts again; a folder that holds a
    finished run is never written over, and a checkpoint of another config is an error."""
    if not folder.checkpoint.exists():
        if cfg.resume:
            raise ConfigError(f"resume={cfg.resume!r} holds no checkpoint.pt: point it at a run folder that has one")
        summary = folder.read_summary()
        if summary is not None and summary.status in FINISHED:
            raise ConfigError(f"{folder.dir} already holds the results of a run: choose a new output folder")
        return None
    checkpoint = read(folder.checkpoint, "config", "state", what="this folder's run")
    check_config(checkpoint, cfg, folder.dir)
    return checkpoint


# what a branch may change from its parent's config besides the NEUTRAL keys (the schema's BRANCHES role): its
# schedule, its length, the branch itself and the figure a sweep returns
BRANCH_MAY_CHANGE = keys_with(BRANCHES)


def _and(names) -> str:
    *rest, last = names
    return f"{', '.join(rest)} and {last}" if rest else last


def branch(cfg) -> dict | None:
    """The state a branch (branch.parent, branch.epoch = N) starts from, as a checkpoint to restore: its parent's at
    the end of epoch N (checkpoints/epoch_NNN.pt, or checkpoint.pt where that is epoch N's), without the schedule's
    position (the branch's own schedule starts at t = 0 there) or the tracker's run (the branch is a run of its own),
    its progress naming the parent (summary.json's `branch`). None for a run that is not a branch. A parent without
    that epoch's checkpoint, or one whose config differs in more than BRANCH_MAY_CHANGE and the NEUTRAL keys, is
    refused in one line, before any data is loaded."""
    b = cfg.branch
    if b.parent is None and b.epoch is None:
        return None
    b.check(cfg.trainer)
    parent = RunFolder(Path(b.parent), create=False)
    path = parent.kept(b.epoch) if parent.kept(b.epoch).is_file() else parent.checkpoint
    saved = read(path, "config", "state", "model", what="the parent")
    if saved["state"]["epoch"] != b.epoch:
        raise ConfigError(
            f"branch.epoch={b.epoch!r} is not allowed: {b.parent} holds no checkpoint of epoch {b.epoch} (its "
            f"checkpoint.pt is epoch {saved['state']['epoch']}'s): run the parent with trainer.keep_checkpoints=[{b.epoch}]"
        )
    may_change = list(BRANCH_MAY_CHANGE)
    parent_swa = saved["config"].get("trainer", {}).get("swa_start")
    if all(start is None or start > b.epoch for start in (parent_swa, cfg.trainer.swa_start)):
        may_change.append("trainer.swa_start")  # no SWA weights yet at the branch point: the branch may start its own
    diff = config_differences(
        without(comparable_config(cfg), may_change), without(copy.deepcopy(saved["config"]), may_change)
    )
    if diff:
        raise ConfigError(
            f"branch.parent={b.parent!r} is not allowed: its config differs from the branch's in "
            f"{'; '.join(d.replace('in the checkpoint', 'in the parent') for d in diff[:5])}: a branch may change only "
            f"{_and(k for k in BRANCH_MAY_CHANGE if k != 'branch')} (and {', '.join(NEUTRAL_KEYS)})"
        )
    shared = saved["state"]
    found = (shared.get("lr_find") or {}).get("lr")  # the parent's LR range test set the base LR
    span = cfg.trainer.epochs - b.epoch
    try:  # the branch's schedule runs over the epochs after the branch point
        validate_schedule(cfg.scheduler, span, base_lr=found or cfg.optimizer.lr, batch_size=cfg.trainer.batch_size)
    except ConfigError as e:
        raise ConfigError(
            str(e).replace("trainer.epochs", "the branch's epochs (trainer.epochs - branch.epoch)")
        ) from None
    record = {
        "parent": str(parent.dir.resolve()),
        "epoch": b.epoch,
        "shared_steps": shared["step"],
        "shared_wall_time_s": shared["elapsed"],
    }
    return {**saved, "schedule": None, "wandb_id": None, "branched": True, "state": {**shared, "branch": record}}


def read(path: Path, *keys: str, what: str) -> dict:
    """A checkpoint file that must hold `keys`, or one line saying it is damaged and how to start `what`
    again. weights_only=True: opening someone else's checkpoint cannot execute code."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        for key in keys:
            saved[key]  # noqa: B018 (a checkpoint without them is not schedlab's)
    except Exception as e:
        raise ConfigError(
            f"{path} cannot be loaded ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}): "
            f"it is damaged or not a schedlab checkpoint; delete it to run {what} again from the start"
        ) from None
    return saved


def restore(checkpoint: dict, *, model, optimizer, schedule, scaler, shuffle, averages=None) -> None:
    """Put the checkpoint's state into the run's parts (built as for a new run, threads already set)."""
    threads = checkpoint.get("num_threads")
    if threads is not None and threads != torch.get_num_threads():
        warnings.warn(
            f"resuming with {torch.get_num_threads()} CPU threads where the run had {threads}: its numbers may "
            "differ slightly from an uninterrupted run (set trainer.num_threads to match)",
            RuntimeWarning,
            stacklevel=2,
        )
    model.load_state_dict(checkpoint.get("train_model", checkpoint["model"]))
    optimizer.load_state_dict(checkpoint["optimizer"])
    # a branch's schedule has no position yet: its own start (t = 0), set again over the LR the optimizer's state held
    schedule.load_state_dict(schedule.state_dict() if checkpoint["schedule"] is None else checkpoint["schedule"])
    scaler.load_state_dict(checkpoint["scaler"])
    set_rng_state(checkpoint["rng"], shuffle)
    if averages:
        averages.load_state_dict(checkpoint.get("averages", {}))
