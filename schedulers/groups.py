"""Param groups of a model: an LR multiplier per module-name prefix (layer-wise LRs) and no weight decay on
normalization layers and biases (the usual AdamW recipe), as torch param-group dicts.

    groups = schedulers.param_groups(model, lr=3e-3, weight_decay=0.05, no_decay_norm_and_bias=True,
                                     lr_multipliers={"features.0": 0.1})
    opt = torch.optim.AdamW(groups, lr=3e-3, weight_decay=0.05)

A prefix names a module (`features.0`) and holds every parameter under it (`features.0.weight`,
`features.0.bias`); it matches at dots only (`features.1` does not hold `features.10.weight`), and where two
prefixes hold a parameter the longer one decides. Group 0 is always the base group (multiplier 1, weight
decay on), even when no parameter is left in it, so that the schedule's LR-valued keys and the run's
`lr` stay in the units of optimizer.lr. Every schedule scales each group from its own base LR, so a group at
0.1x stays at 0.1x of group 0 all run long.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping

import torch
from torch import nn

from schedulers.errors import ConfigError

# torch's normalization layers: BatchNorm*, SyncBatchNorm and InstanceNorm* (all _NormBase), LayerNorm,
# GroupNorm, RMSNorm. Their parameters are scales and shifts: decaying them toward 0 fights the normalization.
NORMS: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase,
    nn.LayerNorm,
    nn.GroupNorm,
    *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()),
)


def named_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter, nn.Module]]:
    """Every parameter of `model` once (a shared one under its first name), with its owning module, in
    model.parameters()' order."""
    seen: set[int] = set()
    out = []
    for prefix, module in model.named_modules():
        for name, param in module.named_parameters(prefix=prefix, recurse=False):
            if param is not None and id(param) not in seen:
                seen.add(id(param))
                out.append((name, param, module))
    return out


def no_decay(name: str, module: nn.Module) -> bool:
    """A parameter that takes no weight decay: one of a normalization layer, or any bias."""
    return isinstance(module, NORMS) or name.rsplit(".", 1)[-1] == "bias"


def holds(prefix: str, name: str) -> bool:
    """Whether the module prefix `prefix` holds the parameter `name` (a match at dots only)."""
    return name == prefix or name.startswith(prefix + ".")


def check_multipliers(lr_multipliers: Mapping[str, float]) -> None:
    """Each prefix names a module, each multiplier is a positive factor of optimizer.lr."""
    for prefix, factor in lr_multipliers.items():
        key = f"optimizer.lr_multipliers[{prefix}]"
        if not str(prefix).strip():
            raise ConfigError(
                f"{key}={factor!r} is not allowed: a prefix names a module (e.g. features.0); "
                "the whole model's LR is optimizer.lr"
            )
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not 0 < factor < float("inf"):
            raise ConfigError(f"{key}={factor!r} is not allowed: must be > 0 (a factor of optimizer.lr)")


def _unmatched(prefix: str, names: list[str], factor: float) -> ConfigError:
    modules = sorted({n.rsplit(".", 1)[0] for n in names if "." in n} | set(names))
    close = difflib.get_close_matches(prefix, modules, n=1)
    if not names:
        hint = "the model has no named parameters"
    elif close:
        hint = f"did you mean {close[0]}?"
    else:
        tops = sorted({n.split(".", 1)[0] for n in names}, key=lambda n: (len(n), n))
        hint = f"its top-level modules are {', '.join(tops[:12])}{', ...' if len(tops) > 12 else ''}"
    return ConfigError(
        f"optimizer.lr_multipliers[{prefix}]={factor!r} is not allowed: it matches no parameter of the model ({hint})"
    )


def param_groups(
    model: nn.Module | Iterable[torch.Tensor],
    *,
    lr: float,
    weight_decay: float = 0.0,
    lr_multipliers: Mapping[str, float] | None = None,
    no_decay_norm_and_bias: bool = False,
) -> list[dict]:
    """torch param groups of `model` (see the module). Group 0 is the base group (lr, weight_decay); the others
    have their own `lr` (lr x multiplier) and `weight_decay` (0 where no decay). Without multipliers or
    no_decay_norm_and_bias: one group of every parameter, in model.parameters()' order. A plain iterable of
    tensors is a model without modules: its tensors are not biases, and no prefix matches them."""
    multipliers = {str(prefix): factor for prefix, factor in (lr_multipliers or {}).items()}  # {0: 0.1}: module 0
    check_multipliers(multipliers)
    if isinstance(model, nn.Module):
        entries = named_parameters(model)
    else:
        entries = [("", p, None) for p in model]
    if not multipliers and not no_decay_norm_and_bias:
        return [{"params": [p for _, p, _ in entries]}]
    names = [name for name, _, _ in entries if name]
    for prefix, factor in multipliers.items():
        if not any(holds(prefix, name) for name in names):
            raise _unmatched(prefix, names, factor)
    by_longest = sorted(multipliers, key=len, reverse=True)
    groups: dict[tuple[float, bool], dict] = {(1.0, True): {"params": []}}  # the base group first
    for name, param, module in entries:
        prefix = next((p for p in by_longest if name and holds(p, name)), None)
        factor = 1.0 if prefix is None else float(multipliers[prefix])
        decays = not (no_decay_norm_and_bias and module is not None and no_decay(name, module))
        key = (factor, decays)
        if key not in groups:
            groups[key] = {"params": [], "lr": lr * factor, "weight_decay": weight_decay if decays else 0.0}
        groups[key]["params"].append(param)
    return list(groups.values())


def rebase_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Give param group 0 the base LR `lr` and every other group the same ratio to it as before (their
    initial_lr too, where a schedule keeps one): what an LR found by a range test sets, multipliers kept."""
    first = optimizer.param_groups[0]
    ratios = [float(g["lr"]) / float(first["lr"]) for g in optimizer.param_groups]
    initial = [
        float(g["initial_lr"]) / float(first["initial_lr"]) if "initial_lr" in g else None
        for g in optimizer.param_groups
    ]
    for group, ratio, initial_ratio in zip(optimizer.param_groups, ratios, initial, strict=True):
        group["lr"] = lr * ratio
        if initial_ratio is not None:
            group["initial_lr"] = lr * initial_ratio
