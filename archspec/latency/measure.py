"""Timing graphs with a runtime (`ort` or `c`), with a cache: within one process, the same graph
(by content hash: `units.graph_digest`, names not counted) under the same settings is timed once.

Each runtime also has a per-inference overhead: the time of a graph that does almost nothing (one
ReLU on a single value) through the same path (ONNX Runtime's `run` call; the C harness's call
and the input/output layout copies). A table records it so that a prediction can count it once
per inference rather than once per unit (see `archspec.latency.table.predict`).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from archspec.graph import Graph
from archspec.latency import c, ort
from archspec.latency.timing import MeasureSettings, Timing
from archspec.latency.units import graph_digest, named
from archspec.lower import lower
from archspec.spec import load_spec_text

_CACHE: dict[tuple[object, ...], Timing] = {}
C_BATCH = 24  # graphs per C build (one harness process times them one after another)

OVERHEAD_SPEC = """\
name: overhead
input: {resolution: 1, channels: 1}
layers:
  - {op: act, act: relu}
"""


@lru_cache(maxsize=2)
def runtime_version(runtime: str) -> str:
    """The runtime and its version: `onnxruntime 1.x.y` or `gcc 12.2.0 -O2`."""
    return ort.runtime_version() if runtime == "ort" else c.runtime_version()


def time_graphs(graphs: Sequence[Graph], settings: MeasureSettings) -> list[Timing]:
    """The timing of each graph (cached by content hash and settings), in order."""
    digests = [graph_digest(g) for g in graphs]
    todo: dict[str, Graph] = {}
    for g, d in zip(graphs, digests, strict=True):
        if (d, *settings.key()) not in _CACHE and d not in todo:
            todo[d] = named(g, d)
    items = list(todo.items())
    if settings.runtime == "ort":
        for d, g in items:
            _CACHE[(d, *settings.key())] = ort.time_graph(g, settings)
    else:
        for start in range(0, len(items), C_BATCH):
            batch = items[start : start + C_BATCH]
            timings = c.time_graphs([g for _, g in batch], settings)
            for (d, _), t in zip(batch, timings, strict=True):
                _CACHE[(d, *settings.key())] = t
    return [_CACHE[(d, *settings.key())] for d in digests]


def remember(digest: str, settings: MeasureSettings, timing: Timing) -> None:
    """Record a timing made elsewhere (an engine's worker) for the graph of this digest."""
    _CACHE[(digest, *settings.key())] = timing


def time_graph(graph: Graph, settings: MeasureSettings) -> Timing:
    """The timing of one graph (cached)."""
    return time_graphs([graph], settings)[0]


def overhead_graph() -> Graph:
    """The do-nothing graph whose time is a runtime's per-inference overhead."""
    return lower(load_spec_text(OVERHEAD_SPEC, "<overhead>"))


def time_overhead(settings: MeasureSettings) -> Timing:
    """A runtime's per-inference overhead on this machine (cached like any graph)."""
    return time_graph(overhead_graph(), settings)


def clear_cache() -> None:
    """Forget every cached timing (tests)."""
    _CACHE.clear()
