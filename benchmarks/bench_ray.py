"""Benchmark: the Ray engine vs the local one on this machine, side by side.

Measured in one run, on the same variants:

* Ray's start: `ray.init` of a local instance (what `--engine ray` without `--address` pays);
* per-task overhead: tasks that do nothing (`Work` of a task returning a fixed outcome), one
  point per task, through the Ray engine and through the local engine's worker processes;
* the analysis-only sweep (costs and peak memory, `evaluate_point`): local in this process,
  local with 2 worker processes, Ray with one point per task and with the engine's batches;
* a measured sweep (each variant built and timed with ONNX Runtime, one thread, `--repeats`
  runs, plus its costs): local in this process, local with 2 workers, Ray; with how many timing
  tasks ran side by side.

Every engine's outcomes are checked equal to the in-process ones (latency fields aside).
Throughput is variants (tasks) per second of wall time, Ray's start excluded (reported apart).

Usage: python benchmarks/bench_ray.py [--space FILE] [--n N] [--measured M] [--repeats R]
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from archspec.lower import lower  # noqa: E402
from archspec.variants.engine import ANALYSIS, Work, evaluate, local_engine  # noqa: E402
from archspec.variants.evaluation import measure  # noqa: E402
from archspec.variants.model import Evaluated, Outcome, Point, SpaceDef  # noqa: E402
from archspec.variants.sampling import resolve  # noqa: E402
from archspec.variants.space import Space  # noqa: E402

DEFAULT_SPACE = ROOT / "specs" / "spaces" / "mnv2_mcu.yaml"


def nothing(space: SpaceDef, point: Point) -> Outcome:
    """A task that does no work: what is left of its time is the engine's overhead."""
    return Outcome(point, f"p{point.grid}-{'.'.join(map(str, point.picks))}", {"madds": 0})


def measured(space: SpaceDef, point: Point, repeats: int) -> Outcome:
    """Costs, peak memory and ONNX Runtime latency (one thread) of the variant at `point`."""
    from archspec.latency.sweep import latency_metrics
    from archspec.latency.timing import MeasureSettings

    variant = resolve(space, point)
    metrics = measure(variant.spec, space.memory)
    metrics.update(latency_metrics(lower(variant.spec), MeasureSettings("ort", 1, repeats)))
    return Outcome(point, variant.id, metrics)


def timed(run: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = run()
    return time.perf_counter() - start, result


def plain(evaluated: Sequence[Evaluated], drop: tuple[str, ...] = ()) -> list[tuple[str, dict]]:
    return [
        (e.variant.id, {k: v for k, v in e.metrics.items() if not k.startswith(drop)})
        for e in evaluated
    ]


def row(name: str, seconds: float, count: int, base: float | None = None) -> str:
    rate = count / seconds
    ratio = f"{base / seconds:6.2f}x" if base else "      "
    return f"  {name:<34} {seconds:8.2f} s  {rate:9.1f}/s  {1e3 * seconds / count:8.2f} ms  {ratio}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default=str(DEFAULT_SPACE))
    parser.add_argument("--n", type=int, default=400, help="variants of the analysis sweep")
    parser.add_argument("--measured", type=int, default=24, help="variants of the measured one")
    parser.add_argument("--repeats", type=int, default=20, help="timed runs per variant")
    args = parser.parse_args()

    import ray

    from archspec.latency.measure import clear_cache
    from archspec.variants.ray_engine import RESOURCE, RayEngine

    space = Space.load(args.space)
    variants = space.sample(args.n, seed=1)
    print(f"space {space.name}: {len(variants)} variants; {os.cpu_count()} cores")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    cores = os.cpu_count() or 1
    start, _ = timed(
        lambda: ray.init(
            num_cpus=cores,
            resources={RESOURCE: cores},
            include_dashboard=False,
            logging_level=logging.ERROR,
            log_to_driver=False,
        )
    )
    print(f"Ray start (local instance, {cores} CPUs): {start:.2f} s")
    single, batched = RayEngine(batch=1), RayEngine()
    # warm the workers (their first task imports archspec) before timing anything
    evaluate(space, variants[: 4 * cores], engine=single)
    header = f"  {'':<34} {'wall':>10}  {'rate':>11}  {'per task':>11}  vs local 1"

    print("\nper-task overhead (tasks that do nothing, one point each):")
    print(header)
    points = [v.point for v in variants]
    empty = Work(nothing)
    ids = [nothing(space, p).id for p in points]
    fakes = [type(v)(i, v.point, v.choices, v.spec) for v, i in zip(variants, ids, strict=True)]
    for name, engine in (
        ("local, this process", local_engine(1)),
        ("local, 2 worker processes", local_engine(2)),
        ("ray, 1 point per task", single),
    ):
        seconds, _ = timed(lambda e=engine: evaluate(space, fakes, engine=e, work=empty))
        print(row(name, seconds, len(fakes)))

    print(f"\nanalysis-only sweep ({len(variants)} variants: costs and both peaks):")
    print(header)
    base_s, base = timed(lambda: evaluate(space, variants, engine=local_engine(1)))
    print(row("local, this process", base_s, len(variants), base_s))
    for name, engine in (
        ("local, 2 worker processes", local_engine(2)),
        ("ray, 1 point per task", single),
        ("ray, batched (engine default)", batched),
    ):
        seconds, got = timed(lambda e=engine: evaluate(space, variants, engine=e, work=ANALYSIS))
        assert plain(got[0]) == plain(base[0]) and got[1] == base[1], name
        print(row(name, seconds, len(variants), base_s))

    few = [v for v in variants if v.id in {e.variant.id for e in base[0]}][: args.measured]
    work = Work(functools.partial(measured, repeats=args.repeats), threads=1)
    print(
        f"\nmeasured sweep ({len(few)} variants: costs + ONNX Runtime, 1 thread, "
        f"{args.repeats} runs each):"
    )
    print(header + "  side by side  median latency")
    base_s = None
    reference = None
    for name, engine in (
        ("local, this process", local_engine(1)),
        ("local, 2 worker processes", local_engine(2)),
        ("ray, 1 point per task", single),
    ):
        clear_cache()  # timings are cached by graph content: each engine measures anew
        seconds, got = timed(lambda e=engine: evaluate(space, few, engine=e, work=work))
        base_s = base_s or seconds
        drop = ("latency", "side_by_side")
        if reference is None:
            reference = plain(got[0], drop)
        assert plain(got[0], drop) == reference, name
        sides = sorted({e.metrics["side_by_side"] for e in got[0]})
        lat = sorted(e.metrics["latency_ms"] for e in got[0])
        print(
            row(name, seconds, len(few), base_s)
            + f"  {'/'.join(map(str, sides)):>12}  {lat[len(lat) // 2]:8.3f} ms"
        )
    stop, _ = timed(ray.shutdown)
    print(f"\nRay stop: {stop:.2f} s")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
