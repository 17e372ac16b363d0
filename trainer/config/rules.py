"""The one-line refusals every schema's `check()` raises, and the keys a sweeper samples (their checks wait)."""

from __future__ import annotations

import dataclasses
import math
from contextvars import ContextVar
from typing import Any

from trainer.errors import ConfigError

GLOBAL_GROUPS = ("arm", "experiment", "hparams_search", "debug")  # `# @package _global_`: they may set any key

# Keys whose values a sweeper picks while it runs (an Optuna interval, a glob): the checks that depend
# on them are skipped, since the value in the composed config is not the one a job will run with.
_SAMPLED: ContextVar[frozenset[str]] = ContextVar("sampled", default=frozenset())


def _sampled(*keys: str) -> bool:
    sampled = _SAMPLED.get()
    if not sampled:
        return False
    if sampled.intersection(GLOBAL_GROUPS):
        return True

    def within(inner: str, outer: str) -> bool:
        return inner == outer or inner.startswith((outer + ".", outer + "["))

    return any(within(k, s) or within(s, k) for k in keys for s in sampled)


def _require(ok: bool, key: str, value: Any, allowed: str, needs: tuple[str, ...] = ()) -> None:
    """Raise ConfigError for `key` unless `ok`; `needs`: other keys the check depends on."""
    if not ok and not _sampled(key, *needs):
        raise ConfigError(f"{key}={value!r} is not allowed: {allowed}")


def _one_of(key: str, value: Any, allowed: tuple[str, ...]) -> None:
    _require(value in allowed, key, value, "use one of " + ", ".join(allowed))


def _at_least(key: str, value: int, low: int, allowed: str | None = None) -> None:
    _require(value >= low, key, value, allowed or f"must be >= {low}")


def _finite(obj: Any, prefix: str) -> None:
    """Every float of a schema object (and of its float tuples) must be a number: no inf, no nan."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        items = enumerate(value) if isinstance(value, (list, tuple)) else [(None, value)]
        for i, v in items:
            if isinstance(v, float) and not math.isfinite(v):
                key = f"{prefix}.{f.name}" + ("" if i is None else f"[{i}]")
                _require(False, key, v, "must be a finite number")
