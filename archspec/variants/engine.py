"""Running many evaluations: the engine that calls `evaluate_point` for each point (in this
process, in worker processes that read the space again from its source, or on Ray:
`archspec.variants.ray_engine`), and the sweep built on it.

An engine yields one `Outcome` per variant, in any order (as they complete); `evaluate` puts
them back in the variants' order, so output order is the input order whatever the engine.
What each evaluation is comes as a `Work`: a picklable task `(space, point) -> Outcome`
(`evaluate_point`, or a `functools.partial` of a module-level function with plain-data
arguments, e.g. measurement settings) and, for a task that times something, the threads it
uses. Engines run timing tasks no more at once than the machine has cores, and record in each
outcome's metrics how many ran side by side (`archspec.variants.timing`)."""

from __future__ import annotations

import functools
import multiprocessing
import os
import signal
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

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
from archspec.variants.timing import SIDE_BY_SIDE, side_by_side

Task = Callable[[SpaceDef, Point], Outcome]


@dataclass(frozen=True)
class Work:
    """What evaluating one variant means: `task(space, point)` (picklable), and `threads`, the
    threads each task times with (0: the task times nothing and may share the machine)."""

    task: Task = evaluate_point
    threads: int = 0

    def describe(self) -> str:
        """The task and its arguments as text: a resumed sweep must be doing the same work."""
        task = self.task
        if isinstance(task, functools.partial):
            keywords = sorted(task.keywords.items())
            return f"{_name(task.func)}{task.args!r}{keywords!r} threads={self.threads}"
        return f"{_name(task)} threads={self.threads}"


def _name(func: Callable[..., object]) -> str:
    return f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', repr(func))}"


ANALYSIS = Work()  # costs and peak memory only: `evaluate_point`


# An engine: `(space, variants, work=ANALYSIS)` -> one `Outcome` per variant, in any order.
# Elsewhere than in this process, it sends `space.source` and each `variant.point` (plain data)
# and runs `work.task` there. (An engine for `ANALYSIS` only may take just `(space, variants)`.)
Engine = Callable[..., Iterator[Outcome]]


def run_point(space: SpaceDef, point: Point, work: Work) -> Outcome:
    """`work.task(space, point)`; a timing task also records how many ran side by side."""
    if not work.threads:
        return work.task(space, point)
    with side_by_side() as seen:
        outcome = work.task(space, point)
    return _with_concurrency(outcome, seen.most)


def run_variant(space: SpaceDef, variant: Variant, work: Work) -> Outcome:
    """`run_point` in the process that resolved `variant` (no second resolution)."""
    if work.task is evaluate_point and not work.threads:
        return evaluate_variant(space, variant)
    return run_point(space, variant.point, work)


def _with_concurrency(outcome: Outcome, most: int) -> Outcome:
    if outcome.metrics is None:
        return outcome
    metrics = {**outcome.metrics, SIDE_BY_SIDE: most}
    return Outcome(outcome.point, outcome.id, metrics, outcome.reason, outcome.failed)


def timing_jobs(jobs: int, threads: int, cores: int | None = None) -> int:
    """Worker count for timing tasks of `threads` threads each: at most the cores."""
    available = cores or os.cpu_count() or 1
    return max(1, min(jobs, available // max(1, threads)))


@dataclass(frozen=True)
class Failed:
    """What `map` gives for an item whose task killed its worker on every attempt."""

    reason: str


class LocalEngine:
    """Evaluate in this process (`jobs` = 1), or in `jobs` worker processes (for a timing task,
    no more than the cores allow)."""

    def __init__(self, jobs: int = 1) -> None:
        self.jobs = jobs

    def __call__(
        self, space: SpaceDef, variants: Sequence[Variant], work: Work = ANALYSIS
    ) -> Iterator[Outcome]:
        """Each variant's outcome, as they complete."""
        workers = timing_jobs(self.jobs, work.threads) if work.threads else self.jobs
        if workers <= 1 or len(variants) <= 1:
            return (run_variant(space, v, work) for v in variants)
        return _pool(space.source, [v.point for v in variants], workers, work)

    def map(
        self, func: Callable[[Any], Any], items: Sequence[Any], threads: int = 0
    ) -> Iterator[tuple[int, Any]]:
        """`(index, func(item))` for each item, as they complete: any picklable function (a
        latency-table entry timed, ...); `threads` > 0 marks timing tasks (see `Work`)."""
        workers = timing_jobs(self.jobs, threads) if threads else self.jobs
        if workers <= 1 or len(items) <= 1:
            return ((i, func(item)) for i, item in enumerate(items))
        return _pool_map(func, items, workers)


def local_engine(jobs: int = 1) -> LocalEngine:
    """Evaluate in this process (`jobs` = 1), or in `jobs` worker processes."""
    return LocalEngine(jobs)


def _context() -> multiprocessing.context.BaseContext:
    return multiprocessing.get_context(
        "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    )


def _pool(source: SpaceSource, points: Sequence[Point], jobs: int, work: Work) -> Iterator[Outcome]:
    chunk = 1 if work.threads else max(1, min(64, len(points) // (jobs * 8)))
    with _context().Pool(jobs, initializer=_init_worker, initargs=(source, work)) as pool:
        yield from pool.imap_unordered(_work, points, chunksize=chunk)
        pool.close()  # every result is in: let the workers finish rather than terminate them
        pool.join()


def _pool_map(func: Callable[[Any], Any], items: Sequence[Any], jobs: int) -> Iterator[Any]:
    with _context().Pool(jobs, initializer=_default_sigterm) as pool:
        yield from pool.imap_unordered(_indexed, [(i, func, x) for i, x in enumerate(items)])
        pool.close()
        pool.join()


def _indexed(job: tuple[int, Callable[[Any], Any], Any]) -> tuple[int, Any]:
    index, func, item = job
    return index, func(item)


def _default_sigterm() -> None:
    # a forked worker inherits the command's SIGTERM handler; the pool stops workers with it
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


_WORKER: tuple[SpaceDef, Work] | None = None


def _init_worker(source: SpaceSource, work: Work) -> None:
    global _WORKER
    _default_sigterm()
    _WORKER = (read_source(source), work)


def _work(point: Point) -> Outcome:
    assert _WORKER is not None
    return run_point(_WORKER[0], point, _WORKER[1])


def evaluate(
    space: SpaceDef,
    variants: Sequence[Variant],
    jobs: int = 1,
    progress: bool | None = None,
    engine: Engine | None = None,
    work: Work = ANALYSIS,
    done: Mapping[str, Outcome] | None = None,
    on_outcome: Callable[[Outcome], None] | None = None,
) -> tuple[list[Evaluated], list[Skipped]]:
    """Measure each variant (with `engine`, else `local_engine(jobs)`); illegal ones are skipped
    with their reason. Variants whose id is in `done` are not evaluated again (a resumed sweep);
    `on_outcome` sees each new outcome as it completes. Output order is the input order."""
    run = engine or local_engine(jobs)
    known = dict(done or {})
    todo = [v for v in variants if v.id not in known]
    waiting = {v.id for v in todo}
    bar = Progress(len(variants), "variants", progress, start=len(variants) - len(todo))
    try:
        outcomes = run(space, todo) if work is ANALYSIS else run(space, todo, work)
        for outcome in outcomes:
            if outcome.id not in waiting:
                raise RuntimeError(f"variant {outcome.id} came back unasked for, or twice")
            waiting.discard(outcome.id)
            known[outcome.id] = outcome
            if on_outcome is not None:
                on_outcome(outcome)
            bar.step(outcome.id)
    finally:
        bar.close()
    if waiting:
        raise RuntimeError(f"{len(waiting)} variants never came back from the engine")
    evaluated: list[Evaluated] = []
    skipped: list[Skipped] = []
    for v in variants:
        outcome = known[v.id]
        if outcome.metrics is not None:
            evaluated.append(Evaluated(v, MappingProxyType(dict(outcome.metrics))))
        else:
            skipped.append(Skipped(v.id, v.choices, str(outcome.reason), outcome.failed))
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
