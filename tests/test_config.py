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
