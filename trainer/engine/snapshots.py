"""Snapshot ensembles (Huang et al. 2017): the model saved at the end of each cycle of a restarting schedule
(or every trainer.snapshot_every epochs) and the mean softmax of the last few evaluated after each."""

from __future__ import annotations

import torch
from torch.func import functional_call

from schedulers import cycle_ends


def snapshot_epochs(cfg, steps_per_epoch: int) -> list[int]:
    """The epochs at whose end trainer.snapshots saves the model: every trainer.snapshot_every epochs, else the
    ends of the schedule's cycles; none without trainer.snapshots."""
    t = cfg.trainer
    if not t.snapshots:
        return []
    if t.snapshot_every is not None:
        return list(range(t.snapshot_every, t.epochs + 1, t.snapshot_every))
    return cycle_ends(cfg.scheduler, t.epochs, steps_per_epoch)


@torch.no_grad()
def ensemble_accuracy(model, snapshots: list[dict], dataset, batch_size: int, amp) -> float:
    """Accuracy of a snapshot ensemble (Huang et al. 2017) over a device dataset: the class with the highest mean,
    over `snapshots` (state_dicts of `model`), of the softmax of each one's output, in eval mode. `model` itself
    is only the architecture: its own weights are neither used nor touched."""
    model.eval()
    correct = torch.zeros((), device=dataset.labels.device, dtype=torch.long)
    for x, y in dataset.batches(batch_size):
        probabilities = 0
        for weights in snapshots:
            with amp:
                out = functional_call(model, weights, (x,))
            probabilities = probabilities + out.float().softmax(1)
        correct += ((probabilities / len(snapshots)).argmax(1) == y).sum()
    return correct.item() / len(dataset)
