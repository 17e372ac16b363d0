"""task=toy: optimizers on 2-D test functions against the closed forms of gradient descent and heavy-ball momentum on
a quadratic, and the figure and data it writes."""

from __future__ import annotations

import json
import math

import matplotlib.image
import numpy as np
import pytest
from helpers import bad_input, compose_config, run_cli

from schedulers import lr_curve
from trainer.config import TASKS, validate
from trainer.tasks.toy import make_function, trajectory


def toy(*overrides: str):
    cfg = compose_config(["task=toy", *overrides])
    validate(cfg)
    return cfg


def quadratic_run(kappa: float, big: float, lr: float, steps: int, *optimizer: str) -> dict:
    return trajectory(
        toy(
            f"toy.condition={kappa}",
            f"toy.curvature={big}",
            f"toy.steps={steps}",
            "optimizer=sgd",
            f"optimizer.lr={lr!r}",
            *optimizer,
        )
    )


def rate(points: list[list[float]], first: int, last: int) -> float:
    """The measured convergence rate: the distance to the minimum (0, 0) shrinks by this factor per step."""
    return (math.hypot(*points[last]) / math.hypot(*points[first])) ** (1 / (last - first))


@pytest.mark.parametrize(
    "kappa,big,lr",
    [
        (100, 500, 0.0038),  # the slides' step: |1 - lr L| = 0.9 zig-zags, |1 - lr mu| = 0.981 sets the rate
        (10, 10, 0.15),  # the small curvature sets it: 0.85
        (10, 10, 0.19),  # the large one does, oscillating: |1 - 1.9| = 0.9
        (4, 2, 0.3),
    ],
)
def test_gradient_descent_converges_at_the_closed_form_rate(kappa, big, lr):
    small = big / kappa
    run = quadratic_run(kappa, big, lr, 400)
    expected = max(abs(1 - lr * small), abs(1 - lr * big))
    assert rate(run["points"], 200, 400) == pytest.approx(expected, rel=0.01)
    assert run["status"] == "completed" and run["lr"] == [lr] * 400
    # and every point is the closed form (1 - lr mu)^k x0, (1 - lr L)^k y0
    x0, y0 = run["points"][0]
    for k in (1, 17, 150):
        assert run["points"][k] == pytest.approx([(1 - lr * small) ** k * x0, (1 - lr * big) ** k * y0], rel=1e-9)


@pytest.mark.parametrize("kappa,big", [(100, 500), (1000, 50), (400, 4)])
@pytest.mark.slow
def test_heavy_ball_at_its_optimal_settings_converges_at_the_accelerated_rate(kappa, big):
    """Polyak's optimal lr = (2 / (sqrt L + sqrt mu))^2, beta = ((sqrt kappa - 1) / (sqrt kappa + 1))^2 give the rate
    (sqrt kappa - 1) / (sqrt kappa + 1): both curvatures critically damped, so the distance goes as k r^k and the
    rate is measured over the second half of a long run (the factor k costs 2^(1/1000))."""
    small = big / kappa
    lr = (2 / (math.sqrt(big) + math.sqrt(small))) ** 2
    beta = ((math.sqrt(kappa) - 1) / (math.sqrt(kappa) + 1)) ** 2
    run = quadratic_run(
        kappa, big, lr, 2000, "optimizer=momentum", f"optimizer.momentum={beta!r}", f"optimizer.lr={lr!r}"
    )
    accelerated = (math.sqrt(kappa) - 1) / (math.sqrt(kappa) + 1)
    assert rate(run["points"], 1000, 2000) == pytest.approx(accelerated, rel=0.01)
    gradient_descent = (kappa - 1) / (kappa + 1)  # its best rate, at lr = 2 / (L + mu)
    assert accelerated < gradient_descent


@pytest.mark.parametrize("over", [1.01, 1.1, 1.5])
@pytest.mark.slow
def test_gradient_descent_diverges_above_two_over_l(over):
    big = 500
    lr = over * 2 / big
    run = quadratic_run(100, big, lr, 5000)
    assert run["status"] == "diverged" and run["diverged_at"] == len(run["points"]) - 1
    last = run["diverged_at"]
    assert rate(run["points"], last // 2, last) == pytest.approx(abs(1 - lr * big), rel=0.01)  # > 1: it grows
    below = quadratic_run(100, big, 1.99 / big, 300)
    assert below["status"] == "completed" and below["loss"][-1] < below["loss"][0]


def test_the_test_functions_have_their_minimum_where_they_say():
    for name in ("quadratic", "rosenbrock", "beale"):
        fn = make_function(toy(f"toy.function={name}").toy)
        assert fn.f(*fn.minimum) == 0
        near = [
            fn.f(fn.minimum[0] + dx, fn.minimum[1] + dy) for dx, dy in [(1e-3, 0), (-1e-3, 0), (0, 1e-3), (0, -1e-3)]
        ]
        assert min(near) > 0


def test_a_first_gradient_step_on_rosenbrock_is_the_closed_form_gradient():
    lr = 1e-4
    run = trajectory(toy("toy.function=rosenbrock", "toy.steps=1", "optimizer=sgd", f"optimizer.lr={lr}"))
    (x, y), moved = run["points"]
    grad = [-2 * (1 - x) - 400 * x * (y - x * x), 200 * (y - x * x)]
    assert moved == pytest.approx([x - lr * grad[0], y - lr * grad[1]], rel=1e-12)


def test_a_schedule_sets_the_lr_of_every_step():
    cfg = toy(
        "toy.steps=60",
        "optimizer=sgd",
        "optimizer.lr=0.003",
        "scheduler=cosine",
        "scheduler.final_lr=0.0003",
        "scheduler.warmup.epochs=5",
    )
    run = trajectory(cfg)
    _, expected = lr_curve(cfg.scheduler, 0.003, 60, 1)
    assert run["lr"] == pytest.approx(expected, rel=1e-12)
    assert run["lr"][0] == 0 and run["lr"][5] == 0.003 and run["lr"][-1] < 0.0004


@pytest.mark.slow
def test_the_figure_and_the_data_are_written_with_every_trajectory(tmp_path):
    folder = tmp_path / "run"
    result = run_cli(
        [
            "task=toy",
            "optimizer=sgd",
            "optimizer.lr=0.0038",
            "toy.steps=80",
            'toy.compare=["optimizer.momentum=0.78",adam,"scheduler=step scheduler.gamma=0.5"]',
            f"hydra.run.dir={folder}",
        ],
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    png, data = folder / "toy.png", folder / "toy.json"
    assert result.stdout.splitlines()[-2:] == [f"plot: {png}", f"data: {data}"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and matplotlib.image.imread(png).shape[2] in (3, 4)
    record = json.loads(data.read_text())
    runs = record["runs"]
    assert [r["overrides"] for r in runs] == [
        "",
        "optimizer.momentum=0.78",
        "adam",
        "scheduler=step scheduler.gamma=0.5",
    ]
    assert [r["label"] for r in runs] == [
        "SGD lr=0.0038",
        "SGD lr=0.0038 momentum=0.78",
        "Adam lr=0.001",
        "SGD lr=0.0038, step",
    ]
    assert record["function"]["name"] == "quadratic" and record["function"]["start"] == runs[0]["points"][0]
    # every trajectory is the one the same config gives in process; gradient descent's is the closed form
    gd = ["optimizer=sgd", "optimizer.lr=0.0038"]
    alone = [gd, [*gd, "optimizer.momentum=0.78"], ["optimizer=adam"], [*gd, "scheduler=step", "scheduler.gamma=0.5"]]
    for r, overrides in zip(runs, alone, strict=True):
        same = trajectory(toy("toy.steps=80", *overrides))
        assert (r["points"], r["loss"], r["lr"]) == (same["points"], same["loss"], same["lr"])
        assert len(r["points"]) == len(r["loss"]) == 81 and len(r["lr"]) == 80
    x0, y0 = runs[0]["points"][0]
    k = np.arange(81)
    assert np.allclose(runs[0]["points"], np.stack([0.981**k * x0, (1 - 0.0038 * 500) ** k * y0], axis=1), rtol=1e-9)
    assert runs[3]["lr"] == pytest.approx([0.0038 * 0.5 ** (s // (80 / 3)) for s in range(80)])  # step_size: a third


@pytest.mark.parametrize(
    "overrides,expected",
    [
        (["toy.function=sphere"], "toy.function='sphere' is not allowed: use one of quadratic, rosenbrock, beale"),
        (["toy.condition=0.5"], "toy.condition=0.5 is not allowed: must be >= 1"),
        (["toy.curvature=0"], "toy.curvature=0.0 is not allowed: must be > 0"),
        (["toy.start=[1.0]"], "toy.start=[1.0] is not allowed: must be a point [x, y]"),
        (["toy.start=[1.0,inf]"], "toy.start[1]=inf is not allowed: must be a finite number"),
        (["toy.steps=0"], "toy.steps=0 is not allowed: must be in [1, 100000]"),
        (["toy.step=5"], "toy.step: no such key in toy (did you mean toy.steps?)"),
        (["toy.steps=ten"], "toy.steps: Value 'ten' of type 'str' could not be converted to Integer"),
        (["toy.steps=3", "scheduler=cosine_warmup"], "scheduler.warmup.epochs must be < toy.steps (3)"),
        (
            ["scheduler=plateau", "scheduler.monitor=val_acc", "scheduler.mode=max"],
            "scheduler.monitor='val_acc' is not allowed: task=toy reduces on the function's value",
        ),
        (["optimizer=adagrad", "scheduler=onecycle"], "scheduler.cycle_momentum=True is not allowed"),
    ],
)
def test_a_bad_toy_value_is_one_line_naming_the_key(capsys, overrides, expected):
    assert expected in bad_input(capsys, "task=toy", *overrides)


def test_help_lists_every_task():
    from trainer.cli import help_text

    text = help_text()
    assert f"tasks (task=...): {', '.join(TASKS)}" in text and "toy" in TASKS
    for task in TASKS:
        assert any(line.startswith(f"  {task} ") for line in text.splitlines()), task
