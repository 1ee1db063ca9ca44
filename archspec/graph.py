"""The compute graph: a frozen networkx DiGraph of ops, each producing one tensor.

Every node carries a `GNode` (attribute ``"node"``): its op, ordered inputs, inferred output
shape and attributes. Edges run producer → consumer. `Graph.nodes` is the spec's own
(topological) order; bottleneck blocks are listed in `Graph.blocks`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import networkx as nx

from archspec.errors import Location
from archspec.ops import GRAPH_OPS
from archspec.ops.base import Role, Shape, WeightSpec
from archspec.ops.common import DEFAULT_PART
from archspec.spec import Spec

INPUT = "input"


@dataclass(frozen=True)
class GNode:
    """One op of the graph and the tensor it produces (named like the op)."""

    name: str
    op: str
    inputs: tuple[str, ...]
    shape: Shape
    attrs: Mapping[str, Any]
    row: int  # index of the spec row it came from (-1 for the input)
    block: str | None
    role: Role | None
    loc: Location
    part: str = DEFAULT_PART  # the row's `part` (reports subtotal per part)
    # its weight arrays, computed once while lowering (None: compute them from the op)
    weight_specs: tuple[WeightSpec, ...] | None = None


@dataclass(frozen=True)
class Block:
    """One fusable block (the fused op of the memory model and the C target); `kind` names its
    declaration in `archspec.ops.BLOCK_KINDS`."""

    name: str
    row: int
    input: str
    output: str
    nodes: tuple[str, ...]
    t: int  # the expansion factor of a bottleneck row (0 for other kinds)
    residual: bool
    kind: str = "bottleneck"

    def members(self, graph: Graph) -> dict[Role, GNode]:
        """The block's nodes by the role they play."""
        found = {}
        for name in self.nodes:
            node = graph.node(name)
            if node.role is not None:
                found[node.role] = node
        return found


@dataclass(frozen=True)
class Graph:
    """A lowered spec: nodes in spec order, blocks, outputs and the frozen networkx graph."""

    spec: Spec
    nodes: tuple[GNode, ...]
    blocks: tuple[Block, ...]
    outputs: tuple[str, ...]
    row_outputs: Mapping[int, str]
    by_name: Mapping[str, GNode]
    readers: Mapping[str, tuple[str, ...]]  # tensor -> consuming nodes, in spec order

    @cached_property
    def nx(self) -> nx.DiGraph:
        """The graph as a frozen networkx DiGraph (nodes carry `node` and `position`); built on
        first use, since sweeps that only count costs never need it."""
        g = nx.DiGraph()
        for position, node in enumerate(self.nodes):
            g.add_node(node.name, node=node, position=position)
            for src in node.inputs:
                g.add_edge(src, node.name)
        return nx.freeze(g)

    @property
    def name(self) -> str:
        """The network's name."""
        return self.spec.name

    def node(self, name: str) -> GNode:
        """The node called `name`."""
        return self.by_name[name]

    def row_output(self, name: str) -> GNode:
        """The node holding the output of the row named `name` (or the node of that name)."""
        for row in self.spec.rows:
            if row.name == name:
                return self.node(self.row_outputs[row.index])
        return self.node(name)

    def ops(self) -> Iterator[GNode]:
        """Every node but the input, in spec order."""
        return (n for n in self.nodes if n.op != "input")

    def input_shapes(self, node: GNode) -> list[Shape]:
        """Shapes of a node's inputs, in input order."""
        return [self.by_name[i].shape for i in node.inputs]

    def consumers(self, name: str) -> list[str]:
        """Nodes that read the tensor `name`, in spec order."""
        return list(self.readers.get(name, ()))

    def weights(self, node: GNode) -> list[WeightSpec]:
        """The weight arrays of a node in the canonical layout."""
        if node.weight_specs is not None:
            return list(node.weight_specs)
        return GRAPH_OPS[node.op].weights(node.attrs, self.input_shapes(node), node.shape)

    def block_of(self, name: str) -> Block | None:
        """The block a node belongs to, if any."""
        block = self.node(name).block
        return next((b for b in self.blocks if b.name == block), None) if block else None

    @property
    def input(self) -> GNode:
        """The network input node."""
        return self.nodes[0]


def weight_key(node: str, weight: str) -> str:
    """The canonical key of a weight array in a weights file: `<node>.<weight>`."""
    return f"{node}.{weight}"
