"""What the command line shows before any work: `--help` (schedlab's groups, options, tasks and keys) and the
config at the start of a run (a tree for a single run, one line for a sweep job)."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from trainer.cli.compose import CONF_DIR
from trainer.config import resolved

HELP_WIDTH = 110  # --help and the config tree wrap their lines here
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
        lines += textwrap.wrap(
            listed, HELP_WIDTH, initial_indent=f"  {group:<{width}}", subsequent_indent=" " * (width + 2)
        )
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
    data = dict(resolved(cfg))  # a DictConfig, a typed config or a plain dict
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
            lines.extend(
                textwrap.wrap(
                    text,
                    HELP_WIDTH,
                    initial_indent=head + " ",
                    subsequent_indent=indent + "    ",
                    break_long_words=False,
                    break_on_hyphens=False,
                )
                or [head]
            )
        elif text:  # the top-level keys, under the title
            lines.extend(
                textwrap.wrap(
                    text,
                    HELP_WIDTH,
                    initial_indent="  ",
                    subsequent_indent="  ",
                    break_long_words=False,
                    break_on_hyphens=False,
                )
            )
        for k, v in d.items():
            if isinstance(v, dict) and v and not (depth == 0 and not name and k in unused):
                node(str(k), v, depth + 1, f"{path}/{k}" if path else str(k))

    node("", data, 0, "")
    return "\n".join(lines)
