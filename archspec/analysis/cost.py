"""Parameters and MAdds per layer and in total, under named counting profiles.

`slim` (the default) reproduces the TF-slim MobileNetV2 table and the paper: conv, depthwise and
fully-connected multiply-accumulates only. `fvcore` adds the terms fvcore's FlopCountAnalysis
counts on an eval-mode PyTorch model (BatchNorm 2 per element, adaptive average pooling 1 per input
element, bilinear upsampling 4 per output element, nearest 1), so its total can be compared with
fvcore's number term by term.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from archspec.graph import GNode, Graph
from archspec.ops import GRAPH_OPS
from archspec.ops.base import Shape

TRAINABLE = ("weight", "bias")
BN_TRAINABLE = ("bn_gamma", "bn_beta")
BN_BUFFERS = ("bn_mean", "bn_var")


def _fvcore_extra(node: GNode, ins: list[Shape]) -> dict[str, int]:
    extra: dict[str, int] = {}
    if node.op == "conv2d" and node.attrs["bn"]:
        extra["batchnorm"] = 2 * node.shape.numel
    elif node.op == "avgpool" and node.attrs["global"]:
        extra["pool"] = ins[0].numel
    elif node.op == "upsample":
        extra["upsample"] = node.shape.numel * (4 if node.attrs["mode"] == "bilinear" else 1)
    return extra


def _no_extra(node: GNode, ins: list[Shape]) -> dict[str, int]:
    return {}


PROFILES: Mapping[str, Callable[[GNode, list[Shape]], dict[str, int]]] = MappingProxyType(
    {"slim": _no_extra, "fvcore": _fvcore_extra}
)
TERM_ORDER = ("conv", "depthwise", "pointwise", "fc", "batchnorm", "pool", "upsample")


@dataclass(frozen=True)
class LayerCost:
    """Cost of one graph node."""

    name: str
    op: str
    row: int
    block: str | None
    role: str | None
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
class CostReport:
    """Per-layer costs and totals of a graph under one counting profile."""

    profile: str
    layers: tuple[LayerCost, ...]
    madds: int
    params: int
    params_with_bn: int
    bn_buffers: int
    terms: Mapping[str, int]

    @property
    def keras_count_params(self) -> int:
        """What Keras' `count_params()` reports: BatchNorm moving statistics included."""
        return self.params_with_bn + self.bn_buffers


def layer_cost(graph: Graph, node: GNode, profile: str = "slim") -> LayerCost:
    """Cost of one node of `graph` under `profile`."""
    ins = graph.input_shapes(node)
    op = GRAPH_OPS[node.op]
    terms = op.madds(node.attrs, ins, node.shape)
    extra = PROFILES[profile](node, ins)
    if extra:
        terms = dict(terms)
        for key, value in extra.items():
            terms[key] = terms.get(key, 0) + value
    params = bn_params = bn_buffers = 0
    for w in op.weights(node.attrs, ins, node.shape):
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
    ordered = {k: terms[k] for k in TERM_ORDER if k in terms}
    return CostReport(
        profile=profile,
        layers=layers,
        madds=sum(ordered.values()),
        params=sum(x.params for x in layers),
        params_with_bn=sum(x.params_with_bn for x in layers),
        bn_buffers=sum(x.bn_buffers for x in layers),
        terms=MappingProxyType(ordered),
    )
