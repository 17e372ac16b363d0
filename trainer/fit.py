"""The training loop: read it top to bottom.

Speed habits (DESIGN.md section 3): the dataset lives on the device, batches come from a device randperm,
losses and correct counts accumulate on the device and are read once per epoch (plus one loss read every
`divergence.check_every` steps); bf16 autocast on CUDA, fp32 on CPU.
"""

from __future__ import annotations

import math
import os
import random
import resource
import time
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import OmegaConf
from tqdm.auto import tqdm

from schedulers import build_schedule
from trainer import data
from trainer.config import NEUTRAL_KEYS
from trainer.errors import ConfigError
from trainer.results import RunFiles, atomic_torch_save, device_name, provenance, read_json, write_json
from trainer.tracking import Tracker

DEFAULT_THREADS = torch.get_num_threads()


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
    return name


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
    torch.use_deterministic_algorithms(deterministic)  # off again for the next job of the same process


def rng_state(generator: torch.Generator) -> dict:
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "shuffle": generator.get_state(),
    }


def set_rng_state(state: dict, generator: torch.Generator) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    generator.set_state(state["shuffle"])


def comparable_config(cfg) -> dict:
    """The resolved config without the keys that may change between an interruption and a resume."""
    c = OmegaConf.to_container(cfg, resolve=True)
    for key in NEUTRAL_KEYS:
        *parents, last = key.split(".")
        node = c
        for p in parents:
            node = node.get(p, {})
        node.pop(last, None)
    return c


def config_differences(a: dict, b: dict, prefix: str = "") -> list[str]:
    keys = sorted(set(a) | set(b))
    out = []
    for k in keys:
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += config_differences(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.append(f"{prefix}{k} ({vb!r} in the checkpoint, {va!r} now)")
    return out


@torch.no_grad()
def evaluate(model, dataset: data.DeviceDataset, batch_size: int, amp) -> tuple[float, float]:
    model.eval()
    loss_sum = torch.zeros((), device=dataset.labels.device)
    correct = torch.zeros((), device=dataset.labels.device, dtype=torch.long)
    for x, y in dataset.batches(batch_size):
        with amp:
            out = model(x)
        loss_sum += F.cross_entropy(out.float(), y, reduction="sum")
        correct += (out.argmax(1) == y).sum()
    n = len(dataset)
    return loss_sum.item() / n, correct.item() / n


@dataclass
class Setup:
    """Everything a run trains with, built the same way for training and for the LR range test."""

    device: torch.device
    precision: str
    amp: Any
    train_set: data.DeviceDataset
    test_set: data.DeviceDataset
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer


def build(cfg, job: dict) -> Setup:
    t = cfg.trainer
    seed_everything(int(cfg.seed), bool(t.deterministic))
    torch.set_num_threads(int(t.num_threads or DEFAULT_THREADS))  # jobs of one process must not inherit it
    device = resolve_device(t.device, job.get("num"))
    precision = resolve_precision(t.precision, device)
    train_set, test_set = data.load(cfg.dataset, device, bool(t.channels_last))
    memory_format = torch.channels_last if t.channels_last else torch.preserve_format
    model = instantiate(cfg.model).to(device, memory_format=memory_format)
    optimizer = instantiate(cfg.optimizer)(model.parameters())
    return Setup(device, precision, autocast(device, precision), train_set, test_set, model, optimizer)


def read_checkpoint(files: RunFiles, cfg) -> dict | None:
    """The run folder's checkpoint, if any; one of another config is an error, not something to overwrite."""
    if not files.checkpoint.exists():
        if cfg.resume:
            raise ConfigError(f"resume={cfg.resume!r} holds no checkpoint.pt: point it at a run folder that has one")
        finished = files.summary.exists() and read_json(files.summary).get("status") in ("completed", "diverged")
        if finished or files.metrics.exists() and files.metrics.stat().st_size:
            raise ConfigError(f"{files.dir} already holds the results of a run: choose a new output folder")
        return None
    checkpoint = torch.load(files.checkpoint, map_location="cpu", weights_only=False)
    diff = config_differences(comparable_config(cfg), checkpoint["config"])
    if diff:
        raise ConfigError(f"resume: {files.dir} holds a checkpoint of a different config: {'; '.join(diff[:5])}")
    return checkpoint


def fit(cfg, run_dir: Path, job: dict | None = None) -> dict:
    """Train one run; write its results to run_dir; return its summary (status completed / diverged).
    An exception still leaves summary.json (status failed, the error) and the epochs already written."""
    job = job or {}
    files = RunFiles(run_dir)
    t = cfg.trainer
    checkpoint = read_checkpoint(files, cfg)  # before any data is loaded, so a mismatch fails fast
    state = {"epoch": 0, "step": 0, "history": [], "steps": [], "first_loss": None, "elapsed": 0.0, "lr_find": None}
    if checkpoint is not None:
        state = checkpoint["state"]
    summary = {
        "status": "running",
        "task": cfg.task,
        "seed": int(cfg.seed),
        "overrides": job.get("overrides", []),
        "started_at": datetime.now(timezone.utc).isoformat(),
    }
    files.write_config(cfg)
    files.write_history(state["history"], state["steps"])
    tracker = None
    exit_code = 1
    started = time.perf_counter() - state["elapsed"]
    try:
        tracker = Tracker(cfg, files.dir, job, resume_id=checkpoint.get("wandb_id") if checkpoint else None)
        run = build(cfg, job)
        model, optimizer, device = run.model, run.optimizer, run.device
        write_json(files.dir / "provenance.json", provenance(cfg, device, job))
        steps_per_epoch = run.train_set.num_batches(t.batch_size, t.max_steps_per_epoch)
        summary.update(
            device=str(device),
            device_name=device_name(device),
            precision=run.precision,
            epochs=int(t.epochs),
            steps_per_epoch=steps_per_epoch,
        )
        if t.lr_find and checkpoint is None:
            from trainer.lr_find import find_and_set_lr

            state["lr_find"] = find_and_set_lr(cfg, model, optimizer, run.train_set, files.dir, run.amp, tracker)
        elif state["lr_find"] and state["lr_find"]["lr"] is not None:  # resuming: the schedule's base is the found LR
            for group in optimizer.param_groups:
                group["lr"] = state["lr_find"]["lr"]
        schedule = build_schedule(cfg.scheduler, optimizer, steps_per_epoch, int(t.epochs))
        scaler = torch.amp.GradScaler(device.type, enabled=run.precision == "fp16")
        shuffle = torch.Generator(device=device).manual_seed(int(cfg.seed))
        if checkpoint is not None:
            model.load_state_dict(checkpoint["model"])
            optimizer.load_state_dict(checkpoint["optimizer"])
            schedule.load_state_dict(checkpoint["schedule"])
            scaler.load_state_dict(checkpoint["scaler"])
            set_rng_state(checkpoint["rng"], shuffle)
        forward = torch.compile(model) if t.compile else model
        train_set, test_set, amp = run.train_set, run.test_set, run.amp
        bar = tqdm(
            total=int(t.epochs) * steps_per_epoch,
            initial=state["step"],
            disable=None if t.progress else True,
            desc=" ".join(job.get("overrides", [])) or "train",
            leave=False,
            dynamic_ncols=True,
        )
        diverged = None
        for epoch in range(state["epoch"], int(t.epochs)):
            epoch_start = time.perf_counter()
            model.train()
            loss_sum = torch.zeros((), device=device)
            correct = torch.zeros((), device=device, dtype=torch.long)
            step_losses = torch.zeros(steps_per_epoch, device=device)
            lrs, seen = [], 0
            for i, (x, y) in enumerate(train_set.batches(t.batch_size, shuffle, t.max_steps_per_epoch)):
                lrs.append(schedule.lr)
                with amp:
                    out = forward(x)
                    loss = F.cross_entropy(out, y)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                schedule.step_batch()
                step_losses[i] = loss.detach()
                loss_sum += loss.detach() * len(y)
                correct += (out.argmax(1) == y).sum()
                seen += len(y)
                state["step"] += 1
                bar.update(1)
                if state["first_loss"] is None or state["step"] % t.divergence.check_every == 0:
                    value = loss.item()  # the one host read inside the epoch, every check_every steps
                    state["first_loss"] = state["first_loss"] or value
                    if blown_up(value, state["first_loss"], t.divergence.factor):
                        break
            # every step's loss is read here anyway: the first blown-up one, if any, is where it diverged
            losses = step_losses[: len(lrs)].tolist()
            first = state["step"] - len(lrs)
            steps = [(first + k + 1, epoch + 1, lr, v) for k, (lr, v) in enumerate(zip(lrs, losses, strict=True))]
            bad = next((k for k, v in enumerate(losses) if blown_up(v, state["first_loss"], t.divergence.factor)), None)
            if bad is not None:
                diverged = {"epoch": epoch + 1, "step": first + bad + 1, "lr": lrs[bad], "loss": losses[bad]}
                files.append_steps(steps)  # how it blew up stays visible; the partial epoch gets no metrics row
                tracker.log_steps(steps)
                break
            train_loss, train_acc = loss_sum.item() / seen, correct.item() / seen
            test_loss, test_acc = evaluate(forward, test_set, t.eval_batch_size, amp)
            schedule.step_epoch(test_loss)
            row = {
                "epoch": epoch + 1,
                "train_loss": train_loss,
                "train_acc": train_acc,
                "test_loss": test_loss,
                "test_acc": test_acc,
                "gap": train_acc - test_acc,
                "lr": lrs[0],
                "lr_end": lrs[-1],
                "epoch_time": time.perf_counter() - epoch_start,
                **memory_use(device),
            }
            state["history"].append(row)
            state["steps"] += steps
            state["epoch"] = epoch + 1
            state["elapsed"] = time.perf_counter() - started
            files.append_epoch(row, steps)
            tracker.log_epoch(row, steps)
            bar.set_postfix(loss=f"{train_loss:.3f}", test_acc=f"{test_acc:.3f}", lr=f"{lrs[-1]:.3g}")
            if t.checkpoint:
                atomic_torch_save(
                    files.checkpoint,
                    {
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "schedule": schedule.state_dict(),
                        "scaler": scaler.state_dict(),
                        "rng": rng_state(shuffle),
                        "state": state,
                        "config": comparable_config(cfg),
                        "wandb_id": tracker.id,
                    },
                )
        summary.update(results_summary(state["history"]))
        summary["status"] = "diverged" if diverged else "completed"
        summary["diverged_at"] = diverged
        exit_code = 0
        bar.close()
    except BaseException as e:
        summary.update(results_summary(state["history"]))
        summary["status"] = "interrupted" if isinstance(e, KeyboardInterrupt) else "failed"
        summary["error"] = f"{type(e).__name__}: {e}"
        raise
    finally:
        summary["wall_time_s"] = time.perf_counter() - started
        summary["finished_at"] = datetime.now(timezone.utc).isoformat()
        summary["lr_find"] = state.get("lr_find")
        files.write_summary(summary)
        if tracker is not None:
            tracker.summary(summary)
            tracker.finish(exit_code)
    return summary


def blown_up(loss: float, first_loss: float, factor: float) -> bool:
    """Diverged: a loss that is not finite, or far above the run's first one."""
    return not math.isfinite(loss) or loss > factor * first_loss


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


def results_summary(history: list[dict]) -> dict:
    """Final and best figures from the completed epochs."""
    if not history:
        return {"epochs_completed": 0}
    last = history[-1]
    best = max(history, key=lambda r: r["test_acc"])
    return {
        "epochs_completed": last["epoch"],
        "final_train_loss": last["train_loss"],
        "final_train_acc": last["train_acc"],
        "final_test_loss": last["test_loss"],
        "final_test_acc": last["test_acc"],
        "final_gap": last["gap"],
        "best_test_acc": best["test_acc"],
        "best_epoch": best["epoch"],
        "mean_epoch_time_s": sum(r["epoch_time"] for r in history) / len(history),
    }
