"""fc: fully connected classifier on a 1×1 feature map (Table 2's last 1x1 conv)."""

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
    WeightSpec,
    activate,
    no_context,
    no_madds,
)


def _infer(attrs: Mapping[str, Any], ins: Sequence[Shape]) -> Shape:
    (x,) = ins
    if x.h != 1 or x.w != 1:
        raise ShapeError(
            f"found a {x.h}×{x.w} input; expected a 1×1 feature map "
            "(put an `avgpool` with `global: true` before `fc`)"
        )
    return Shape(attrs["c_out"], 1, 1)


def _weights(attrs: Mapping[str, Any], ins: Sequence[Shape], out: Shape) -> list[WeightSpec]:
    specs = [WeightSpec("weight", (out.c, ins[0].c), "weight")]
    if attrs["bias"]:
        specs.append(WeightSpec("bias", (out.c,), "bias"))
    return specs


def _madds(attrs: Mapping[str, Any], ins: Sequence[Shape], out: Shape) -> dict[str, int]:
    return {"fc": ins[0].c * out.c}


def _reference(
    attrs: Mapping[str, Any], xs: Sequence[np.ndarray], w: Mapping[str, np.ndarray]
) -> np.ndarray:
    y = w["weight"].astype(np.float64) @ xs[0].reshape(-1).astype(np.float64)
    if attrs["bias"]:
        y = y + w["bias"]
    return activate(y, attrs["act"]).reshape(-1, 1, 1)


def _pytorch(attrs: Mapping[str, Any], ins: Sequence[Shape], out: Shape) -> dict[str, Any]:
    return {"c_in": ins[0].c}


def _c(attrs: Mapping[str, Any], ins: Sequence[Shape], out: Shape) -> dict[str, Any]:
    return {"Cin": ins[0].c, "Cout": out.c, "weights": True, "helpers": ("clamp", "pointwise")}


GRAPH_OP = GraphOp(
    "fc",
    _infer,
    _weights,
    _madds,
    _reference,
    terms=("fc",),
    # fvcore counts a linear layer as in × out, as slim does
    profiles={"fvcore": no_madds, "tf1": no_madds},
    targets={"pytorch": _pytorch, "onnx": no_context, "keras": _pytorch, "c": _c},
    layout="flat",
)


def _lower(ctx: Any, row: Any) -> None:
    f = row.fields
    attrs = {"c_out": ctx.channels(row, f["c"]), "bias": f["bias"], "act": f["act"]}
    ctx.finish(row, ctx.emit(ctx.repeat_name(row, 0), "fc", [ctx.source(row)], attrs, row=row))


LAYER = LayerKind(
    "fc",
    "Fully connected layer (classifier); its input must be 1×1.",
    (
        common.NAME,
        common.PART,
        common.FROM,
        Field(
            "c",
            "channels",
            "Output features (usually `num_classes`). " + common.CHANNELS_DOC,
            required=True,
        ),
        Field(
            "bias", "bool", "Add a bias (default: true; an fc row has no BatchNorm).", default=True
        ),
        Field("act", "choice", "Activation.", default="linear", choices=common.ACT.choices),
        Field("scale", "choice", common.SCALE.doc, default="none", choices=common.SCALE.choices),
    ),
    _lower,
    auto_prefix="fc",
)
