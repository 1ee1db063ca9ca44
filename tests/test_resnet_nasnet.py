"""ResNet-101 and NASNet-A Mobile (specs/paper/), and what NASNet needed from the op kit.

* conv2d `padding: valid` (NASNet's stem, 224 → 111): shapes, its numpy reference against
  PyTorch's `conv2d`, and every target (a VALID stem fused with a t = 1 bottleneck included).
* `shift` (the second path of NASNet's factorized reduction): its reference against TF-slim's
  pad-then-crop written with numpy, and every target on odd and even sizes.
* ResNet-101 against torchvision's published counts and `keras.applications.ResNet101`.
* NASNet-A Mobile against the Keras builder with NASNetMobile's arguments: `count_params()`,
  the multiset of weight shapes, and MAdds from a walk over the built model's layers.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")

from archspec.activations import TARGETS  # noqa: E402
from archspec.analysis.cost import analyze_cost  # noqa: E402
from archspec.graph import GNode, Graph  # noqa: E402
from archspec.lower import lower  # noqa: E402
from archspec.ops import GRAPH_OPS  # noqa: E402
from archspec.spec import load_spec, load_spec_text  # noqa: E402
from archspec.verify import verify  # noqa: E402
from archspec.weights import expected_weights, init_weights  # noqa: E402

PAPER = Path(__file__).resolve().parent.parent / "specs" / "paper"

VALID_SPEC = """
name: validnet
input: {resolution: 33, channels: 3}
num_classes: 10
layers:
  - {op: conv2d, name: stem, c: 8, k: 3, s: 2, padding: valid, act: relu}
  - {op: bottleneck, t: 1, c: 8, n: 1, s: 1}
  - {op: conv2d, name: c2, c: 8, k: 5, s: 1, padding: valid}
  - {op: conv2d, name: c3, c: 8, k: 3, s: 2, padding: valid, dilation: 2, groups: 2}
  - {op: avgpool, global: true}
  - {op: fc, c: num_classes}
"""


def test_valid_conv_shapes() -> None:
    graph = lower(load_spec_text(VALID_SPEC, "valid.yaml"))
    # (size - dilation·(k - 1) - 1) // s + 1 at every VALID conv: 33 → 16 → 12 → 4
    assert [graph.node(n).shape.h for n in ("stem", "c2", "c3")] == [16, 12, 4]


@pytest.mark.parametrize(("k", "s", "d", "g"), [(3, 2, 1, 1), (5, 1, 1, 2), (3, 2, 2, 4)])
def test_valid_conv_reference_against_torch(k: int, s: int, d: int, g: int) -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 13, 11)).astype(np.float32)
    w = rng.standard_normal((12, 8 // g, k, k)).astype(np.float32)
    attrs = {"c_out": 12, "k": k, "s": s, "groups": g, "dilation": d, "act": "linear"}
    attrs |= {"bn": False, "bias": False, "bn_eps": 1e-5, "padding": "valid"}
    ours = GRAPH_OPS["conv2d"].reference(attrs, [x], {"weight": w})
    theirs = torch.nn.functional.conv2d(
        torch.from_numpy(x)[None], torch.from_numpy(w), stride=s, dilation=d, groups=g
    )[0].numpy()
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)


def test_valid_conv_too_small_is_a_located_error() -> None:
    from archspec.errors import SpecError

    text = VALID_SPEC.replace("k: 5, s: 1, padding: valid", "k: 15, s: 1, padding: valid")
    with pytest.raises(SpecError, match="padding"):
        lower(load_spec_text(text, "valid.yaml"))


def test_valid_conv_every_target() -> None:
    graph = lower(load_spec_text(VALID_SPEC, "valid.yaml"))
    result = verify(graph, init_weights(graph, 0), targets=TARGETS, batch=1, progress=False)
    assert set(result.runtimes) == set(TARGETS), result.skipped
    assert result.passed


SHIFT_SPEC = """
name: shiftnet
input: {resolution: [RES], channels: 3}
num_classes: 5
layers:
  - {op: conv2d, name: stem, c: 8, k: 3}
  - {op: act, name: r, act: relu}
  - {op: conv2d, name: path1, c: 4, k: 1, s: 2, bn: false, bias: false}
  - {op: shift, name: shifted, from: r}
  - {op: conv2d, name: path2, c: 4, k: 1, s: 2, bn: false, bias: false}
  - {op: concat, name: cat, from: [path1, path2]}
  - {op: avgpool, global: true}
  - {op: fc, c: num_classes}
"""


def test_shift_reference_is_pad_then_crop() -> None:
    x = np.random.default_rng(1).standard_normal((3, 5, 4))
    padded = np.zeros((3, 6, 5))
    padded[:, :5, :4] = x  # one zero row and column at the bottom and right
    expected = padded[:, 1:, 1:]  # then crop the top row and left column
    ours = GRAPH_OPS["shift"].reference({}, [x], {})
    np.testing.assert_array_equal(ours, expected)
    assert not ours[:, -1].any() and not ours[:, :, -1].any()
    np.testing.assert_array_equal(ours[:, 2, 1], x[:, 3, 2])


@pytest.mark.parametrize("res", ["9, 7", "8, 6"])
def test_shift_every_target(res: str) -> None:
    graph = lower(load_spec_text(SHIFT_SPEC.replace("RES", res), "shift.yaml"))
    assert graph.node("shifted").shape == graph.node("r").shape
    result = verify(graph, init_weights(graph, 0), targets=TARGETS, batch=1, progress=False)
    assert set(result.runtimes) == set(TARGETS), result.skipped
    assert result.passed


def _paper(name: str) -> Graph:
    return lower(load_spec(str(PAPER / name)))


def _conv_nodes(graph: Graph) -> list[GNode]:
    return [n for n in graph.ops() if n.op == "conv2d"]


def _keras_kernel(shape: tuple[int, ...]) -> tuple[int, ...]:
    """A PyTorch-layout weight shape in Keras' layout (conv, depthwise conv, dense)."""
    if len(shape) == 2:  # fc (out, in) → Dense (in, out)
        return (shape[1], shape[0])
    if len(shape) == 4 and shape[1] == 1 and shape[0] > 1:  # depthwise (C, 1, k, k)
        return (shape[2], shape[3], shape[0], 1)
    if len(shape) == 4:  # (out, in, kh, kw) → (kh, kw, in, out)
        return (shape[2], shape[3], shape[1], shape[0])
    return shape


def test_resnet101_torchvision_counts() -> None:
    """torchvision's resnet101: 44,549,160 parameters (with BatchNorm γ, β; its model card);
    fvcore counts 7.83 GMAdds (conv and linear plus BatchNorm and pooling, our `fvcore`
    profile); the slim figure (conv + FC only) is what the test_paper_specs fvcore run checks."""
    graph = _paper("resnet101.yaml")
    cost = analyze_cost(graph)
    assert cost.params_with_bn == 44_549_160
    assert 7.83e9 <= analyze_cost(graph, profile="fvcore").madds < 7.84e9
    # 104 convs: the stem, 3 per unit in 33 units, 4 projection shortcuts; and one FC layer
    assert len(_conv_nodes(graph)) == 1 + 3 * (3 + 4 + 23 + 3) + 4


def test_resnet101_against_keras_applications() -> None:
    """keras.applications.ResNet101 has the same layers and weight shapes, but (1) every conv
    has a bias although BatchNorm follows it (`use_bias=True`, Keras' default), and (2) it
    strides the first 1x1 conv of a stage's first unit, not the 3x3 conv (ResNet v1, not
    torchvision's v1.5). (2) changes MAdds (that 1x1 and the 3x3 run on the strided grid), not
    parameters; so its count_params() is ours plus one bias per conv output channel."""
    keras = pytest.importorskip("keras")
    graph = _paper("resnet101.yaml")
    model = keras.applications.ResNet101(weights=None, input_shape=(224, 224, 3), classes=1000)
    conv_biases = sum(n.attrs["c_out"] for n in _conv_nodes(graph))
    assert model.count_params() == analyze_cost(graph).keras_count_params + conv_biases
    # conv kernels (kh, kw, cin, cout) and the Dense kernel (cin, cout), as multisets
    kernels = sorted(tuple(w.shape) for w in model.weights if len(w.shape) in (2, 4))
    ours = sorted(
        _keras_kernel(shape) for shape, kind in expected_weights(graph).values() if kind == "weight"
    )
    assert kernels == ours


def _keras_nasnet_mobile():
    """The Keras NASNet builder with keras.applications.NASNetMobile's own arguments (NASNetMobile
    refuses the torch backend by name; the builder it calls runs on it)."""
    pytest.importorskip("keras")
    from keras.src.applications import nasnet

    return nasnet.NASNet(
        input_shape=(224, 224, 3),
        penultimate_filters=1056,
        num_blocks=4,
        stem_block_filters=32,
        skip_reduction=False,
        filter_multiplier=2,
        include_top=True,
        weights=None,
        classes=1000,
        default_size=224,
    )


def _keras_layer_madds(layer) -> int:  # noqa: ANN001 (a keras layer)
    """Multiply-accumulates of one Keras layer: output elements × the work of one output."""
    import keras

    out = layer.output.shape
    if isinstance(layer, keras.layers.Dense):
        return int(layer.kernel.shape[0] * layer.kernel.shape[1])
    if isinstance(layer, keras.layers.SeparableConv2D):
        kh, kw, cin, _ = layer.depthwise_kernel.shape
        return int(out[1] * out[2] * cin * kh * kw + out[1] * out[2] * out[3] * cin)
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        kh, kw, _, _ = layer.kernel.shape
        return int(out[1] * out[2] * out[3] * kh * kw)
    if isinstance(layer, keras.layers.Conv2D):
        kh, kw, cin_per_group, _ = layer.kernel.shape
        return int(out[1] * out[2] * out[3] * cin_per_group * kh * kw)
    return 0


def test_nasnet_a_mobile_against_keras_builder() -> None:
    graph = _paper("nasnet_a_mobile.yaml")
    cost = analyze_cost(graph)
    model = _keras_nasnet_mobile()
    assert model.count_params() == cost.keras_count_params
    assert sum(_keras_layer_madds(layer) for layer in model.layers) == cost.madds
    # every kernel (separable convs: depthwise and pointwise), as a multiset. BatchNorm arrays
    # differ in shape only: the factorized reduction's one BatchNorm of f channels after the
    # concat is, in our spec, a BatchNorm of f/2 on each path (the same per-channel function and
    # the same count, which count_params() above checks).
    theirs = sorted(tuple(w.shape) for w in model.weights if len(w.shape) in (2, 4))
    ours = sorted(
        _keras_kernel(shape) for shape, kind in expected_weights(graph).values() if kind == "weight"
    )
    assert theirs == ours


def test_nasnet_a_mobile_paper_figures() -> None:
    """Table 4: 5.3M parameters (without BatchNorm, TF-slim's convention), 564M MAdds."""
    cost = analyze_cost(_paper("nasnet_a_mobile.yaml"))
    assert abs(cost.params - 5.3e6) / 5.3e6 < 0.02, cost.params
    assert abs(cost.madds - 564e6) / 564e6 < 0.002, cost.madds
