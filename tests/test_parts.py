"""Parts: a row's `part` reaches every graph node it lowers to; reports subtotal per part."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from archspec import analyze_cost, load_spec, lower
from archspec.analysis.report import render_text, report_data
from archspec.cli import main
from archspec.errors import SpecError
from archspec.spec import load_spec_text

ROOT = Path(__file__).resolve().parent.parent
MNV2 = str(ROOT / "specs" / "mnv2_1.0.yaml")

DETECTOR = """
name: tiny_detector
input: {resolution: 32, channels: 3}
num_classes: 5
units:
  predictor:
    params: {anchors: 3}
    inputs: [feat]
    layers:
      - {op: dwconv, name: dw, from: feat, part: head}
      - {op: conv2d, name: box, c: $anchors * 4, k: 1, bn: false, act: linear, part: head}
layers:
  - {op: conv2d, name: stem, c: 16, k: 3, s: 2}
  - {op: bottleneck, name: b1, t: 6, c: 16, s: 1}
  - {op: conv2d, name: extra, c: 32, k: 3, s: 2, part: head}
  - {unit: predictor, name: p1, from: b1}
  - {unit: predictor, name: p2, from: extra, anchors: 6}
outputs: [p1, p2]
"""


def _graph(text: str = DETECTOR):
    return lower(load_spec_text(text))


def test_every_node_of_a_row_carries_its_part():
    graph = _graph()
    for node in graph.ops():
        row = graph.spec.rows[node.row]
        assert node.part == (row.fields["part"] or "backbone"), node.name
    # the bottleneck's four nodes (expand, depthwise, project, residual add) are all backbone
    block = next(b for b in graph.blocks if b.name == "b1")
    assert len(block.nodes) == 4
    assert {graph.node(n).part for n in block.nodes} == {"backbone"}
    assert {n.part for n in graph.ops() if n.name.startswith(("p1", "p2"))} == {"head"}


def test_part_subtotals_add_up_and_match_a_hand_count():
    cost = analyze_cost(_graph())
    assert list(cost.parts) == ["backbone", "head"]
    for key in ("madds", "params", "params_with_bn"):
        assert sum(getattr(p, key) for p in cost.parts.values()) == getattr(cost, key)
    # head, by hand: extra 3x3 s2 conv 16 -> 32 on 8x8 (16x16 in), predictors on 16x16x16 and
    # 8x8x32 (depthwise 3x3 + 1x1 to anchors*4 with a bias)
    extra = 8 * 8 * 32 * 16 * 9
    p1 = 16 * 16 * 16 * 9 + 16 * 16 * 12 * 16
    p2 = 8 * 8 * 32 * 9 + 8 * 8 * 24 * 32
    assert cost.parts["head"].madds == extra + p1 + p2
    head_params = 32 * 16 * 9 + (16 * 9 + 12 * 16 + 12) + (32 * 9 + 24 * 32 + 24)
    assert cost.parts["head"].params == head_params
    head_bn = 2 * (32 + 16 + 32)  # extra, p1.dw, p2.dw have BatchNorm; the box convs do not
    assert cost.parts["head"].params_with_bn == head_params + head_bn


def test_report_json_has_parts_and_text_a_subtotal(capsys, tmp_path):
    spec = tmp_path / "det.yaml"
    spec.write_text(DETECTOR)
    assert main(["report", str(spec), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data["parts"]) == {"backbone", "head"}
    assert set(data["parts"]["head"]) == {"madds", "params", "params_with_bn"}
    head_layers = [x for x in data["layers"] if x["part"] == "head"]
    assert data["parts"]["head"]["madds"] == sum(x["madds"] for x in head_layers)
    for fmt in ("text", "markdown"):
        assert main(["report", str(spec), "--format", fmt]) == 0
        out = capsys.readouterr().out
        assert "Subtotals per part" in out
        line = next(x for x in out.splitlines() if x.strip("| ").startswith("head"))
        assert f"{data['parts']['head']['madds']:,}" in line


def test_one_part_has_no_subtotal_section():
    graph = lower(load_spec(MNV2))
    cost = analyze_cost(graph)
    data = report_data(graph, cost)
    assert data["parts"] == {
        "backbone": {
            "madds": cost.madds,
            "params": cost.params,
            "params_with_bn": cost.params_with_bn,
        }
    }
    assert "Subtotals per part" not in render_text(data)


def test_parts_follow_the_counting_profile():
    graph = _graph()
    slim, fvcore = analyze_cost(graph), analyze_cost(graph, "fvcore")
    # fvcore adds BatchNorm's 2 per element: the head's BN outputs are extra, p1.dw and p2.dw
    head_bn_elements = 8 * 8 * 32 + 16 * 16 * 16 + 8 * 8 * 32
    assert fvcore.parts["head"].madds - slim.parts["head"].madds == 2 * head_bn_elements
    assert fvcore.parts["head"].params == slim.parts["head"].params


@pytest.mark.parametrize("bad", ["3", "'head part'", "[a, b]"])
def test_a_bad_part_is_a_located_error(bad):
    text = DETECTOR.replace("part: head}", f"part: {bad}}}", 1)
    with pytest.raises(SpecError) as info:
        load_spec_text(text, "det.yaml")
    assert info.value.field.endswith(".part")
    assert info.value.location.line == 10  # the dw row of the unit, where `part` is written
