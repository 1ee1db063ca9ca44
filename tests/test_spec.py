"""Loading, overrides, the schema and the branching example, end to end without runtimes."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from archspec import SpecError, analyze_cost, load_spec, load_spec_text, lower
from archspec.schema import schema_text
from archspec.spec import spec_to_dict
from tests.bad_specs import CASES

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("*.yaml"))


def test_committed_schema_is_generated_from_the_loader_tables():
    assert (ROOT / "specs" / "archspec.schema.json").read_text() == schema_text()


@pytest.mark.parametrize("path", SPECS, ids=[p.name for p in SPECS])
def test_shipped_specs_pass_schema_and_loader(path):
    schema = json.loads(schema_text())
    jsonschema.validate(yaml.safe_load(path.read_text()), schema)
    lower(load_spec(str(path)))


@pytest.mark.parametrize(
    "case",
    [
        "unknown_row_key",
        "unknown_header_key",
        "zero_stride",
        "negative_channels",
        "bad_activation",
        "missing_field",
        "unknown_op",
        "wrong_type_text",
    ],
)
def test_schema_rejects_what_the_loader_rejects(case):
    text = next(c[1] for c in CASES if c[0] == case)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(yaml.safe_load(text), json.loads(schema_text()))


def test_overrides_apply_before_lowering():
    spec = load_spec(
        str(ROOT / "specs" / "mnv2_1.0.yaml"),
        [
            "width_multiplier=0.75",
            "resolution=[192, 160]",
            "num_classes=1001",
            "rounding.divisor=4",
        ],
    )
    assert spec.width_multiplier == 0.75
    assert spec.resolution == (192, 160)
    assert spec.num_classes == 1001
    assert spec.divisor == 4
    graph = lower(spec)
    assert graph.node("classifier").shape.c == 1001
    assert graph.node("stem").shape.h == 96 and graph.node("stem").shape.w == 80


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("width=2", "cannot set 'width'"),
        ("width_multiplier=abc", "expected a number"),
        ("num_classes", "expected KEY=VALUE"),
        ("layers=[]", "cannot set 'layers'"),
        ("resolution=-3", "expected a positive integer"),
    ],
)
def test_bad_overrides_name_the_option(override, needle):
    with pytest.raises(SpecError) as err:
        load_spec(str(ROOT / "specs" / "mnv2_1.0.yaml"), [override])
    assert needle in str(err.value)
    assert "--set" in str(err.value)


def test_branching_example_end_to_end():
    graph = lower(load_spec(str(ROOT / "specs" / "mnv2_aspp.yaml")))
    assert graph.node("aspp").shape.c == 512
    assert graph.node("aspp").inputs == ("aspp0", "pool_up")
    feat = graph.row_output("feat")
    assert feat.name == "feat_project"
    assert graph.node("pool_up").shape[1:] == feat.shape[1:]
    assert graph.node("upsampled").shape == (21, 224, 224)
    assert graph.outputs == ("upsampled",)
    # image pooling branch and 1x1 branch both read the backbone feature
    assert set(graph.consumers(feat.name)) == {"aspp0", "image_pool"}
    cost = analyze_cost(graph)
    assert cost.madds > analyze_cost(lower(load_spec(str(ROOT / "specs" / "mnv2_1.0.yaml")))).madds
    dilated = [n for n in graph.ops() if n.attrs.get("dilation", 1) == 2]
    assert len(dilated) == 4 and all(n.role == "dwise" for n in dilated)


def test_resolved_spec_round_trips():
    spec = load_spec(str(ROOT / "specs" / "mnv2_aspp.yaml"), ["width_multiplier=0.5"])
    again = load_spec_text(yaml.safe_dump(spec_to_dict(spec), sort_keys=False), "again.yaml")
    assert analyze_cost(lower(again)).madds == analyze_cost(lower(spec)).madds
    assert [n.shape for n in lower(again).nodes] == [n.shape for n in lower(spec).nodes]


def test_named_outputs_for_multi_head_graphs():
    text = """
name: two_heads
input: {resolution: 32}
outputs: [head_a, head_b]
layers:
  - {op: conv2d, name: trunk, c: 16, s: 2}
  - {op: conv2d, name: head_a, from: trunk, c: 4, k: 1, bn: false, act: linear}
  - {op: dwconv, name: head_b, from: trunk, s: 2}
"""
    graph = lower(load_spec_text(text))
    assert graph.outputs == ("head_a", "head_b")
    assert graph.node("head_a").attrs["bias"] is True
    assert graph.node("head_b").shape == (16, 8, 8)


def test_t1_and_residual_rules():
    graph = lower(load_spec(str(ROOT / "specs" / "mnv2_1.0.yaml")))
    assert len(graph.blocks) == 17
    first = graph.blocks[0]
    assert first.t == 1 and first.nodes == ("block0_dw", "block0_project")
    residual = [b.name for b in graph.blocks if b.residual]
    assert len(residual) == 10
    for block in graph.blocks:
        node_in, node_out = graph.node(block.input), graph.node(block.output)
        dw = graph.node(f"{block.name}_dw")
        assert block.residual == (dw.attrs["s"] == 1 and node_in.shape.c == node_out.shape.c)
    convs = [n for n in graph.ops() if n.op == "conv2d"]
    assert len(convs) == 52
