"""upsample: resize a feature map (bilinear, half-pixel centres, or nearest)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from archspec.ops import common
from archspec.ops.base import Field, GraphOp, LayerKind, Shape, no_context, no_madds, no_weights


def _infer(attrs: Mapping[str, Any], ins: Sequence[Shape]) -> Shape:
    return Shape(ins[0].c, attrs["h"], attrs["w"])


def source_index(out_size: int, in_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear taps along one axis (align_corners=False, clamped at the borders):
    lower index, upper index and the weight of the upper one."""
    scale = in_size / out_size
    src = np.maximum((np.arange(out_size) + 0.5) * scale - 0.5, 0.0)
    lo = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    hi = np.minimum(lo + 1, in_size - 1)
    return lo, hi, src - lo


def _reference(
    attrs: Mapping[str, Any], xs: Sequence[np.ndarray], w: Mapping[str, np.ndarray]
) -> np.ndarray:
    x = xs[0].astype(np.float64)
    _, h, wd = x.shape
    oh, ow = attrs["h"], attrs["w"]
    if attrs["mode"] == "nearest":
        rows = np.minimum((np.arange(oh) * h) // oh, h - 1)
        cols = np.minimum((np.arange(ow) * wd) // ow, wd - 1)
        return x[:, rows][:, :, cols]
    r0, r1, rw = source_index(oh, h)
    c0, c1, cw = source_index(ow, wd)
    top = x[:, r0] * (1 - rw)[None, :, None] + x[:, r1] * rw[None, :, None]
    return top[:, :, c0] * (1 - cw)[None, None, :] + top[:, :, c1] * cw[None, None, :]


def _fvcore(attrs: Mapping[str, Any], ins: Sequence[Shape], out: Shape) -> dict[str, int]:
    # fvcore: bilinear interpolation 4 operations per output element, nearest 1
    return {"upsample": out.numel * (4 if attrs["mode"] == "bilinear" else 1)}


def _onnx(attrs: Mapping[str, Any], ins: Sequence[Shape], out: Shape) -> dict[str, Any]:
    return {"constants": [{"part": "sizes", "type": "int64[2]", "data": [out.h, out.w]}]}


def _c(attrs: Mapping[str, Any], ins: Sequence[Shape], out: Shape) -> dict[str, Any]:
    x = ins[0]
    oh, ow, mode = out.h, out.w, attrs["mode"]
    params: dict[str, Any] = {"mode": mode, "H": x.h, "W": x.w, "C": x.c, "Ho": oh, "Wo": ow}
    if mode == "nearest":
        params["r0"] = np.minimum(np.arange(oh) * x.h // oh, x.h - 1).tolist()
        params["c0"] = np.minimum(np.arange(ow) * x.w // ow, x.w - 1).tolist()
    else:
        r0, r1, rw = source_index(oh, x.h)
        c0, c1, cw = source_index(ow, x.w)
        params.update(
            r0=r0.tolist(),
            r1=r1.tolist(),
            c0=c0.tolist(),
            c1=c1.tolist(),
            rw=rw.tolist(),
            cw=cw.tolist(),
        )
    return params


GRAPH_OP = GraphOp(
    "upsample",
    _infer,
    no_weights,
    no_madds,
    _reference,
    terms=("upsample",),
    profiles={"fvcore": _fvcore, "tf1": no_madds},
    # Keras: the module's own _Resize layer (defined by the fragment's support section)
    targets={
        "pytorch": no_context,
        "onnx": _onnx,
        "keras": lambda a, i, o: {"custom": True},
        "c": _c,
    },
)


def _lower(ctx: Any, row: Any) -> None:
    f = row.fields
    src = ctx.source(row)
    shape = ctx.shape(src)
    if (f["like"] is None) == (f["factor"] is None):
        ctx.fail(row, "like", "expected exactly one of `like` (a row name) or `factor`")
    if f["like"] is not None:
        target = ctx.shape(ctx.resolve(row, f["like"], "like"))
        h, w = target.h, target.w
    else:
        h, w = shape.h * f["factor"], shape.w * f["factor"]
    attrs = {"h": h, "w": w, "mode": f["mode"]}
    ctx.finish(row, ctx.emit(ctx.repeat_name(row, 0), "upsample", [src], attrs, row=row))


LAYER = LayerKind(
    "upsample",
    "Resize to the spatial size of the row named in `like`, or by an integer `factor`.",
    (
        common.NAME,
        common.PART,
        common.FROM,
        Field("like", "ref", "Take the output size of this row.", default=None),
        Field("factor", "int", "Integer scale factor.", default=None, minimum=1, maximum=64),
        Field(
            "mode", "choice", "Interpolation.", default="bilinear", choices=("bilinear", "nearest")
        ),
    ),
    _lower,
    auto_prefix="upsample",
)
