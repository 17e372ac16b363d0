"""Schedule-free SGD and AdamW (Defazio et al. 2024, the `schedulefree` package): the model trains at y and is
evaluated at the average x. Every evaluation and checkpoint sees x, training never notices (y comes back
exactly), a resume continues y, and only a constant LR (warmed up or not) may drive them.

The oracle is the package itself, outside schedlab: the same model, data order and steps trained by hand with
the package's train() / eval() protocol."""

from __future__ import annotations

import math

import pytest
import schedulefree
import torch
import torch.nn.functional as F
from helpers import FAST, TINY, alone, assert_close, bad_input, compose_config, stacked, stop_in_epoch

import trainer.engine.fit
import trainer.engine.schedulefree
from trainer.config import validate
from trainer.engine.fit import fit
from trainer.engine.schedulefree import averaged, train_mode
from trainer.engine.setup import build
from trainer.records import machine_figures, read_metrics, read_summary
from trainer.tasks.eval import eval_config, run_eval

RUN = [*FAST, "trainer.epochs=2", "trainer.max_steps_per_epoch=5", "trainer.num_threads=1"]
OPTIMIZERS = {
    "sgd_schedulefree": ["optimizer=sgd_schedulefree", "optimizer.lr=0.5"],
    "adamw_schedulefree": ["optimizer=adamw_schedulefree", "optimizer.weight_decay=0.01"],
}
TIMING = machine_figures()


def loss_at(model, dataset) -> float:
    """The mean cross-entropy of `model` over a device dataset, computed here (not by schedlab's evaluate)."""
    model.eval()
    with torch.no_grad():
        total = sum(F.cross_entropy(model(x), y, reduction="sum").item() for x, y in dataset.batches(512))
    return total / len(dataset)


def by_hand(cfg, epochs: int):
    """The run trained outside schedlab's loop, as the package's README says: train() before training, eval()
    before evaluating. Returns each epoch's test loss at x, the model (at x) and its optimizer."""
    run = build(cfg, trainer.records.Job())
    model, optimizer, t = run.model, run.optimizer, cfg.trainer
    shuffle = torch.Generator(device=run.device).manual_seed(int(cfg.seed))
    losses = []
    for _ in range(epochs):
        model.train()
        optimizer.train()
        for x, y in run.train_set.batches(t.batch_size, shuffle, t.max_steps_per_epoch):
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        optimizer.eval()
        losses.append(loss_at(model, run.test_set))
    return losses, model, optimizer, run


@pytest.mark.parametrize("name", OPTIMIZERS)
@pytest.mark.slow
def test_evaluation_and_checkpoint_hold_the_packages_averaged_weights(tmp_path, name):
    overrides = [*RUN, *OPTIMIZERS[name]]
    cfg = compose_config(overrides)
    fit(cfg, tmp_path / "run", {})
    rows = read_metrics(tmp_path / "run")
    losses, model, optimizer, run = by_hand(cfg, 2)

    # the test loss schedlab recorded is the loss at x, and x is not y
    assert [r["test_loss"] for r in rows] == pytest.approx(losses, rel=1e-5)
    optimizer.train()
    at_y = loss_at(model, run.test_set)
    assert not math.isclose(at_y, losses[-1], rel_tol=1e-3), (
        "x and y give the same loss: the test cannot tell them apart"
    )

    # checkpoint.pt: "model" holds x, "train_model" y; the package's own eval() of y with the saved state gives x
    saved = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    optimizer.eval()
    for key, value in model.state_dict().items():
        assert torch.allclose(saved["model"][key], value, rtol=1e-5, atol=1e-6), key
    assert any(not torch.equal(saved["model"][k], saved["train_model"][k]) for k in saved["model"])
    again = build(cfg, trainer.records.Job())
    again.model.load_state_dict(saved["train_model"])
    again.optimizer.load_state_dict(saved["optimizer"])
    assert again.optimizer.param_groups[0]["train_mode"]  # saved as training goes on
    again.optimizer.eval()
    for key, value in again.model.state_dict().items():
        assert torch.equal(saved["model"][key], value), key

    # task=eval evaluates x: the last epoch's recorded figures
    command = ["task=eval", f"resume={tmp_path / 'run'}"]
    result = run_eval(*eval_config(compose_config(command), command))
    assert (result["test_loss"], result["test_acc"]) == (rows[-1]["test_loss"], rows[-1]["test_acc"])


@pytest.mark.slow
def test_batch_norm_statistics_are_gathered_at_the_averaged_weights(tmp_path):
    """With BatchNorm (the ResNet) the statistics gathered while training at y do not fit x: evaluation and the
    checkpoint get statistics recomputed at x, a plain average over the first training batches in order."""
    cfg = compose_config([*RUN, "model=resnet", *OPTIMIZERS["sgd_schedulefree"]])
    fit(cfg, tmp_path / "run", {})
    saved = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    run = build(cfg, trainer.records.Job())
    run.model.load_state_dict(saved["model"])
    name, norm = next((n, m) for n, m in run.model.named_modules() if isinstance(m, torch.nn.BatchNorm2d))
    means = []  # the first BatchNorm's input depends on the convolution before it only: the same in any mode
    hook = norm.register_forward_pre_hook(lambda module, args: means.append(args[0].mean(dim=(0, 2, 3))))
    batches = list(run.train_set.batches(cfg.trainer.batch_size, limit=trainer.engine.schedulefree.BATCH_NORM_BATCHES))
    run.model.eval()
    with torch.no_grad():
        for x, _ in batches:
            run.model(x)
    hook.remove()
    assert int(saved["model"][f"{name}.num_batches_tracked"]) == len(batches)
    assert torch.allclose(saved["model"][f"{name}.running_mean"], torch.stack(means).mean(0), rtol=1e-4, atol=1e-6)
    # the test loss recorded is that of x with these statistics
    assert read_metrics(tmp_path / "run")[-1]["test_loss"] == pytest.approx(loss_at(run.model, run.test_set), rel=1e-5)


def test_evaluating_never_moves_training(tmp_path):
    """y comes back bit for bit after each evaluation: two epochs evaluated after each equal one uninterrupted
    stretch of the same steps (the package's own eval() / train() round trip would move y in the last bits)."""
    cfg = compose_config([*RUN, *OPTIMIZERS["adamw_schedulefree"]])
    run = build(cfg, trainer.records.Job())
    train_mode(run.optimizer)
    batches = list(run.train_set.batches(128, torch.Generator().manual_seed(0), 4))
    start = {k: v.clone() for k, v in run.model.state_dict().items()}
    trajectories = []
    for evaluate_between in (False, True):
        run.model.load_state_dict(start)
        run.optimizer.state.clear()
        run.optimizer.param_groups[0].update(k=0, weight_sum=0.0, lr_max=-1.0)
        for x, y in batches:
            run.optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(run.model(x), y).backward()
            run.optimizer.step()
            if evaluate_between:
                with averaged(run.optimizer) as swapped:
                    assert swapped and not run.optimizer.param_groups[0]["train_mode"]
                    loss_at(run.model, run.test_set)
                assert run.optimizer.param_groups[0]["train_mode"]
        trajectories.append({k: v.clone() for k, v in run.model.state_dict().items()})
    for key in start:
        assert torch.equal(trajectories[0][key], trajectories[1][key]), key


@pytest.mark.slow
def test_an_interrupted_run_ends_with_the_numbers_of_an_uninterrupted_one(tmp_path, monkeypatch):
    overrides = [
        *RUN,
        "trainer.epochs=3",
        *OPTIMIZERS["sgd_schedulefree"],
        "scheduler.warmup.epochs=1",
        "scheduler.interval=step",
    ]
    fit(compose_config(overrides), tmp_path / "whole", {})
    real = stop_in_epoch(monkeypatch, tmp_path / "cut", 2)
    with pytest.raises(KeyboardInterrupt):
        fit(compose_config(overrides), tmp_path / "cut", {})
    assert read_summary(tmp_path / "cut")["status"] == "interrupted"
    monkeypatch.setattr(trainer.engine.fit, "evaluate", real)
    fit(compose_config(overrides), tmp_path / "cut", {})

    def numbers(run):
        return [{k: v for k, v in r.items() if k not in TIMING} for r in read_metrics(run)]

    assert numbers(tmp_path / "cut") == numbers(tmp_path / "whole")
    assert (tmp_path / "cut" / "steps.csv").read_text() == (tmp_path / "whole" / "steps.csv").read_text()
    whole, cut = (torch.load(tmp_path / r / "checkpoint.pt", weights_only=True) for r in ("whole", "cut"))
    for part in ("model", "train_model"):
        assert all(torch.equal(whole[part][k], cut[part][k]) for k in whole[part]), part
    z = [s["z"] for s in whole["optimizer"]["state"].values()], [s["z"] for s in cut["optimizer"]["state"].values()]
    assert all(torch.equal(a, b) for a, b in zip(*z, strict=True))


def test_the_lr_range_test_leaves_the_optimizer_in_train_mode(tmp_path):
    cfg = compose_config(
        [*RUN, *OPTIMIZERS["adamw_schedulefree"], "trainer.epochs=1", "trainer.lr_find=true", "lr_find.num_steps=10"]
    )
    summary = fit(cfg, tmp_path / "run", {})  # training steps after the test: a step in eval mode raises
    assert summary.status == "completed" and summary.lr_find["lr"] is not None
    run = build(cfg, trainer.records.Job())
    from trainer.engine.lr_find import range_test_from_config

    range_test_from_config(cfg, run.model, run.optimizer, run.train_set, run.amp)
    assert all(g["train_mode"] for g in run.optimizer.param_groups)
    assert not run.optimizer.state  # put back as it was: no step taken


@pytest.mark.parametrize("name", OPTIMIZERS)
@pytest.mark.parametrize(
    "schedule",
    [
        "scheduler=cosine",
        "scheduler=cosine_warmup",
        "scheduler=cosine_restarts",
        "scheduler=onecycle",
        "scheduler=plateau",
        "scheduler=torch",
    ],
)
def test_only_a_constant_schedule_drives_them(capsys, name, schedule):
    err = bad_input(capsys, f"optimizer={name}", schedule)
    assert f"optimizer={name} (schedulefree." in err and "replaces the schedule" in err
    assert "use scheduler=constant, with a warmup if wanted (scheduler.warmup.epochs)" in err


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_a_constant_schedule_with_or_without_warmup_is_accepted(name):
    validate(compose_config([f"optimizer={name}"]))
    validate(compose_config([f"optimizer={name}", "scheduler.warmup.epochs=5", "scheduler.warmup.start_lr=0"]))


@pytest.mark.parametrize(
    "override,expected",
    [
        ("optimizer=sgd_schedulefree optimizer.momentum=0", "optimizer.momentum=0.0 is not allowed: must be in (0, 1)"),
        ("optimizer=sgd_schedulefree optimizer.lr=0", "optimizer.lr=0.0 is not allowed: must be > 0"),
        (
            "optimizer=adamw_schedulefree optimizer.betas=[0,0.999]",
            "optimizer.betas[0]=0.0 is not allowed: must be in (0, 1)",
        ),
        (
            "optimizer=adamw_schedulefree optimizer.betas=[0.9,1]",
            "optimizer.betas[1]=1.0 is not allowed: must be in [0, 1)",
        ),
        (
            "optimizer=adamw_schedulefree optimizer.warmup_steps=-1",
            "optimizer.warmup_steps=-1 is not allowed: must be >= 0",
        ),
        ("optimizer=sgd_schedulefree optimizer.weight_lr_power=-2", "optimizer.weight_lr_power=-2.0 is not allowed"),
        ("optimizer=sgd_schedulefree optimizer.nesterov=true", "optimizer.nesterov: no such key in optimizer"),
        ("optimizer=sgd_schedulefree task=toy", "is not drawn by task=toy"),
    ],
)
def test_bad_values_are_one_line(capsys, override, expected):
    assert expected in bad_input(capsys, *override.split())


def test_defaults_are_the_packages():
    import inspect

    for name, cls in (
        ("sgd_schedulefree", schedulefree.SGDScheduleFree),
        ("adamw_schedulefree", schedulefree.AdamWScheduleFree),
    ):
        node = compose_config([f"optimizer={name}"]).optimizer
        for key, parameter in inspect.signature(cls).parameters.items():
            if key != "params":
                assert node[key] == (
                    list(parameter.default) if isinstance(parameter.default, tuple) else parameter.default
                ), (name, key)


STACK_ARMS = [
    ["seed=0", *OPTIMIZERS["sgd_schedulefree"]],
    ["seed=1", *OPTIMIZERS["adamw_schedulefree"], "scheduler.warmup.epochs=1"],
    ["seed=2", "optimizer=momentum", "optimizer.lr=0.05", "scheduler=cosine"],
]


@pytest.mark.slow
def test_a_stacked_sweep_gives_each_arm_its_numbers_alone(tmp_path):
    base = [*TINY, "trainer.epochs=2", "trainer.max_steps_per_epoch=4"]
    reference = alone(tmp_path, STACK_ARMS, base=base)
    _, sequential = stacked(tmp_path, "sequential", STACK_ARMS, "sequential", base=base)
    _, batched = stacked(tmp_path, "batched", STACK_ARMS, "batched", base=base)
    for ref, seq, bat in zip(reference, sequential, batched, strict=True):
        assert_close(ref, seq, rel=None)
        assert_close(ref, bat, rel=1e-4)
