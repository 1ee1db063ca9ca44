"""concat: channel concatenation of tensors of one spatial size (merging branches)."""

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
    first = ins[0]
    for other in ins[1:]:
        if (other.h, other.w) != (first.h, first.w):
            raise ShapeError(
                f"cannot concatenate a {first.h}×{first.w} map with a {other.h}×{other.w} map; "
                "expected equal heights and widths"
            )
    return Shape(sum(s.c for s in ins), first.h, first.w)


def _reference(
    attrs: Mapping[str, Any], xs: Sequence[np.ndarray], w: Mapping[str, np.ndarray]
) -> np.ndarray:
    return np.concatenate([x.astype(np.float64) for x in xs], axis=0)


def _c(attrs: Mapping[str, Any], ins: Sequence[Shape], out: Shape) -> dict[str, Any]:
    channels = [s.c for s in ins]
    return {
        "channels": channels,
        "starts": [sum(channels[:i]) for i in range(len(channels))],
        "pixels": out.h * out.w,
        "Cout": out.c,
    }


GRAPH_OP = GraphOp(
    "concat",
    _infer,
    no_weights,
    no_madds,
    _reference,
    profiles={"fvcore": no_madds, "tf1": no_madds},
    targets={"pytorch": no_context, "onnx": no_context, "keras": no_context, "c": _c},
    min_inputs=2,
    max_inputs=None,
    layout="follow",
)


def _lower(ctx: Any, row: Any) -> None:
    ctx.finish(row, ctx.emit(ctx.repeat_name(row, 0), "concat", ctx.sources(row), {}, row=row))


LAYER = LayerKind(
    "concat",
    "Concatenate the rows named in `from` along channels (equal spatial sizes).",
    (common.NAME, common.PART, Field("from", "refs", "The rows to concatenate.", required=True)),
    _lower,
    takes_many_inputs=True,
    auto_prefix="concat",
)
