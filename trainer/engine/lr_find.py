"""The LR range test (Smith 2017; fastai's lr_find): train for a short while as the LR grows from tiny to
huge, watch the smoothed loss, suggest an LR on its way down, and put everything back.

`range_test` is the core and needs no Hydra: any model, optimizer, batches and loss. The LR takes
`num_steps` values from `start_lr` to `end_lr` (both included), geometrically (`exp`, ratio
mult = (end/start)^(1/(num_steps-1))) or evenly (`linear`); every param group gets the same LR; the
optimizer's own schedule is not applied. The loss is smoothed as avg <- beta*avg + (1-beta)*loss and
bias-corrected by 1/(1 - beta^k); the test stops once the smoothed loss passes `diverge_factor` x its
best or a loss is not finite. Weights, buffers, optimizer state (momentum, Adam moments, step counts,
param-group LRs), gradients, train/eval modes and torch's global RNG are restored exactly afterwards.

The loss is read on the host every step: the test is a short diagnostic and its stop rule needs it.
"""

from __future__ import annotations

import copy
import io
import math
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from schedulers import rebase_lr
from trainer.config import LR_FIND_RULES, resolved
from trainer.engine.schedulefree import train_mode
from trainer.errors import ConfigError
from trainer.records import atomic_write_bytes, write_json
from trainer.tracking import Tracker

RULES = LR_FIND_RULES  # half_drop, steepest, min_div10, valley
COLORS = {"half_drop": "tab:purple", "steepest": "tab:red", "min_div10": "tab:green", "valley": "tab:orange"}
END_REACHED = "end_lr reached"
NON_FINITE = "non-finite loss"
EXHAUSTED = "batches exhausted"  # a one-pass iterator ran out before num_steps
# lr_find.num_steps=null means one epoch, but never fewer steps than fastai's default: nine decades of LR
# in the 8 batches of a small dataset's epoch leave nothing to read off the curve
MIN_DEFAULT_STEPS = 100
# a suggestion read off fewer points than this is noise (a test that blew up at once): training refuses it
MIN_POINTS = 10


@dataclass
class LRFindResult:
    lrs: list[float]
    losses: list[float]  # raw; the last one is not finite when stop_reason is NON_FINITE
    smoothed: list[float]  # bias-corrected moving average; nan where the loss was not finite
    stop_reason: str
    suggestions: dict[str, float | None]  # rule -> LR; None when no finite loss was seen


def lr_at(i: int, start_lr: float, end_lr: float, num_steps: int, mode: str = "exp") -> float:
    """The LR of step i (0-based): start_lr at i = 0, end_lr at i = num_steps - 1."""
    frac = i / (num_steps - 1)
    if mode == "exp":
        return start_lr * (end_lr / start_lr) ** frac
    if mode == "linear":
        return start_lr + (end_lr - start_lr) * frac
    raise ValueError(f"mode={mode!r} is not allowed: use exp or linear")


class Smoother:
    """Exponential moving average with bias correction (Adam's), so the first values are not pulled to 0."""

    def __init__(self, beta: float):
        self.beta, self.avg, self.count = beta, 0.0, 0

    def update(self, value: float) -> float:
        self.count += 1
        self.avg = self.beta * self.avg + (1 - self.beta) * value
        return self.avg / (1 - self.beta**self.count)


def smooth(losses: Iterable[float], beta: float = 0.98) -> list[float]:
    s = Smoother(beta)
    return [s.update(v) for v in losses]


def suggest(lrs: list[float], smoothed: list[float]) -> dict[str, float | None]:
    """Four rules on the smoothed curve, all at or left of its minimum:

    - half_drop: the first LR at which the smoothed loss has come half-way down from its starting level
      (the median of the first tenth of the points) to its minimum: the middle of the descent, read off
      loss levels rather than slopes, so neither a noisy slope nor the curve's lag near the blow-up moves
      it far;
    - steepest: the LR where d(smoothed)/d(log10 lr) is most negative (np.gradient), the first tenth of
      the points skipped as fastai does (the curve is still flat and noisy there);
    - min_div10: the LR of the minimum / 10;
    - valley: fastai's longest valley (longest strictly decreasing subsequence of the smoothed loss) and
      the point int(len/3) + int(len/6) into it. Searched only up to the minimum, so it cannot land in
      the blow-up.

    The last three are fastai's (its `steep`, `minimum` and `valley`).
    """
    s = np.asarray(smoothed, dtype=float)
    bad = np.flatnonzero(~np.isfinite(s))
    n = int(bad[0]) if len(bad) else len(s)
    if n == 0:
        return dict.fromkeys(RULES)
    lr, s = np.asarray(lrs[:n], dtype=float), s[:n]
    m = int(np.argmin(s))
    if m == 0:
        return {**dict.fromkeys(RULES, float(lr[0])), "min_div10": float(lr[0] / 10)}
    skip = n // 10 if n // 10 < m else 0
    slope = np.gradient(s, np.log10(lr))  # central differences inside, so the minimum's own slope is ~0
    steepest = lr[skip + int(np.argmin(slope[skip:m]))]
    return {
        "half_drop": _half_drop(lr[: m + 1], s[: m + 1], skip),
        "steepest": float(steepest),
        "min_div10": float(lr[m] / 10),
        "valley": _valley(lr[skip : m + 1], s[skip : m + 1]),
    }


def _half_drop(lrs: np.ndarray, losses: np.ndarray, skip: int) -> float:
    """The first LR from `skip` on where the loss is at or below half-way from its start to its last value
    (the minimum: always reached)."""
    start = float(np.median(losses[: max(skip, 1)]))
    half = (start + losses[-1]) / 2
    return float(lrs[skip + int(np.argmax(losses[skip:] <= half))])


def _valley(lrs: np.ndarray, losses: np.ndarray) -> float:
    longest = np.ones(len(losses), dtype=int)  # longest decreasing subsequence ending at each point
    for i in range(1, len(losses)):
        above = losses[:i] > losses[i]
        if above.any():
            longest[i] = longest[:i][above].max() + 1
    end = int(np.argmax(longest))
    start = end - longest[end] + 1
    third = (end - start) / 3
    return float(lrs[start + int(third) + int(third / 2)])


def _passes(batches: Iterable) -> Iterator:
    """The batches, again and again (a list or a re-iterable dataset starts a new pass each time)."""
    while True:
        empty = True
        for batch in batches:
            empty = False
            yield batch
        if empty:
            return


def _grad_scaler(amp) -> torch.amp.GradScaler:
    """fp16 autocast needs loss scaling, as in training; bf16 and fp32 do not."""
    fp16 = isinstance(amp, torch.autocast) and amp.fast_dtype == torch.float16
    return torch.amp.GradScaler(amp.device if fp16 else "cpu", enabled=fp16)


def range_test(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Iterable,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    start_lr: float = 1e-8,
    end_lr: float = 10.0,
    num_steps: int = 100,
    mode: str = "exp",
    beta: float = 0.98,
    diverge_factor: float = 4.0,
    amp=None,
) -> LRFindResult:
    """Run the LR range test on (x, y) `batches` (cycled when num_steps is more than one pass); the model
    and optimizer end exactly as they started."""
    if not 0 < start_lr < end_lr:
        raise ValueError(f"need 0 < start_lr < end_lr, got start_lr={start_lr}, end_lr={end_lr}")
    if num_steps < 2:
        raise ValueError(f"num_steps must be >= 2, got {num_steps}")
    lr_at(0, start_lr, end_lr, num_steps, mode)  # rejects an unknown mode before any work
    amp = amp if amp is not None else nullcontext()
    params = [p for group in optimizer.param_groups for p in group["params"]]
    # every group keeps its ratio to the first (optimizer.lr_multipliers): the test sweeps the base LR
    factors = [float(g["lr"]) / float(optimizer.param_groups[0]["lr"]) for g in optimizer.param_groups]
    train_mode(optimizer)  # a schedule-free optimizer steps only in train mode, and is left in it
    model_state = copy.deepcopy(model.state_dict())
    optimizer_state = copy.deepcopy(optimizer.state_dict())
    grads = [None if p.grad is None else p.grad.detach().clone() for p in params]
    modes = [m.training for m in model.modules()]
    cuda = sorted({p.device.index or 0 for p in params if p.device.type == "cuda"})
    scaler = _grad_scaler(amp)
    lrs, losses, smoothed = [], [], []
    smoother, best, stop_reason = Smoother(beta), math.inf, EXHAUSTED
    try:
        with torch.random.fork_rng(devices=cuda):  # dropout draws must not move the training RNG stream
            model.train()
            for i, (x, y) in zip(range(num_steps), _passes(batches), strict=False):
                lr = lr_at(i, start_lr, end_lr, num_steps, mode)
                for group, factor in zip(optimizer.param_groups, factors, strict=True):
                    group["lr"] = lr * factor
                with amp:
                    loss = loss_fn(model(x), y)
                value = float(loss.detach().float())
                lrs.append(lr)
                losses.append(value)
                if not math.isfinite(value):
                    smoothed.append(math.nan)
                    stop_reason = NON_FINITE
                    break
                smoothed.append(smoother.update(value))
                if smoothed[-1] > diverge_factor * best:
                    stop_reason = f"loss diverged: smoothed loss > {diverge_factor:g} x best"
                    break
                best = min(best, smoothed[-1])
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                if len(lrs) == num_steps:
                    stop_reason = END_REACHED
    finally:
        model.load_state_dict(model_state)
        optimizer.load_state_dict(optimizer_state)
        for p, g in zip(params, grads, strict=True):
            p.grad = g
        for m, training in zip(model.modules(), modes, strict=True):
            m.training = training
    return LRFindResult(lrs, losses, smoothed, stop_reason, suggest(lrs, smoothed))


# --- output -------------------------------------------------------------------------------------


def plot(result: LRFindResult, path: Path, rule: str | None = None) -> None:
    """Smoothed loss (raw loss faint) against the LR on a log axis, the suggestions as vertical lines."""
    from matplotlib.figure import Figure  # no pyplot: no global backend state

    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(result.lrs, result.losses, color="tab:blue", alpha=0.25, lw=1, label="loss")
    ax.plot(result.lrs, result.smoothed, color="tab:blue", lw=2, label="smoothed loss")
    for name, lr in result.suggestions.items():
        if lr is not None:
            chosen = name == rule
            label = f"{name}: {lr:.3g}" + (" (chosen)" if chosen else "")
            ax.axvline(lr, color=COLORS[name], ls="-" if chosen else "--", lw=2 if chosen else 1.2, label=label)
    s = np.asarray(result.smoothed, dtype=float)
    if np.isfinite(s).any():
        # up to the highest point before the minimum: the blow-up is cut off rather than squashing the rest
        m = int(np.nanargmin(s))
        lo, hi = min(s[m], np.nanmin(np.asarray(result.losses[: m + 1]))), s[: m + 1].max()
        pad = 0.1 * (hi - lo) or 0.1 * abs(lo) or 0.1
        ax.set_ylim(lo - pad, hi + 3 * pad)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    ax.set_title(f"LR range test: {len(result.lrs)} steps, {result.stop_reason}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    atomic_write_bytes(Path(path), buffer.getvalue())


def write_results(result: LRFindResult, run_dir: Path, settings: dict) -> Path:
    """lr_find.json (every point, the stop reason, the suggestions, the settings) and lr_find.png; returns
    the png's path."""
    run_dir = Path(run_dir)
    write_json(run_dir / "lr_find.json", {**asdict(result), "num_points": len(result.lrs), "settings": settings})
    png = run_dir / "lr_find.png"
    plot(result, png, settings.get("suggestion"))
    return png


def report(result: LRFindResult, rule: str, png: Path) -> str:
    """What the test printed: its length and stop, every suggestion (the chosen one marked), the plot's path."""
    last = f" at lr {result.lrs[-1]:.3g}" if result.lrs else ""
    lines = [f"LR range test: {len(result.lrs)} steps, {result.stop_reason}{last}"]
    for name, lr in result.suggestions.items():
        value = "none (no finite loss)" if lr is None else f"{lr:.3g}"
        lines.append(f"  {name:<10} {value}" + ("   <- lr_find.suggestion" if name == rule else ""))
    lines.append(f"  curve: {png} (every point: lr_find.json)")
    return "\n".join(lines)


# --- from a config ------------------------------------------------------------------------------


def range_test_from_config(cfg, model, optimizer, train_set, amp) -> LRFindResult:
    """The test as cfg.lr_find sets it, on shuffled training batches drawn with a generator of its own."""
    f, t = cfg.lr_find, cfg.trainer
    # at trainer.batch_size throughout, whatever scheduler.batch_size: it finds the LR of the full batch, the base
    # that the LR schedule (and the batch size's) start from
    num_steps = f.num_steps or max(MIN_DEFAULT_STEPS, train_set.num_batches(t.batch_size, t.max_steps_per_epoch))
    shuffle = torch.Generator(device=train_set.labels.device).manual_seed(cfg.seed)

    def epochs():
        while True:
            yield from train_set.batches(t.batch_size, shuffle, t.max_steps_per_epoch)

    return range_test(
        model,
        optimizer,
        epochs(),
        F.cross_entropy,
        start_lr=f.start_lr,
        end_lr=f.end_lr,
        num_steps=num_steps,
        mode=f.mode,
        beta=f.beta,
        diverge_factor=f.diverge_factor,
        amp=amp,
    )


def settings(cfg) -> dict:
    return resolved(cfg.lr_find)


def log_curve(tracker: Tracker, result: LRFindResult) -> None:
    """The range test's curve to the tracker, against its own step."""
    tracker.log_curve("lr_find", {"lr": result.lrs, "loss": result.losses, "smoothed": result.smoothed})


def find_and_set_lr(cfg, model, optimizer, train_set, run_dir: Path, amp, tracker: Tracker | None = None) -> dict:
    """Run the test on the model and optimizer training is about to use, restore them, and set every
    param group's LR (and initial_lr, where a schedule keeps one) to the suggestion cfg.lr_find.suggestion
    names. Returns what summary.json records."""
    rule = str(cfg.lr_find.suggestion)  # a plain string: the checkpoint holds it (weights_only)
    result = range_test_from_config(cfg, model, optimizer, train_set, amp)
    lr = result.suggestions[rule]
    finite = sum(math.isfinite(v) for v in result.smoothed)
    if lr is not None and finite < MIN_POINTS:
        write_results(result, run_dir, settings(cfg))
        raise ConfigError(
            f"lr_find: the range test stopped after {len(result.lrs)} steps ({result.stop_reason} at lr "
            f"{result.lrs[-1]:.3g}): {MIN_POINTS} points are needed before an LR can be suggested; lower "
            "lr_find.end_lr or raise lr_find.diverge_factor (lr_find.png shows the curve)"
        )
    if lr is None:
        lr = optimizer.param_groups[0]["lr"]
        warnings.warn(
            f"LR range test saw no finite loss; training keeps optimizer.lr={lr}", RuntimeWarning, stacklevel=2
        )
    else:
        rebase_lr(optimizer, lr)
    png = write_results(result, run_dir, settings(cfg))
    if tracker is not None:
        log_curve(tracker, result)
    print(report(result, rule, png), flush=True)
    return {"rule": rule, "lr": lr, "suggestions": result.suggestions, "stop_reason": result.stop_reason}
