"""TEMPLATE: copy this file to archspec/ops/<your op>.py and replace every part of it.

This template is a complete, working op: `scale`, y = factor · x elementwise. The test
tests/test_op_template.py registers it with the four fragments beside this file and builds it
for every target, so the template cannot drift from what the kit expects. docs/adding_an_op.md
is the checklist; each numbered comment below is one of its steps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from archspec.ops import common
from archspec.ops.base import Field, GraphOp, LayerKind, Shape, ShapeError, no_madds, no_weights

# (1) The graph op: what a node of the compute graph is. Every function takes the node's
#     attributes, its input shapes (in input order) and, after inference, its output shape.


def _infer(attrs: Mapping[str, Any], ins: Sequence[Shape]) -> Shape:
    # The output shape, or a ShapeError naming the row field at fault (lowering adds the file,
    # line and column).
    if attrs["factor"] == 0:
        raise ShapeError("factor 0 would zero the tensor; expected a non-zero factor", "factor")
    return ins[0]


def _madds(attrs: Mapping[str, Any], ins: Sequence[Shape], out: Shape) -> dict[str, int]:
    # (2) The `slim` terms: {breakdown term: multiply-accumulates}. Declare every term in `terms`
    #     below: an undeclared term is an error, never a silent drop from the total.
    return {"scale": out.numel}


def _fvcore(attrs: Mapping[str, Any], ins: Sequence[Shape], out: Shape) -> dict[str, int]:
    # (3) One function per counting profile but slim (archspec.ops.base.COUNTING_PROFILES): the
    #     terms that profile ADDS to the slim ones ({} when it adds nothing). fvcore counts
    #     nothing more for an elementwise multiply.
    return {}


def _reference(
    attrs: Mapping[str, Any], xs: Sequence[np.ndarray], w: Mapping[str, np.ndarray]
) -> np.ndarray:
    # (4) The numpy oracle every target is checked against: (C, H, W) arrays, float64.
    return xs[0].astype(np.float64) * attrs["factor"]


# (5) One function per target: what its fragment needs beyond the node's attributes and shapes
#     (which every target passes anyway). Plain values only: no text in a target's language.
def _no_more(attrs: Mapping[str, Any], ins: Sequence[Shape], out: Shape) -> dict[str, Any]:
    return {}


def _onnx(attrs: Mapping[str, Any], ins: Sequence[Shape], out: Shape) -> dict[str, Any]:
    # Constants the fragment reads as `n.sub(part)`: ONNX initialisers of this node.
    return {"constants": [{"part": "factor", "type": "float", "data": [float(attrs["factor"])]}]}


def _c(attrs: Mapping[str, Any], ins: Sequence[Shape], out: Shape) -> dict[str, Any]:
    # The C kernel's parameters (they also decide which steps share one kernel function) and
    # the shared helpers it calls (see archspec/targets/c/kernels.py HELPER_ORDER).
    return {"size": out.numel, "factor": float(attrs["factor"]), "helpers": ()}


GRAPH_OP = GraphOp(
    "scale",
    _infer,
    no_weights,  # (6) weights: WeightSpec list in PyTorch layouts, if the op has any
    _madds,
    _reference,
    terms=("scale",),
    profiles={"fvcore": _fvcore, "tf1": no_madds},  # tf1 changes dilated convs only
    targets={"pytorch": _no_more, "onnx": _onnx, "keras": _no_more, "c": _c},
    layout="follow",  # (7) spatial | flat | follow (keeps its input's layout)
)


# (8) The row kind: the fields a spec row takes (validated by the loader, listed in the schema)
#     and how a row lowers into graph nodes through the lowering context.
def _lower(ctx: Any, row: Any) -> None:
    attrs = {"factor": row.fields["factor"]}
    ctx.finish(row, ctx.emit(ctx.repeat_name(row, 0), "scale", [ctx.source(row)], attrs, row=row))


LAYER = LayerKind(
    "scale",
    "Multiply every value by a constant factor.",
    (
        common.NAME,
        common.PART,
        common.FROM,
        Field("factor", "number", "The factor.", required=True, minimum=-1e6, maximum=1e6),
    ),
    _lower,
    auto_prefix="scale",  # unnamed rows are named scale<row index>
)

# (9) Register it: one import and one entry in each registry of archspec/ops/__init__.py.
# (10) One fragment per target: templates/<target>/ops/scale.<ext>.j2 (see the four files
#      beside this one). A missing one is an import-time error naming the op and the target.
