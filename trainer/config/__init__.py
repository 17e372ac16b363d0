"""The config layer: typed schemas (schema.py), the one-line refusals (rules.py), the checks before any work
(checks.py) and sweep expansion (sweeps.py). Everything above it (tracking, engine, tasks, cli) imports from here."""

from trainer.config.checks import check_keys, unknown_key, validate
from trainer.config.schema import *  # noqa: F403
from trainer.config.typed import from_saved, resolved, typed
from trainer.records import OBJECTIVES
