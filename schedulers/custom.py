"""Your own schedule (scheduler=custom): a callable named by its import path, `scheduler.fn=mypkg.sched.lr`.

The contract is the built-ins': a pure function of the position t in epochs, here as a
factor of the base LR, `fn(t, **kwargs) -> factor`, so that every param group is scaled from its own base LR
and a warmup ramps to the base LR (factor 1) in front of it exactly as it does for the built-ins. t counts
from the end of the warmup; it is fractional with interval=step and whole with interval=epoch (shifted by a
fractional warmup). A class is instantiated once with `scheduler.kwargs` and its instance called as
`instance(t)`. Bad input is one line naming `scheduler.fn`, before any training: the callable is imported
and probed over the run when the config is checked, and every value it returns is checked again while the
run goes (a factor that is not a finite real number >= 0 would make an LR torch cannot use).

Loads without torch: the config checks import it.
"""

from __future__ import annotations

import importlib
import inspect
import math
import numbers
from collections.abc import Callable
from typing import Any

from schedulers.errors import ConfigError

Factor = Callable[[float], float]

PROBES = 100  # positions a callable is probed at before the run, spread over it (t = 0 first)


def rsqrt(t: float, timescale: float = 1.0) -> float:
    """(1 + t / timescale)^(-1/2): inverse square-root decay (Vaswani et al. 2017 after their warmup; T5), and
    scheduler=custom's default, a template to copy. The one copy of the formula: scheduler=rsqrt is it (times the
    base LR), and scheduler=sqrt is it at timescale 1."""
    return (1 + t / timescale) ** -0.5


def label(fn: str | Callable) -> str:
    """`scheduler.fn=<what the user wrote>`, the start of every error line about it."""
    if isinstance(fn, str):
        return f"scheduler.fn={fn}"
    name = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    return f"scheduler.fn={getattr(fn, '__module__', None) or '?'}.{name}"


def _import(path: str) -> Any:
    """The object at a dotted path: the longest importable module prefix, then attributes (so a method or a
    nested class works too). An import error from inside an existing module is the user's: it is raised."""
    if not path or any(not part.isidentifier() for part in path.split(".")):
        raise ConfigError(f"scheduler.fn={path} must be the import path of a callable, e.g. mypkg.schedules.lr")
    module, attrs = path, []
    while True:
        try:
            obj = importlib.import_module(module)
            break
        except ModuleNotFoundError as e:
            if e.name != module or "." not in module:  # a missing package, or a module missing one it imports
                raise ConfigError(f"scheduler.fn={path} cannot be imported: {e}") from None
            module, _, attr = module.rpartition(".")
            attrs.insert(0, attr)
        except Exception as e:  # the module itself fails to load
            raise ConfigError(f"scheduler.fn={path} cannot be imported: {module} raised {_error(e)}") from None
    for attr in attrs:
        try:
            obj = getattr(obj, attr)
        except AttributeError as e:
            raise ConfigError(f"scheduler.fn={path} cannot be imported: {e}") from None
    return obj


def _error(e: BaseException, where: str = "") -> str:
    """`ZeroDivisionError<where>: its message's first line`, for one line."""
    text = str(e).splitlines()[0] if str(e) else ""
    return f"{type(e).__name__}{where}: {text}" if text else f"{type(e).__name__}{where}"


def factor_function(fn: str | Callable, kwargs: dict[str, Any] | None = None) -> Factor:
    """t -> the checked factor of the base LR at t. `fn`: an import path or (from Python) the callable itself;
    a class is instantiated with `kwargs`, a function is called with them."""
    where, kwargs = label(fn), dict(kwargs or {})
    obj = _import(fn) if isinstance(fn, str) else fn
    if inspect.isclass(obj):
        _bind(obj, where, kwargs)
        try:
            instance = obj(**kwargs)
        except Exception as e:
            raise ConfigError(f"{where}(**scheduler.kwargs) raised {_error(e)}") from None
        if not callable(instance):
            raise ConfigError(f"{where} is a class whose instances are not callable: give it a __call__(self, t)")
        call = instance
        _bind(call, where, {})
    elif callable(obj):
        _bind(obj, where, kwargs)
        call = (lambda t: obj(t, **kwargs)) if kwargs else obj
    else:
        raise ConfigError(f"{where} is not callable (it is of type {type(obj).__name__})")

    def factor(t: float) -> float:
        try:
            value = call(t)
        except Exception as e:
            raise ConfigError(f"{where} raised {_error(e, f' at t={t:g}')}") from e
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ConfigError(f"{where} returned {value!r} ({type(value).__name__}) at t={t:g}: {ALLOWED}")
        value = float(value)
        if not (math.isfinite(value) and value >= 0):
            raise ConfigError(f"{where} returned {value!r} at t={t:g}: {ALLOWED}")
        return value

    return factor


ALLOWED = "it must return a real number >= 0, the factor of the base LR (optimizer.lr)"


def _bind(obj: Callable, where: str, kwargs: dict[str, Any]) -> None:
    """Refuse, naming the key, a callable that cannot take t (and scheduler.kwargs) before calling it."""
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):  # some builtins have none: calling them will tell
        return
    try:
        signature.bind(*([] if inspect.isclass(obj) else [0.0]), **kwargs)
    except TypeError as e:
        takes = "scheduler.kwargs" if inspect.isclass(obj) else "t and scheduler.kwargs" if kwargs else "t"
        raise ConfigError(f"{where} cannot take {takes}: {e}") from None


def probe(factor: Factor, epochs: int, warmup: float, interval: str) -> None:
    """Call `factor` at t = 0 and at up to PROBES positions the run's main schedule visits: each epoch's
    (spread, when there are more) with interval=epoch, evenly spread over the run after warmup with
    interval=step; raises the ConfigError of the first bad value."""
    from schedulers.curves import SLACK  # not at the top: curves imports config, which imports this module

    if interval == "epoch":
        visited = [max(e - warmup, 0.0) for e in range(epochs) if e >= warmup - SLACK]
    else:
        visited = [k * (epochs - warmup) / PROBES for k in range(PROBES)]
    for t in [0.0, *visited[:: max(1, math.ceil(len(visited) / PROBES))]]:
        factor(t)
