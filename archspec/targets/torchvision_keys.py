"""Where torchvision's `mobilenet_v2` keeps each node's weights, for MobileNetV2-like specs.

torchvision's layout: `features.<i>` for the stem conv (i = 0), each inverted residual and the
last conv, in order; a conv + BatchNorm is `<f>.0` (the conv) and `<f>.1` (the BatchNorm); inside
an inverted residual `<f>.conv.<j>` holds the expansion and depthwise conv + BatchNorm pairs (j =
0, 1), then the projection's conv and BatchNorm as two entries of their own; the classifier's
`nn.Linear` is `classifier.1` (after a Dropout). A spec has this layout when it is a chain of a
conv, inverted residuals and a conv (all with BatchNorm, no bias), a global average pool and an
fc with a bias.
"""

from __future__ import annotations

from collections.abc import Mapping

from archspec.graph import Graph
from archspec.ops.base import Role

# (node, torchvision's module of its conv (or of the fc's Linear), of its BatchNorm or None)
Entry = tuple[str, str, str | None]


def _conv_ok(attrs: Mapping[str, object]) -> bool:
    return bool(attrs["bn"]) and not attrs["bias"]


def torchvision_modules(graph: Graph, paths: Mapping[str, str]) -> list[Entry]:
    """Every node with weights and its torchvision modules; empty when the spec does not have
    torchvision's MobileNetV2 layout. `paths` are the nodes with weights."""
    ops = list(graph.ops())
    if len(ops) < 4 or [n.op for n in ops[-2:]] != ["avgpool", "fc"]:
        return []
    pool, fc = ops[-2:]
    if not pool.attrs["global"] or not fc.attrs["bias"]:
        return []
    out: list[Entry] = []
    feature = 0
    done: set[str] = set()
    for node in ops[:-2]:
        if node.name in done:
            continue
        block = graph.block_of(node.name)
        if block is None:
            if node.op != "conv2d" or not _conv_ok(node.attrs):
                return []
            out.append((node.name, f"features.{feature}.0", f"features.{feature}.1"))
        elif block.kind == "bottleneck":
            members = block.members(graph)
            pairs = [members[r] for r in (Role.EXPAND, Role.DWISE) if r in members]
            base = f"features.{feature}.conv"
            for j, member in enumerate(pairs):
                out.append((member.name, f"{base}.{j}.0", f"{base}.{j}.1"))
            project = members[Role.PROJECT]
            out.append((project.name, f"{base}.{len(pairs)}", f"{base}.{len(pairs) + 1}"))
            if not all(_conv_ok(m.attrs) for m in (*pairs, project)):
                return []
            done |= set(block.nodes)
        else:
            return []
        feature += 1
    convs = [i for i, (n, conv, _) in enumerate(out) if conv.count(".") == 2]  # features.<i>.0
    if convs != [0, len(out) - 1] or len(out) < 3:  # a conv, inverted residuals, a conv
        return []
    out.append((fc.name, "classifier.1", None))
    if {n for n, _, _ in out} != set(paths):
        return []
    return out
