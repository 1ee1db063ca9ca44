"""Composition: units (defined once, used many times), `base:` (extend a spec file), and
`<block>.<part>` references to a block's inner tensors; good input and located bad input."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import jsonschema
import pytest
import yaml

from archspec import analyze_cost, load_spec, load_spec_text, lower
from archspec.analysis.memory import fused_ops, plan_memory
from archspec.cli import main
from archspec.compose import MAX_UNIT_DEPTH, TREE_MARKER, UnitLocation, spec_tree
from archspec.errors import SpecError
from archspec.schema import schema_text

ROOT = Path(__file__).resolve().parent.parent
MNV2 = ROOT / "specs" / "mnv2_1.0.yaml"

HEAD = """name: composed
input: {resolution: 32, channels: 3}
num_classes: 10
"""

# A ShuffleNet-like unit (grouped 1x1, shuffle, depthwise, grouped 1x1, residual, ReLU).
SHUFFLE_UNIT = """units:
  shuffle_block:
    params: {mid: null, out: null, g: 3}
    layers:
      - {op: conv2d, name: gconv1, c: $mid, k: 1, groups: $g, act: relu}
      - {op: shuffle, name: shuffle, groups: $g}
      - {op: dwconv, name: dw, act: linear}
      - {op: conv2d, name: gconv2, c: $out, k: 1, groups: $g, act: linear}
      - {op: add, from: [x, gconv2]}
      - {op: act, act: relu}
"""
STEM = "  - {op: conv2d, name: stem, c: 240, s: 2}\n"
TAIL = "  - {op: avgpool, global: true}\n  - {op: fc, c: num_classes}\n"


def _by_hand(uses: int) -> str:
    """The rows the unit expands to, written out as a person would (names as documented)."""
    rows = [STEM]
    source = "stem"
    for i in range(uses):
        prefix, out = f"s_{i}", ("s" if i == uses - 1 else f"s_{i}")
        rows += [
            f"  - {{op: conv2d, name: {prefix}_gconv1, from: {source}, c: 48, k: 1, groups: 3,"
            " act: relu}\n",
            f"  - {{op: shuffle, name: {prefix}_shuffle, groups: 3}}\n",
            f"  - {{op: dwconv, name: {prefix}_dw, act: linear}}\n",
            f"  - {{op: conv2d, name: {prefix}_gconv2, c: 240, k: 1, groups: 3, act: linear}}\n",
            f"  - {{op: add, name: {prefix}_add4, from: [{source}, {prefix}_gconv2]}}\n",
            f"  - {{op: act, name: {out}, act: relu}}\n",
        ]
        source = out
    return HEAD + "layers:\n" + "".join(rows) + TAIL


def _with_unit(uses: int) -> str:
    return (
        HEAD
        + SHUFFLE_UNIT
        + "layers:\n"
        + STEM
        + f"  - {{unit: shuffle_block, name: s, mid: 48, out: 240, n: {uses}}}\n"
        + TAIL
    )


def _graph_facts(graph) -> list[tuple]:
    return [
        (n.name, n.op, n.inputs, tuple(n.shape), dict(n.attrs), n.block, n.role)
        for n in graph.nodes
    ]


@pytest.mark.parametrize(
    "overrides", [(), ("width_multiplier=0.5",), ("resolution=[48, 40]", "num_classes=7")]
)
def test_unit_used_four_times_is_the_rows_written_by_hand(overrides):
    composed = lower(load_spec_text(_with_unit(4), "unit.yaml", overrides))
    by_hand = lower(load_spec_text(_by_hand(4), "hand.yaml", overrides))
    assert _graph_facts(composed) == _graph_facts(by_hand)
    assert composed.outputs == by_hand.outputs
    a, b = analyze_cost(composed), analyze_cost(by_hand)
    assert (a.madds, a.params, a.params_with_bn) == (b.madds, b.params, b.params_with_bn)
    assert len([n for n in composed.nodes if n.op == "shuffle"]) == 4


def test_unit_rows_keep_their_place_and_say_which_use():
    spec = load_spec_text(_with_unit(2), "unit.yaml")
    lines = _with_unit(2).splitlines()
    body = 1 + next(i for i, line in enumerate(lines) if "name: gconv1" in line)
    use = 1 + next(i for i, line in enumerate(lines) if "unit: shuffle_block" in line)
    first = next(r for r in spec.rows if r.name == "s_0_gconv1")
    assert (first.loc.line, first.loc.column) == (body, 9)  # the unit's first row
    assert isinstance(first.loc, UnitLocation)
    assert str(first.loc) == f"unit.yaml:{body}:9 (in unit shuffle_block used at line {use})"
    assert str(first.where("c")).startswith(f"unit.yaml:{use}:")  # $mid: the value at the use


def test_two_input_unit_repeats_read_the_two_previous_results():
    text = (
        HEAD
        + """units:
  cell:
    params: {c: 16}
    inputs: [prev, prevprev]
    layers:
      - {op: conv2d, name: a, from: prev, c: $c, k: 1}
      - {op: conv2d, name: b, from: prevprev, c: $c, k: 1}
      - {op: add, from: [a, b]}
layers:
  - {op: conv2d, name: c0, c: 16, s: 2}
  - {op: conv2d, name: c1, c: 16}
  - {unit: cell, name: cells, from: [c1, c0], n: 3}
"""
        + TAIL
    )
    graph = lower(load_spec_text(text, "cells.yaml"))
    reads = {n.name: n.inputs for n in graph.nodes}
    assert reads["cells_0_a"] == ("c1",) and reads["cells_0_b"] == ("c0",)
    assert reads["cells_1_a"] == ("cells_0",) and reads["cells_1_b"] == ("c1",)
    assert reads["cells_2_a"] == ("cells_1",) and reads["cells_2_b"] == ("cells_0",)
    assert reads["cells"] == ("cells_2_a", "cells_2_b")


def test_nested_units_expressions_of_params_and_auto_names():
    text = (
        HEAD
        + """units:
  head:
    params: {anchors: 6}
    layers:
      - {op: conv2d, name: box, c: $anchors * 4, k: 1, bn: false, act: linear, scale: none}
      - {op: conv2d, name: cls, from: x, c: $anchors * (num_classes + 1), k: 1, scale: none}
      - {op: concat, from: [box, cls]}
  level:
    params: {anchors: 6}
    layers:
      - {op: conv2d, c: 32, s: 2}
      - {unit: head, anchors: $anchors}
layers:
  - {op: conv2d, name: stem, c: 16, s: 2}
  - {unit: level, anchors: 3}
  - {unit: level}
outputs: [level0, level1]
"""
    )
    for classes, anchors in ((10, 3), (20, 6)):
        graph = lower(load_spec_text(text, "nested.yaml", [f"num_classes={classes}"]))
        assert graph.outputs == ("level0", "level1")
        level = f"level{anchors // 6}"
        assert graph.node(f"{level}_conv0").inputs == (("stem",) if anchors == 3 else ("level0",))
        assert graph.node(f"{level}_box").shape.c == anchors * 4
        assert graph.node(f"{level}_cls").shape.c == anchors * (classes + 1)
        assert graph.node(f"{level}_cls").inputs == (f"{level}_conv0",)


def test_unit_reading_an_unnamed_row_above_implicitly():
    text = (
        HEAD
        + SHUFFLE_UNIT.replace("from: [x, gconv2]", "from: [gconv1, gconv2]")
        + "layers:\n  - {op: conv2d, c: 240, s: 2}\n"
        + "  - {unit: shuffle_block, mid: 48, out: 48}\n"
        + TAIL
    )
    graph = lower(load_spec_text(text, "implicit.yaml"))
    assert graph.node("shuffle_block0_gconv1").inputs == ("conv0",)


# -- base: ----------------------------------------------------------------------------------------
DETECTOR = """base: ../backbones/mnv2_1.0.yaml
name: mnv2_detector
input: {resolution: 320}
num_classes: 80
trim_after: last_conv
units:
  extra:
    params: {depth: null, mid: null}
    layers:
      - {op: conv2d, name: reduce, c: $mid, k: 1}
      - {op: dwconv, s: 2}
      - {op: conv2d, c: $depth, k: 1}
  predictor:
    params: {anchors: 6}
    inputs: [feat]
    layers:
      - {op: conv2d, name: box, c: $anchors * 4, k: 3, bn: false, bias: true, act: linear}
      - {op: conv2d, name: cls, from: feat, c: $anchors * (num_classes + 1), k: 3, bn: false,
         bias: true, act: linear}
      - {op: concat, from: [box, cls]}
layers:
  - {unit: extra, name: extra1, depth: 512, mid: 256}
  - {unit: predictor, name: p0, from: block13.expand, anchors: 3}
  - {unit: predictor, name: p1, from: last_conv}
  - {unit: predictor, name: p2, from: extra1}
outputs: [p0, p1, p2]
"""


@pytest.fixture
def tree(tmp_path) -> Path:
    """A spec tree: the marker at its root, a backbone folder and a detector folder."""
    (tmp_path / TREE_MARKER).write_text("{}")
    (tmp_path / "backbones").mkdir()
    (tmp_path / "det").mkdir()
    shutil.copy(MNV2, tmp_path / "backbones" / "mnv2_1.0.yaml")
    (tmp_path / "det" / "ssd.yaml").write_text(DETECTOR)
    return tmp_path


def test_detector_on_a_backbone_spec(tree):
    spec = load_spec(str(tree / "det" / "ssd.yaml"))
    assert (spec.name, spec.resolution, spec.in_channels, spec.num_classes) == (
        "mnv2_detector",
        (320, 320),
        3,  # input.channels comes from the base: `input:` is merged key by key
        80,
    )
    assert spec.divisor == 8 and spec.last_layer == "above_one"  # the base's header
    graph = lower(spec)
    base = lower(load_spec(str(MNV2), ["resolution=320"]))
    backbone = [f for f in _graph_facts(base) if f[0] not in ("pool", "classifier")]
    assert _graph_facts(graph)[: len(backbone)] == backbone
    assert graph.node("p0_box").inputs == ("block13_expand",)
    assert graph.node("block13_expand").shape == (576, 20, 20)
    assert graph.node("p0_cls").shape.c == 3 * 81
    assert graph.node("extra1").shape == (512, 5, 5)
    assert graph.outputs == ("p0", "p1", "p2")
    assert str(spec.rows[0].loc).startswith(str(Path(tree / "backbones" / "mnv2_1.0.yaml")))


def test_set_width_and_resolution_apply_to_the_combined_spec(tree):
    path = str(tree / "det" / "ssd.yaml")
    graph = lower(load_spec(path, ["width_multiplier=0.5", "resolution=160", "num_classes=20"]))
    assert graph.node("block13_expand").shape == (288, 10, 10)
    assert graph.node("extra1_reduce").shape.c == 128  # 256 scaled by 0.5
    assert graph.node("p1_cls").shape.c == 6 * 21
    assert graph.node("last_conv").shape.c == 1280  # the base's last_layer rule still holds
    # --set reaches a nested header field without dropping the base's other keys
    spec = load_spec(path, ["rounding.divisor=4"])
    assert (spec.divisor, spec.min_channels) == (4, 8)


def test_a_spec_changing_only_the_header_of_its_base(tmp_path):
    shutil.copy(MNV2, tmp_path / "mnv2_1.0.yaml")
    (tmp_path / "half.yaml").write_text(
        "base: mnv2_1.0.yaml\nname: mnv2_half\nwidth_multiplier: 0.5\n"
    )
    half = analyze_cost(lower(load_spec(str(tmp_path / "half.yaml"))))
    same = analyze_cost(lower(load_spec(str(MNV2), ["width_multiplier=0.5"])))
    assert (half.madds, half.params) == (same.madds, same.params)


def test_paper_specs_reach_the_shipped_backbones():
    assert spec_tree(str(ROOT / "specs" / "paper")) == str((ROOT / "specs").resolve())


def test_composed_specs_pass_the_schema(tree):
    schema = json.loads(schema_text())
    jsonschema.validate(yaml.safe_load(DETECTOR), schema)
    jsonschema.validate(yaml.safe_load(_with_unit(4)), schema)
    both = DETECTOR.replace("unit: extra,", "op: conv2d, unit: extra,")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(yaml.safe_load(both), schema)


# -- inner tensors and the memory model ----------------------------------------------------------
def test_a_block_read_inside_is_not_fused(tree):
    graph = lower(load_spec(str(tree / "det" / "ssd.yaml")))
    for first_layer_trick in (True, False):
        fused = {f.name: f for f in fused_ops(graph, "fused", 2, first_layer_trick)}
        assert "block13" not in fused and "block13_expand" in fused  # run as single ops
        assert fused["block12"].kind == "block" and fused["block14"].kind == "block"
    plain = lower(load_spec(str(MNV2), ["resolution=320"]))
    assert "block13" in {f.name for f in fused_ops(plain, "fused", 2)}
    plan = plan_memory(graph, mode="fused", split=2, dtype="float16", time_limit=5.0)
    assert "block13_expand" in plan.order and "block13" not in plan.order


@pytest.mark.parametrize(
    ("ref", "needle"),
    [
        ("block99.expand", "no block named 'block99' above this row"),
        ("block13.expnd", "block 'block13' has no part 'expnd'; its parts: expand, dw, project"),
        ("block1.", "cannot be a reference"),
    ],
)
def test_bad_inner_references_are_located(tmp_path, capsys, ref, needle):
    shutil.copy(MNV2, tmp_path / "mnv2_1.0.yaml")
    spec = tmp_path / "s.yaml"
    spec.write_text(
        f"base: mnv2_1.0.yaml\nname: s\nlayers:\n  - {{op: conv2d, from: {ref}, c: 8}}\n"
        "outputs: [classifier, conv11]\n"
    )
    assert main(["validate", str(spec)]) == 2
    err = capsys.readouterr().err
    assert needle in err and f"{spec}:4:" in err and "Traceback" not in err


# -- located errors -------------------------------------------------------------------------------
def _unit_spec(units: str, rows: str) -> dict[str, str]:
    return {"s.yaml": HEAD + "units:\n" + units + "layers:\n" + rows + TAIL}


U8 = "  u:\n    params: {c: 8}\n    layers:\n      - {op: conv2d, c: $c}\n"
U2 = "  u:\n    layers:\n      - {op: conv2d, c: 8}  #<-\n      - {op: act, act: relu}\n"
CHAIN = (
    "".join(
        f"  u{i}:\n    layers:\n      - {{unit: u{i + 1}}}"
        + ("  #<-\n" if i == MAX_UNIT_DEPTH - 1 else "\n")
        for i in range(MAX_UNIT_DEPTH + 1)
    )
    + f"  u{MAX_UNIT_DEPTH + 1}:\n    layers:\n      - {{op: conv2d, c: 8}}\n"
)
BOMB = (
    "  a:\n    layers:\n      - {unit: b, n: 64}\n"
    "  b:\n    layers:\n      - {op: conv2d, c: 8, n: 1}\n"
)
SECRET = "token: hunter2-do-not-print\nlayers_not: [1]\n"

# (case id, {file: text}, file to validate, substring of the message). The line the error must
# name carries `#<-` (in whichever file).
CASES: list[tuple[str, dict[str, str], str, str]] = [
    ("unknown_unit", _unit_spec(U8, "  - {unit: uu}  #<-\n"), "s.yaml", "unknown unit 'uu'"),
    (
        "no_units_at_all",
        {"s.yaml": HEAD + "layers:\n  - {unit: u}  #<-\n" + TAIL},
        "s.yaml",
        "the spec has no `units:`",
    ),
    (
        "missing_param",
        _unit_spec(U8.replace("{c: 8}", "{c: null}"), "  - {unit: u}  #<-\n"),
        "s.yaml",
        "missing parameter 'c' for unit 'u' (it has no default)",
    ),
    (
        "unknown_param_at_use",
        _unit_spec(U8, "  - {unit: u, cc: 8}  #<-\n"),
        "s.yaml",
        "unknown parameter 'cc' for unit 'u'",
    ),
    (
        "unknown_param_in_body",
        _unit_spec(U8.replace("$c}", "$d}  #<-"), "  - {unit: u}\n"),
        "s.yaml",
        "unknown parameter $d in unit 'u'",
    ),
    (
        "bad_value_through_param",
        _unit_spec(U8, "  - {unit: u, c: -3}  #<-\n"),
        "s.yaml",
        "found -3; expected a positive integer",
    ),
    (
        "bad_value_in_body",
        _unit_spec(U8.replace("$c}", "$c, s: 99}  #<-"), "  - {unit: u}\n"),
        "s.yaml",
        "in unit u used at line",
    ),
    (
        "cycle",
        _unit_spec(
            "  a:\n    layers:\n      - {unit: b}\n  b:\n    layers:\n      - {unit: a}  #<-\n",
            "  - {unit: a}\n",
        ),
        "s.yaml",
        "unit 'a' uses itself (a → b → a)",
    ),
    (
        "self_use",
        _unit_spec("  a:\n    layers:\n      - {unit: a}  #<-\n", "  - {unit: a}\n"),
        "s.yaml",
        "unit 'a' uses itself (a → a)",
    ),
    ("depth_bomb", _unit_spec(CHAIN, "  - {unit: u0}\n"), "s.yaml", "units nest deeper than"),
    (
        "row_bomb",
        _unit_spec(BOMB, "  - {unit: a, n: 64}  #<-\n"),
        "s.yaml",
        "the spec expands to more than 1000 rows",
    ),
    (
        "collision",
        _unit_spec(U2, "  - {op: conv2d, name: a_conv0, c: 8}\n  - {unit: u, name: a}\n"),
        "s.yaml",
        "duplicate row name 'a_conv0' after expanding units",
    ),
    (
        "wrong_input_count",
        _unit_spec(U8, "  - {op: conv2d, name: a, c: 8}\n  - {unit: u, from: [a, a]}  #<-\n"),
        "s.yaml",
        "found 2 input(s); unit 'u' takes 1 (x)",
    ),
    (
        "unknown_name_in_unit",
        _unit_spec(
            "  u:\n    layers:\n      - {op: add, from: [x, nope]}  #<-\n", "  - {unit: u}\n"
        ),
        "s.yaml",
        "unknown name 'nope' in unit 'u'",
    ),
    (
        "op_and_unit",
        _unit_spec(U8, "  - {op: conv2d, unit: u}  #<-\n"),
        "s.yaml",
        "a row has either `op` or `unit`, not both",
    ),
    (
        "unit_without_layers",
        _unit_spec("  u:  #<-\n    params: {c: 8}\n", "  - {op: conv2d, c: 8}\n"),
        "s.yaml",
        "missing required field 'layers' for a unit",
    ),
    (
        "reserved_param_name",
        _unit_spec(U8.replace("{c: 8}", "{n: 8}  #<-"), "  - {unit: u}\n"),
        "s.yaml",
        "'n' cannot be a parameter name",
    ),
    (
        "absolute_base",
        {"s.yaml": "base: /etc/hosts.yaml  #<-\n"},
        "s.yaml",
        "expected a path relative to this spec's folder",
    ),
    (
        "base_not_found",
        {"s.yaml": "base: nothere.yaml  #<-\n"},
        "s.yaml",
        "no spec file",
    ),
    (
        "base_outside_the_tree",
        {"sub/s.yaml": "base: ../../outside.yaml  #<-\n", f"sub/{TREE_MARKER}": "{}"},
        "sub/s.yaml",
        "lies outside the spec tree",
    ),
    ("base_not_yaml", {"s.yaml": "base: notes.txt  #<-\n"}, "s.yaml", "ending in .yaml or .yml"),
    (
        "base_not_a_spec",
        {"s.yaml": "base: secret.yaml  #<-\n", "secret.yaml": SECRET},
        "s.yaml",
        "the base is not a spec",
    ),
    (
        "base_cycle",
        {"s.yaml": "base: t.yaml\n", "t.yaml": "base: s.yaml  #<-\nlayers: []\n"},
        "s.yaml",
        "is a base of itself",
    ),
    (
        "trim_after_unknown",
        {"s.yaml": "base: m.yaml\ntrim_after: last_cnv  #<-\n", "m.yaml": MNV2.read_text()},
        "s.yaml",
        "did you mean 'last_conv'?",
    ),
    (
        "trim_without_base",
        {"s.yaml": HEAD + "trim_after: x  #<-\nlayers:\n  - {op: conv2d, c: 8}\n" + TAIL},
        "s.yaml",
        "`trim_after` needs a `base`",
    ),
    (
        "unit_defined_twice",
        {
            "s.yaml": "base: m.yaml\nunits:\n  u:  #<-\n    layers: [{op: conv2d, c: 8}]\n",
            "m.yaml": _unit_spec(U8, "  - {unit: u}\n")["s.yaml"],
        },
        "s.yaml",
        "unit 'u' is already defined by the base",
    ),
]


def _marked(files: dict[str, str]) -> tuple[str, int]:
    for name, text in files.items():
        for i, line in enumerate(text.splitlines(), 1):
            if "#<-" in line:
                return name, i
    raise AssertionError("no #<- marker")


@pytest.mark.parametrize(("case", "files", "entry", "needle"), CASES, ids=[c[0] for c in CASES])
def test_bad_composition_is_located(tmp_path, capsys, case, files, entry, needle):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    out = tmp_path / "report.txt"
    assert main(["report", str(tmp_path / entry), "-o", str(out)]) == 2
    captured = capsys.readouterr()
    err = captured.err
    assert "Traceback" not in err and needle in err, err
    assert "hunter2" not in err
    name, line = _marked(files)
    match = re.search(re.escape(str(tmp_path / name)) + r":(\d+):(\d+)", err)
    assert match and int(match.group(1)) == line, err
    assert not out.exists() and captured.out == ""


def test_depth_bomb_names_the_chain(tmp_path):
    (tmp_path / "s.yaml").write_text(_unit_spec(CHAIN, "  - {unit: u0}\n")["s.yaml"])
    with pytest.raises(SpecError) as info:
        load_spec(str(tmp_path / "s.yaml"))
    chain = " → ".join(f"u{i}" for i in range(MAX_UNIT_DEPTH + 1))
    assert f"units nest deeper than {MAX_UNIT_DEPTH} levels ({chain})" in info.value.message
    assert "in unit u0 used at line" in str(info.value.location)


def test_symlink_out_of_the_tree_is_refused(tmp_path, capsys):
    outside = tmp_path / "outside"
    inside = tmp_path / "tree"
    outside.mkdir()
    inside.mkdir()
    (inside / TREE_MARKER).write_text("{}")
    shutil.copy(MNV2, outside / "mnv2.yaml")
    os.symlink(outside / "mnv2.yaml", inside / "link.yaml")
    (inside / "s.yaml").write_text("base: link.yaml\n")
    assert main(["validate", str(inside / "s.yaml")]) == 2
    err = capsys.readouterr().err
    assert f"{inside / 's.yaml'}:1:7" in err and "lies outside the spec tree" in err


def test_c_target_runs_a_block_read_inside_as_single_ops(tmp_path):
    pytest.importorskip("onnxruntime")
    if shutil.which("gcc") is None:
        pytest.skip("needs gcc")
    from tests.test_target_c import build_and_check

    text = (
        HEAD
        + """layers:
  - {op: conv2d, name: stem, c: 8, s: 2}
  - {op: bottleneck, name: b0, t: 6, c: 8}
  - {op: bottleneck, name: b1, t: 6, c: 16, s: 2}
  - {op: conv2d, name: side, from: b0.expand, c: 8, k: 1}
outputs: [b1, side]
"""
    )
    graph = lower(load_spec_text(text, "inner.yaml"))
    assert graph.node("side").inputs == ("b0_expand",)
    kinds = {f.name: f.kind for f in fused_ops(graph, "fused", 2)}
    assert kinds["b0_expand"] == "op" and kinds["b1"] == "block"
    build_and_check(graph, 2, tmp_path)


def test_text_arguments_are_inserted_in_parentheses_and_lists_refused(tmp_path):
    unit = (
        "units:\n  u:\n    params: {per: null}\n    layers:\n"
        "      - {op: conv2d, c: $per * 2, k: 1, scale: none}\n"
    )
    text = HEAD + unit + "layers:\n  - {unit: u, per: num_classes + 1}\n"
    graph = lower(load_spec_text(text, "text_arg.yaml"))
    assert graph.node("u0").shape.c == (10 + 1) * 2
    with pytest.raises(SpecError) as info:
        load_spec_text(text.replace("per: num_classes + 1", "per: [1, 2]"), "list_arg.yaml")
    assert "found a list for $per, used inside '$per * 2'" in info.value.message
    assert info.value.location.line == len(text.splitlines())  # the use, where the list is


def test_a_use_puts_its_rows_in_its_part():
    text = (
        HEAD
        + """units:
  inner:
    layers:
      - {op: conv2d, c: 8, k: 1}
  outer:
    layers:
      - {op: conv2d, name: own, c: 8, part: mine}
      - {unit: inner}
layers:
  - {op: conv2d, name: stem, c: 8}
  - {unit: outer, name: h, part: head}
  - {unit: outer, name: b}
"""
    )
    parts = {n.name: n.part for n in lower(load_spec_text(text, "parts.yaml")).nodes}
    assert (parts["h_own"], parts["h"], parts["b_own"], parts["b"]) == (
        "mine",
        "head",
        "mine",
        "backbone",
    )
