"""Weight averages evaluated beside the raw weights: an exponential moving average of the weights (`trainer.ema`)
and an equal-weight tail average (SWA, Izmailov et al. 2018; `trainer.swa_start`), each held in a copy of the
model of its own and evaluated on the validation and test sets after every epoch (EpochRow's ema_* and swa_*).

- EMA, decay d: updated after every optimizer step (an optimizer step hook, so a step the fp16 grad scaler skips
  is not counted), ema_1 = w_1 (the weights after the first step), ema_k = d·ema_{k-1} + (1 - d)·w_k: torch's
  AveragedModel with get_ema_multi_avg_fn(d), the same kernel (torch._foreach_lerp_), bit for bit, but counting
  its updates in Python rather than in a device tensor, so that no step waits for the device.
- SWA from epoch s: updated once per epoch, at the end of every epoch e >= s (before it is evaluated), so that
  after epoch e it is the mean of the end-of-epoch weights w_s, ..., w_e (swa_k = swa_{k-1} + (w_k - swa_{k-1}) / k,
  as a lerp); no figure before epoch s.

Both average the training weights (a schedule-free optimizer's y, the point it trains at). Buffers are not
averaged: before each evaluation a copy takes the model's own, and where the model has BatchNorm its running
statistics are recomputed at the averaged weights from the first 50 training batches in order
(schedulefree.batch_norm_at_average: torch.optim.swa_utils.update_bn, no random number drawn). Nothing here
touches the model, the optimizer or an RNG: evaluating the averages never moves training. checkpoint.pt keeps
each average (its weights and count), so a resumed run ends with the numbers of an uninterrupted one.
"""

from __future__ import annotations

import copy

import torch

from trainer.engine.loop import evaluate
from trainer.engine.schedulefree import batch_norm_at_average

# the averages' names: their EpochRow figures are <name>_val_loss, <name>_val_acc, <name>_test_loss, <name>_test_acc
AVERAGES = ("ema", "swa")


def figure_names(name: str) -> tuple[str, ...]:
    return tuple(f"{name}_{split}_{what}" for split in ("val", "test") for what in ("loss", "acc"))


class WeightAverage:
    """An average of a model's parameters in a copy of the model: exponential with `decay`, or the equal-weight
    mean of every update (decay None). `count`: the updates so far (the first one copies the weights)."""

    def __init__(self, model: torch.nn.Module, decay: float | None = None):
        self.module = copy.deepcopy(model)
        self.module.requires_grad_(False)
        self.decay = decay
        self.count = 0
        self.params = [p.detach() for p in self.module.parameters()]

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        current = [p.detach() for p in model.parameters()]  # read each time: a batched stack rebinds them
        if self.count == 0:
            for a, w in zip(self.params, current, strict=True):
                a.copy_(w)
        else:
            weight = 1 - self.decay if self.decay is not None else 1 / (self.count + 1)
            torch._foreach_lerp_(self.params, current, weight)
        self.count += 1

    @torch.no_grad()
    def take_buffers(self, model: torch.nn.Module) -> None:
        """The model's buffers (BatchNorm's statistics, anything else it keeps) into the copy."""
        for a, b in zip(self.module.buffers(), model.buffers(), strict=True):
            a.copy_(b)

    def state_dict(self) -> dict:
        return {"model": self.module.state_dict(), "count": self.count}

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state["model"])
        self.count = int(state["count"])


class Averages:
    """A run's weight averages (none, EMA, SWA or both) of `model`, trained by `optimizer`: the EMA follows every
    optimizer step by itself (a step post-hook), the SWA takes the weights at end_epoch()."""

    def __init__(
        self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, ema: float | None, swa_start: int | None
    ):
        self.model, self.swa_start = model, swa_start
        self.averages: dict[str, WeightAverage] = {}
        if ema is not None:
            self.averages["ema"] = average = WeightAverage(model, decay=ema)
            optimizer.register_step_post_hook(lambda optimizer, args, kwargs: average.update(model))
        if swa_start is not None:
            self.averages["swa"] = WeightAverage(model)

    def __bool__(self) -> bool:
        return bool(self.averages)

    def end_epoch(self, epoch: int) -> None:
        """Epoch `epoch` has trained: the SWA takes its end-of-epoch weights from trainer.swa_start on."""
        if "swa" in self.averages and epoch >= self.swa_start:
            self.averages["swa"].update(self.model)

    def figures(self, run, batch_size: int, eval_batch_size: int) -> dict:
        """Each average's loss and accuracy on the validation and test sets (None where it has no weights yet or
        there is no validation set); BatchNorm statistics recomputed at its weights first."""
        out = {}
        for name in AVERAGES:
            average = self.averages.get(name)
            if average is None or average.count == 0:
                out |= dict.fromkeys(figure_names(name))
                continue
            average.take_buffers(self.model)
            batch_norm_at_average(average.module, run.train_set, batch_size, run.amp)
            val = evaluate(average.module, run.val_set, eval_batch_size, run.amp) if run.val_set else (None, None)
            test = evaluate(average.module, run.test_set, eval_batch_size, run.amp)
            out |= dict(zip(figure_names(name), (*val, *test), strict=True))
        return out

    def state_dict(self) -> dict:
        return {name: average.state_dict() for name, average in self.averages.items()}

    def load_state_dict(self, state: dict) -> None:
        """The saved averages; one the state lacks stays empty (a branch starting an SWA its parent had not begun)."""
        for name, average in self.averages.items():
            if name in state:
                average.load_state_dict(state[name])
