"""The contract every op module fulfils.

Two kinds of op live here:

* a **layer kind** is what a spec row names (`bottleneck`, `conv2d`, ...): its fields (the schema)
  and how it lowers into graph ops;
* a **graph op** is a node of the compute graph (`conv2d`, `add`, ...): its output shape, its
  weights, its MAdds terms and a numpy reference implementation (the oracle for every target).

A module may define one of each; all knowledge of an op lives in its module.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import numpy as np


class Shape(NamedTuple):
    """The shape of one activation tensor, batch excluded: channels, height, width."""

    c: int
    h: int
    w: int

    @property
    def numel(self) -> int:
        """Number of elements."""
        return self.c * self.h * self.w

    def hwc(self) -> list[int]:
        """As the paper writes it: [height, width, channels]."""
        return [self.h, self.w, self.c]

    def __str__(self) -> str:
        if self.h == self.w:
            return f"{self.h}²×{self.c}"
        return f"{self.h}×{self.w}×{self.c}"


class ShapeError(ValueError):
    """An op cannot accept its inputs; the message says why (lowering adds the location)."""


@dataclass(frozen=True)
class Field:
    """One field of a spec row or of the spec's header: its type and its legal range."""

    name: str
    kind: str  # int | number | bool | choice | name | ref | refs | channels | resolution | text
    doc: str
    required: bool = False
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[Any, ...] = ()


@dataclass(frozen=True)
class WeightSpec:
    """One weight array of a graph node, in the canonical layout (PyTorch's: OIHW, out×in)."""

    name: str
    shape: tuple[int, ...]
    kind: str  # weight | bias | bn_gamma | bn_beta | bn_mean | bn_var


class NodeView(Protocol):
    """What a graph op sees of a node."""

    name: str
    op: str
    attrs: Mapping[str, Any]
    shape: Shape


@dataclass(frozen=True)
class GraphOp:
    """A node kind of the compute graph."""

    name: str
    infer: Callable[[Mapping[str, Any], Sequence[Shape]], Shape]
    weights: Callable[[Mapping[str, Any], Sequence[Shape], Shape], list[WeightSpec]]
    madds: Callable[[Mapping[str, Any], Sequence[Shape], Shape], dict[str, int]]
    reference: Callable[
        [Mapping[str, Any], Sequence[np.ndarray], Mapping[str, np.ndarray]], np.ndarray
    ]
    min_inputs: int = 1
    max_inputs: int | None = 1


@dataclass(frozen=True)
class LayerKind:
    """A row kind of the spec language."""

    name: str
    doc: str
    fields: tuple[Field, ...]
    lower: Callable[..., None]
    takes_many_inputs: bool = False
    field_index: dict[str, Field] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "field_index", {f.name: f for f in self.fields})


def no_weights(attrs: Mapping[str, Any], ins: Sequence[Shape], out: Shape) -> list[WeightSpec]:
    """For ops without weights."""
    return []


def no_madds(attrs: Mapping[str, Any], ins: Sequence[Shape], out: Shape) -> dict[str, int]:
    """For ops that cost no MAdds under the slim profile."""
    return {}


def batchnorm_weights(channels: int) -> list[WeightSpec]:
    """BatchNorm's four arrays: γ, β (trainable) and running mean, variance (buffers)."""
    return [
        WeightSpec("bn_gamma", (channels,), "bn_gamma"),
        WeightSpec("bn_beta", (channels,), "bn_beta"),
        WeightSpec("bn_mean", (channels,), "bn_mean"),
        WeightSpec("bn_var", (channels,), "bn_var"),
    ]


ACTIVATIONS = ("relu", "relu6", "linear")


def activate(x: np.ndarray, act: str) -> np.ndarray:
    """The numpy reference of an activation."""
    if act == "relu":
        return np.maximum(x, 0)
    if act == "relu6":
        return np.clip(x, 0, 6)
    return x


def batchnorm(x: np.ndarray, w: Mapping[str, np.ndarray], eps: float) -> np.ndarray:
    """Inference-mode BatchNorm over the channel axis of a (C, H, W) array."""
    scale = w["bn_gamma"] / np.sqrt(w["bn_var"] + eps)
    shift = w["bn_beta"] - w["bn_mean"] * scale
    return x * scale[:, None, None] + shift[:, None, None]
