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
from enum import StrEnum
from typing import Any, NamedTuple, Protocol

import numpy as np

from archspec.activations import ACTIVATIONS, TARGETS, activate

__all__ = [
    "ACTIVATIONS",
    "COUNTING_PROFILES",
    "TARGETS",
    "Field",
    "GraphOp",
    "LayerKind",
    "Role",
    "Shape",
    "ShapeError",
    "WeightSpec",
    "activate",
    "batchnorm",
    "batchnorm_weights",
    "no_context",
    "no_madds",
    "no_weights",
]

# The counting profiles (DESIGN.md §3, §4c). `slim` is an op's own `madds`; every other profile
# adds the terms an op declares for it in `GraphOp.profiles` (an empty function where it adds
# nothing), so that no op can be forgotten by a profile.
COUNTING_PROFILES = ("slim", "fvcore", "tf1")
# The code-generation targets (`TARGETS`, from the activation table) each need, through
# `GraphOp.targets`, what an op means beyond formatting; each has one fragment per op in
# `templates/<target>/ops/`.


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
    """An op cannot accept its inputs; the message says why (lowering adds the location).

    `field` names the row field at fault, when it is not the op itself (or, for ops that merge
    several inputs, `from`)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


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


class WeightSpec(NamedTuple):
    """One weight array of a graph node, in the canonical layout (PyTorch's: OIHW, out×in).
    (A named tuple: lowering builds one per array of every node, so it must be cheap.)"""

    name: str
    shape: tuple[int, ...]
    kind: str  # weight | bias | bn_gamma | bn_beta | bn_mean | bn_var


class NodeView(Protocol):
    """What a graph op sees of a node."""

    name: str
    op: str
    attrs: Mapping[str, Any]
    shape: Shape


TermsFn = Callable[[Mapping[str, Any], Sequence[Shape], Shape], dict[str, int]]
# What a target needs to know about one node of this op: (attrs, input shapes, output shape) ->
# plain values for the target's fragment (never text that belongs to the target's language).
TargetFn = Callable[[Mapping[str, Any], Sequence[Shape], Shape], dict[str, Any]]


class Role(StrEnum):
    """The part a graph node plays inside a fusable block (see `archspec.ops.blocks`)."""

    EXPAND = (
        "expand"  # 1x1 conv widening the block input (the stem conv under the first-layer trick)
    )
    DWISE = "dwise"  # the spatial depthwise conv, the op a row tile bands
    PROJECT = "project"  # the linear 1x1 conv back to the block's output channels
    RESIDUAL = "residual"  # the shortcut add (or concat) that closes the block
    SHUFFLE = "shuffle"  # a channel shuffle between the expansion and the depthwise conv
    SHORTCUT = "shortcut"  # an op on the shortcut path (ShuffleNet's strided average pool)


@dataclass(frozen=True)
class GraphOp:
    """A node kind of the compute graph: everything archspec knows about it.

    Attributes:
        name: the op's name (graph nodes carry it as `op`).
        infer: output shape from the attributes and input shapes (raises ShapeError).
        weights: the canonical weight arrays (PyTorch layouts).
        madds: the `slim` terms, {breakdown term: multiply-accumulates}.
        reference: the numpy oracle every target is checked against.
        terms: every breakdown term the op may report, under any profile.
        profiles: for each counting profile but `slim`, the terms it adds.
        targets: for each target, what its fragment needs beyond formatting.
    """

    name: str
    infer: Callable[[Mapping[str, Any], Sequence[Shape]], Shape]
    weights: Callable[[Mapping[str, Any], Sequence[Shape], Shape], list[WeightSpec]]
    madds: TermsFn
    reference: Callable[
        [Mapping[str, Any], Sequence[np.ndarray], Mapping[str, np.ndarray]], np.ndarray
    ]
    terms: tuple[str, ...] = ()
    profiles: Mapping[str, TermsFn] = field(default_factory=dict)
    targets: Mapping[str, TargetFn] = field(default_factory=dict)
    min_inputs: int = 1
    max_inputs: int | None = 1
    layout: str = "spatial"  # spatial (C, H, W) | flat (reads and writes (C,)) | follow (inputs')


@dataclass(frozen=True)
class LayerKind:
    """A row kind of the spec language."""

    name: str
    doc: str
    fields: tuple[Field, ...]
    lower: Callable[..., None]
    takes_many_inputs: bool = False
    auto_prefix: str = ""  # unnamed rows are named `<auto_prefix><row index>`
    field_index: dict[str, Field] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "field_index", {f.name: f for f in self.fields})


def no_weights(attrs: Mapping[str, Any], ins: Sequence[Shape], out: Shape) -> list[WeightSpec]:
    """For ops without weights."""
    return []


def no_madds(attrs: Mapping[str, Any], ins: Sequence[Shape], out: Shape) -> dict[str, int]:
    """For ops that cost no MAdds under a profile."""
    return {}


def no_context(attrs: Mapping[str, Any], ins: Sequence[Shape], out: Shape) -> dict[str, Any]:
    """For a target that needs nothing about an op beyond its attributes and shapes."""
    return {}


def batchnorm_weights(channels: int) -> list[WeightSpec]:
    """BatchNorm's four arrays: γ, β (trainable) and running mean, variance (buffers)."""
    return [
        WeightSpec("bn_gamma", (channels,), "bn_gamma"),
        WeightSpec("bn_beta", (channels,), "bn_beta"),
        WeightSpec("bn_mean", (channels,), "bn_mean"),
        WeightSpec("bn_var", (channels,), "bn_var"),
    ]


def batchnorm(x: np.ndarray, w: Mapping[str, np.ndarray], eps: float) -> np.ndarray:
    """Inference-mode BatchNorm over the channel axis of a (C, H, W) array."""
    scale = w["bn_gamma"] / np.sqrt(w["bn_var"] + eps)
    shift = w["bn_beta"] - w["bn_mean"] * scale
    return x * scale[:, None, None] + shift[:, None, None]
