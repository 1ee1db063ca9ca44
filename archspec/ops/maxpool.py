"""maxpool: max pooling over k×k windows with stride s (ShuffleNet's and NASNet's 3x3 pools).

Padding follows the convs (`padding: same`, (k−1)/2 on each side); padded taps never win (they
count as −∞).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from archspec.ops import common, pool
from archspec.ops.base import GraphOp, LayerKind, Shape, no_madds, no_weights


def _infer(attrs: Mapping[str, Any], ins: Sequence[Shape]) -> Shape:
    return pool.infer_window(attrs, ins[0])


def _reference(
    attrs: Mapping[str, Any], xs: Sequence[np.ndarray], w: Mapping[str, np.ndarray]
) -> np.ndarray:
    return pool.windows(xs[0].astype(np.float64), attrs, -np.inf).max(axis=0)


def _common(attrs: Mapping[str, Any], ins: Sequence[Shape], out: Shape) -> dict[str, Any]:
    return {"pad": pool.pad_of(attrs)}


def _keras(attrs: Mapping[str, Any], ins: Sequence[Shape], out: Shape) -> dict[str, Any]:
    return pool.keras_window(attrs, True)  # padded taps never win, in Keras' "same" too


def _c(attrs: Mapping[str, Any], ins: Sequence[Shape], out: Shape) -> dict[str, Any]:
    x = ins[0]
    return {
        "H": x.h,
        "W": x.w,
        "C": x.c,
        "Ho": out.h,
        "Wo": out.w,
        "ksize": attrs["k"],
        "s": attrs["s"],
        "pad": pool.pad_of(attrs),
    }


GRAPH_OP = GraphOp(
    "maxpool",
    _infer,
    no_weights,
    no_madds,
    _reference,
    profiles={"fvcore": no_madds, "tf1": no_madds},  # fvcore does not count max pooling
    targets={"pytorch": _common, "onnx": _common, "keras": _keras, "c": _c},
)


def _lower(ctx: Any, row: Any) -> None:
    pool.lower_window(ctx, row, "maxpool", {}, "`k`")


LAYER = LayerKind(
    "maxpool",
    "Max pooling over a k×k window with stride s (default k).",
    (common.NAME, common.PART, common.FROM, pool.WINDOW, pool.STRIDE, pool.PADDING),
    _lower,
    auto_prefix="maxpool",
)
