"""Random valid specs build for every target: the PyTorch model has the report's parameter count
and computes the numpy reference's outputs, the ONNX model passes the full checker and runs in
ONNX Runtime, the Keras model has the report's count_params, and the C sources compile warning-free
and match ONNX Runtime.

The "suite" profile (default) runs about 140 cases in well under a minute and a half on two cores;
HYPOTHESIS_PROFILE=fuzz runs FUZZ_EXAMPLES // 10 (PyTorch, ONNX), // 50 (Keras) and // 200 (C).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from archspec import analyze_cost, load_spec_text, lower
from archspec.emit import emit
from archspec.graph import Graph
from archspec.names import spec_identifier
from archspec.output import write_tree
from archspec.verify import import_module_file, target_files
from archspec.weights import init_weights, reference_forward
from tests.strategies import dump, spec_dicts

os.environ.setdefault("KERAS_BACKEND", "torch")

FUZZ = os.environ.get("HYPOTHESIS_PROFILE", "suite") == "fuzz"
FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "10000"))
GCC = shutil.which("gcc")
TOLERANCE = 1e-4


def _settings(suite: int, fuzz_divisor: int) -> settings:
    """Derandomized `suite` examples by default; a share of FUZZ_EXAMPLES in the fuzz profile."""
    if FUZZ:
        return settings(
            max_examples=max(1, FUZZ_EXAMPLES // fuzz_divisor),
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        )
    return settings(
        max_examples=suite,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow],
    )


def _graph(spec: dict) -> Graph:
    return lower(load_spec_text(dump(spec), "fuzz.yaml"))


def _input(graph: Graph, batch: int = 2) -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.standard_normal((batch, *graph.input.shape)).astype(np.float32)


def _reference(graph: Graph, weights: Mapping[str, np.ndarray], x: np.ndarray) -> list[np.ndarray]:
    runs = [reference_forward(graph, weights, xi) for xi in x]
    return [np.stack([r[name] for r in runs]) for name in graph.outputs]


def _assert_close(got: Sequence[np.ndarray], want: Sequence[np.ndarray], what: str) -> None:
    assert len(got) == len(want), what
    for g, w in zip(got, want, strict=True):
        g = np.asarray(g, dtype=np.float64)
        assert g.size == w.size, f"{what}: {g.shape} vs {w.shape}"
        assert np.all(np.isfinite(g)), what
        error = np.abs(g.ravel() - w.ravel()).max()
        assert error <= TOLERANCE * max(1.0, float(np.abs(w).max())), f"{what}: {error:.3g}"


@_settings(suite=100, fuzz_divisor=10)
@given(spec_dicts())
def test_random_spec_pytorch_matches_report_and_reference(spec):
    import torch

    graph = _graph(spec)
    cost = analyze_cost(graph)
    weights = init_weights(graph, 0)
    with tempfile.TemporaryDirectory() as tmp:
        write_tree(Path(tmp) / "out", target_files(graph, "pytorch", weights))
        folder = Path(tmp) / "out"
        module = import_module_file(folder / f"{spec_identifier(graph.name)}.py")
        model = module.build_model(str(folder / "weights.npz"))
    assert sum(p.numel() for p in model.parameters()) == cost.params_with_bn
    x = _input(graph)
    with torch.no_grad():
        out = model(torch.from_numpy(x))
    outs = out if isinstance(out, tuple) else (out,)
    _assert_close([o.numpy() for o in outs], _reference(graph, weights, x), "pytorch")


@_settings(suite=100, fuzz_divisor=10)
@given(spec_dicts())
def test_random_spec_onnx_passes_the_checker_and_runs(spec):
    import onnx
    import onnxruntime

    graph = _graph(spec)
    weights = init_weights(graph, 0)
    files = emit(graph, "onnx", weights)
    data = files[f"{spec_identifier(graph.name)}.onnx"]
    onnx.checker.check_model(onnx.load_from_string(data), full_check=True)
    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    x = _input(graph)
    outs = session.run(list(graph.outputs), {"input": x})
    _assert_close(outs, _reference(graph, weights, x), "onnx")


@_settings(suite=25, fuzz_divisor=50)
@given(spec_dicts())
def test_random_spec_keras_count_params_matches_report(spec):
    graph = _graph(spec)
    files = emit(graph, "keras", init_weights(graph, 0))
    with tempfile.TemporaryDirectory() as tmp:
        write_tree(Path(tmp) / "out", files)
        module = import_module_file(Path(tmp) / "out" / f"{spec_identifier(graph.name)}.py")
    model = module.build_model()
    assert model.count_params() == analyze_cost(graph).keras_count_params


def _compile_and_run(folder: Path, ident: str, x_chw: np.ndarray, size: int) -> np.ndarray:
    sources = [folder / "run.c", folder / f"{ident}.c", folder / f"{ident}_weights.c"]
    exe = folder / "run"
    done = subprocess.run(
        [GCC, "-std=c99", "-O1", "-Wall", "-Wextra", "-Werror", "-o", str(exe)]
        + [str(s) for s in sources]
        + ["-lm"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[:4000]
    x_chw.astype("<f4").tofile(folder / "in.f32")
    subprocess.run(
        [str(exe), str(folder / "in.f32"), str(folder / "out.f32")],
        capture_output=True,
        text=True,
        check=True,
    )
    out = np.fromfile(folder / "out.f32", dtype="<f4")
    assert out.size == size
    return out


@pytest.mark.skipif(GCC is None, reason="needs gcc")
@_settings(suite=8, fuzz_divisor=200)
@given(spec_dicts(max_rows=5))
def test_random_spec_c_compiles_and_matches_onnxruntime(spec):
    import onnxruntime

    graph = _graph(spec)
    weights = init_weights(graph, 0)
    ident = spec_identifier(graph.name)
    x = _input(graph, batch=1)
    model = emit(graph, "onnx", weights)[f"{ident}.onnx"]
    session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
    expected = session.run(list(graph.outputs), {"input": x})
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "out"
        write_tree(folder, emit(graph, "c", weights))
        out = _compile_and_run(folder, ident, x[0], sum(e.size for e in expected))
    offset, got = 0, []
    for e in expected:
        got.append(out[offset : offset + e.size])
        offset += e.size
    _assert_close(got, [e.astype(np.float64) for e in expected], "c")
