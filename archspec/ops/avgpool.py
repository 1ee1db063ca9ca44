"""avgpool: average pooling, windowed (no padding) or global (output 1×1)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from archspec.ops import common
from archspec.ops.base import Field, GraphOp, LayerKind, Shape, ShapeError, no_weights


def _infer(attrs: Mapping[str, Any], ins: Sequence[Shape]) -> Shape:
    (x,) = ins
    if attrs["global"]:
        return Shape(x.c, 1, 1)
    k, s = attrs["k"], attrs["s"]
    if k > x.h or k > x.w:
        raise ShapeError(f"pool window {k} is larger than the {x.h}×{x.w} feature map")
    return Shape(x.c, (x.h - k) // s + 1, (x.w - k) // s + 1)


def pool_elements(attrs: Mapping[str, Any], ins: Sequence[Shape], out: Shape) -> int:
    """Elements read by the pool (what fvcore-style profiles count)."""
    return ins[0].numel


def _reference(
    attrs: Mapping[str, Any], xs: Sequence[np.ndarray], w: Mapping[str, np.ndarray]
) -> np.ndarray:
    x = xs[0].astype(np.float64)
    if attrs["global"]:
        return x.mean(axis=(1, 2), keepdims=True)
    k, s = attrs["k"], attrs["s"]
    c, h, wd = x.shape
    ho, wo = (h - k) // s + 1, (wd - k) // s + 1
    out = np.zeros((c, ho, wo))
    for i in range(k):
        for j in range(k):
            out += x[:, i : i + s * (ho - 1) + 1 : s, j : j + s * (wo - 1) + 1 : s]
    return out / (k * k)


def _no_madds(attrs: Mapping[str, Any], ins: Sequence[Shape], out: Shape) -> dict[str, int]:
    return {}  # pooling costs no multiply-accumulates under slim


def _fvcore(attrs: Mapping[str, Any], ins: Sequence[Shape], out: Shape) -> dict[str, int]:
    # fvcore counts adaptive (global) average pooling as one operation per input element
    return {"pool": pool_elements(attrs, ins, out)} if attrs["global"] else {}


def _common(attrs: Mapping[str, Any], ins: Sequence[Shape], out: Shape) -> dict[str, Any]:
    return {"is_global": attrs["global"]}


def _c(attrs: Mapping[str, Any], ins: Sequence[Shape], out: Shape) -> dict[str, Any]:
    x = ins[0]
    count = x.h * x.w if attrs["global"] else attrs["k"] * attrs["k"]
    return {
        "global": bool(attrs["global"]),
        "H": x.h,
        "W": x.w,
        "C": x.c,
        "Ho": out.h,
        "Wo": out.w,
        "ksize": attrs["k"],
        "s": attrs["s"],
        "scale": 1.0 / count,
    }


GRAPH_OP = GraphOp(
    "avgpool",
    _infer,
    no_weights,
    _no_madds,
    _reference,
    terms=("pool",),
    profiles={"fvcore": _fvcore},
    targets={"pytorch": _common, "onnx": _common, "keras": _common, "c": _c},
)


def _lower(ctx: Any, row: Any) -> None:
    f = row.fields
    if not f["global"] and f["k"] is None:
        ctx.fail(row, "k", "found no window size; expected `k` or `global: true`")
    k = f["k"] or 1
    attrs = {"global": f["global"], "k": k, "s": f["s"] or k}
    ctx.finish(row, ctx.emit(ctx.repeat_name(row, 0), "avgpool", [ctx.source(row)], attrs, row=row))


LAYER = LayerKind(
    "avgpool",
    "Average pooling: `global: true` (Table 2's avgpool 7x7) or a k×k window with stride s.",
    (
        common.NAME,
        common.FROM,
        Field("global", "bool", "Pool the whole feature map to 1×1.", default=False),
        Field("k", "int", "Window size.", default=None, minimum=1, maximum=64),
        Field(
            "s", "int", "Stride (default: the window size).", default=None, minimum=1, maximum=64
        ),
    ),
    _lower,
    auto_prefix="pool",
)
