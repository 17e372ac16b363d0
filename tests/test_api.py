"""The Python API: trainer.api.train and sweep run run.py's configs in the calling process and
give each run's summary and records back, read from the run folders they write; bad input raises ConfigError with
run.py's own line, before any run starts; and the README's example runs as typed."""

from __future__ import annotations

import json
import re
import runpy
import sys
from pathlib import Path

import pytest
from helpers import FAST, ROOT, assert_close, readme_blocks

from trainer import api, models
from trainer.cli import precheck
from trainer.errors import ConfigError

MY_MODELS = """
from torch import nn


class Net(nn.Module):
    def __init__(self, in_channels, num_classes, width=4):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                  nn.Flatten(), nn.Linear(width, num_classes))

    def forward(self, x):
        return self.body(x)
"""

SHORT = [
    *FAST,
    "trainer.epochs=2",
    "trainer.max_steps_per_epoch=2",
    "trainer.train_eval_size=64",
    "trainer.num_threads=1",
]
OWN = ["model=custom", "model._target_=api_models.Net", *SHORT]


@pytest.fixture
def own(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "own"
    folder.mkdir()
    (folder / "api_models.py").write_text(MY_MODELS)
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.delitem(sys.modules, "api_models", raising=False)
    models._check_model.cache_clear()
    return folder


def test_train_gives_the_runs_summary_and_records(tmp_path, own):
    run = api.train(OWN, run_dir=tmp_path / "run")
    assert run.status == "completed" and run.run_dir == tmp_path / "run"
    assert run.summary == json.loads((tmp_path / "run" / "summary.json").read_text())
    assert [r["epoch"] for r in run.records] == [1, 2]
    assert run.records[-1]["test_acc"] == run.summary["final_test_acc"]
    assert run.overrides == OWN
    assert api.read(tmp_path / "run") == run


@pytest.mark.slow
def test_a_sweep_runs_each_job_with_either_launcher(tmp_path, own):
    overrides = [*OWN, "seed=0,1"]
    basic = api.sweep(overrides, sweep_dir=tmp_path / "basic")
    stacked = api.sweep(overrides, sweep_dir=tmp_path / "stacked", launcher="stacked")
    for runs, root in ((basic, "basic"), (stacked, "stacked")):
        assert [r.run_dir for r in runs] == [tmp_path / root / "0", tmp_path / root / "1"]
        assert [r.overrides[-1] for r in runs] == ["seed=0", "seed=1"]
        assert [r.status for r in runs] == ["completed", "completed"]
    assert [r.summary.get("stack") for r in basic] == [None, None]
    assert stacked[0].summary["stack"] == {"jobs": ["0", "1"], "strategy": "sequential"}
    for a, b in zip(basic, stacked, strict=True):
        assert_close(a.run_dir, b.run_dir, rel=None)  # the sequential strategy: bit for bit


def test_a_failed_job_is_recorded_and_the_others_go_on(tmp_path, own, capsys):
    # model.num_classes=5 passes the checks (the model returns 5 logits, as it says) and fails on the data's 10
    runs = api.sweep([*OWN, "model.num_classes=10,5"], sweep_dir=tmp_path / "sweep")
    assert [r.status for r in runs] == ["completed", "failed"]
    assert "returns [2, 5]" in runs[1].summary["error"]
    assert "schedlab: job 1 failed: model._target_=api_models.Net returns [2, 5]" in capsys.readouterr().err


@pytest.mark.parametrize(
    "call,says",
    [
        (lambda d: api.train([*FAST, "seed=0,1"], run_dir=d), "seed=0,1 is a sweep: use trainer.api.sweep"),
        (lambda d: api.train([*FAST, "task=lr_find"], run_dir=d), "task=lr_find is not allowed: trainer.api trains"),
        (lambda d: api.sweep([*FAST, "hparams_search=optuna_lr"], sweep_dir=d), "the sweep samples optimizer.lr"),
        (
            lambda d: api.sweep(FAST, sweep_dir=d, launcher="joblib"),
            "launcher='joblib' is not allowed: use one of basic, stacked",
        ),
        (
            lambda d: api.sweep(FAST, sweep_dir=d, launcher="stacked", strategy="fast"),
            "hydra.launcher.strategy='fast' is not an option",
        ),
        (lambda d: api.sweep(FAST, sweep_dir=d, max_stack=0), "max_stack=0 is not allowed"),
        (lambda d: api.train(FAST, run_dir=ROOT / "conf" / "x"), f"run_dir='{ROOT / 'conf' / 'x'}' is not allowed"),
    ],
)
@pytest.mark.slow
def test_what_only_the_api_refuses_is_one_line_before_any_run(tmp_path, call, says):
    with pytest.raises(ConfigError) as e:
        call(tmp_path / "out")
    assert str(e.value).startswith(says) and "\n" not in str(e.value), str(e.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_bad_value_is_run_pys_own_line(tmp_path, own, capsys):
    for overrides in ([*FAST, "model=custom", "model._target_=api_models.Nett"], [*FAST, "trainer.precision=fp8"]):
        with pytest.raises(SystemExit):
            precheck(overrides)
        line = capsys.readouterr().err.strip().removeprefix("schedlab: error: ")
        with pytest.raises(ConfigError, match=re.escape(line)):
            api.train(overrides, run_dir=tmp_path / "run")
    with pytest.raises(ConfigError, match=re.escape("optimizer.lr=-1.0 is not allowed: must be > 0")):
        api.sweep([*FAST, "seed=0,1", "optimizer.lr=0.1,-1"], sweep_dir=tmp_path / "sweep")  # job 4 of 4
    assert not (tmp_path / "sweep").exists() and not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------------- the README, as typed


@pytest.mark.slow
def test_the_readme_example_runs_as_typed(tmp_path, monkeypatch, capsys):
    """The README's python file saved where it says (under a HOME of the test's own), then its API example run as
    typed from a folder of the test's: one run and a stacked sweep, their figures printed."""
    mine, make_data, example = readme_blocks("Your own model, data and schedule", "python")
    assert "from trainer.api import" in example and len([line for line in example.splitlines() if line]) <= 10
    home = tmp_path / "home"
    (home / "schedlab-own").mkdir(parents=True)
    (home / "schedlab-own" / "mine.py").write_text(mine)
    (home / "schedlab-own" / "make_data.py").write_text(make_data)
    runpy.run_path(str(home / "schedlab-own" / "make_data.py"), run_name="__main__")  # as the commands above do
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "mine", raising=False)
    models._check_model.cache_clear()
    exec(compile(example, "README.md", "exec"), {"__name__": "readme"})
    printed = capsys.readouterr().out
    assert re.search(r"^completed [\d.]+ [\d.]+ outputs/api/", printed, re.M), printed
    assert re.search(r"^\['model=custom', .*'seed=1'\] [\d.]+ 2$", printed, re.M), printed
    summaries = sorted((tmp_path / "outputs" / "api").glob("*/*/summary.json")) + sorted(
        (tmp_path / "outputs" / "api").glob("*/*/*/summary.json")
    )
    assert len(summaries) == 3 and all(json.loads(p.read_text())["status"] == "completed" for p in summaries)
