"""What more than one test file uses, in one place: every test imports its helpers from here (`from helpers
import ...`), never from another test file; conftest.py holds the fixtures.

Sections: configs and run.py (ROOT, CONF, FAST, compose_config, run_cli, stop_in_epoch, bad_input); data
(write_mnist); stacked sweeps (TINY, stacked, alone, assert_close); W&B offline run files (read_run,
find_run_files); report tables (cells_of); the schedule oracles (sgd, trace, run_ours, run_torch, ORACLES, ...).
What trains (trainer.engine, trainer.data) and wandb are imported where used, so that importing this module
stays cheap and touches nothing but the config layer.
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
import struct
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from torch.optim import lr_scheduler as tl

from schedulers import build_schedule
from trainer.cli import compose_config as _compose
from trainer.cli import precheck
from trainer.config import register_configs

# ------------------------------------------------------------------------------------ configs and run.py

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
# the synthetic set at an eighth of its default size, so that every test run takes seconds
FAST = [
    "dataset=synthetic",
    "dataset.train_size=2048",
    "dataset.test_size=512",
    "logger=none",
    "trainer.batch_size=128",
    "trainer.progress=false",
]

register_configs()


_COMPOSED: dict[tuple[str, ...], object] = {}


def compose_config(overrides: list[str] = ()):
    """The config run.py would see for these overrides (without the hydra node), unchecked: a copy of its
    own, composed by Hydra once per process for each list of overrides (conf/ does not change under a test)."""
    key = tuple(overrides)
    if key not in _COMPOSED:
        _COMPOSED[key] = _compose(overrides, check=False)
    return copy.deepcopy(_COMPOSED[key])


def run_cli(args: list[str], env: dict | None = None, timeout: float = 600, cwd: Path = ROOT):
    """python run.py ARGS in a subprocess; returns the CompletedProcess (text output)."""
    full_env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONUNBUFFERED": "1", **(env or {})}
    full_env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run(
        [sys.executable, str(ROOT / "run.py"), *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def readme_blocks(section: str, language: str = "bash") -> list[str]:
    """The code blocks in `language` of one README section (its ## heading), in order."""
    text = (ROOT / "README.md").read_text().split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"```{language}\n(.*?)```", text, re.S)


def stop_in_epoch(monkeypatch, run_dir: Path, epoch: int, error: type[BaseException] = KeyboardInterrupt):
    """Make fit() raise `error` at epoch `epoch`'s first evaluation (the epochs before it are committed);
    returns the real evaluate, to put back with monkeypatch.setattr(trainer.engine.fit, "evaluate", real)."""
    import trainer.engine.fit
    from trainer.records import read_metrics

    real = trainer.engine.fit.evaluate

    def evaluate(*args, **kwargs):
        if len(read_metrics(run_dir)) == epoch - 1:
            raise error(f"stopped in epoch {epoch}")
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer.engine.fit, "evaluate", evaluate)
    return real


def bad_input(capsys, *overrides: str) -> str:
    """The one line run.py's check prints for these overrides (it exits 2 before any work, having printed nothing
    else: no config node's `_target_` ran, no print of it reached stdout)."""
    with pytest.raises(SystemExit) as e:
        precheck(list(overrides))
    assert e.value.code == 2
    out, err = capsys.readouterr()
    err = err.strip()
    assert err.count("\n") == 0, f"expected one line, got:\n{err}"
    assert out == "", f"printed before the refusal:\n{out}"
    return err


# ------------------------------------------------------------------------------------------------- data


def write_mnist(root: Path, truncate: bool = False) -> None:
    """A small MNIST in torchvision's layout (root/MNIST/raw); `truncate` cuts the test images file short."""
    import numpy as np

    from trainer import data

    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, (images, labels) in data.IDX_FILES.items():
        n = 256 if split == "train" else 64
        data.write_idx(raw / images, rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        data.write_idx(raw / labels, rng.integers(0, 10, n, dtype=np.uint8))
    if truncate:
        path = raw / "t10k-images-idx3-ubyte"
        path.write_bytes(path.read_bytes()[:1000])


# --------------------------------------------------------------------------------------- stacked sweeps

TINY = [*FAST, "trainer.epochs=3", "trainer.max_steps_per_epoch=6", "trainer.num_threads=1"]


def stacked(tmp_path: Path, name: str, arms: list[list[str]], strategy: str, base=TINY):
    """The arms trained together by fit_stack into tmp_path/name/<i>; returns (summaries, folders)."""
    from trainer.engine.stack import fit_stack

    cfgs = [compose_config([*base, *a]) for a in arms]
    dirs = [tmp_path / name / str(i) for i in range(len(arms))]
    summaries = fit_stack(cfgs, dirs, [{}] * len(arms), strategy=strategy, state_path=tmp_path / name / "stack.pt")
    return summaries, dirs


def alone(tmp_path: Path, arms: list[list[str]], base=TINY):
    """Each arm run by itself into tmp_path/alone/<i>; returns the folders."""
    from trainer.engine.fit import fit

    dirs = [tmp_path / "alone" / str(i) for i in range(len(arms))]
    for a, d in zip(arms, dirs, strict=True):
        fit(compose_config([*base, *a]), d, {})
    return dirs


def assert_close(a: Path, b: Path, rel: float | None):
    """metrics.jsonl and steps.csv of two run folders: equal (rel None), or within rel; LRs always equal."""
    from trainer.records import RunFolder

    ma, mb = RunFolder(a).read_metrics(), RunFolder(b).read_metrics()
    sa, sb = RunFolder(a).read_steps(), RunFolder(b).read_steps()
    assert len(ma) == len(mb) and len(sa) == len(sb)
    assert [s.lr for s in sa] == [s.lr for s in sb]
    for x, y in zip(ma, mb, strict=True):
        for key in ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc", "lr", "lr_end"):
            if rel is None:
                assert getattr(x, key) == getattr(y, key), (key, x.epoch)
            else:
                assert math.isclose(getattr(x, key), getattr(y, key), rel_tol=rel, abs_tol=rel), (key, x.epoch)
    for x, y in zip(sa, sb, strict=True):
        assert x.loss == y.loss if rel is None else math.isclose(x.loss, y.loss, rel_tol=rel)


# ------------------------------------------------------------------------------- W&B offline run files
# Read back what an offline W&B run wrote: a .wandb file is a 7-byte header (':W&B', magic, version) then
# LevelDB-log blocks of 32 KiB; each chunk has a 7-byte header (crc32c, little-endian length, type) and the
# chunks of one record (FULL, or FIRST MIDDLE* LAST) hold one serialized `Record` protobuf.

FILE_HEADER = 7
BLOCK = 32768
CHUNK_HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def wandb_records(path: Path):
    """The Record protobufs of one .wandb file, in order."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    pos, pending = FILE_HEADER, b""
    while pos + CHUNK_HEADER <= len(data):
        left_in_block = BLOCK - pos % BLOCK
        if left_in_block < CHUNK_HEADER:  # block trailer: zero padding
            pos += left_in_block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + CHUNK_HEADER])
        chunk = data[pos + CHUNK_HEADER : pos + CHUNK_HEADER + length]
        pos += CHUNK_HEADER + length
        if kind == 0 and length == 0:
            continue
        if kind == FULL:
            pending = chunk
        elif kind == FIRST:
            pending = chunk
            continue
        elif kind == MIDDLE:
            pending += chunk
            continue
        elif kind == LAST:
            pending += chunk
        record = pb.Record()
        record.ParseFromString(pending)
        yield record


@dataclass
class OfflineRun:
    run: object | None = None  # wandb's RunRecord protobuf
    history: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    exit_code: int | None = None


def read_run(path: Path) -> OfflineRun:
    """The run record, history rows, summary and exit code of one .wandb file."""
    out = OfflineRun()
    for r in wandb_records(path):
        kind = r.WhichOneof("record_type")
        if kind == "run":
            out.run = r.run
        elif kind == "history":
            out.history.append({_key(i): json.loads(i.value_json) for i in r.history.item})
        elif kind == "summary":
            out.summary.update({_key(i): json.loads(i.value_json) for i in r.summary.update})
        elif kind == "exit":
            out.exit_code = r.exit.exit_code
    return out


def _key(item) -> str:
    return item.key or "/".join(item.nested_key)


def find_run_files(run_dir: Path) -> list[Path]:
    """The .wandb files of the offline W&B runs under a run folder."""
    return sorted(Path(run_dir).glob("wandb/offline-run-*/run-*.wandb"))


# -------------------------------------------------------------------------------------------- report


def cells_of(markdown: str, label: str) -> dict[str, str]:
    """A group's row of table.md by column header (bold kept)."""
    lines = markdown.splitlines()
    header = next(line for line in lines if line.startswith("| ") and " n |" in line)
    names = [c.strip() for c in header.strip("|").split(" | ")]
    row = next(line for line in lines if line.startswith(f"| {label} |"))
    return dict(zip(names, (c.strip() for c in row.strip("|").split(" | ")), strict=True))


# ------------------------------------------------------------------------------------ schedule oracles
# A run of EPOCHS x SPE optimizer steps from BASE, traced step by step, for schedlab's schedules and torch's
# own lr_scheduler classes (the oracles) alike.

BASE = 0.5
EPOCHS = 12
SPE = 5  # steps per epoch
UNITS = {"epoch": 1, "step": SPE}  # torch scheduler steps per epoch in each interval
INTERVALS = list(UNITS)
# a validation loss that improves, stalls, wobbles and improves again
LOSSES = [1.0, 0.9, 0.95, 0.95, 0.9, 0.91, 0.89999, 0.8, 0.85, 0.85, 0.85, 0.85, 0.7, 0.71, 0.72, 0.73]


def sgd(*lrs):
    """SGD with momentum, one param group per LR."""
    groups = [{"params": [torch.zeros(1, requires_grad=True)], "lr": lr} for lr in lrs or (BASE,)]
    return torch.optim.SGD(groups, lr=groups[0]["lr"], momentum=0.9)


def trace(optimizer, on_step, on_epoch, epochs, start=0):
    """The trainer's loop: LR and momentum of every param group before every optimizer step."""
    seen = []
    for epoch in range(start, epochs):
        for _ in range(SPE):
            seen.append([(g["lr"], g["momentum"]) for g in optimizer.param_groups])
            optimizer.step()
            on_step()
        on_epoch(epoch)
    return seen


def run_ours(cfg, interval, epochs=EPOCHS, optimizer=None, scheduler=None, start=0, losses=LOSSES):
    optimizer = optimizer or sgd()
    scheduler = scheduler or build_schedule({**cfg, "interval": interval}, optimizer, SPE, epochs)
    return trace(optimizer, scheduler.step_batch, lambda e: scheduler.step_epoch(losses[e]), epochs, start)


def run_torch(make, interval, epochs=EPOCHS, metrics=None):
    optimizer = sgd()
    scheduler = make(optimizer, UNITS[interval])

    def on_step():
        if interval == "step" and metrics is None:
            scheduler.step()

    def on_epoch(epoch):
        if metrics is not None:
            scheduler.step(metrics[epoch])
        elif interval == "epoch":
            scheduler.step()

    return trace(optimizer, on_step, on_epoch, epochs)


def lrs(seen, group=0):
    return [step[group][0] for step in seen]


def momenta(seen):
    return [step[0][1] for step in seen]


# each: (schedlab's config, a maker of torch's scheduler from (optimizer, scheduler steps per epoch))
ORACLES = {
    "step": ({"name": "step", "step_size": 3, "gamma": 0.5}, lambda o, u: tl.StepLR(o, 3 * u, gamma=0.5)),
    "multistep": (
        {"name": "multistep", "milestones": [3, 7], "gamma": 0.3},
        lambda o, u: tl.MultiStepLR(o, [3 * u, 7 * u], gamma=0.3),
    ),
    "exponential": ({"name": "exponential", "gamma": 0.8}, lambda o, u: tl.ExponentialLR(o, 0.8 ** (1 / u))),
    "cosine": (
        {"name": "cosine", "final_lr": 0.02, "horizon": EPOCHS},
        lambda o, u: tl.CosineAnnealingLR(o, T_max=EPOCHS * u, eta_min=0.02),
    ),
    "cosine_to_zero": (
        {"name": "cosine", "final_lr": 0.0, "horizon": None},
        lambda o, u: tl.CosineAnnealingLR(o, T_max=EPOCHS * u),
    ),
    "polynomial": (
        {"name": "polynomial", "power": 2.0, "end_lr": 0.0, "horizon": 8},
        lambda o, u: tl.PolynomialLR(o, total_iters=8 * u, power=2.0),
    ),
    "linear": (
        {"name": "linear", "start_factor": 1.0, "end_factor": 0.1, "horizon": 8},
        lambda o, u: tl.LinearLR(o, start_factor=1.0, end_factor=0.1, total_iters=8 * u),
    ),
    "linear_rising": (
        {"name": "linear", "start_factor": 0.25, "end_factor": 1.0, "horizon": 3},
        lambda o, u: tl.LinearLR(o, start_factor=0.25, end_factor=1.0, total_iters=3 * u),
    ),
    "onecycle": (
        {"name": "onecycle"},
        lambda o, u: tl.OneCycleLR(o, max_lr=BASE, total_steps=EPOCHS * u),
    ),
    "onecycle_three_phase_linear": (
        {"name": "onecycle", "three_phase": True, "anneal_strategy": "linear", "pct_start": 0.25, "div_factor": 10.0},
        lambda o, u: tl.OneCycleLR(
            o,
            max_lr=BASE,
            total_steps=EPOCHS * u,
            three_phase=True,
            anneal_strategy="linear",
            pct_start=0.25,
            div_factor=10.0,
        ),
    ),
    "cyclic_triangular": (
        {"name": "cyclic", "max_lr": 2.0, "step_size_up": 2, "step_size_down": 3},
        lambda o, u: tl.CyclicLR(o, BASE, 2.0, step_size_up=2 * u, step_size_down=3 * u),
    ),
    "cyclic_triangular2": (
        {"name": "cyclic", "max_lr": 2.0, "step_size_up": 1.5, "mode": "triangular2"},
        lambda o, u: tl.CyclicLR(o, BASE, 2.0, step_size_up=1.5 * u, mode="triangular2"),
    ),
    "cyclic_exp_range": (
        {"name": "cyclic", "max_lr": 2.0, "step_size_up": 2, "mode": "exp_range", "gamma": 0.7},
        lambda o, u: tl.CyclicLR(o, BASE, 2.0, step_size_up=2 * u, mode="exp_range", gamma=0.7 ** (1 / u)),
    ),
    "cosine_restarts": (
        {"name": "cosine_restarts", "T_0": 2, "T_mult": 2, "eta_min": 0.01},
        lambda o, u: tl.CosineAnnealingWarmRestarts(o, T_0=2 * u, T_mult=2, eta_min=0.01),
    ),
    "step_default_a_third_of_the_run": (
        {"name": "step", "gamma": 0.5},
        lambda o, u: tl.StepLR(o, EPOCHS // 3 * u, gamma=0.5),
    ),
    "multistep_default_half_and_three_quarters": (
        {"name": "multistep", "gamma": 0.3},
        lambda o, u: tl.MultiStepLR(o, [EPOCHS // 2 * u, EPOCHS * 3 // 4 * u], gamma=0.3),
    ),
    "multistep_fractions": (
        {"name": "multistep", "milestone_fractions": [0.25, 0.5, 0.75], "gamma": 0.5},
        lambda o, u: tl.MultiStepLR(o, [3 * u, 6 * u, 9 * u], gamma=0.5),
    ),
    "cosine_restarts_constant_period": (
        {"name": "cosine_restarts", "T_0": 5, "T_mult": 1, "eta_min": 0.0},
        lambda o, u: tl.CosineAnnealingWarmRestarts(o, T_0=5 * u),
    ),
    # the presets at their defaults: to 0 over the whole run
    "linear_to_zero_preset": (
        {"name": "linear_to_zero"},
        lambda o, u: tl.LinearLR(o, start_factor=1.0, end_factor=0.0, total_iters=EPOCHS * u),
    ),
    "cosine_to_zero_preset": ({"name": "cosine_to_zero"}, lambda o, u: tl.CosineAnnealingLR(o, T_max=EPOCHS * u)),
}

# ReduceLROnPlateau settings, each run on LOSSES against torch's
PLATEAUS = {
    "rel": {"patience": 1, "factor": 0.5, "threshold": 1e-2},
    "abs_cooldown_floor": {
        "patience": 0,
        "factor": 0.5,
        "threshold": 0.02,
        "threshold_mode": "abs",
        "cooldown": 2,
        "min_lr": 0.1,
    },
    "max": {"mode": "max", "patience": 2, "factor": 0.3, "threshold": 0.0},
}
