"""Command-line front end: every run and every job of a sweep is checked before any work starts, and bad
input is reported as one line naming the key, the value and what is allowed (exit 2)."""

from __future__ import annotations

import argparse
import copy
import math
import os
import re
import sys
import textwrap
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import CompactHydraException, HydraException, MissingConfigException
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from trainer.config import unknown_key, validate
from trainer.errors import ConfigError
from trainer.records import RunFolder, Summary
from trainer.config.sweeps import expand, sampled_keys

ROOT = Path(__file__).resolve().parents[2]
CONF_DIR = ROOT / "conf"
# folders of the project a run must never write into (nor into a folder that holds them)
PROJECT_FOLDERS = ("conf", "trainer", "schedulers", "experiments", "tests", "benchmarks")
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C
EXIT_TERMINATED = 143  # 128 + SIGTERM
HELP_WIDTH = 110  # --help and the config tree wrap their lines here


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


def precheck(argv: list[str]) -> list[str]:
    """Compose and validate every job of the command line before Hydra starts any of them; `--help` prints
    schedlab's help and exits. Returns the overrides to add to the command line for Hydra: task=eval keeps
    Hydra's .hydra/ records out of the run folder it evaluates (they are the training run's)."""
    args, _ = hydra_args_parser().parse_known_args(argv)
    if args.help:
        print(help_text())
        sys.exit(0)
    if args.hydra_help or args.version or args.info or args.cfg or args.shell_completion:
        return []  # Hydra's own commands
    extra: list[str] = []
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
                check_choices(cfg.hydra.runtime.choices, composer)
                if cfg.task == "eval" and not extra and not any(o.startswith("hydra.output_subdir=") for o in argv):
                    extra.append("hydra.output_subdir=null")
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
    return extra


def check_choices(choices, composer: JobComposer) -> None:
    """A schema (`*_schema`, what each option's yaml builds on) is not an option of its group."""
    for group, option in choices.items():
        if isinstance(option, str) and option.endswith("_schema"):
            options = sorted(o for o in composer.loader.get_group_options(group) if not o.endswith("_schema"))
            raise ConfigError(f"{group}={option!r} is not an option: use one of {', '.join(options)}")


# groups of Hydra's own that --help lists (the rest: --hydra-help)
HYDRA_GROUPS_SHOWN = ("hydra/launcher",)


def config_groups() -> list[tuple[str, list[str], str | None]]:
    """(group, its options without the schemas, the default option) for every group of schedlab's config."""
    from trainer.config import register_configs

    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        defaults = compose("config", return_hydra_config=True).hydra.runtime.choices

        def walk(parent: str) -> list[str]:
            out = []
            for name in sorted(loader.list_groups(parent)):
                group = f"{parent}/{name}" if parent else name
                if group == "hydra":
                    out += [g for g in HYDRA_GROUPS_SHOWN if loader.get_group_options(g)]
                    continue
                out += [group, *walk(group)]
            return out

        groups = []
        for group in walk(""):
            options = sorted(o for o in loader.get_group_options(group) if not o.endswith("_schema"))
            if options:
                groups.append((group, options, defaults.get(group)))
    GlobalHydra.instance().clear()
    return groups


def help_text() -> str:
    """What `python run.py --help` prints: schedlab's groups and options (no schemas), tasks and keys."""
    from trainer.config import TASKS

    groups = config_groups()
    width = max(len(g) for g, _, _ in groups) + 2
    lines = [
        "schedlab: train small vision models under any learning-rate schedule and optimizer, and compare them.",
        "",
        "usage: python run.py [group=option ...] [key=value ...]        one run",
        "       python run.py -m group=a,b key=1,2 ...                  a sweep: every combination, a job each",
        "",
        "config groups (group=option; * the default):",
    ]
    for group, options, default in groups:
        listed = " ".join(f"{o}*" if o == default else o for o in options)
        lines += textwrap.wrap(listed, HELP_WIDTH, initial_indent=f"  {group:<{width}}", subsequent_indent=" " * (width + 2))
    lines += [
        "",
        f"tasks (task=...): {', '.join(TASKS)}; {TASKS[0]} is the default",
        "  train     train one run into its folder (metrics.jsonl, summary.json, checkpoint.pt)",
        "  lr_find   the LR range test (lr_find.*)",
        "  schedule  draw schedules without training (schedule_plot.*)",
        "  eval      a run folder's checkpoint on the validation and test sets, into its eval.json:",
        "            task=eval resume=<run folder> [eval.checkpoint=best]",
        "  toy       optimizers and schedules on a 2-D test function, drawn over its contours (toy.*)",
        "",
        "top-level keys: seed, resume (a run folder to continue or to evaluate), objective, select_on_test,",
        "  eval.checkpoint (last, best), lr_find.*, schedule_plot.*, toy.*",
        "every key of a group and its value: python run.py [group=option ...] --cfg job",
        "",
        "examples:",
        "  python run.py dataset=synthetic trainer.epochs=2",
        "  python run.py debug=fast scheduler=onecycle optimizer=adamw      # any config in seconds",
        "  python run.py -m scheduler=cosine,multistep seed=0,1,2",
        "  python run.py task=eval resume=outputs/runs/<date>/<time>",
        "",
        "Hydra's own flags: --cfg job|hydra|all [--resolve], --info, -m/--multirun, --hydra-help",
    ]
    return "\n".join(lines)


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
        "slot": parallel_slot(hc.launcher, hc.job.num) if multirun else None,
    }


def parallel_slot(launcher, num: int) -> int | None:
    """The terminal line of job `num`'s progress bar where jobs run in parallel processes that share one
    terminal (joblib): job N takes line N mod the number of parallel jobs, so bars never overwrite each other."""
    if "joblib" not in str(launcher.get("_target_", "")):
        return None
    n_jobs = int(launcher.get("n_jobs") or -1)
    if n_jobs < 0:  # joblib's convention: -1 all CPUs, -2 all but one, ...
        n_jobs = max(1, (os.cpu_count() or 1) + 1 + n_jobs)
    return num % n_jobs


class JobFailed(CompactHydraException):
    """A sweep job's failure as Hydra reports it: one line (the job printed its own, with the error, above);
    the sweep still fails."""


def run_task(cfg) -> float | None:
    """Dispatch on cfg.task; returns the sweep objective for train. What a person sees: the config once at
    the start, one line at the end; Ctrl-C (SIGTERM) one line and exit 130 (143); a failing sweep job one line
    naming the job, the error and its folder, the sweep still failing. HYDRA_FULL_ERROR=1 keeps tracebacks."""
    job = job_info()
    run_dir = Path(cfg.resume) if cfg.resume else Path(job["output_dir"])
    try:
        return _run_task(cfg, job, run_dir)
    except KeyboardInterrupt as e:  # trainer.engine.fit.Terminated (SIGTERM) too: fit has recorded it
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        code = EXIT_TERMINATED if type(e).__name__ == "Terminated" else EXIT_INTERRUPTED
        print(interrupted_line(cfg, job, run_dir, terminated=code == EXIT_TERMINATED), file=sys.stderr, flush=True)
        sys.exit(code)
    except Exception as e:
        if not job["multirun"] or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"schedlab: job {job['num']} failed: {error_line(e)}; results in {run_dir}", file=sys.stderr, flush=True)
        raise JobFailed(f"schedlab: the sweep has a failed job: job {job['num']} (its line above says why)") from None


def _run_task(cfg, job: dict, run_dir: Path) -> float | None:
    """Inside a sweep, a job whose config cannot work is recorded as failed in its folder; a sweeper that
    samples its jobs (Optuna) gets the worst objective for it and goes on with the next trial."""
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
    from trainer import tasks

    try:
        summary = tasks.run(cfg, job, run_dir, lambda c, choices=None: show_config(c, job, run_dir, choices))
        if isinstance(summary, Summary):  # task=train: the closing line, and the sweep's objective
            print(outcome(summary, run_dir), flush=True)
            return None if cfg.objective is None else objective(summary, cfg.objective)
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


def error_line(e: BaseException) -> str:
    """An exception as one line: a config error's own message, else its type and first line."""
    if isinstance(e, ConfigError):
        return str(e)
    if isinstance(e, (HydraException, OmegaConfBaseException)):
        return one_line(e)
    if out_of_memory(e):
        return f"out of memory ({out_of_memory(e)})"
    first = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
    return f"{type(e).__name__}: {first}" if first else type(e).__name__


def _given(prefix: str, job: dict) -> bool:
    """Whether the command line set this key (resume=..., hydra.run.dir=...)."""
    from hydra.core.hydra_config import HydraConfig

    hydra_overrides = list(HydraConfig.get().overrides.hydra)
    return any(o.lstrip("+").startswith(prefix) for o in [*job["overrides"], *hydra_overrides])


def interrupted_line(cfg, job: dict, run_dir: Path, terminated: bool) -> str:
    """The one line after Ctrl-C or SIGTERM: where the run stopped, where its results are, how to go on."""
    what = "terminated (SIGTERM)" if terminated else "interrupted"
    who = f"job {job['num']} " if job["multirun"] else ""
    if cfg.task == "eval":
        return f"schedlab: {what}; no eval.json written in {run_dir}"
    if cfg.task != "train":
        return f"schedlab: {who}{what}; results in {run_dir}"
    folder = RunFolder(run_dir, create=False)
    summary = folder.read_summary() if folder.summary.exists() else None
    done = summary.epochs_completed if summary is not None else 0
    at = f" at epoch {done + 1}" if done < int(cfg.trainer.epochs) else " after its last epoch"
    if job["multirun"]:
        from hydra.core.hydra_config import HydraConfig

        sweep = HydraConfig.get().sweep.dir
        how = ("run the same command to continue the sweep" if _given("hydra.sweep.dir=", job)
               else f"run the same command with hydra.sweep.dir={sweep} to continue the sweep")
    elif not folder.checkpoint.exists():
        how = "no checkpoint yet: run the same command to start it again"
    elif _given("resume=", job) or _given("hydra.run.dir=", job):
        how = "run the same command to resume"
    else:
        how = f"run the same command with resume={run_dir} to resume"
    return f"schedlab: {who}{what}{at}; results in {run_dir}; {how}"


def show_config(cfg, job: dict, run_dir: Path, choices: dict | None = None) -> None:
    """Print the config at the start: as a tree for a single run; for a sweep job one line, its folder. Hydra's
    launcher prints each job's overrides (all that sets a job apart from the sweep's shared config) as it
    starts it, and each job's full config is its folder's config.yaml: a tree per job would bury the output."""
    if job["multirun"]:
        print(f"schedlab: job {job['num']}: results in {run_dir}", flush=True)
        return
    if choices is None:
        from hydra.core.hydra_config import HydraConfig

        choices = dict(HydraConfig.get().runtime.choices)
    print(config_tree(cfg, choices, f"schedlab: config of the run in {run_dir}"), flush=True)


def _value(v) -> str:
    """A value as an override writes it."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ",".join(f"{k}:{_value(x)}" for k, x in v.items()) + "}"
    if isinstance(v, str) and (not v or re.search(r"[\s,=\[\]{}'\"]", v)):
        return repr(v)
    return str(v)


def config_tree(cfg, choices: dict | None = None, title: str = "config") -> str:
    """The resolved config as a compact plain-text tree: one line of key=value per node (wrapped), its
    children indented below it, each group with the option it came from. The keys a task does not use are
    left out (lr_find.* unless the LR range test runs, schedule_plot.*, eval.* unless task=eval)."""
    data = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    choices = choices or {}
    task = data.get("task")
    unused = {"schedule_plot", "toy"}
    if task != "eval":
        unused.add("eval")
    if task != "lr_find" and not (data.get("trainer") or {}).get("lr_find"):
        unused.add("lr_find")
    lines = [title]

    def node(name: str, d: dict, depth: int, path: str) -> None:
        indent = "  " * depth
        choice = choices.get(path)
        head = f"{indent}{name}{f' ({choice})' if isinstance(choice, str) else ''}:" if name else ""
        tokens = [f"{k}={_value(v)}" for k, v in d.items() if not (isinstance(v, dict) and v)]
        text = " ".join(tokens)
        if head:
            lines.extend(textwrap.wrap(text, HELP_WIDTH, initial_indent=head + " ", subsequent_indent=indent + "    ",
                                       break_long_words=False, break_on_hyphens=False) or [head])
        elif text:  # the top-level keys, under the title
            lines.extend(textwrap.wrap(text, HELP_WIDTH, initial_indent="  ", subsequent_indent="  ",
                                       break_long_words=False, break_on_hyphens=False))
        for k, v in d.items():
            if isinstance(v, dict) and v and not (depth == 0 and not name and k in unused):
                node(str(k), v, depth + 1, f"{path}/{k}" if path else str(k))

    node("", data, 0, "")
    return "\n".join(lines)


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
    status = summary.status
    if summary.stopped_early_at:
        status += f" (stopped early at epoch {summary.stopped_early_at})"
    if summary.collapsed_at:
        c = summary.collapsed_at
        status += f" (collapsed to chance at epoch {c['epoch']} after {c['peak_train_acc']:.2%} train acc at epoch {c['peak_epoch']})"
    line = f"{status}: test acc {f['final_test_acc']:.2%}"
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
