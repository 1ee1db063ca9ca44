"""The memory analysis `archspec report` shows: the chosen plan, the plans it is compared with
(op mode, every fused split), and the report's JSON-ready ``memory`` object with its wording.

The numbers come from `archspec.analysis.memory` (the model and the planner) and
`archspec.analysis.table3`; this module gathers them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from archspec.analysis.memory import (
    DEFAULT_SPLITS,
    DTYPE_BYTES,
    MemoryPlan,
    plan_memory,
    split_tradeoff,
)
from archspec.analysis.table3 import table3
from archspec.graph import INPUT, Graph


def plan_steps(plan: MemoryPlan) -> list[dict]:
    """The steps of `plan` as the report's ``memory.steps`` entries."""
    out = []
    for op, nbytes in plan.steps:
        f = plan.op(op)
        out.append(
            {
                "op": op,
                "bytes": nbytes,
                "kind": f.kind,
                "nodes": list(f.nodes),
                "workspace_bytes": f.workspace_elems * plan.dtype_bytes,
                "workspace_parts": [
                    {"node": node, "bytes": n * plan.dtype_bytes} for node, n in f.workspace_parts
                ],
                "group_channels": f.group_channels,
                "groups": f.groups,
            }
        )
    return out


def memory_json(
    plan: MemoryPlan,
    graph: Graph,
    *,
    tradeoff: list[dict] | None = None,
    table3_rows: list[dict] | None = None,
) -> dict:
    """The report's ``memory`` object (JSON-ready) for `plan`.

    `tradeoff` (from `split_tradeoff`) and `table3_rows` (from `table3`, float16) are computed
    here when not given. Table 3 is always at float16, the paper's convention.
    """
    if tradeoff is None:
        tradeoff = split_tradeoff(
            graph,
            plan.dtype or _dtype_name(plan.dtype_bytes),
            first_layer_trick=plan.first_layer_trick,
            row_tile=plan.row_tile,
        )
    if table3_rows is None:
        table3_rows = table3(graph, "float16", first_layer_trick=plan.first_layer_trick)
    order_pos = {op: i for i, op in enumerate(plan.order)}
    live = sorted(
        plan.live_at_peak.items(),
        key=lambda kv: (
            kv[0] != INPUT,
            order_pos.get(kv[0].removesuffix("#ws"), -1),
            kv[0].endswith("#ws"),
        ),
    )
    pl = plan.placement
    return {
        "model": "Eq. 1 (paper §5.1): live tensors + the op's output + its workspace",
        "mode": plan.mode,
        "split": plan.split if plan.mode == "fused" else None,
        "first_layer_trick": plan.first_layer_trick if plan.mode == "fused" else None,
        "row_tile": plan.row_tile,
        "dtype": plan.dtype or _dtype_name(plan.dtype_bytes),
        "dtype_bytes": plan.dtype_bytes,
        "peak_bytes": plan.peak_bytes,
        "peak_step": plan.peak_step,
        "peak_nodes": list(plan.op(plan.peak_step).nodes) if plan.peak_step else [],
        "live_at_peak": [
            {
                "tensor": k.removesuffix("#ws"),
                "kind": "workspace" if k.endswith("#ws") else "tensor",
                "bytes": v,
            }
            for k, v in live
        ],
        "order": list(plan.order),
        "optimal": plan.optimal,
        "lower_bound_bytes": plan.lower_bound_bytes,
        "orders": {
            "spec": {"peak_bytes": plan.spec_order_peak},
            "greedy": {"peak_bytes": plan.greedy_peak},
            "optimal": {"peak_bytes": plan.peak_bytes, "proven": plan.optimal},
            "saving_vs_spec_bytes": plan.spec_order_peak - plan.peak_bytes,
            "saving_vs_greedy_bytes": plan.greedy_peak - plan.peak_bytes,
        },
        "weights_bytes": plan.weights_bytes,
        "weights_params": plan.weights_params,
        "weights_note": "deployed weights at the activation dtype: conv/FC weights and biases, "
        "BatchNorm folded into a per-channel conv bias",
        "placement": {
            "alignment": plan.alignment,
            "arena_bytes": pl.arena_bytes,
            "live_bound_bytes": pl.live_bound_bytes,
            "fragmentation_bytes": pl.arena_bytes - pl.live_bound_bytes,
            "offsets": dict(sorted(pl.offsets.items(), key=lambda kv: (kv[1], kv[0]))),
        },
        "steps": plan_steps(plan),
        "split_tradeoff": tradeoff,
        "table3": table3_rows,
        "table3_max_bytes": max((r["bytes"] for r in table3_rows), default=0),
        "table3_note": "Table 3 counts single materialised tensors per spatial size at 16-bit "
        "activations, not an Eq. 2 peak; peak_bytes above is the Eq. 1 peak.",
    }


def _dtype_name(nbytes: int) -> str:
    return next(k for k, v in DTYPE_BYTES.items() if v == nbytes)


# ---------------------------------------------------------------------------------------------
# Everything `archspec report` needs, in one call.


@dataclass(frozen=True)
class MemoryAnalysis:
    """The chosen plan, the plans it is compared with, and the report's ``memory`` object."""

    plan: MemoryPlan
    op_plan: MemoryPlan
    fused_plans: tuple[MemoryPlan, ...]
    data: dict

    def timeline_plans(self) -> list[MemoryPlan]:
        """Op mode, then every fused split (the chosen plan replaces its twin)."""
        plans = [self.op_plan, *self.fused_plans]
        return [self.plan if _same(p, self.plan) else p for p in plans]


def _same(a: MemoryPlan, b: MemoryPlan) -> bool:
    return (a.mode, a.split if a.mode == "fused" else None) == (
        b.mode,
        b.split if b.mode == "fused" else None,
    )


def analyze_memory(
    graph: Graph,
    *,
    mode: str = "op",
    split: int | str = 1,
    dtype: str = "float32",
    first_layer_trick: bool = True,
    splits: Sequence[int | str] = DEFAULT_SPLITS,
    time_limit: float | None = 10.0,
    compare_time_limit: float | None = 2.0,
    progress: Callable[[str], None] | None = None,
    row_tile: int | None = None,
) -> MemoryAnalysis:
    """Plan `graph` under the chosen model and under op mode and every fused split.

    The chosen model's search gets `time_limit` seconds, each comparison plan
    `compare_time_limit` (each plan says whether its order is proven optimal). `row_tile`
    (fused mode only): the row-tiled workspace rule for the chosen plan and the fused
    comparison plans.
    """
    if mode == "op" and row_tile is not None:
        raise ValueError("row_tile applies to the fused memory model only")

    done: list[MemoryPlan] = []

    def run(m: str, s: int | str, limit: float | None) -> MemoryPlan:
        if progress is not None:
            progress(f"{m} {s}" if m == "fused" else m)
        if not graph.blocks and done:
            # Nothing to fuse: every model is the op model; plan it once, label it per model.
            return dataclasses.replace(
                done[0], mode=m, split=s, row_tile=row_tile if m == "fused" else None
            )
        done.append(
            plan_memory(
                graph,
                mode=m,
                split=s,
                dtype=dtype,
                first_layer_trick=first_layer_trick,
                time_limit=limit,
                row_tile=row_tile if m == "fused" else None,
            )
        )
        return done[-1]

    plan = run(mode, split, time_limit)
    op_plan = plan if mode == "op" else run("op", 1, compare_time_limit)
    fused = tuple(
        plan if mode == "fused" and plan.split == s else run("fused", s, compare_time_limit)
        for s in splits
    )
    tradeoff = split_tradeoff(
        graph,
        dtype,
        splits,
        first_layer_trick,
        plans=fused,
        op_peak=op_plan.peak_bytes,
        row_tile=row_tile,
    )
    data = memory_json(plan, graph, tradeoff=tradeoff)
    data["op_mode_peak_bytes"] = op_plan.peak_bytes
    return MemoryAnalysis(plan, op_plan, fused, data)
