"""The jobs of a Hydra sweep, expanded as Hydra's basic sweeper expands them (command-line overrides after
the config's `hydra.sweeper.params`, the later of two for one key winning)."""

from __future__ import annotations

from collections.abc import Mapping

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Glob


class NotExpandable(ValueError):
    """A sweep whose jobs are not known in advance (an Optuna interval, a glob over config options)."""


def expand(overrides: list[str], params: Mapping | None = None, keep_unexpandable: bool = False) -> list[list[str]]:
    """Every job's override list. Sweeps that cannot be listed raise NotExpandable, or are left out when
    keep_unexpandable is set (the jobs then keep that key's default)."""
    parsed = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in (params or {}).items()] + list(overrides))
    listable = [o for o in parsed if not o.is_sweep_override() or (o.is_discrete_sweep() and not isinstance(o.value(), Glob))]
    if len(listable) < len(parsed) and not keep_unexpandable:
        raise NotExpandable(", ".join(o.input_line or "" for o in parsed if o not in listable))
    return [job for batch in BasicSweeper.split_arguments(listable, None) for job in batch]
