"""A sweep as the command runs it: the engine chosen on the command line (`--engine`,
`--address`), and the evaluation streamed into the output folder's journal so that an
interrupted sweep resumes (`archspec.variants.journal`). Commands that sweep (`variants`, and
others that evaluate points of a space) share `add_engine_arguments` and `engine_from_args`;
other work spread over an engine (timing a latency table's entries) goes through
`map_in_order`."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from archspec.errors import Location, SpecError
from archspec.output import Progress
from archspec.variants.engine import ANALYSIS, Engine, Work, evaluate, local_engine
from archspec.variants.journal import JOURNAL, Journal, fingerprint
from archspec.variants.model import Evaluated, Skipped, SpaceDef, Variant

ENGINES = ("local", "ray")


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """`--engine local|ray` and `--address ADDR`."""
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        default="local",
        help="where variants are evaluated: this machine (--jobs processes) or Ray tasks on "
        "every CPU of a local Ray instance or of the cluster at --address (needs "
        "`pip install 'archspec[ray]'`; --jobs is then unused; default local)",
    )
    parser.add_argument(
        "--address",
        metavar="ADDR",
        help="with --engine ray: join the Ray cluster at ADDR (host:port, or auto) instead of "
        "starting a local Ray instance",
    )


def engine_from_args(args: argparse.Namespace, jobs: int) -> Engine:
    """The engine the options ask for; a `SpecError` when Ray is asked for and missing."""
    engine = getattr(args, "engine", "local")
    address = getattr(args, "address", None)
    if engine != "ray":
        if address is not None:
            raise SpecError(
                f"found {address!r}; an address only makes sense with --engine ray",
                Location("--address"),
            )
        return local_engine(jobs)
    if address is not None and not address.strip():
        raise SpecError("found an empty address; expected host:port or auto", Location("--address"))
    from archspec.variants.ray_engine import RayEngine

    return RayEngine(address)


@dataclass
class Streamed:
    """What a streamed sweep gives: the outcomes in order, and the journal (to remove once the
    final files are in place; None without an output folder)."""

    evaluated: list[Evaluated]
    skipped: list[Skipped]
    journal: Journal | None
    resumed: int  # variants taken from the journal


def run_sweep(
    space: SpaceDef,
    variants: Sequence[Variant],
    engine: Engine,
    output: str | os.PathLike[str] | None,
    work: Work = ANALYSIS,
    restart: bool = False,
    progress: bool | None = None,
    err: TextIO | None = None,
) -> Streamed:
    """Evaluate `variants` with `engine`, each outcome journaled in `output` as it completes;
    variants already journaled there (by an interrupted run of the same sweep) are not redone."""
    err = err or sys.stderr
    start = getattr(engine, "start", None)
    stop = getattr(engine, "stop", None)
    if start is not None:
        start()  # a cluster that cannot be joined is refused before anything is written
    journal = None
    try:
        done = {}
        if output is not None:
            journal = Journal.open(output, space, fingerprint(space, variants, work), restart)
            done = journal.done(variants)
            if done or journal.dropped:
                err.write(
                    f"resuming: {len(done)} of {len(variants)} variants already in "
                    f"{journal.path}"
                    + (" (a torn last line dropped)" if journal.dropped else "")
                    + "\n"
                )
        evaluated, skipped = evaluate(
            space,
            variants,
            progress=progress,
            engine=engine,
            work=work,
            done=done,
            on_outcome=journal.append if journal is not None else None,
        )
    except BaseException:
        if journal is not None:
            journal.close()
            err.write(
                f"stopped: the variants done so far are kept in {journal.path}; "
                "rerun the same command to resume\n"
            )
        raise
    finally:
        if stop is not None:
            stop()
    return Streamed(evaluated, skipped, journal, len(done))


def map_in_order(
    engine: Engine,
    func: Callable[[Any], Any],
    items: Sequence[Any],
    threads: int = 0,
    label: str = "tasks",
    progress: bool | None = None,
) -> list[Any]:
    """`[func(item) for item in items]` on `engine` (its `map`: worker processes or Ray tasks,
    e.g. latency-table entries timed, `threads` > 0 for timing tasks), with a progress line; an
    item whose task kept killing its worker is a `Failed` in its place."""
    results: list[Any] = [None] * len(items)
    bar = Progress(len(items), label, progress)
    start = getattr(engine, "start", None)
    stop = getattr(engine, "stop", None)
    if start is not None:
        start()
    try:
        for index, value in engine.map(func, items, threads):  # type: ignore[attr-defined]
            results[index] = value
            bar.step()
    finally:
        bar.close()
        if stop is not None:
            stop()
    return results


__all__ = [
    "ENGINES",
    "JOURNAL",
    "Streamed",
    "add_engine_arguments",
    "engine_from_args",
    "map_in_order",
    "run_sweep",
]
