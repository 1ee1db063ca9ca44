"""shift: move a feature map one pixel up and one pixel left, zero-filling the last row and
column: y[c, i, j] = x[c, i + 1, j + 1] (0 past the bottom or right edge). TF-slim's
`factorized_reduction` writes it as `tf.pad(x, [[0, 0], [0, 1], [0, 1], [0, 0]])[:, 1:, 1:, :]`
before its second strided 1x1 path, so that path samples the odd pixels the first one skips
(NASNet's reduction of the previous cell's output)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from archspec.ops import common
from archspec.ops.base import GraphOp, LayerKind, Shape, no_context, no_madds, no_weights


def _infer(attrs: Mapping[str, Any], ins: Sequence[Shape]) -> Shape:
    return ins[0]


def _reference(
    attrs: Mapping[str, Any], xs: Sequence[np.ndarray], w: Mapping[str, np.ndarray]
) -> np.ndarray:
    x = xs[0].astype(np.float64)
    return np.pad(x[:, 1:, 1:], ((0, 0), (0, 1), (0, 1)))


def _onnx(attrs: Mapping[str, Any], ins: Sequence[Shape], out: Shape) -> dict[str, Any]:
    return {
        "constants": [  # Slice rows and columns 1.. of (N, C, H, W), then Pad one at their ends
            {"part": "starts", "type": "int64[2]", "data": [1, 1]},
            {"part": "ends", "type": "int64[2]", "data": [out.h, out.w]},
            {"part": "axes", "type": "int64[2]", "data": [2, 3]},
            {"part": "pads", "type": "int64[8]", "data": [0, 0, 0, 0, 0, 0, 1, 1]},
        ]
    }


def _keras(attrs: Mapping[str, Any], ins: Sequence[Shape], out: Shape) -> dict[str, Any]:
    return {"extra_layers": {"pad": True}}


def _c(attrs: Mapping[str, Any], ins: Sequence[Shape], out: Shape) -> dict[str, Any]:
    x = ins[0]
    return {"H": x.h, "W": x.w, "C": x.c}


GRAPH_OP = GraphOp(
    "shift",
    _infer,
    no_weights,
    no_madds,
    _reference,
    profiles={"fvcore": no_madds, "tf1": no_madds},  # fvcore counts no pads or slices
    targets={"pytorch": no_context, "onnx": _onnx, "keras": _keras, "c": _c},
)


def _lower(ctx: Any, row: Any) -> None:
    ctx.finish(row, ctx.emit(ctx.repeat_name(row, 0), "shift", [ctx.source(row)], {}, row=row))


LAYER = LayerKind(
    "shift",
    "Shift the map one pixel up and left, zero-filling the last row and column "
    "(NASNet's factorized reduction: pad bottom/right by one, crop top/left by one).",
    (common.NAME, common.PART, common.FROM),
    _lower,
    auto_prefix="shift",
)
