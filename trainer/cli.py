"""Command-line front end: every run and every job of a sweep is checked before any work starts, and bad
input is reported as one line naming the key, the value and what is allowed (exit 2)."""

from __future__ import annotations

import argparse
import copy
import math
import os
import re
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import HydraException, MissingConfigException
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from trainer.config import unknown_key, validate
from trainer.errors import ConfigError
from trainer.records import RunFolder, Summary
from trainer.sweeps import expand, sampled_keys

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = ROOT / "conf"
# folders of the project a run must never write into (nor into a folder that holds them)
PROJECT_FOLDERS = ("conf", "trainer", "schedulers", "experiments", "tests", "benchmarks")
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
            parent = getattr(cause, "parent_node", None)
            return unknown_key(key, parent.keys() if isinstance(parent, DictConfig) else ())
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


def _within(inner: Path, outer: Path) -> bool:
    return inner == outer or outer in inner.parents


def project_folder(path: str) -> str | None:
    """What of the project (or the current directory) a run folder at `path` would write into; None if nothing."""
    out = Path(os.path.realpath(path or "."))
    for name in PROJECT_FOLDERS:
        if _within(ROOT / name, out) or _within(out, ROOT / name):
            return f"it is, holds or lies inside the project's {name}/ folder"
    if _within(ROOT, out):
        return "it is or holds the project folder"
    if _within(Path.cwd(), out):
        return "it is or holds the current directory"
    return None


def check_output_folder(key: str, path: str) -> None:
    """A run or sweep folder must be a folder of its own, that can be created."""
    why = project_folder(path)
    if why:
        fail(f"{key}={path!r} is not allowed: {why}; give the run a folder of its own (e.g. under outputs/)")
    if not _writable_ancestor(Path(path)):
        fail(f"{key}={path!r} is not writable: choose an output folder you can create files in")


def _set_value(cfg: DictConfig, override: Override) -> None:
    """Set a command-line value as Hydra's config loader does (hydra 1.3, ConfigLoaderImpl)."""
    key, value = override.key_or_group, override.value()
    if override.is_add():
        if OmegaConf.select(cfg, key, throw_on_missing=False) is not None and not isinstance(value, (dict, list)):
            raise ValueError(f"{key} exists")  # Hydra refuses it: its own compose gives the message
        OmegaConf.update(cfg, key, value, merge=True, force_add=True)
    elif override.is_force_add():
        OmegaConf.update(cfg, key, value, merge=True, force_add=True)
    else:
        OmegaConf.update(cfg, key, value, merge=True)


class JobComposer:
    """Composes the jobs of a sweep as Hydra does (with the hydra node), without paying a full composition
    for each: Hydra composes each distinct choice of config-group options (and hydra.* settings) once, and a
    job that differs from it only in values gets them set as Hydra sets them. Anything else, or any error,
    is composed by Hydra in full, so that a bad job fails with Hydra's own message. Use inside an
    initialize context."""

    def __init__(self, config_name: str):
        self.config_name = config_name
        self.loader = GlobalHydra.instance().config_loader()
        self.parser = OverridesParser.create()
        self.bases: dict[tuple[str, ...], DictConfig] = {}
        self.groups: dict[str, bool] = {}
        self.hydra_compositions = 0

    def compose(self, overrides: list[str] | tuple[str, ...]) -> DictConfig:
        self.hydra_compositions += 1
        return compose(self.config_name, overrides=list(overrides), return_hydra_config=True)

    def is_group(self, key: str) -> bool:
        if key not in self.groups:
            self.groups[key] = "/" in key or bool(self.loader.get_group_options(key))
        return self.groups[key]

    def _value_only(self, o: Override) -> bool:
        key = o.key_or_group
        return (o.package is None and not o.is_delete() and not o.is_sweep_override()
                and not key.startswith("hydra") and not self.is_group(key))

    def __call__(self, overrides: list[str]) -> DictConfig:
        parsed = self.parser.parse_overrides(list(overrides))
        base = tuple(line for line, o in zip(overrides, parsed, strict=True) if not self._value_only(o))
        if base not in self.bases:
            self.bases[base] = self.compose(base)
        cfg = copy.deepcopy(self.bases[base])
        try:
            for o in parsed:
                if self._value_only(o):
                    _set_value(cfg, o)
        except Exception:
            return self.compose(overrides)
        return cfg


def _check_sampled_keys_exist(cfg: DictConfig, keys: set[str], composer: JobComposer) -> None:
    """A key the sweeper samples must be a key of the config (or a config group)."""
    for key in sorted(keys):
        if key.startswith("hydra") or composer.is_group(key):
            continue
        node: object = cfg
        path: list[str] = []
        for part in key.split("."):
            if not isinstance(node, DictConfig) or part not in node:
                valid = node.keys() if isinstance(node, DictConfig) else ()
                raise ConfigError(unknown_key(".".join([*path, part]), valid))
            node = node[part]
            path.append(part)


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
        composer = JobComposer(args.config_name or "config")
        try:
            jobs = expand(args.overrides, keep_unexpandable=True)
            sampled: set[str] = set()
            if args.multirun:  # sweeps that a config defines (an experiment's hydra.sweeper.params) too
                first = composer(jobs[0])
                params = first.hydra.sweeper.get("params")
                params = OmegaConf.to_container(params) if params else {}
                jobs = expand(args.overrides, params, keep_unexpandable=True)
                # keys the sweeper samples as it runs (Optuna): their checks wait for the trial's value
                sampled = sampled_keys(args.overrides, params) | set(first.hydra.sweeper.get("search_space") or {})
                _check_sampled_keys_exist(first, sampled, composer)
            elif len(jobs) > 1:
                sweeps = [o for o in args.overrides if o not in jobs[0]]
                fail(f"{' '.join(sweeps)} is a sweep: add -m to run every value (for a list write key=[a,b])")
        except ConfigError as e:
            fail(str(e), e)
        except (HydraException, OmegaConfBaseException) as e:
            fail(one_line(e), e)
        checked_folders: set[tuple[str, str]] = set()
        for overrides in dict.fromkeys(map(tuple, jobs)):  # every distinct job, in order
            try:
                cfg = composer(list(overrides))
                folders = [("resume", cfg.resume)] if cfg.resume is not None else []
                folders.append(("hydra.sweep.dir", cfg.hydra.sweep.dir) if args.multirun else ("hydra.run.dir", cfg.hydra.run.dir))
                with open_dict(cfg):
                    del cfg["hydra"]
                validate(cfg, sampled)
            except ConfigError as e:
                fail(str(e), e)
            except (HydraException, OmegaConfBaseException) as e:
                fail(one_line(e), e)
            for key, path in folders:
                if (key, path) not in checked_folders:
                    check_output_folder(key, path)
                    checked_folders.add((key, path))
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
    """Dispatch on cfg.task; returns the sweep objective for train. Inside a sweep, a job whose config cannot
    work is recorded as failed in its folder; a sweeper that samples its jobs (Optuna) gets the worst
    objective for it and goes on with the next trial."""
    job = job_info()
    run_dir = Path(cfg.resume) if cfg.resume else Path(job["output_dir"])
    try:
        validate(cfg)
    except (ConfigError, HydraException, OmegaConfBaseException) as e:
        message = str(e) if isinstance(e, ConfigError) else one_line(e)
        if not job["multirun"]:
            fail(message, e)
        if cfg.task == "train":
            summary = Summary(status="failed", task=cfg.task, seed=int(cfg.seed), overrides=job["overrides"])
            summary.error = f"{type(e).__name__}: {message}"
            RunFolder(run_dir).write_summary(summary)
        if not sweeper_samples():
            raise
        print(f"schedlab: job {job['num']} failed: {message}", file=sys.stderr, flush=True)
        return None if cfg.objective is None else objective(Summary(status="failed"), cfg.objective)
    try:
        if cfg.task == "train":
            from trainer.fit import fit

            summary = fit(cfg, run_dir, job)
            print(outcome(summary, run_dir), flush=True)
            return None if cfg.objective is None else objective(summary, cfg.objective)
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
    except (MemoryError, RuntimeError) as e:  # torch's OutOfMemoryError is a RuntimeError
        if job["multirun"] or not out_of_memory(e):
            raise
        fail(
            f"out of memory ({out_of_memory(e)}): lower what sets the size (dataset.train_size, the model's widths, "
            f"trainer.batch_size, trainer.eval_batch_size); the run's folder records it: {run_dir}",
            e,
        )
    return None


def out_of_memory(e: BaseException) -> str | None:
    """What an allocation failure says, shortened; None for another error."""
    text = str(e)
    if isinstance(e, MemoryError) or type(e).__name__ == "OutOfMemoryError":
        return text.splitlines()[0][:200] if text else type(e).__name__
    match = re.search(r"(tried to allocate [^.(]*)", text)
    return match.group(1).strip() if match and ("allocate memory" in text or "out of memory" in text) else None


def sweeper_samples() -> bool:
    """Whether this sweep's sweeper samples its jobs (Optuna): one failed trial must not end its study."""
    from hydra.core.hydra_config import HydraConfig

    return "optuna" in str(HydraConfig.get().sweeper.get("_target_", "")).lower()


def outcome(summary: Summary, run_dir: Path) -> str:
    """One line on how a run ended and where its results are."""
    if summary.status == "diverged":
        at = summary.diverged_at
        return f"diverged at epoch {at['epoch']}, step {at['step']} (lr {at['lr']:.3g}, loss {float(at['loss']):.3g}); results in {run_dir}"
    if not summary.epochs_completed:
        return f"{summary.status}; results in {run_dir}"
    f = summary.figures
    line = f"{summary.status}: test acc {f['final_test_acc']:.2%}"
    if "best_val_acc" in f:
        line += f", val acc {f['final_val_acc']:.2%} (best {f['best_val_acc']:.2%} at epoch {f['best_epoch']}, test acc there {f['best_epoch_test_acc']:.2%})"
    elif "best_epoch" in f:  # select_on_test without a validation set
        line += f" (best {f['best_epoch_test_acc']:.2%} at epoch {f['best_epoch']}, chosen on the test set)"
    return f"{line}, gap {100 * f['final_gap']:.2f} points, {summary.wall_time_s:.0f} s; results in {run_dir}"


def objective(summary: Summary | dict, name: str) -> float:
    """The value a sweeper optimizes (the Optuna config sets the direction). A run that did not complete
    gets the worst value instead (Optuna rejects NaN): 0 for an accuracy, 1e9 for a loss or gap."""
    summary = Summary.from_dict(summary) if isinstance(summary, dict) else summary
    value = summary.get(name)
    if summary.status != "completed" or value is None or not math.isfinite(float(value)):
        return 0.0 if name.endswith("_acc") else 1e9
    return float(value)
