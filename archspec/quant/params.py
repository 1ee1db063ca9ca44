"""The int8 parameters of a network (DESIGN.md §4b) and the ops int8 supports.

Activations are int8, asymmetric, one scale and zero point per tensor (`TensorQ`); the weights of
every conv2d and fc node are int8, symmetric (zero point 0), one scale per output channel, with
int32 biases at scale input scale × weight scale (`WeightQ`, BatchNorm folded first).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from archspec.errors import SpecError
from archspec.graph import Graph

# The graph ops the int8 network computes (MobileNetV2 and ShuffleNet v1 use nothing else).
SUPPORTED_OPS = ("conv2d", "add", "concat", "avgpool", "maxpool", "fc", "shuffle")
# Activations int8 applies as the output clamp.
SUPPORTED_ACTS = ("linear", "relu", "relu6")
# Ops whose output holds only values of their input: they take their input's parameters.
PASS_THROUGH_OPS = ("maxpool", "shuffle", "shift", "upsample")


@dataclass(frozen=True)
class TensorQ:
    """One activation tensor: real = scale · (q − zero_point), q in [-128, 127]."""

    scale: float  # > 0, a float32 value (stored as float(np.float32(s)))
    zero_point: int  # in [-128, 127]


@dataclass(frozen=True)
class WeightQ:
    """One conv2d or fc node, BatchNorm folded: int8 weights in the node's canonical layout
    (conv OIHW, fc (out, in)) in [-127, 127], float32 per-output-channel scales (zero point 0),
    int32 biases at scale input scale × weight scale."""

    weight: np.ndarray
    scale: np.ndarray
    bias: np.ndarray


@dataclass(frozen=True)
class QParams:
    """Every activation tensor's parameters (the graph input's name and every node's name) and
    every conv2d / fc node's quantized weights."""

    activations: Mapping[str, TensorQ]
    weights: Mapping[str, WeightQ]


def check_supported(graph: Graph) -> None:
    """Refuse, with a located error, a graph int8 cannot compute: an op outside
    `SUPPORTED_OPS` or an activation outside `SUPPORTED_ACTS` (the first one in spec order)."""
    for node in graph.ops():
        if node.op not in SUPPORTED_OPS:
            raise SpecError(
                f"int8 does not support op {node.op} yet (node {node.name})",
                node.loc,
                "op",
                f"int8 supports {', '.join(SUPPORTED_OPS)}",
            )
        act = node.attrs.get("act", "linear")
        if act not in SUPPORTED_ACTS:
            raise SpecError(
                f"int8 does not support activation {act} yet (node {node.name})",
                node.loc,
                "act",
                f"int8 applies {', '.join(SUPPORTED_ACTS)} as a clamp",
            )


def activation_bounds(act: str, out: TensorQ) -> tuple[int, int]:
    """The int8 clamp of an activation at the output's parameters: ReLU → [q(0), 127],
    ReLU6 → [q(0), q(6)], linear → [-128, 127] (q rounds half to even, then saturates)."""
    lo, hi = -128, 127
    if act in ("relu", "relu6"):
        lo = max(lo, out.zero_point)
    if act == "relu6":
        six = out.zero_point + int(np.rint(6.0 / out.scale))
        hi = min(hi, six)
    return lo, hi
