"""The jobs of a Hydra sweep, expanded as Hydra's basic sweeper expands them (command-line overrides after
the config's `hydra.sweeper.params`, the later of two for one key winning), on Hydra's public override
parser: a test checks the job lists against the basic sweeper's own."""

from __future__ import annotations

import itertools
from collections.abc import Mapping

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Glob, Override

# the `_target_` of Hydra's basic sweeper, as multirun.yaml records it (compared as a string: no import)
BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


class NotExpandable(ValueError):
    """A sweep whose jobs are not known in advance (an Optuna interval, a glob over config options)."""


def parse(overrides: list[str], params: Mapping | None = None) -> list[Override]:
    """The sweep's overrides as the basic sweeper reads them: the config's params first, then the command line."""
    return OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in (params or {}).items()] + list(overrides))


def listable(override: Override) -> bool:
    """Whether every value of this override is known before the sweep runs."""
    if not override.is_sweep_override():
        return True
    return override.is_discrete_sweep() and not isinstance(override.value(), Glob)


def jobs_of(overrides: list[Override]) -> list[list[str]]:
    """The basic sweeper's job lists for listable overrides: one list of values per key (a later override of
    a key replaces its values but keeps its place), then their product, the first key varying slowest."""
    values: dict[str, list[str]] = {}
    for o in overrides:
        key = o.get_key_element()
        if o.is_sweep_override():
            values[key] = [f"{key}={v}" for v in o.sweep_string_iterator()]
        else:
            values[key] = [f"{key}={o.get_value_element_as_str()}"]
    return [list(job) for job in itertools.product(*values.values())]


def expand(overrides: list[str], params: Mapping | None = None, keep_unexpandable: bool = False) -> list[list[str]]:
    """Every job's override list. Sweeps that cannot be listed raise NotExpandable, or are left out when
    keep_unexpandable is set (the jobs then keep that key's default)."""
    parsed = parse(overrides, params)
    kept = [o for o in parsed if listable(o)]
    if len(kept) < len(parsed) and not keep_unexpandable:
        raise NotExpandable(", ".join(o.input_line or "" for o in parsed if not listable(o)))
    return jobs_of(kept)


def basic_sweeper_jobs(hydra_cfg: dict) -> list[list[str]]:
    """The job override lists, in job order, of a multirun whose `hydra` node (from its multirun.yaml, as a
    plain dict) names Hydra's basic sweeper; [] for any other sweeper, whose jobs are not known in advance,
    and for a node that cannot be read."""
    try:
        sweeper = hydra_cfg.get("sweeper") or {}
        if sweeper.get("_target_") != BASIC_SWEEPER:
            return []
        return expand(list(hydra_cfg["overrides"]["task"]), sweeper.get("params"))
    except Exception:  # an unreadable sweep definition only costs the list of never-run jobs
        return []


def sampled_keys(overrides: list[str], params: Mapping | None = None) -> set[str]:
    """The keys whose values the sweeper picks while it runs: those whose last override cannot be listed
    (an interval, a glob). A key given a fixed value later (on the command line) is not sampled."""
    last = {o.key_or_group: o for o in parse(overrides, params)}
    return {key for key, o in last.items() if not listable(o)}
