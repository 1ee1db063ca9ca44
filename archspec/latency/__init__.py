"""Measured and predicted latency (issue 13).

* `timing`: `MeasureSettings` (runtime `ort` or `c`, threads, repeats, warm-up, the C split and
  row tile) and `Timing` (median, interquartile range, fastest run), plain data.
* `ort`, `c`: time a graph with ONNX Runtime (the ONNX target's bytes in memory) or with the C
  target compiled by gcc -O2 and our harness (templates/latency/bench.c.j2).
* `measure`: either runtime behind one call, cached within a process by the graph's content hash
  and the settings; the runtime's per-inference overhead.
* `machine`: CPU model, cores and vector flags.
* `units`: a graph's units (fused blocks, stem + first block, single ops: the C target's steps)
  as one-unit graphs with name-independent content hashes.
* `table`: latency tables (build, JSON file, validated reading, prediction = sum of units).
* `sweep`: latency in `archspec variants` (`--measure`, `--latency-table`); `report`: the
  per-row table of `archspec report --latency-table`; `command`: `archspec latency-table`.
"""

from archspec.latency.measure import time_graph, time_graphs, time_overhead
from archspec.latency.table import LatencyTable, Prediction, build_table, predict, read_table
from archspec.latency.timing import MeasureSettings, Timing
from archspec.latency.units import graph_digest, units_of

__all__ = [
    "LatencyTable",
    "MeasureSettings",
    "Prediction",
    "Timing",
    "build_table",
    "graph_digest",
    "predict",
    "read_table",
    "time_graph",
    "time_graphs",
    "time_overhead",
    "units_of",
]
