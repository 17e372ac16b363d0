"""schedlab from Python: train one config, or a sweep, from a script or a notebook, and get each run's summary and
records back.

    from trainer.api import sweep, train

    run = train(["dataset=synthetic", "trainer.epochs=2"])
    run.status, run.summary["final_test_acc"], run.records[-1]["val_acc"], run.run_dir
    for run in sweep(["dataset=synthetic", "seed=0,1", "scheduler=cosine,constant"], launcher="stacked"):
        print(run.overrides, run.summary["best_val_acc"])

The overrides are run.py's, and so are the checks: every job is composed and checked before the first one starts,
and bad input raises ConfigError with run.py's one line as its message. The runs train in this process (so a
model or schedule of yours only needs to be importable here: on sys.path, or in `__main__`), each into a run
folder of its own as run.py writes it (config.yaml, metrics.jsonl, steps.csv, summary.json, ...; not Hydra's
.hydra/), by default under outputs/api/<date>/<time>/ (a sweep's jobs in <job>/ below it), relative to the current
directory; the report reads them as any other. A sweep lists its jobs as Hydra's basic sweeper does
(`key=a,b`, `range(...)`, an experiment's own sweep) and runs them as the basic launcher does (one after another;
a job that fails is recorded as failed, and the others go on) or, with launcher="stacked", as
hydra/launcher=stacked does. Sweepers that sample (Optuna) and the other launchers: `python run.py -m`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

from trainer.cli.compose import CONF_DIR, JobComposer
from trainer.cli.folders import project_folder
from trainer.cli.lines import CONFIG_ERRORS, error_line, outcome
from trainer.cli.main import check_choices, sweep_jobs, without_hydra
from trainer.config import register_configs, validate
from trainer.config.sweeps import expand, parse
from trainer.errors import ConfigError
from trainer.records import Job, RunFolder, read_metrics, read_summary

LAUNCHERS = ("basic", "stacked")
OUTPUTS = Path("outputs") / "api"


@dataclass
class Run:
    """One run's results, read back from its folder."""

    run_dir: Path
    overrides: list[str] = field(default_factory=list)
    summary: dict = field(default_factory=dict)  # summary.json: status, final_* and best_* figures, wall time, ...
    records: list[dict] = field(default_factory=list)  # metrics.jsonl: one row per epoch

    @property
    def status(self) -> str | None:
        """completed, diverged, failed or interrupted."""
        return self.summary.get("status")


def read(run_dir: str | Path) -> Run:
    """The results of any run folder (one of run.py's too)."""
    folder = RunFolder(Path(run_dir), create=False)
    summary = read_summary(folder.dir) or {}
    overrides = folder.read_overrides() or summary.get("overrides") or []
    return Run(folder.dir, [str(o) for o in overrides], summary, read_metrics(folder.dir))


def train(overrides: Sequence[str] = (), run_dir: str | Path | None = None) -> Run:
    """Train the config these overrides give (run.py's, task=train) into `run_dir` (default: a new folder under
    outputs/api/; `resume=<run folder>` continues that run there). Returns its Run; ConfigError for bad input."""
    ((job, cfg),) = _configs(overrides, multirun=False)
    folder = Path(cfg.resume) if cfg.resume else Path(run_dir) if run_dir is not None else _new_folder()
    _check_folder("run_dir", folder)
    _fit(cfg, folder, Job(overrides=job, output_dir=str(folder)))
    return read(folder)


def sweep(
    overrides: Sequence[str] = (),
    sweep_dir: str | Path | None = None,
    launcher: str = "basic",
    max_stack: int | None = None,
    strategy: str = "auto",
) -> list[Run]:
    """Train every job of a sweep (run.py -m's overrides) into `sweep_dir`/<job> (default: a new folder under
    outputs/api/; the same folder again continues an interrupted sweep). launcher: basic (one job after another)
    or stacked (hydra/launcher=stacked, with its max_stack and strategy). Returns each job's Run, in job order; a
    job that failed is one of them (status failed, the error in its summary). ConfigError for bad input."""
    if launcher not in LAUNCHERS:
        raise ConfigError(f"launcher={launcher!r} is not allowed: use one of {', '.join(LAUNCHERS)}")
    from trainer.engine import stack

    stack.check_strategy(strategy)
    if max_stack is not None and (isinstance(max_stack, bool) or not isinstance(max_stack, int) or max_stack < 1):
        raise ConfigError(f"max_stack={max_stack!r} is not allowed: must be an integer >= 1, or None for no limit")
    configs = _configs(overrides, multirun=True)
    root = Path(sweep_dir) if sweep_dir is not None else _new_folder()
    _check_folder("sweep_dir", root)
    dirs = [root / str(num) for num in range(len(configs))]
    jobs = [
        Job(overrides=job, num=num, multirun=True, sweep="/".join(root.parts[-2:]), output_dir=str(d))
        for num, ((job, _), d) in enumerate(zip(configs, dirs, strict=True))
    ]
    cfgs = [cfg for _, cfg in configs]
    units = [[i] for i in range(len(cfgs))]
    if launcher == "stacked":
        # as hydra/launcher=stacked: a job whose folder holds a run of its own's checkpoint continues on its own
        candidates = [i for i in range(len(cfgs)) if not cfgs[i].resume and not (dirs[i] / "checkpoint.pt").exists()]
        plan = stack.plan([cfgs[i] for i in candidates], max_stack, [str(i) for i in candidates])
        stacks = [[candidates[p] for p in s] for s in plan.stacks]
        in_stack = {i for s in stacks for i in s}
        units = sorted([[i] for i in range(len(cfgs)) if i not in in_stack] + stacks, key=lambda u: u[0])
    for unit in units:
        if len(unit) == 1:
            i = unit[0]
            try:
                _fit(cfgs[i], dirs[i], jobs[i])
            except Exception as e:  # recorded in its folder as failed; the other jobs go on
                print(f"schedlab: job {i} failed: {error_line(e)}; results in {dirs[i]}", file=sys.stderr, flush=True)
            continue
        nums = ", ".join(map(str, unit))
        print(f"schedlab: jobs {nums} train as one stack", flush=True)
        try:
            summaries = stack.fit_stack(
                [cfgs[i] for i in unit],
                [dirs[i] for i in unit],
                [jobs[i] for i in unit],
                state_path=stack.checkpoint_path(root, [dirs[i] for i in unit]),
                strategy=strategy,
            )
        except Exception as e:
            print(f"schedlab: the stack of jobs {nums} failed: {error_line(e)}", file=sys.stderr, flush=True)
            continue
        for i, summary in zip(unit, summaries, strict=True):
            print(outcome(summary, dirs[i]), flush=True)
    return [read(d) for d in dirs]


def _fit(cfg: DictConfig, run_dir: Path, job: Job) -> None:
    from trainer.engine.fit import fit

    summary = fit(cfg, run_dir, job)
    print(outcome(summary, run_dir), flush=True)


def _configs(overrides: Sequence[str], multirun: bool) -> list[tuple[list[str], DictConfig]]:
    """(overrides, checked config) of every job, as run.py's precheck composes and checks them; ConfigError (one
    line) for the first bad one."""
    overrides = [str(o) for o in overrides]
    register_configs()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            composer = JobComposer("config")
            try:
                jobs = expand(overrides, keep_unexpandable=True)
                if multirun:
                    jobs, sampled = sweep_jobs(overrides, jobs[0], composer)
                    if sampled:
                        raise ConfigError(
                            f"the sweep samples {', '.join(sorted(sampled))} as it runs (an interval, a glob, Optuna): "
                            "trainer.api.sweep runs listed jobs only (key=a,b or range(...)); use python run.py -m"
                        )
                elif len(jobs) > 1:
                    sweeps = [o.input_line or "" for o in parse(overrides) if o.is_sweep_override()]
                    raise ConfigError(
                        f"{' '.join(sweeps)} is a sweep: use trainer.api.sweep (for a list write key=[a,b])"
                    )
                else:
                    jobs = [overrides]  # as given, as run.py records them
                checked = []
                for job in jobs:
                    cfg = composer(list(job))
                    check_choices(cfg.hydra.runtime.choices, composer)
                    cfg = without_hydra(cfg)
                    if cfg.task != "train":
                        raise ConfigError(
                            f"task={cfg.task} is not allowed: trainer.api trains (task=train); use "
                            "python run.py for the other tasks"
                        )
                    validate(cfg)
                    checked.append((list(job), cfg))
                return checked
            except CONFIG_ERRORS as e:
                raise ConfigError(error_line(e)) from None
    finally:
        GlobalHydra.instance().clear()


def _new_folder() -> Path:
    """outputs/api/<date>/<time to the microsecond>, as run.py names its folders."""
    now = datetime.now()
    return OUTPUTS / now.strftime("%Y-%m-%d") / now.strftime("%H-%M-%S-%f")


def _check_folder(key: str, path: Path) -> None:
    why = project_folder(str(path))
    if why:
        raise ConfigError(
            f"{key}={str(path)!r} is not allowed: {why}; give the run a folder of its own (e.g. under outputs/)"
        )
