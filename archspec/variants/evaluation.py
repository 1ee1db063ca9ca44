"""Measuring variants: cost and peak-memory metrics, worker processes, illegal variants skipped
and counted."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterable, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from archspec.analysis.cost import analyze_cost
from archspec.analysis.memory import DTYPE_BYTES, memory_problem
from archspec.analysis.schedule import optimal_order
from archspec.errors import SpecError
from archspec.graph import Graph
from archspec.lower import lower
from archspec.output import Progress
from archspec.spec import Spec
from archspec.variants.model import (
    METRICS,
    Evaluated,
    Grid,
    Point,
    Skipped,
    Sweep,
    Variant,
    is_number,
    skip_reason,
)

if TYPE_CHECKING:
    from archspec.variants.space import Space

MEMORY_TIME_LIMIT = 0.05  # seconds per order search: chains are solved at once, DAGs bounded
MEMORY_MAX_STATES = 200_000


class Evaluation:
    """Mixin of `Space`: the metrics of a spec and the evaluation of many variants."""

    _origin: tuple[str, ...]
    labels: tuple[str, ...]
    grids: tuple[Grid, ...]
    base_values: dict[str, Any]
    dtype: str
    fused_split: int | str
    first_layer_trick: bool

    def metric_names(self) -> list[str]:
        """Names usable in `--where` and `--pareto`: the metrics and every numeric choice."""
        numeric = [
            label
            for label in self.labels
            if all(
                is_number(v)
                for g in self.grids
                for c in g.choices
                if c.label == label
                for v in c.shown
            )
            and is_number(self.base_values[label])
        ]
        return [*METRICS, *numeric]

    def metrics(self, spec: Spec) -> dict[str, Any]:
        """Lower a spec and measure it: MAdds, params, params with BN, and the op-mode and
        fused-mode peaks (`memory_exact` says whether both peaks are proven optimal).
        Raises `SpecError` when the spec does not lower."""
        graph = lower(spec)
        cost = analyze_cost(graph)
        op, op_exact = self._peak(graph, "op", 1)
        fused, fused_exact = self._peak(graph, "fused", self.fused_split)
        return {
            "madds": cost.madds,
            "params": cost.params,
            "params_with_bn": cost.params_with_bn,
            "peak_bytes_op": op,
            "peak_bytes_fused": fused,
            "memory_exact": op_exact and fused_exact,
        }

    def _peak(self, graph: Graph, mode: str, split: int | str) -> tuple[int, bool]:
        # The scheduling problem and its order search only: `plan_memory` also places buffers
        # and keeps per-step tables a sweep never reads (and costs several times more).
        problem, _ = memory_problem(
            graph, mode, split, self.first_layer_trick, DTYPE_BYTES[self.dtype]
        )
        result = optimal_order(problem, max_states=MEMORY_MAX_STATES, time_limit=MEMORY_TIME_LIMIT)
        return result.peak_bytes, result.optimal

    def evaluate(
        self, variants: Sequence[Variant], jobs: int = 1, progress: bool | None = None
    ) -> tuple[list[Evaluated], list[Skipped]]:
        """Measure each variant; illegal ones are skipped with their reason. Output order is
        the input order whatever `jobs` is."""
        bar = Progress(len(variants), "variants", progress)
        evaluated: list[Evaluated] = []
        skipped: list[Skipped] = []
        if jobs > 1 and len(variants) > 1:
            ctx = multiprocessing.get_context(
                "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
            )
            chunk = max(1, min(64, len(variants) // (jobs * 8)))
            with ctx.Pool(jobs, initializer=_init_worker, initargs=(self._origin,)) as pool:
                results: Iterable[tuple[str, Any]] = pool.imap(
                    _work, [v.point for v in variants], chunksize=chunk
                )
                for v, result in zip(variants, results, strict=True):
                    _collect(v, result, evaluated, skipped)
                    bar.step(v.id)
        else:
            for v in variants:
                _collect(v, self._measure(v.spec), evaluated, skipped)
                bar.step(v.id)
        bar.close()
        return evaluated, skipped

    def _measure(self, spec: Spec) -> tuple[str, Any]:
        try:
            return "ok", self.metrics(spec)
        except SpecError as exc:
            return "skip", skip_reason(exc)

    def sweep(
        self,
        n: int | None = None,
        seed: int | None = None,
        jobs: int = 1,
        progress: bool | None = None,
    ) -> Sweep:
        """Generate (per `plan`), de-duplicate and evaluate the variants."""
        _, points = self.plan(n, seed)
        variants, total, dups = self._unique(points)
        evaluated, skipped = self.evaluate(variants, jobs, progress)
        return Sweep(total, dups, evaluated, skipped)


def _collect(
    v: Variant, result: tuple[str, Any], evaluated: list[Evaluated], skipped: list[Skipped]
) -> None:
    status, payload = result
    if status == "ok":
        evaluated.append(Evaluated(v, MappingProxyType(payload)))
    else:
        skipped.append(Skipped(v.id, v.choices, payload))


_WORKER: Space | None = None


def _init_worker(origin: tuple[str, ...]) -> None:
    from archspec.variants.space import Space  # space.py imports this module

    global _WORKER
    _WORKER = Space._reload(origin)


def _work(point: Point) -> tuple[str, Any]:
    assert _WORKER is not None
    return _WORKER._measure(_WORKER.variant(point).spec)
