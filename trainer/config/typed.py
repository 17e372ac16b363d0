"""The run's config as its schema objects: composed and checked as a DictConfig, then converted once, where a
task starts training (fit, a stack, the LR range test), into a SchedlabConfig whose groups are their schemas'
dataclasses (every value of its declared type: no casts downstream), and back into the resolved plain dict that
config.yaml, checkpoints and trackers record."""

from __future__ import annotations

import dataclasses
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from trainer.config.schema import SchedlabConfig
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
