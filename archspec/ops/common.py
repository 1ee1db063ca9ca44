"""Fields and helpers shared by several layer kinds (one definition, many rows)."""

from __future__ import annotations

from archspec.activations import ACTIVATIONS
from archspec.ops.base import Field

NAME = Field("name", "name", "Name of the row; later rows refer to it in `from`.")
FROM = Field("from", "refs", "Input row name(s); default: the previous row.")
DEFAULT_PART = "backbone"
PART = Field(
    "part",
    "name",
    "The part of the network this row belongs to (`backbone`, `head`, ...): reports give a "
    f"subtotal per part. Default: `{DEFAULT_PART}`.",
)
ACT = Field(
    "act",
    "choice",
    "Activation after the (BatchNorm of the) op.",
    default="relu6",
    choices=ACTIVATIONS,
)
STRIDE = Field(
    "s", "int", "Stride of the first repeat (paper's s).", default=1, minimum=1, maximum=8
)
REPEATS = Field(
    "n",
    "int",
    "Number of repeats (paper's n); only the first is strided.",
    default=1,
    minimum=1,
    maximum=64,
)
KERNEL = Field("k", "int", "Kernel size (odd).", default=3, minimum=1, maximum=15)
DILATION = Field(
    "dilation", "int", "Dilation of the spatial kernel.", default=1, minimum=1, maximum=32
)
SCALE = Field(
    "scale",
    "choice",
    "How the width multiplier applies to c: `width` (always), `last_layer` (only when the "
    "multiplier is above 1, paper §4), `none`.",
    default="width",
    choices=("width", "last_layer", "none"),
)
CHANNELS_DOC = (
    "Output channels: a width (an integer, scaled by the width multiplier as `scale` says, then "
    "rounded to the spec's divisor), or a count, never scaled nor rounded (whatever `scale` says): "
    "`num_classes` or an "
    "integer expression of the header's integer fields (`3 * num_classes`, "
    "`(num_classes + 1) * 6`; +, -, *, //)."
)
BN = Field("bn", "bool", "BatchNorm after the conv (folded at deployment).", default=True)


def conv_attrs(
    c_out: int,
    k: int,
    s: int,
    groups: int,
    dilation: int,
    act: str,
    bn: bool,
    bias: bool,
    bn_eps: float,
) -> dict[str, object]:
    """The attribute set of a conv2d graph node."""
    return {
        "c_out": c_out,
        "k": k,
        "s": s,
        "groups": groups,
        "dilation": dilation,
        "act": act,
        "bn": bn,
        "bias": bias,
        "bn_eps": bn_eps,
    }
