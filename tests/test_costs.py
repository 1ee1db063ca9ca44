"""MAdds and parameter counts against the published figures and independent derivations."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from archspec import analyze_cost, load_spec, lower, make_divisible
from archspec.weights import expected_weights

ROOT = Path(__file__).resolve().parent.parent
MNV2 = str(ROOT / "specs" / "mnv2_1.0.yaml")
# A copy of ../shared/reference/torchvision_mnv2_1.0_state_dict_shapes.json, kept in the repo.
TORCHVISION = ROOT / "tests" / "golden" / "pytorch" / "torchvision_mnv2_1.0_state_dict_shapes.json"

# Table 2 of the paper, transcribed: (t, c, n, s) per bottleneck row.
TABLE2 = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]


def graph_for(*overrides: str):
    return lower(load_spec(MNV2, overrides))


def test_published_figures_width_1():
    cost = analyze_cost(graph_for())
    assert cost.madds == 300_774_272
    assert cost.params == 3_470_760
    assert cost.params_with_bn == 3_504_872
    assert cost.terms["fc"] == 1_280_000
    assert cost.madds - cost.terms["fc"] == 299_494_272


def test_breakdown_sums_to_total_and_rows_sum_to_layers():
    cost = analyze_cost(graph_for())
    assert sum(cost.terms.values()) == cost.madds
    assert set(cost.terms) == {"conv", "depthwise", "pointwise", "fc"}
    assert sum(x.madds for x in cost.layers) == cost.madds


def test_madds_match_the_papers_block_formula():
    """§5: a block of size h×w costs h·w·d'·t·(d' + k² + d'') MAdds (at its input resolution,
    stride 1); derive the whole network from Table 2 with our own arithmetic and compare."""
    size, c_in, total = 112, 32, 224 // 2 * 224 // 2 * 32 * 3 * 9  # stem conv
    for t, c, n, s in TABLE2:
        for i in range(n):
            stride = s if i == 0 else 1
            out = size // stride
            hidden = c_in * t
            expand = size * size * c_in * hidden if t != 1 else 0
            total += expand + out * out * hidden * 9 + out * out * hidden * c
            size, c_in = out, c
    total += size * size * c_in * 1280 + 1280 * 1000
    assert analyze_cost(graph_for()).madds == total


def test_params_with_bn_equals_torchvision_reference_file():
    reference = json.loads(TORCHVISION.read_text())
    assert analyze_cost(graph_for()).params_with_bn == reference["total_numel_parameters"]


def test_weight_shapes_in_torchvision_order():
    """Our canonical weights, in graph order, have torchvision's state-dict shapes in order
    (its num_batches_tracked buffers aside)."""
    reference = json.loads(TORCHVISION.read_text())["entries"]
    theirs = [tuple(e["shape"]) for e in reference if not e["key"].endswith("num_batches_tracked")]
    # torchvision orders BatchNorm as weight, bias, running_mean, running_var: so do we.
    ours = [shape for shape, _ in expected_weights(graph_for()).values()]
    assert ours == theirs


def test_1001_classes():
    cost = analyze_cost(graph_for("num_classes=1001"))
    assert cost.params == 3_472_041
    assert cost.terms["fc"] == 1280 * 1001


@pytest.mark.parametrize(
    ("width", "last"),
    [(0.35, 1280), (0.5, 1280), (0.75, 1280), (1.0, 1280), (1.3, 1664), (1.4, 1792)],
)
def test_last_layer_rule(width, last):
    graph = graph_for(f"width_multiplier={width}")
    assert graph.node("last_conv").shape.c == last
    assert last == (1280 if width <= 1 else make_divisible(1280 * width))


def test_width_scales_every_layer_including_stem():
    graph = graph_for("width_multiplier=0.5")
    assert graph.node("stem").shape.c == 16
    assert graph.node("block0_project").shape.c == 8
    assert graph.node("block16_project").shape.c == 160


def test_resolution_changes_shapes_not_params():
    small = analyze_cost(graph_for("resolution=160"))
    full = analyze_cost(graph_for())
    assert small.params == full.params
    assert small.madds < full.madds
    assert graph_for("resolution=160").node("last_conv").shape.h == 5


def test_fvcore_profile_adds_only_its_terms():
    slim = analyze_cost(graph_for())
    fv = analyze_cost(graph_for(), "fvcore")
    for term in ("conv", "depthwise", "pointwise", "fc"):
        assert fv.terms[term] == slim.terms[term]
    graph = graph_for()
    bn_elements = sum(n.shape.numel for n in graph.ops() if n.op == "conv2d" and n.attrs["bn"])
    assert fv.terms["batchnorm"] == 2 * bn_elements
    assert fv.terms["pool"] == 7 * 7 * 1280


@given(st.floats(min_value=0.5, max_value=5000), st.sampled_from([1, 2, 4, 8, 16]))
def test_make_divisible_properties(value, divisor):
    rounded = make_divisible(value, divisor)
    assert rounded % divisor == 0
    assert rounded >= divisor
    assert rounded >= 0.9 * value
    assert abs(rounded - value) <= divisor or rounded == divisor


def test_keras_count_params_includes_moving_statistics():
    cost = analyze_cost(graph_for())
    bn_channels = sum(n.shape.c for n in graph_for().ops() if n.op == "conv2d")
    assert cost.bn_buffers == 2 * bn_channels
    assert cost.keras_count_params == cost.params_with_bn + 2 * bn_channels
    assert math.isclose(cost.keras_count_params, 3_538_984)
