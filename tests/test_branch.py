"""Cooldowns branched from a run (WSD's point: one long constant-LR run, cooldowns started from its checkpoints):
trainer.keep_checkpoints keeps the state of chosen epochs, and branch.parent / branch.epoch start a new run from one
of them with a schedule of its own, whose t = 0 is the branch point and whose span is the epochs after it.

Oracles: a run of its own that changes schedule at the branch point (scheduler=custom with the piecewise factor
written here, constant and then the cooldown, computed with the built-in's own arithmetic), bit for bit on CPU; a
shorter run for a kept checkpoint; the cooldown shapes' formulas for the LR of every step; an uninterrupted branch
for a resumed one."""

from __future__ import annotations

import json
import math

import pytest
import torch
from helpers import FAST, TINY, bad_input, compose_config, run_cli, stacked, stop_in_epoch

import trainer.engine.fit
from trainer.engine.fit import fit
from trainer.errors import ConfigError
from trainer.records import RunFolder, machine_figures, read_metrics, read_summary

TIMING = machine_figures()
SPE = 4  # steps per epoch
RUN = [*FAST, f"trainer.max_steps_per_epoch={SPE}", "trainer.num_threads=1", "trainer.ema=0.8"]
N, END = 2, 5  # the branch point, the branch's last epoch (past the parent's 4)
BASE = 0.3  # optimizer=sgd's lr


def constant_then_linear_to_zero(t: float, start: int, span: float, steps_per_epoch: int) -> float:
    """scheduler=custom's factor of a run that is constant until epoch `start`, then decays linearly to zero over
    `span` epochs: scheduler=linear_to_zero's own arithmetic at the branch's position (k / steps_per_epoch, k its
    steps since the branch point), so that both give the same floats."""
    k = round(t * steps_per_epoch) - start * steps_per_epoch
    if k < 0:
        return 1.0
    return 1.0 + (0.0 - 1.0) * min(k / steps_per_epoch, span) / span


def numbers(run) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in read_metrics(run)]


def branch_of(parent, *overrides: str, epoch: int = N, end: int = END) -> list[str]:
    return [*RUN, f"trainer.epochs={end}", f"branch.parent={parent}", f"branch.epoch={epoch}", *overrides]


@pytest.fixture(scope="module")
def parent(tmp_path_factory):
    """A constant-LR run of 4 epochs that keeps its epoch-1 and epoch-2 states."""
    run = tmp_path_factory.mktemp("wsd") / "parent"
    fit(compose_config([*RUN, "trainer.epochs=4", f"trainer.keep_checkpoints=[{N},1]"]), run, {})
    return run


@pytest.fixture(scope="module")
def cooled(parent):
    """The parent's linear cooldown from epoch 2 to epoch 5, stepped per step."""
    run = parent.parent / "branch"
    fit(compose_config(branch_of(parent, "scheduler=linear_to_zero", "scheduler.interval=step")), run, {})
    return run


def load(path) -> dict:
    return torch.load(path, weights_only=True)


def same_tensors(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def same_state(a, b) -> bool:
    """Two nested state dicts (an optimizer's) with equal tensors and values."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same_state(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same_state(x, y) for x, y in zip(a, b, strict=True))
    return a == b


@pytest.mark.slow
def test_a_kept_checkpoint_is_the_state_at_the_end_of_its_epoch(parent, tmp_path):
    assert RunFolder(parent).kept_epochs() == [1, N]
    fit(compose_config([*RUN, f"trainer.epochs={N}"]), tmp_path / "short", {})  # a run that ends there
    kept, short = load(RunFolder(parent).kept(N)), load(tmp_path / "short" / "checkpoint.pt")
    assert kept["state"]["epoch"] == N and load(parent / "checkpoint.pt")["state"]["epoch"] == 4
    assert same_tensors(kept["model"], short["model"])
    assert same_tensors(kept["averages"]["ema"]["model"], short["averages"]["ema"]["model"])
    assert same_state(kept["optimizer"], short["optimizer"]) and same_state(kept["rng"], short["rng"])
    assert [r["test_loss"] for r in kept["state"]["history"]] == [r["test_loss"] for r in short["state"]["history"]]


@pytest.mark.slow
def test_a_branch_equals_a_run_that_changes_schedule_at_its_branch_point(parent, cooled, tmp_path):
    kwargs = [
        f"+scheduler.kwargs.start={N}",
        f"+scheduler.kwargs.span={END - N}",
        f"+scheduler.kwargs.steps_per_epoch={SPE}",
    ]
    reference = [
        *RUN,
        f"trainer.epochs={END}",
        "scheduler=custom",
        "scheduler.interval=step",
        f"scheduler.fn={__name__}.constant_then_linear_to_zero",
        *kwargs,
    ]
    fit(compose_config(reference), tmp_path / "reference", {})
    assert numbers(cooled) == numbers(tmp_path / "reference")  # every epoch, the shared ones too, bit for bit
    assert (cooled / "steps.csv").read_text() == (tmp_path / "reference" / "steps.csv").read_text()
    a, b = load(cooled / "checkpoint.pt"), load(tmp_path / "reference" / "checkpoint.pt")
    assert same_tensors(a["model"], b["model"])
    assert same_tensors(a["averages"]["ema"]["model"], b["averages"]["ema"]["model"])
    assert a["averages"]["ema"]["count"] == b["averages"]["ema"]["count"] == END * SPE
    # the first N epochs are the parent's; the cooldown is linear from the base LR at the branch point to 0 at END
    assert numbers(cooled)[:N] == numbers(parent)[:N] and numbers(cooled)[N] != numbers(parent)[N]
    steps = [s for s in RunFolder(cooled).read_steps() if s.epoch > N]
    assert [s.lr for s in steps] == pytest.approx(
        [BASE * (1 - k / (SPE * (END - N))) for k in range(len(steps))], abs=1e-15
    )
    whole, own = read_summary(tmp_path / "reference"), read_summary(cooled)
    assert {k: v for k, v in own.items() if k.startswith(("final_", "best_"))} == {
        k: v for k, v in whole.items() if k.startswith(("final_", "best_"))
    }


def test_a_branch_names_its_parent(parent, cooled):
    summary = read_summary(cooled)
    record = summary["branch"]
    assert record["parent"] == str(parent.resolve()) and record["epoch"] == N
    assert record["shared_steps"] == N * SPE
    assert 0 < record["shared_wall_time_s"] <= read_summary(parent)["wall_time_s"]
    assert summary["epochs"] == END and summary["epochs_completed"] == END and summary["status"] == "completed"
    provenance = json.loads((cooled / "provenance.json").read_text())
    assert provenance["branch"]["parent"] == record["parent"] and provenance["branch"]["epoch"] == N
    assert (
        provenance["branch"]["parent_git_commit"] == json.loads((parent / "provenance.json").read_text())["git_commit"]
    )
    assert "branch" not in read_summary(parent)


SHAPES = {  # a cooldown option, and its factor of the base LR at progress p through the branch's span
    "linear_to_zero": (["scheduler=linear_to_zero"], lambda p: 1 - p),
    "cosine_to_zero": (["scheduler=cosine_to_zero"], lambda p: (1 + math.cos(math.pi * p)) / 2),
    "1-sqrt": (["scheduler=wsd", "scheduler.decay_fraction=1", "scheduler.shape=1-sqrt"], lambda p: 1 - math.sqrt(p)),
    "half_then_linear": (
        ["scheduler=wsd", "scheduler.decay_fraction=0.5", "scheduler.shape=linear"],
        lambda p: 1 if p <= 0.5 else 1 - (p - 0.5) / 0.5,
    ),
}


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.slow
def test_each_cooldown_shape_spans_the_epochs_after_the_branch_point(parent, tmp_path, shape):
    overrides, factor = SHAPES[shape]
    fit(compose_config(branch_of(parent, *overrides, "scheduler.interval=step", end=4)), tmp_path / shape, {})
    steps = [s for s in RunFolder(tmp_path / shape).read_steps() if s.epoch > N]
    span = SPE * (4 - N)
    assert len(steps) == span
    assert [s.lr for s in steps] == pytest.approx([BASE * factor(k / span) for k in range(span)], rel=1e-12, abs=1e-15)


@pytest.mark.slow
def test_an_interrupted_branch_ends_as_an_uninterrupted_one(parent, cooled, tmp_path, monkeypatch):
    overrides = branch_of(parent, "scheduler=linear_to_zero", "scheduler.interval=step")
    real = stop_in_epoch(monkeypatch, tmp_path / "cut", 4)
    with pytest.raises(KeyboardInterrupt):
        fit(compose_config(overrides), tmp_path / "cut", {})
    assert len(read_metrics(tmp_path / "cut")) == 3
    monkeypatch.setattr(trainer.engine.fit, "evaluate", real)
    fit(compose_config(overrides), tmp_path / "cut", {})  # resumes from its own checkpoint.pt
    assert numbers(tmp_path / "cut") == numbers(cooled)
    assert (tmp_path / "cut" / "steps.csv").read_text() == (cooled / "steps.csv").read_text()
    assert read_summary(tmp_path / "cut")["branch"]["epoch"] == N
    assert same_tensors(load(tmp_path / "cut" / "checkpoint.pt")["model"], load(cooled / "checkpoint.pt")["model"])


def test_a_branch_may_start_an_swa_its_parent_had_not(parent, tmp_path):
    fit(compose_config(branch_of(parent, "scheduler=linear_to_zero", "trainer.swa_start=3", end=4)), tmp_path / "b", {})
    rows = read_metrics(tmp_path / "b")
    assert ["swa_test_acc" in r for r in rows] == [False, False, True, True]
    assert rows[2]["swa_test_loss"] == rows[2]["test_loss"]  # an average of one epoch: its weights


# ------------------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    "overrides,expected",
    [
        (
            ["branch.epoch=3"],
            "branch.epoch=3 is not allowed: {parent} holds no checkpoint of epoch 3 (its checkpoint.pt "
            "is epoch 4's): run the parent with trainer.keep_checkpoints=[3]",
        ),
        (
            ["branch.epoch=5"],
            "branch.epoch=5 is not allowed: must be an epoch in [1, trainer.epochs=5): the branch "
            "trains the epochs after it",
        ),
        (
            ["optimizer.lr=0.1"],
            "branch.parent='{parent}' is not allowed: its config differs from the branch's in "
            "optimizer.lr (0.3 in the parent, 0.1 now): a branch may change only scheduler, "
            "objective and trainer.epochs (and ",
        ),
        (["seed=1"], "its config differs from the branch's in seed (0 in the parent, 1 now)"),
        (["trainer.ema=null"], "its config differs from the branch's in trainer.ema (0.8 in the parent, None now)"),
        (
            ["trainer.swa_start=1"],
            "in trainer.swa_start (None in the parent, 1 now)",
        ),  # the parent's epoch 1 is not in it
        (
            ["scheduler.warmup.epochs=4"],
            "scheduler.warmup.epochs must be < the branch's epochs (trainer.epochs - branch.epoch) (3)",
        ),
        (
            ["trainer.snapshots=true", "trainer.snapshot_every=1"],
            "trainer.snapshots=True is not allowed: a branch takes no snapshots",
        ),
    ],
)
def test_a_branch_the_parent_cannot_give_is_refused_in_one_line(parent, tmp_path, overrides, expected):
    cfg = compose_config([*branch_of(parent, "scheduler=linear_to_zero"), *overrides])
    with pytest.raises(ConfigError) as e:
        fit(cfg, tmp_path / "refused", {})
    message = str(e.value)
    assert "\n" not in message and expected.format(parent=parent) in message, message
    assert not (tmp_path / "refused" / "config.yaml").exists()  # before any work


def test_branch_keys_are_refused_in_one_line(tmp_path):
    cases = [
        (["branch.epoch=2"], "branch.epoch=2 is not allowed: needs branch.parent=<run folder>: the run to branch from"),
        ([f"branch.parent={tmp_path}"], "is not allowed: needs branch.epoch=N: the parent's epoch to branch at"),
        ([f"branch.parent={tmp_path / 'nothing'}", "branch.epoch=1"], "is not allowed: must be a schedlab run folder"),
        ([f"branch.parent={tmp_path}", "branch.epoch=0"], "branch.epoch=0 is not allowed: must be an epoch in [1, "),
    ]
    for overrides, expected in cases:
        with pytest.raises(ConfigError, match=None) as e:
            fit(compose_config([*RUN, *overrides]), tmp_path / "refused", {})
        assert expected in str(e.value), str(e.value)


def test_kept_epochs_must_be_epochs_of_the_run(capsys):
    err = bad_input(capsys, "trainer.epochs=10", "trainer.keep_checkpoints=[5,11]")
    assert "trainer.keep_checkpoints[1]=11 is not allowed: must be an epoch in [1, trainer.epochs=10]" in err


def test_a_branch_runs_on_its_own_not_in_a_stack(parent, tmp_path):
    arms = [
        [f"branch.parent={parent}", f"branch.epoch={N}", "seed=0"],
        [f"branch.parent={parent}", f"branch.epoch={N}"],
    ]
    with pytest.raises(ConfigError, match="is not allowed in a stack: a branch trains on its own"):
        stacked(
            tmp_path, "stack", arms, "sequential", base=[*TINY, "trainer.epochs=4", "trainer.max_steps_per_epoch=4"]
        )


# ------------------------------------------------------------------------------------- the command line


@pytest.mark.slow
def test_a_sweep_over_branch_epochs_and_cooldown_shapes(parent, tmp_path):
    sweep = tmp_path / "sweep"
    result = run_cli(
        [
            "-m",
            *RUN,
            "trainer.epochs=4",
            f"branch.parent={parent}",
            "branch.epoch=1,2",
            "scheduler=linear_to_zero,cosine_to_zero",
            f"hydra.sweep.dir={sweep}",
        ]
    )
    assert result.returncode == 0, result.stderr[-2000:]
    jobs = sorted(p for p in sweep.iterdir() if p.name.isdigit())
    assert len(jobs) == 4
    seen = set()
    for job in jobs:
        summary = read_summary(job)
        assert summary["status"] == "completed" and summary["branch"]["parent"] == str(parent.resolve())
        overrides = dict(o.split("=", 1) for o in summary["overrides"])
        assert summary["branch"]["epoch"] == int(overrides["branch.epoch"])
        assert numbers(job)[: summary["branch"]["epoch"]] == numbers(parent)[: summary["branch"]["epoch"]]
        seen.add((overrides["branch.epoch"], overrides["scheduler"]))
    assert len(seen) == 4
    # the parent's epoch 3 has no kept checkpoint: one line, exit 2, before any work
    refused = run_cli(
        [*RUN, "trainer.epochs=4", f"branch.parent={parent}", "branch.epoch=3", f"hydra.run.dir={tmp_path / 'one'}"]
    )
    assert refused.returncode == 2
    assert refused.stderr.strip().count("\n") == 0 and "branch.epoch=3 is not allowed" in refused.stderr
