"""One epoch of training and one evaluation: what fit() repeats, and what any other trainer can call.

Speed habits (README, Performance): batches come from the device-resident dataset; losses and correct
counts accumulate on the device and are read once per epoch, plus one loss read every
`check_every` steps to catch a divergence early.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from trainer.records import StepRow


def blown_up(loss: float, first_loss: float, factor: float) -> bool:
    """Diverged: a loss that is not finite, or far above the run's first one."""
    return not math.isfinite(loss) or loss > factor * first_loss


@dataclass
class EpochResult:
    steps: list[StepRow]  # every step the epoch ran: its LR and loss
    train_loss: float | None  # mean over the epoch's examples; None when it diverged
    train_acc: float | None
    first_loss: float  # the run's first loss, what divergence is measured against
    diverged: dict | None = None  # epoch, step, lr, loss of the first blown-up step


def train_epoch(
    forward,
    optimizer: torch.optim.Optimizer,
    schedule,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    epoch: int,
    step: int,
    max_steps: int,
    amp,
    scaler: torch.amp.GradScaler,
    first_loss: float | None,
    check_every: int,
    factor: float,
    progress=None,
) -> EpochResult:
    """Train over `batches` (epoch counted from 1, `step` the optimizer steps before it, at most `max_steps`
    batches); the LR of each step comes from `schedule`, stepped after every optimizer step. Stops at the
    first loss read that has blown up; every step's loss is read at the end of the epoch, and the first
    blown-up one is where the run diverged."""
    forward.train()
    device = next(iter(p for g in optimizer.param_groups for p in g["params"])).device
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    step_losses = torch.zeros(max_steps, device=device)
    lrs: list[float] = []
    seen = 0
    for i, (x, y) in enumerate(batches):
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
        if progress is not None:
            progress.update(1)
        if first_loss is None or (step + i + 1) % check_every == 0:
            value = loss.item()  # the one host read inside the epoch, every check_every steps
            first_loss = first_loss or value
            if blown_up(value, first_loss, factor):
                break
    return epoch_result(epoch, step, lrs, step_losses[: len(lrs)].tolist(), loss_sum, correct, seen, first_loss, factor)


def epoch_result(
    epoch: int,
    step: int,
    lrs: list[float],
    losses: list[float],
    loss_sum,
    correct,
    seen: int,
    first_loss: float,
    factor: float,
) -> EpochResult:
    """An epoch's outcome from what it accumulated: its steps (LR and loss), the mean loss and accuracy, or
    where it diverged: the first step whose loss blew up."""
    steps = [StepRow(step + k + 1, epoch, lr, v) for k, (lr, v) in enumerate(zip(lrs, losses, strict=True))]
    bad = next((k for k, v in enumerate(losses) if blown_up(v, first_loss, factor)), None)
    if bad is not None:
        diverged = {"epoch": epoch, "step": step + bad + 1, "lr": lrs[bad], "loss": losses[bad]}
        return EpochResult(steps, None, None, first_loss, diverged)
    return EpochResult(steps, float(loss_sum) / seen, int(correct) / seen, first_loss)


def epochs_without_improvement(values: list[float], mode: str, min_delta: float) -> int:
    """Epochs since the best of `values` (one per epoch; mode "max" or "min"), where a value counts as better
    only by more than min_delta: what early stopping counts against its patience."""
    best, since = None, 0
    for v in values:
        better = best is None or (v > best + min_delta if mode == "max" else v < best - min_delta)
        best, since = (v, 0) if better else (best, since + 1)
    return since


@torch.no_grad()
def evaluate(model, dataset, batch_size: int, amp) -> tuple[float, float]:
    """Mean loss and accuracy of `model` over a device dataset, in eval mode."""
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
