"""shuffle: ShuffleNet's channel shuffle. With g groups of C/g channels, output channel
j·g + i is input channel i·(C/g) + j: reshape to (g, C/g), transpose, flatten."""

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
    no_context,
    no_madds,
    no_weights,
)


def _infer(attrs: Mapping[str, Any], ins: Sequence[Shape]) -> Shape:
    (x,) = ins
    if x.c % attrs["groups"]:
        raise ShapeError(
            f"groups={attrs['groups']} must divide the input channels ({x.c})", "groups"
        )
    return x


def source_channels(channels: int, groups: int) -> list[int]:
    """For each output channel, the input channel it takes."""
    per = channels // groups
    return [(j % groups) * per + j // groups for j in range(channels)]


def _reference(
    attrs: Mapping[str, Any], xs: Sequence[np.ndarray], w: Mapping[str, np.ndarray]
) -> np.ndarray:
    x = xs[0].astype(np.float64)
    return x[source_channels(x.shape[0], attrs["groups"])]


def _c(attrs: Mapping[str, Any], ins: Sequence[Shape], out: Shape) -> dict[str, Any]:
    x = ins[0]
    return {"C": x.c, "pixels": x.h * x.w, "groups": attrs["groups"], "per": x.c // attrs["groups"]}


def _onnx(attrs: Mapping[str, Any], ins: Sequence[Shape], out: Shape) -> dict[str, Any]:
    g = attrs["groups"]
    return {
        "constants": [  # 0 keeps the (dynamic) batch dimension
            {"part": "grouped_shape", "type": "int64[5]", "data": [0, g, out.c // g, out.h, out.w]},
            {"part": "merged_shape", "type": "int64[4]", "data": [0, out.c, out.h, out.w]},
        ]
    }


def _keras(attrs: Mapping[str, Any], ins: Sequence[Shape], out: Shape) -> dict[str, Any]:
    return {"extra_layers": {"split": True, "permute": True}}


GRAPH_OP = GraphOp(
    "shuffle",
    _infer,
    no_weights,
    no_madds,
    _reference,
    profiles={"fvcore": no_madds, "tf1": no_madds},  # fvcore counts no reshapes or transposes
    targets={"pytorch": no_context, "onnx": _onnx, "keras": _keras, "c": _c},
)


def _lower(ctx: Any, row: Any) -> None:
    attrs = {"groups": row.fields["groups"]}
    ctx.finish(row, ctx.emit(ctx.repeat_name(row, 0), "shuffle", [ctx.source(row)], attrs, row=row))


LAYER = LayerKind(
    "shuffle",
    "Channel shuffle (ShuffleNet): interleave the channels of `groups` groups.",
    (
        common.NAME,
        common.PART,
        common.FROM,
        Field("groups", "int", "Channel groups.", required=True, minimum=1, maximum=1 << 20),
    ),
    _lower,
    auto_prefix="shuffle",
)
