"""shuffle_unit: the ShuffleNet v1 unit (Zhang et al. 2018, Fig. 2), a second fusable block.

1x1 group conv to c/4 channels (BN, ReLU; one group in the very first unit of a network's first
stage: `first_group`) → channel shuffle (`groups` groups) → 3x3 depthwise, stride s (BN) → 1x1
group conv (BN). Stride 1: add the unit's input, then ReLU. Stride 2: concatenate a 3x3 stride-2
average pool of the input (padding counted, as megvii's reference implementation pools) with
the ReLU of the branch, whose last group conv then outputs c − C_in channels. No conv biases.

Fused (the memory model and the C target, through `BLOCK`): the bottleneck channels c/4 are
split into groups like an inverted residual's expansion: the workspace is one group of the first
group conv's (shuffled) output at the input resolution and one group of the depthwise output at
the output resolution (with a row tile: the rows one band reads and writes); the projection
accumulates into the output, the shortcut (the input, or its pool) is written there first, and
the final ReLU runs once the last group is in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from archspec.ops import common
from archspec.ops.base import Field, LayerKind, Role, Shape
from archspec.ops.blocks import BlockKind, WorkspacePart, band_rows
from archspec.ops.conv2d import padding


def _lower(ctx: Any, row: Any) -> None:
    f = row.fields
    c_out = ctx.channels(row, f["c"])
    g = f["groups"]
    eps = ctx.spec.bn_eps
    src = ctx.source(row)
    for i in range(f["n"]):
        block = ctx.block_name(row, i)
        c_in = ctx.shape(src).c
        stride = f["s"] if i == 0 else 1
        mid = c_out // 4
        if stride == 1 and c_in != c_out:
            ctx.fail(
                row,
                "c",
                f"a stride-1 unit adds its input: found {c_in} input and {c_out} output channels; "
                "expected them equal (make the first unit of a stage strided)",
            )
        if stride > 1 and c_out <= c_in:
            ctx.fail(
                row,
                "c",
                f"a strided unit concatenates its {c_in} input channels; expected c above {c_in}",
            )
        g1 = 1 if f["first_group"] and i == 0 else g
        branch = c_out - c_in if stride > 1 else c_out
        x = ctx.emit(
            f"{block}_gconv1",
            "conv2d",
            [src],
            common.conv_attrs(mid, 1, 1, g1, 1, "relu", True, False, eps),
            row=row,
            block=block,
            role=Role.EXPAND,
        )
        if g > 1:
            x = ctx.emit(
                f"{block}_shuffle",
                "shuffle",
                [x],
                {"groups": g},
                row=row,
                block=block,
                role=Role.SHUFFLE,
            )
        x = ctx.emit(
            f"{block}_dw",
            "conv2d",
            [x],
            common.conv_attrs(mid, f["k"], stride, mid, 1, "linear", True, False, eps),
            row=row,
            block=block,
            role=Role.DWISE,
        )
        x = ctx.emit(
            f"{block}_gconv2",
            "conv2d",
            [x],
            common.conv_attrs(
                branch, 1, 1, g, 1, "relu" if stride > 1 else "linear", True, False, eps
            ),
            row=row,
            block=block,
            role=Role.PROJECT,
        )
        if stride > 1:
            pool = ctx.emit(
                f"{block}_pool",
                "avgpool",
                [src],
                {"global": False, "k": 3, "s": stride, "padding": "same", "count_pad": True},
                row=row,
                block=block,
                role=Role.SHORTCUT,
            )
            x = ctx.emit(
                f"{block}_concat", "concat", [pool, x], {}, row=row, block=block, role=Role.RESIDUAL
            )
        else:
            x = ctx.emit(
                f"{block}_add",
                "add",
                [src, x],
                {"act": "relu"},
                row=row,
                block=block,
                role=Role.RESIDUAL,
            )
        ctx.add_block(block, row, src, x, kind="shuffle_unit", t=0, residual=stride == 1)
        src = x
    ctx.finish(row, src)


LAYER = LayerKind(
    "shuffle_unit",
    "ShuffleNet v1 unit: 1x1 group conv → shuffle → 3x3 depthwise → 1x1 group conv, with an "
    "add (stride 1) or a concat with an average-pooled shortcut (stride 2).",
    (
        common.NAME,
        common.PART,
        common.FROM,
        Field("c", "channels", "Output channels of the unit (the stage's width).", required=True),
        Field(
            "groups",
            "int",
            "Groups of the 1x1 convs (ShuffleNet's g).",
            required=True,
            minimum=1,
            maximum=64,
        ),
        common.REPEATS,
        common.STRIDE,
        common.KERNEL,
        Field(
            "first_group",
            "bool",
            "One group in the first repeat's first 1x1 conv (the network's first unit).",
            default=False,
        ),
        common.SCALE,
    ),
    _lower,
    auto_prefix="unit",
)


def _c_kernel(
    fo: Any,
    block: Any,
    members: Mapping[Role, Any],
    stem: Any,
    x: Shape,
    out: Shape,
    split: int | str,
) -> dict[str, Any]:
    """The C kernel of a fused ShuffleNet unit (see the module docstring and
    `templates/c/ops/shuffle_unit.c.j2`): kind, parameters, weight nodes, workspace layout."""
    g1conv, dw, g2conv = members[Role.EXPAND], members[Role.DWISE], members[Role.PROJECT]
    merge = members[Role.RESIDUAL]
    mid = dw.shape.c
    g1, g2 = g1conv.attrs["groups"], g2conv.attrs["groups"]
    shuffle = members.get(Role.SHUFFLE)
    gs = fo.group_channels
    a = dw.attrs
    params = {
        "Hin": x.h,
        "Win": x.w,
        "Cin": x.c,
        "Ho": dw.shape.h,
        "Wo": dw.shape.w,
        "Cout": out.c,
        "hidden": mid,
        "shuffle_groups": shuffle.attrs["groups"] if shuffle is not None else 1,
        "g1": g1,
        "cin_g1": x.c // g1,
        "mid_g1": mid // g1,
        "g2": g2,
        "mid_g2": mid // g2,
        "out_g2": g2conv.shape.c // g2,
        "branch_off": out.c - g2conv.shape.c,
        "ksize": a["k"],
        "s": a["s"],
        "d": a["dilation"],
        "pad": padding(a["k"], a["dilation"]),
        "residual": merge.op == "add",
        "exp_act": g1conv.attrs["act"],
        "dw_act": a["act"],
        "final_act": merge.attrs["act"] if merge.op == "add" else g2conv.attrs["act"],
        "gs": gs,
        "split": split,
        "ws_elems": fo.workspace_elems,
    }
    rows, dw_rows = x.h, dw.shape.h
    if fo.row_tile is not None:  # bands of output rows: the depthwise reads `band` input rows
        rows, dw_rows = band_rows(dw, x.h, fo.row_tile), min(fo.row_tile, dw.shape.h)
        params.update(row_tile=fo.row_tile, rt=dw_rows, band=rows)
    depthwise = "depthwise" if fo.row_tile is None else "depthwise_rows"
    return {
        "kind": "shuffle_unit",
        "params": params,
        "weights": (g1conv.name, dw.name, g2conv.name),
        "helpers": ("clamp", "taps", "pointwise", depthwise),
        "workspace": [(g1conv.name, rows * x.w * gs), (dw.name, dw_rows * dw.shape.w * gs)],
    }


BLOCK = BlockKind(
    "shuffle_unit",
    roles=(Role.EXPAND, Role.SHUFFLE, Role.DWISE, Role.PROJECT, Role.SHORTCUT, Role.RESIDUAL),
    split_role=Role.DWISE,
    band_role=Role.DWISE,
    workspace=(WorkspacePart(Role.EXPAND, "input"), WorkspacePart(Role.DWISE, "output")),
    linear_roles=(),  # the final ReLU (of the add, or of the branch) runs after the last group
    stem_role=None,
    c_kernel=_c_kernel,
)
