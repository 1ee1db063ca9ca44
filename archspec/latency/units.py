"""What a latency table times: a graph's units (the ops of the fused memory model, which are the
C target's steps: a fusable block, a stem conv fused with its first block, or a single op), each
as a one-unit graph of its own, and a content hash of any graph that ignores node names.

A unit graph keeps its members' ops, attributes and shapes, reads one fresh network input of
the unit's input shape, and names its nodes `u0`, `u1`, ... in execution order, so that the same
configuration anywhere in any variant gives the same graph and the same digest.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from archspec.analysis.memory import FusedOp, fused_ops
from archspec.errors import SpecError
from archspec.graph import INPUT, Block, GNode, Graph
from archspec.options import Split

FIRST_LAYER_TRICK = True  # units follow the C target's plan: the stem conv joins its block


@dataclass(frozen=True)
class Unit:
    """One unit of a graph: its fused op, its one-unit graph and that graph's digest."""

    op: FusedOp
    graph: Graph
    digest: str

    @property
    def kind(self) -> str:
        """`op` (one graph node), `block` or `stem_block`."""
        return self.op.kind


def _plain(value: Any) -> Any:
    """An attribute value as JSON data (tuples as lists; anything else by its repr)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in sorted(value.items())}
    return repr(value)


def signature(graph: Graph) -> dict[str, Any]:
    """A graph as plain data without node names: each node's op, attributes, output shape and
    inputs (as indices into the node list), the blocks by node indices, and the outputs."""
    index = {n.name: i for i, n in enumerate(graph.nodes)}
    nodes = [
        {
            "op": n.op,
            "attrs": _plain(dict(n.attrs)),
            "shape": [n.shape.c, n.shape.h, n.shape.w],
            "inputs": [index[i] for i in n.inputs],
            "role": n.role,
        }
        for n in graph.nodes
    ]
    blocks = [
        {
            "kind": b.kind,
            "nodes": [index[m] for m in b.nodes],
            "input": index[b.input],
            "output": index[b.output],
            "t": b.t,
            "residual": b.residual,
        }
        for b in graph.blocks
    ]
    return {"nodes": nodes, "blocks": blocks, "outputs": [index[o] for o in graph.outputs]}


def canonical_json(data: Any) -> str:
    """Sorted-key, separator-stable JSON: the text a digest is taken of."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def digest_of(data: Any) -> str:
    """The first 16 hex digits of the SHA-256 of `data`'s canonical JSON."""
    return hashlib.sha256(canonical_json(data).encode()).hexdigest()[:16]


def graph_digest(graph: Graph) -> str:
    """The content hash of a graph (node names do not count)."""
    return digest_of(signature(graph))


def graph_units(graph: Graph, split: Split = 1) -> tuple[FusedOp, ...]:
    """The units of `graph` in execution (spec) order: the fused memory model's ops with the
    first-layer trick, as the C target runs them."""
    return fused_ops(graph, "fused", split, FIRST_LAYER_TRICK)


def unit_graph(graph: Graph, fo: FusedOp) -> Graph:
    """The one-unit graph of `fo` (see the module docstring). Raises `SpecError` for a unit that
    reads more than one tensor from outside itself (the targets take one network input)."""
    members = [graph.node(m) for m in fo.nodes]
    inside = set(fo.nodes)
    outside = list(dict.fromkeys(s for m in members for s in m.inputs if s not in inside))
    if len(outside) != 1:
        first = members[0]
        raise SpecError(
            f"{fo.name} reads {len(outside)} tensors from outside itself "
            f"({', '.join(outside)}); a latency unit must read exactly one",
            first.loc,
            f"layers[{first.row}]",
            "per-unit timing covers chains of single-input ops and blocks",
        )
    src = graph.node(outside[0])
    rename = {m.name: f"u{i}" for i, m in enumerate(members)}
    rename[src.name] = INPUT
    block = next((b for b in graph.blocks if b.name == fo.block), None)
    block_name = "ublock"
    shape = src.shape
    nodes = [
        GNode(
            INPUT,
            "input",
            (),
            shape,
            MappingProxyType({"c": shape.c, "h": shape.h, "w": shape.w}),
            -1,
            None,
            None,
            src.loc,
        )
    ]
    for m in members:
        in_block = block is not None and m.name in block.nodes
        nodes.append(
            dataclasses.replace(
                m,
                name=rename[m.name],
                inputs=tuple(rename[i] for i in m.inputs),
                row=0,
                block=block_name if in_block else None,
            )
        )
    blocks: tuple[Block, ...] = ()
    if block is not None:
        blocks = (
            Block(
                block_name,
                0,
                rename[block.input],
                rename[block.output],
                tuple(rename[n] for n in block.nodes),
                block.t,
                block.residual,
                block.kind,
            ),
        )
    by_name = {n.name: n for n in nodes}
    readers: dict[str, list[str]] = {}
    for n in nodes:
        for s in dict.fromkeys(n.inputs):
            readers.setdefault(s, []).append(n.name)
    output = rename[fo.output_node]
    return Graph(
        dataclasses.replace(graph.spec, name="unit", outputs=None),
        tuple(nodes),
        blocks,
        (output,),
        MappingProxyType({0: output}),
        MappingProxyType(by_name),
        MappingProxyType({k: tuple(v) for k, v in readers.items()}),
    )


def named(graph: Graph, digest: str) -> Graph:
    """`graph` under the name `g_<digest>` (the C target's identifier, the ONNX graph name)."""
    return dataclasses.replace(graph, spec=dataclasses.replace(graph.spec, name=f"g_{digest}"))


def units_of(graph: Graph, split: Split = 1) -> list[Unit]:
    """Every unit of `graph`, in execution order, with its one-unit graph and digest."""
    out = []
    for fo in graph_units(graph, split):
        g = unit_graph(graph, fo)
        out.append(Unit(fo, g, graph_digest(g)))
    return out


def describe(unit: Unit) -> dict[str, Any]:
    """What a table entry shows of its unit: kind, block kind or op, input shape (C, H, W),
    output shape, and each member's op with its attributes."""
    g = unit.graph
    x = g.input.shape
    out = g.node(g.outputs[0]).shape
    members = [n for n in g.ops()]
    what = g.blocks[0].kind if g.blocks else members[0].op
    return {
        "kind": unit.kind,
        "what": what,
        "input_shape": [x.c, x.h, x.w],
        "output_shape": [out.c, out.h, out.w],
        "ops": [{"op": n.op, **_plain(dict(n.attrs))} for n in members],
    }
