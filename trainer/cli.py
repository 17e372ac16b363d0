"""Command-line front end: every run and every job of a sweep is checked before any work starts, and bad
input is reported as one line naming the key, the value and what is allowed (exit 2)."""

from __future__ import annotations

import itertools
import os
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException, MissingConfigException
from omegaconf import open_dict
from omegaconf.errors import OmegaConfBaseException

from trainer.config import validate
from trainer.errors import ConfigError

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


def _job_overrides(overrides: list[str]) -> list[list[str]]:
    """Every job a sweep would run, as override lists (interval sweeps keep their default)."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    choices = []
    for o in parsed:
        key = o.get_key_element()
        if o.is_sweep_override():
            if not o.is_discrete_sweep():
                choices.append([])
                continue
            choices.append([f"{key}={v}" for v in o.sweep_string_iterator()])
        else:
            choices.append([f"{key}={o.get_value_element_as_str()}"])
    choices = [c for c in choices if c]
    return [list(job) for job in itertools.islice(itertools.product(*choices), MAX_CHECKED_JOBS)]


def _writable_ancestor(path: Path) -> bool:
    for parent in [path, *path.parents]:
        if parent.exists():
            return parent.is_dir() and os.access(parent, os.W_OK)
    return False


def precheck(argv: list[str]) -> None:
    """Compose and validate every job of the command line before Hydra starts any of them."""
    from hydra._internal.utils import get_args_parser

    args, _ = get_args_parser().parse_known_args(argv)
    if args.help or args.hydra_help or args.info or args.cfg or args.shell_completion:
        return  # Hydra's own commands
    try:
        jobs = _job_overrides(args.overrides)
    except HydraException as e:
        fail(one_line(e), e)
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        for overrides in jobs:
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
            return objective(summary, cfg.objective)
        if cfg.task == "lr_find":
            from trainer.lr_find import run_lr_find

            run_lr_find(cfg, run_dir, job)
            return None
        if cfg.task == "schedule":
            from trainer.schedule_task import run_schedule_task

            run_schedule_task(cfg, run_dir)
            return None
    except ConfigError as e:
        if job["multirun"]:
            raise
        fail(str(e), e)
    return None


def objective(summary: dict, name: str) -> float:
    """The value a sweeper optimizes: higher is better for accuracies, the Optuna config sets the direction."""
    value = summary.get(name)
    return float("nan") if value is None else float(value)
