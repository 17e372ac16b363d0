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
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from trainer.config import register_configs, validate

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
# peak memory after the last epoch may exceed the peak after epoch 1 by at most this much
MEMORY_TOLERANCE_MB = 16.0
MEMORY_TOLERANCE_FRACTION = 0.02

register_configs()


def compose_config(overrides: list[str]):
    """The validated config run.py would train with for these overrides (without the hydra node)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=list(overrides))
    GlobalHydra.instance().clear()
    validate(cfg)
    return cfg


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


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
    """Peak memory after epoch 1 and after the last epoch; steady when they agree within the tolerance."""
    first, last = rows[0], rows[-1]
    out = {
        "peak_rss_mb_epoch1": first["peak_rss_mb"],
        "peak_rss_mb_last": last["peak_rss_mb"],
        "rss_mb_epoch1": first["rss_mb"],
        "rss_mb_last": last["rss_mb"],
    }
    pairs = [("peak_rss_mb", first["peak_rss_mb"], last["peak_rss_mb"])]
    if "cuda_peak_mb" in first:
        out.update(cuda_peak_mb_epoch1=first["cuda_peak_mb"], cuda_peak_mb_last=last["cuda_peak_mb"])
        out.update(cuda_mb_epoch1=first["cuda_mb"], cuda_mb_last=last["cuda_mb"])
        pairs.append(("cuda_peak_mb", first["cuda_peak_mb"], last["cuda_peak_mb"]))
    growth = {name: b - a for name, a, b in pairs}
    out["growth_mb"] = growth
    out["steady"] = all(
        g <= max(MEMORY_TOLERANCE_MB, MEMORY_TOLERANCE_FRACTION * a)
        for (_, a, _), g in zip(pairs, growth.values(), strict=True)
    )
    return out
