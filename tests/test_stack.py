"""Stacked sweeps: arms trained together in one process equal the same jobs run one by one.

Tolerances (CPU, fp32, synthetic data): the sequential strategy runs each arm's epochs with the same code,
data order and RNG streams as a run of its own, so its numbers are equal bit for bit. The batched strategy
computes all arms' forward and backward at once under vmap: its batched convolutions and matrix products sum
in another order than K separate ones, so a step's loss differs in the last float bits and the differences
grow slowly with training. Measured on the three arms below (3 epochs of 6 steps): relative differences at
most 1.6e-6 on step losses and 8e-7 on epoch losses, accuracies equal; the tests allow 1e-4. Per-step LRs
come from the same schedules and are equal exactly.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from helpers import FAST, ROOT, TINY, alone, assert_close, compose_config, find_run_files, read_run, run_cli, stacked

import trainer.engine.fit
from trainer.engine.stack import StackedModel, plan
from trainer.records import RunFolder, read_metrics

# three arms that differ in everything an arm may: seed, optimizer and its settings, schedule (per-step
# interval, momentum cycling, plateau on its own arm's validation loss), divergence settings
ARMS = [
    ["seed=0", "optimizer=nesterov", "optimizer.lr=0.05", "optimizer.weight_decay=5e-4", "scheduler=cosine"],
    ["seed=1", "optimizer=adamw", "optimizer.lr=0.003", "scheduler=onecycle", "trainer.divergence.check_every=3"],
    [
        "seed=2",
        "optimizer=momentum",
        "optimizer.lr=0.05",
        "optimizer.dampening=0.1",
        "scheduler=plateau",
        "scheduler.patience=0",
        "scheduler.interval=epoch",
    ],
]


@pytest.mark.slow
def test_both_strategies_equal_the_jobs_run_one_by_one(tmp_path):
    reference = alone(tmp_path, ARMS)
    _, sequential = stacked(tmp_path, "sequential", ARMS, "sequential")
    summaries, batched = stacked(tmp_path, "batched", ARMS, "batched")
    for ref, seq, bat, summary in zip(reference, sequential, batched, summaries, strict=True):
        assert_close(ref, seq, rel=None)  # bit for bit
        assert_close(ref, bat, rel=1e-4)
        assert summary.status == "completed"
        assert summary.stack == {"jobs": ["0", "1", "2"], "strategy": "batched"}
        written = json.loads((bat / "summary.json").read_text())
        assert written["stack"] == summary.stack and written["final_test_acc"] == summary["final_test_acc"]
        for name in ("config.yaml", "provenance.json", "best.pt"):
            assert (bat / name).exists()
    # the plateau arm reduced its LR on its own validation loss, as it did alone
    assert [r.lr for r in RunFolder(batched[2]).read_metrics()] == [
        r.lr for r in RunFolder(reference[2]).read_metrics()
    ]


def test_a_stacked_optimizer_step_is_torch_optim_arm_by_arm():
    """SGD (momentum, dampening, Nesterov, weight decay), Adam and AdamW over stacked parameters, with LRs that
    change every step, give the parameters torch.optim gives each model alone (rel 1e-5 after 30 steps)."""
    from trainer.models import MLP

    makers = [
        lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, dampening=0.1, weight_decay=1e-3),
        lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3),
        lambda p: torch.optim.Adam(p, lr=1e-2, betas=(0.8, 0.99), weight_decay=1e-3),
        lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=0.1, amsgrad=True),
    ]

    def models():
        out = []
        for k in range(len(makers)):
            torch.manual_seed(k)
            out.append(MLP(in_channels=1, image_size=6, hidden=[16]))
        return out

    separate, together = models(), models()
    optimizers = [make(m.parameters()) for make, m in zip(makers, separate, strict=True)]
    stack = StackedModel(together)
    stacked_optimizers = [make(m.parameters()) for make, m in zip(makers, together, strict=True)]
    for k, opt in enumerate(stacked_optimizers):
        stack.take_over(k, opt)
    gen = torch.Generator().manual_seed(0)
    for step in range(30):
        x = torch.randn(len(makers), 8, 1, 6, 6, generator=gen)
        y = torch.randint(0, 10, (len(makers), 8), generator=gen)
        scale = 0.5 * (1 + math.cos(math.pi * step / 30))
        for k, (m, opt) in enumerate(zip(separate, optimizers, strict=True)):
            opt.param_groups[0]["lr"] = opt.defaults["lr"] * scale
            opt.zero_grad()
            torch.nn.functional.cross_entropy(m(x[k]), y[k]).backward()
            opt.step()
        out = stack(x)
        losses = torch.nn.functional.cross_entropy(out.flatten(0, 1), y.flatten(), reduction="none").view(
            len(makers), -1
        )
        for opt in stacked_optimizers:
            opt.param_groups[0]["lr"] = opt.defaults["lr"] * scale
            opt.zero_grad()
        losses.mean(1).sum().backward()
        stack.share_gradients(list(range(len(makers))))
        for opt in stacked_optimizers:
            opt.step()
    for a, b in zip(separate, together, strict=True):
        for (name, p), q in zip(a.named_parameters(), b.parameters(), strict=True):
            torch.testing.assert_close(q, p, rtol=1e-5, atol=1e-6, msg=name)
            assert p.abs().sum() > 0


def test_one_arms_overflow_does_not_skip_another_arms_step():
    """Per-arm loss scaling: an arm whose scaled gradients overflow skips its step and lowers its scale; the
    other arm steps."""
    from trainer.models import MLP

    torch.manual_seed(0)
    models = [MLP(in_channels=1, image_size=4, hidden=[8]) for _ in range(2)]
    stack = StackedModel(models)
    optimizers = [torch.optim.SGD(m.parameters(), lr=0.1) for m in models]
    for k, opt in enumerate(optimizers):
        stack.take_over(k, opt)
    scalers = [torch.amp.GradScaler("cpu", init_scale=3e38), torch.amp.GradScaler("cpu", init_scale=2.0**10)]
    before = [[p.detach().clone() for p in m.parameters()] for m in models]
    x, y = 1e3 * torch.randn(2, 5, 1, 4, 4), torch.randint(0, 10, (2, 5))  # gradients ~1e3: x 3e38 overflows
    losses = (
        torch.nn.functional.cross_entropy(stack(x).flatten(0, 1), y.flatten(), reduction="none").view(2, -1).mean(1)
    )
    sum(s.scale(losses[k]) for k, s in enumerate(scalers)).backward()
    stack.share_gradients([0, 1])
    for s, opt in zip(scalers, optimizers, strict=True):
        s.step(opt)
        s.update()
    assert all(torch.equal(a, b) for a, b in zip(before[0], models[0].parameters(), strict=True))
    assert scalers[0].get_scale() < 3e38
    assert not any(torch.equal(a, b) for a, b in zip(before[1], models[1].parameters(), strict=True))
    assert scalers[1].get_scale() == 2.0**10


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["sequential", "batched"])
def test_a_diverged_arm_is_frozen_and_the_others_are_unaffected(tmp_path, strategy):
    arms = [ARMS[0], ["seed=1", "optimizer.lr=1e4", "trainer.divergence.check_every=1"], ARMS[2]]
    summaries, dirs = stacked(tmp_path, "with", arms, strategy)
    _, without = stacked(tmp_path, "without", [ARMS[0], ARMS[2]], strategy)
    diverged = summaries[1]
    assert diverged.status == "diverged" and diverged.diverged_at["epoch"] == 1
    steps = RunFolder(dirs[1]).read_steps()
    assert steps[-1].step == diverged.diverged_at["step"] and not RunFolder(dirs[1]).read_metrics()
    assert [s.status for s in summaries] == ["completed", "diverged", "completed"]
    assert_close(dirs[0], without[0], rel=None if strategy == "sequential" else 1e-4)
    assert_close(dirs[2], without[1], rel=None if strategy == "sequential" else 1e-4)


@pytest.mark.slow
def test_batch_norm_keeps_per_arm_statistics(tmp_path):
    base = [*TINY, "model=resnet", "model.widths=[8,16]", "trainer.epochs=2", "trainer.max_steps_per_epoch=3"]
    arms = [["seed=0"], ["seed=1", "optimizer=adam", "optimizer.lr=0.01"]]
    reference = alone(tmp_path, arms, base)
    _, batched = stacked(tmp_path, "batched", arms, "batched", base)
    for ref, bat in zip(reference, batched, strict=True):
        assert_close(ref, bat, rel=1e-3)  # eval-mode figures use each arm's own running statistics
    a, b = (torch.load(d / "best.pt", weights_only=True)["model"] for d in batched)
    assert not torch.equal(a["features.1.running_mean"], b["features.1.running_mean"])


@pytest.mark.slow
def test_an_interrupted_stack_continues_every_arm_from_its_checkpoint(tmp_path, monkeypatch):
    whole, whole_dirs = stacked(tmp_path, "whole", ARMS, "batched")
    real = trainer.engine.fit.evaluate
    calls = {"n": 0}

    def evaluate(*args, **kwargs):  # Ctrl-C during epoch 2's evaluation of the second arm
        calls["n"] += 1
        if calls["n"] == 2 * len(ARMS) * 2 + 3:  # val + test per arm and epoch
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer.engine.fit, "evaluate", evaluate)
    with pytest.raises(KeyboardInterrupt):
        stacked(tmp_path, "cut", ARMS, "batched")
    dirs = [tmp_path / "cut" / str(i) for i in range(len(ARMS))]
    assert {json.loads((d / "summary.json").read_text())["status"] for d in dirs} == {"interrupted"}
    monkeypatch.setattr(trainer.engine.fit, "evaluate", real)
    summaries, dirs = stacked(tmp_path, "cut", ARMS, "batched")
    for a, b, s in zip(whole_dirs, dirs, summaries, strict=True):
        assert_close(a, b, rel=None)
        assert s.status == "completed"


CUDA = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


@pytest.mark.slow
@pytest.mark.parametrize(
    "device", [[], pytest.param(["trainer.device=cuda", "trainer.deterministic=true"], marks=CUDA, id="cuda")]
)
def test_sequential_arms_draw_dropout_from_their_own_streams_and_resume_them(tmp_path, monkeypatch, device):
    arms = [["seed=0"], ["seed=1", "optimizer=momentum"], ["seed=2", "scheduler=cosine"]]
    base = [*TINY, "model=mlp", "model.dropout=0.3", *device]
    reference = alone(tmp_path, arms, base)
    _, whole = stacked(tmp_path, "whole", arms, "sequential", base)
    for ref, run in zip(reference, whole, strict=True):
        assert_close(ref, run, rel=None)  # each arm's dropout masks are those of its run alone
    real = trainer.engine.fit.evaluate
    calls = {"n": 0}

    def evaluate(*args, **kwargs):  # Ctrl-C during epoch 2, after the stack's checkpoint of epoch 1
        calls["n"] += 1
        if calls["n"] == 2 * len(arms) + 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer.engine.fit, "evaluate", evaluate)
    with pytest.raises(KeyboardInterrupt):
        stacked(tmp_path, "cut", arms, "sequential", base)
    monkeypatch.setattr(trainer.engine.fit, "evaluate", real)
    _, cut = stacked(tmp_path, "cut", arms, "sequential", base)
    for run, resumed in zip(whole, cut, strict=True):
        assert_close(run, resumed, rel=None)


def test_plan_groups_jobs_that_can_share_a_process_and_says_why_the_others_cannot():
    cfgs = [
        compose_config([*FAST, *o])
        for o in (
            ["seed=0"],
            ["seed=1", "optimizer=adam"],
            ["model=mlp"],
            ["seed=2", "scheduler=cosine"],
            ["trainer.epochs=5"],
        )
    ]
    p = plan(cfgs, max_stack=None)
    assert p.stacks == [[0, 1, 3]]
    assert "model._target_" in p.alone[2] and "trainer.epochs" in p.alone[4]
    p = plan(cfgs, max_stack=2)
    assert p.stacks == [[0, 1]] and "max_stack=2" in p.alone[3]


SWEEP = [*FAST, "trainer.epochs=2", "trainer.max_steps_per_epoch=4", "trainer.num_threads=1"]


@pytest.mark.slow
def test_the_stacked_launcher_writes_each_job_as_the_basic_launcher_does(tmp_path):
    stacked_dir, basic_dir = tmp_path / "stacked", tmp_path / "basic"
    sweep = ["-m", *SWEEP, "seed=0,1", "model=lenet,mlp"]
    result = run_cli([*sweep, "hydra/launcher=stacked", f"hydra.sweep.dir={stacked_dir}"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("train as one stack") == 2
    assert run_cli([*sweep, f"hydra.sweep.dir={basic_dir}"]).returncode == 0
    for job in "0123":
        a, b = stacked_dir / job, basic_dir / job
        assert sorted(p.name for p in (a / ".hydra").iterdir()) == ["config.yaml", "hydra.yaml", "overrides.yaml"]
        assert (a / ".hydra" / "overrides.yaml").read_text() == (b / ".hydra" / "overrides.yaml").read_text()
        assert (a / "config.yaml").read_text() == (b / "config.yaml").read_text()
        assert_close(b, a, rel=None)  # CPU: the sequential strategy
        assert "epoch 2/2" in (a / "run.log").read_text() and (a / "run.log").read_text().count("epoch ") == 2
        assert json.loads((a / "summary.json").read_text())["stack"]["strategy"] == "sequential"
    report = subprocess.run(
        [sys.executable, "-m", "experiments.report", str(stacked_dir), str(basic_dir), "--out", str(tmp_path / "r")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert report.returncode == 0, report.stderr
    rows = (tmp_path / "r" / "results.csv").read_text().splitlines()
    assert len(rows) == 9  # header + 4 stacked + 4 basic runs, none listed as damaged or unfinished


@pytest.mark.slow
def test_a_job_that_cannot_stack_runs_alone_with_one_line_why(tmp_path):
    result = run_cli(["-m", *SWEEP, "trainer.epochs=1,2", "hydra/launcher=stacked", f"hydra.sweep.dir={tmp_path}"])
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if "runs on its own" in line]
    assert len(lines) == 2 and all("trainer.epochs" in line for line in lines)
    assert [len(read_metrics(tmp_path / j)) for j in "01"] == [1, 2]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("setting", "says"),
    [
        ("hydra.launcher.strategy=fastest", "hydra.launcher.strategy='fastest' is not an option: use one of auto, "),
        ("hydra.launcher.max_stack=0", "hydra.launcher.max_stack=0 is not allowed: must be an integer >= 1"),
    ],
)
def test_a_bad_launcher_setting_is_one_line_before_any_job(tmp_path, setting, says):
    result = run_cli(["-m", *SWEEP, "seed=0,1", "hydra/launcher=stacked", setting, f"hydra.sweep.dir={tmp_path}"])
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"schedlab: error: {says}"), lines
    assert not (tmp_path / "0").exists()


@pytest.mark.slow
def test_optuna_trials_train_as_stacks(tmp_path):
    result = run_cli(
        [
            "-m",
            *SWEEP,
            "hparams_search=optuna_lr",
            "hydra.sweeper.n_trials=4",
            "hydra.sweeper.n_jobs=2",
            "hydra/launcher=stacked",
            f"hydra.sweep.dir={tmp_path}",
        ]
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("train as one stack") == 2
    assert (tmp_path / "optimization_results.yaml").exists()
    objectives = [json.loads((tmp_path / j / "summary.json").read_text())["stack"]["jobs"] for j in "0123"]
    assert objectives == [["0", "1"], ["0", "1"], ["2", "3"], ["2", "3"]]


@pytest.mark.slow
def test_sigkill_mid_stack_and_the_same_command_continues_every_arm(tmp_path):
    """The sweep's command, killed with SIGKILL after the stack's first checkpoint, run again as typed: every
    arm ends with the numbers of an uninterrupted stacked sweep."""
    args = [
        *SWEEP,
        "trainer.epochs=3",
        "trainer.max_steps_per_epoch=8",
        "seed=0,1",
        "optimizer=sgd,adam",
        "hydra/launcher=stacked",
        "hydra.launcher.strategy=batched",
    ]
    whole = tmp_path / "whole"
    assert run_cli(["-m", *args, f"hydra.sweep.dir={whole}"]).returncode == 0
    cut = tmp_path / "cut"
    env = {**os.environ, "WANDB_MODE": "disabled"}
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "run.py"), "-m", *args, f"hydra.sweep.dir={cut}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    while time.time() < deadline and not all(len(read_metrics(cut / j)) >= 1 for j in "0123"):
        time.sleep(0.05)
    while time.time() < deadline and not list((cut / ".stacks").glob("*.pt")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert any(len(read_metrics(cut / j)) < 3 for j in "0123")
    result = run_cli(["-m", *args, f"hydra.sweep.dir={cut}"])
    assert result.returncode == 0, result.stderr
    for j in "0123":
        assert_close(whole / j, cut / j, rel=None)
        assert json.loads((cut / j / "summary.json").read_text())["status"] == "completed"


@pytest.mark.parametrize("extra", [[], ["trainer.compile=true"], ["trainer.precision=fp16"]])
@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_the_cuda_stack_matches_its_runs(tmp_path, extra):
    base = [*FAST, "trainer.epochs=2", "trainer.max_steps_per_epoch=6", "trainer.device=cuda", *extra]
    reference = alone(tmp_path, ARMS, base)
    summaries, batched = stacked(tmp_path, "batched", ARMS, "auto", base)
    assert {s.stack["strategy"] for s in summaries} == {"batched"}
    for ref, bat in zip(reference, batched, strict=True):
        assert_close(ref, bat, rel=5e-2 if extra else 1e-2)  # bf16/fp16 autocast: low-precision sums


@pytest.mark.slow
def test_each_arm_of_a_stack_logs_to_its_own_wandb_run(tmp_path):
    result = run_cli(
        [
            "-m",
            *SWEEP,
            "trainer.epochs=1",
            "logger=wandb",
            "scheduler=constant,cosine",
            "seed=0,1",
            "hydra/launcher=stacked",
            f"hydra.sweep.dir={tmp_path}",
        ],
        env={"WANDB_MODE": "offline"},
    )
    assert result.returncode == 0, result.stderr
    ids, groups = set(), set()
    for job in "0123":
        files = find_run_files(tmp_path / job)
        assert len(files) == 1
        logged = read_run(files[0])
        ids.add(logged.run.run_id)
        groups.add(logged.run.run_group)
        assert "seed=" not in logged.run.run_group and logged.exit_code == 0
        epochs = [h for h in logged.history if "epoch" in h]
        assert [h["epoch/test_acc"] for h in epochs] == [r["test_acc"] for r in read_metrics(tmp_path / job)]
        assert logged.summary["status"] == "completed"
    assert len(ids) == 4 and len(groups) == 2  # one run per arm, one group per schedule


@pytest.mark.slow
def test_a_sweep_begun_one_job_per_process_continues_its_interrupted_jobs_on_their_own(tmp_path):
    """A job folder holding a checkpoint of a run of its own is never restarted inside a stack."""
    args = ["-m", *SWEEP, "seed=0,1", f"hydra.sweep.dir={tmp_path}"]
    assert run_cli(args).returncode == 0
    for name in ("summary.json", "checkpoint.pt", "metrics.jsonl", "steps.csv"):  # job 1 never got to run
        (tmp_path / "1" / name).unlink()
    finished = (tmp_path / "0" / "metrics.jsonl").read_text()
    result = run_cli([*args, "hydra/launcher=stacked"])
    assert result.returncode == 0, result.stderr
    assert "job 0 runs on its own: its folder holds a checkpoint of a run of its own" in result.stdout
    assert (tmp_path / "0" / "metrics.jsonl").read_text() == finished
    assert len(read_metrics(tmp_path / "1")) == 2
