"""Peak activation memory of a graph: the paper's §5.1 (Eq. 1, Eq. 2, the split bottleneck).

This module turns a lowered `Graph` into a scheduling `Problem` (see `schedule.py`, which knows
nothing about networks) under one of two models, and gathers the numbers the report shows.

Models (DESIGN.md §4):

- ``op``: every graph node but the input is one op; its tensor is its output. The network input
  is a graph input, the graph's outputs stay live to the end, no op has workspace.
- ``fused``: every bottleneck block is one op whose inner tensors are disposable. With a
  ``split`` of T, the expansion channels ``hidden`` are processed in groups of
  ``ceil(hidden / T)`` channels (T = ``"n"``: one channel; T above ``hidden`` is clamped), and
  the block's workspace is one group of the expansion output at the block's input resolution
  plus one group of the depthwise output at its output resolution (a t = 1 block has no
  expansion: the depthwise group alone). The residual add accumulates into the output, so it
  costs nothing extra. With a ``row_tile`` of R (opt-in; None keeps the rule above), a fused
  block works on bands of R output rows: the workspace is one group of the expansion for the
  input rows the depthwise reads for R output rows, ``(R - 1)·s + dilation·(k - 1) + 1`` rows
  (at most the input's height), plus one group of the depthwise output for R rows (at most
  its height); R at or above the output height is the untiled rule. With the first-layer
  trick, a stem conv (a conv2d outside any block that reads the network input and is read only
  by one t = 1 block) is fused with that block into a ``stem_block`` op, split over the stem's
  output channels: the stem conv plays the expansion (row-tiled too: its band is the stem
  output rows the depthwise reads). Every other node stays a single op.

At int8 a fused block with more than one group also holds the int32 sums of its projection for
one band of output rows: the one requantization to int8 needs every group's contribution
(DESIGN.md §4b). Row-tiled, they are extra workspace; untiled, the block runs in the tallest
bands whose sums fit in the design's workspace, extra only when one row does not
(`int8_band`, `accumulator_bytes`).

Bytes are elements × activation dtype size. Weights are reported separately (`weights_bytes`).
Table 3 (`archspec.analysis.table3`) counts single materialised tensors per resolution, not an
Eq. 2 peak. What `archspec report` shows is gathered in `archspec.analysis.memory_summary` and
worded in `archspec.analysis.memory_report`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

from archspec.analysis.schedule import (
    Placement,
    Problem,
    greedy_order,
    live_at,
    optimal_order,
    peak,
    place_buffers,
    step_memory,
)
from archspec.graph import INPUT, Block, GNode, Graph
from archspec.ops import BLOCK_KINDS
from archspec.ops.base import Role
from archspec.ops.blocks import band_rows
from archspec.options import DTYPE_BYTES, MEMORY_MODES, check_row_tile, check_split

__all__ = [
    "DEFAULT_SPLITS",
    "ACCUMULATOR_BYTES",
    "DTYPE_BYTES",
    "FusedOp",
    "MemoryPlan",
    "accumulator_bytes",
    "band_rows",
    "deployed_weight_params",
    "dtype_bytes",
    "fused_ops",
    "int8_band",
    "memory_problem",
    "plan_memory",
    "split_tradeoff",
    "stem_of",
]

MODES = MEMORY_MODES
DEFAULT_SPLITS: tuple[int | str, ...] = (1, 2, 3, 4, 5, 6, "n")


@dataclass(frozen=True)
class FusedOp:
    """One op of the memory model: a single graph node, a whole block, or stem + first block.

    Attributes:
        name: the op's name in the Problem, also the name of the tensor it produces there.
        kind: ``"op"`` (one graph node), ``"block"`` (a fusable block, see `BLOCK_KINDS`) or
            ``"stem_block"`` (a stem conv fused with a block: the first-layer trick).
        nodes: the graph nodes it covers, in execution order.
        inputs: the Problem tensors it reads.
        output_node: the graph node whose tensor it produces.
        group_channels: fused kinds: channels per split group, ``ceil(hidden / split)``.
        groups: fused kinds: number of groups, ``ceil(hidden / group_channels)``.
        workspace_elems: elements of workspace (the design's §4 rule); 0 for kind ``"op"``.
        workspace_parts: how the workspace is laid out, in order: (graph node whose one
            group of channels lives there, elements), i.e. the expansion (or stem) group at
            its resolution, then the depthwise group; empty for kind ``"op"``.
        row_tile: fused kinds under a row-tiled model: R, the output rows per band (None:
            untiled, the whole spatial extent).
        block: fused kinds: the graph block (`Graph.blocks`) the op runs.
    """

    name: str
    kind: str
    nodes: tuple[str, ...]
    inputs: tuple[str, ...]
    output_node: str
    group_channels: int | None
    groups: int | None
    workspace_elems: int
    workspace_parts: tuple[tuple[str, int], ...] = ()
    row_tile: int | None = None
    block: str | None = None


@dataclass(frozen=True)
class MemoryPlan:
    """The memory of one model (mode, split, dtype) of a graph under its best order.

    Attributes:
        mode, split, dtype_bytes, first_layer_trick: the model.
        fused_ops: the ops of the model, in spec order; ``problem`` is what the scheduler saw.
        order: the chosen order (the optimal one when ``optimal``, else the best found).
        peak_bytes, peak_step: Eq. 1 peak of ``order`` and the first op reaching it.
        live_at_peak: buffers counted at the peak step (workspace as ``"<op>#ws"``).
        optimal: True only when the scheduler proved ``order`` minimal over all orders.
        lower_bound_bytes: proven lower bound on the optimum.
        steps: (op, bytes) per step of ``order``.
        spec_order_peak, greedy_peak: peaks of the spec's own order and of the greedy order.
        placement: arena offsets of every buffer for ``order`` (see `place_buffers`).
        weights_bytes: deployed weights × dtype size; ``weights_params`` is the element count
            (BatchNorm folded: see `deployed_weight_params`).
        states_explored: search states the exact search expanded.
        alignment: the byte alignment of the placement's offsets.
        row_tile: fused mode: output rows per band of the row-tiled model (None: untiled).
    """

    mode: str
    split: int | str
    dtype_bytes: int
    first_layer_trick: bool
    fused_ops: tuple[FusedOp, ...]
    problem: Problem
    order: tuple[str, ...]
    peak_bytes: int
    peak_step: str
    live_at_peak: dict[str, int]
    optimal: bool
    lower_bound_bytes: int
    steps: tuple[tuple[str, int], ...]
    spec_order_peak: int
    greedy_peak: int
    placement: Placement
    weights_bytes: int
    weights_params: int = 0
    dtype: str = ""
    spec_order: tuple[str, ...] = ()
    greedy: tuple[str, ...] = ()
    states_explored: int = 0
    alignment: int = 1
    row_tile: int | None = None

    @cached_property
    def _ops_by_name(self) -> dict[str, FusedOp]:
        return {f.name: f for f in self.fused_ops}

    def op(self, name: str) -> FusedOp:
        """The fused op called `name`."""
        return self._ops_by_name[name]


# ---------------------------------------------------------------------------------------------
# Graph -> ops of the memory model.


def _group(channels: int, split: int | str) -> tuple[int, int]:
    """(channels per group, number of groups) of a `split`-way split of `channels`."""
    ways = channels if split == "n" else min(int(split), channels)
    group = -(-channels // max(ways, 1))
    return group, -(-channels // group)


def stem_of(graph: Graph, block: Block) -> GNode | None:
    """The stem conv the first-layer trick may fuse into `block`, if there is one: the block's
    kind allows the trick, the block has no member in the role the stem would play, and its
    input is a conv outside any block that reads the network input and feeds only this block."""
    role = BLOCK_KINDS[block.kind].stem_role
    if role is None or role in block.members(graph) or block.input == INPUT:
        return None
    stem = graph.node(block.input)
    if stem.op != "conv2d" or stem.block is not None or stem.inputs != (INPUT,):
        return None
    if stem.name in graph.outputs:
        return None
    if any(graph.node(c).block != block.name for c in graph.consumers(stem.name)):
        return None
    return stem


def _sealed(graph: Graph, members: Sequence[str], output: str) -> bool:
    """True if no tensor inside `members` but `output` is read from outside or is an output."""
    inside = set(members)
    for name in members:
        if name == output:
            continue
        if name in graph.outputs or any(c not in inside for c in graph.consumers(name)):
            return False
    return True


def _unique(name: str, taken: set[str]) -> str:
    while name in taken:
        name += "_fused"
    taken.add(name)
    return name


def _workspace(
    graph: Graph, block: Block, stem: GNode | None, split: int | str, row_tile: int | None
) -> tuple[tuple[tuple[str, int], ...], int, int]:
    """(workspace parts, channels per group, groups) of a fused block, by its kind's rule: one
    group of each workspace member's output, each over its full extent or, row-tiled, over the
    rows one band needs (a stem conv stands in for the member of the kind's stem role)."""
    kind = BLOCK_KINDS[block.kind]
    members = block.members(graph)
    if stem is not None:
        members[kind.stem_role] = stem
    band = members[kind.band_role]
    group, groups = _group(members[kind.split_role].shape.c, split)
    parts = []
    for part in kind.workspace:
        node = members.get(part.role)
        if node is None:
            continue
        if row_tile is None:
            rows = node.shape.h
        elif part.rows == "input":
            rows = band_rows(band, node.shape.h, row_tile)
        else:
            rows = min(row_tile, node.shape.h)
        parts.append((node.name, group * rows * node.shape.w))
    return tuple(parts), group, groups


def fused_ops(
    graph: Graph,
    mode: str = "op",
    split: int | str = 1,
    first_layer_trick: bool = True,
    row_tile: int | None = None,
) -> tuple[FusedOp, ...]:
    """The ops of the memory model of `graph`, in spec order (see the module docstring).

    `row_tile` (fused mode): output rows per band of the row-tiled workspace rule; None is the
    design's rule (the full spatial extent of one channel group).

    In fused mode a block whose inner tensors are read outside it (impossible for specs, which
    reference rows, not inner nodes) is left as single ops rather than fused.
    """
    if mode not in MODES:
        raise ValueError(f"memory mode must be one of {MODES}, got {mode!r}")
    split = check_split(split)
    row_tile = check_row_tile(row_tile)
    ops = list(graph.ops())
    if mode == "op":
        return tuple(FusedOp(n.name, "op", (n.name,), n.inputs, n.name, None, None, 0) for n in ops)

    # Which nodes each fused op covers, keyed by its first node.
    plans: dict[str, tuple[str, Block, GNode | None]] = {}
    covered: set[str] = set()
    for block in graph.blocks:
        stem = stem_of(graph, block) if first_layer_trick else None
        members = ((stem.name,) if stem else ()) + block.nodes
        if not _sealed(graph, members, block.output):
            continue
        kind = "stem_block" if stem else "block"
        plans[members[0]] = (kind, block, stem)
        covered.update(members)

    taken = {n.name for n in graph.nodes} - covered
    tensor: dict[str, str] = {INPUT: INPUT}
    pending: list[tuple[str, tuple[str, ...], Block | None, GNode | None, str]] = []
    for node in ops:
        if node.name in plans:
            kind, block, stem = plans[node.name]
            members = ((stem.name,) if stem else ()) + block.nodes
            base = f"{stem.name}_{block.name}" if stem else block.name
            name = _unique(base, taken)
            tensor[block.output] = name
            pending.append((kind, members, block, stem, name))
        elif node.name not in covered:
            tensor[node.name] = node.name
            pending.append(("op", (node.name,), None, None, node.name))

    out = []
    for kind, members, block, stem, name in pending:
        inside = set(members)
        reads: list[str] = []
        for m in members:
            for src in graph.node(m).inputs:
                if src not in inside and tensor[src] not in reads:
                    reads.append(tensor[src])
        if block is None:
            out.append(FusedOp(name, "op", members, tuple(reads), members[0], None, None, 0))
            continue
        parts, group, groups = _workspace(graph, block, stem, split, row_tile)
        ws = sum(n for _, n in parts)
        out.append(
            FusedOp(
                name,
                kind,
                members,
                tuple(reads),
                block.output,
                group,
                groups,
                ws,
                parts,
                row_tile,
                block.name,
            )
        )
    return tuple(out)


ACCUMULATOR_BYTES = 4  # int32


def int8_band(graph: Graph, f: FusedOp) -> tuple[int, int, tuple[int, ...]]:
    """How an int8 fused block with more than one group runs: (rows per band, extra workspace
    bytes beyond the design's rule, bytes of each workspace part for one band).

    Its projection sums over every group before the one requantization to int8 (DESIGN.md
    §4b), so the int32 sums of one band of output rows are held, 4 bytes each, beside one band
    of each workspace part. Row-tiled: the plan's band, the sums extra. Untiled: the tallest
    band whose parts and sums fit in the design's workspace (one group at full extent), so
    nothing extra; if even one row does not fit, one row and the excess."""
    block = next(b for b in graph.blocks if b.name == f.block)
    kind = BLOCK_KINDS[block.kind]
    members = block.members(graph)
    if f.kind == "stem_block" and kind.stem_role is not None:
        members[kind.stem_role] = graph.node(f.nodes[0])
    proj, band = members[Role.PROJECT], members[kind.band_role]
    declared = [p for p in kind.workspace if p.role in members]
    gs = f.group_channels or 0

    def parts(r: int) -> tuple[int, ...]:
        out = []
        for part in declared:
            node = members[part.role]
            rows = (
                band_rows(band, node.shape.h, r) if part.rows == "input" else min(r, node.shape.h)
            )
            out.append(gs * rows * node.shape.w)
        return tuple(out)

    def sums(r: int) -> int:
        return ACCUMULATOR_BYTES * r * proj.shape.w * proj.shape.c

    if f.row_tile is not None:
        r = min(f.row_tile, proj.shape.h)
        return r, sums(r), parts(r)
    design = f.workspace_elems
    for r in range(proj.shape.h, 0, -1):
        if sum(parts(r)) + sums(r) <= design:
            return r, 0, parts(r)
    return 1, sum(parts(1)) + sums(1) - design, parts(1)


def accumulator_bytes(graph: Graph, f: FusedOp, dtype_bytes: int) -> int:
    """The workspace an int8 fused block with more than one group needs beyond the design's
    rule for its int32 projection sums (`int8_band`); 0 for float plans and one-group blocks
    (float blocks accumulate in their output; one group requantizes each sum at once)."""
    if dtype_bytes != 1 or f.block is None or (f.groups or 1) <= 1:
        return 0
    return int8_band(graph, f)[1]


def memory_problem(
    graph: Graph,
    mode: str = "op",
    split: int | str = 1,
    first_layer_trick: bool = True,
    dtype_bytes: int = 4,
    row_tile: int | None = None,
) -> tuple[Problem, tuple[FusedOp, ...]]:
    """The scheduling Problem of `graph` under a memory model, with the model's ops."""
    fops = fused_ops(graph, mode, split, first_layer_trick, row_tile)
    by_output = {f.output_node: f.name for f in fops}
    size = {INPUT: graph.input.shape.numel * dtype_bytes}
    for f in fops:
        size[f.name] = graph.node(f.output_node).shape.numel * dtype_bytes
    problem = Problem(
        ops=tuple(f.name for f in fops),
        inputs={f.name: f.inputs for f in fops},
        size=size,
        workspace={
            f.name: f.workspace_elems * dtype_bytes + accumulator_bytes(graph, f, dtype_bytes)
            for f in fops
            if f.workspace_elems
        },
        graph_inputs=(INPUT,),
        outputs=tuple(by_output.get(o, o) for o in graph.outputs),
    )
    return problem, fops


# ---------------------------------------------------------------------------------------------
# Plans.


def deployed_weight_params(graph: Graph) -> int:
    """Elements of the deployed weights: BatchNorm folded into the convs.

    Every conv and FC weight, every existing bias, and one bias per output channel for each
    conv followed by BatchNorm (folding γ, β, mean and variance leaves a per-channel bias).
    This is `params` plus one value per BatchNorm channel; BN statistics are not stored.
    """
    total = 0
    for node in graph.ops():
        specs = graph.weights(node)
        has_bias = any(w.kind == "bias" for w in specs)
        for w in specs:
            if w.kind in ("weight", "bias") or (w.kind == "bn_beta" and not has_bias):
                total += math.prod(w.shape)
    return total


def dtype_bytes(dtype: str) -> int:
    if dtype not in DTYPE_BYTES:
        raise ValueError(f"activation dtype must be one of {list(DTYPE_BYTES)}, got {dtype!r}")
    return DTYPE_BYTES[dtype]


def plan_memory(
    graph: Graph,
    *,
    mode: str = "op",
    split: int | str = 1,
    dtype: str = "float32",
    first_layer_trick: bool = True,
    time_limit: float | None = 10.0,
    max_states: int = 2_000_000,
    alignment: int = 1,
    row_tile: int | None = None,
) -> MemoryPlan:
    """Peak memory of `graph` under one model: spec, greedy and optimal orders, placement.

    The chosen order is the scheduler's optimum (`optimal` says whether it is proven; when a
    budget stops the search it is the best order found, never worse than the spec or greedy
    order). Buffers are placed for that order with `place_buffers(..., alignment)`.
    `row_tile` (fused mode): the row-tiled workspace rule (see `fused_ops`).
    """
    nbytes = dtype_bytes(dtype)
    problem, fops = memory_problem(graph, mode, split, first_layer_trick, nbytes, row_tile)
    spec_peak = peak(problem, problem.ops)[0]
    greedy = greedy_order(problem)
    greedy_peak = peak(problem, greedy)[0]
    result = optimal_order(problem, max_states=max_states, time_limit=time_limit)
    candidates = [
        (result.peak_bytes, 0, result.order),
        (greedy_peak, 1, greedy),
        (spec_peak, 2, problem.ops),
    ]
    best_peak, _, order = min(candidates)
    mem = step_memory(problem, order)
    top, at = peak(problem, order)
    assert top == best_peak
    weights = deployed_weight_params(graph)
    return MemoryPlan(
        mode=mode,
        split=check_split(split),
        dtype_bytes=nbytes,
        first_layer_trick=first_layer_trick,
        fused_ops=fops,
        problem=problem,
        order=tuple(order),
        peak_bytes=top,
        peak_step=order[at] if at >= 0 else "",
        live_at_peak=live_at(problem, order, at) if at >= 0 else {},
        optimal=result.optimal and top <= result.peak_bytes,
        lower_bound_bytes=min(result.lower_bound_bytes, top),
        steps=tuple(zip(order, mem, strict=True)),
        spec_order_peak=spec_peak,
        greedy_peak=greedy_peak,
        placement=place_buffers(problem, order, alignment=alignment),
        weights_bytes=weights * nbytes,
        weights_params=weights,
        dtype=dtype,
        spec_order=problem.ops,
        greedy=greedy,
        states_explored=result.states_explored,
        alignment=alignment,
        row_tile=row_tile if mode == "fused" else None,
    )


# ---------------------------------------------------------------------------------------------
# The split trade-off.


def split_tradeoff(
    graph: Graph,
    dtype: str,
    splits: Sequence[int | str] = DEFAULT_SPLITS,
    first_layer_trick: bool = True,
    *,
    plans: Sequence[MemoryPlan] | None = None,
    op_peak: int | None = None,
    row_tile: int | None = None,
) -> list[dict]:
    """Fused-mode peak for each split (the paper's memory-against-split trade-off).

    `plans` may hold fused plans already computed (one per split, same dtype, trick and row
    tile); `op_peak` the op-mode peak, to report the saving against it; `row_tile` the
    row-tiled model (None: untiled).
    """
    have = {p.split: p for p in plans or () if p.mode == "fused" and p.row_tile == row_tile}
    if op_peak is None:
        op_peak = plan_memory(graph, mode="op", dtype=dtype).peak_bytes
    rows = []
    for split in splits:
        plan = have.get(split) or plan_memory(
            graph,
            mode="fused",
            split=split,
            dtype=dtype,
            first_layer_trick=first_layer_trick,
            row_tile=row_tile,
        )
        at = plan.op(plan.peak_step)
        rows.append(
            {
                "split": split,
                "peak_bytes": plan.peak_bytes,
                "peak_step": plan.peak_step,
                "workspace_at_peak_bytes": at.workspace_elems * plan.dtype_bytes,
                "group_channels_at_peak": at.group_channels,
                "optimal": plan.optimal,
                "saving_vs_op_bytes": op_peak - plan.peak_bytes,
            }
        )
    return rows
