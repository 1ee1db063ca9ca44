"""The paper's Table 3: the largest materialised tensor per spatial size, at 16-bit.

Table 3 counts single tensors of the fused model (bottleneck blocks fused, inner tensors
disposable), not an Eq. 1 peak; `table3` reproduces it from a graph and, where the graph is
the paper's MobileNetV2 (its Table 2 blocks at width 1.0, 224²), puts the paper's MobileNetV2
column beside it with a note computed from the graph wherever the two differ; any other network
has its own column alone.
"""

from __future__ import annotations

from collections.abc import Mapping

from archspec.analysis.memory import dtype_bytes, memory_problem, stem_of
from archspec.graph import INPUT, Graph
from archspec.ops.base import Role

# The MobileNetV2 column of the paper's Table 3 (channels, memory in K as printed), keyed by
# the spatial size. Shown beside our computed rows for comparison only; never used as a result.
PAPER_TABLE3: Mapping[int, tuple[int, int]] = {
    112: (16, 400),
    56: (32, 200),
    28: (64, 100),
    14: (160, 62),
    7: (320, 32),
    1: (1280, 2),
}
# The bottleneck rows of the paper's Table 2 (t, c, n, s): a graph is the paper's MobileNetV2
# (and Table 3's column is its column) when its blocks follow them at width 1.0 and 224².
PAPER_TABLE2_BOTTLENECKS: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def table3(graph: Graph, dtype: str = "float16", *, first_layer_trick: bool = True) -> list[dict]:
    """Per spatial size, the largest tensor that must be materialised (the paper's Table 3).

    These are single tensors, not an Eq. 2 peak. Materialised means a tensor of the fused model
    (bottleneck blocks fused, inner tensors disposable; with the first-layer trick the stem
    output is not materialised); the network input is not counted. Each row gives the largest
    such tensor (`tensor`, `channels`, `bytes`) and the largest bottleneck tensor, i.e. one a
    block reads or writes (`bottleneck_*`, None where no block touches that size). Rows run
    from the largest spatial size down. When the graph is the paper's MobileNetV2 (Table 2's
    blocks at width 1.0 and 224²), each row also carries the paper's MobileNetV2 value and a
    note where they differ; any other network has its own column alone.
    """
    nbytes = dtype_bytes(dtype)
    _, fops = memory_problem(graph, "fused", 1, first_layer_trick, nbytes)
    bottleneck: set[str] = set()
    for f in fops:
        if f.kind != "op":
            bottleneck.add(f.name)
            bottleneck.update(t for t in f.inputs if t != INPUT)

    rows: dict[tuple[int, int], dict] = {}
    for f in fops:
        shape = graph.node(f.output_node).shape
        key = (shape.h, shape.w)
        row = rows.setdefault(
            key,
            {
                "resolution": [shape.h, shape.w],
                "tensor": None,
                "channels": 0,
                "bytes": 0,
                "bottleneck_tensor": None,
                "bottleneck_channels": None,
                "bottleneck_bytes": None,
            },
        )
        size = shape.numel * nbytes
        if size > row["bytes"]:
            row.update(tensor=f.name, node=f.output_node, channels=shape.c, bytes=size)
        if f.name in bottleneck and size > (row["bottleneck_bytes"] or 0):
            row.update(bottleneck_tensor=f.name, bottleneck_channels=shape.c, bottleneck_bytes=size)
    out = [rows[k] for k in sorted(rows, key=lambda k: (-k[0] * k[1], -k[0]))]
    for row in out:
        row.pop("node", None)
        row["dtype"] = dtype
    if _comparable_with_paper(graph, out):
        _compare_with_paper(graph, out, first_layer_trick, nbytes)
    return out


def _comparable_with_paper(graph: Graph, rows: list[dict]) -> bool:
    """True when the graph is the paper's MobileNetV2: width 1.0 at 224², the bottleneck blocks
    of Table 2 (t, output channels, stride) and Table 3's spatial sizes. Any other network,
    however alike in sizes (MobileNetV1), is shown alone."""
    sizes = {tuple(r["resolution"]) for r in rows}
    if graph.spec.width_multiplier != 1.0 or graph.spec.resolution != (224, 224):
        return False
    if sizes != {(s, s) for s in PAPER_TABLE3}:
        return False
    expected = [
        (t, c, s if i == 0 else 1) for t, c, n, s in PAPER_TABLE2_BOTTLENECKS for i in range(n)
    ]
    ours = []
    for block in graph.blocks:
        if block.kind != "bottleneck":
            return False
        dw = block.members(graph)[Role.DWISE]
        ours.append((block.t, graph.node(block.output).shape.c, dw.attrs["s"]))
    return ours == expected


def _compare_with_paper(graph: Graph, rows: list[dict], trick: bool, nbytes: int) -> None:
    """Attach the paper's value and, where ours differs, a note computed from the graph."""
    stems = [s for s in (stem_of(graph, b) for b in graph.blocks) if s is not None]
    where: dict[int, int] = {}  # channels -> first spatial size of a block output with them
    for block in graph.blocks:
        shape = graph.node(block.output).shape
        where.setdefault(shape.c, shape.h)
    for r in rows:
        size = r["resolution"][0]
        channels, kb = PAPER_TABLE3[size]
        ours = r["bottleneck_channels"] if r["bottleneck_channels"] is not None else r["channels"]
        r["paper_channels"], r["paper_kb"] = channels, kb
        r["agrees_with_paper"] = ours == channels
        notes = []
        if ours != channels:
            other = where.get(channels)
            notes.append(
                f"Table 2's bottleneck tensors at {size}² have at most {ours} channels; the "
                f"paper's {channels} channels"
                + (f" are those of the {other}² stage" if other else " appear at no size here")
            )
        if r["bottleneck_tensor"] is not None and r["tensor"] != r["bottleneck_tensor"]:
            notes.append(
                f"the larger {r['channels']}-channel tensor {r['tensor']} "
                f"({r['bytes']:,} B) is materialised here but is not a bottleneck tensor; "
                "Table 3 leaves it out"
            )
        if trick:
            for stem in stems:
                if stem.shape.h == size:
                    notes.append(
                        f"the stem output ({stem.shape.c} channels, "
                        f"{stem.shape.numel * nbytes:,} B) is not materialised: first-layer "
                        "trick"
                    )
        r["note"] = "; ".join(notes)
