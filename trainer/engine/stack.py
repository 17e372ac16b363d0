"""Stacked training: the arms of a sweep that share a dataset, a model and a training budget train together,
in one process on one device (README, Stacked sweeps), each writing its own run folder exactly as a run of its
own would.

What may differ inside a stack: the seed (each arm's init and data order), the optimizer and every one of
its settings, the schedule (not its scheduler.batch_size: one batch size a step for all arms), the divergence
and early-stopping settings, the LR range test, the objective and the tracker. Everything else must be equal
(`stack_key`).

Two strategies, both per-arm exact in their semantics (each arm's LR, momentum and loss are its own at every
step; a diverged or early-stopped arm is frozen while the others go on):
- `sequential` (the CPU default): the arms' epochs run one after another on per-arm modules, over one copy
  of the data on the device; the numbers equal those of separate runs bit for bit. On a CPU, batching the
  arms' convolutions is slower than running them one by one (the work is compute-bound there); the gain is
  the per-job cost a process, its imports, its data load and its tracker start.
- `batched` (the CUDA default): one forward and one backward per step for all arms. The parameters of the
  K arms live in stacked tensors [K, ...] run under `torch.func.vmap`; every arm's module and torch
  optimizer keep working on their own slice (a leaf tensor sharing the stacked tensor's storage), so each
  arm steps with torch's own optimizer, its own hyperparameters, its own grad scaler. The K per-arm mean
  losses are summed before `backward()`, so arm k's gradient is exactly that of its own loss; BatchNorm keeps
  per-arm running statistics (stacked buffers). A batched convolution sums in another order than K separate
  ones, so batched and sequential numbers agree to float tolerance, not bitwise.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap

from trainer import models
from trainer.config import PER_ARM, keys_with, typed
from trainer.engine import checkpoint
from trainer.engine.checkpoint import atomic_torch_save, comparable_config, config_differences, without
from trainer.engine.fit import Arm, terminate_as_interrupt
from trainer.engine.loop import blown_up, epoch_result
from trainer.engine.setup import build, resolve_device
from trainer.errors import ConfigError
from trainer.records import Job, RunFolder, Summary

log = logging.getLogger("schedlab")

STRATEGIES = ("auto", "sequential", "batched")
# What may differ between the arms of one stack (the schema's PER_ARM keys); every other key must be equal.
PER_ARM_KEYS = keys_with(PER_ARM)


def shared_config(cfg) -> dict:
    """The part of a job's config that every arm of its stack must have the same."""
    full = comparable_config(cfg)
    batch_size = (full.get("scheduler") or {}).get("batch_size")
    c = without(full, PER_ARM_KEYS)
    c["trainer"]["checkpoint"] = cfg.trainer.checkpoint  # one checkpoint for all arms, or none
    # the schedule is the arm's, but not its batch size's: a step draws the batches of every arm at one size
    c["scheduler"] = {"batch_size": batch_size}
    return c


def stack_key(cfg) -> str:
    return json.dumps(shared_config(cfg), sort_keys=True, default=str)


@dataclass
class Plan:
    """How a sweep's jobs (by position) are trained: stacks of two or more, and jobs on their own with why."""

    stacks: list[list[int]]
    alone: dict[int, str]


def plan(cfgs: list, max_stack: int | None, names: list[str] | None = None) -> Plan:
    """Partition jobs into stacks of jobs with equal shared configs, in sweep order, at most max_stack each.
    A job no other job can share a process with runs alone; `alone` says why (the keys that differ from the
    closest job), naming jobs by `names` (their numbers)."""
    names = names or [str(i) for i in range(len(cfgs))]
    groups: dict[str, list[int]] = {}
    stacks, alone = [], {}
    for i, cfg in enumerate(cfgs):
        if cfg.branch.parent is not None:
            alone[i] = "a branch starts from its parent's state (branch.parent)"
            continue
        groups.setdefault(stack_key(cfg), []).append(i)
    size = max_stack or len(cfgs)
    for members in groups.values():
        for start in range(0, len(members), size):
            chunk = members[start : start + size]
            if len(chunk) > 1:
                stacks.append(chunk)
            elif len(members) > 1:
                alone[chunk[0]] = f"the stacks of its kind are full (hydra.launcher.max_stack={max_stack})"
            elif len(cfgs) == 1:
                alone[chunk[0]] = "the sweep has no other job"
            else:
                alone[chunk[0]] = _why_alone(cfgs, chunk[0], names)
    stacks.sort(key=lambda s: s[0])
    return Plan(stacks, alone)


def _why_alone(cfgs: list, i: int, names: list[str]) -> str:
    mine = shared_config(cfgs[i])
    differences = []
    for j, other in enumerate(cfgs):
        if j != i:
            differences.append((config_differences(mine, shared_config(other)), j))
    diff, j = min(differences, key=lambda d: len(d[0]))
    keys = ", ".join(d.split(" (")[0] for d in diff[:3]) + (", ..." if len(diff) > 3 else "")
    return f"its {keys} differ{'s' if len(diff) == 1 else ''} from every other job's (closest: job {names[j]})"


def check_strategy(name: str) -> None:
    if name not in STRATEGIES:
        raise ConfigError(f"hydra.launcher.strategy={name!r} is not an option: use one of {', '.join(STRATEGIES)}")


def resolve_strategy(name: str, device: torch.device) -> str:
    check_strategy(name)
    if name == "auto":
        return "batched" if device.type == "cuda" else "sequential"
    return name


def checkpoint_path(sweep_dir: Path, folders: list[Path]) -> Path:
    """Where a stack's one checkpoint lives: beside its arms' folders, named by them."""
    names = "+".join(sorted(f.name for f in folders))
    digest = hashlib.sha1(names.encode()).hexdigest()[:10]
    return Path(sweep_dir) / ".stacks" / f"stack-{digest}.pt"


# ------------------------------------------------------------------------------ the batched model


def _set(module: nn.Module, name: str, value: torch.Tensor, kind: str) -> None:
    *path, leaf = name.split(".")
    owner = module.get_submodule(".".join(path))
    getattr(owner, kind)[leaf] = value


class StackedModel:
    """K modules of one architecture whose parameters and buffers live in stacked tensors [K, ...]. Each
    module keeps a leaf per parameter that shares its slice's storage: its optimizer updates the stacked
    tensor in place, and its own forward (evaluation) sees the current values."""

    def __init__(self, modules: list[nn.Module], compile: bool = False):
        self.modules = modules
        self.base = copy.deepcopy(modules[0]).to("meta")
        self.params: dict[str, torch.Tensor] = {}
        self.buffers: dict[str, torch.Tensor] = {}
        self.rebound: list[dict[nn.Parameter, nn.Parameter]] = [{} for _ in modules]
        for name, _ in modules[0].named_parameters():
            # contiguous: channels_last weights under vmap reach a slow, unsafe in-place fallback (as_strided_)
            stacked = torch.stack([m.get_parameter(name).detach() for m in modules]).contiguous().requires_grad_()
            self.params[name] = stacked
            for k, m in enumerate(modules):
                leaf = nn.Parameter(stacked.data[k])
                self.rebound[k][m.get_parameter(name)] = leaf
                _set(m, name, leaf, "_parameters")
        for name, _ in modules[0].named_buffers():
            stacked = torch.stack([m.get_buffer(name) for m in modules])
            self.buffers[name] = stacked
            for k, m in enumerate(modules):
                _set(m, name, stacked[k], "_buffers")

        def one(params, buffers, x):
            return functional_call(self.base, (params, buffers), (x,))

        self.forward = vmap(one, randomness="different")
        if compile:
            self.forward = torch.compile(self.forward)

    def take_over(self, k: int, optimizer: torch.optim.Optimizer) -> None:
        """Point arm k's optimizer (built over its module's own parameters, no state yet) at the shared leaves."""
        for group in optimizer.param_groups:
            group["params"] = [self.rebound[k].get(p, p) for p in group["params"]]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.base.train()
        return self.forward(self.params, self.buffers, x)

    def share_gradients(self, live: list[int]) -> None:
        """Give each live arm's leaves their slice of the stacked gradients."""
        for name, stacked in self.params.items():
            for k in live:
                self.modules[k].get_parameter(name).grad = stacked.grad[k]
            stacked.grad = None


def train_batched_epoch(stacked: StackedModel, arms: list[Arm], live: list[int], run, epoch: int) -> dict:
    """One epoch of the live arms, batched: per step one forward and one backward for all of them, then each
    arm's own optimizer, grad scaler and schedule step. An arm whose loss blows up stops there (frozen);
    returns each live arm's EpochResult, as train_epoch() does for one."""
    t = arms[live[0]].t
    steps, size = arms[live[0]].steps_in(epoch), arms[live[0]].batch_size(epoch)  # every arm's (shared_config)
    device = run.device
    for k in live:
        arms[k].model.train()
    iters = {k: run.train_set.batches(size, arms[k].shuffle, t.max_steps_per_epoch) for k in live}
    count = len(arms)
    loss_sum = torch.zeros(count, device=device)
    correct = torch.zeros(count, device=device, dtype=torch.long)
    step_losses = torch.zeros(count, steps, device=device)
    lrs: dict[int, list[float]] = {k: [] for k in live}
    first = {k: arms[k].progress.first_loss for k in live}
    active = list(live)
    seen = 0
    step = arms[live[0]].progress.step
    for i in range(steps):
        batches = {k: next(iters[k]) for k in active}
        filler = batches[active[0]]  # frozen arms compute on any batch; nothing of theirs is used
        x = torch.stack([batches.get(k, filler)[0] for k in range(count)]).contiguous()  # as the weights are
        y = torch.stack([batches.get(k, filler)[1] for k in range(count)])
        for k in active:
            lrs[k].append(arms[k].schedule.lr)
        with run.amp:
            out = stacked(x)
            losses = F.cross_entropy(out.flatten(0, 1), y.flatten(), reduction="none").view(count, -1).mean(1)
        for k in active:
            arms[k].optimizer.zero_grad(set_to_none=True)
        sum(arms[k].scaler.scale(losses[k]) for k in active).backward()
        stacked.share_gradients(active)
        for k in active:
            arms[k].scaler.step(arms[k].optimizer)
            arms[k].scaler.update()
            arms[k].schedule.step_batch()
            if arms[k].bar is not None:
                arms[k].bar.update(1)
        with torch.no_grad():
            step_losses[:, i] = losses.detach()
            loss_sum += losses.detach() * y.shape[1]
            correct += (out.argmax(2) == y).sum(1)
        seen += y.shape[1]
        check = [k for k in active if first[k] is None or (step + i + 1) % arms[k].t.divergence.check_every == 0]
        if check:
            values = losses.detach().tolist()  # one host read for every arm that checks at this step
            for k in check:
                first[k] = first[k] or values[k]
                if blown_up(values[k], first[k], arms[k].t.divergence.factor):
                    active.remove(k)
            if not active:
                break
    losses = step_losses.tolist()
    sums, hits = loss_sum.tolist(), correct.tolist()
    return {
        k: epoch_result(
            epoch,
            step,
            lrs[k],
            losses[k][: len(lrs[k])],
            sums[k],
            hits[k],
            seen,
            first[k],
            arms[k].t.divergence.factor,
        )
        for k in live
    }


# ------------------------------------------------------------------------------ the stack


def fit_stack(
    cfgs: list,
    run_dirs: list[Path],
    jobs: list[Job | dict],
    *,
    state_path: Path,
    strategy: str = "auto",
    loggers: list[logging.Logger] | None = None,
) -> list[Summary]:
    """Train the arms `cfgs` together, each into its run folder; `state_path` is the stack's checkpoint: the
    same call after an interruption continues every arm from it. Returns each arm's summary. Every arm holds
    its folder for the whole stack; `loggers`: each arm's (its epoch lines), else the one of fit()."""
    folders = [RunFolder(d) for d in run_dirs]
    with ExitStack() as hold:
        for folder in folders:
            hold.enter_context(folder.owned())
        hold.enter_context(terminate_as_interrupt())
        return _train_stack(
            [typed(c) for c in cfgs], folders, [Job.of(j) for j in jobs], strategy, Path(state_path), loggers
        )


def _load_state(path: Path, cfgs: list, folders: list[RunFolder]) -> dict | None:
    if not path.exists():
        for cfg, folder in zip(cfgs, folders, strict=True):
            checkpoint.load(folder, cfg)  # the rules of a run's folder: a finished one is never written over
        return None
    saved = checkpoint.read(path, "arms", what="this stack")
    if sorted(saved["arms"]) != sorted(f.dir.name for f in folders):
        raise ConfigError(f"resume: {path} is the checkpoint of another stack ({', '.join(sorted(saved['arms']))})")
    for cfg, folder in zip(cfgs, folders, strict=True):
        arm = saved["arms"][folder.dir.name]
        if not arm.get("done"):
            checkpoint.check_config(arm, cfg, folder.dir)
    return saved


def _train_stack(
    cfgs: list, folders: list[RunFolder], jobs: list[Job], strategy: str, state_path: Path, loggers: list | None
) -> list[Summary]:
    stack = Stack(cfgs, folders, jobs, state_path, loggers)
    try:
        stack.build(strategy)
        for epoch in stack.epochs():
            stack.train_epoch(epoch)
        for arm in stack.members:
            arm.finish()
    except BaseException as e:
        for arm in stack.members:
            arm.finish(e)
        raise
    return stack.summaries()


class Stack:
    """The arms of one stack and what they share: the device, the data, the strategy, the stack's checkpoint.
    _train_stack() above drives it: build, then one epoch of every live arm at a time."""

    def __init__(self, cfgs: list, folders: list[RunFolder], jobs: list[Job], state_path: Path, loggers: list | None):
        self.cfgs, self.folders, self.state_path = cfgs, folders, state_path
        self.saved = _load_state(state_path, cfgs, folders)
        self.record = {"jobs": [f.dir.name for f in folders], "strategy": None}  # summary.json's `stack`
        self.finished: list[Summary | None] = [None] * len(folders)  # arms that finished before a resume
        self.members: list[Arm] = []  # the arms this process trains
        self.jobs = jobs
        for k, (cfg, folder, job) in enumerate(zip(cfgs, folders, jobs, strict=True)):
            entry = self.saved["arms"][folder.dir.name] if self.saved else None
            if entry is not None and entry.get("done"):  # finished before the interruption: its folder is final
                self.finished[k] = folder.read_summary() or Summary(status="failed", error="summary.json is missing")
            else:
                self.members.append(Arm(cfg, folder, job, entry))
                self.members[-1].log = loggers[k] if loggers else log
        self.runs: list = []
        self.rng: list = []  # each arm's own torch streams (dropout) in the sequential strategy
        self.stacked: StackedModel | None = None
        self.live = list(range(len(self.members)))

    @property
    def t(self):
        return self.cfgs[0].trainer  # the trainer keys every arm shares

    def build(self, strategy: str) -> None:
        """Open the trackers, pick the strategy for the device, build every arm on one copy of the data (as it
        would be built alone: its streams captured after its build), stack the models for `batched`, and put a
        checkpoint's state back into every arm."""
        for arm in self.members:
            arm.open_tracker()
        device = resolve_device(self.t.device, self.jobs[0].num)
        self.record["strategy"] = self.strategy = resolve_strategy(strategy, device)
        for arm in self.members:
            self.runs.append(build(arm.cfg, arm.job, shared=self.runs[0] if self.runs else None))
            arm.begin(self.runs[-1], restore=False)
            arm.summary.stack = self.record
            self.rng.append(checkpoint.rng_state(arm.shuffle))
        if self.strategy == "batched" and self.members:
            self.fall_back_if_unbatchable()
        if self.strategy == "batched" and self.members:
            self.stacked = StackedModel([arm.model for arm in self.members], compile=self.t.compile)
            for p, arm in enumerate(self.members):
                self.stacked.take_over(p, arm.optimizer)
        for p, arm in enumerate(self.members):
            if arm.saved is not None:
                checkpoint.restore(arm.saved, **arm.parts())
                self.rng[p] = checkpoint.rng_state(arm.shuffle)
        if self.saved is not None:
            torch.set_rng_state(self.saved["torch_rng"])
        compiled = not self.stacked and self.t.compile
        self.forward = [torch.compile(arm.model) if compiled else arm.model for arm in self.members]

    def fall_back_if_unbatchable(self) -> None:
        """A model that cannot run under torch.func.vmap (an op without a batching rule, an in-place update of a
        captured tensor) trains its arms one after another instead: one line says why, and the stack's record
        says `sequential`. Tried on two examples of the data before any step, so nothing has been trained yet."""
        x, _ = next(self.runs[0].train_set.batches(models.PROBE_BATCH))
        problem = models.vmap_problem(self.members[0].model, x, self.runs[0].amp)
        if problem is None:
            return
        print(
            f"schedlab: model._target_={self.cfgs[0].model._target_} cannot be stacked ({problem}): "
            f"its {len(self.members)} arms train one after another",
            file=sys.stderr,
            flush=True,
        )
        self.record["strategy"] = self.strategy = "sequential"

    def epochs(self) -> Iterator[int]:
        epoch = min((arm.progress.epoch for arm in self.members), default=0) + 1
        while self.live and epoch <= self.t.epochs:
            yield epoch
            epoch += 1

    def train_epoch(self, epoch: int) -> None:
        """One epoch of every live arm, then the stack's commit point; an arm that ends is finished and frozen."""
        ended = self.batched_epoch(epoch) if self.stacked is not None else self.sequential_epoch(epoch)
        for p in ended:
            self.members[p].finish()
            self.live.remove(p)
        if self.t.checkpoint:
            _save_state(
                self.state_path, self.folders, self.members, torch.get_rng_state(), None if self.stacked else self.rng
            )

    def batched_epoch(self, epoch: int) -> list[int]:
        """One batched forward and backward per step for all live arms; every arm's train_time is the stack's."""
        start = time.perf_counter()
        results = train_batched_epoch(self.stacked, self.members, self.live, self.runs[0], epoch)
        train_time = time.perf_counter() - start
        members, forward, runs = self.members, self.forward, self.runs
        return [
            p
            for p in self.live
            if not members[p].record(epoch, results[p], forward[p], runs[p], train_time, commit=False)
        ]

    def sequential_epoch(self, epoch: int) -> list[int]:
        """Each live arm's epoch with its own streams, then its evaluation: its train_time is its own."""
        ended = []
        for p in self.live:
            arm, start = self.members[p], time.perf_counter()
            checkpoint.set_rng_state(self.rng[p], arm.shuffle)
            batches = self.runs[0].train_set.batches(arm.batch_size(epoch), arm.shuffle, arm.t.max_steps_per_epoch)
            result = _train_epoch()(self.forward[p], arm.optimizer, arm.schedule, batches, **arm.epoch_settings(epoch))
            self.rng[p] = checkpoint.rng_state(arm.shuffle)
            if not arm.record(epoch, result, self.forward[p], self.runs[p], time.perf_counter() - start, commit=False):
                ended.append(p)
        return ended

    def summaries(self) -> list[Summary]:
        by_folder = {arm.folder.dir: arm.summary for arm in self.members}
        return [s if s is not None else by_folder[f.dir] for s, f in zip(self.finished, self.folders, strict=True)]


def _train_epoch():
    from trainer.engine import fit  # looked up at call time, as fit() does, so a test can stand in for it

    return fit.train_epoch


def _save_state(
    path: Path, folders: list[RunFolder], members: list[Arm], torch_rng: torch.Tensor, rng: list | None
) -> None:
    """The stack's commit point: every arm's state at the end of the same epoch, in one file. An arm that
    has finished (before a resume too) is marked done: its folder is final. `rng`: each arm's own torch
    streams (sequential strategy: checkpoint.rng_state), which its entry keeps in place of the process's."""
    entries = {f.dir.name: {"done": True} for f in folders}
    for p, arm in enumerate(members):
        if not arm.finished:
            entries[arm.folder.dir.name] = entry = checkpoint.state_dict(arm.cfg, **arm.parts(), **arm.state())
            if rng is not None:
                entry["rng"] = rng[p]
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_torch_save(path, {"arms": entries, "torch_rng": torch_rng})
