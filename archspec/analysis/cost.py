"""Parameters and MAdds per layer and in total, under named counting profiles.

`slim` (the default) reproduces the TF-slim MobileNetV2 table and the paper: conv, depthwise and
fully-connected multiply-accumulates only. `fvcore` adds the terms fvcore's FlopCountAnalysis
counts on an eval-mode PyTorch model (BatchNorm 2 per element, adaptive average pooling 1 per input
element, bilinear upsampling 4 per output element, nearest 1), so its total can be compared with
fvcore's number term by term. `tf1` counts a stride-1 SAME conv dilated by r > 1 on the larger
grid TensorFlow 1.x's space-to-batch convolves (the term `space_to_batch`: the outputs beyond the
true grid), as the paper's Table 7 does. Each op declares its terms under every profile in its
module; a total is the sum of every term the ops report.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from archspec.graph import GNode, Graph
from archspec.ops import GRAPH_OPS, TERMS
from archspec.ops.base import COUNTING_PROFILES, Shape

TRAINABLE = ("weight", "bias")
BN_TRAINABLE = ("bn_gamma", "bn_beta")
BN_BUFFERS = ("bn_mean", "bn_var")


PROFILES: tuple[str, ...] = COUNTING_PROFILES
TERM_ORDER: tuple[str, ...] = TERMS


@dataclass(frozen=True)
class LayerCost:
    """Cost of one graph node."""

    name: str
    op: str
    row: int
    block: str | None
    role: str | None
    part: str
    input_shapes: tuple[Shape, ...]
    output_shape: Shape
    terms: Mapping[str, int]
    params: int
    params_with_bn: int
    bn_buffers: int

    @property
    def madds(self) -> int:
        """All MAdds of this node under the profile."""
        return sum(self.terms.values())


@dataclass(frozen=True)
class PartCost:
    """The subtotal of one part of the network (the nodes of the rows with that `part`)."""

    madds: int
    params: int
    params_with_bn: int


@dataclass(frozen=True)
class CostReport:
    """Per-layer costs and totals of a graph under one counting profile."""

    profile: str
    layers: tuple[LayerCost, ...]
    madds: int
    params: int
    params_with_bn: int
    bn_buffers: int
    terms: Mapping[str, int]
    parts: Mapping[str, PartCost]

    @property
    def keras_count_params(self) -> int:
        """What Keras' `count_params()` reports: BatchNorm moving statistics included."""
        return self.params_with_bn + self.bn_buffers


def layer_cost(graph: Graph, node: GNode, profile: str = "slim") -> LayerCost:
    """Cost of one node of `graph` under `profile`."""
    ins = graph.input_shapes(node)
    op = GRAPH_OPS[node.op]
    terms = dict(op.madds(node.attrs, ins, node.shape))
    if profile != "slim":
        for key, value in op.profiles[profile](node.attrs, ins, node.shape).items():
            terms[key] = terms.get(key, 0) + value
    if any(key not in op.terms for key in terms):
        undeclared = sorted(set(terms) - set(op.terms))
        raise RuntimeError(f"op {op.name!r} reports undeclared terms {undeclared}")
    params = bn_params = bn_buffers = 0
    for w in graph.weights(node):
        count = math.prod(w.shape)
        if w.kind in TRAINABLE:
            params += count
        elif w.kind in BN_TRAINABLE:
            bn_params += count
        else:
            bn_buffers += count
    return LayerCost(
        name=node.name,
        op=node.op,
        row=node.row,
        block=node.block,
        role=node.role,
        part=node.part,
        input_shapes=tuple(ins),
        output_shape=node.shape,
        terms=MappingProxyType(terms),
        params=params,
        params_with_bn=params + bn_params,
        bn_buffers=bn_buffers,
    )


def analyze_cost(graph: Graph, profile: str = "slim") -> CostReport:
    """Params and MAdds of every node and in total. Raises KeyError for an unknown profile."""
    if profile not in PROFILES:
        raise KeyError(f"unknown counting profile {profile!r}; expected one of {list(PROFILES)}")
    layers = tuple(layer_cost(graph, node, profile) for node in graph.ops())
    terms: dict[str, int] = {}
    for layer in layers:
        for key, value in layer.terms.items():
            terms[key] = terms.get(key, 0) + value
    # registry order first; terms of ops registered later (plugins, the TEMPLATE op) after
    order = [k for k in TERM_ORDER if k in terms] + [k for k in terms if k not in TERM_ORDER]
    ordered = {k: terms[k] for k in order}
    sums: dict[str, list[int]] = {}
    for layer in layers:  # in order of first appearance
        total = sums.setdefault(layer.part, [0, 0, 0])
        total[0] += layer.madds
        total[1] += layer.params
        total[2] += layer.params_with_bn
    parts = {name: PartCost(*total) for name, total in sums.items()}
    return CostReport(
        profile=profile,
        layers=layers,
        madds=sum(total[0] for total in sums.values()),
        params=sum(x.params for x in layers),
        params_with_bn=sum(x.params_with_bn for x in layers),
        bn_buffers=sum(x.bn_buffers for x in layers),
        terms=MappingProxyType(ordered),
        parts=MappingProxyType(parts),
    )
