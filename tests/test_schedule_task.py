"""task=schedule: curves drawn with no data and no training, several overlaid in one figure."""

from __future__ import annotations

import json

import matplotlib.image
import numpy as np
import pytest
from helpers import compose_config, run_cli

from schedulers import lr_curve
from trainer.errors import ConfigError
from trainer.tasks import schedule as schedule_task


@pytest.mark.slow
def test_schedule_task_overlays_several_schedules(tmp_path):
    run = tmp_path / "run"
    result = run_cli(
        [
            "task=schedule",
            "scheduler=cosine_warmup",
            "schedule_plot.compare=[multistep,sqrt,'arm=d2l_sqrt']",
            "trainer.epochs=12",
            "schedule_plot.steps_per_epoch=4",
            "dataset.root=/nonexistent",
            f"hydra.run.dir={run}",
        ]
    )
    assert result.returncode == 0, result.stderr
    png = run / "schedule.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert matplotlib.image.imread(png).shape[2] in (3, 4)
    curves = json.loads((run / "schedule.json").read_text())
    assert list(curves) == ["cosine_warmup", "multistep", "sqrt", "arm=d2l_sqrt"]
    for label, override, lr in [
        ("cosine_warmup", "scheduler=cosine_warmup", 0.3),
        ("multistep", "scheduler=multistep", 0.3),
        ("sqrt", "scheduler=sqrt", 0.3),
        ("arm=d2l_sqrt", "arm=d2l_sqrt", 0.1),
    ]:
        cfg = compose_config([override, "trainer.epochs=12"])
        t, expected = lr_curve(cfg.scheduler, lr, 12, 4)
        assert curves[label]["lr"] == pytest.approx(expected, rel=1e-12), label
        assert len(t) == 12 * 4
    # the printed table starts at the warmup's start LR and names every curve
    assert "cosine_warmup" in result.stdout and "arm=d2l_sqrt" in result.stdout
    assert not (run / "metrics.jsonl").exists()  # nothing trained


@pytest.mark.parametrize(
    "overrides",
    [
        # per epoch: SGD's momentum down a cosine, and a batch-size warmup
        [
            "optimizer=momentum",
            "scheduler.momentum={name:cosine,final_lr:0.5}",
            "scheduler.batch_size={name:constant,warmup:{epochs:4,start_lr:32}}",
        ],
        # per step: Adam's beta2 and its weight decay, each along a schedule of its own, after an LR warmup
        [
            "optimizer=adamw",
            "scheduler=cosine_warmup",
            "scheduler.interval=step",
            "scheduler.beta2={name:linear,start_factor:1,end_factor:0.99}",
            "scheduler.weight_decay={name:cosine,final_lr:0}",
        ],
        # the momentum onecycle cycles itself (cycle_momentum, torch's default), per step
        ["optimizer=nesterov", "scheduler=onecycle", "scheduler.interval=step"],
    ],
    ids=["momentum-batch_size-epoch", "beta2-weight_decay-step", "onecycle-cycled-momentum"],
)
@pytest.mark.slow
def test_the_values_a_schedule_drives_are_drawn_as_the_trainer_sets_them(tmp_path, overrides):
    import torch

    from schedulers import batch_sizes, build_schedule
    from trainer.config import typed
    from trainer.engine.setup import build_optimizer

    epochs, spe, run = 12, 4, tmp_path / "run"
    common = [*overrides, f"trainer.epochs={epochs}", f"schedule_plot.steps_per_epoch={spe}"]
    result = run_cli(["task=schedule", *common, "dataset.root=/nonexistent", f"hydra.run.dir={run}"])
    assert result.returncode == 0, result.stderr
    ((label, drawn),) = json.loads((run / "schedule.json").read_text()).items()
    # the oracle: the run's own optimizer under the trainer's scheduler, stepped through the run
    cfg = typed(compose_config(common))
    optimizer = build_optimizer(cfg.optimizer, [torch.nn.Parameter(torch.zeros(2))])
    schedule = build_schedule(cfg.scheduler, optimizer, spe, epochs)
    seen: dict[str, list[float]] = {}
    for _ in range(epochs):
        for _ in range(spe):
            group = optimizer.param_groups[0]
            values = {"momentum": group.get("momentum"), "weight_decay": group["weight_decay"]}
            if "betas" in group:
                values |= {"momentum": group["betas"][0], "beta2": group["betas"][1]}
            for key, value in values.items():
                seen.setdefault(key, []).append(value)
            schedule.step_batch()
        schedule.step_epoch()
    keys = [k for k in ("momentum", "beta2", "weight_decay") if k in drawn]
    scheduled = [k.split("=")[0].removeprefix("scheduler.") for k in overrides if "={name" in k and "batch" not in k]
    assert keys == (["momentum"] if "scheduler=onecycle" in overrides else scheduled)
    for key in keys:
        assert drawn[key] == pytest.approx(seen[key], rel=1e-12, abs=1e-15), key
        assert len(set(drawn[key])) > 1, key  # it moves
    sizes = batch_sizes(cfg.scheduler, epochs, cfg.trainer.batch_size)
    assert ("batch_size" in drawn) == (sizes is not None)
    if sizes is not None:
        assert drawn["batch_size"] == [float(sizes[s // spe]) for s in range(epochs * spe)]
        assert drawn["batch_size"][0] == 32 and drawn["batch_size"][-1] == cfg.trainer.batch_size
    lines = result.stdout.splitlines()
    for key in [*keys, *(["batch_size"] if sizes is not None else [])]:  # a row of the printed table each
        assert any(line.startswith(f"{label} {key} ") for line in lines), key


# --- long runs: drawn at a bounded number of steps ----------------------------------------------------------


def test_drawn_steps_keep_every_epoch_start_and_stay_bounded():
    assert schedule_task.drawn_steps(3, 4, limit=100).tolist() == list(range(12))
    steps = schedule_task.drawn_steps(10, 1000, limit=50)  # 5 steps of each epoch
    assert len(steps) == 51 and steps[-1] == 9999
    assert set(range(0, 10000, 1000)) <= set(steps.tolist())
    assert len(set((steps // 1000).tolist())) == 10
    huge = schedule_task.drawn_steps(10**9, 235, limit=1000, epochs_shown=[0, 15, 250_000_000])
    assert len(huge) <= 1003 and huge[0] == 0 and huge[-1] == 10**9 * 235 - 1
    assert {15 * 235, 250_000_000 * 235} <= set(huge.tolist())
    assert np.all(np.diff(huge) > 0)


@pytest.mark.parametrize(
    "overrides",
    [
        ["scheduler=cosine_warmup"],
        ["scheduler=cosine_warmup", "scheduler.interval=step"],
        ["scheduler=multistep", "scheduler.warmup.epochs=2"],
        ["scheduler=onecycle"],
        ["scheduler=onecycle", "scheduler.interval=step"],
        ["scheduler=cyclic", "scheduler.interval=step"],
        ["scheduler=plateau", "scheduler.warmup.epochs=1"],
        ["scheduler=cosine_restarts", "scheduler.T_0=3"],
        ["scheduler=torch", "scheduler.step_size=4"],
    ],
)
def test_a_long_run_is_drawn_at_fewer_steps_with_the_trainers_lrs(monkeypatch, overrides):
    cfg = compose_config([*overrides, "trainer.epochs=12"])
    t_all, lr_all = lr_curve(cfg.scheduler, 0.3, 12, 40)
    monkeypatch.setattr(schedule_task, "MAX_POINTS", 60)  # 480 steps: 5 of each epoch
    t, lr = schedule_task.draw_curve("x", cfg.scheduler, 0.3, 12, 40, epochs_shown=[7])
    steps = schedule_task.drawn_steps(12, 40, 60, [7])
    assert 60 <= len(t) <= 62 and len(lr) == len(t)
    assert t == pytest.approx([t_all[s] for s in steps], abs=1e-12)
    assert lr == pytest.approx([lr_all[s] for s in steps], rel=1e-12, abs=1e-15)


def test_a_torch_scheduler_too_long_to_step_through_is_refused_in_one_line(monkeypatch):
    cfg = compose_config(["scheduler=torch", "trainer.epochs=12"])
    monkeypatch.setattr(schedule_task, "MAX_POINTS", 60)
    monkeypatch.setattr(schedule_task, "MAX_TORCH_STEPS", 400)
    with pytest.raises(ConfigError) as e:
        schedule_task.draw_curve("torch", cfg.scheduler, 0.3, 12, 40)
    assert "\n" not in str(e.value)
    assert "trainer.epochs=12 x schedule_plot.steps_per_epoch=40 = 480 steps" in str(e.value)


@pytest.mark.slow
def test_a_billion_epochs_are_drawn_fast_at_a_bounded_number_of_points(tmp_path):
    run = tmp_path / "run"
    result = run_cli(
        [
            "task=schedule",
            "scheduler=multistep",
            "trainer.epochs=1000000000",
            "schedule_plot.steps_per_epoch=235",
            "dataset.root=/nonexistent",
            f"hydra.run.dir={run}",
        ],
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    curve = json.loads((run / "schedule.json").read_text())["multistep"]
    assert len(curve["lr"]) <= schedule_task.MAX_POINTS + 10
    assert curve["t"][0] == 0 and curve["t"][-1] == pytest.approx(10**9 - 1 / 235)
    assert curve["lr"][0] == 0.3 and curve["lr"][-1] == pytest.approx(
        0.075
    )  # milestones at 1/2 and 3/4 of the run, gamma 0.5
    assert "drawn at" in result.stdout and (run / "schedule.png").exists()
