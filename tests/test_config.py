"""Every config option composes; every bad input is one line naming the key, before any work starts."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import CONF, compose_config

from trainer.cli import precheck
from trainer.config import validate

GROUPS = sorted(p.name for p in CONF.iterdir() if p.is_dir() and p.name != "hydra")
GLOBAL_GROUPS = ("arm", "experiment", "hparams_search")  # `# @package _global_`: they set keys of other groups
OPTIONS = [(g, p.stem) for g in GROUPS for p in sorted((CONF / g).glob("*.yaml"))]


@pytest.mark.parametrize("group,option", OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_option_composes_and_validates(group, option):
    cfg = compose_config([f"{group}={option}"])
    validate(cfg)
    if group not in GLOBAL_GROUPS:
        assert cfg[group] is not None


def test_defaults_are_the_d2l_baseline():
    cfg = compose_config()
    assert (cfg.dataset.name, cfg.model._target_, cfg.optimizer._target_) == ("fashion_mnist", "trainer.models.LeNet", "torch.optim.SGD")
    assert (cfg.trainer.epochs, cfg.trainer.batch_size, cfg.seed, cfg.optimizer.lr) == (30, 256, 0, 0.3)
    assert (cfg.trainer.device, cfg.trainer.precision, cfg.task) == ("auto", "auto", "train")


def bad_input(capsys, *overrides: str) -> str:
    with pytest.raises(SystemExit) as e:
        precheck(list(overrides))
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, f"expected one line, got:\n{err}"
    return err


@pytest.mark.parametrize(
    "override,expected",
    [
        ("trainer.epochs=0", "trainer.epochs=0 is not allowed: must be an integer >= 1"),
        ("trainer.batch_size=0", "trainer.batch_size=0 is not allowed"),
        ("optimizer.lr=-0.1", "optimizer.lr=-0.1 is not allowed: must be > 0"),
        ("optimizer.lr=0", "optimizer.lr=0.0 is not allowed: must be > 0"),
        ("trainer.batch_size=70000", "must be at most the training set size (60000 for dataset=fashion_mnist)"),
        ("trainer.precision=fp8", "trainer.precision='fp8' is not allowed: use one of auto, fp32, bf16, fp16"),
        ("trainer.device=tpu", "trainer.device='tpu' is not allowed"),
        ("task=dance", "task='dance' is not allowed: use one of train, lr_find, schedule"),
        ("trainer.epoch=3", "trainer.epoch: no such key in trainer"),
        ("trainer.epochs=abc", "trainer.epochs: Value 'abc' of type 'str' could not be converted to Integer"),
        ("optimizer=sgdd", "optimizer='sgdd' is not an option: use one of adam, adamw, momentum, nesterov, sgd"),
        ("optimizer.momentum=1.5", "optimizer.momentum=1.5 is not allowed: must be in [0, 1)"),
        ("logger.mode=loud", "logger.mode='loud' is not allowed"),
    ],
)
def test_bad_input_is_one_line_naming_the_key(capsys, override, expected):
    assert expected in bad_input(capsys, override)


def test_every_job_of_a_sweep_is_checked_before_any_runs(capsys):
    err = bad_input(capsys, "-m", "optimizer.lr=0.1,0.2,-1", "seed=0,1")
    assert "optimizer.lr=-1.0 is not allowed" in err


def test_synthetic_batch_limit_follows_its_size(capsys):
    assert "(100 for dataset=synthetic)" in bad_input(capsys, "dataset=synthetic", "dataset.train_size=100", "trainer.batch_size=128")


def test_output_folder_that_cannot_be_created(capsys, tmp_path: Path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    err = bad_input(capsys, f"hydra.run.dir={blocker}/run")
    assert "hydra.run.dir=" in err and "not writable" in err


def test_cli_reports_bad_input_without_a_traceback(cli, tmp_path):
    result = cli(["trainer.epochs=0", f"hydra.run.dir={tmp_path}/run"])
    assert result.returncode == 2
    assert result.stderr.strip() == "schedlab: error: trainer.epochs=0 is not allowed: must be an integer >= 1"
    assert not (tmp_path / "run").exists()  # nothing started


# ------------------------------------------------------------------------- one convention (issue 11)


def test_the_command_line_parser_has_hydras_flags():
    """precheck reads run.py's argv with its own parser; this fails as soon as Hydra's flags change."""
    from hydra._internal.utils import get_args_parser

    from trainer.cli import hydra_args_parser

    def flags(parser):
        return {
            tuple(a.option_strings) or a.dest: (a.dest, a.nargs, a.const, a.default, a.choices,
                                                 "flag" if a.nargs == 0 else "value")
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


def test_no_private_hydra_import_at_module_level():
    import ast

    for path in sorted((CONF.parent / "trainer").glob("*.py")):
        for node in ast.parse(path.read_text()).body:
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(n.startswith("hydra._internal") for n in names), f"{path.name}: {ast.unparse(node)}"


@pytest.mark.parametrize("option", ["dataset=synthetic", "model=mlp", "model=resnet", "optimizer=adamw", "logger=none",
                                    "logger=tensorboard"])
def test_each_group_checks_itself_on_its_typed_object(option):
    from omegaconf import OmegaConf

    cfg = compose_config([option])
    for group in ("dataset", "model", "optimizer", "trainer", "logger", "lr_find"):
        typed = OmegaConf.to_object(cfg[group])
        assert type(typed).__module__ == "trainer.config", group
        typed.check()


def test_logger_options_are_trackers_by_target():
    none, wandb, tensorboard = (compose_config([f"logger={name}"]).logger for name in ("none", "wandb", "tensorboard"))
    assert dict(none) == {"_target_": "trainer.tracking.NullTracker"}
    assert dict(wandb) == {"_target_": "trainer.tracking.WandbTracker", "mode": "auto", "project": "schedlab",
                           "entity": None, "tags": [], "init_timeout": 30.0, "finish_timeout": 120.0, "log_steps": True}
    assert dict(tensorboard) == {"_target_": "trainer.tracking.TensorBoardTracker", "log_dir": "tensorboard",
                                 "log_steps": True}
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
def test_logger_checks(capsys, overrides, expected):
    assert expected in bad_input(capsys, *overrides)


def test_compose_config_checks_unless_told_not_to():
    from trainer.cli import compose_config as compose_checked
    from trainer.errors import ConfigError

    with pytest.raises(ConfigError, match="trainer.epochs=0 is not allowed"):
        compose_checked(["trainer.epochs=0"])
    assert compose_checked(["trainer.epochs=0"], check=False).trainer.epochs == 0
