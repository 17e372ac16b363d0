"""The allowed values of a schedule's choice key (scheduler.interval, plateau's mode, ...) as its field's type: an
Enum whose members are their values. OmegaConf refuses any other value when it is set, at composition or when
`schedulers.config.parse` completes a dict from the schema; `Choice.refusal` words that as the library's one line."""

from __future__ import annotations

import enum
import string
from typing import Any

from omegaconf.errors import ValidationError
from omegaconf.nodes import StringNode


class StrChoice(str, enum.Enum):
    """A choice key's values. A member is its value: it compares, hashes, prints, formats and serializes (json; yaml
    and OmegaConf's containers with enum_to_str) as that string, each member's name being its value. The base of
    the library's Choice and of the trainer's."""

    def __str__(self) -> str:
        return self.value

    def __repr__(self) -> str:  # `{key}={value!r}` in a one-line refusal reads as the config value
        return repr(self.value)

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    @classmethod
    def of(cls, name: str, values: tuple[str, ...], module: str = __name__) -> type[StrChoice]:
        """A Choice named `name` of these values, in this order (the order its refusal lists them in), defined in
        `module` (where pickle finds it)."""
        return cls(name, [(v, v) for v in values], module=module, qualname=name)

    @classmethod
    def values(cls) -> tuple[str, ...]:
        return tuple(m.value for m in cls)


class Choice(StrChoice):
    """A schedule's choice key: refused in the library's words."""

    @classmethod
    def refusal(cls, key: str, value: Any) -> str:
        """The one line refusing `value` for the choice key `key` (its full name, scheduler.interval): the allowed
        values and the value as a string key reads it; for what no string key takes (null, a list, a node), what
        OmegaConf says of it for a string key."""
        try:
            text = str(StringNode(value, is_optional=False))
        except ValidationError as e:
            return f"{key}: {_filled(str(e).splitlines()[0].strip(), value)}"
        return f"{key} must be one of {', '.join(map(repr, cls.values()))}, got {text!r}"


def _filled(message: str, value: Any) -> str:
    """OmegaConf's message template with the value and its type filled in, as its containers fill them in."""
    return string.Template(message).safe_substitute(VALUE=value, VALUE_TYPE=type(value).__name__)


Interval = Choice.of("Interval", ("epoch", "step"))  # epoch: once per epoch (d2l staircase); step: every step
Monitor = Choice.of("Monitor", ("val_loss", "val_acc"))  # the validation figure a plateau watches
PlateauMode = Choice.of("PlateauMode", ("min", "max"))  # min: lower is better (a loss); max: higher (an accuracy)
ThresholdMode = Choice.of("ThresholdMode", ("rel", "abs"))  # rel: best * (1 -/+ threshold); abs: best -/+ threshold
AnnealStrategy = Choice.of("AnnealStrategy", ("cos", "linear"))
CyclicMode = Choice.of("CyclicMode", ("triangular", "triangular2", "exp_range"))
Shape = Choice.of("Shape", ("linear", "cosine", "1-sqrt"))  # a decay's (curves.DECAY_SHAPES has their formulas)
