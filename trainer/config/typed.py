"""The run's config as its schema objects: composed and checked as a DictConfig, then converted once, where a
task starts (every task: train, lr_find, schedule, toy, and eval from the run folder's config.yaml), into a
SchedlabConfig whose groups are their schemas' dataclasses (every value of its declared type: no casts
downstream), and back into the resolved plain dict that config.yaml, checkpoints and trackers record."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from trainer.config.schema import SCHEMA_OPTIONS, SchedlabConfig
from trainer.errors import ConfigError


def typed(cfg: Any) -> SchedlabConfig:
    """`cfg` as a SchedlabConfig (itself when it already is one), interpolations resolved."""
    if isinstance(cfg, SchedlabConfig):
        return cfg
    obj = OmegaConf.to_object(cfg)
    if not isinstance(obj, SchedlabConfig):
        raise ConfigError("the config has no schema: compose it from conf/config.yaml (schedlab_schema)")
    return obj


def resolved(node: Any) -> Any:
    """A config node (a DictConfig, a schema object, a dict) as plain dicts, lists and scalars, interpolations
    resolved: what config.yaml holds and what a checkpoint compares."""
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        node = OmegaConf.structured(node)
    if isinstance(node, (DictConfig, ListConfig)):
        return OmegaConf.to_container(node, resolve=True, enum_to_str=True)
    return node


# the groups whose options have schemas of their own: a saved node of one is typed by the schema it fits
OPTION_GROUPS = {*(group for group, _, _ in SCHEMA_OPTIONS), "scheduler"}


def _schema_of(group: str, node: Mapping) -> Any:
    """The schema a saved group node was written from: the scheduler's by its name (torch's own classes have
    none: the node stays as saved), any other group's the one of its options that declares all of the node's
    keys with the fewest fields (a config.yaml written before a field was added types with its default)."""
    if group == "scheduler":
        from schedulers.config import SCHEMAS

        return None if "_target_" in node else SCHEMAS.get(node.get("name"))
    fitting = [s for g, _, s in SCHEMA_OPTIONS if g == group and set(node) <= {f.name for f in dataclasses.fields(s)}]
    if not fitting:
        raise ConfigError(f"its {group} node fits none of the {group} schemas")
    return min(fitting, key=lambda s: len(dataclasses.fields(s)))


def from_saved(config: Mapping, where: str) -> SchedlabConfig:
    """A run folder's saved config (config.yaml: resolved plain values, read from `where`) as its schema objects;
    ConfigError naming the file for a value its schema refuses or a group node none of its schemas fits."""
    groups = {k: v for k, v in config.items() if k in OPTION_GROUPS and isinstance(v, Mapping)}
    try:
        root = OmegaConf.merge(
            OmegaConf.structured(SchedlabConfig), {k: v for k, v in config.items() if k not in groups}
        )
        for key, value in groups.items():
            schema = _schema_of(key, value)
            root[key] = value if schema is None else OmegaConf.merge(OmegaConf.structured(schema), value)
    except Exception as e:  # a value of the wrong type, an unknown key, a node no schema fits
        raise ConfigError(f"{where} does not fit schedlab's schemas ({str(e).splitlines()[0]})") from None
    return typed(root)
