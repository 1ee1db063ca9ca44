"""bottleneck: the inverted residual block of the paper's Table 1.

1x1 expansion (ReLU6) → k×k depthwise, stride s (ReLU6) → linear 1x1 projection, plus a residual
add exactly when s = 1 and the input and output channels agree. With t = 1 there is no expansion
conv: the depthwise runs on the block input directly. Expansion channels are
make_divisible(C_in · t).
"""

from __future__ import annotations

from typing import Any

from archspec.ops import common
from archspec.ops.base import Field, LayerKind


def _lower(ctx: Any, row: Any) -> None:
    f = row.fields
    c_out = ctx.channels(row, f["c"])
    src = ctx.source(row)
    for i in range(f["n"]):
        block = ctx.block_name(row, i)
        c_in = ctx.shape(src).c
        stride = f["s"] if i == 0 else 1
        hidden = c_in if f["t"] == 1 else ctx.make_divisible(c_in * f["t"])
        x = src
        if f["t"] != 1:
            x = ctx.emit(
                f"{block}_expand",
                "conv2d",
                [x],
                common.conv_attrs(hidden, 1, 1, 1, 1, f["act"], True, False),
                row=row,
                block=block,
                role="expand",
            )
        x = ctx.emit(
            f"{block}_dw",
            "conv2d",
            [x],
            common.conv_attrs(hidden, f["k"], stride, hidden, f["dilation"], f["act"], True, False),
            row=row,
            block=block,
            role="dwise",
        )
        x = ctx.emit(
            f"{block}_project",
            "conv2d",
            [x],
            common.conv_attrs(c_out, 1, 1, 1, 1, "linear", True, False),
            row=row,
            block=block,
            role="project",
        )
        residual = stride == 1 and c_in == c_out and f["residual"]
        if residual:
            x = ctx.emit(
                f"{block}_add",
                "add",
                [src, x],
                {"act": "linear"},
                row=row,
                block=block,
                role="residual",
            )
        ctx.add_block(block, row, src, x, t=f["t"], residual=residual)
        src = x
    ctx.finish(row, src)


LAYER = LayerKind(
    "bottleneck",
    "Inverted residual block (Table 1): expand ×t, depthwise k×k stride s, linear project.",
    (
        common.NAME,
        common.FROM,
        Field("t", "int", "Expansion factor (paper's t).", required=True, minimum=1, maximum=64),
        Field("c", "channels", "Output channels (paper's c).", required=True),
        common.REPEATS,
        common.STRIDE,
        common.KERNEL,
        common.DILATION,
        common.ACT,
        Field(
            "residual",
            "bool",
            "Allow the residual add (when s = 1 and C_in = C_out).",
            default=True,
        ),
        common.SCALE,
    ),
    _lower,
)
