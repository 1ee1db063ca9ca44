"""What several targets share: which tensors are held flat, and refusing foreign options."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from archspec.errors import SpecError
from archspec.graph import Graph
from archspec.ops import GRAPH_OPS


def flat_tensors(graph: Graph) -> frozenset[str]:
    """Tensors every target holds as (N, C) rather than with 1×1 spatial dimensions: outputs of
    flat-layout ops (fc), and of follow-layout ops (sums, concatenations) of nothing but flat
    tensors. Spatial consumers unflatten them, so all
    targets return the same output shapes."""
    flat: set[str] = set()
    for node in graph.ops():
        layout = GRAPH_OPS[node.op].layout
        if layout == "flat" or (layout == "follow" and all(i in flat for i in node.inputs)):
            flat.add(node.name)
    return frozenset(flat)


def reject_options(target: str, options: Mapping[str, Any]) -> None:
    """A build option meant for another target is a user error, not something to ignore."""
    for key in options:
        raise SpecError(
            f"option --{key} does not apply to the {target} target",
            None,
            f"--{key}",
            "--split is an option of the c target",
        )
