"""The op registry: one explicit import line per op module (no directory scanning).

Checked when imported: every graph op has its terms for every counting profile and reports only
terms it declares, and every fusable block kind belongs to a row kind. (Each target checks its
own needs against `GRAPH_OPS` when `archspec.targets` is imported.)
"""

from __future__ import annotations

from archspec.ops import (
    act,
    add,
    avgpool,
    bottleneck,
    concat,
    conv2d,
    dwconv,
    fc,
    maxpool,
    sepconv,
    shift,
    shuffle,
    shuffle_unit,
    upsample,
)
from archspec.ops import input as input_op
from archspec.ops.base import (
    COUNTING_PROFILES,
    GraphOp,
    LayerKind,
    Role,
    Shape,
    ShapeError,
    WeightSpec,
)
from archspec.ops.blocks import BlockKind

GRAPH_OPS: dict[str, GraphOp] = {
    m.GRAPH_OP.name: m.GRAPH_OP
    for m in (input_op, conv2d, avgpool, fc, add, concat, upsample, maxpool, shuffle, act, shift)
}

LAYER_KINDS: dict[str, LayerKind] = {
    m.LAYER.name: m.LAYER
    for m in (
        conv2d,
        dwconv,
        bottleneck,
        avgpool,
        fc,
        add,
        concat,
        upsample,
        maxpool,
        shuffle,
        act,
        sepconv,
        shuffle_unit,
        shift,
    )
}

BLOCK_KINDS: dict[str, BlockKind] = {m.BLOCK.name: m.BLOCK for m in (bottleneck, shuffle_unit)}

# Every breakdown term, in the order reports list them (each op's declared terms, registry order).
TERMS: tuple[str, ...] = tuple(dict.fromkeys(t for op in GRAPH_OPS.values() for t in op.terms))


def _check_registry() -> None:
    for op in GRAPH_OPS.values():
        for profile in COUNTING_PROFILES[1:]:
            if profile not in op.profiles:
                raise RuntimeError(f"op {op.name!r} has no terms for counting profile {profile!r}")
        unknown = set(op.profiles) - set(COUNTING_PROFILES)
        if unknown:
            raise RuntimeError(f"op {op.name!r} has terms for unknown profiles {sorted(unknown)}")
    for kind in LAYER_KINDS.values():
        if not kind.auto_prefix:
            raise RuntimeError(f"row kind {kind.name!r} has no auto-name prefix")
    for name in BLOCK_KINDS:
        if name not in LAYER_KINDS:
            raise RuntimeError(f"block kind {name!r} is not a row kind")


_check_registry()

__all__ = [
    "BLOCK_KINDS",
    "GRAPH_OPS",
    "LAYER_KINDS",
    "TERMS",
    "BlockKind",
    "GraphOp",
    "LayerKind",
    "Role",
    "Shape",
    "ShapeError",
    "WeightSpec",
]
