"""Code-generation targets: what each target's templates are given.

Every target finds an op's knowledge and its fragment the same way, keyed by op name: the op's
context for the target (`GraphOp.targets[target]`, in the op's module) and the template
`FRAGMENTS[target]` formatted with the op's name. Both are checked against the op registry when
this package is imported: a missing piece is an error naming the op and the target.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from archspec.activations import TARGETS
from archspec.graph import GNode, Graph
from archspec.ops import BLOCK_KINDS, GRAPH_OPS
from archspec.templating import templates_root

FRAGMENTS: Mapping[str, str] = {
    "pytorch": "pytorch/ops/{op}.py.j2",
    "keras": "keras/ops/{op}.py.j2",
    "onnx": "onnx/ops/{op}.onnxtxt.j2",
    "c": "c/ops/{op}.c.j2",
}
# Fusable block kinds (`archspec.ops.BLOCK_KINDS`) that a target renders as one unit of its own
# (the PyTorch target: a block class per kind), keyed by block kind like the op fragments.
BLOCK_FRAGMENTS: Mapping[str, str] = {"pytorch": "pytorch/blocks/{kind}.py.j2"}
# Ops that no target renders through a fragment: the network input, which each target's model
# template writes itself.
UNRENDERED = frozenset({"input"})


def fragment(target: str, op: str) -> str:
    """The template path of `op`'s fragment for `target`."""
    return FRAGMENTS[target].format(op=op)


def block_fragment(target: str, kind: str) -> str:
    """The template path of block kind `kind`'s fragment for `target`."""
    return BLOCK_FRAGMENTS[target].format(kind=kind)


def op_context(target: str, graph: Graph, node: GNode) -> dict[str, Any]:
    """What `target` needs to know about `node` beyond formatting, from its op's module."""
    op = GRAPH_OPS[node.op]
    return op.targets[target](node.attrs, graph.input_shapes(node), node.shape)


def missing_pieces() -> list[str]:
    """Every op × target whose context or fragment is missing (empty when all is there)."""
    root = templates_root()
    problems = []
    for target in TARGETS:
        if target not in FRAGMENTS:
            problems.append(f"target {target} has no fragment pattern")
            continue
        for name, op in GRAPH_OPS.items():
            if name in UNRENDERED:
                continue
            if target not in op.targets:
                problems.append(f"op {name!r} has no context for target {target}")
            if not (root / fragment(target, name)).is_file():
                problems.append(f"op {name!r} has no {target} fragment {fragment(target, name)}")
    for target in BLOCK_FRAGMENTS:
        for kind in BLOCK_KINDS:
            if not (root / block_fragment(target, kind)).is_file():
                path = block_fragment(target, kind)
                problems.append(f"block kind {kind!r} has no {target} fragment {path}")
    return problems


def _check() -> None:
    problems = missing_pieces()
    if problems:
        raise RuntimeError("incomplete op kit: " + "; ".join(problems))


_check()
