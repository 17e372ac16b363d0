"""What both benchmarks share: the config as run.py composes it, the machine's description, peak-memory
resets, and the check that memory does not grow from epoch to epoch."""

from __future__ import annotations

import datetime
import gc
import os
import platform
import statistics
import subprocess
from pathlib import Path

import torch

from trainer.engine.setup import cpu_model

ROOT = Path(__file__).resolve().parents[1]
# Memory after the last epoch may exceed that after epoch 1 by at most this much. The RSS of a steady loop
# moves by up to ~35 MiB between epochs (allocator, DataLoader queues); a graph retained per step would add
# ~4 GiB per epoch (LeNet saves ~18 MiB of activations per batch of 256).
MEMORY_TOLERANCE_MB = 48.0
MEMORY_TOLERANCE_FRACTION = 0.05


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def hardware(device: torch.device) -> dict:
    """The machine and software a figure was taken on."""
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "device": str(device),
        "torch": torch.__version__,
        "cuda": torch.version.cuda if device.type == "cuda" else None,
        "python": platform.python_version(),
        "git_commit": git_commit(),
        "load_average_1min": os.getloadavg()[0],  # above ~0.5 before a run: something else shares the cores
    }


def reset_peak_memory(device: torch.device) -> bool:
    """Start a new peak: Linux resets the process's peak RSS (the ru_maxrss that fit() reports) when 5 is
    written to /proc/self/clear_refs. False where it cannot: the peaks are then those of the whole process."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def median_after_warmup(times: list[float]) -> float:
    """The median epoch time, the first epoch (warm-up) left out when there is more than one."""
    return statistics.median(times[1:] if len(times) > 1 else times)


def memory_check(rows: list[dict]) -> dict:
    """Memory after epoch 1 and after the last epoch; steady when each figure agrees within the tolerance.

    The peak alone is a weak check (loading the data sets it before the first step), so the current RSS,
    which a retained graph or tensor would raise epoch after epoch, is compared too."""
    first, last = rows[0], rows[-1]
    keys = ["peak_rss_mb", "rss_mb"] + (["cuda_peak_mb", "cuda_mb"] if "cuda_peak_mb" in first else [])
    out = {}
    for k in keys:
        out[f"{k}_epoch1"], out[f"{k}_last"] = first[k], last[k]
    out["growth_mb"] = {k: last[k] - first[k] for k in keys}
    out["steady"] = all(
        last[k] - first[k] <= max(MEMORY_TOLERANCE_MB, MEMORY_TOLERANCE_FRACTION * first[k]) for k in keys
    )
    return out
