"""The network input: a graph op with no inputs, weights or cost."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from archspec.ops.base import GraphOp, Shape, no_madds, no_weights


def _infer(attrs: Mapping[str, Any], ins: Sequence[Shape]) -> Shape:
    return Shape(attrs["c"], attrs["h"], attrs["w"])


def _reference(attrs: Mapping[str, Any], xs: Sequence[np.ndarray], w: Mapping[str, np.ndarray]):
    raise RuntimeError("the input node is fed, not computed")


# The input is fed, not rendered: each target's model template writes it (no fragments).
GRAPH_OP = GraphOp(
    "input",
    _infer,
    no_weights,
    no_madds,
    _reference,
    profiles={"fvcore": no_madds, "tf1": no_madds},
    min_inputs=0,
    max_inputs=0,
)
