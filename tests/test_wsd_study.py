"""python -m experiments.wsd_vs_cosine: its three sweeps in the order their runs need, each with the arms and the
folders the next one reads, a finished sweep not run again, a failed one stopping the study with its runs kept."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from helpers import ROOT, compose_config

from experiments.wsd_vs_cosine import study
from trainer.cli import precheck


@pytest.fixture
def commands(monkeypatch):
    """The commands the study runs, none of them run: each returns `codes[name]` (0 by default)."""
    seen, codes = [], {}

    def fake(command, cwd):
        seen.append(command)
        name = next((a.rsplit("/", 1)[1] for a in command if a.startswith("hydra.sweep.dir=")), "report")
        return subprocess.CompletedProcess(command, codes.get(name, 0))

    monkeypatch.setattr(study.subprocess, "run", fake)
    return seen, codes


def test_the_three_sweeps_then_the_report(tmp_path, commands):
    seen, _ = commands
    assert study.main(["--out", str(tmp_path), "--seeds", "0,1", "hydra/launcher=joblib"]) == 0
    constant, cooldowns, cosine, report = seen
    for command in (constant, cooldowns, cosine):
        assert command[:4] == [sys.executable, str(ROOT / "run.py"), "-m", "experiment=wsd_vs_cosine"]
        assert "seed=0,1" in command and command[-1] == "hydra/launcher=joblib"
    assert "arm=wsd_constant" in constant and "hydra.sweep.subdir=seed${seed}" in constant
    assert f"hydra.sweep.dir={tmp_path}/constant" in constant
    assert "arm=wsd_cooldown_8,wsd_cooldown_16,wsd_cooldown_24,wsd_cooldown_32" in cooldowns
    assert f"branch.parent={tmp_path}/constant/seed${{seed}}" in cooldowns  # each seed's own parent
    assert "arm=cosine_8,cosine_16,cosine_24,cosine_32" in cosine
    assert report == [sys.executable, "-m", "experiments.report", str(tmp_path)]


def finish(folder, *names):
    for name in names:
        (folder / name).mkdir(parents=True)
        (folder / name / "summary.json").write_text(json.dumps({"status": "completed"}))


def test_a_finished_sweep_is_not_run_again_and_a_failed_one_stops_the_study(tmp_path, commands, capsys):
    seen, codes = commands
    finish(tmp_path / "constant", "seed0", "seed1", "seed2")
    finish(tmp_path / "cooldowns", *map(str, range(11)))  # one of the twelve is missing
    codes["cooldowns"] = 1
    assert study.main(["--out", str(tmp_path)]) == 1
    assert len(seen) == 1 and f"hydra.sweep.dir={tmp_path}/cooldowns" in seen[0]
    out, err = capsys.readouterr()
    assert f"{tmp_path}/constant: its 3 runs completed; not run again" in out
    assert err.strip() == f"schedlab: the cooldowns sweep failed; its finished runs are kept in {tmp_path}/cooldowns"


def test_the_arms_budgets_and_branch_points_agree():
    """Each cooldown starts at three quarters of its budget, from a state the parent keeps (or its last)."""
    parent = compose_config(["experiment=wsd_vs_cosine", "arm=wsd_constant"]).trainer
    for budget in study.BUDGETS:
        cooldown = compose_config(["experiment=wsd_vs_cosine", f"arm=wsd_cooldown_{budget}"])
        cosine = compose_config(["experiment=wsd_vs_cosine", f"arm=cosine_{budget}"])
        assert cooldown.trainer.epochs == cosine.trainer.epochs == budget
        assert cooldown.branch.epoch == budget * 3 // 4
        assert cooldown.branch.epoch in [*parent.keep_checkpoints, parent.epochs]
        assert (cooldown.scheduler.name, cooldown.scheduler.decay_fraction) == ("wsd", 1.0)
        assert cosine.scheduler.name == "cosine_to_zero"


def test_the_sweeps_without_a_parent_pass_run_pys_checks(tmp_path, capsys):
    for name, overrides in study.stages(tmp_path, "0,1,2"):
        if name != "cooldowns":  # its check reads the parents' folders, which the first sweep writes
            precheck([*overrides, f"hydra.sweep.dir={tmp_path / name}"])
    assert capsys.readouterr().err == ""
