"""Shared fixtures: composing configs as run.py does, and running run.py in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from trainer.cli import compose_config as _compose
from trainer.config import register_configs

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
# the synthetic set at an eighth of its default size, so that every test run takes seconds
FAST = ["dataset=synthetic", "dataset.train_size=2048", "dataset.test_size=512", "logger=none", "trainer.batch_size=128",
        "trainer.progress=false"]

register_configs()


def compose_config(overrides: list[str] = ()):
    """The config run.py would see for these overrides (without the hydra node), unchecked."""
    return _compose(overrides, check=False)


def run_cli(args: list[str], env: dict | None = None, timeout: float = 600, cwd: Path = ROOT):
    """python run.py ARGS in a subprocess; returns the CompletedProcess (text output)."""
    full_env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONUNBUFFERED": "1", **(env or {})}
    full_env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run(
        [sys.executable, str(ROOT / "run.py"), *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def cli():
    return run_cli


def stop_in_epoch(monkeypatch, run_dir: Path, epoch: int, error: type[BaseException] = KeyboardInterrupt):
    """Make fit() raise `error` at epoch `epoch`'s first evaluation (the epochs before it are committed);
    returns the real evaluate, to put back with monkeypatch.setattr(trainer.engine.fit, "evaluate", real)."""
    import trainer.engine.fit
    from trainer.records import read_metrics

    real = trainer.engine.fit.evaluate

    def evaluate(*args, **kwargs):
        if len(read_metrics(run_dir)) == epoch - 1:
            raise error(f"stopped in epoch {epoch}")
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer.engine.fit, "evaluate", evaluate)
    return real
