"""Schedules of the optimizer's other values, scheduler.momentum (momentum, or Adam's beta1), scheduler.beta2 and
scheduler.weight_decay: each a scheduler node of its own with the LR's contract (the same curves and warmup, the
value's base the optimizer's, every param group scaled from its own, the state the step count). Against torch's
schedulers (a value follows exactly the LR torch gives an optimizer whose lr is that value), formulas by hand,
a weight decay that decays the weights as hand-computed, resume, the plain-loop driver, and the one-line refusals."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from helpers import BASE, EPOCHS, FAST, INTERVALS, ORACLES, SPE, bad_input, compose_config, lrs, run_torch
from torch import nn

from schedulers import build_schedule, lr_curve, param_groups, torch_scheduler, validate_schedule
from schedulers.config import NOT_FOR_VALUES, SCHEMAS
from schedulers.errors import ConfigError

# torch's schedulers of a position alone (onecycle and cyclic are LR shapes that cycle the momentum themselves)
VALUE_ORACLES = {k: v for k, v in ORACLES.items() if not k.startswith(("onecycle", "cyclic"))}
FIELDS = {
    "lr": lambda g: g["lr"],
    "momentum": lambda g: g["betas"][0] if "betas" in g else g["momentum"],
    "beta2": lambda g: g["betas"][1],
    "weight_decay": lambda g: g["weight_decay"],
}


def sgd(lr=0.1, momentum=BASE, weight_decay=BASE):
    return torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr, momentum=momentum, weight_decay=weight_decay)


def adam(betas=(0.9, 0.999)):
    return torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=0.1, betas=betas)


def values(optimizer, scheduler, key="momentum", epochs=EPOCHS, start=0, group=0):
    """The value of `key` in param group `group` before every optimizer step, as the trainer's loop steps."""
    seen = []
    for _ in range(start, epochs):
        for _ in range(SPE):
            seen.append(FIELDS[key](optimizer.param_groups[group]))
            optimizer.step()
            scheduler.step_batch()
        scheduler.step_epoch()
    return seen


def everything(optimizer, scheduler, epochs=EPOCHS, start=0):
    """LR, momentum (or beta1), beta2 and weight decay of every group before every step."""
    seen = []
    for _ in range(start, epochs):
        for _ in range(SPE):
            seen.append(
                [(g["lr"], FIELDS["momentum"](g), g["betas"][1], g["weight_decay"]) for g in optimizer.param_groups]
            )
            optimizer.step()
            scheduler.step_batch()
        scheduler.step_epoch()
    return seen


@pytest.mark.parametrize("interval", INTERVALS)
@pytest.mark.parametrize("key", ["momentum", "weight_decay"])
@pytest.mark.parametrize("case", VALUE_ORACLES)
def test_a_value_follows_the_lr_torch_gives_an_optimizer_whose_lr_is_that_value(case, key, interval):
    cfg, make = VALUE_ORACLES[case]
    optimizer = sgd()  # momentum and weight decay at BASE, the oracles' base LR
    scheduler = build_schedule({"name": "constant", "interval": interval, key: cfg}, optimizer, SPE, EPOCHS)
    assert values(optimizer, scheduler, key) == pytest.approx(lrs(run_torch(make, interval)), rel=1e-9)
    assert optimizer.param_groups[0]["lr"] == 0.1  # the LR's own schedule, constant, untouched


@pytest.mark.parametrize("interval", INTERVALS)
@pytest.mark.parametrize("name", sorted(set(SCHEMAS) - set(NOT_FOR_VALUES)))
def test_a_value_schedule_is_the_lr_curve_of_the_same_node_from_the_values_base(name, interval):
    # every schedule a value can take, with a warmup of its own: the LR the same node gives an optimizer whose
    # lr is the value's base, at every step
    node = {"name": name, "interval": interval, "warmup": {"epochs": 1.5, "start_lr": 0.1}}
    optimizer = sgd()
    scheduler = build_schedule({"name": "cosine", "interval": interval, "momentum": node}, optimizer, SPE, EPOCHS)
    as_lr = sgd(lr=BASE)
    expected = values(as_lr, build_schedule(node, as_lr, SPE, EPOCHS), "lr")
    assert values(optimizer, scheduler) == pytest.approx(expected, rel=1e-12)
    assert max(expected) > min(expected)


def test_momentum_warmup_and_a_beta2_cosine_by_hand():
    # the momentum warmup of modded-nanoGPT (0.85 -> 0.95, then held) on Adam's beta1, and Adam's beta2 from 0.999
    # down a cosine to 0.95 at the run's end, per step
    optimizer = adam(betas=(0.95, 0.999))
    cfg = {
        "name": "constant",
        "interval": "step",
        "momentum": {"name": "constant", "warmup": {"epochs": 3, "start_lr": 0.85}},
        "beta2": {"name": "cosine", "final_lr": 0.95},
    }
    scheduler = build_schedule(cfg, optimizer, SPE, EPOCHS)
    seen = everything(optimizer, scheduler)
    ts = [k / SPE for k in range(EPOCHS * SPE)]
    assert [s[0][1] for s in seen] == pytest.approx([0.85 + 0.1 * t / 3 if t < 3 else 0.95 for t in ts], rel=1e-12)
    cosine = [0.95 + (0.999 - 0.95) * (1 + math.cos(math.pi * t / EPOCHS)) / 2 for t in ts]
    assert [s[0][2] for s in seen] == pytest.approx(cosine, rel=1e-12)
    assert {s[0][0] for s in seen} == {0.1}


@pytest.mark.parametrize(
    "make",
    [
        lambda groups: torch.optim.SGD(groups, lr=0.1, weight_decay=0.5),
        lambda groups: torch.optim.AdamW(groups, lr=0.1, weight_decay=0.5),
    ],
    ids=["sgd", "adamw"],
)
def test_a_weight_decay_schedule_decays_the_weights_as_computed_by_hand(make):
    # zero gradients: SGD's step is -lr * wd * w and AdamW's decoupled decay multiplies w by 1 - lr * wd (its Adam
    # step is 0), so after the run w = w0 * prod_k (1 - lr_group * wd_k). The decay is warmed up from 0 over 1 epoch,
    # then a cosine to 0.05; the layer at 0.1x LR decays with 0.1 x lr; biases (no decay) do not move.
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    groups = param_groups(model, lr=0.1, weight_decay=0.5, lr_multipliers={"1": 0.1}, no_decay_norm_and_bias=True)
    optimizer = make(groups)
    cfg = {
        "name": "constant",
        "interval": "step",
        "weight_decay": {"name": "cosine", "final_lr": 0.05, "warmup": {"epochs": 1, "start_lr": 0.0}},
    }
    scheduler = build_schedule(cfg, optimizer, SPE, 4)
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    wd = []
    for _ in range(4 * SPE):
        wd.append([g["weight_decay"] for g in optimizer.param_groups])
        optimizer.step()
        scheduler.step_batch()
    by_hand = [
        k / SPE * 0.5 if k < SPE else 0.05 + 0.45 * (1 + math.cos(math.pi * (k - SPE) / (3 * SPE))) / 2
        for k in range(4 * SPE)
    ]
    assert [w[0] for w in wd] == pytest.approx(by_hand, rel=1e-12)
    assert [w[2] for w in wd] == pytest.approx(by_hand, rel=1e-12)  # the 0.1x-LR layer's weights: same decay
    assert {w[1] for w in wd} == {w[3] for w in wd} == {0.0}  # the no-decay groups stay at 0
    shrink = {"0.weight": math.prod(1 - 0.1 * w for w in by_hand), "1.weight": math.prod(1 - 0.01 * w for w in by_hand)}
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.detach(), start[name] * shrink.get(name, 1.0), rtol=1e-6, atol=0, msg=name)


SCHEDULED = {  # every value at once, on AdamW (beta1 as the momentum), on an LR cosine with a warmup
    "name": "cosine",
    "warmup": {"epochs": 2, "start_lr": 0.0},
    "momentum": {"name": "linear", "start_factor": 0.9, "end_factor": 1.0},
    "beta2": {"name": "constant", "warmup": {"epochs": 1, "start_lr": 0.95}},
    "weight_decay": {"name": "cosine", "final_lr": 0.0},
}


def adamw_groups():
    return torch.optim.AdamW(
        [
            {"params": [torch.zeros(1, requires_grad=True)]},
            {"params": [torch.zeros(1, requires_grad=True)], "lr": 0.01, "weight_decay": 0.0},
        ],
        lr=0.1,
        betas=(0.9, 0.999),
        weight_decay=0.05,
    )


@pytest.mark.parametrize("interval", INTERVALS)
def test_state_is_the_step_count_a_resume_continues_identically(interval):
    cfg = {**SCHEDULED, "interval": interval}
    optimizer = adamw_groups()
    whole = everything(optimizer, build_schedule(cfg, optimizer, SPE, EPOCHS))
    optimizer = adamw_groups()
    scheduler = build_schedule(cfg, optimizer, SPE, EPOCHS)
    first = everything(optimizer, scheduler, 5)
    saved = copy.deepcopy((optimizer.state_dict(), scheduler.state_dict()))
    assert set(saved[1]) == {"steps", "epochs", "plateau"}  # no value of its own: the position
    resumed_optimizer = adamw_groups()
    resumed = build_schedule(cfg, resumed_optimizer, SPE, EPOCHS)
    resumed_optimizer.load_state_dict(saved[0])
    resumed.load_state_dict(saved[1])
    assert first + everything(resumed_optimizer, resumed, start=5) == whole
    assert {s[1][3] for s in whole} == {0.0} and len({s[0][3] for s in whole}) > 10


@pytest.mark.parametrize("interval", INTERVALS)
def test_a_plain_loop_gets_the_trainers_values_and_resumes_from_a_loaded_optimizer(interval):
    cfg = {**SCHEDULED, "interval": interval}
    optimizer = adamw_groups()
    trainer = everything(optimizer, build_schedule(cfg, optimizer, SPE, EPOCHS))

    def loop(optimizer, sched, epochs, start=0):
        seen = []
        for _ in range(start, epochs):
            for _ in range(SPE):
                seen.append(
                    [(g["lr"], g["betas"][0], g["betas"][1], g["weight_decay"]) for g in optimizer.param_groups]
                )
                optimizer.step()
                sched.step()
        return seen

    optimizer = adamw_groups()
    sched = torch_scheduler(optimizer, cfg, epochs=EPOCHS, steps_per_epoch=SPE)
    first = loop(optimizer, sched, 5)
    saved = copy.deepcopy((optimizer.state_dict(), sched.state_dict()))
    resumed_optimizer = adamw_groups()
    resumed_optimizer.load_state_dict(saved[0])  # the optimizer first: its groups hold the values of step 25
    resumed = torch_scheduler(resumed_optimizer, cfg, epochs=EPOCHS, steps_per_epoch=SPE)
    assert resumed_optimizer.param_groups[0]["weight_decay"] == 0.05  # the base (initial_weight_decay), not step 25's
    resumed.load_state_dict(saved[1])
    assert first + loop(resumed_optimizer, resumed, EPOCHS, start=5) == trainer


def test_a_run_trains_and_resumes_with_value_schedules(tmp_path, monkeypatch):
    from helpers import stop_in_epoch

    from trainer.config import validate
    from trainer.engine.checkpoint import read
    from trainer.engine.fit import fit
    from trainer.records import RunFolder

    overrides = [
        *FAST,
        "trainer.epochs=2",
        "trainer.max_steps_per_epoch=3",
        "trainer.num_threads=1",
        "trainer.train_eval_size=0",
        "optimizer=adamw",
        "optimizer.no_decay_norm_and_bias=true",
        "scheduler=cosine",
        "scheduler.interval=step",
        "scheduler.momentum={name:constant,warmup:{epochs:1,start_lr:0.85}}",
        "scheduler.weight_decay={name:linear,end_factor:0.5}",
    ]
    cfg = compose_config(overrides)
    validate(cfg)
    fit(cfg, tmp_path / "whole")
    stop_in_epoch(monkeypatch, tmp_path / "cut", 2)
    with pytest.raises(KeyboardInterrupt):
        fit(cfg, tmp_path / "cut")
    monkeypatch.undo()
    fit(cfg, tmp_path / "cut")
    whole, cut = RunFolder(tmp_path / "whole"), RunFolder(tmp_path / "cut")
    assert [(s.lr, s.loss) for s in cut.read_steps()] == [(s.lr, s.loss) for s in whole.read_steps()]
    for folder in (whole, cut):  # after 6 of 6 steps: t = 2, the end of the run
        decayed, no_decay = read(folder.checkpoint, "optimizer", what="it")["optimizer"]["param_groups"]
        assert decayed["betas"] == (0.9, 0.999) and decayed["weight_decay"] == pytest.approx(0.005)
        assert no_decay["weight_decay"] == 0.0 and decayed["initial_weight_decay"] == 0.01


def test_a_drawing_draws_the_lr_alone():
    with_values = {
        "name": "cosine",
        "weight_decay": {"name": "cosine"},
        "momentum": {"name": "linear", "end_factor": 0.5},
    }
    assert lr_curve(with_values, 0.5, 4, 3) == lr_curve({"name": "cosine"}, 0.5, 4, 3)


BUILD_REFUSALS = [
    (
        torch.optim.Adagrad,
        {"momentum": {"name": "cosine"}},
        "scheduler.momentum must be null: torch.optim.Adagrad has no momentum or beta1 to schedule",
    ),
    (
        torch.optim.Adadelta,
        {"beta2": {"name": "cosine"}},
        "scheduler.beta2 must be null: torch.optim.Adadelta has no beta2",
    ),
    (sgd, {"beta2": {"name": "cosine"}}, "scheduler.beta2 must be null: torch.optim.SGD has no beta2 to schedule"),
    (
        lambda: sgd(weight_decay=0.0),
        {"weight_decay": {"name": "cosine"}},
        "scheduler.weight_decay must be null where the optimizer's weight_decay is 0: a schedule scales it from its value",
    ),
    (
        lambda: sgd(momentum=0.0),
        {"momentum": {"name": "cosine"}},
        "scheduler.momentum must be null where the optimizer's momentum or beta1 is 0",
    ),
    (
        lambda: sgd(momentum=0.9),
        {"momentum": {"name": "linear", "end_factor": 1.2}},
        "scheduler.momentum must be a schedule that stays below 1 (momentum or beta1), reaching 1.07",
    ),
    (adam, {"beta2": {"name": "exponential", "gamma": 1.01}}, "scheduler.beta2 must be a schedule that stays below 1"),
    (
        lambda: sgd(momentum=0.9),
        {"momentum": {"name": "cosine", "final_lr": 0.95}},
        "scheduler.momentum.final_lr must be <= the base value (the optimizer's momentum or beta1, 0.9), got 0.95",
    ),
]


@pytest.mark.parametrize(
    ("make", "cfg", "message"),
    BUILD_REFUSALS,
    ids=[m.split(" ")[0] + str(i) for i, (_, _, m) in enumerate(BUILD_REFUSALS)],
)
def test_a_value_schedule_the_optimizer_cannot_take_is_one_line_at_build(make, cfg, message):
    optimizer = make([torch.zeros(1, requires_grad=True)]) if isinstance(make, type) else make()
    with pytest.raises(ConfigError) as e:
        build_schedule({"name": "constant", **cfg}, optimizer, SPE, EPOCHS)
    assert message in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ConfigError, match=message.split(" (")[0].split(",")[0]):  # and in a plain loop
        torch_scheduler(optimizer, {"name": "constant", **cfg}, epochs=EPOCHS, steps_per_epoch=SPE)


@pytest.mark.parametrize(
    "overrides,expected",
    [
        (
            ["scheduler=onecycle", "scheduler.momentum={name:cosine}"],
            "scheduler.momentum must be null with scheduler.cycle_momentum=true (onecycle cycles the momentum itself): "
            "set scheduler.cycle_momentum=false to schedule it",
        ),
        (
            ["scheduler.momentum={name:plateau}"],
            "scheduler.momentum.name must be a schedule that is a function of the position alone, not plateau, onecycle, "
            "cyclic, got 'plateau'",
        ),
        (
            ["scheduler.weight_decay={name:cosine,interval:step}"],
            "scheduler.weight_decay.interval must be the LR's scheduler.interval ('epoch'): every value moves at the same "
            "positions, got 'step'",
        ),
        (
            ["scheduler.weight_decay={name:cosine,finl_lr:0}"],
            "scheduler.weight_decay.finl_lr: Key 'finl_lr' not in 'Cosine'",
        ),
        (
            ["scheduler.weight_decay={name:cosine,momentum:{name:constant}}"],
            "scheduler.weight_decay.momentum must be null: a value schedule drives one value",
        ),
        (
            ["scheduler.weight_decay=0.1"],
            "scheduler.weight_decay must be null or a scheduler node, e.g. {name: cosine, final_lr: 0.85}, got 0.1",
        ),
        (
            ["scheduler.momentum={name:cosine,warmup:{epochs:40}}"],
            "scheduler.momentum.warmup.epochs must be < trainer.epochs (30): warmup must end before the run, got 40",
        ),
        (
            ["scheduler=multistep", "scheduler.weight_decay={name:multistep,milestones:[20,10]}"],
            "scheduler.weight_decay.milestones must be strictly increasing, got [20.0, 10.0]",
        ),
    ],
)
def test_a_bad_value_schedule_is_one_line_before_any_work(capsys, overrides, expected):
    assert expected in bad_input(capsys, *overrides)


def test_a_torch_target_schedules_the_lr_only():
    cfg = {
        "name": "torch",
        "_target_": "torch.optim.lr_scheduler.StepLR",
        "step_size": 3,
        "weight_decay": {"name": "cosine"},
    }
    with pytest.raises(
        ConfigError,
        match=r"^scheduler.weight_decay is not available with _target_: torch's schedulers "
        r"drive the LR only",
    ):
        validate_schedule(cfg, EPOCHS)


def test_the_config_checks_take_the_optimizers_values():
    # validate_schedule with an optimizer config's values (OptimizerConfig.hyperparameters()) refuses, before any
    # work, what build_schedule would refuse on the optimizer
    from trainer.config import typed

    for option, scheduled, message in [
        (
            "adagrad",
            "momentum",
            "scheduler.momentum must be null: torch.optim.Adagrad has no momentum or beta1 to schedule",
        ),
        ("sgd", "momentum", "scheduler.momentum must be null where the optimizer's momentum or beta1 is 0"),
        ("momentum", "beta2", "scheduler.beta2 must be null: torch.optim.SGD has no beta2 to schedule"),
        ("adam", "weight_decay", "scheduler.weight_decay must be null where the optimizer's weight_decay is 0"),
    ]:
        cfg = typed(compose_config([f"optimizer={option}", f"scheduler.{scheduled}={{name:cosine}}"]))
        assert cfg.optimizer.hyperparameters()[scheduled] in (None, 0.0)
        with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
            validate_schedule(
                cfg.scheduler, 30, values=cfg.optimizer.hyperparameters(), optimizer=cfg.optimizer._target_
            )
    assert typed(compose_config(["optimizer=adamw"])).optimizer.hyperparameters() == {
        "momentum": 0.9,
        "beta2": 0.999,
        "weight_decay": 0.01,
    }


def test_a_value_schedule_the_optimizer_cannot_take_stops_the_run_before_any_data(capsys):
    assert bad_input(capsys, "optimizer=adagrad", "scheduler.momentum={name:cosine}").endswith(
        "scheduler.momentum must be null: torch.optim.Adagrad has no momentum or beta1 to schedule"
    )
