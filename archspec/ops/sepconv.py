"""sepconv: a depthwise-separable conv as TF-slim and Keras write it (NASNet's separable convs).

Each repeat is: the `pre_act` activation on its own (NASNet's ReLU first; none when linear),
a k×k depthwise conv (stride s on the first repeat; by default no BatchNorm, no bias and no
activation, as TF-slim's `separable_conv2d`; MobileNetV1's layers set `dw_bn: true` and
`dw_act: relu6`), then a 1x1 conv to `c` channels with BatchNorm and `act`. It lowers to `act`,
`conv2d` and `conv2d` graph nodes named `<row>_act`, `<row>_dw`, `<row>_pw` (with `_<i>` per
repeat when n > 1).
"""

from __future__ import annotations

from typing import Any

from archspec.ops import common
from archspec.ops.base import Field, LayerKind


def _lower(ctx: Any, row: Any) -> None:
    f = row.fields
    c_out = ctx.channels(row, f["c"])
    src = ctx.source(row)
    eps = ctx.spec.bn_eps
    for i in range(f["n"]):
        base = ctx.repeat_name(row, i)
        if f["pre_act"] != "linear":
            src = ctx.emit(f"{base}_act", "act", [src], {"act": f["pre_act"]}, row=row)
        c_in = ctx.shape(src).c
        stride = f["s"] if i == 0 else 1
        dw = common.conv_attrs(
            c_in, f["k"], stride, c_in, f["dilation"], f["dw_act"], f["dw_bn"], False, eps
        )
        src = ctx.emit(f"{base}_dw", "conv2d", [src], dw, row=row)
        pw = common.conv_attrs(c_out, 1, 1, 1, 1, f["act"], f["bn"], not f["bn"], eps)
        src = ctx.emit(f"{base}_pw", "conv2d", [src], pw, row=row)
    ctx.finish(row, src)


LAYER = LayerKind(
    "sepconv",
    "Depthwise-separable conv: [pre_act] → k×k depthwise → 1x1 conv + BatchNorm + act.",
    (
        common.NAME,
        common.PART,
        common.FROM,
        Field("c", "channels", "Output channels of the pointwise conv.", required=True),
        common.KERNEL,
        common.STRIDE,
        common.REPEATS,
        common.DILATION,
        Field(
            "pre_act",
            "choice",
            "Activation applied before the depthwise conv (NASNet: relu).",
            default="relu",
            choices=common.ACT.choices,
        ),
        Field("dw_bn", "bool", "BatchNorm after the depthwise conv.", default=False),
        Field(
            "dw_act",
            "choice",
            "Activation after the depthwise conv.",
            default="linear",
            choices=common.ACT.choices,
        ),
        Field(
            "act",
            "choice",
            "Activation after the pointwise conv's BatchNorm.",
            default="linear",
            choices=common.ACT.choices,
        ),
        common.BN,
        common.SCALE,
    ),
    _lower,
    auto_prefix="sepconv",
)
