"""Latency in a variant sweep: the request (measure with a runtime, or predict from a table), the
metrics it adds to a variant, and the checks `archspec variants` makes before any work.

A request is plain data (`MeasureSettings`, or a `LatencyTable` read from its file), so an engine
may send it with each point to wherever `evaluate_point(space, point, latency)` runs.

Metrics added to a manifest row: `latency_ms` (the median of the timed runs, or the prediction),
`latency_predicted`, `latency_runtime` (runtime and version), `latency_machine` (CPU, cores,
flags: this machine's when measured, the table's when predicted); measured rows add
`latency_iqr_ms` and `latency_min_ms` (the spread: interquartile range and fastest run),
`latency_threads` and `latency_repeats`; predicted rows add `latency_min_ms` (the same sum over
the entries' fastest runs, to compare with a measured `latency_min_ms`) and `latency_missing`
(ids of units the table lacks; both latencies are then null).
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Sequence
from typing import Any

from archspec.errors import Location, SpecError
from archspec.graph import Graph
from archspec.latency.machine import machine_info
from archspec.latency.measure import runtime_version, time_graph
from archspec.latency.table import LatencyTable, check_machine, predict, read_table
from archspec.latency.timing import DEFAULT_REPEATS, MeasureSettings

LatencyRequest = MeasureSettings | LatencyTable
LATENCY_METRIC = "latency_ms"


def latency_metrics(graph: Graph, request: LatencyRequest) -> dict[str, Any]:
    """The latency fields of one variant (see the module docstring)."""
    if isinstance(request, MeasureSettings):
        t = time_graph(graph, request)
        return {
            "latency_ms": t.median_ms,
            "latency_iqr_ms": round(t.iqr_ms, 6),
            "latency_min_ms": t.min_ms,
            "latency_predicted": False,
            "latency_runtime": runtime_version(request.runtime),
            "latency_threads": request.threads,
            "latency_repeats": request.repeats,
            "latency_machine": machine_info(),
        }
    p = predict(request, graph)
    return {
        "latency_ms": p.latency_ms,
        "latency_min_ms": p.min_ms,
        "latency_predicted": True,
        "latency_runtime": request.runtime_version,
        "latency_machine": dict(request.machine),
        "latency_missing": list(p.missing),
    }


def request_from_args(args: argparse.Namespace) -> LatencyRequest | None:
    """The latency request of `archspec variants` flags, checked (and a table read) before any
    work: `--measure ort|c [--threads T] [--repeats N]`, or `--latency-table FILE
    [--foreign-table]`."""
    measure = getattr(args, "measure", None)
    table_path = getattr(args, "latency_table", None)
    threads = getattr(args, "threads", None)
    repeats = getattr(args, "repeats", None)
    if measure is not None and table_path is not None:
        raise SpecError(
            "--measure and --latency-table both give latency_ms; expected one of them",
            Location("--latency-table"),
        )
    if measure is None:
        for flag, value in (("--threads", threads), ("--repeats", repeats)):
            if value is not None:
                raise SpecError("applies to --measure only", Location(flag), hint="add --measure")
    if getattr(args, "foreign_table", False) and table_path is None:
        raise SpecError("applies to --latency-table only", Location("--foreign-table"))
    if measure == "c" and threads not in (None, 1):
        raise SpecError(f"found {threads}; the C target runs on one thread", Location("--threads"))
    if measure is not None:
        settings = MeasureSettings(
            measure,
            threads if threads is not None else 1,
            repeats if repeats is not None else DEFAULT_REPEATS,
        )
        runtime_version(measure)  # a missing runtime or compiler fails here, before any work
        return settings
    if table_path is not None:
        table = read_table(table_path)
        if not getattr(args, "foreign_table", False):
            check_machine(table, table_path)
        return table
    return None


def metric_names(request: LatencyRequest | None) -> list[str]:
    """The names a request adds to those `--where` and `--pareto` accept."""
    return [LATENCY_METRIC] if request is not None else []


def check_complete(rows_metrics: Sequence[dict[str, Any]], used: bool, table: str) -> None:
    """When `--where` or `--pareto` uses latency_ms, every variant must have one: a variant with
    a unit the table lacks is refused (before anything is written), never guessed."""
    if not used:
        return
    lacking = [m for m in rows_metrics if m.get(LATENCY_METRIC) is None]
    if lacking:
        first = lacking[0].get("latency_missing", [])
        raise SpecError(
            f"{len(lacking)} variants have units the table lacks (e.g. {', '.join(first[:3])}), "
            "so latency_ms cannot filter or rank them",
            Location(table),
            "entries",
            "build the table from this space: archspec latency-table SPACE ...",
        )


def summary(request: LatencyRequest | None) -> dict[str, Any] | None:
    """The `latency` part of a sweep's summary.json."""
    if request is None:
        return None
    if isinstance(request, MeasureSettings):
        return {
            "measured": True,
            "runtime": runtime_version(request.runtime),
            "threads": request.threads,
            "repeats": request.repeats,
            "warmup": request.warmup,
            "machine": machine_info(),
            "spread": "latency_iqr_ms: 75th - 25th percentile; latency_min_ms: fastest run",
        }
    return {
        "measured": False,
        "predicted_from": request.source,
        "runtime": request.runtime_version,
        "threads": request.threads,
        "machine": dict(request.machine),
        "entries": len(request.entries),
        "overhead_ms": request.overhead.median_ms,
    }


def latency_work(request: LatencyRequest) -> Any:
    """The `Work` (archspec.variants.engine) of a sweep with latency: `evaluate_point` with the
    request, and for a measurement the threads each timing uses (engines run no more timing
    tasks at once than the cores allow)."""
    from archspec.variants.engine import Work
    from archspec.variants.evaluation import evaluate_point

    threads = request.threads if isinstance(request, MeasureSettings) else 0
    return Work(functools.partial(evaluate_point, latency=request), threads)
