"""dwconv: a depthwise convolution (one filter per channel), lowered to a grouped conv2d."""

from __future__ import annotations

from typing import Any

from archspec.ops import common
from archspec.ops.base import Field, LayerKind


def _lower(ctx: Any, row: Any) -> None:
    f = row.fields
    bias = bool(f["bias"])  # see the bias field: none unless asked for
    src = ctx.source(row)
    for i in range(f["n"]):
        c_in = ctx.shape(src).c
        attrs = common.conv_attrs(
            c_in * f["multiplier"],
            f["k"],
            f["s"] if i == 0 else 1,
            c_in,
            f["dilation"],
            f["act"],
            f["bn"],
            bias,
            ctx.spec.bn_eps,
        )
        src = ctx.emit(ctx.repeat_name(row, i), "conv2d", [src], attrs, row=row)
    ctx.finish(row, src)


LAYER = LayerKind(
    "dwconv",
    "A depthwise convolution: groups = input channels.",
    (
        common.NAME,
        common.PART,
        common.FROM,
        common.KERNEL,
        common.STRIDE,
        common.REPEATS,
        Field(
            "multiplier",
            "int",
            "Depth multiplier (outputs per input channel).",
            default=1,
            minimum=1,
            maximum=64,
        ),
        common.DILATION,
        common.ACT,
        common.BN,
        Field(
            "bias",
            "bool",
            "Add a bias (default: false, with or without BatchNorm: a depthwise conv without "
            "BatchNorm is the first half of a separable conv, whose 1x1 conv carries the one "
            "bias, as in Keras' SeparableConv2D and TF-slim's separable_conv2d).",
            default=False,
        ),
    ),
    _lower,
    auto_prefix="dwconv",
)
