"""act: an activation on its own (NASNet applies ReLU before each separable conv)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from archspec.ops import common
from archspec.ops.base import (
    Field,
    GraphOp,
    LayerKind,
    Shape,
    activate,
    no_context,
    no_madds,
    no_weights,
)


def _infer(attrs: Mapping[str, Any], ins: Sequence[Shape]) -> Shape:
    return ins[0]


def _reference(
    attrs: Mapping[str, Any], xs: Sequence[np.ndarray], w: Mapping[str, np.ndarray]
) -> np.ndarray:
    return activate(xs[0].astype(np.float64), attrs["act"])


def _c(attrs: Mapping[str, Any], ins: Sequence[Shape], out: Shape) -> dict[str, Any]:
    return {"size": out.numel, "helpers": ("clamp",)}


GRAPH_OP = GraphOp(
    "act",
    _infer,
    no_weights,
    no_madds,
    _reference,
    profiles={"fvcore": no_madds, "tf1": no_madds},  # fvcore counts no activations
    targets={"pytorch": no_context, "onnx": no_context, "keras": no_context, "c": _c},
    layout="follow",
)


def _lower(ctx: Any, row: Any) -> None:
    attrs = {"act": row.fields["act"]}
    ctx.finish(row, ctx.emit(ctx.repeat_name(row, 0), "act", [ctx.source(row)], attrs, row=row))


LAYER = LayerKind(
    "act",
    "An activation applied on its own (e.g. the ReLU before NASNet's separable convs).",
    (
        common.NAME,
        common.PART,
        common.FROM,
        Field("act", "choice", "The activation.", required=True, choices=common.ACT.choices),
    ),
    _lower,
    auto_prefix="act",
)
