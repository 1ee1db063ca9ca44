"""Timing a graph with ONNX Runtime: the ONNX target's model bytes, in memory, run by an
`InferenceSession` (all graph optimisations, sequential execution, `threads` intra- and inter-op
threads) on one deterministic random input of batch 1."""

from __future__ import annotations

import time

import numpy as np

from archspec.graph import Graph
from archspec.latency.timing import MeasureSettings, Timing, summarise
from archspec.templating import environment
from archspec.weights import init_weights


def runtime_version() -> str:
    """`onnxruntime <version>`."""
    import onnxruntime

    return f"onnxruntime {onnxruntime.__version__}"


def _session(model: bytes, threads: int):  # noqa: ANN202 (onnxruntime's type)
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = threads
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def time_model(model: bytes, shape: tuple[int, ...], settings: MeasureSettings) -> Timing:
    """Time an ONNX model given as bytes whose one input has `shape`."""
    session = _session(model, settings.threads)
    name = session.get_inputs()[0].name
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    feed = {name: x}
    for _ in range(settings.warmup):
        session.run(None, feed)
    samples = []
    for _ in range(settings.repeats):
        start = time.perf_counter_ns()
        session.run(None, feed)
        samples.append(time.perf_counter_ns() - start)
    return summarise(samples)


def time_graph(graph: Graph, settings: MeasureSettings) -> Timing:
    """Time `graph` (seed-0 weights) with ONNX Runtime."""
    from archspec.targets.onnx import model_bytes

    model = model_bytes(graph, init_weights(graph), environment())
    x = graph.input.shape
    return time_model(model, (1, x.c, x.h, x.w), settings)
