"""Weight averages evaluated beside the raw weights (trainer.ema, trainer.swa_start; trainer/engine/averages.py).

Oracles: torch's own AveragedModel with get_ema_multi_avg_fn for the EMA (bit for bit), the formulas computed by
hand in float64 (ema_k = d·ema_{k-1} + (1 - d)·w_k; the SWA the mean of the end-of-epoch weights, read back from
snapshots saved every epoch); BatchNorm's statistics as the mean of its inputs' batch means over the first training
batches; a run without averages for the raw figures; an uninterrupted run for a resumed one; runs of their own for
the arms of a stack."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from helpers import FAST, TINY, alone, assert_close, bad_input, compose_config, stacked, stop_in_epoch
from hydra.utils import instantiate
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

import trainer.engine.fit
from trainer.config import validate
from trainer.engine.averages import Averages
from trainer.engine.fit import fit
from trainer.engine.schedulefree import BATCH_NORM_BATCHES
from trainer.engine.setup import build
from trainer.records import EpochRow, Job, RunFolder, machine_figures, missing_for, read_metrics, read_summary

TIMING = machine_figures()
FIGURES = tuple(f"{a}_{s}_{w}" for a in ("ema", "swa") for s in ("val", "test") for w in ("loss", "acc"))
RUN = [*FAST, "trainer.max_steps_per_epoch=4", "trainer.num_threads=1"]


def tiny(seed: int = 0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    return model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)


def step(model, optimizer, generator, scaler=None):
    x = torch.randn(8, 3, generator=generator)
    y = torch.randint(0, 2, (8,), generator=generator)
    optimizer.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(x), y)
    if scaler is None:
        loss.backward()
        optimizer.step()
    else:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()


def weights(module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


# ------------------------------------------------------------------------------------- the averages themselves


def test_the_ema_follows_every_optimizer_step_as_torchs_averaged_model_and_the_formula():
    decay = 0.8
    model, optimizer = tiny()
    averages = Averages(model, optimizer, ema=decay, swa_start=None)
    torchs = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay))
    generator = torch.Generator().manual_seed(1)
    by_hand = None
    for _ in range(12):
        step(model, optimizer, generator)  # the EMA updates itself: an optimizer step hook
        torchs.update_parameters(model)
        w = [p.double() for p in weights(model)]
        by_hand = w if by_hand is None else [decay * e + (1 - decay) * v for e, v in zip(by_hand, w, strict=True)]
        ema = averages.averages["ema"]
        for mine, theirs, hand in zip(ema.module.parameters(), torchs.module.parameters(), by_hand, strict=True):
            assert torch.equal(mine, theirs)
            assert torch.allclose(mine.double(), hand, rtol=0, atol=1e-6)
    assert ema.count == 12 == int(torchs.n_averaged)
    assert any(not torch.equal(a, b) for a, b in zip(ema.module.parameters(), model.parameters(), strict=True))


def test_a_step_the_grad_scaler_skips_is_not_averaged():
    model, optimizer = tiny()
    averages = Averages(model, optimizer, ema=0.5, swa_start=None)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    generator = torch.Generator().manual_seed(0)
    step(model, optimizer, generator, scaler)
    before = weights(averages.averages["ema"].module)
    # an overflow: the scaler finds an inf gradient and skips the optimizer's step
    model[0].weight.register_hook(lambda g: torch.full_like(g, math.inf))
    step(model, optimizer, generator, scaler)
    assert averages.averages["ema"].count == 1
    assert all(torch.equal(a, b) for a, b in zip(before, weights(averages.averages["ema"].module), strict=True))


def test_the_swa_is_the_mean_of_the_end_of_epoch_weights_from_swa_start_on():
    model, optimizer = tiny()
    averages = Averages(model, optimizer, ema=None, swa_start=3)
    generator = torch.Generator().manual_seed(2)
    ends = []
    for epoch in range(1, 7):
        for _ in range(3):
            step(model, optimizer, generator)
        averages.end_epoch(epoch)
        ends.append([p.double() for p in weights(model)])
        swa = averages.averages["swa"]
        assert swa.count == max(0, epoch - 2)
        if epoch >= 3:
            mean = [sum(ws) / len(ws) for ws in zip(*ends[2:], strict=True)]
            for mine, hand in zip(swa.module.parameters(), mean, strict=True):
                assert torch.allclose(mine.double(), hand, rtol=0, atol=1e-6)
    assert not optimizer._optimizer_step_post_hooks  # the SWA needs no hook


class Batches:
    """A dataset as trainer.data's DeviceDataset offers it to evaluate(): labels, len, batches in order."""

    def __init__(self, n: int, generator):
        self.x = torch.randn(n, 2, 6, 6, generator=generator)
        self.labels = torch.randint(0, 3, (n,), generator=generator)

    def __len__(self) -> int:
        return len(self.labels)

    def batches(self, batch_size: int, generator=None, limit=None):
        for i in range(0, min(len(self), batch_size * (limit or len(self))), batch_size):
            yield self.x[i : i + batch_size], self.labels[i : i + batch_size]


def test_evaluating_an_average_recomputes_batch_norm_there_and_touches_neither_the_model_nor_an_rng():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(2, 4, 3),
        torch.nn.BatchNorm2d(4),
        torch.nn.ReLU(),
        torch.nn.Dropout(0.5),
        torch.nn.Flatten(),
        torch.nn.Linear(64, 3),
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    averages = Averages(model, optimizer, ema=0.9, swa_start=1)
    generator = torch.Generator().manual_seed(3)
    data = Batches(16 * (BATCH_NORM_BATCHES + 5), generator)
    run = SimpleNamespace(
        train_set=data, val_set=None, test_set=Batches(40, generator), amp=torch.autocast("cpu", enabled=False)
    )
    model.train()
    for x, y in data.batches(16, limit=6):
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    averages.end_epoch(1)
    state, rng = {k: v.clone() for k, v in model.state_dict().items()}, torch.get_rng_state()
    figures = averages.figures(run, batch_size=16, eval_batch_size=7)
    assert torch.equal(torch.get_rng_state(), rng)  # update_bn ran the dropout in train mode: no draw shows
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items()) and model.training
    assert figures["ema_val_acc"] is None and figures["swa_val_loss"] is None  # no validation set
    for name in ("ema", "swa"):
        average = averages.averages[name].module
        means = []  # the BatchNorm's input is the convolution's output: the same in any mode
        hook = average[1].register_forward_pre_hook(
            lambda module, args, means=means: means.append(args[0].mean(dim=(0, 2, 3)))
        )
        average.eval()
        loss = correct = 0
        with torch.no_grad():
            for x, _ in data.batches(16, limit=BATCH_NORM_BATCHES):
                average(x)
            hook.remove()
            for x, y in run.test_set.batches(40):
                out = average(x)
                loss += F.cross_entropy(out, y, reduction="sum").item()
                correct += (out.argmax(1) == y).sum().item()
        assert len(means) == BATCH_NORM_BATCHES and int(average[1].num_batches_tracked) == BATCH_NORM_BATCHES
        assert torch.allclose(average[1].running_mean, torch.stack(means).mean(0), rtol=1e-5, atol=1e-6)
        assert not torch.allclose(average[1].running_mean, model[1].running_mean)  # not the training statistics
        assert figures[f"{name}_test_loss"] == pytest.approx(loss / 40, rel=1e-5)
        assert figures[f"{name}_test_acc"] == correct / 40


# ------------------------------------------------------------------------------------- runs

AVERAGED = [*RUN, "trainer.epochs=3", "trainer.ema=0.7"]


def loss_and_acc(model, dataset) -> tuple[float, float]:
    model.eval()
    loss = correct = 0
    with torch.no_grad():
        for x, y in dataset.batches(512):
            out = model(x)
            loss += F.cross_entropy(out, y, reduction="sum").item()
            correct += (out.argmax(1) == y).sum().item()
    return loss / len(dataset), correct / len(dataset)


@pytest.mark.slow
def test_a_run_evaluates_the_ema_and_the_swa_of_its_weights(tmp_path):
    """The run's weights by hand (the same data order and steps) and their EMA in float64; the SWA against the
    mean of the snapshots saved at each epoch's end; the recorded figures against the saved averages evaluated here."""
    overrides = [*AVERAGED, "trainer.swa_start=2", "trainer.snapshots=true", "trainer.snapshot_every=1"]
    cfg = compose_config(overrides)
    fit(cfg, tmp_path / "run", {})
    saved = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert (saved["averages"]["ema"]["count"], saved["averages"]["swa"]["count"]) == (12, 2)

    run = build(cfg, Job())  # the run again, step by step, outside schedlab's loop
    shuffle = torch.Generator().manual_seed(cfg.seed)
    ema = None
    for _ in range(3):
        run.model.train()
        for x, y in run.train_set.batches(cfg.trainer.batch_size, shuffle, cfg.trainer.max_steps_per_epoch):
            run.optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(run.model(x), y).backward()
            run.optimizer.step()
            w = {k: v.double() for k, v in run.model.state_dict().items()}
            ema = w if ema is None else {k: 0.7 * ema[k] + 0.3 * w[k] for k in w}
    for key, value in run.model.state_dict().items():
        assert torch.equal(saved["model"][key], value), key  # the same steps: the same weights
        assert torch.allclose(saved["averages"]["ema"]["model"][key].double(), ema[key], rtol=0, atol=1e-6), key
    folder = RunFolder(tmp_path / "run")
    ends = [torch.load(folder.snapshot(e), weights_only=True) for e in (2, 3)]
    for key in ends[0]:
        mean = (ends[0][key].double() + ends[1][key].double()) / 2
        assert torch.allclose(saved["averages"]["swa"]["model"][key].double(), mean, rtol=0, atol=1e-6), key

    rows = read_metrics(tmp_path / "run")
    assert [set(FIGURES) & set(r) for r in rows] == [set(FIGURES[:4]), set(FIGURES), set(FIGURES)]  # no SWA before 2
    # an average of one is the weights themselves: the same figures, bit for bit
    assert [rows[1][f"swa_{k}"] for k in ("val_loss", "val_acc", "test_loss", "test_acc")] == [
        rows[1][k] for k in ("val_loss", "val_acc", "test_loss", "test_acc")
    ]
    for name in ("ema", "swa"):
        model = instantiate(cfg.model)
        model.load_state_dict(saved["averages"][name]["model"])
        for split, dataset in (("val", run.val_set), ("test", run.test_set)):
            loss, acc = loss_and_acc(model, dataset)
            assert rows[-1][f"{name}_{split}_loss"] == pytest.approx(loss, rel=1e-5)
            assert rows[-1][f"{name}_{split}_acc"] == acc
    summary = read_summary(tmp_path / "run")
    assert all(summary[f"final_{k}"] == rows[-1][k] for k in FIGURES)
    line = trainer.engine.fit.epoch_line(EpochRow.from_dict(rows[-1]), 3)
    assert f"EMA test acc {rows[-1]['ema_test_acc']:.2%}, SWA test acc {rows[-1]['swa_test_acc']:.2%}" in line


@pytest.fixture(scope="module")
def resnets(tmp_path_factory):
    """The ResNet (BatchNorm) trained with both averages and without: their folders."""
    root = tmp_path_factory.mktemp("resnets")
    base = [*RUN, "trainer.epochs=2", "model=resnet", "model.widths=[8,16]", "optimizer=momentum", "optimizer.lr=0.05"]
    for name, extra in (("plain", []), ("averaged", ["trainer.ema=0.5", "trainer.swa_start=1"])):
        fit(compose_config([*base, *extra]), root / name, {})
    return root, base


@pytest.mark.slow
def test_evaluating_the_averages_never_moves_training(resnets):
    root, _ = resnets

    def raw(run):
        return [{k: v for k, v in r.items() if k not in TIMING and k not in FIGURES} for r in read_metrics(run)]

    assert raw(root / "averaged") == raw(root / "plain")
    assert all(k in read_metrics(root / "averaged")[-1] for k in FIGURES)
    assert (root / "averaged" / "steps.csv").read_text() == (root / "plain" / "steps.csv").read_text()
    a, b = (torch.load(root / r / "checkpoint.pt", weights_only=True) for r in ("averaged", "plain"))
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in b["model"])
    assert "averages" not in b


def test_an_average_with_batch_norm_is_evaluated_with_statistics_gathered_at_its_weights(resnets):
    root, base = resnets
    cfg = compose_config([*base, "trainer.ema=0.5", "trainer.swa_start=1"])
    saved = torch.load(root / "averaged" / "checkpoint.pt", weights_only=True)
    run = build(cfg, Job())
    run.model.load_state_dict(saved["averages"]["ema"]["model"])
    name, norm = next((n, m) for n, m in run.model.named_modules() if isinstance(m, torch.nn.BatchNorm2d))
    means = []
    hook = norm.register_forward_pre_hook(lambda module, args: means.append(args[0].mean(dim=(0, 2, 3))))
    batches = list(run.train_set.batches(cfg.trainer.batch_size, limit=BATCH_NORM_BATCHES))
    run.model.eval()
    with torch.no_grad():
        for x, _ in batches:
            run.model(x)
    hook.remove()
    ema = saved["averages"]["ema"]["model"]
    assert int(ema[f"{name}.num_batches_tracked"]) == len(batches)
    assert torch.allclose(ema[f"{name}.running_mean"], torch.stack(means).mean(0), rtol=1e-4, atol=1e-6)
    assert not torch.allclose(ema[f"{name}.running_mean"], saved["model"][f"{name}.running_mean"])
    row = read_metrics(root / "averaged")[-1]
    loss, acc = loss_and_acc(run.model, run.test_set)
    assert row["ema_test_loss"] == pytest.approx(loss, rel=1e-5) and row["ema_test_acc"] == acc


@pytest.mark.slow
def test_an_interrupted_run_ends_with_the_averages_of_an_uninterrupted_one(tmp_path, monkeypatch):
    overrides = [*AVERAGED, "trainer.swa_start=1", "scheduler=cosine", "scheduler.interval=step"]
    fit(compose_config(overrides), tmp_path / "whole", {})
    real = stop_in_epoch(monkeypatch, tmp_path / "cut", 3)
    with pytest.raises(KeyboardInterrupt):
        fit(compose_config(overrides), tmp_path / "cut", {})
    monkeypatch.setattr(trainer.engine.fit, "evaluate", real)
    fit(compose_config(overrides), tmp_path / "cut", {})

    def numbers(run):
        return [{k: v for k, v in r.items() if k not in TIMING} for r in read_metrics(run)]

    assert numbers(tmp_path / "cut") == numbers(tmp_path / "whole")
    assert all(k in numbers(tmp_path / "cut")[-1] for k in FIGURES)
    whole, cut = (torch.load(tmp_path / r / "checkpoint.pt", weights_only=True)["averages"] for r in ("whole", "cut"))
    for name in ("ema", "swa"):
        assert whole[name]["count"] == cut[name]["count"]
        assert all(torch.equal(whole[name]["model"][k], cut[name]["model"][k]) for k in whole[name]["model"]), name


@pytest.mark.slow
def test_each_arm_of_a_stack_keeps_its_own_averages(tmp_path):
    base = [*TINY, "trainer.ema=0.8", "trainer.swa_start=2"]
    arms = [["seed=0", "optimizer.lr=0.1"], ["seed=1", "optimizer=momentum", "optimizer.lr=0.05", "scheduler=cosine"]]
    reference = alone(tmp_path, arms, base=base)
    _, sequential = stacked(tmp_path, "sequential", arms, "sequential", base=base)
    _, batched = stacked(tmp_path, "batched", arms, "batched", base=base)
    for ref, seq, bat in zip(reference, sequential, batched, strict=True):
        assert_close(ref, seq, rel=None)
        assert_close(ref, bat, rel=1e-4)
        for a, s, b in zip(read_metrics(ref), read_metrics(seq), read_metrics(bat), strict=True):
            assert [a.get(k) for k in FIGURES] == [s.get(k) for k in FIGURES], a["epoch"]  # bit for bit
            for key in FIGURES:
                assert (a.get(key) is None) == (b.get(key) is None)
                assert a.get(key) is None or math.isclose(a[key], b[key], rel_tol=1e-4, abs_tol=1e-4), (key, a["epoch"])
    a, b = (read_metrics(r)[-1] for r in reference)
    assert a["ema_test_loss"] != b["ema_test_loss"]  # two arms, two averages


# ------------------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    "overrides,expected",
    [
        (["trainer.ema=1"], "trainer.ema=1.0 is not allowed: must be a decay in (0, 1), e.g. 0.999, or null (no EMA)"),
        (["trainer.ema=0"], "trainer.ema=0.0 is not allowed: must be a decay in (0, 1)"),
        (["trainer.ema=nan"], "trainer.ema=nan is not allowed: must be a decay in (0, 1)"),
        (["trainer.swa_start=0"], "trainer.swa_start=0 is not allowed: must be an epoch in [1, trainer.epochs=30]"),
        (
            ["trainer.epochs=10", "trainer.swa_start=11"],
            "trainer.swa_start=11 is not allowed: must be an epoch in "
            "[1, trainer.epochs=10] (the first epoch averaged), or null",
        ),
        (["trainer.emma=0.9"], "trainer.emma: no such key in trainer (did you mean trainer.ema?)"),
    ],
)
def test_bad_values_are_one_line(capsys, overrides, expected):
    assert expected in bad_input(capsys, *overrides)


def test_the_figures_are_objectives_that_need_their_average():
    validate(compose_config(["trainer.ema=0.999", "trainer.swa_start=20", "objective=final_swa_val_acc"]))
    assert missing_for("final_ema_test_acc", True, False) is None
    assert "set trainer.ema" in missing_for("final_ema_test_acc", True, False, has_ema=False)
    assert "set trainer.swa_start" in missing_for("final_swa_val_acc", True, False, has_swa=False)
    assert missing_for("final_swa_val_acc", False, False) == "it is a validation figure"
