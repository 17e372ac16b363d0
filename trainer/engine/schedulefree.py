"""Schedule-free optimizers (Defazio et al. 2024; the `schedulefree` package): they train the model at one point y
and evaluate it at another, the average x. Every evaluation and every checkpoint goes through `averaged`, which
holds x in the model while it lasts and puts y back bit for bit, so evaluating never moves training."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch.optim.swa_utils import update_bn


def schedule_free(optimizer: torch.optim.Optimizer) -> bool:
    """An optimizer of the `schedulefree` package (Defazio et al. 2024): it trains the model at one point y and
    evaluates it at another, the average x; its train() / eval() move the model's weights between the two."""
    return "train_mode" in optimizer.defaults


def train_mode(optimizer: torch.optim.Optimizer) -> None:
    """Put a schedule-free optimizer in train mode (it is built in eval mode and steps only in train mode)."""
    if schedule_free(optimizer):
        optimizer.train()
        # train() leaves an empty state entry for every parameter it looked at: none before the first step, so that
        # the optimizer may still be pointed at other tensors (a batched stack's shared parameters)
        for p in [p for p, state in optimizer.state.items() if not state]:
            del optimizer.state[p]


@contextmanager
def averaged(optimizer: torch.optim.Optimizer) -> Iterator[bool]:
    """While it lasts the model holds the weights to evaluate and to save: for a schedule-free optimizer in train
    mode, the averaged x (optimizer.eval()), and it yields True; any other model is left as it is (False).
    Afterwards the optimizer is in train mode again and the training weights y are copied back exactly (not
    recomputed from x, which differs in the last bits), so evaluating and saving never move training."""
    if not schedule_free(optimizer) or not optimizer.param_groups[0]["train_mode"]:
        yield False
        return
    params = [p for group in optimizer.param_groups for p in group["params"]]
    training = [p.detach().clone() for p in params]
    optimizer.eval()
    try:
        yield True
    finally:
        optimizer.train()
        with torch.no_grad():
            for p, y in zip(params, training, strict=True):
                p.copy_(y)


# training batches that give BatchNorm its statistics at a schedule-free optimizer's averaged weights (the
# `schedulefree` package's README recipe uses about 50)
BATCH_NORM_BATCHES = 50


def batch_norm_at_average(model: torch.nn.Module, dataset, batch_size: int, amp) -> None:
    """BatchNorm's running statistics were gathered at the training weights y; the averaged x that a schedule-free
    optimizer evaluates needs its own (the `schedulefree` package's README). Recompute them at x from the first
    BATCH_NORM_BATCHES training batches in order, as a plain average (torch.optim.swa_utils.update_bn), drawing no
    random numbers. They stay in the model: saved with x, and unused by training (train mode normalizes by the
    batch). A model without BatchNorm is left as it is."""
    if not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        return
    device = dataset.labels.device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), amp:
        update_bn((x for x, _ in dataset.batches(batch_size, limit=BATCH_NORM_BATCHES)), model)
