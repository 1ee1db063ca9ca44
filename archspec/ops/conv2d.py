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


def padding(k: int, dilation: int) -> int:
    """The symmetric padding of every conv, on each side: dilation·(k−1)/2 (SAME for odd k)."""
    return dilation * (k - 1) // 2


def pad_of(attrs: Mapping[str, Any]) -> int:
    """The padding on each side of a conv node: symmetric SAME (`padding`) unless the node says
    `padding: valid` (only conv2d rows may; every other conv node is SAME and has no such key)."""
    if attrs.get("padding", "same") == "valid":
        return 0
    return padding(attrs["k"], attrs["dilation"])


def out_size(size: int, k: int, s: int, dilation: int, pad: int | None = None) -> int:
    """Output size with `pad` on each side (default the symmetric SAME padding
    dilation·(k−1)/2, giving ceil(size / s); 0 for VALID)."""
    pad = padding(k, dilation) if pad is None else pad
    return (size + 2 * pad - dilation * (k - 1) - 1) // s + 1


def is_depthwise(attrs: Mapping[str, Any], c_in: int) -> bool:
    """One group per input channel (more than one channel): a depthwise conv, whatever its
    depth multiplier (output channels per input channel)."""
    return attrs["groups"] == c_in and c_in > 1


def depth_multiplier(attrs: Mapping[str, Any], c_in: int) -> int:
    """Output channels per input channel of a depthwise conv (1 for any other conv)."""
    return attrs["c_out"] // c_in if is_depthwise(attrs, c_in) else 1


def _infer(attrs: Mapping[str, Any], ins: Sequence[Shape]) -> Shape:
    (x,) = ins
    k, s, g, d = attrs["k"], attrs["s"], attrs["groups"], attrs["dilation"]
    if k % 2 == 0:
        raise ShapeError(f"kernel size {k} is even; expected an odd kernel size", "k")
    if x.c % g or attrs["c_out"] % g:
        raise ShapeError(
            f"groups={g} must divide both the input channels ({x.c}) and the output channels "
            f"({attrs['c_out']})",
            "groups",
        )
    if s > 1 and (x.h < s or x.w < s):
        raise ShapeError(
            f"stride {s} on a {x.h}×{x.w} feature map would shrink it below one pixel per step; "
            "expected a larger input (raise the resolution or drop a stride)",
            "s",
        )
    pad = pad_of(attrs)
    if d * (k - 1) + 1 > min(x.h, x.w) + 2 * pad:
        raise ShapeError(
            f"a {k}x{k} kernel (dilation {d}) without padding does not fit the {x.h}×{x.w} "
            "feature map; expected `padding: same` or a larger input",
            "padding",
        )
    return Shape(attrs["c_out"], out_size(x.h, k, s, d, pad), out_size(x.w, k, s, d, pad))


def _weights(attrs: Mapping[str, Any], ins: Sequence[Shape], out: Shape) -> list[WeightSpec]:
    k = attrs["k"]
    specs = [WeightSpec("weight", (out.c, ins[0].c // attrs["groups"], k, k), "weight")]
    if attrs["bias"]:
        specs.append(WeightSpec("bias", (out.c,), "bias"))
    if attrs["bn"]:
        specs.extend(batchnorm_weights(out.c))
    return specs


def term(attrs: Mapping[str, Any], c_in: int) -> str:
    """The breakdown term a conv belongs to: depthwise, pointwise (any 1x1 conv that is not
    depthwise, grouped ones included: ShuffleNet's group convs) or (standard) conv."""
    if is_depthwise(attrs, c_in):
        return "depthwise"
    if attrs["k"] == 1:
        return "pointwise"
    return "conv"


def _madds(attrs: Mapping[str, Any], ins: Sequence[Shape], out: Shape) -> dict[str, int]:
    c_in = ins[0].c
    per_output = (c_in // attrs["groups"]) * attrs["k"] * attrs["k"]
    return {term(attrs, c_in): out.numel * per_output}


def convolve(
    x: np.ndarray,
    weight: np.ndarray,
    s: int,
    groups: int,
    dilation: int,
    pad: int | None = None,
) -> np.ndarray:
    """Reference convolution of a (C, H, W) array, `pad` zeros on each side (default the
    symmetric SAME padding), float64 accumulation."""
    c, h, w = x.shape
    c_out, c_per_group, k, _ = weight.shape
    pad = padding(k, dilation) if pad is None else pad
    xp = np.pad(x.astype(np.float64), ((0, 0), (pad, pad), (pad, pad)))
    ho, wo = out_size(h, k, s, dilation, pad), out_size(w, k, s, dilation, pad)
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
    y = convolve(xs[0], w["weight"], attrs["s"], attrs["groups"], attrs["dilation"], pad_of(attrs))
    if attrs["bias"]:
        y = y + w["bias"][:, None, None]
    if attrs["bn"]:
        y = batchnorm(y, w, attrs["bn_eps"])
    return activate(y, attrs["act"])


def _fvcore(attrs: Mapping[str, Any], ins: Sequence[Shape], out: Shape) -> dict[str, int]:
    # fvcore counts an eval-mode BatchNorm as 2 operations per output element
    return {"batchnorm": 2 * out.numel} if attrs["bn"] else {}


def tf1_grid(n: int, k: int, dilation: int) -> int:
    """Outputs per spatial side that TensorFlow 1.x convolves for a stride-1 SAME conv dilated by
    r > 1 (`tf.nn.convolution`'s space-to-batch): the side padded by (k - 1)·r and up to a
    multiple of r, then r interleaved VALID convs: (ceil((n + (k - 1)·r) / r) - (k - 1))·r."""
    r = dilation
    return (-(-(n + (k - 1) * r) // r) - (k - 1)) * r


def _tf1(attrs: Mapping[str, Any], ins: Sequence[Shape], out: Shape) -> dict[str, int]:
    # the MAdds of the outputs space-to-batch computes beyond the true grid (later cropped)
    k, r = attrs["k"], attrs["dilation"]
    if attrs["s"] != 1 or r == 1 or pad_of(attrs) != padding(k, r):  # SAME convs only
        return {}
    grid = tf1_grid(out.h, k, r) * tf1_grid(out.w, k, r)
    per_output = (ins[0].c // attrs["groups"]) * k * k
    return {"space_to_batch": (grid - out.h * out.w) * out.c * per_output}


def _pytorch(attrs: Mapping[str, Any], ins: Sequence[Shape], out: Shape) -> dict[str, Any]:
    return {"c_in": ins[0].c, "padding": pad_of(attrs)}


def _onnx(attrs: Mapping[str, Any], ins: Sequence[Shape], out: Shape) -> dict[str, Any]:
    return {"pads": pad_of(attrs)}


def _keras(attrs: Mapping[str, Any], ins: Sequence[Shape], out: Shape) -> dict[str, Any]:
    c_in = ins[0].c
    depthwise = is_depthwise(attrs, c_in)
    # Keras' Conv2D refuses a stride together with a dilation (its DepthwiseConv2D does not):
    # such a conv runs at stride 1 and keeps every s-th pixel, which is the same function.
    subsample = attrs["s"] if attrs["s"] > 1 and attrs["dilation"] > 1 and not depthwise else 1
    stride = 1 if subsample > 1 else attrs["s"]
    # At stride 1 Keras' "same" padding is the symmetric dilation·(k−1)/2; a strided "same"
    # pads more at the end, so a strided conv gets explicit symmetric zero padding instead.
    # A VALID conv is Keras' "valid" (its default): no padding at all.
    valid = attrs.get("padding", "same") == "valid"
    pad = pad_of(attrs) if stride > 1 else 0
    return {
        "c_in": c_in,
        "depthwise": depthwise,
        "multiplier": depth_multiplier(attrs, c_in),
        "pad": pad,
        "same": stride == 1 and attrs["k"] > 1 and not valid,
        "conv_stride": stride,
        "subsample": subsample,
        "extra_layers": {"pad": pad > 0, "subsample": subsample > 1, "bn": attrs["bn"]},
    }


def c_variant(attrs: Mapping[str, Any], c_in: int) -> str:
    """The C kernel a conv runs on: depthwise (one output per input channel), pointwise (1x1,
    stride 1, one group) or direct (anything else)."""
    if is_depthwise(attrs, c_in) and depth_multiplier(attrs, c_in) == 1:
        return "depthwise"
    if attrs["k"] == 1 and attrs["s"] == 1 and attrs["groups"] == 1:
        return "pointwise"
    return "direct"


def _c(attrs: Mapping[str, Any], ins: Sequence[Shape], out: Shape) -> dict[str, Any]:
    x = ins[0]
    k, groups = attrs["k"], attrs["groups"]
    variant = c_variant(attrs, x.c)
    return {
        "variant": variant,
        "H": x.h,
        "W": x.w,
        "Cin": x.c,
        "Ho": out.h,
        "Wo": out.w,
        "Cout": out.c,
        "ksize": k,
        "s": attrs["s"],
        "d": attrs["dilation"],
        "pad": pad_of(attrs),
        "groups": groups,
        "cin_g": x.c // groups,
        "cout_g": out.c // groups,
        "weights": True,
        "helpers": ("clamp", "taps", variant) if variant != "pointwise" else ("clamp", variant),
    }


GRAPH_OP = GraphOp(
    "conv2d",
    _infer,
    _weights,
    _madds,
    _reference,
    terms=("conv", "depthwise", "pointwise", "batchnorm", "space_to_batch"),
    profiles={"fvcore": _fvcore, "tf1": _tf1},
    targets={"pytorch": _pytorch, "onnx": _onnx, "keras": _keras, "c": _c},
)


def _channels_text(c: int, count: Any) -> str:
    """Channels as the user can find them in the spec: with the written value when rounded."""
    if count is None or count.value != c or count.rounded_from is None:
        return str(c)
    if count.scaled == count.written:
        return f"{c}, rounded from the written {count.written}"
    return f"{c}: the written {count.written} × width, {count.rounded_from}, rounded"


def _check_groups(ctx: Any, row: Any, src: str, c_out: int) -> None:
    """groups must divide both channel counts; say what the user wrote and which field to fix."""
    g = row.fields["groups"]
    c_in = ctx.shape(src).c
    if c_in % g == 0 and c_out % g == 0:
        return
    in_count = ctx.counts.get(ctx.nodes[src].row)
    out_count = ctx.counts.get(row.index)
    field = "groups"
    hint = None
    if c_in % g == 0 and out_count is not None and out_count.rounded_from is not None:
        field = "c"
        hint = f"write a c that stays a multiple of {g} once rounded, or `scale: none`"
    ctx.fail(
        row,
        field,
        f"groups={g} must divide both the input channels ({_channels_text(c_in, in_count)}) "
        f"and the output channels ({_channels_text(c_out, out_count)})"
        + (f"; {hint}" if hint else ""),
    )


def _lower(ctx: Any, row: Any) -> None:
    f = row.fields
    c_out = ctx.channels(row, f["c"])
    bias = (not f["bn"]) if f["bias"] is None else f["bias"]
    src = ctx.source(row)
    _check_groups(ctx, row, src, c_out)
    valid = {"padding": "valid"} if f["padding"] == "valid" else {}
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
            ctx.spec.bn_eps,
        )
        src = ctx.emit(ctx.repeat_name(row, i), "conv2d", [src], {**attrs, **valid}, row=row)
    ctx.finish(row, src)


LAYER = LayerKind(
    "conv2d",
    "A full convolution (Table 2's conv2d rows; k: 1 for 1x1 convs).",
    (
        common.NAME,
        common.PART,
        common.FROM,
        Field("c", "channels", common.CHANNELS_DOC, required=True),
        common.KERNEL,
        common.STRIDE,
        common.REPEATS,
        Field("groups", "int", "Channel groups.", default=1, minimum=1, maximum=1 << 20),
        common.DILATION,
        Field(
            "padding",
            "choice",
            "`same`: pad dilation·(k−1)/2 on each side (ceil(size / s) outputs); `valid`: no "
            "padding (TF-slim's VALID convs, e.g. NASNet's stem: 224 → 111).",
            default="same",
            choices=("same", "valid"),
        ),
        common.ACT,
        common.BN,
        Field(
            "bias",
            "bool",
            "Add a bias (default: exactly when `bn: false`; with BatchNorm, its β is the bias).",
            default=None,
        ),
        common.SCALE,
    ),
    _lower,
    auto_prefix="conv",
)
