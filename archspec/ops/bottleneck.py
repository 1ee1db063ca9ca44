"""bottleneck: the inverted residual block of the paper's Table 1.

1x1 expansion (ReLU6) → k×k depthwise, stride s (ReLU6) → linear 1x1 projection, plus a residual
add exactly when s = 1 and the input and output channels agree. With t = 1 there is no expansion
conv: the depthwise runs on the block input directly. Expansion channels are
make_divisible(C_in · t).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from archspec.ops import common
from archspec.ops.base import Field, LayerKind, Role, Shape
from archspec.ops.blocks import BlockKind, WorkspacePart, band_rows
from archspec.ops.conv2d import pad_of, padding


def _lower(ctx: Any, row: Any) -> None:
    f = row.fields
    c_out = ctx.channels(row, f["c"])
    src = ctx.source(row)
    eps = ctx.spec.bn_eps
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
                common.conv_attrs(hidden, 1, 1, 1, 1, f["act"], True, False, eps),
                row=row,
                block=block,
                role=Role.EXPAND,
            )
        x = ctx.emit(
            f"{block}_dw",
            "conv2d",
            [x],
            common.conv_attrs(
                hidden, f["k"], stride, hidden, f["dilation"], f["act"], True, False, eps
            ),
            row=row,
            block=block,
            role=Role.DWISE,
        )
        x = ctx.emit(
            f"{block}_project",
            "conv2d",
            [x],
            common.conv_attrs(c_out, 1, 1, 1, 1, "linear", True, False, eps),
            row=row,
            block=block,
            role=Role.PROJECT,
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
                role=Role.RESIDUAL,
            )
        ctx.add_block(block, row, src, x, kind="bottleneck", t=f["t"], residual=residual)
        src = x
    ctx.finish(row, src)


LAYER = LayerKind(
    "bottleneck",
    "Inverted residual block (Table 1): expand ×t, depthwise k×k stride s, linear project; "
    "each conv has BatchNorm and no bias.",
    (
        common.NAME,
        common.PART,
        common.FROM,
        Field("t", "int", "Expansion factor (paper's t).", required=True, minimum=1, maximum=64),
        Field(
            "c", "channels", "Output channels (paper's c). " + common.CHANNELS_DOC, required=True
        ),
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
    auto_prefix="block",
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
    """The C kernel of a fused bottleneck (or, with `stem`, of the stem conv fused with a t = 1
    block): its kind, parameters, weight nodes in call order and the node it reads.

    `fo` is the memory model's fused op (group channels, workspace, row tile), `block` the
    graph's block record, `members` its nodes by role, `x` the fused op's input shape (the
    stem's input with `stem`), `out` its output shape.
    """
    dw, project = members[Role.DWISE], members[Role.PROJECT]
    expand = stem if stem is not None else members.get(Role.EXPAND)
    a = dw.attrs
    params: dict[str, Any] = {
        "Ho": dw.shape.h,
        "Wo": dw.shape.w,
        "Cout": out.c,
        "hidden": dw.shape.c,
        "ksize": a["k"],
        "s": a["s"],
        "d": a["dilation"],
        "pad": padding(a["k"], a["dilation"]),
        "dw_act": a["act"],
        "residual": Role.RESIDUAL in members,
        "gs": fo.group_channels,
        "split": split,
        "ws_elems": fo.workspace_elems,
        "Hin": x.h,
        "Win": x.w,
        "Cin": x.c,
    }
    if expand is not None:
        params["exp_act"] = expand.attrs["act"]
    if fo.row_tile is not None:
        params.update(row_tile=fo.row_tile, rt=min(fo.row_tile, dw.shape.h))
    gs = fo.group_channels
    dw_rows = params.get("rt", dw.shape.h)
    dw_part = (dw.name, gs * dw_rows * dw.shape.w)
    if stem is not None:
        sa = stem.attrs
        params.update(
            Hs=stem.shape.h,
            Ws=stem.shape.w,
            stem_k=sa["k"],
            stem_s=sa["s"],
            stem_d=sa["dilation"],
            stem_pad=pad_of(sa),
            band=band_rows(dw, stem.shape.h, fo.row_tile),
            stem_groups=sa["groups"],
            stem_cin_g=x.c // sa["groups"],
            stem_cout_g=stem.shape.c // sa["groups"],
        )
        params["e_elems"] = params["band"] * stem.shape.w * gs
        if fo.row_tile is None:
            del params["band"]
        kind = "stem_block"
        weights = (stem.name, dw.name, project.name)
        workspace = [(stem.name, params["e_elems"]), dw_part]
        helpers = ("clamp", "taps", "pointwise", "depthwise", "direct")
    else:
        t1 = expand is None
        band = 0 if t1 else band_rows(dw, x.h, fo.row_tile)
        params.update(t1=t1, t=block.t, e_elems=band * x.w * gs)
        if fo.row_tile is not None:
            params["band"] = band
        kind = "bottleneck"
        weights = tuple(n.name for n in (expand, dw, project) if n is not None)
        workspace = ([] if t1 else [(expand.name, params["e_elems"])]) + [dw_part]
        helpers = ("clamp", "taps", "pointwise", "depthwise")
    if fo.row_tile is not None:
        kind += "_rows"
        helpers = tuple(f"{h}_rows" if h in ("depthwise", "direct") else h for h in helpers)
    return {
        "kind": kind,
        "params": params,
        "weights": weights,
        "helpers": helpers,
        "workspace": workspace,
    }


BLOCK = BlockKind(
    "bottleneck",
    roles=(Role.EXPAND, Role.DWISE, Role.PROJECT, Role.RESIDUAL),
    split_role=Role.DWISE,
    band_role=Role.DWISE,
    workspace=(WorkspacePart(Role.EXPAND, "input"), WorkspacePart(Role.DWISE, "output")),
    linear_roles=(Role.PROJECT, Role.RESIDUAL),
    stem_role=Role.EXPAND,
    c_kernel=_c_kernel,
)
