"""The command line before Hydra starts: argv read as Hydra will read it, and every job of a run or sweep
composed and checked before any work starts; bad input is one line naming the key, the value and what is
allowed (exit 2)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf, open_dict

from trainer.cli.compose import CONF_DIR, JobComposer
from trainer.cli.folders import check_output_folder
from trainer.cli.lines import CONFIG_ERRORS, error_line, fail
from trainer.cli.show import help_text
from trainer.config import unknown_key, validate
from trainer.config.sweeps import expand, parse, sampled_keys
from trainer.errors import ConfigError

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


def precheck(argv: list[str]) -> list[str]:
    """Compose and validate every job of the command line before Hydra starts any of them; `--help` prints
    schedlab's help and exits. Returns the overrides to add to the command line for Hydra: task=eval keeps
    Hydra's .hydra/ records out of the run folder it evaluates (they are the training run's)."""
    args, _ = hydra_args_parser().parse_known_args(argv)
    if args.help:
        print(help_text())
        sys.exit(0)
    if hydra_command(args):
        return []
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        composer = JobComposer(args.config_name or "config")
        with one_line_errors():
            jobs, sampled = command_jobs(args, composer)
        evaluates = check_jobs(jobs, composer, sampled, args.multirun)
    GlobalHydra.instance().clear()
    return overrides_for_hydra(argv, evaluates)


def hydra_command(args: argparse.Namespace) -> bool:
    """Whether the command line asks for one of Hydra's own commands (its help, version, info, a config, shell
    completion): Hydra answers it, with no job to check."""
    return bool(args.hydra_help or args.version or args.info or args.cfg or args.shell_completion)


@contextmanager
def one_line_errors() -> Iterator[None]:
    """A config error raised inside (schedlab's checks, Hydra's composition, OmegaConf) is one line and exit 2."""
    try:
        yield
    except CONFIG_ERRORS as e:
        fail(error_line(e), e)


def command_jobs(args: argparse.Namespace, composer: JobComposer) -> tuple[list[list[str]], set[str]]:
    """Every job of the command line, and the keys the sweeper samples as it runs; values to sweep without -m
    are refused."""
    jobs = expand(args.overrides, keep_unexpandable=True)
    if args.multirun:
        return sweep_jobs(args.overrides, jobs[0], composer)
    if len(jobs) > 1:
        sweeps = [o.input_line for o in parse(args.overrides) if o.is_sweep_override()]
        fail(f"{' '.join(sweeps)} is a sweep: add -m to run every value (for a list write key=[a,b])")
    return jobs, set()


def sweep_jobs(overrides: list[str], first_job: list[str], composer: JobComposer) -> tuple[list[list[str]], set[str]]:
    """A sweep's jobs, those its config defines included (an experiment's hydra.sweeper.params), and the keys the
    sweeper samples as it runs (Optuna): their checks wait for the trial's value, and each must be a key."""
    first = composer(first_job)
    params = first.hydra.sweeper.get("params")
    params = OmegaConf.to_container(params) if params else {}
    jobs = expand(overrides, params, keep_unexpandable=True)
    sampled = sampled_keys(overrides, params) | set(first.hydra.sweeper.get("search_space") or {})
    _check_sampled_keys_exist(first, sampled, composer)
    return jobs, sampled


def check_jobs(jobs: list[list[str]], composer: JobComposer, sampled: set[str], multirun: bool) -> bool:
    """Compose and check every distinct job, in order, then the folders it writes (each folder once); returns
    whether a job is task=eval."""
    checked_folders: set[tuple[str, str]] = set()
    evaluates = False
    for overrides in dict.fromkeys(map(tuple, jobs)):
        with one_line_errors():
            cfg = composer(list(overrides))
            check_choices(cfg.hydra.runtime.choices, composer)
            evaluates = evaluates or cfg.task == "eval"
            folders = output_folders(cfg, multirun)
            validate(without_hydra(cfg), sampled)
        for key, path in folders:
            if (key, path) not in checked_folders:
                check_output_folder(key, path)
                checked_folders.add((key, path))
    return evaluates


def output_folders(cfg: DictConfig, multirun: bool) -> list[tuple[str, str]]:
    """(key, folder) for every folder a job writes into: the run it resumes or evaluates, its run or sweep folder."""
    folders = [("resume", cfg.resume)] if cfg.resume is not None else []
    folders.append(("hydra.sweep.dir", cfg.hydra.sweep.dir) if multirun else ("hydra.run.dir", cfg.hydra.run.dir))
    return folders


def without_hydra(cfg: DictConfig) -> DictConfig:
    """The job's config as the task sees it: without the hydra node (removed in place)."""
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def overrides_for_hydra(argv: list[str], evaluates: bool) -> list[str]:
    """What to add to the command line for Hydra: task=eval writes no .hydra/ records into the run folder it
    evaluates (they are the training run's), unless the command line says where they go."""
    if evaluates and not any(o.startswith("hydra.output_subdir=") for o in argv):
        return ["hydra.output_subdir=null"]
    return []


def check_choices(choices, composer: JobComposer) -> None:
    """A schema (`*_schema`, what each option's yaml builds on) is not an option of its group."""
    for group, option in choices.items():
        if isinstance(option, str) and option.endswith("_schema"):
            options = sorted(o for o in composer.loader.get_group_options(group) if not o.endswith("_schema"))
            raise ConfigError(f"{group}={option!r} is not an option: use one of {', '.join(options)}")


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
