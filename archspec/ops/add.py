"""add: elementwise sum of two or more tensors of one shape (residuals, merging branches)."""

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
    ShapeError,
    activate,
    no_context,
    no_madds,
    no_weights,
)


def _infer(attrs: Mapping[str, Any], ins: Sequence[Shape]) -> Shape:
    first = ins[0]
    for other in ins[1:]:
        if other != first:
            raise ShapeError(
                f"cannot add tensors of shapes {first} and {other}; expected equal shapes"
            )
    return first


def _reference(
    attrs: Mapping[str, Any], xs: Sequence[np.ndarray], w: Mapping[str, np.ndarray]
) -> np.ndarray:
    return activate(sum(x.astype(np.float64) for x in xs), attrs["act"])


def _c(attrs: Mapping[str, Any], ins: Sequence[Shape], out: Shape) -> dict[str, Any]:
    return {"n": len(ins), "size": out.numel, "helpers": ("clamp",)}


GRAPH_OP = GraphOp(
    "add",
    _infer,
    no_weights,
    no_madds,
    _reference,
    profiles={"fvcore": no_madds, "tf1": no_madds},  # fvcore does not count elementwise adds
    targets={"pytorch": no_context, "onnx": no_context, "keras": no_context, "c": _c},
    min_inputs=2,
    max_inputs=None,
    layout="follow",
)


def _lower(ctx: Any, row: Any) -> None:
    attrs = {"act": row.fields["act"]}
    ctx.finish(row, ctx.emit(ctx.repeat_name(row, 0), "add", ctx.sources(row), attrs, row=row))


LAYER = LayerKind(
    "add",
    "Elementwise sum of the rows named in `from` (two or more, equal shapes).",
    (
        common.NAME,
        common.PART,
        Field("from", "refs", "The rows to add.", required=True),
        Field(
            "act",
            "choice",
            "Activation after the sum.",
            default="linear",
            choices=common.ACT.choices,
        ),
    ),
    _lower,
    takes_many_inputs=True,
    auto_prefix="add",
)
