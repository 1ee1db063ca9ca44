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
    """Time an ONNX model given as bytes whose one input has `shape` (batch 1).

    The input and every output are bound once to buffers allocated before the runs
    (`run_with_iobinding`), so that a run neither allocates its outputs nor copies them into
    numpy: inside a whole network a unit's output stays in ONNX Runtime's arena, and a large
    fresh allocation per run (page faults) would be counted in every unit."""
    import onnxruntime as ort

    session = _session(model, settings.threads)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    binding = session.io_binding()
    binding.bind_ortvalue_input(session.get_inputs()[0].name, ort.OrtValue.ortvalue_from_numpy(x))
    for out in session.get_outputs():
        dims = [1, *(d if isinstance(d, int) else 1 for d in out.shape[1:])]
        binding.bind_ortvalue_output(
            out.name, ort.OrtValue.ortvalue_from_shape_and_type(dims, np.float32)
        )
    for _ in range(settings.warmup):
        session.run_with_iobinding(binding)
    samples = []
    for _ in range(settings.repeats):
        start = time.perf_counter_ns()
        session.run_with_iobinding(binding)
        samples.append(time.perf_counter_ns() - start)
    return summarise(samples)


def time_graph(graph: Graph, settings: MeasureSettings) -> Timing:
    """Time `graph` (seed-0 weights) with ONNX Runtime."""
    from archspec.targets.onnx import model_bytes

    model = model_bytes(graph, init_weights(graph), environment())
    x = graph.input.shape
    return time_model(model, (1, x.c, x.h, x.w), settings)
