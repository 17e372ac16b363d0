"""The models: d2l's LeNet, an MLP, and a small ResNet for 28x28 and 32x32 inputs; and your own (model=custom):
any nn.Module class importable by its path, imported, built and run on a batch before any training."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
from contextlib import nullcontext
from functools import lru_cache
from typing import Any

import torch
from torch import nn

from trainer.errors import ConfigError


class LeNet(nn.Sequential):
    """LeNet as the d2l chapter "Learning Rate Scheduling" defines it (ReLU and max-pooling).

    At 28x28 the flattened features are 16*5*5 = 400, exactly the chapter's Linear(400, 120); other input
    sizes change only that count.
    """

    def __init__(self, in_channels: int = 1, image_size: int = 28, num_classes: int = 10):
        side = ((image_size + 4 - 4) // 2 - 4) // 2  # conv k5 pad2, pool 2, conv k5, pool 2
        super().__init__(
            nn.Conv2d(in_channels, 6, kernel_size=5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=2, stride=2),
            nn.Conv2d(6, 16, kernel_size=5),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=2, stride=2),
            nn.Flatten(),
            nn.Linear(16 * side * side, 120),
            nn.ReLU(),
            nn.Linear(120, 84),
            nn.ReLU(),
            nn.Linear(84, num_classes),
        )


class MLP(nn.Sequential):
    def __init__(
        self,
        in_channels: int = 1,
        image_size: int = 28,
        num_classes: int = 10,
        hidden: list[int] = (256, 128),
        dropout: float = 0.0,
    ):
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_channels * image_size * image_size
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()] + ([nn.Dropout(dropout)] if dropout else [])
            width = h
        super().__init__(*layers, nn.Linear(width, num_classes))


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
        )
        self.shortcut = (
            nn.Identity()
            if stride == 1 and c_in == c_out
            else nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))
        )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.act(self.body(x) + self.shortcut(x))


class ResNet(nn.Module):
    """A small ResNet: a 3x3 stem, then one stage per width (the first at stride 1, the rest at stride 2),
    global average pooling and a linear head. Any input size works (28x28 grey, 32x32 colour)."""

    def __init__(
        self, in_channels: int = 1, num_classes: int = 10, widths: list[int] = (16, 32, 64), blocks_per_stage: int = 1
    ):
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        ]
        c = widths[0]
        for i, w in enumerate(widths):
            for j in range(blocks_per_stage):
                layers.append(BasicBlock(c, w, stride=2 if i > 0 and j == 0 else 1))
                c = w
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes))

    def forward(self, x):
        return self.head(self.features(x))


# ------------------------------------------------------------------------------ your own model (model=custom)

# What model=custom offers its constructor (the dataset's channels, image_size and num_classes, through the
# interpolations of conf/model/custom.yaml): each one it names as a parameter; model.kwargs add to them.
OFFERED = ("in_channels", "image_size", "num_classes")
PROBE_BATCH = 2  # examples in the batch a model is tried on before any training


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _shape(t: Any) -> str:
    return f"[{', '.join(str(d) for d in t.shape)}]" if isinstance(t, torch.Tensor) else type(t).__name__


def model_class(target: str):
    """The class (or function returning a module) that `target` names, `<module>.<Name>`: the longest importable
    module prefix, then attributes. One line naming model._target_ when it cannot be imported or is neither an
    nn.Module class nor a function."""
    where = f"model._target_={target}"
    if not target or not all(part.isidentifier() for part in target.split(".")) or "." not in target:
        raise ConfigError(
            f"{where} is not allowed: name an nn.Module class by its import path, <module>.<Class> "
            "(e.g. my_models.Net, importable from PYTHONPATH)"
        )
    parts = target.split(".")
    obj, found = None, len(parts)
    for i in range(1, len(parts) + 1):  # the longest importable module prefix, from the top package down
        module = ".".join(parts[:i])
        try:
            obj = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name != module:  # the module imports one that is missing
                raise ConfigError(f"{where} cannot be imported: {module} raised {_first_line(e)}") from None
            if i == 1:
                raise ConfigError(f"{where} cannot be imported: {e} (is its folder on PYTHONPATH?)") from None
            found = i - 1
            break
        except Exception as e:  # the module itself fails to load
            raise ConfigError(f"{where} cannot be imported: {module} raised {_first_line(e)}") from None
    for attr in parts[found:]:
        if not hasattr(obj, attr):
            raise ConfigError(f"{where} cannot be imported: {obj.__name__} has no {attr}")
        obj = getattr(obj, attr)
    if isinstance(obj, type) and not issubclass(obj, nn.Module) or not callable(obj):
        raise ConfigError(
            f"{where} is not allowed: it is {type(obj).__name__} {obj!r:.80}, not an nn.Module class "
            "(or a function that returns one)"
        )
    return obj


def accepted(fn, offered: dict[str, Any]) -> dict[str, Any]:
    """The offered arguments that `fn` names as parameters (all of them where its signature cannot be read)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return dict(offered)
    return {k: v for k, v in offered.items() if k in params and params[k].kind is not inspect.Parameter.POSITIONAL_ONLY}


def build_custom(target: str, kwargs: dict[str, Any], offered: dict[str, Any]) -> nn.Module:
    """model=custom: the class `target` built with the offered values it takes and `kwargs` (which win)."""
    cls = model_class(target)
    args = {**accepted(cls, offered), **kwargs}
    try:
        model = cls(**args)
    except Exception as e:
        called = ", ".join(f"{k}={v!r}" for k, v in args.items())
        raise ConfigError(
            f"model._target_={target} cannot be built: {cls.__name__}({called}) raised {_first_line(e)}"
        ) from None
    if not isinstance(model, nn.Module):
        raise ConfigError(
            f"model._target_={target} is not allowed: it returned a {type(model).__name__}, not an nn.Module"
        )
    return model


def _fields(node: Any) -> dict[str, Any]:
    """A model node (its schema object, a DictConfig, a dict) as a plain dict, interpolations resolved."""
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        return {f.name: getattr(node, f.name) for f in dataclasses.fields(node)}
    from omegaconf import DictConfig, OmegaConf

    if isinstance(node, DictConfig):
        return OmegaConf.to_container(node, resolve=True)
    return dict(node)


def build_model(node: Any) -> nn.Module:
    """The configured model: model=custom (a node with `kwargs`) by build_custom, the shipped ones by Hydra's
    instantiate (conf/model/<option>.yaml: the class and its arguments)."""
    spec = _fields(node)
    if "kwargs" not in spec:
        from hydra.utils import instantiate

        return instantiate(node)
    offered = {k: spec[k] for k in OFFERED if spec.get(k) is not None}
    return build_custom(spec["_target_"], dict(spec["kwargs"] or {}), offered)


def probe(
    model: nn.Module, x: torch.Tensor, num_classes: int, target: str, amp: Any = None, what: str = "a batch of the data"
) -> None:
    """Run `model` on the batch `x` (eval mode, no gradient: no state or random stream changes) and check that it
    returns logits [batch, num_classes]; one line naming model._target_, the input's shape and the error or the
    output's shape otherwise."""
    where = f"model._target_={target}"
    training = model.training
    model.eval()
    try:
        with torch.no_grad(), amp if amp is not None else nullcontext():
            out = model(x)
    except Exception as e:
        raise ConfigError(f"{where} fails on {what} ({_shape(x)}, on {x.device}): {_first_line(e)}") from None
    finally:
        model.train(training)
    want = [x.shape[0], int(num_classes)]
    if not isinstance(out, torch.Tensor) or list(out.shape) != want:
        raise ConfigError(
            f"{where} returns {_shape(out)} for an input of {_shape(x)}: it must return logits "
            f"[batch, num_classes] = [{want[0]}, {want[1]}] (dataset.num_classes={num_classes})"
        )


def check_model(target: str, kwargs: dict[str, Any], in_channels: int, image_size: int, num_classes: int) -> None:
    """Before any data is loaded: import the class, build it and run it on a zero batch of the dataset's shape on
    the CPU (the global random streams untouched); one line naming model._target_ for what fails. Each distinct
    model and shape is checked once a process (every job of a sweep is checked before the first one starts)."""
    _check_model(
        target, json.dumps(kwargs, sort_keys=True, default=repr), int(in_channels), int(image_size), int(num_classes)
    )


@lru_cache(maxsize=64)
def _check_model(target: str, kwargs: str, in_channels: int, image_size: int, num_classes: int) -> None:
    offered = {"in_channels": in_channels, "image_size": image_size, "num_classes": num_classes}
    with torch.random.fork_rng(devices=[]):
        model = build_custom(target, json.loads(kwargs), offered)
        x = torch.zeros(PROBE_BATCH, in_channels, image_size, image_size)
        probe(model, x, num_classes, target, what="a zero batch of the dataset's channels and image_size")


def vmap_problem(model: nn.Module, x: torch.Tensor, amp: Any = None) -> str | None:
    """Why `model` cannot train batched (a stacked sweep's `batched` strategy: copies of it run as one under
    torch.func.vmap, as trainer/engine/stack.py's StackedModel runs them), as one line; None when it can. Tried on
    two copies, a forward and a backward on the batch `x`, in train mode; the model and the random streams are
    left as they were."""
    import copy

    from torch.func import functional_call, stack_module_state, vmap

    copies = [copy.deepcopy(model).train() for _ in range(2)]
    params, buffers = stack_module_state(copies)
    base = copy.deepcopy(copies[0]).to("meta")

    def one(p, b, batch):
        return functional_call(base, (p, b), (batch,))

    devices = [x.device] if x.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        try:
            with amp if amp is not None else nullcontext():
                out = vmap(one, randomness="different")(params, buffers, torch.stack([x, x]))
            out.float().sum().backward()
        except Exception as e:
            return _first_line(e)
    return None
