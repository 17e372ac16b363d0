"""The LR range test: its smoothing, where it stops, what it suggests, and that it leaves no trace."""

from __future__ import annotations

import copy
import json
import math
from itertools import pairwise

import matplotlib.image
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import FAST, compose_config, run_cli
from torch import nn

from trainer.config import LRFindConfig
from trainer.engine.fit import fit
from trainer.engine.lr_find import END_REACHED, NON_FINITE, RULES, lr_at, plot, range_test, smooth, suggest

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def scripted_loss(values):
    """A loss_fn that returns the given values in turn (still differentiable, so the optimizer steps)."""
    it = iter(values)
    return lambda out, y: out.sum() * 0 + next(it)


def tiny_problem():
    model = nn.Linear(3, 2)
    return model, torch.optim.SGD(model.parameters(), lr=0.1), [(torch.ones(4, 3), torch.zeros(4, 2))]


def least_squares(seed=0, n=64, d=8):
    """y = X w* in float64; for the loss 0.5 * mean((Xw - y)^2) the Hessian is X^T X / n."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = x @ torch.randn(d, 1, generator=g, dtype=torch.float64)
    curvature = torch.linalg.eigvalsh(x.T @ x / n).max().item()
    return x, y, curvature


def test_smoothing_is_the_bias_corrected_moving_average():
    # beta 0.5: avg 0.5, 1.25, 2.125 over corrections 0.5, 0.75, 0.875
    assert smooth([1.0, 2.0, 3.0], beta=0.5) == pytest.approx([1.0, 5 / 3, 17 / 7])
    # beta 0.98: avg 0.04, then 0.98 * 0.04 + 0.02 * 4 = 0.1192 over 1 - 0.98^2 = 0.0396
    assert smooth([2.0, 4.0], beta=0.98) == pytest.approx([2.0, 0.1192 / 0.0396])
    assert smooth([3.0, 1.0], beta=0.0) == [3.0, 1.0]

    model, optimizer, batches = tiny_problem()
    losses = [1.0, 2.0, 3.0, 2.5]
    result = range_test(model, optimizer, batches, scripted_loss(losses), 1e-3, 1e-1, num_steps=4, beta=0.5)
    assert result.losses == losses
    assert result.smoothed == pytest.approx(smooth(losses, beta=0.5))
    assert result.stop_reason == END_REACHED


@pytest.mark.parametrize("mode", ["exp", "linear"])
def test_lr_goes_from_start_to_end_cycling_the_batches(mode):
    model, optimizer, batches = tiny_problem()
    result = range_test(model, optimizer, batches, scripted_loss([1.0] * 9), 1e-6, 1.0, num_steps=9, mode=mode)
    lrs = result.lrs
    assert len(lrs) == 9 and result.stop_reason == END_REACHED  # one batch, nine steps
    assert lrs[0] == pytest.approx(1e-6) and lrs[-1] == pytest.approx(1.0)
    if mode == "exp":
        assert [b / a for a, b in pairwise(lrs)] == pytest.approx([10 ** (6 / 8)] * 8)
    else:
        assert [b - a for a, b in pairwise(lrs)] == pytest.approx([(1.0 - 1e-6) / 8] * 8)
    assert lrs == [lr_at(i, 1e-6, 1.0, 9, mode) for i in range(9)]


@pytest.mark.parametrize("seed", [0, 1])
def test_least_squares_stops_past_two_over_L_and_suggests_below_it(seed):
    """Plain full-batch gradient descent on a quadratic diverges exactly when lr > 2 / L, L the largest
    Hessian eigenvalue; below that every step lowers the loss, so the smoothed loss cannot pass 4 x best."""
    x, y, curvature = least_squares(seed)
    limit = 2 / curvature
    model = nn.Linear(x.shape[1], 1, bias=False).double()
    nn.init.zeros_(model.weight)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loss_fn = lambda out, target: 0.5 * F.mse_loss(out, target)  # noqa: E731
    result = range_test(model, optimizer, [(x, y)], loss_fn, 1e-4 * limit, 1e4 * limit, num_steps=200)
    assert result.stop_reason == "loss diverged: smoothed loss > 4 x best"
    assert result.lrs[-1] > limit
    assert set(result.suggestions) == set(RULES)
    for rule, lr in result.suggestions.items():
        assert 1e-4 * limit < lr < limit, rule
    # the default rule, the middle of the descent, is stable and no more than 1.5 decades below the limit
    # (measured: 0.12 to 0.15 x 2/L; gradient descent needs that many steps at a smaller LR to halve the loss)
    assert limit / 30 < result.suggestions[LRFindConfig().suggestion] < limit / 2


GRID = np.geomspace(1e-5, 10.0, 201)  # 6 decades: the ratio of neighbours is 10 ** 0.03


def curve(falling) -> list[float]:
    """A loss curve on GRID: falling(x) of x = log10(lr) up to lr 1, then a steep rise (the blow-up)."""
    x = np.log10(GRID)
    return list(np.where(x <= 0, falling(x), falling(0) + 30 * x**2))


def sigmoid(centre: float, width: float, top: float, bottom: float):
    """A fall from top to bottom centred on the LR `centre`, `width` decades wide."""
    return lambda x: bottom + (top - bottom) / (1 + np.exp((x - np.log10(centre)) / width))


@pytest.mark.parametrize(
    ("shape", "middle"),
    [
        # flat at 2.3 up to 1e-4, straight down to 0.3 at 1e-1 (log10 lr), then flat: the middle is 10 ** -2.5,
        # and every slope of the descent is the same, so `steepest` picks any point of it
        (lambda x: np.interp(x, [-4, -1], [2.3, 0.3]), 10**-2.5),
        # a sigmoid centred on 0.03, a quarter decade wide: middle and steepest point coincide
        (sigmoid(0.03, 0.25, 2.3, 0.3), 0.03),
        # a small drop late in the range (plain SGD's plateau): 2.30 to 2.27 around 0.3
        (sigmoid(0.3, 0.1, 2.3, 2.27), 0.3),
    ],
    ids=["straight", "sigmoid", "small-late-drop"],
)
def test_the_default_rule_is_the_middle_of_the_descent(shape, middle):
    """half_drop on curves whose middle is known: within one step of the grid, however deep the drop."""
    assert LRFindConfig().suggestion == "half_drop"
    lr = suggest(list(GRID), curve(shape))["half_drop"]
    assert middle / 10**0.03 <= lr <= middle * 10**0.03 * (1 + 1e-9)


def test_half_drop_ignores_noise_on_the_plateau():
    """Noise before the descent moves the start level a little, not the point half-way down."""
    rng = np.random.default_rng(0)
    noisy = np.asarray(curve(sigmoid(0.03, 0.25, 2.3, 0.3))) + rng.normal(0, 0.01, len(GRID))
    lr = suggest(list(GRID), list(noisy))["half_drop"]
    assert 0.03 / 10**0.1 <= lr <= 0.03 * 10**0.1


def conv_net():
    return nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Dropout(0.2), nn.Linear(4 * 6 * 6, 3)
    )


def train_steps(model, optimizer, batch, steps=2):
    for _ in range(steps):
        optimizer.zero_grad()
        F.cross_entropy(model(batch[0]), batch[1]).backward()
        optimizer.step()


def state(model, optimizer):
    grads = [p.grad for p in model.parameters()]
    return copy.deepcopy((model.state_dict(), optimizer.state_dict(), grads, torch.get_rng_state()))


def assert_identical(a, b):
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            assert_identical(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for u, v in zip(a, b, strict=True):
            assert_identical(u, v)
    else:
        assert a == b


@pytest.mark.parametrize(
    "make_optimizer",
    [
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-4),
        lambda p: torch.optim.Adam(p, lr=1e-3),
    ],
    ids=["momentum", "adam"],
)
def test_model_and_optimizer_are_restored_exactly(make_optimizer):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    batches = [(torch.randn(8, 1, 8, 8, generator=g), torch.randint(0, 3, (8,), generator=g)) for _ in range(3)]
    model = conv_net()
    optimizer = make_optimizer(model.parameters())
    train_steps(model, optimizer, batches[0])  # momentum buffers, Adam moments and grads now exist
    optimizer.param_groups[0]["initial_lr"] = optimizer.param_groups[0]["lr"]  # as a schedule leaves it
    model.eval()
    twin = copy.deepcopy(model)
    twin_optimizer = make_optimizer(twin.parameters())
    twin_optimizer.load_state_dict(copy.deepcopy(optimizer.state_dict()))  # load_state_dict shares tensors
    before = state(model, optimizer)

    result = range_test(model, optimizer, batches, F.cross_entropy, 1e-5, 100.0, num_steps=30)

    assert len(result.lrs) > 3
    assert_identical(state(model, optimizer), before)
    assert not model.training and all(not m.training for m in model.modules())
    assert all(p is q for p, q in zip(model.parameters(), optimizer.param_groups[0]["params"], strict=True))
    # and training goes on exactly as if the test had never run
    for m, opt in [(model, optimizer), (twin, twin_optimizer)]:
        torch.manual_seed(2)  # the same dropout masks for both
        m.train()
        train_steps(m, opt, batches[1])
    assert_identical(model.state_dict(), twin.state_dict())
    assert_identical(optimizer.state_dict(), twin_optimizer.state_dict())


def test_a_non_finite_loss_stops_the_test_and_is_left_out_of_the_suggestions():
    model, optimizer, batches = tiny_problem()
    losses = [2.0, 1.9, 1.5, 1.0, 0.9, math.nan, 0.1]
    result = range_test(model, optimizer, batches, scripted_loss(losses), 1e-4, 1.0, num_steps=7)
    assert result.stop_reason == NON_FINITE
    assert len(result.lrs) == 6 and math.isnan(result.losses[-1]) and math.isnan(result.smoothed[-1])
    assert all(math.isfinite(v) for v in result.smoothed[:-1])
    assert result.suggestions["min_div10"] == pytest.approx(result.lrs[4] / 10)
    assert all(lr <= result.lrs[4] for lr in result.suggestions.values())


def test_plot_writes_a_png_that_reads_back(tmp_path):
    model, optimizer, batches = tiny_problem()
    losses = [2.0, 2.0, 1.8, 1.2, 0.8, 0.7, 2.0, math.inf]
    result = range_test(model, optimizer, batches, scripted_loss(losses), 1e-4, 1.0, num_steps=8, beta=0.5)
    path = tmp_path / "lr_find.png"
    plot(result, path, rule="valley")
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


def test_training_after_the_test_is_training_from_the_suggested_lr(tmp_path):
    """Weights, momentum and the dropout RNG are untouched by the test: the run equals one given that LR."""
    common = [*FAST, "model=mlp", "model.dropout=0.2", "optimizer=momentum", "trainer.device=cpu"]
    common += ["trainer.epochs=1", "trainer.max_steps_per_epoch=3", "trainer.checkpoint=false"]
    cfg = compose_config([*common, "trainer.lr_find=true", "lr_find.num_steps=20", "lr_find.suggestion=min_div10"])
    found = fit(cfg, tmp_path / "a")["lr_find"]
    fit(compose_config([*common, f"optimizer.lr={found['lr']!r}"]), tmp_path / "b")
    assert (tmp_path / "a" / "steps.csv").read_text() == (tmp_path / "b" / "steps.csv").read_text()

    assert found["rule"] == "min_div10" and found["lr"] == found["suggestions"]["min_div10"]
    assert set(found["suggestions"]) == set(RULES) and found["stop_reason"]
    saved = json.loads((tmp_path / "a" / "lr_find.json").read_text())
    assert len(saved["lrs"]) == len(saved["losses"]) == len(saved["smoothed"]) == saved["num_points"] <= 20
    assert saved["suggestions"] == found["suggestions"] and saved["settings"]["suggestion"] == "min_div10"
    assert (tmp_path / "a" / "lr_find.png").read_bytes()[:8] == PNG_SIGNATURE


@pytest.mark.slow
def test_task_lr_find_writes_json_and_png(tmp_path):
    out = tmp_path / "run"
    proc = run_cli(["task=lr_find", *FAST, "lr_find.num_steps=40", f"hydra.run.dir={out}"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    saved = json.loads((out / "lr_find.json").read_text())
    assert len(saved["lrs"]) == len(saved["smoothed"]) <= 40
    assert saved["lrs"][0] == pytest.approx(LRFindConfig().start_lr)
    assert set(saved["suggestions"]) == set(RULES) and saved["stop_reason"]
    assert saved["settings"]["suggestion"] == LRFindConfig().suggestion
    assert (out / "lr_find.png").read_bytes()[:8] == PNG_SIGNATURE
    assert (out / "config.yaml").exists()
    for rule in RULES:
        assert rule in proc.stdout
    assert f"curve: {out / 'lr_find.png'}" in proc.stdout  # where to look


@pytest.mark.slow
def test_training_starts_from_the_suggested_lr(tmp_path):
    out = tmp_path / "run"
    args = [*FAST, "trainer.epochs=1", "trainer.max_steps_per_epoch=4", "trainer.lr_find=true"]
    proc = run_cli([*args, "lr_find.num_steps=40", "lr_find.suggestion=valley", f"hydra.run.dir={out}"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    found = summary["lr_find"]
    assert summary["status"] in ("completed", "diverged")
    assert found["rule"] == "valley" and found["lr"] == found["suggestions"]["valley"]
    first_step = (out / "steps.csv").read_text().splitlines()[1].split(",")
    assert float(first_step[2]) == pytest.approx(found["lr"])  # the constant schedule starts from it
    assert (out / "lr_find.json").exists() and (out / "lr_find.png").exists()
