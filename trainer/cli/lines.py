"""What a person reads of a run: one line for bad input (exit 2), for an error, for Ctrl-C or SIGTERM, for how a run
ended; and the value a sweeper optimizes."""

from __future__ import annotations

import math
import os
import re
import sys
from pathlib import Path

from hydra.errors import HydraException, MissingConfigException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from schedulers.config import refused_choice
from trainer.config import unknown_key
from trainer.errors import ConfigError
from trainer.records import RunFolder, Summary

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C
EXIT_TERMINATED = 143  # 128 + SIGTERM
# errors a config can raise, from schedlab's checks, Hydra's composition and OmegaConf's typed nodes
CONFIG_ERRORS = (ConfigError, HydraException, OmegaConfBaseException)


def fail(message: str, error: BaseException | None = None) -> None:
    """Print one line and exit; HYDRA_FULL_ERROR=1 keeps the traceback for debugging."""
    if error is not None and os.environ.get("HYDRA_FULL_ERROR") == "1":
        raise error
    print(f"schedlab: error: {message}", file=sys.stderr)
    sys.exit(EXIT_BAD_INPUT)


# OmegaConf's refusal of a value outside a choice key's Enum (trainer.config.schema.Choice)
ENUM_REFUSAL = re.compile(r"Invalid value '(?P<value>.*)', expected one of \[(?P<allowed>.*)\]")


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
        # a schedule's choice key, in the library's words (null on a key that is not optional: OmegaConf's line)
        if key and getattr(cause, "value", None) is not None and (kind := refused_choice(cause)):
            return kind.refusal(cause.full_key, cause.value)
        if key and (choice := ENUM_REFUSAL.fullmatch(msg)):  # a choice key's Enum: the same line as _one_of's
            return f"{key}={choice['value']!r} is not allowed: use one of {choice['allowed']}"
        return f"{key}: {msg}" if key else msg
    text = " ".join(line.strip() for line in str(e).splitlines() if line.strip())
    return text


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


def out_of_memory(e: BaseException) -> str | None:
    """What an allocation failure says, shortened; None for another error."""
    text = str(e)
    if isinstance(e, MemoryError) or type(e).__name__ == "OutOfMemoryError":
        return text.splitlines()[0][:200] if text else type(e).__name__
    match = re.search(r"(tried to allocate [^.(]*)", text)
    return match.group(1).strip() if match and ("allocate memory" in text or "out of memory" in text) else None


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
        how = (
            "run the same command to continue the sweep"
            if _given("hydra.sweep.dir=", job)
            else f"run the same command with hydra.sweep.dir={sweep} to continue the sweep"
        )
    elif not folder.checkpoint.exists():
        how = "no checkpoint yet: run the same command to start it again"
    elif _given("resume=", job) or _given("hydra.run.dir=", job):
        how = "run the same command to resume"
    else:
        how = f"run the same command with resume={run_dir} to resume"
    return f"schedlab: {who}{what}{at}; results in {run_dir}; {how}"


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
