"""schedlab's LR range test against fastai's `lr_find` and pytorch-lr-finder's `LRFinder.range_test` on the
same model, data and optimizers: the d2l LeNet on Fashion-MNIST (schedlab's training split and
normalization), batch 256, plain SGD, SGD with momentum 0.9 and Adam as conf/optimizer configures them.

    pip install fastai torch-lr-finder                      # not dependencies of schedlab
    python -m benchmarks.lr_find_compare                    # the three tools' suggestions per optimizer
    python -m benchmarks.lr_find_compare --grid             # + 2 epochs of training at a few LRs each
    python -m benchmarks.lr_find_compare --optimizers adam --json out.json
    python -m benchmarks.lr_find_compare --schedlab lr_find.start_lr=1e-8 lr_find.suggestion=valley  # the old defaults
    python -m benchmarks.lr_find_compare --dataset synthetic --optimizers sgd                       # a smoke run

Each tool runs with its own defaults: fastai 100 steps from 1e-7 to 10 and its four suggestion functions
(valley, slide, minimum, steep); pytorch-lr-finder 100 steps from 1e-7 (its start is the optimizer's LR)
to 10 and its suggestion (the steepest gradient of its smoothed loss, 10 points skipped at the start and 5
at the end); schedlab `lr_find.*` as configured (extra overrides with --schedlab). Their rules are also
applied to schedlab's own curve, and schedlab's defaults before half_drop (1e-8, valley) run too. Every
test starts from the same weights (the seed's). --grid trains 2 epochs (constant LR) at each LR of GRID and
at schedlab's suggestion and reports the validation accuracy: what "the LR that trains well" means here.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import math
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from benchmarks.common import hardware
from trainer.cli import compose_config
from trainer.engine.fit import fit
from trainer.engine.lr_find import LRFindResult, range_test_from_config
from trainer.engine.setup import build
from trainer.records import Job, write_json

OPTIMIZERS = ("sgd", "momentum", "adam")
GRID = {
    "sgd": [0.03, 0.1, 0.3, 0.5, 1.0],
    "momentum": [0.01, 0.03, 0.05, 0.1, 0.3],
    "adam": [3e-4, 1e-3, 3e-3, 1e-2, 3e-2],
}
THEIR_START, THEIR_END, THEIR_STEPS = 1e-7, 10.0, 100  # both libraries' defaults
BEFORE = ["lr_find.start_lr=1e-8", "lr_find.suggestion=valley"]  # schedlab's defaults before half_drop
TOOLS = ("fastai", "torch_lr_finder", "schedlab", "fastai rules", "torch_lr_finder rule", "schedlab before")
BASE = ["logger=none", "trainer.progress=false", "trainer.checkpoint=false"]  # --dataset adds to it
NEEDS = "lr_find_compare needs fastai and torch-lr-finder: pip install fastai torch-lr-finder"


def setup(optimizer: str, seed: int, overrides: list[str] = ()):
    """The config and the built run (data, model at the seed's initial weights, optimizer), as run.py builds them."""
    cfg = compose_config([f"optimizer={optimizer}", f"seed={seed}", *BASE, *overrides])
    return cfg, build(cfg, Job.of(None))


def loaders(run, batch_size: int, seed: int) -> tuple[DataLoader, DataLoader]:
    """schedlab's normalized training and validation tensors as shuffled torch DataLoaders."""

    def tensors(dataset):
        x = torch.addcmul(dataset.shift, dataset.images.float(), dataset.scale).contiguous()
        return TensorDataset(x, dataset.labels)

    shuffle = torch.Generator().manual_seed(seed)
    valid = run.val_set or run.test_set
    return (
        DataLoader(tensors(run.train_set), batch_size, shuffle=True, generator=shuffle),
        DataLoader(tensors(valid), batch_size),
    )


def run_schedlab(optimizer: str, seed: int, overrides: list[str]) -> tuple[dict, LRFindResult]:
    cfg, run = setup(optimizer, seed, overrides)
    result = range_test_from_config(cfg, run.model, run.optimizer, run.train_set, run.amp)
    f = cfg.lr_find
    settings = f"{f.start_lr:g}..{f.end_lr:g}, {len(result.lrs)} steps ({result.stop_reason})"
    return {"settings": settings, "default": f.suggestion, "suggestions": result.suggestions}, result


def their_rules_on(result: LRFindResult) -> dict[str, dict]:
    """fastai's four functions and pytorch-lr-finder's rule on schedlab's curve, each library's way: fastai
    on the same smoothed loss (its smoothing is schedlab's) less the first tenth and the last 5 points;
    pytorch-lr-finder on its own smoothing of the raw loss (0.05 of each new one, no bias correction) less
    the first 10 and the last 5 points."""
    from fastai.callback.schedule import minimum, slide, steep, valley
    from matplotlib.figure import Figure
    from torch_lr_finder import LRFinder

    n = sum(math.isfinite(v) for v in result.smoothed)
    lrs, smoothed, raw = result.lrs[:n], result.smoothed[:n], result.losses[:n]
    cut = slice(n // 10, -5)
    x, y = torch.tensor(lrs[cut]), torch.tensor(smoothed[cut])
    found = {f.__name__: float(f(x, y, n)[0]) for f in (valley, slide, minimum, steep)}
    theirs = [raw[0]]
    for v in raw[1:]:
        theirs.append(0.05 * v + 0.95 * theirs[-1])
    finder = LRFinder.__new__(LRFinder)  # only its plot: the rule reads nothing but the history
    finder.history = {"lr": lrs, "loss": theirs}
    with contextlib.redirect_stdout(io.StringIO()):
        _, lr = finder.plot(ax=Figure().add_subplot(), suggest_lr=True)
    settings = "schedlab's curve"
    return {
        "fastai rules": {"settings": settings, "default": "valley", "suggestions": found},
        "torch_lr_finder rule": {"settings": settings, "default": "steepest", "suggestions": {"steepest": float(lr)}},
    }


def run_fastai(optimizer: str, seed: int) -> dict:
    from fastai.callback.schedule import minimum, slide, steep, valley  # also puts lr_find on Learner
    from fastai.data.core import DataLoaders
    from fastai.learner import Learner
    from fastai.optimizer import OptimWrapper

    cfg, run = setup(optimizer, seed)
    train, valid = loaders(run, int(cfg.trainer.batch_size), seed)
    make = partial(OptimWrapper, opt=partial(type(run.optimizer), **_hyper(run.optimizer)))
    with tempfile.TemporaryDirectory() as tmp:
        learn = Learner(DataLoaders(train, valid), run.model, loss_func=F.cross_entropy, opt_func=make, path=tmp)
        with learn.no_bar(), contextlib.redirect_stdout(io.StringIO()):
            found = learn.lr_find(
                THEIR_START, THEIR_END, THEIR_STEPS, show_plot=False, suggest_funcs=(valley, slide, minimum, steep)
            )
    steps = len(learn.recorder.lrs)
    return {
        "settings": f"{THEIR_START:g}..{THEIR_END:g}, {steps} steps",
        "default": "valley",
        "suggestions": {k: float(v) for k, v in found._asdict().items()},
    }


def run_torch_lr_finder(optimizer: str, seed: int) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from torch_lr_finder import LRFinder

    cfg, run = setup(optimizer, seed)
    train, _ = loaders(run, int(cfg.trainer.batch_size), seed)
    for group in run.optimizer.param_groups:
        group["lr"] = THEIR_START  # its start_lr is the optimizer's
    finder = LRFinder(run.model, run.optimizer, F.cross_entropy, device=run.device)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        finder.range_test(train, end_lr=THEIR_END, num_iter=THEIR_STEPS)
        _, lr = finder.plot(ax=Figure().add_subplot(), suggest_lr=True)  # skip_start=10, skip_end=5
    finder.reset()
    return {
        "settings": f"{THEIR_START:g}..{THEIR_END:g}, {len(finder.history['lr'])} steps",
        "default": "steepest",
        "suggestions": {"steepest": float(lr)},
    }


def _hyper(optimizer: torch.optim.Optimizer) -> dict:
    """The optimizer's constructor arguments, as its defaults hold them (momentum, betas, ...), less the LR."""
    return {k: v for k, v in optimizer.defaults.items() if k != "lr"}


def train_two_epochs(optimizer: str, lr: float, seed: int) -> dict:
    overrides = [f"optimizer={optimizer}", f"optimizer.lr={lr!r}", f"seed={seed}", "trainer.epochs=2", *BASE]
    with tempfile.TemporaryDirectory() as tmp:
        summary = fit(compose_config(overrides), Path(tmp) / "run")
    return {"lr": lr, "status": summary.status, "val_acc": summary.figures.get("final_val_acc")}


def best_of(grid: list[dict]) -> dict | None:
    done = [g for g in grid if g["val_acc"] is not None and math.isfinite(g["val_acc"])]
    return max(done, key=lambda g: g["val_acc"]) if done else None


def table(rows: dict) -> str:
    lines = [
        "| optimizer | tool | range, steps | suggestions (default first) | 2-epoch best LR (val acc) |",
        "|---|---|---|---|---|",
    ]
    for optimizer, row in rows.items():
        best = best_of(row.get("grid", []))
        known = f"{best['lr']:g} ({100 * best['val_acc']:.1f} %)" if best else ""
        for tool in TOOLS:
            if tool not in row:
                continue
            r = row[tool]
            order = [r["default"], *(k for k in r["suggestions"] if k != r["default"])]
            text = ", ".join(f"{'**' + k + '**' if k == r['default'] else k} {_lr(r['suggestions'][k])}" for k in order)
            lines.append(f"| {optimizer} | {tool} | {r['settings']} | {text} | {known} |")
    grids = {o: row["grid"] for o, row in rows.items() if row.get("grid")}
    for optimizer, grid in grids.items():
        cells = ", ".join(
            f"{g['lr']:g}: " + (f"{100 * g['val_acc']:.1f} %" if g["val_acc"] is not None else g["status"])
            for g in grid
        )
        lines.append(f"\n{optimizer}, 2 epochs: {cells}")
    return "\n".join(lines)


def _lr(lr: float | None) -> str:
    return "none" if lr is None else f"{lr:.3g}"


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m benchmarks.lr_find_compare", description=__doc__.split("\n\n")[0])
    p.add_argument("--optimizers", nargs="+", default=list(OPTIMIZERS), choices=OPTIMIZERS)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dataset", default="fashion_mnist", help="a conf/dataset option (synthetic: a smoke run)")
    p.add_argument("--schedlab", nargs="*", default=[], help="extra overrides for schedlab's test (lr_find.*)")
    p.add_argument("--grid", action="store_true", help="also train 2 epochs at each LR of GRID")
    p.add_argument("--json", type=Path, help="write every figure here")
    args = p.parse_args(argv)
    if not all(importlib.util.find_spec(name) for name in ("fastai", "torch_lr_finder")):
        sys.exit(NEEDS)

    BASE.append(f"dataset={args.dataset}")
    rows, started = {}, time.perf_counter()
    for optimizer in args.optimizers:
        schedlab, curve = run_schedlab(optimizer, args.seed, args.schedlab)
        row = rows[optimizer] = {
            "fastai": run_fastai(optimizer, args.seed),
            "torch_lr_finder": run_torch_lr_finder(optimizer, args.seed),
            "schedlab": schedlab,
            **their_rules_on(curve),
        }
        if not args.schedlab:
            row["schedlab before"] = run_schedlab(optimizer, args.seed, BEFORE)[0]
        if args.grid:
            chosen = schedlab["suggestions"][schedlab["default"]]  # and at schedlab's suggestion itself
            row["grid"] = [train_two_epochs(optimizer, lr, args.seed) for lr in sorted({*GRID[optimizer], chosen})]
        print(f"{optimizer}: done after {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    print(table(rows))
    out = {
        "rows": rows,
        "seed": args.seed,
        "schedlab_overrides": args.schedlab,
        "hardware": hardware(torch.device("cpu")),
    }
    if args.json:
        write_json(args.json, out)
    return out


if __name__ == "__main__":
    main()
