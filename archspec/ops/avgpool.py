"""avgpool: average pooling, global (output 1×1) or windowed.

A window pads like every conv by default (`padding: same`, (k−1)/2 on each side); the average
is over the window's real pixels (TensorFlow's convention, `count_pad: false`) or over all k·k
taps, padding included (PyTorch's default, `count_pad: true`, as megvii's ShuffleNet uses).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from archspec.ops import common, pool
from archspec.ops.base import Field, GraphOp, LayerKind, Shape, no_madds, no_weights


def _infer(attrs: Mapping[str, Any], ins: Sequence[Shape]) -> Shape:
    (x,) = ins
    if attrs["global"]:
        return Shape(x.c, 1, 1)
    return pool.infer_window(attrs, x)


def pool_elements(attrs: Mapping[str, Any], ins: Sequence[Shape], out: Shape) -> int:
    """Elements read by the pool (what fvcore-style profiles count)."""
    return ins[0].numel


def counts(attrs: Mapping[str, Any], h: int, w: int) -> np.ndarray:
    """The divisor of each output pixel of a windowed pool over an h×w map: k·k with
    `count_pad`, else the number of real pixels in its window."""
    ones = np.ones((1, h, w))
    n = pool.windows(ones, attrs, 0.0).sum(axis=0)[0]
    return np.full_like(n, attrs["k"] ** 2) if attrs["count_pad"] else n


def _reference(
    attrs: Mapping[str, Any], xs: Sequence[np.ndarray], w: Mapping[str, np.ndarray]
) -> np.ndarray:
    x = xs[0].astype(np.float64)
    if attrs["global"]:
        return x.mean(axis=(1, 2), keepdims=True)
    total = pool.windows(x, attrs, 0.0).sum(axis=0)
    return total / counts(attrs, x.shape[1], x.shape[2])[None]


def _no_madds(attrs: Mapping[str, Any], ins: Sequence[Shape], out: Shape) -> dict[str, int]:
    return {}  # pooling costs no multiply-accumulates under slim


def _fvcore(attrs: Mapping[str, Any], ins: Sequence[Shape], out: Shape) -> dict[str, int]:
    # fvcore counts adaptive (global) average pooling as one operation per input element
    return {"pool": pool_elements(attrs, ins, out)} if attrs["global"] else {}


def _common(attrs: Mapping[str, Any], ins: Sequence[Shape], out: Shape) -> dict[str, Any]:
    return {"is_global": attrs["global"], "pad": 0 if attrs["global"] else pool.pad_of(attrs)}


def _keras(attrs: Mapping[str, Any], ins: Sequence[Shape], out: Shape) -> dict[str, Any]:
    if attrs["global"]:
        return {"is_global": True, "pad": 0, "same": False, "custom": False}
    # Keras' own "same" averages over real pixels: the op's rule unless it counts padding
    return {"is_global": False, **pool.keras_window(attrs, not attrs["count_pad"])}


def _c(attrs: Mapping[str, Any], ins: Sequence[Shape], out: Shape) -> dict[str, Any]:
    x = ins[0]
    glob = bool(attrs["global"])
    params = {
        "global": glob,
        "H": x.h,
        "W": x.w,
        "C": x.c,
        "Ho": out.h,
        "Wo": out.w,
        "ksize": attrs["k"],
        "s": attrs["s"],
        "scale": 1.0 / (x.h * x.w if glob else attrs["k"] * attrs["k"]),
    }
    pad = 0 if glob else pool.pad_of(attrs)
    if pad:  # the padded kernel skips taps outside the map and divides by `count_pad`'s rule
        params.update(pad=pad, count_pad=bool(attrs["count_pad"]))
    return params


GRAPH_OP = GraphOp(
    "avgpool",
    _infer,
    no_weights,
    _no_madds,
    _reference,
    terms=("pool",),
    profiles={"fvcore": _fvcore, "tf1": no_madds},
    targets={"pytorch": _common, "onnx": _common, "keras": _keras, "c": _c},
)


def _lower(ctx: Any, row: Any) -> None:
    extra = {"global": row.fields["global"], "count_pad": row.fields["count_pad"]}
    pool.lower_window(ctx, row, "avgpool", extra, "`k` or `global: true`")


LAYER = LayerKind(
    "avgpool",
    "Average pooling: `global: true` (Table 2's avgpool 7x7) or a k×k window with stride s.",
    (
        common.NAME,
        common.PART,
        common.FROM,
        Field("global", "bool", "Pool the whole feature map to 1×1.", default=False),
        pool.WINDOW,
        pool.STRIDE,
        pool.PADDING,
        Field(
            "count_pad",
            "bool",
            "Divide by k·k, padding included (PyTorch's default); false: by the window's real "
            "pixels (TensorFlow's).",
            default=False,
        ),
    ),
    _lower,
    auto_prefix="pool",
)
