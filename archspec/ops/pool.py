"""What the pooling ops share: their window fields, padding and output size, and the numpy
windows their references reduce."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from archspec.ops.base import Field, Shape, ShapeError

WINDOW = Field("k", "int", "Window size.", default=None, minimum=1, maximum=64)
STRIDE = Field(
    "s", "int", "Stride (default: the window size).", default=None, minimum=1, maximum=64
)
PADDING = Field(
    "padding",
    "choice",
    "`same`: pad (k−1)/2 on each side, like every conv (ceil(size / s) outputs for odd k); "
    "`valid`: no padding.",
    default="same",
    choices=("same", "valid"),
)


def pad_of(attrs: Mapping[str, Any]) -> int:
    """Padding on each side of a windowed pool."""
    return (attrs["k"] - 1) // 2 if attrs["padding"] == "same" else 0


def out_size(size: int, k: int, s: int, pad: int) -> int:
    """Output size of a window k, stride s, padding pad on each side."""
    return (size + 2 * pad - k) // s + 1


def infer_window(attrs: Mapping[str, Any], x: Shape) -> Shape:
    """The output shape of a windowed pool; a window larger than the padded map is an error."""
    k, s, pad = attrs["k"], attrs["s"], pad_of(attrs)
    if k > x.h + 2 * pad or k > x.w + 2 * pad:
        raise ShapeError(f"pool window {k} is larger than the {x.h}×{x.w} feature map", "k")
    return Shape(x.c, out_size(x.h, k, s, pad), out_size(x.w, k, s, pad))


def windows(x: np.ndarray, attrs: Mapping[str, Any], fill: float) -> np.ndarray:
    """Every window of a (C, H, W) array, padded with `fill`: (k·k, C, Ho, Wo)."""
    k, s, pad = attrs["k"], attrs["s"], pad_of(attrs)
    c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad)), constant_values=fill)
    ho, wo = out_size(h, k, s, pad), out_size(w, k, s, pad)
    taps = [
        xp[:, i : i + s * (ho - 1) + 1 : s, j : j + s * (wo - 1) + 1 : s]
        for i in range(k)
        for j in range(k)
    ]
    return np.stack(taps)


def keras_window(attrs: Mapping[str, Any], symmetric_same: bool) -> dict[str, Any]:
    """How the Keras target pads a windowed pool: not at all, with Keras' own "same" (which is
    symmetric at stride 1 for odd windows; `symmetric_same` says whether its semantics are the
    op's), or through the module's own layer (`custom`)."""
    pad = pad_of(attrs)
    same = pad > 0 and symmetric_same and attrs["s"] == 1 and 2 * pad == attrs["k"] - 1
    return {"pad": pad, "same": same, "custom": pad > 0 and not same}


def lower_window(ctx: Any, row: Any, op: str, extra: Mapping[str, Any], expected: str) -> None:
    """Lower a pooling row: a window (k required unless `extra` makes it global) with a stride
    (default k) and padding; `expected` says what a row without `k` should have said."""
    f = row.fields
    if not extra.get("global") and f["k"] is None:
        ctx.fail(row, "k", f"found no window size; expected {expected}")
    k = f["k"] or 1
    attrs = {"k": k, "s": f["s"] or k, "padding": f["padding"], **extra}
    ctx.finish(row, ctx.emit(ctx.repeat_name(row, 0), op, [ctx.source(row)], attrs, row=row))
