"""What a run leaves in its folder: config.yaml, metrics.jsonl, steps.csv, summary.json, provenance.json,
checkpoint.pt. Every whole-file write is atomic (temp file + rename), so an interrupted run never leaves
a half-written file behind."""

from __future__ import annotations

import io
import json
import math
import os
import platform
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("torch", "torchvision", "hydra-core", "omegaconf", "wandb", "numpy", "matplotlib")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: write them as strings so every reader can parse the file."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(_finite(obj), indent=2) + "\n").encode())


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


def read_metrics(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def atomic_torch_save(path: Path, obj: Any) -> None:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


class RunFiles:
    """The files of one run folder."""

    def __init__(self, run_dir: Path):
        self.dir = Path(run_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.metrics = self.dir / "metrics.jsonl"
        self.steps = self.dir / "steps.csv"
        self.summary = self.dir / "summary.json"
        self.checkpoint = self.dir / "checkpoint.pt"

    def write_config(self, cfg) -> None:
        atomic_write_bytes(self.dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True).encode())

    def write_history(self, history: list[dict], steps: list[tuple]) -> None:
        """Rewrite metrics.jsonl and steps.csv from a checkpoint's records (on resume)."""
        atomic_write_bytes(self.metrics, "".join(json.dumps(_finite(r)) + "\n" for r in history).encode())
        atomic_write_bytes(self.steps, ("step,epoch,lr,loss\n" + "".join(_csv(s) for s in steps)).encode())

    def append_epoch(self, row: dict, steps: list[tuple]) -> None:
        with open(self.metrics, "a") as f:
            f.write(json.dumps(_finite(row)) + "\n")
        self.append_steps(steps)

    def append_steps(self, steps: list[tuple]) -> None:
        new = not self.steps.exists()
        with open(self.steps, "a") as f:
            f.write(("step,epoch,lr,loss\n" if new else "") + "".join(_csv(s) for s in steps))

    def write_summary(self, summary: dict) -> None:
        write_json(self.summary, summary)


def _csv(step: tuple) -> str:
    return ",".join(repr(v) for v in step) + "\n"


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


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


def provenance(cfg, device: torch.device, job: dict) -> dict:
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
        "seed": int(cfg.seed),
        "command": " ".join([sys.executable, *sys.argv]),
        "overrides": job.get("overrides", []),
    }
