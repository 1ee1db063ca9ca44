"""The ONNX target: golden text and bytes, the checker, pinned versions, names, and numerics in
ONNX Runtime and onnx.reference.ReferenceEvaluator against the numpy reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx.reference import ReferenceEvaluator

from archspec.emit import emit, environment
from archspec.lower import lower
from archspec.ops import GRAPH_OPS
from archspec.spec import load_spec
from archspec.targets import onnx as target
from archspec.weights import init_weights, reference_forward
from tests.conftest import RESIZES, resize_graph

ort = pytest.importorskip("onnxruntime")

ROOT = Path(__file__).resolve().parent.parent
MNV2 = ROOT / "specs" / "mnv2_1.0.yaml"


def _reference(graph, weights, x: np.ndarray) -> dict[str, np.ndarray]:
    refs = [reference_forward(graph, weights, xi) for xi in x]
    return {name: np.stack([r[name] for r in refs]) for name in graph.outputs}


def _assert_close(graph, outs, ref) -> None:
    for name, out in zip(graph.outputs, outs, strict=True):
        expected = ref[name].reshape(out.shape)
        assert np.abs(out - expected).max() <= 1e-4 * max(1.0, np.abs(expected).max()), name


def _session(data: bytes):
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def mnv2():
    return lower(load_spec(str(MNV2)))


@pytest.fixture(scope="module")
def mnv2_bytes(mnv2) -> bytes:
    return target.model_bytes(mnv2, init_weights(mnv2, 0), environment())


def test_golden_mnv2(mnv2, mnv2_bytes, golden) -> None:
    golden("onnx/mnv2_1.0.onnxtxt", target.render_text(mnv2, environment()))
    # The bytes (template text + seed-0 weights) as a digest: any change to the serialised
    # model shows up here even when the text is unchanged.
    golden("onnx/mnv2_1.0.seed0.sha256", target.digest(mnv2_bytes) + "\n")


def test_bytes_are_deterministic(mnv2, mnv2_bytes) -> None:
    files = emit(mnv2, "onnx", init_weights(mnv2, 0))
    assert files == {"mobilenet_v2_1_0_224.onnx": mnv2_bytes}
    assert target.model_bytes(mnv2, init_weights(mnv2, 1), environment()) != mnv2_bytes


def test_checker_versions_and_names(mnv2, mnv2_bytes) -> None:
    model = onnx.load_from_string(mnv2_bytes)
    onnx.checker.check_model(model, full_check=True)
    assert model.ir_version == target.IR_VERSION == 8
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 18)]
    (inp,) = model.graph.input
    dims = inp.type.tensor_type.shape.dim
    assert inp.name == "input"
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", 3, 224, 224]
    (out,) = model.graph.output
    assert out.name == "classifier"
    assert [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim] == ["batch", 1000]
    # Every graph node is findable by name, and every weight is an initializer under its
    # canonical key.
    onnx_nodes = {n.name.split("/")[0] for n in model.graph.node}
    assert onnx_nodes == {n.name for n in mnv2.ops()}
    inits = {i.name for i in model.graph.initializer}
    assert {k for k in init_weights(mnv2, 0)} <= inits


def _inferred_shapes(data: bytes) -> dict[str, list[int | str]]:
    model = onnx.load_from_string(data)
    values = [*model.graph.value_info, *model.graph.output]
    return {
        v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim] for v in values
    }


def test_onnx_shape_inference_agrees_with_ours(mnv2, mnv2_bytes, branching_graph) -> None:
    from archspec.targets.pytorch import flat_tensors

    branching_bytes = target.model_bytes(branching_graph, init_weights(branching_graph, 0),
                                         environment())  # fmt: skip
    for graph, data in ((mnv2, mnv2_bytes), (branching_graph, branching_bytes)):
        inferred = _inferred_shapes(data)
        flat = flat_tensors(graph)
        for node in graph.ops():
            s = node.shape
            ours = ["batch", s.c] if node.name in flat else ["batch", s.c, s.h, s.w]
            assert inferred[node.name] == ours, node.name


def test_mnv2_runs_in_onnxruntime(mnv2, mnv2_bytes) -> None:
    weights = init_weights(mnv2, 0)
    x = np.random.default_rng(5).standard_normal((3, 3, 224, 224)).astype(np.float32)
    outs = _session(mnv2_bytes).run(None, {"input": x})
    assert outs[0].shape == (3, 1000)
    _assert_close(mnv2, outs, _reference(mnv2, weights, x))


def test_branching_spec_in_onnxruntime_and_reference_evaluator(branching_graph) -> None:
    graph = branching_graph
    assert {n.op for n in graph.ops()} == set(GRAPH_OPS) - {"input"}
    weights = init_weights(graph, 3)
    data = target.model_bytes(graph, weights, environment())
    onnx.checker.check_model(onnx.load_from_string(data), full_check=True)
    x = np.random.default_rng(6).standard_normal((2, 3, 20, 14)).astype(np.float32)
    ref = _reference(graph, weights, x)
    outs = _session(data).run(None, {"input": x})
    assert [o.shape for o in outs] == [(2, 8, 5, 4), (2, 7), (2, 8, 1, 1)]
    _assert_close(graph, outs, ref)
    _assert_close(graph, ReferenceEvaluator(data).run(None, {"input": x}), ref)


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
@pytest.mark.parametrize("case", sorted(RESIZES))
def test_resize_matches_the_numpy_oracle(case: str, mode: str) -> None:
    graph = resize_graph(case, mode)
    hw = [graph.input.shape.h, graph.input.shape.w]
    data = target.model_bytes(graph, {}, environment())
    x = np.random.default_rng(7).standard_normal((2, 2, *hw)).astype(np.float32)
    ref = _reference(graph, {}, x)
    _assert_close(graph, _session(data).run(None, {"input": x}), ref)
    _assert_close(graph, ReferenceEvaluator(data).run(None, {"input": x}), ref)


def test_every_graph_op_has_a_fragment() -> None:
    folder = environment().loader.searchpath[0]
    for op in set(GRAPH_OPS) - {"input"}:
        assert (Path(folder) / "onnx" / "ops" / f"{op}.onnxtxt.j2").is_file(), op
