"""The Keras 3 target: generated modules are ruff-clean, deterministic, stand alone, and compute
what the numpy reference computes (Keras on the torch backend)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

os.environ["KERAS_BACKEND"] = "torch"  # before keras is imported anywhere in this process
keras = pytest.importorskip("keras")
torch = pytest.importorskip("torch")

from archspec.analysis.cost import analyze_cost  # noqa: E402
from archspec.emit import emit  # noqa: E402
from archspec.errors import SpecError  # noqa: E402
from archspec.graph import Graph  # noqa: E402
from archspec.lower import lower  # noqa: E402
from archspec.names import spec_identifier  # noqa: E402
from archspec.ops import GRAPH_OPS  # noqa: E402
from archspec.spec import load_spec, load_spec_text  # noqa: E402
from archspec.targets.keras import flat_tensors  # noqa: E402
from archspec.weights import init_weights, reference_forward, save_weights  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MNV2 = ROOT / "specs" / "mnv2_1.0.yaml"

# Every conv variant: bias without BatchNorm, groups, depthwise with a multiplier, a stride with a
# dilation (Keras' Conv2D refuses that pair), windowed and global pooling, an fc whose output
# feeds a conv, an fc with an activation, several outputs, a non-square input, exact channels.
SPEC_CONVS = """
name: keras-convs.v1
input: {resolution: [9, 11], channels: 4}
num_classes: 10
rounding: {divisor: 1, min: 1}
outputs: [grouped, dil_s2, dw_mult, head]
layers:
  - {op: conv2d, name: plain, c: 8, k: 3, s: 2, bn: false, act: relu}
  - {op: conv2d, name: grouped, c: 12, k: 3, groups: 4, act: linear}
  - {op: conv2d, name: dil_s2, from: grouped, c: 6, k: 3, s: 2, dilation: 2, bias: true}
  - {op: dwconv, name: dw_mult, from: grouped, multiplier: 2, k: 5, s: 2, dilation: 2}
  - {op: dwconv, name: dw_bias, k: 3, bn: false, bias: true, act: relu}
  - {op: avgpool, name: window, k: 2, s: 1}
  - {op: avgpool, name: gpool, global: true}
  - {op: fc, name: hidden, c: 16, act: relu6}
  - {op: conv2d, name: on_fc, c: 8, k: 1}
  - {op: fc, name: head, c: num_classes, bias: false}
"""

# Bottlenecks (t = 1 residual, t = 6 strided and residual, k = 5 dilated), a three-way add with
# an activation, a concat, nearest and bilinear upsampling by `like` and by `factor`.
SPEC_BLOCKS = """
name: keras_blocks
input: {resolution: 13, channels: 3}
rounding: {divisor: 4, min: 4}
outputs: [merged, up_nearest, up_bilinear]
layers:
  - {op: conv2d, name: stem, c: 8, k: 3, s: 2}
  - {op: bottleneck, name: b1, t: 1, c: 8, n: 1, s: 1}
  - {op: bottleneck, name: b6, t: 6, c: 12, n: 2, s: 2}
  - {op: bottleneck, name: b6r, t: 6, c: 12, n: 1, s: 1, k: 5, dilation: 2}
  - {op: conv2d, name: side, from: b1, c: 12, k: 3, s: 2, act: relu}
  - {op: add, name: merged, from: [b6r, side, b6], act: relu}
  - {op: concat, name: cat, from: [merged, side, b6r]}
  - {op: upsample, name: up_nearest, from: cat, like: stem, mode: nearest}
  - {op: upsample, name: up_bilinear, from: merged, factor: 3}
"""

# Resizing from 1×1, up and down by non-integer ratios, non-square, both modes.
SPEC_RESIZE = """
name: keras_resize
input: {resolution: [5, 7], channels: 3}
outputs: [from1_bil, from1_near, up_bil, up_near, down_bil, down_near, times3]
layers:
  - {op: avgpool, name: g, global: true}
  - {op: upsample, name: from1_bil, from: g, like: input}
  - {op: upsample, name: from1_near, from: g, like: input, mode: nearest}
  - {op: conv2d, name: small, from: input, c: 8, k: 3, s: 2}
  - {op: upsample, name: up_bil, from: small, like: input}
  - {op: upsample, name: up_near, from: small, like: input, mode: nearest}
  - {op: upsample, name: down_bil, from: input, like: small}
  - {op: upsample, name: down_near, from: input, like: small, mode: nearest}
  - {op: upsample, name: times3, from: small, factor: 3, mode: nearest}
"""

LONG = [f"{prefix}_" + "n" * (62 - len(prefix)) for prefix in "abcdefg"]
# 63-character names everywhere, to exercise the line splitting of the generated statements.
SPEC_LONG_NAMES = f"""
name: {"z" * 63}
input: {{resolution: 8, channels: 3}}
outputs: [{LONG[3]}, {LONG[6]}]
layers:
  - {{op: conv2d, name: {LONG[0]}, c: 8, k: 3, s: 2}}
  - {{op: conv2d, name: {LONG[1]}, c: 8, k: 1, act: linear}}
  - {{op: add, name: {LONG[2]}, from: [{LONG[0]}, {LONG[1]}, {LONG[0]}]}}
  - {{op: concat, name: {LONG[3]}, from: [{LONG[0]}, {LONG[1]}, {LONG[2]}]}}
  - {{op: upsample, name: {LONG[4]}, factor: 2}}
  - {{op: avgpool, name: {LONG[5]}, global: true}}
  - {{op: fc, name: {LONG[6]}, c: 10, act: relu6}}
"""

SPECS = {"convs": SPEC_CONVS, "blocks": SPEC_BLOCKS, "resize": SPEC_RESIZE, "long": SPEC_LONG_NAMES}


def _graph(text: str) -> Graph:
    return lower(load_spec_text(text, "test.yaml"))


def _import(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"generated_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Built:
    """A graph, its weights, and its generated Keras module written to disk and imported."""

    def __init__(self, graph: Graph, directory: Path, seed: int = 0) -> None:
        self.graph = graph
        self.weights = init_weights(graph, seed)
        files = emit(graph, "keras", self.weights)
        assert list(files) == [f"{spec_identifier(graph.name)}.py"]
        ((name, text),) = files.items()
        assert isinstance(text, str)
        self.text = text
        self.path = directory / name
        self.path.write_text(text)
        self.module = _import(self.path)


def _run(model: keras.Model, x_chw: np.ndarray) -> list[np.ndarray]:
    y = model(x_chw.transpose(1, 2, 0)[None], training=False)
    ys = y if isinstance(y, list) else [y]
    return [keras.ops.convert_to_numpy(t)[0] for t in ys]


def _as_keras_layout(graph: Graph, name: str, ref: np.ndarray) -> np.ndarray:
    """The reference tensor (C, H, W) in the layout the Keras model returns it: flat for fc
    outputs (and merges of nothing but fc outputs), NHWC otherwise."""
    if name in flat_tensors(graph):
        return ref.reshape(-1)
    return ref.transpose(1, 2, 0)


def _check_outputs(built: Built, model: keras.Model, seed: int = 1) -> None:
    graph = built.graph
    x = np.random.default_rng(seed).standard_normal(graph.input.shape).astype(np.float32)
    ref = reference_forward(graph, built.weights, x)
    got = _run(model, x)
    assert len(got) == len(graph.outputs)
    for name, y in zip(graph.outputs, got, strict=True):
        want = _as_keras_layout(graph, name, ref[name])
        assert y.shape == want.shape, name
        scale = max(float(np.abs(want).max()), 1e-6)
        err = float(np.abs(y - want).max())
        assert err <= 1e-4 * scale, f"{name}: max abs error {err:.3g} at output scale {scale:.3g}"


@pytest.fixture(scope="module")
def mnv2(tmp_path_factory: pytest.TempPathFactory) -> Built:
    return Built(lower(load_spec(str(MNV2))), tmp_path_factory.mktemp("mnv2"))


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory, branching_graph: Graph) -> dict[str, Built]:
    root = tmp_path_factory.mktemp("small")
    built = {key: Built(_graph(text), root) for key, text in SPECS.items()}
    built["branching"] = Built(branching_graph, root)  # the shared every-op spec (conftest)
    return built


def test_small_specs_cover_every_graph_op(small: dict[str, Built]) -> None:
    used = {node.op for key in small for node in small[key].graph.nodes}
    assert used == set(GRAPH_OPS)


def test_mnv2_matches_the_numpy_reference(mnv2: Built) -> None:
    _check_outputs(mnv2, mnv2.module.build_model(mnv2.weights))


def test_mnv2_loads_the_canonical_npz_file(mnv2: Built, tmp_path: Path) -> None:
    path = tmp_path / "weights.npz"
    path.write_bytes(save_weights(mnv2.weights))
    model = mnv2.module.build_model(str(path))
    stem = model.get_layer("stem").get_weights()[0]
    np.testing.assert_array_equal(stem, mnv2.weights["stem.weight"].transpose(2, 3, 1, 0))
    _check_outputs(mnv2, model, seed=2)


def test_mnv2_model_shape_names_and_count(mnv2: Built) -> None:
    model = mnv2.module.build_model()
    assert model.name == "mobilenet_v2_1_0_224"
    assert tuple(model.input.shape) == (None, 224, 224, 3)
    assert tuple(model.output.shape) == (None, 1000)
    assert model.count_params() == analyze_cost(mnv2.graph).keras_count_params
    names = {layer.name for layer in model.layers}
    for node in mnv2.graph.ops():
        assert node.name in names
        if node.op == "conv2d" and node.attrs["bn"]:
            assert f"{node.name}_bn" in names
    kinds = {type(model.get_layer(n)).__name__ for n in ("block1_dw", "block1_expand", "stem")}
    assert kinds == {"DepthwiseConv2D", "Conv2D"}


@pytest.mark.parametrize("key", [*sorted(SPECS), "branching"])
def test_small_specs_match_the_numpy_reference(small: dict[str, Built], key: str) -> None:
    built = small[key]
    _check_outputs(built, built.module.build_model(built.weights))


def test_keras_layers_where_the_graph_needs_them(small: dict[str, Built]) -> None:
    model = small["convs"].module.build_model()
    assert model.get_layer("grouped").groups == 4
    assert model.get_layer("dw_mult").depth_multiplier == 2
    assert type(model.get_layer("dw_mult")).__name__ == "DepthwiseConv2D"
    # a stride with a dilation: stride-1 conv, then every other pixel
    assert model.get_layer("dil_s2").strides == (1, 1)
    assert model.get_layer("dil_s2_subsample").strides == (2, 2)
    assert model.get_layer("plain").use_bias and not model.get_layer("grouped").use_bias
    assert [tuple(t.shape) for t in model.outputs] == [
        (None, 5, 6, 12),
        (None, 3, 3, 6),
        (None, 3, 3, 24),
        (None, 10),
    ]


@pytest.mark.parametrize("key", ["mnv2", "branching", *sorted(SPECS)])
def test_generated_module_is_ruff_clean(mnv2: Built, small: dict[str, Built], key: str) -> None:
    built = mnv2 if key == "mnv2" else small[key]
    config = str(ROOT / "pyproject.toml")
    for args in (["check", "--no-cache"], ["format", "--check", "--no-cache"]):
        done = subprocess.run(
            [sys.executable, "-m", "ruff", *args, "--config", config, str(built.path)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr


def test_generated_module_stands_alone(mnv2: Built, small: dict[str, Built]) -> None:
    for built in (mnv2, *small.values()):
        assert "archspec" not in "".join(
            line for line in built.text.splitlines() if line.startswith(("import", "from"))
        )
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('m', {str(mnv2.path)!r})\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "model = m.build_model()\n"
        "assert not any(name.startswith('archspec') for name in sys.modules), 'imports archspec'\n"
        "print(model.count_params())\n"
    )
    env = {**os.environ, "KERAS_BACKEND": "torch", "PYTHONPATH": ""}
    done = subprocess.run(
        [sys.executable, "-I", "-c", code],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        cwd=mnv2.path.parent,
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.split()[-1]) == analyze_cost(mnv2.graph).keras_count_params


def test_same_spec_gives_byte_identical_module(mnv2: Built) -> None:
    again = emit(lower(load_spec(str(MNV2))), "keras", init_weights(mnv2.graph, 7))
    assert again[mnv2.path.name] == mnv2.text


def test_golden_mnv2_module(mnv2: Built, golden: Callable[[str, str], None]) -> None:
    golden(f"keras/{mnv2.path.name}", mnv2.text)


def test_bad_weights_are_named(small: dict[str, Built]) -> None:
    built = small["convs"]
    weights = dict(built.weights)
    weights.pop("dw_mult.bn_var")
    with pytest.raises(ValueError, match="missing array 'dw_mult.bn_var'"):
        built.module.build_model(weights)
    weights = {**built.weights, "nowhere.weight": np.zeros(3, np.float32)}
    with pytest.raises(ValueError, match="unexpected arrays \\['nowhere.weight'\\]"):
        built.module.build_model(weights)
    weights = {**built.weights, "head.weight": np.zeros((10, 9), np.float32)}
    with pytest.raises(
        ValueError, match="'head.weight' has shape \\[10, 9\\]; expected \\[10, 8\\]"
    ):
        built.module.build_model(weights)


def test_layer_name_collision_is_a_located_error() -> None:
    text = """
name: clash
input: {resolution: 8, channels: 3}
layers:
  - {op: conv2d, name: stem, c: 8, k: 3}
  - {op: conv2d, name: stem_bn, c: 8, k: 1}
"""
    graph = _graph(text)
    with pytest.raises(SpecError) as info:
        emit(graph, "keras", init_weights(graph))
    err = info.value
    assert "'stem_bn'" in err.message and "'stem'" in err.message
    assert err.location is not None and err.location.line == 6


def test_options_of_other_targets_are_refused(small: dict[str, Built]) -> None:
    built = small["convs"]
    with pytest.raises(SpecError, match="--split does not apply to the keras target"):
        emit(built.graph, "keras", built.weights, split=2)


SIZES = [(1, 1, 5, 7), (3, 4, 5, 7), (5, 7, 3, 4), (2, 3, 7, 4), (4, 4, 12, 12), (7, 5, 2, 9)]


@pytest.mark.parametrize(("h", "w", "oh", "ow"), SIZES)
def test_resize_matches_torch_interpolate(
    small: dict[str, Built], h: int, w: int, oh: int, ow: int
) -> None:
    """The generated _Resize against implementations nobody here wrote: bilinear against Keras'
    own resize (F.interpolate, align_corners=False, on the torch backend), nearest against
    PyTorch's legacy "nearest" (Keras' "nearest" is "nearest-exact" on this backend)."""
    resize = small["resize"].module._Resize
    x = np.random.default_rng(h * 100 + w).standard_normal((2, h, w, 3)).astype(np.float32)
    bilinear = keras.ops.convert_to_numpy(resize(oh, ow, "bilinear")(x))
    theirs = keras.ops.image.resize(x, (oh, ow), interpolation="bilinear", antialias=False)
    np.testing.assert_allclose(bilinear, keras.ops.convert_to_numpy(theirs), atol=1e-6)
    nearest = keras.ops.convert_to_numpy(resize(oh, ow, "nearest")(x))
    nchw = torch.from_numpy(x.transpose(0, 3, 1, 2))
    theirs = torch.nn.functional.interpolate(nchw, size=(oh, ow), mode="nearest")
    np.testing.assert_array_equal(nearest, theirs.numpy().transpose(0, 2, 3, 1))
