"""Measuring one variant: its cost and peak-memory metrics, or why it is illegal.

`evaluate_point(space, point, latency=None)` is a pure function of the space's definition, a
point and an optional latency request, and its `Outcome` is plain data: an engine
(`archspec.variants.engine`: a loop, or worker processes) may call it wherever the space can be
read again (`read_source`). The latency request (`archspec.latency.sweep.LatencyRequest`: measure
settings, or a latency table) is plain data too; with one, the metrics gain `latency_ms` and its
companions (measured by timing the variant, or predicted from the table). A board request
(`BoardRequest`, plain data too) adds the int8 C build's SRAM and flash needs on that board
(`archspec.boards_fit.board_fit`) and whether it fits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from archspec.analysis.cost import analyze_cost
from archspec.analysis.memory import DTYPE_BYTES, memory_problem
from archspec.analysis.schedule import optimal_order
from archspec.boards import Board
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
BOARD_METRICS = ("sram_bytes", "flash_bytes")  # numeric: usable in --where and --pareto
FITS = "fits"


@dataclass(frozen=True)
class BoardRequest:
    """Check each variant's int8 C build against `board` (fused plan, `split`, `row_tile`)."""

    board: Board
    split: int | str
    row_tile: int | None = None


def board_metrics(graph: Graph, request: BoardRequest) -> dict[str, Any]:
    """The int8 C build's SRAM need (arena, io, runtime statics, the board's stack and heap) and
    flash need (weights, code estimate) on the board, and whether both fit."""
    from archspec.boards_fit import board_fit

    fit = board_fit(graph, request.board, request.split, request.row_tile, "int8")
    return {"sram_bytes": fit.sram_bytes, "flash_bytes": fit.flash_bytes, FITS: fit.fits}


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
    spec: Spec,
    memory: MemorySettings,
    latency: LatencyRequest | None = None,
    board: BoardRequest | None = None,
) -> dict[str, Any]:
    """Lower a spec and measure it: MAdds, params, params with BN, and the op-mode and fused-mode
    peaks (`memory_exact` says whether both peaks are proven optimal), with `board` its fit on
    that board, and with `latency` its latency fields. Raises `SpecError` when the spec does not
    lower."""
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
    if board is not None:
        metrics.update(board_metrics(graph, board))
    if latency is not None:
        from archspec.latency.sweep import latency_metrics

        metrics.update(latency_metrics(graph, latency))
    return metrics


def evaluate_point(
    space: SpaceDef,
    point: Point,
    latency: LatencyRequest | None = None,
    board: BoardRequest | None = None,
) -> Outcome:
    """The variant at `point`, measured (with its latency and its fit on a board, given
    requests): its metrics, or the reason it is illegal."""
    return evaluate_variant(space, resolve(space, point), latency, board)


def evaluate_variant(
    space: SpaceDef,
    variant: Variant,
    latency: LatencyRequest | None = None,
    board: BoardRequest | None = None,
) -> Outcome:
    """`evaluate_point` for a variant already resolved (in the process that resolved it)."""
    try:
        metrics = measure(variant.spec, space.memory, latency, board)
        return Outcome(variant.point, variant.id, metrics)
    except SpecError as exc:
        return Outcome(variant.point, variant.id, None, skip_reason(exc))
