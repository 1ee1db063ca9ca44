"""conv2d: a 2-D convolution with optional BatchNorm and activation (also the graph op that
depthwise convs, bottleneck convs and 1x1 classifier convs lower to)."""

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
    batchnorm,
    batchnorm_weights,
)


def out_size(size: int, k: int, s: int, dilation: int) -> int:
    """SAME-style output size with symmetric padding of dilation·(k−1)/2: ceil(size / s)."""
    pad = dilation * (k - 1) // 2
    return (size + 2 * pad - dilation * (k - 1) - 1) // s + 1


def _infer(attrs: Mapping[str, Any], ins: Sequence[Shape]) -> Shape:
    (x,) = ins
    k, s, g, d = attrs["k"], attrs["s"], attrs["groups"], attrs["dilation"]
    if k % 2 == 0:
        raise ShapeError(f"kernel size {k} is even; expected an odd kernel size")
    if x.c % g or attrs["c_out"] % g:
        raise ShapeError(
            f"groups={g} must divide both the input channels ({x.c}) and the output channels "
            f"({attrs['c_out']})"
        )
    if s > 1 and (x.h < s or x.w < s):
        raise ShapeError(
            f"stride {s} on a {x.h}×{x.w} feature map would shrink it below one pixel per step; "
            "expected a larger input (raise the resolution or drop a stride)"
        )
    return Shape(attrs["c_out"], out_size(x.h, k, s, d), out_size(x.w, k, s, d))


def _weights(attrs: Mapping[str, Any], ins: Sequence[Shape], out: Shape) -> list[WeightSpec]:
    k = attrs["k"]
    specs = [WeightSpec("weight", (out.c, ins[0].c // attrs["groups"], k, k), "weight")]
    if attrs["bias"]:
        specs.append(WeightSpec("bias", (out.c,), "bias"))
    if attrs["bn"]:
        specs.extend(batchnorm_weights(out.c))
    return specs


def term(attrs: Mapping[str, Any], c_in: int) -> str:
    """The breakdown term a conv belongs to: depthwise, pointwise or (standard) conv."""
    if attrs["groups"] > 1 and attrs["groups"] == c_in:
        return "depthwise"
    if attrs["k"] == 1 and attrs["groups"] == 1:
        return "pointwise"
    return "conv"


def _madds(attrs: Mapping[str, Any], ins: Sequence[Shape], out: Shape) -> dict[str, int]:
    c_in = ins[0].c
    per_output = (c_in // attrs["groups"]) * attrs["k"] * attrs["k"]
    return {term(attrs, c_in): out.numel * per_output}


def convolve(x: np.ndarray, weight: np.ndarray, s: int, groups: int, dilation: int) -> np.ndarray:
    """Reference convolution of a (C, H, W) array, symmetric padding, float64 accumulation."""
    c, h, w = x.shape
    c_out, c_per_group, k, _ = weight.shape
    pad = dilation * (k - 1) // 2
    xp = np.pad(x.astype(np.float64), ((0, 0), (pad, pad), (pad, pad)))
    ho, wo = out_size(h, k, s, dilation), out_size(w, k, s, dilation)
    out = np.zeros((groups, c_out // groups, ho, wo))
    wg = weight.astype(np.float64).reshape(groups, c_out // groups, c_per_group, k, k)
    for i in range(k):
        for j in range(k):
            r0, c0 = i * dilation, j * dilation
            patch = xp[:, r0 : r0 + s * (ho - 1) + 1 : s, c0 : c0 + s * (wo - 1) + 1 : s]
            patch = patch.reshape(groups, c_per_group, ho, wo)
            out += np.einsum("goc,gchw->gohw", wg[:, :, :, i, j], patch)
    return out.reshape(c_out, ho, wo)


def _reference(
    attrs: Mapping[str, Any], xs: Sequence[np.ndarray], w: Mapping[str, np.ndarray]
) -> np.ndarray:
    y = convolve(xs[0], w["weight"], attrs["s"], attrs["groups"], attrs["dilation"])
    if attrs["bias"]:
        y = y + w["bias"][:, None, None]
    if attrs["bn"]:
        y = batchnorm(y, w, attrs["bn_eps"])
    return activate(y, attrs["act"])


GRAPH_OP = GraphOp("conv2d", _infer, _weights, _madds, _reference)


def _lower(ctx: Any, row: Any) -> None:
    f = row.fields
    c_out = ctx.channels(row, f["c"])
    bias = (not f["bn"]) if f["bias"] is None else f["bias"]
    src = ctx.source(row)
    for i in range(f["n"]):
        attrs = common.conv_attrs(
            c_out,
            f["k"],
            f["s"] if i == 0 else 1,
            f["groups"],
            f["dilation"],
            f["act"],
            f["bn"],
            bias,
        )
        src = ctx.emit(ctx.repeat_name(row, i), "conv2d", [src], attrs, row=row)
    ctx.finish(row, src)


LAYER = LayerKind(
    "conv2d",
    "A full convolution (Table 2's conv2d rows; k: 1 for 1x1 convs).",
    (
        common.NAME,
        common.FROM,
        Field("c", "channels", "Output channels (or `num_classes`).", required=True),
        common.KERNEL,
        common.STRIDE,
        common.REPEATS,
        Field("groups", "int", "Channel groups.", default=1, minimum=1, maximum=1 << 20),
        common.DILATION,
        common.ACT,
        common.BN,
        Field("bias", "bool", "Add a bias (default: only without BatchNorm).", default=None),
        common.SCALE,
    ),
    _lower,
)
