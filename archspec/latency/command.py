"""`archspec latency-table SPACE --measure ort|c [--threads T] [--repeats N] [--n N --seed S]
-o table.json`: time every distinct unit the space's variants contain, once each (the options
are defined in archspec/cli.py)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import TextIO

from archspec.errors import Location, SpecError
from archspec.graph import Graph
from archspec.latency.measure import remember, runtime_version, time_graphs
from archspec.latency.table import build_table, distinct_units, render_table
from archspec.latency.timing import (
    DEFAULT_REPEATS,
    MAX_REPEATS,
    MAX_THREADS,
    RUNTIMES,
    MeasureSettings,
    Timing,
)
from archspec.latency.units import units_of
from archspec.lower import lower
from archspec.output import FileOutput, Progress, check_file_destination, write_outputs
from archspec.variants.engine import Engine
from archspec.variants.model import Point, SpaceDef, SpaceSource
from archspec.variants.parse import read_source
from archspec.variants.sampling import grid_variants, resolve, sample_points, unique
from archspec.variants.streaming import engine_from_args

DEFAULT_CALIBRATE = 0  # see benchmarks/bench_latency.py: a factor measured under load misleads


def space_graphs(space: SpaceDef, n: int | None, seed: int | None) -> tuple[list[Graph], int]:
    """The lowered graphs of a space's variants (every point of every grid, or a random sample
    of `n`), and how many were illegal."""
    legal, illegal = _legal(space, n, seed)
    return [g for _, g in legal], illegal


def _legal(
    space: SpaceDef, n: int | None, seed: int | None
) -> tuple[list[tuple[Point, Graph]], int]:
    if n is None:
        variants = grid_variants(space)
    else:
        variants, _, _ = unique(space, sample_points(space, n, 0 if seed is None else seed))
    legal, illegal = [], 0
    for v in variants:
        try:
            legal.append((v.point, lower(v.spec)))
        except SpecError:
            illegal += 1
    return legal, illegal


def time_variant_units(
    item: tuple[SpaceSource, Point, tuple[str, ...], MeasureSettings],
) -> list[tuple[str, Timing]]:
    """Picklable task of an engine: read the space again, resolve and lower the variant at the
    point, and time those of its units whose digests are listed."""
    source, point, digests, settings = item
    graph = lower(resolve(read_source(source), point).spec)
    wanted = [u for u in units_of(graph, settings.split) if u.digest in set(digests)]
    timings = time_graphs([u.graph for u in wanted], settings)
    return [(u.digest, t) for u, t in zip(wanted, timings, strict=True)]


def _time_on_engine(
    engine: Engine, space: SpaceDef, legal: list[tuple[Point, Graph]], settings: MeasureSettings
) -> None:
    """Time every distinct unit on `engine` (one task per variant that brings new units) and
    remember the timings, so that `build_table` finds them all."""
    from archspec.variants.streaming import map_in_order

    seen: set[str] = set()
    items = []
    for point, graph in legal:
        new = tuple(
            dict.fromkeys(u.digest for u in units_of(graph, settings.split) if u.digest not in seen)
        )
        seen.update(new)
        if new:
            items.append((space.source, point, new, settings))
    for result in map_in_order(engine, time_variant_units, items, settings.threads, "variants"):
        if isinstance(result, list):  # a task that kept failing is timed here by build_table
            for digest, timing in result:
                remember(digest, settings, timing)


def settings_from_args(args: argparse.Namespace) -> MeasureSettings:
    """The measure settings of `--measure`, `--threads`, `--repeats`, `--split`."""
    if args.measure == "c" and args.threads not in (None, 1):
        raise SpecError(
            f"found {args.threads}; the C target runs on one thread", Location("--threads")
        )
    for flag in ("split", "row_tile"):
        if args.measure != "c" and getattr(args, flag, None) is not None:
            raise SpecError("applies to --measure c only", Location(f"--{flag.replace('_', '-')}"))
    return MeasureSettings(
        args.measure,
        args.threads or 1,
        args.repeats or DEFAULT_REPEATS,
        split=getattr(args, "split", None) or 1,
        row_tile=getattr(args, "row_tile", None),
    )


def run_latency_table(
    args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """`archspec latency-table`: every check before any work; the table written whole."""
    from archspec.variants.space import Space

    err = err or sys.stderr
    out = out or sys.stdout
    settings = settings_from_args(args)
    space = Space.load(args.space)
    if args.output is not None:
        check_file_destination(args.output, "-o")
    if args.n == 0:
        raise SpecError("found 0; expected at least one variant", Location("--n"))
    runtime_version(settings.runtime)  # no runtime or compiler: an error now, not after work
    engine = engine_from_args(args, args.jobs or os.cpu_count() or 1)
    began = time.monotonic()
    legal, illegal = _legal(space, args.n, args.seed)
    graphs = [g for _, g in legal]
    if getattr(args, "engine", "local") == "ray" or (args.jobs or os.cpu_count() or 1) > 1:
        _time_on_engine(engine, space, legal, settings)
    units = distinct_units(graphs, settings.split)
    bar = Progress(len(units), "units")

    def step(k: int) -> None:
        for _ in range(k):
            bar.step()

    table = build_table(graphs, settings, space.name, step, args.calibrate)
    bar.close()
    text = render_table(table)
    if args.output is None:
        out.write(text)
    else:
        write_outputs([FileOutput(args.output, text, "-o")])
    err.write(
        f"{space.name}: {len(graphs)} variants ({illegal} illegal skipped) -> "
        f"{len(table.entries)} distinct units timed with {table.runtime_version} "
        f"({settings.repeats} runs each, {settings.threads} thread(s)) in "
        f"{time.monotonic() - began:.1f} s; overhead per inference "
        f"{table.overhead.median_ms * 1000:.1f} us, context factor {table.factor} "
        f"({len(table.calibration)} variants measured whole)"
        + (f"; wrote {args.output}" if args.output else "")
        + "\n"
    )
    return 0


def _repeats(text: str) -> int:
    from archspec.output import nonnegative_int

    value = nonnegative_int(text)
    if not 1 <= value <= MAX_REPEATS:
        raise argparse.ArgumentTypeError(f"expected 1 to {MAX_REPEATS}")
    return value


def _threads(text: str) -> int:
    from archspec.output import nonnegative_int

    value = nonnegative_int(text)
    if not 1 <= value <= MAX_THREADS:
        raise argparse.ArgumentTypeError(f"expected 1 to {MAX_THREADS}")
    return value


def add_measure_arguments(p: argparse.ArgumentParser, required: bool = False) -> None:
    """`--measure ort|c`, `--threads T`, `--repeats N` (shared by `variants` and
    `latency-table`)."""
    p.add_argument(
        "--measure",
        choices=RUNTIMES,
        required=required,
        help="time with ONNX Runtime (ort) or the compiled C target (c, gcc -O2)",
    )
    p.add_argument(
        "--threads",
        type=_threads,
        default=None,
        metavar="T",
        help="ONNX Runtime intra- and inter-op threads (default 1; the C target uses one)",
    )
    p.add_argument(
        "--repeats",
        type=_repeats,
        default=None,
        metavar="N",
        help=f"timed runs after the warm-up; the median is reported (default {DEFAULT_REPEATS})",
    )


def add_variants_arguments(p: argparse.ArgumentParser) -> None:
    """The latency options of `archspec variants`."""
    add_measure_arguments(p)
    p.add_argument(
        "--latency-table",
        metavar="FILE",
        help="predict latency_ms from a table written by `archspec latency-table` (the sum of "
        "the variant's units, marked predicted)",
    )
    p.add_argument(
        "--foreign-table",
        action="store_true",
        help="accept a --latency-table measured on another machine (predictions are for it)",
    )


def add_latency_table_parser(sub: argparse._SubParsersAction) -> None:
    """Register `archspec latency-table`."""
    from archspec.output import nonnegative_int

    p = sub.add_parser(
        "latency-table",
        help="time every distinct block of a search space once (a latency table)",
        description="Time every distinct unit (fused block, stem + first block, or single op, "
        "with its input shape; for c also the split) that the space's variants contain, each "
        "once as a one-unit network, plus the runtime's per-inference overhead, and write the "
        "table as JSON. `archspec variants SPACE --latency-table FILE` then predicts each "
        "variant's latency as the sum of its units.",
    )
    p.add_argument("space", metavar="SPACE", help="search-space file (YAML)")
    add_measure_arguments(p, required=True)
    p.add_argument(
        "--split",
        type=_split,
        default=None,
        metavar="T|n",
        help="c: the split of every fused block's expansion (default 1)",
    )
    p.add_argument(
        "--row-tile",
        type=_row_tile,
        default=None,
        metavar="R",
        help="c: run every fused block in bands of R output rows (default: off)",
    )
    p.add_argument(
        "--n",
        type=nonnegative_int,
        default=None,
        metavar="N",
        help="only the units of N randomly drawn variants (default: every point of the space)",
    )
    p.add_argument(
        "--seed", type=nonnegative_int, default=None, metavar="S", help="sampling seed (default 0)"
    )
    p.add_argument(
        "--calibrate",
        type=nonnegative_int,
        default=DEFAULT_CALIBRATE,
        metavar="K",
        help="measure K variants whole (evenly spread over the space) for the context factor "
        f"that scales the sum of units (0: none; default {DEFAULT_CALIBRATE})",
    )
    p.add_argument(
        "--jobs",
        type=nonnegative_int,
        default=1,
        metavar="J",
        help="time in J worker processes, never more than the cores (0: one per core; default 1)",
    )
    from archspec.variants.streaming import add_engine_arguments

    add_engine_arguments(p)
    p.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    p.set_defaults(handler=run_latency_table)


def _split(text: str) -> int | str:
    from archspec.options import parse_split

    try:
        return parse_split(text)
    except SpecError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def _row_tile(text: str) -> int:
    from archspec.options import parse_row_tile

    try:
        return parse_row_tile(text)
    except SpecError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None
