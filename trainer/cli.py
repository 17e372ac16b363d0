"""Command-line front end: every run and every job of a sweep is checked before any work starts, and bad
input is reported as one line naming the key, the value and what is allowed (exit 2)."""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import HydraException, MissingConfigException
from omegaconf import OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from trainer.config import validate
from trainer.errors import ConfigError
from trainer.sweeps import expand

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
MAX_CHECKED_JOBS = 512
EXIT_BAD_INPUT = 2


def fail(message: str, error: BaseException | None = None) -> None:
    """Print one line and exit; HYDRA_FULL_ERROR=1 keeps the traceback for debugging."""
    if error is not None and os.environ.get("HYDRA_FULL_ERROR") == "1":
        raise error
    print(f"schedlab: error: {message}", file=sys.stderr)
    sys.exit(EXIT_BAD_INPUT)


def one_line(e: BaseException) -> str:
    """A composition error as one line: the key, the value, what is allowed."""
    if isinstance(e, MissingConfigException) and e.options is not None and e.missing_cfg_file:
        group, _, option = e.missing_cfg_file.rpartition("/")
        if group:
            options = sorted(o for o in e.options if not o.endswith("_schema"))
            return f"{group}={option!r} is not an option: use one of {', '.join(options)}"
    cause = e.__cause__ if isinstance(e.__cause__, OmegaConfBaseException) else e
    if isinstance(cause, OmegaConfBaseException):
        key = getattr(cause, "full_key", None)
        msg = str(cause).splitlines()[0].strip()
        if "not in struct" in str(cause) or "Key '" in msg and "not in" in msg:
            parent = key.rpartition(".")[0] if key else ""
            return f"{key}: no such key{f' in {parent}' if parent else ''} (check the spelling, or add it with +{key}=...)"
        return f"{key}: {msg}" if key else msg
    text = " ".join(line.strip() for line in str(e).splitlines() if line.strip())
    return text


def compose_config(overrides: list[str] = (), check: bool = True):
    """The config run.py would see for these overrides, without the hydra node (for tests and benchmarks)."""
    from trainer.config import register_configs

    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=list(overrides))
    GlobalHydra.instance().clear()
    if check:
        validate(cfg)
    return cfg


def _writable_ancestor(path: Path) -> bool:
    for parent in [path, *path.parents]:
        if parent.exists():
            return parent.is_dir() and os.access(parent, os.W_OK)
    return False


INFO_CHOICES = ["all", "config", "defaults", "defaults-tree", "plugins", "searchpath"]


def hydra_args_parser() -> argparse.ArgumentParser:
    """run.py's command line as Hydra 1.3 parses it: the flags of Hydra's own (private) parser, which a test
    compares with this one, so that precheck reads the same overrides and modes Hydra will."""
    parser = argparse.ArgumentParser(add_help=False, prog="run.py")
    parser.add_argument("--help", "-h", action="store_true")
    parser.add_argument("--hydra-help", action="store_true")
    parser.add_argument("--version", action="store_true")  # Hydra prints its version and exits
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--cfg", "-c", choices=["job", "hydra", "all"])
    parser.add_argument("--resolve", action="store_true")
    parser.add_argument("--package", "-p")
    parser.add_argument("--run", "-r", action="store_true")
    parser.add_argument("--multirun", "-m", action="store_true")
    parser.add_argument("--shell-completion", "-sc", action="store_true")
    parser.add_argument("--config-path", "-cp")
    parser.add_argument("--config-name", "-cn")
    parser.add_argument("--config-dir", "-cd")
    parser.add_argument("--experimental-rerun")
    parser.add_argument("--info", "-i", const="all", nargs="?", action="store", choices=INFO_CHOICES)
    return parser


def precheck(argv: list[str]) -> None:
    """Compose and validate every job of the command line before Hydra starts any of them."""
    args, _ = hydra_args_parser().parse_known_args(argv)
    if args.help or args.hydra_help or args.version or args.info or args.cfg or args.shell_completion:
        return  # Hydra's own commands
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        try:
            jobs = expand(args.overrides, keep_unexpandable=True)
            if args.multirun:  # sweeps that a config defines (an experiment's hydra.sweeper.params) too
                first = compose(args.config_name or "config", overrides=jobs[0], return_hydra_config=True)
                params = first.hydra.sweeper.get("params")
                params = OmegaConf.to_container(params) if params else {}
                jobs = expand(args.overrides, params, keep_unexpandable=True)
            elif len(jobs) > 1:
                sweeps = [o for o in args.overrides if o not in jobs[0]]
                fail(f"{' '.join(sweeps)} is a sweep: add -m to run every value (for a list write key=[a,b])")
        except ConfigError as e:
            fail(str(e), e)
        except (HydraException, OmegaConfBaseException) as e:
            fail(one_line(e), e)
        for overrides in jobs[:MAX_CHECKED_JOBS]:
            try:
                cfg = compose(args.config_name or "config", overrides=overrides, return_hydra_config=True)
                out = cfg.hydra.sweep.dir if args.multirun else cfg.hydra.run.dir
                with open_dict(cfg):
                    del cfg["hydra"]
                validate(cfg)
            except ConfigError as e:
                fail(str(e), e)
            except (HydraException, OmegaConfBaseException) as e:
                fail(one_line(e), e)
            if not _writable_ancestor(Path(out)):
                key = "hydra.sweep.dir" if args.multirun else "hydra.run.dir"
                fail(f"{key}={out!r} is not writable: choose an output folder you can create files in")
    GlobalHydra.instance().clear()


def job_info() -> dict:
    """Which job of which sweep this is, from Hydra's runtime config."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc = HydraConfig.get()
    multirun = hc.mode == RunMode.MULTIRUN
    return {
        "overrides": list(hc.overrides.task),
        "num": hc.job.num if multirun else None,
        "multirun": multirun,
        "sweep": "/".join(Path(hc.sweep.dir).parts[-2:]) if multirun else None,
        "output_dir": hc.runtime.output_dir,
    }


def run_task(cfg) -> float | None:
    """Dispatch on cfg.task; returns the sweep objective for train."""
    job = job_info()
    try:
        validate(cfg)
        run_dir = Path(cfg.resume) if cfg.resume else Path(job["output_dir"])
        if cfg.task == "train":
            from trainer.fit import fit

            summary = fit(cfg, run_dir, job)
            print(outcome(summary, run_dir), flush=True)
            return objective(summary, cfg.objective)
        if cfg.task == "lr_find":
            from trainer.lr_find import run_lr_find

            run_lr_find(cfg, run_dir, job)
            return None
        if cfg.task == "schedule":
            from trainer.schedule_task import run_schedule_task

            run_schedule_task(cfg, run_dir)
            return None
    except (ConfigError, HydraException, OmegaConfBaseException) as e:
        if job["multirun"]:
            raise
        fail(str(e) if isinstance(e, ConfigError) else one_line(e), e)
    return None


def outcome(summary: dict, run_dir: Path) -> str:
    """One line on how a run ended and where its results are."""
    if summary["status"] == "diverged":
        at = summary["diverged_at"]
        return f"diverged at epoch {at['epoch']}, step {at['step']} (lr {at['lr']:.3g}, loss {float(at['loss']):.3g}); results in {run_dir}"
    if not summary.get("epochs_completed"):
        return f"{summary['status']}; results in {run_dir}"
    return (
        f"{summary['status']}: test acc {summary['final_test_acc']:.2%} (best {summary['best_test_acc']:.2%} at epoch "
        f"{summary['best_epoch']}), gap {100 * summary['final_gap']:.2f} points, {summary['wall_time_s']:.0f} s; results in {run_dir}"
    )


def objective(summary: dict, name: str) -> float:
    """The value a sweeper optimizes (the Optuna config sets the direction). A run that did not complete
    gets the worst value instead (Optuna rejects NaN): 0 for an accuracy, 1e9 for a loss or gap."""
    value = summary.get(name)
    if summary.get("status") != "completed" or value is None or not math.isfinite(float(value)):
        return 0.0 if name.endswith("_acc") else 1e9
    return float(value)
