"""The op registry: one explicit import line per op module (no directory scanning)."""

from __future__ import annotations

from archspec.ops import add, avgpool, bottleneck, concat, conv2d, dwconv, fc, upsample
from archspec.ops import input as input_op
from archspec.ops.base import GraphOp, LayerKind, Shape, ShapeError, WeightSpec

GRAPH_OPS: dict[str, GraphOp] = {
    m.GRAPH_OP.name: m.GRAPH_OP for m in (input_op, conv2d, avgpool, fc, add, concat, upsample)
}

LAYER_KINDS: dict[str, LayerKind] = {
    m.LAYER.name: m.LAYER for m in (conv2d, dwconv, bottleneck, avgpool, fc, add, concat, upsample)
}

__all__ = ["GRAPH_OPS", "LAYER_KINDS", "GraphOp", "LayerKind", "Shape", "ShapeError", "WeightSpec"]
