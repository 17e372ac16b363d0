"""Every config option composes; every bad input is one line naming the key, before any work starts."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from helpers import CONF, FAST, bad_input, compose_config

from trainer.cli import precheck
from trainer.config import validate
from trainer.errors import ConfigError

GROUPS = sorted(p.name for p in CONF.iterdir() if p.is_dir() and p.name != "hydra")
GLOBAL_GROUPS = ("arm", "experiment", "hparams_search", "debug")  # `# @package _global_`: they set keys of other groups
OPTIONS = [(g, p.stem) for g in GROUPS for p in sorted((CONF / g).glob("*.yaml"))]


@pytest.mark.parametrize("group,option", OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
@pytest.mark.slow
def test_every_option_composes_and_validates(group, option):
    cfg = compose_config([f"{group}={option}"])
    if cfg.branch.epoch is not None and cfg.branch.parent is None:
        # a cooldown's arm (arm=wsd_cooldown_*): the run it branches from is named on the command line
        with pytest.raises(ConfigError, match=r"^branch\.epoch=\d+ is not allowed: needs branch\.parent=<run folder>"):
            validate(cfg)
        return
    validate(cfg)
    if group not in GLOBAL_GROUPS:
        assert cfg[group] is not None


def test_defaults_are_the_d2l_baseline():
    cfg = compose_config()
    assert (cfg.dataset.name, cfg.model._target_, cfg.optimizer._target_) == (
        "fashion_mnist",
        "trainer.models.LeNet",
        "torch.optim.SGD",
    )
    assert (cfg.trainer.epochs, cfg.trainer.batch_size, cfg.seed, cfg.optimizer.lr) == (30, 256, 0, 0.3)
    assert (cfg.trainer.device, cfg.trainer.precision, cfg.task) == ("auto", "auto", "train")


@pytest.mark.parametrize(
    "override,expected",
    [
        ("trainer.epochs=0", "trainer.epochs=0 is not allowed: must be an integer >= 1"),
        ("trainer.batch_size=0", "trainer.batch_size=0 is not allowed"),
        ("optimizer.lr=-0.1", "optimizer.lr=-0.1 is not allowed: must be > 0"),
        ("optimizer.lr=0", "optimizer.lr=0.0 is not allowed: must be > 0"),
        (
            "trainer.batch_size=70000",
            "must be at most the training set size (55000 for dataset=fashion_mnist)",
        ),  # 5000 held out
        ("trainer.precision=fp8", "trainer.precision='fp8' is not allowed: use one of auto, fp32, bf16, fp16"),
        ("trainer.device=tpu", "trainer.device='tpu' is not allowed"),
        ("task=dance", "task='dance' is not allowed: use one of train, lr_find, schedule, eval"),
        ("eval.checkpoint=worst", "eval.checkpoint='worst' is not allowed: use one of last, best"),
        ("trainer.epoch=3", "trainer.epoch: no such key in trainer"),
        ("trainer.epochs=abc", "trainer.epochs: Value 'abc' of type 'str' could not be converted to Integer"),
        (
            "optimizer=sgdd",
            "optimizer='sgdd' is not an option: use one of adadelta, adagrad, adam, adamw, adamw_schedulefree, momentum, nesterov, rmsprop, sgd, sgd_schedulefree",
        ),
        ("optimizer.momentum=1.5", "optimizer.momentum=1.5 is not allowed: must be in [0, 1)"),
        ("logger.mode=loud", "logger.mode='loud' is not allowed"),
    ],
)
@pytest.mark.slow
def test_bad_input_is_one_line_naming_the_key(capsys, override, expected):
    assert expected in bad_input(capsys, override)


def test_every_job_of_a_sweep_is_checked_before_any_runs(capsys):
    err = bad_input(capsys, "-m", "optimizer.lr=0.1,0.2,-1", "seed=0,1")
    assert "optimizer.lr=-1.0 is not allowed" in err


def test_synthetic_batch_limit_follows_its_size(capsys):
    assert "(92 for dataset=synthetic)" in bad_input(
        capsys, "dataset=synthetic", "dataset.train_size=100", "trainer.batch_size=128"
    )  # 8 held out


def test_output_folder_that_cannot_be_created(capsys, tmp_path: Path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    err = bad_input(capsys, f"hydra.run.dir={blocker}/run")
    assert "hydra.run.dir=" in err and "not writable" in err


@pytest.mark.slow
def test_cli_reports_bad_input_without_a_traceback(cli, tmp_path):
    result = cli(["trainer.epochs=0", f"hydra.run.dir={tmp_path}/run"])
    assert result.returncode == 2
    assert result.stderr.strip() == "schedlab: error: trainer.epochs=0 is not allowed: must be an integer >= 1"
    assert not (tmp_path / "run").exists()  # nothing started


# --------------------------------------------------------------------------------- one convention


def test_the_command_line_parser_has_hydras_flags():
    """precheck reads run.py's argv with its own parser; this fails as soon as Hydra's flags change."""
    from hydra._internal.utils import get_args_parser

    from trainer.cli import hydra_args_parser

    def flags(parser):
        return {
            tuple(a.option_strings) or a.dest: (
                a.dest,
                a.nargs,
                a.const,
                a.default,
                a.choices,
                "flag" if a.nargs == 0 else "value",
            )
            for a in parser._actions
        }

    ours, hydras = flags(hydra_args_parser()), flags(get_args_parser())
    # Hydra's --version prints and exits inside the parser; ours is a plain flag that hands it to Hydra
    assert ours.pop(("--version",))[1] == hydras.pop(("--version",))[1] == 0
    assert ours == hydras
    for argv in (
        ["-m", "-cn", "other", "a=1", "b=2,3", "--resolve", "-c", "job", "--unknown", "--info"],
        ["--multirun", "seed=0,1", "+x=1", "-sc", "-cp", "conf", "-cd", "extra", "-p", "trainer", "-r"],
        ["--hydra-help", "--experimental-rerun", "x.pickle", "-i", "plugins", "a=1", "b=2"],
    ):
        ours_args, ours_rest = hydra_args_parser().parse_known_args(argv)
        hydra_args, hydra_rest = get_args_parser().parse_known_args(argv)
        assert {**vars(ours_args), "version": None} == {**vars(hydra_args), "version": None}
        assert ours_rest == hydra_rest
    assert ours_args.overrides == ["a=1", "b=2"] and ours_args.info == "plugins"


@pytest.mark.parametrize(
    "option", ["dataset=synthetic", "model=mlp", "model=resnet", "optimizer=adamw", "logger=none", "logger=tensorboard"]
)
def test_each_group_checks_itself_on_its_typed_object(option):
    from omegaconf import OmegaConf

    cfg = compose_config([option])
    for group in ("dataset", "model", "optimizer", "trainer", "logger", "lr_find"):
        typed = OmegaConf.to_object(cfg[group])
        assert type(typed).__module__ == "trainer.config.schema", group
        typed.check()


def test_logger_options_are_trackers_by_target():
    none, wandb, tensorboard = (compose_config([f"logger={name}"]).logger for name in ("none", "wandb", "tensorboard"))
    assert dict(none) == {"_target_": "trainer.tracking.NullTracker"}
    assert dict(wandb) == {
        "_target_": "trainer.tracking.WandbTracker",
        "mode": "auto",
        "project": "schedlab",
        "entity": None,
        "tags": [],
        "init_timeout": 30.0,
        "finish_timeout": 120.0,
        "log_steps": True,
    }
    assert dict(tensorboard) == {
        "_target_": "trainer.tracking.TensorBoardTracker",
        "log_dir": "tensorboard",
        "log_steps": True,
    }
    assert compose_config().logger._target_ == "trainer.tracking.WandbTracker"  # the default


@pytest.mark.parametrize(
    "overrides,expected",
    [
        (["logger=none", "logger.mode=loud"], "logger.mode: no such key in logger"),
        (["logger=tensorboard", "logger.mode=offline"], "logger.mode: no such key in logger"),
        (["logger=tensorboard", "logger.log_dir="], "logger.log_dir='' is not allowed"),
        (["logger.init_timeout=0"], "logger.init_timeout=0.0 is not allowed: must be > 0 seconds"),
        (["logger.finish_timeout=-1"], "logger.finish_timeout=-1.0 is not allowed: must be > 0 seconds"),
    ],
)
@pytest.mark.slow
def test_logger_checks(capsys, overrides, expected):
    assert expected in bad_input(capsys, *overrides)


def test_compose_config_checks_unless_told_not_to():
    from trainer.cli import compose_config as compose_checked
    from trainer.errors import ConfigError

    with pytest.raises(ConfigError, match="trainer.epochs=0 is not allowed"):
        compose_checked(["trainer.epochs=0"])
    assert compose_checked(["trainer.epochs=0"], check=False).trainer.epochs == 0


# ------------------------------------------------------------------------------------------ reliability


@pytest.mark.parametrize(
    "override,expected",
    [
        ("+trainer.epoch=2", "trainer.epoch: no such key in trainer (did you mean trainer.epochs?)"),
        ("++trainer.epoch=2", "trainer.epoch: no such key in trainer (did you mean trainer.epochs?)"),
        ("+foo=1", "foo: no such key (check the spelling)"),
        ("+optimzer=1", "optimzer: no such key (did you mean optimizer?)"),
        ("+optimizer.bogus=1", "optimizer.bogus: no such key in optimizer"),
        ("+optimizer.moment=0.5", "optimizer.moment: no such key in optimizer (did you mean optimizer.momentum?)"),
        ("+dataset.nam=x", "dataset.nam: no such key in dataset (did you mean dataset.name?)"),
        ("+model.hiden=[1]", "model.hiden: no such key in model"),
        ("+scheduler.final=0.1", "scheduler.final: no such key in scheduler"),
        ("+logger.mod=online", "logger.mod: no such key in logger (did you mean logger.mode?)"),
        ("+lr_find.start=1", "lr_find.start: no such key in lr_find"),
        (
            "+schedule_plot.comapre=[a]",
            "schedule_plot.comapre: no such key in schedule_plot (did you mean schedule_plot.compare?)",
        ),
        (
            "+trainer.divergence.factr=3",
            "trainer.divergence.factr: no such key in trainer.divergence (did you mean trainer.divergence.factor?)",
        ),
        ("trainer.epoch=3", "trainer.epoch: no such key in trainer (did you mean trainer.epochs?)"),
        ("fooo=1", "fooo: no such key (check the spelling)"),
    ],
)
@pytest.mark.slow
def test_unknown_keys_are_refused_with_or_without_plus(capsys, override, expected):
    err = bad_input(capsys, override)
    assert expected in err
    assert "+" not in err  # no hint to force the key in


def test_unknown_keys_in_every_job_and_in_a_sampled_sweep(capsys):
    assert "optimizer.bogus: no such key in optimizer" in bad_input(capsys, "-m", "seed=0,1", "+optimizer.bogus=1,2")
    err = bad_input(capsys, "-m", "hparams_search=optuna_lr", "optimizer.lrr=interval(0.1,1.0)")
    assert "optimizer.lrr: no such key in optimizer (did you mean optimizer.lr?)" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["+hydra.job.env_set.SCHEDLAB_TEST=1"],
        ["hydra.job.chdir=false", "hydra.verbose=true"],
        ["-m", "seed=0,1", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
        ["-m", "hparams_search=optuna_lr", "hydra.sweeper.n_trials=3", "dataset=synthetic"],
        ["arm=d2l_cosine"],
        ["+optimizer.foreach=true", "optimizer.fused=false"],  # torch's switches are schema keys (None: torch's choice)
    ],
)
def test_keys_hydra_needs_and_real_group_options_still_pass(capsys, argv):
    precheck(argv)  # no exit
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    "argv,key",
    [
        (["hydra.run.dir=conf"], "hydra.run.dir"),
        (["hydra.run.dir=conf/runs"], "hydra.run.dir"),
        (["hydra.run.dir=."], "hydra.run.dir"),
        (["hydra.run.dir=./"], "hydra.run.dir"),
        (["hydra.run.dir="], "hydra.run.dir"),
        (["hydra.run.dir=trainer"], "hydra.run.dir"),
        (["hydra.run.dir=schedulers"], "hydra.run.dir"),
        (["hydra.run.dir=tests/"], "hydra.run.dir"),
        (["hydra.run.dir=benchmarks"], "hydra.run.dir"),
        (["hydra.run.dir=experiments/x/.."], "hydra.run.dir"),
        ([f"hydra.run.dir={CONF.parent}"], "hydra.run.dir"),
        ([f"hydra.run.dir={CONF.parent.parent}"], "hydra.run.dir"),
        (["-m", "seed=0,1", "hydra.sweep.dir=."], "hydra.sweep.dir"),
        (["-m", "seed=0,1", "hydra.sweep.dir=conf"], "hydra.sweep.dir"),
        (["resume=conf"], "resume"),
        (["resume=."], "resume"),
    ],
)
def test_output_folder_that_would_write_into_the_project_is_refused(capsys, argv, key):
    err = bad_input(capsys, *argv)
    assert err.startswith(f"schedlab: error: {key}=") and "is not allowed" in err


@pytest.mark.slow
def test_output_folder_that_is_the_current_directory_is_refused(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert "hydra.run.dir='.' is not allowed" in bad_input(capsys, "hydra.run.dir=.")
    assert "hydra.run.dir=" in bad_input(capsys, f"hydra.run.dir={tmp_path}")
    assert "hydra.run.dir=" in bad_input(capsys, f"hydra.run.dir={tmp_path.parent}")
    precheck([f"hydra.run.dir={tmp_path}/run", "hydra.job.chdir=false"])  # a folder of its own is fine
    precheck(["-m", "seed=0,1", f"hydra.sweep.dir={tmp_path}/sweep"])


@pytest.mark.slow
def test_every_job_of_a_large_sweep_reaches_the_check(capsys, monkeypatch):
    """No cap on the number of checked jobs (there was one at 512): the bad job is the last of 1040."""
    import trainer.cli.main
    from trainer.errors import ConfigError

    seen = []

    def record(cfg, sampled=()):
        seen.append(cfg.seed)
        if cfg.seed == 519 and cfg.optimizer.lr == 0.2:
            raise ConfigError("the last job is bad")

    monkeypatch.setattr(trainer.cli.main, "validate", record)
    assert "the last job is bad" in bad_input(capsys, "-m", "optimizer.lr=0.1,0.2", "seed=range(0,520)")
    assert len(seen) == 1040


@pytest.mark.slow
def test_jobs_composed_from_a_shared_base_equal_hydras_own():
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf, open_dict

    from trainer.cli import CONF_DIR, JobComposer

    jobs = [
        ["seed=3", "optimizer.lr=0.2", "trainer.epochs=4"],
        ["scheduler=cosine", "scheduler.final_lr=0.001", "+hydra.job.env_set.X=1"],
        ["model=mlp", "model.hidden=[8,4]", "dataset=synthetic", "dataset.train_size=100"],
        ["optimizer=adam", "optimizer.betas=[0.8,0.9]", "logger.tags=[a,b]"],
        ["++trainer.epochs=7", "arm=d2l_cosine", "seed=1"],
        ["+foo=1"],
    ]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        composer = JobComposer("config")
        for job in jobs:
            fast, full = composer(job), compose("config", overrides=job, return_hydra_config=True)
            for cfg in (fast, full):
                with open_dict(cfg):
                    del cfg["hydra"]
            assert OmegaConf.to_container(fast) == OmegaConf.to_container(full), job
            for group in ("dataset", "model", "optimizer", "trainer", "logger", "scheduler"):
                assert OmegaConf.get_type(fast[group]) is OmegaConf.get_type(full[group])
    assert composer.hydra_compositions < len(jobs) + 2


@pytest.mark.parametrize("final_lr", ["0.05", "0.1", "0.5"])
def test_precheck_does_not_refuse_an_optuna_study_for_its_default_lr(capsys, final_lr):
    # optimizer.lr is sampled in [0.01, 1]: its default (0.05) says nothing about a trial's floor check
    precheck(
        ["-m", "hparams_search=optuna_lr", "scheduler=cosine", f"scheduler.final_lr={final_lr}", "dataset=synthetic"]
    )
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    "argv,expected",
    [
        (["scheduler.final_lr=-1"], "scheduler.final_lr must be >= 0"),
        (["trainer.epochs=0"], "trainer.epochs=0 is not allowed"),
        (["optimizer=sgd", "optimizer.nesterov=true"], None),  # momentum is sampled: its default 0 says nothing
        (
            ["optimizer.nesterov=true", "optimizer.momentum=0"],
            "optimizer.nesterov=True is not allowed",
        ),  # fixed: not sampled
        (["seed=0,1", "trainer.batch_size=0,8"], "trainer.batch_size=0 is not allowed"),
    ],
)
@pytest.mark.slow
def test_an_optuna_study_still_checks_what_it_does_not_sample(capsys, argv, expected):
    full = ["-m", "hparams_search=optuna_lr", "scheduler=cosine", "dataset=synthetic", *argv]
    if expected is None:
        precheck(full)
        assert capsys.readouterr().err == ""
    else:
        assert expected in bad_input(capsys, *full)


@pytest.mark.parametrize(
    "argv,expected",
    [
        (["optimizer.lr=inf"], "optimizer.lr=inf is not allowed: must be a finite number"),
        (["optimizer.lr=nan"], "optimizer.lr=nan is not allowed: must be a finite number"),
        (["optimizer.weight_decay=inf"], "optimizer.weight_decay=inf is not allowed: must be a finite number"),
        (["optimizer.momentum=nan"], "optimizer.momentum=nan is not allowed"),
        (["optimizer.dampening=1.5"], "optimizer.dampening=1.5 is not allowed: must be in [0, 1]"),
        (["optimizer.dampening=-0.1"], "optimizer.dampening=-0.1 is not allowed: must be in [0, 1]"),
        (["optimizer=adam", "optimizer.eps=-1e-8"], "optimizer.eps=-1e-08 is not allowed: must be >= 0"),
        (["optimizer=adam", "optimizer.eps=inf"], "optimizer.eps=inf is not allowed: must be a finite number"),
        (["optimizer=adam", "optimizer.betas=[0.9,nan]"], "optimizer.betas[1]=nan is not allowed"),
        (["trainer.divergence.factor=inf"], "trainer.divergence.factor=inf is not allowed: must be a finite number"),
        (["logger.init_timeout=inf"], "logger.init_timeout=inf is not allowed: must be a finite number"),
        (["logger.finish_timeout=nan"], "logger.finish_timeout=nan is not allowed: must be a finite number"),
        (["lr_find.end_lr=inf"], "lr_find.end_lr=inf is not allowed: must be a finite number"),
        (["lr_find.start_lr=nan"], "lr_find.start_lr=nan is not allowed: must be a finite number"),
        (["lr_find.diverge_factor=inf"], "lr_find.diverge_factor=inf is not allowed: must be a finite number"),
        (["lr_find.beta=nan"], "lr_find.beta=nan is not allowed"),
        (["model=mlp", "model.dropout=nan"], "model.dropout=nan is not allowed"),
        (["model=mlp", "model.hidden=[64,0]"], "model.hidden[1]=0 is not allowed: must be >= 1"),
        (["model=resnet", "model.blocks_per_stage=0"], "model.blocks_per_stage=0 is not allowed: must be >= 1"),
        (["model=resnet", "model.widths=[16,0]"], "model.widths[1]=0 is not allowed: must be >= 1"),
        (["model=resnet", "model.widths=[]"], "model.widths=[] is not allowed"),
        (["dataset.image_size=0"], "dataset.image_size=0 is not allowed: must be >= 1"),
        (["dataset.channels=0"], "dataset.channels=0 is not allowed: must be >= 1"),
        (["dataset.num_classes=0"], "dataset.num_classes=0 is not allowed: must be >= 1"),
        (["dataset=synthetic", "dataset.image_size=8"], "model.image_size=8 is not allowed: must be >= 12"),
        (["dataset=synthetic", "dataset.noise=inf"], "dataset.noise=inf is not allowed: must be a finite number"),
        (["seed=4294967296"], "seed=4294967296 is not allowed: must be an integer in [0, 2**32)"),
        (["seed=-1"], "seed=-1 is not allowed: must be an integer >= 0"),
    ],
)
@pytest.mark.slow
def test_impossible_values_are_refused(capsys, argv, expected):
    assert expected in bad_input(capsys, *argv)


@pytest.mark.parametrize(
    "argv",
    [
        ["dataset=synthetic", "dataset.image_size=12"],
        ["seed=4294967295"],
        ["optimizer.dampening=1"],
        ["model=mlp", "dataset=synthetic", "dataset.image_size=4"],
    ],
)
def test_values_at_the_edge_of_the_range_pass(argv):
    validate(compose_config(argv))


@pytest.mark.slow
def test_cli_refuses_the_config_folder_as_run_folder_before_any_work(cli):
    before = sorted(p.relative_to(CONF) for p in CONF.rglob("*"))
    result = cli(["hydra.run.dir=conf", "dataset=synthetic"])
    assert result.returncode == 2
    assert result.stderr.strip().startswith("schedlab: error: hydra.run.dir='conf' is not allowed:")
    assert result.stderr.count("\n") == 1
    assert sorted(p.relative_to(CONF) for p in CONF.rglob("*")) == before


SCHEDULE_FREE = ("sgd_schedulefree", "adamw_schedulefree")


@pytest.mark.parametrize("optimizer", sorted(p.stem for p in (CONF / "optimizer").glob("*.yaml")))
@pytest.mark.slow
def test_every_schedule_at_its_defaults_drives_every_optimizer_at_its_defaults(optimizer):
    """No default of one group clashes with another's (an LR floor above Adam's LR, say): any pair of options
    trains as composed, except that a schedule-free optimizer takes a constant schedule only and that, as in
    torch, onecycle and cyclic cycle a momentum that Adagrad and Adadelta do not have (one line says how)."""
    import torch

    from schedulers import build_schedule, lr_curve
    from trainer.engine.setup import build_optimizer

    for path in sorted((CONF / "scheduler").glob("*.yaml")):
        cfg = compose_config([f"optimizer={optimizer}", f"scheduler={path.stem}", "trainer.epochs=30"])
        if optimizer in SCHEDULE_FREE and path.stem != "constant":
            with pytest.raises(ValueError, match=f"optimizer={optimizer}"):
                validate(cfg)
            continue
        if optimizer in ("adagrad", "adadelta") and path.stem in ("onecycle", "cyclic"):
            with pytest.raises(ValueError, match="has no momentum or beta1 to cycle: set scheduler.cycle_momentum"):
                validate(cfg)
            cfg = compose_config(
                [
                    f"optimizer={optimizer}",
                    f"scheduler={path.stem}",
                    "trainer.epochs=30",
                    "scheduler.cycle_momentum=false",
                ]
            )
        validate(cfg)
        params = [torch.nn.Parameter(torch.zeros(2))]
        build_schedule(cfg.scheduler, build_optimizer(cfg.optimizer, params), 10, 30)
        _, curve = lr_curve(cfg.scheduler, float(cfg.optimizer.lr), 30, 10)
        assert all(math.isfinite(lr) and lr >= 0 for lr in curve) and max(curve) > 0, path.stem


@pytest.mark.parametrize(
    "overrides",
    [
        ["scheduler=step", "scheduler.gamma={_target_:builtins.print,_args_:[RAN]}"],  # a typed float
        ["optimizer.lr={_target_:builtins.print,_args_:[RAN]}"],
        ["scheduler=torch", "scheduler.gamma={_target_:builtins.print,_args_:[RAN]}"],  # torch's untyped arguments
        ["scheduler=torch", "scheduler.gamma=[1,{_target_:builtins.print,_args_:[RAN]}]"],
        # inside a list the schema types as scalars (OmegaConf lets an override put a node there)
        ["model=mlp", "model.hidden=[{_target_:builtins.print,_args_:[RAN]},8]"],
        ["optimizer=adam", "optimizer.betas=[0.9,{_target_:builtins.print,_args_:[RAN]}]"],
        ["trainer.keep_checkpoints=[{_target_:builtins.print,_args_:[RAN]}]"],
        ["task=toy", "toy.start=[{_target_:builtins.print,_args_:[RAN]},1]"],
    ],
)
@pytest.mark.slow
def test_a_node_with_a_target_is_never_a_value(capsys, overrides):
    # a config node given where a number is expected is refused in one line naming the key; its target never runs
    message = bad_input(capsys, *FAST, *overrides)  # which asserts that nothing reached stdout: no target ran
    key = overrides[-1].split("=")[0]
    assert message.startswith(f"schedlab: error: {key}")


def test_the_keys_that_matter_for_resume_stacking_and_eval_are_declared_on_their_fields():
    from omegaconf import OmegaConf

    from trainer.config import BRANCHES, EVAL_IGNORES, EVAL_SETS, NEUTRAL, NEUTRAL_KEYS, PER_ARM, keys_with

    assert (
        set(NEUTRAL_KEYS)
        == set(keys_with(NEUTRAL))
        == {"resume", "logger", "trainer.progress", "trainer.checkpoint", "trainer.keep_checkpoints"}
    )
    assert set(keys_with(PER_ARM)) == {
        "seed",
        "optimizer",
        "scheduler",
        "trainer.divergence",
        "trainer.early_stopping",
        "trainer.lr_find",
        "trainer.progress",
        "lr_find",
        "objective",
        "logger",
        "schedule_plot",
        "eval",
        "toy",
    }
    assert set(keys_with(EVAL_SETS)) == {
        "trainer.device",
        "trainer.precision",
        "trainer.eval_batch_size",
        "trainer.num_threads",
        "trainer.channels_last",
        "dataset.root",
        "dataset.download",
    }
    ignored = set(keys_with(EVAL_IGNORES))
    assert "toy" in ignored and {"task", "resume", "seed", "logger", "trainer.divergence"} <= ignored
    assert not ignored & set(keys_with(EVAL_SETS))  # a key is either set or ignored by task=eval
    assert set(keys_with(BRANCHES)) == {"scheduler", "trainer.epochs", "branch", "objective"}
    cfg = compose_config([])
    for role in (NEUTRAL, PER_ARM, EVAL_SETS, EVAL_IGNORES, BRANCHES):  # every declared key is a key of the config
        for key in keys_with(role):
            assert OmegaConf.select(cfg, key, default="<missing>") != "<missing>", key


def _every_option() -> list[str]:
    groups = ("dataset", "model", "optimizer", "scheduler", "trainer", "logger", "arm", "experiment", "debug")
    return [f"{g}={p.stem}" for g in groups for p in sorted((CONF / g).glob("*.yaml"))]


@pytest.mark.parametrize("option", _every_option())
@pytest.mark.slow
def test_the_typed_config_is_the_composed_one_with_its_schemas_types(option):
    # converted once per task (fit, a stack, the LR range test, schedule, toy, eval): every group its schema's object, every value of
    # its declared type, and the same resolved config back, so config.yaml and a checkpoint's comparison are unchanged
    import yaml
    from omegaconf import OmegaConf

    from trainer.config import (
        ImageDatasetConfig,
        ModelConfig,
        OptimizerConfig,
        SchedlabConfig,
        TrainerConfig,
        from_saved,
        resolved,
        typed,
    )

    cfg = compose_config([option])
    run = typed(cfg)
    assert isinstance(run, SchedlabConfig) and typed(run) is run
    for group, schema in (
        ("dataset", ImageDatasetConfig),
        ("model", ModelConfig),
        ("optimizer", OptimizerConfig),
        ("trainer", TrainerConfig),
    ):
        assert isinstance(getattr(run, group), schema), group
    assert type(run.trainer.epochs) is int and type(run.optimizer.lr) is float and type(run.seed) is int
    assert resolved(run) == OmegaConf.to_container(cfg, resolve=True)
    assert OmegaConf.to_yaml(run) == OmegaConf.to_yaml(cfg, resolve=True)
    # task=eval types the run folder's config.yaml the same way: each group as the schema it was written from
    saved = from_saved(yaml.safe_load(OmegaConf.to_yaml(run)), "config.yaml")
    for group in ("dataset", "model", "optimizer", "scheduler", "trainer", "logger"):
        assert type(getattr(saved, group)) is type(getattr(run, group)), group
    assert resolved(saved) == resolved(run)


def test_a_saved_config_types_where_a_field_is_missing_and_is_one_line_where_a_value_is_wrong():
    import yaml
    from omegaconf import OmegaConf

    from trainer.config import MLPConfig, from_saved, resolved, typed

    saved = resolved(typed(compose_config(["model=mlp", "optimizer=adam"])))
    del saved["trainer"]["ema"], saved["model"]["hidden"]  # written before the field existed: its default
    run = from_saved(saved, "run/config.yaml")
    assert isinstance(run.model, MLPConfig) and run.model.hidden == [256, 128] and run.trainer.ema is None
    for group, key, value, why in [
        ("trainer", "epochs", "many", "could not be converted to Integer"),
        ("model", "width", 3, "its model node fits none of the model schemas"),
    ]:
        bad = yaml.safe_load(OmegaConf.to_yaml(OmegaConf.create(saved)))
        bad[group][key] = value
        with pytest.raises(ConfigError) as e:
            from_saved(bad, "run/config.yaml")
        assert str(e.value).startswith("run/config.yaml does not fit schedlab's schemas (") and why in str(e.value)


@pytest.mark.parametrize(
    ("key", "allowed"),
    [
        ("task", "train, lr_find, schedule, eval, toy"),
        ("trainer.precision", "auto, fp32, bf16, fp16"),
        ("trainer.early_stopping.monitor", "val_acc, val_loss"),
        ("logger.mode", "auto, online, offline, disabled"),
        ("lr_find.mode", "exp, linear"),
        ("lr_find.suggestion", "half_drop, steepest, min_div10, valley"),
        ("eval.checkpoint", "last, best"),
        ("toy.function", "quadratic, rosenbrock, beale"),
    ],
)
@pytest.mark.slow
def test_a_choice_key_is_an_enum_refused_in_one_line(capsys, key, allowed):
    from omegaconf import OmegaConf

    from trainer.config import Choice

    message = bad_input(capsys, *FAST, "logger=wandb", f"{key}=nope")
    assert message == f"schedlab: error: {key}='nope' is not allowed: use one of {allowed}"
    value = OmegaConf.select(compose_config([]), key)
    assert isinstance(value, Choice) and value == value.value and f"{value}" == value.value  # a member is its value
