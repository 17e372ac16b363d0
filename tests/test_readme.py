"""The README's quick start, as a new user types it: in a fresh shell, after its set-up line's activation,
`python run.py` and the headline sweep work (on the synthetic set, for a few steps), and the report runs on
the sweep. The set-up line's own installs are what CI's test command does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import FAST, ROOT, readme_blocks

SHORT = "dataset=synthetic dataset.train_size=2048 dataset.test_size=512 trainer.epochs=1 trainer.max_steps_per_epoch=3 logger=none"


def code_blocks(section: str) -> list[str]:
    """The lines of a README section's bash code blocks (## heading)."""
    return [line for block in readme_blocks(section) for line in block.strip().splitlines()]


def fresh_shell(command: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """bash -c COMMAND with the environment of a new login: no virtual environment on the PATH."""
    venv = str(Path(sys.prefix) / "bin")
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p != venv)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONHOME")}
    env.update(PATH=path, WANDB_MODE="disabled")
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def activation(setup_line: str) -> str:
    """The set-up line without what installs: the activation it leaves the shell with."""
    steps = [s.strip() for s in setup_line.split("&&")]
    kept = [s for s in steps if s.startswith((". ", "source "))]
    assert kept, f"the set-up line does not activate the environment: {setup_line}"
    return " && ".join(kept)


def quick_start() -> tuple[str, str]:
    """The activation the set-up line leaves the shell with, and the README's headline sweep."""
    setup = code_blocks("Two commands")[0]
    assert setup.endswith("python run.py"), setup
    sweep_line = next(line for line in code_blocks("Sweeps") if line.startswith("python run.py -m "))
    assert sweep_line == "python run.py -m scheduler=cosine,multistep seed=0,1,2"
    return activation(setup), sweep_line


def test_the_quick_start_is_the_set_up_line_then_the_headline_sweep():
    quick_start()  # what the slow test below runs: its lines are still the README's


@pytest.mark.slow
@pytest.mark.skipif(
    not (ROOT / ".venv" / "bin" / "activate").exists(), reason="no .venv: the README's set-up has not run"
)
def test_the_quick_start_works_as_typed_in_a_fresh_shell(tmp_path):
    activate, sweep_line = quick_start()
    single = fresh_shell(f"{activate} && python run.py {SHORT} hydra.run.dir={tmp_path / 'run'}")
    assert single.returncode == 0, single.stderr
    assert (tmp_path / "run" / "summary.json").exists()

    sweep = fresh_shell(f"{activate} && {sweep_line} {SHORT} hydra.sweep.dir={tmp_path / 'sweep'}")
    assert sweep.returncode == 0, sweep.stderr
    assert len(list((tmp_path / "sweep").glob("*/summary.json"))) == 6

    report = fresh_shell(f"{activate} && python -m experiments.report {tmp_path / 'sweep'}")
    assert report.returncode == 0, report.stderr
    assert (tmp_path / "sweep" / "report" / "table.md").exists()


# the branching commands' runs, small: the tests' synthetic set, two steps an epoch (epochs as typed)
SMALL = " ".join([*FAST, "dataset.val_size=256", "trainer.max_steps_per_epoch=2", "trainer.train_eval_size=64"])


@pytest.mark.slow
@pytest.mark.skipif(
    not (ROOT / ".venv" / "bin" / "activate").exists(), reason="no .venv: the README's set-up has not run"
)
def test_the_branching_commands_work_as_typed(tmp_path):
    """ "Cooldowns, weight averages and more than the LR": the parent, the sweep of branches and the report, each
    line as typed with its outputs/ under the test's folder and the runs made small."""
    activate = activation(code_blocks("Two commands")[0])
    lines = code_blocks("Cooldowns, weight averages and more than the LR")
    assert [line.split()[:3] for line in lines] == [
        ["python", "run.py", "trainer.epochs=24"],
        ["python", "run.py", "-m"],
        ["python", "-m", "experiments.report"],
    ]
    for line in lines:
        line = line.replace("outputs/", f"{tmp_path}/outputs/")
        small = SMALL if line.startswith("python run.py") else ""
        result = fresh_shell(f"{activate} && {line} {small}")
        assert result.returncode == 0, f"{line}\n{result.stderr[-3000:]}"
    branches = sorted((tmp_path / "outputs/multirun/wsd_branches").glob("*/summary.json"))
    assert len(branches) == 4
    parent = (tmp_path / "outputs/runs/wsd_parent").resolve()
    assert {json.loads(p.read_text())["branch"]["parent"] for p in branches} == {str(parent)}
    assert (tmp_path / "outputs/multirun/wsd_branches/report/table.md").is_file()
