"""Running many evaluations: the engine that calls `evaluate_point` for each point (in this
process, or in worker processes that read the space again from its source), and the sweep built
on it. Output order is the input order whatever the engine."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from types import MappingProxyType

from archspec.output import Progress
from archspec.variants.evaluation import evaluate_point, evaluate_variant
from archspec.variants.model import (
    Evaluated,
    Outcome,
    Point,
    Skipped,
    SpaceDef,
    SpaceSource,
    Sweep,
    Variant,
)
from archspec.variants.parse import read_source
from archspec.variants.sampling import plan, unique

# An engine: (space, variants) -> each variant's outcome, in order. Elsewhere than in this
# process, it sends `space.source` and each `variant.point` (plain data) and runs
# `evaluate_point` there.
Engine = Callable[[SpaceDef, Sequence[Variant]], Iterator[Outcome]]


def local_engine(jobs: int = 1) -> Engine:
    """Evaluate in this process (`jobs` = 1), or in `jobs` worker processes."""

    def run(space: SpaceDef, variants: Sequence[Variant]) -> Iterator[Outcome]:
        if jobs <= 1 or len(variants) <= 1:
            return (evaluate_variant(space, v) for v in variants)
        return _pool(space.source, [v.point for v in variants], jobs)

    return run


def _pool(source: SpaceSource, points: Sequence[Point], jobs: int) -> Iterator[Outcome]:
    ctx = multiprocessing.get_context(
        "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    )
    chunk = max(1, min(64, len(points) // (jobs * 8)))
    with ctx.Pool(jobs, initializer=_init_worker, initargs=(source,)) as pool:
        yield from pool.imap(_work, points, chunksize=chunk)


_WORKER: SpaceDef | None = None


def _init_worker(source: SpaceSource) -> None:
    global _WORKER
    _WORKER = read_source(source)


def _work(point: Point) -> Outcome:
    assert _WORKER is not None
    return evaluate_point(_WORKER, point)


def evaluate(
    space: SpaceDef,
    variants: Sequence[Variant],
    jobs: int = 1,
    progress: bool | None = None,
    engine: Engine | None = None,
) -> tuple[list[Evaluated], list[Skipped]]:
    """Measure each variant (with `engine`, else `local_engine(jobs)`); illegal ones are skipped
    with their reason. Output order is the input order."""
    run = engine or local_engine(jobs)
    bar = Progress(len(variants), "variants", progress)
    evaluated: list[Evaluated] = []
    skipped: list[Skipped] = []
    outcomes = run(space, variants)
    for v, outcome in zip(variants, outcomes, strict=True):
        if outcome.id != v.id:
            raise RuntimeError(f"variant {v.id} came back as {outcome.id}")
        if outcome.metrics is not None:
            evaluated.append(Evaluated(v, MappingProxyType(dict(outcome.metrics))))
        else:
            skipped.append(Skipped(v.id, v.choices, str(outcome.reason)))
        bar.step(v.id)
    bar.close()
    return evaluated, skipped


def sweep(
    space: SpaceDef,
    n: int | None = None,
    seed: int | None = None,
    jobs: int = 1,
    progress: bool | None = None,
) -> Sweep:
    """Generate (per `plan`), de-duplicate and evaluate the variants."""
    _, points = plan(space, n, seed)
    variants, total, dups = unique(space, points)
    evaluated, skipped = evaluate(space, variants, jobs, progress)
    return Sweep(total, dups, evaluated, skipped)
