"""Multirun sweeps: every job's results, one offline W&B run per job whose logged values are read back, the
parallel launchers, a failing job, an Optuna search, and an unreachable W&B server."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from helpers import find_run_files, read_run, run_cli, write_mnist

from trainer.records import read_metrics

SMALL = [
    "dataset=synthetic",
    "dataset.train_size=512",
    "dataset.test_size=128",
    "trainer.batch_size=128",
    "trainer.epochs=1",
    "trainer.progress=false",
]
OFFLINE = {"WANDB_MODE": "offline"}


def summaries(sweep: Path) -> dict[int, dict]:
    return {int(p.parent.name): json.loads(p.read_text()) for p in sweep.glob("*/summary.json")}


@pytest.fixture(scope="module")
def wandb_sweep(tmp_path_factory) -> Path:
    sweep = tmp_path_factory.mktemp("wandb") / "sweep"
    result = run_cli(
        ["-m", *SMALL, "logger=wandb", "scheduler=constant,cosine", "seed=0,1", f"hydra.sweep.dir={sweep}"], env=OFFLINE
    )
    assert result.returncode == 0, result.stderr
    return sweep


@pytest.mark.slow
def test_every_combination_runs_in_its_own_folder(wandb_sweep):
    found = summaries(wandb_sweep)
    assert sorted(found) == [0, 1, 2, 3]
    combos = {tuple(sorted(o for o in s["overrides"] if o.startswith(("scheduler=", "seed=")))) for s in found.values()}
    assert combos == {
        ("scheduler=constant", "seed=0"),
        ("scheduler=constant", "seed=1"),
        ("scheduler=cosine", "seed=0"),
        ("scheduler=cosine", "seed=1"),
    }
    for job, summary in found.items():
        assert summary["status"] == "completed"
        # the job folder says which overrides it had
        overrides = yaml.safe_load((wandb_sweep / str(job) / ".hydra" / "overrides.yaml").read_text())
        assert set(summary["overrides"]) == set(overrides)


def test_each_job_logged_its_metrics_to_its_own_offline_wandb_run(wandb_sweep):
    ids, groups = set(), {}
    for job in range(4):
        run_dir = wandb_sweep / str(job)
        files = find_run_files(run_dir)
        assert len(files) == 1
        logged = read_run(files[0])
        ids.add(logged.run.run_id)
        # grouped by arm (the overrides but the seed), the sweep a tag: W&B's grouped view averages seeds only
        schedule = next(
            o for o in json.loads((run_dir / "summary.json").read_text())["overrides"] if o.startswith("scheduler=")
        )
        groups.setdefault(schedule, set()).add(logged.run.run_group)
        assert schedule in logged.run.run_group and "seed=" not in logged.run.run_group
        assert f"sweep:{'/'.join(wandb_sweep.parts[-2:])}" in logged.run.tags
        assert logged.run.job_type == "train"
        assert "scheduler=" in logged.run.display_name and "seed=" in logged.run.display_name
        epochs = [h for h in logged.history if "epoch" in h]
        metrics = read_metrics(run_dir)
        assert len(epochs) == len(metrics) == 1
        for key in ("train_loss", "train_acc", "test_loss", "test_acc", "gap", "lr"):
            assert epochs[0][f"epoch/{key}"] == metrics[0][key], key
        steps = [h for h in logged.history if "step" in h]
        csv = [line.split(",") for line in (run_dir / "steps.csv").read_text().splitlines()[1:]]
        assert [(h["step"], h["step/lr"], h["step/loss"]) for h in steps] == [
            (int(s), float(lr), float(v)) for s, _, lr, v in csv
        ]
        summary = json.loads((run_dir / "summary.json").read_text())
        assert logged.summary["status"] == "completed"
        assert logged.summary["final_test_acc"] == summary["final_test_acc"]
        assert logged.summary["best_val_acc"] == summary["best_val_acc"]
        assert logged.exit_code == 0
    assert len(ids) == 4
    assert len(groups) == 2 and all(len(g) == 1 for g in groups.values())  # two arms, two seeds each
    assert groups["scheduler=constant"] != groups["scheduler=cosine"]


@pytest.mark.slow
def test_failed_job_is_recorded_and_its_wandb_run_marked_failed(tmp_path):
    write_mnist(tmp_path / "good")
    write_mnist(tmp_path / "bad", truncate=True)
    sweep = tmp_path / "sweep"
    result = run_cli(
        [
            "-m",
            "dataset=mnist",
            "dataset.download=false",
            "trainer.epochs=1",
            "trainer.batch_size=64",
            "dataset.val_size=0.125",
            "logger=wandb",
            f"dataset.root={tmp_path / 'bad'},{tmp_path / 'good'}",
            f"hydra.sweep.dir={sweep}",
        ],
        env=OFFLINE,
    )
    assert result.returncode != 0  # the sweep reports that a job failed...
    found = summaries(sweep)
    assert found[0]["status"] == "failed" and "t10k-images-idx3-ubyte is truncated" in found[0]["error"]
    assert found[1]["status"] == "completed" and len(read_metrics(sweep / "1")) == 1  # ...and the other finished
    assert read_run(find_run_files(sweep / "0")[0]).exit_code == 1
    assert read_run(find_run_files(sweep / "1")[0]).exit_code == 0


def overlapping(a: dict, b: dict) -> bool:
    start = max(datetime.fromisoformat(a["started_at"]), datetime.fromisoformat(b["started_at"]))
    end = min(datetime.fromisoformat(a["finished_at"]), datetime.fromisoformat(b["finished_at"]))
    return start < end


@pytest.mark.slow
def test_joblib_launcher_runs_jobs_in_parallel(tmp_path):
    sweep = tmp_path / "sweep"
    result = run_cli(
        [
            "-m",
            *SMALL,
            "trainer.epochs=3",
            "logger=none",
            "trainer.num_threads=1",
            "seed=0,1",
            "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=2",
            f"hydra.sweep.dir={sweep}",
        ]
    )
    assert result.returncode == 0, result.stderr
    found = summaries(sweep)
    assert sorted(found) == [0, 1] and all(s["status"] == "completed" for s in found.values())
    assert overlapping(found[0], found[1]), "the two jobs did not run at the same time"


@pytest.mark.slow
def test_submitit_local_launcher_runs_the_jobs(tmp_path):
    sweep = tmp_path / "sweep"
    result = run_cli(
        [
            "-m",
            *SMALL,
            "logger=none",
            "seed=0,1",
            "hydra/launcher=submitit_local",
            "hydra.launcher.timeout_min=10",
            f"hydra.sweep.dir={sweep}",
        ]
    )
    assert result.returncode == 0, result.stderr
    found = summaries(sweep)
    assert sorted(found) == [0, 1] and all(s["status"] == "completed" for s in found.values())


@pytest.mark.slow
def test_optuna_search_returns_the_best_trial(tmp_path):
    sweep = tmp_path / "sweep"
    result = run_cli(
        [
            "-m",
            "hparams_search=optuna_lr",
            *SMALL,
            "logger=none",
            "hydra.sweeper.n_trials=3",
            f"hydra.sweep.dir={sweep}",
        ]
    )
    assert result.returncode == 0, result.stderr
    found = summaries(sweep)
    assert len(found) == 3
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert best["best_value"] == max(s["best_val_acc"] for s in found.values())  # chosen on validation
    winners = [s["overrides"] for s in found.values() if s["best_val_acc"] == best["best_value"]]
    assert any(f"optimizer.lr={best['best_params']['optimizer.lr']}" in w for w in winners)


@pytest.mark.slow
def test_unreachable_wandb_server_never_stops_training(tmp_path):
    run = tmp_path / "run"
    env = {"WANDB_MODE": "", "WANDB_API_KEY": "x" * 40, "WANDB_BASE_URL": "http://127.0.0.1:9"}
    result = run_cli(
        [*SMALL, "logger=wandb", "logger.mode=online", "logger.init_timeout=5", f"hydra.run.dir={run}"],
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads((run / "summary.json").read_text())["status"] == "completed"
    assert len(read_metrics(run)) == 1
    assert result.stderr.count("W&B online start failed") == 1
    # it went on offline: the run is kept for `wandb sync`
    assert find_run_files(run)


# ----------------------------------------------------------------------- the jobs of a sweep, up front

EXPANSIONS = [
    ([], None),
    (["a=1,2", "b=x,y,z"], None),
    (["seed=3,4", "c=1"], {"seed": "0,1,2", "arm": "d2l_sqrt,d2l_cosine"}),  # a later value of a key keeps its place
    (["+x=1", "x=2,3", "++y=4,5", "~z"], None),
    (["a=range(0,3)", "b=range(1,10,4)", "c=1"], None),
    (["l=[1,2]", "k=choice(a,b)", "s='hello world'", "d={a:1,b:2}"], {"k": "c"}),
    (["optimizer@opt=sgd,adam", "a=1", "a=2,3"], None),
    (["m=choice(1,2)", "n=tag(t,choice(3,4))", "o=null"], {"seed": 0, "p": "[1,2]"}),
]


@pytest.mark.parametrize("overrides,params", EXPANSIONS)
def test_jobs_are_listed_as_hydras_basic_sweeper_lists_them(overrides, params):
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    from trainer.config.sweeps import BASIC_SWEEPER, basic_sweeper_jobs, expand, parse

    hydras = BasicSweeper.split_arguments(parse(overrides, params), None)
    assert len(hydras) == 1
    assert expand(overrides, params) == hydras[0]
    assert f"{BasicSweeper.__module__}.{BasicSweeper.__name__}" == BASIC_SWEEPER
    hydra_cfg = {"sweeper": {"_target_": BASIC_SWEEPER, "params": params}, "overrides": {"task": overrides}}
    assert basic_sweeper_jobs(hydra_cfg) == hydras[0]


def test_basic_sweeper_jobs_of_other_sweepers_and_unreadable_nodes():
    from trainer.config.sweeps import BASIC_SWEEPER, basic_sweeper_jobs

    optuna = {
        "sweeper": {
            "_target_": "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper",
            "params": {"optimizer.lr": "interval(0.01, 1.0)"},
        },
        "overrides": {"task": ["seed=0,1"]},
    }
    assert basic_sweeper_jobs(optuna) == []
    assert basic_sweeper_jobs({}) == []
    assert basic_sweeper_jobs({"sweeper": {"_target_": BASIC_SWEEPER}}) == []  # no overrides node
    assert (
        basic_sweeper_jobs({"sweeper": {"_target_": BASIC_SWEEPER}, "overrides": {"task": ["a=interval(0,1)"]}}) == []
    )
    assert basic_sweeper_jobs({"sweeper": {"_target_": BASIC_SWEEPER}, "overrides": {"task": ["a=1,2"]}}) == [
        ["a=1"],
        ["a=2"],
    ]


def test_sweeps_that_cannot_be_listed():
    from trainer.config.sweeps import NotExpandable, expand

    with pytest.raises(NotExpandable, match="interval"):
        expand(["a=1,2", "b=interval(0,1)"])
    assert expand(["a=1,2", "b=interval(0,1)", "scheduler=glob(cos*)"], keep_unexpandable=True) == [["a=1"], ["a=2"]]


@pytest.mark.slow
def test_an_invalid_optuna_trial_is_a_failed_trial_and_the_study_goes_on(tmp_path):
    """LRs below the schedule's floor are sampled: those trials fail, with their reason, and score the worst value."""
    sweep = tmp_path / "sweep"
    result = run_cli(
        [
            "-m",
            "hparams_search=optuna_lr",
            *SMALL,
            "logger=none",
            "scheduler=cosine",
            "scheduler.final_lr=0.1",
            "hydra.sweeper.n_trials=6",
            f"hydra.sweep.dir={sweep}",
        ]
    )
    assert result.returncode == 0, result.stderr
    found = summaries(sweep)
    assert len(found) == 6
    failed = [s for s in found.values() if s["status"] == "failed"]
    completed = [s for s in found.values() if s["status"] == "completed"]
    assert failed and completed, [s["status"] for s in found.values()]
    assert all("scheduler.final_lr" in s["error"] for s in failed)
    assert result.stderr.count("failed: scheduler.final_lr") == len(failed)
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert best["best_value"] == max(s["best_val_acc"] for s in completed)


@pytest.mark.slow
def test_an_unreachable_wandb_server_is_tried_once_per_sweep(tmp_path):
    sweep = tmp_path / "sweep"
    env = {"WANDB_MODE": "", "WANDB_API_KEY": "x" * 40, "WANDB_BASE_URL": "http://127.0.0.1:9"}
    result = run_cli(
        [
            "-m",
            *SMALL,
            "logger=wandb",
            "logger.mode=online",
            "logger.init_timeout=5",
            "seed=0,1",
            f"hydra.sweep.dir={sweep}",
        ],
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("W&B online start failed") == 1
    assert result.stderr.count("W&B was unreachable for an earlier job of this sweep") == 1
    assert (sweep / ".wandb_unreachable").exists()
    assert all(s["status"] == "completed" for s in summaries(sweep).values())
    assert all(find_run_files(sweep / str(job)) for job in (0, 1))  # both kept offline for `wandb sync`


def test_parallel_jobs_draw_their_progress_bars_on_their_own_lines():
    """joblib's jobs share one terminal: job N's bar takes line N mod n_jobs (-1: all CPUs, -2: all but one)."""
    import os

    from omegaconf import OmegaConf

    from trainer.cli import parallel_slot

    joblib = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
    two = OmegaConf.create({"_target_": joblib, "n_jobs": 2})
    assert [parallel_slot(two, n) for n in range(5)] == [0, 1, 0, 1, 0]
    cpus = os.cpu_count()
    assert parallel_slot(OmegaConf.create({"_target_": joblib, "n_jobs": -1}), cpus + 1) == 1
    assert parallel_slot(OmegaConf.create({"_target_": joblib, "n_jobs": -2}), max(cpus - 1, 1)) == 0
    basic = OmegaConf.create({"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"})
    assert parallel_slot(basic, 3) is None
