"""Cross-check against an implementation nobody here wrote: `keras.applications.MobileNetV2`
(Keras 3, torch backend) at every width of the paper. Its per-layer output shapes and weight
shapes must equal our graph's, its `count_params()` our cost report's, and our generated Keras
model's `count_params()` its own."""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

import numpy as np
import pytest

os.environ["KERAS_BACKEND"] = "torch"  # before keras is imported anywhere in this process
keras = pytest.importorskip("keras")

from archspec.analysis.cost import analyze_cost  # noqa: E402
from archspec.emit import emit  # noqa: E402
from archspec.graph import Graph, weight_key  # noqa: E402
from archspec.lower import lower  # noqa: E402
from archspec.spec import load_spec  # noqa: E402
from archspec.weights import expected_weights, init_weights  # noqa: E402

MNV2 = Path(__file__).resolve().parent.parent / "specs" / "mnv2_1.0.yaml"
WIDTHS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)

# keras.applications' layer names → (our node, which part of it). Its `block_N_pad` layers are
# its own asymmetric stride-2 padding, which our graph has no node for. Its input and global pool
# are named by Keras' session counters (`input_layer_3`), so they are matched by class.
FIXED = {
    "Conv1": ("stem", "conv"),
    "bn_Conv1": ("stem", "bn"),
    "Conv1_relu": ("stem", "out"),
    "Conv_1": ("last_conv", "conv"),
    "Conv_1_bn": ("last_conv", "bn"),
    "out_relu": ("last_conv", "out"),
    "predictions": ("classifier", "conv"),
}
BLOCK = re.compile(
    r"^(?:expanded_conv|block_(?P<n>\d+))_(?P<role>expand|depthwise|project|add)"
    r"(?P<suffix>_BN|_relu)?$"
)
ROLE = {"expand": "expand", "depthwise": "dw", "project": "project", "add": "add"}
PART = {None: "conv", "_BN": "bn", "_relu": "out"}


def keras_node(layer: keras.layers.Layer) -> tuple[str, str] | None:
    """Our node and part for a keras.applications layer; None for its padding layers."""
    if isinstance(layer, keras.layers.InputLayer):
        return "input", "out"
    if isinstance(layer, keras.layers.GlobalAveragePooling2D):
        return "pool", "out"
    layer_name = layer.name
    if layer_name in FIXED:
        return FIXED[layer_name]
    if re.fullmatch(r"block_\d+_pad", layer_name):
        return None
    m = BLOCK.match(layer_name)
    assert m, f"unmapped keras.applications layer {layer_name!r}"
    block = int(m["n"]) if m["n"] else 0
    part = "out" if m["role"] == "add" else PART[m["suffix"]]
    return f"block{block}_{ROLE[m['role']]}", part


def keras_weights(graph: Graph, name: str, part: str) -> list[tuple[str, tuple[int, ...]]]:
    """The canonical arrays behind one Keras layer (a conv / Dense or its BatchNorm) with their
    shapes in Keras' layouts, in Keras' order."""
    node = graph.node(name)
    shapes = {w.name: w.shape for w in graph.weights(node)}
    if part == "bn":
        return [
            (weight_key(name, n), shapes[n]) for n in ("bn_gamma", "bn_beta", "bn_mean", "bn_var")
        ]
    if part != "conv":
        return []
    w = shapes["weight"]
    c_in = graph.input_shapes(node)[0].c
    if node.op == "fc":  # (out, in) → Dense (in, out)
        kernel = (w[1], w[0])
    elif node.attrs["groups"] == c_in > 1:  # depthwise (C·m, 1, k, k) → (k, k, C, m)
        kernel = (w[2], w[3], c_in, w[0] // c_in)
    else:  # OIHW → HWIO
        kernel = (w[2], w[3], w[1], w[0])
    out = [(weight_key(name, "weight"), kernel)]
    if "bias" in shapes:
        out.append((weight_key(name, "bias"), shapes["bias"]))
    return out


def our_output_shape(graph: Graph, node: str) -> tuple[int, ...]:
    """Our tensor as keras.applications holds it: NHWC without the batch; its global pool and
    classifier are flat."""
    shape = graph.node(node).shape
    if node in ("pool", "classifier"):
        assert (shape.h, shape.w) == (1, 1)
        return (shape.c,)
    return tuple(shape.hwc())


@pytest.fixture(scope="module", params=WIDTHS, ids=[f"alpha{a}" for a in WIDTHS])
def pair(request: pytest.FixtureRequest) -> tuple[float, Graph, keras.Model]:
    alpha = request.param
    graph = lower(load_spec(str(MNV2), [f"width_multiplier={alpha}"]))
    model = keras.applications.MobileNetV2(weights=None, alpha=alpha, input_shape=(224, 224, 3))
    return alpha, graph, model


def test_layer_output_shapes_equal_ours(pair: tuple[float, Graph, keras.Model]) -> None:
    _, graph, model = pair
    visited: list[str] = []
    for layer in model.layers:
        mapped = keras_node(layer)
        if mapped is None:
            assert isinstance(layer, keras.layers.ZeroPadding2D), layer.name
            continue
        node, _ = mapped
        assert tuple(layer.output.shape[1:]) == our_output_shape(graph, node), layer.name
        if not visited or visited[-1] != node:
            visited.append(node)
    # every node of ours, in our order
    assert visited == [n.name for n in graph.nodes]


def test_weight_shapes_equal_ours(pair: tuple[float, Graph, keras.Model]) -> None:
    _, graph, model = pair
    covered: list[str] = []
    for layer in model.layers:
        mapped = keras_node(layer)
        ours = keras_weights(graph, *mapped) if mapped else []
        assert [tuple(w.shape) for w in layer.weights] == [s for _, s in ours], layer.name
        covered += [key for key, _ in ours]
    # every array of ours, each behind exactly one Keras weight
    assert sorted(covered) == sorted(expected_weights(graph))


def test_count_params_equals_our_cost_report(pair: tuple[float, Graph, keras.Model]) -> None:
    alpha, graph, model = pair
    assert model.count_params() == analyze_cost(graph).keras_count_params
    if alpha == 1.0:
        assert model.count_params() == 3_538_984  # Keras' published figure for 1.0_224
    if alpha == 1.4:
        assert graph.node("last_conv").shape.c == 1792


def test_generated_keras_model_count_params_equals_theirs(
    pair: tuple[float, Graph, keras.Model], tmp_path: Path
) -> None:
    alpha, graph, model = pair
    ((name, text),) = emit(graph, "keras", init_weights(graph)).items()
    path = tmp_path / name
    path.write_text(text)
    spec = importlib.util.spec_from_file_location(f"generated_alpha_{alpha}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    ours = module.build_model()
    assert ours.count_params() == model.count_params()

    # the same trainable / non-trainable split (BatchNorm statistics are not trained)
    def split(m: keras.Model) -> tuple[int, int]:
        trainable = sum(int(np.prod(w.shape)) for w in m.trainable_weights)
        return trainable, sum(int(np.prod(w.shape)) for w in m.non_trainable_weights)

    assert split(ours) == split(model)
