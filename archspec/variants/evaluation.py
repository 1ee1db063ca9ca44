"""Measuring one variant: its cost and peak-memory metrics, or why it is illegal.

`evaluate_point(space, point, latency=None)` is a pure function of the space's definition, a
point and an optional latency request, and its `Outcome` is plain data: an engine
(`archspec.variants.engine`: a loop, or worker processes) may call it wherever the space can be
read again (`read_source`). The latency request (`archspec.latency.sweep.LatencyRequest`: measure
settings, or a latency table) is plain data too; with one, the metrics gain `latency_ms` and its
companions (measured by timing the variant, or predicted from the table)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from archspec.analysis.cost import analyze_cost
from archspec.analysis.memory import DTYPE_BYTES, memory_problem
from archspec.analysis.schedule import optimal_order
from archspec.errors import SpecError
from archspec.graph import Graph
from archspec.lower import lower
from archspec.spec import Spec
from archspec.variants.model import (
    MemorySettings,
    Outcome,
    Point,
    SpaceDef,
    Variant,
    skip_reason,
)
from archspec.variants.sampling import resolve

if TYPE_CHECKING:
    from archspec.latency.sweep import LatencyRequest

MEMORY_TIME_LIMIT = 0.05  # seconds per order search: chains are solved at once, DAGs bounded
MEMORY_MAX_STATES = 200_000


def peak(graph: Graph, mode: str, split: int | str, memory: MemorySettings) -> tuple[int, bool]:
    """The Eq. 1 peak of the best order found in `mode` (op or fused, with `split`), and whether
    it is proven optimal."""
    # The scheduling problem and its order search only: `plan_memory` also places buffers and
    # keeps per-step tables a sweep never reads (and costs several times more).
    problem, _ = memory_problem(
        graph, mode, split, memory.first_layer_trick, DTYPE_BYTES[memory.dtype]
    )
    result = optimal_order(problem, max_states=MEMORY_MAX_STATES, time_limit=MEMORY_TIME_LIMIT)
    return result.peak_bytes, result.optimal


def measure(
    spec: Spec, memory: MemorySettings, latency: LatencyRequest | None = None
) -> dict[str, Any]:
    """Lower a spec and measure it: MAdds, params, params with BN, and the op-mode and fused-mode
    peaks (`memory_exact` says whether both peaks are proven optimal), and with `latency` its
    latency fields. Raises `SpecError` when the spec does not lower."""
    graph = lower(spec)
    cost = analyze_cost(graph)
    op, op_exact = peak(graph, "op", 1, memory)
    fused, fused_exact = peak(graph, "fused", memory.fused_split, memory)
    metrics = {
        "madds": cost.madds,
        "params": cost.params,
        "params_with_bn": cost.params_with_bn,
        "peak_bytes_op": op,
        "peak_bytes_fused": fused,
        "memory_exact": op_exact and fused_exact,
    }
    if latency is not None:
        from archspec.latency.sweep import latency_metrics

        metrics.update(latency_metrics(graph, latency))
    return metrics


def evaluate_point(space: SpaceDef, point: Point, latency: LatencyRequest | None = None) -> Outcome:
    """The variant at `point`, measured (with its latency, given a request): its metrics, or the
    reason it is illegal."""
    return evaluate_variant(space, resolve(space, point), latency)


def evaluate_variant(
    space: SpaceDef, variant: Variant, latency: LatencyRequest | None = None
) -> Outcome:
    """`evaluate_point` for a variant already resolved (in the process that resolved it)."""
    try:
        return Outcome(variant.point, variant.id, measure(variant.spec, space.memory, latency))
    except SpecError as exc:
        return Outcome(variant.point, variant.id, None, skip_reason(exc))
