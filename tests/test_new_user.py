"""What a new user meets first when writing networks other than MobileNetV2 (issue 15)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from archspec.analysis.cost import analyze_cost
from archspec.analysis.html import render_html
from archspec.analysis.report import render_json, render_text, report_data, table2_rows
from archspec.errors import SpecError
from archspec.lower import lower, make_divisible
from archspec.ops import GRAPH_OPS, LAYER_KINDS
from archspec.ops.base import no_weights
from archspec.spec import load_spec, load_spec_text, spec_to_dict
from archspec.suggest import closest, edit_distance

ROOT = Path(__file__).resolve().parent.parent

HEAD = "name: net\ninput: {resolution: 32}\nnum_classes: 10\n"


def _error(text: str, *overrides: str) -> SpecError:
    with pytest.raises(SpecError) as info:
        lower(load_spec_text(text, "net.yaml", overrides))
    return info.value


def _report(text: str, *overrides: str) -> dict:
    graph = lower(load_spec_text(text, "net.yaml", overrides))
    return report_data(graph, analyze_cost(graph))


def _line(text: str, marker: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if marker in line)


def test_never_used_points_at_the_dangling_end_of_a_chain():
    text = HEAD + (
        "layers:\n"
        "  - {op: conv2d, name: trunk, c: 16, s: 2}\n"
        "  - {op: conv2d, name: box0, from: trunk, c: 12, k: 1}\n"
        "  - {op: conv2d, name: box1, c: 12, k: 1}\n"
        "  - {op: conv2d, name: cls, from: trunk, c: num_classes, k: 1}\n"
    )
    err = _error(text)
    assert err.location.line == _line(text, "box1")
    assert err.field == "layers[2]"
    assert "never used (it ends a chain of 2 unused rows)" in err.message
    assert "`outputs:`" in (err.hint or "")
    # listing the dangling end as an output is the fix
    fixed = text.replace("layers:", "outputs: [box1, cls]\nlayers:")
    assert lower(load_spec_text(fixed)).outputs == ("box1", "cls")


def test_never_used_single_row_keeps_its_message():
    text = HEAD + (
        "outputs: [b]\nlayers:\n"
        "  - {op: conv2d, name: a, c: 8}\n"
        "  - {op: conv2d, name: side, c: 8}\n"
        "  - {op: conv2d, name: b, from: a, c: 8}\n"
    )
    err = _error(text)
    assert err.location.line == _line(text, "side")
    assert err.message.endswith("the output of this conv2d row is never used")
    assert "now only the network's outputs" in (err.hint or "")


DETECTOR = HEAD + (
    "width_multiplier: 0.5\noutputs: [box, cls]\nlayers:\n"
    "  - {op: conv2d, name: trunk, c: 32, s: 2}\n"
    "  - {op: conv2d, name: box, from: trunk, c: 3 * 4, k: 1, bn: false, act: linear}\n"
    "  - {op: conv2d, name: cls, from: trunk, c: (num_classes + 1) * 3, k: 1, bn: false}\n"
)


@pytest.mark.parametrize("classes", [10, 91])
def test_channel_expressions_follow_set_num_classes_and_are_never_scaled(classes):
    graph = lower(load_spec_text(DETECTOR, overrides=[f"num_classes={classes}"]))
    assert graph.node("cls").shape.c == (classes + 1) * 3
    assert graph.node("box").shape.c == 12  # not 12 · 0.5 = 6 → 8
    assert graph.node("trunk").shape.c == 16  # widths still scale


@pytest.mark.parametrize(
    ("written", "message"),
    [
        ("__import__('os').getcwd()", "expected integers, `num_classes`"),
        ("2 ** 10", "expected only the operators +, -, * and //"),
        ("num_classes / 2", "expected only the operators +, -, * and //"),
        ("classes + 1", "unknown name 'classes'"),
        ("-num_classes", "expected integers, `num_classes`"),
        ("1.5 * num_classes", "found 1.5"),
        ("num_classes +", "it is not an integer expression"),
        ("(" * 100 + "1" + ")" * 100, "expected at most 120"),
        ("+".join(["1"] * 40), "more than 64 terms"),
    ],
)
def test_bad_channel_expressions_are_refused_at_their_field(written, message):
    text = DETECTOR.replace("c: 3 * 4", f"c: {written!r}")
    with pytest.raises(SpecError) as info:
        load_spec_text(text)
    assert info.value.field == "layers[1].c"
    assert message in info.value.message
    assert "`3 * num_classes`" in (info.value.hint or "")


@pytest.mark.parametrize(
    ("written", "message"),
    [
        ("num_classes // (num_classes - 10)", "it divides by zero"),
        ("num_classes - 10", "0 channels from 'num_classes - 10'; expected 1 to 65536"),
        ("99999999999 * 99999999999", "an intermediate value exceeds"),
    ],
)
def test_channel_expression_values_are_checked_when_lowering(written, message):
    err = _error(DETECTOR.replace("c: 3 * 4", f"c: {written}"))
    assert err.field == "layers[1].c" and message in err.message


def test_a_count_ignores_scale():
    """`scale` says how a width scales; a count is exact whatever it says (a resolved spec
    written back by `spec_to_dict` carries the default `scale: width` on every row)."""
    for scale in ("width", "last_layer", "none"):
        text = DETECTOR.replace("c: 3 * 4,", f"c: 3 * 4, scale: {scale},")
        assert lower(load_spec_text(text)).node("box").shape.c == 12


def test_rounding_that_changes_a_written_width_is_reported_per_row():
    text = DETECTOR.replace("width_multiplier: 0.5\n", "").replace("c: 32, s: 2", "c: 20, s: 2")
    data = _report(text)
    rows = {r["name"]: r for r in data["rows"]}
    assert rows["box"]["rounded_from"] is None  # an expression: exact
    assert rows["cls"]["c"] == 33 and rows["cls"]["c_written"] == "(num_classes + 1) * 3"
    assert rows["trunk"]["c"] == make_divisible(20) == 24 and rows["trunk"]["rounded_from"] == 20
    cells = {r[1]: r for r in table2_rows(data)}
    assert cells["conv2d (trunk)"][3] == "24 (20 rounded)"
    assert cells["conv2d (cls) [output]"][3] == "33"
    text_report = render_text(data)
    assert "Rounding changed the channels of 1 row (trunk 20 → 24)" in text_report
    assert '"rounded_from": 20' in render_json(data)
    # at width 0.5 the scaled value (not the written one) is what rounding changed
    half = _report(text, "width_multiplier=0.35")
    trunk = next(r for r in half["rows"] if r["name"] == "trunk")
    assert trunk["rounded_from"] == 20 * 0.35 and trunk["c"] == 8


def test_mobilenet_v2_has_no_rounded_rows():
    graph = lower(load_spec(str(ROOT / "specs" / "mnv2_1.0.yaml")))
    data = report_data(graph, analyze_cost(graph))
    assert all(r["rounded_from"] is None for r in data["rows"])
    assert "Rounding changed" not in render_text(data)


GROUPED = HEAD + (
    "layers:\n"
    "  - {op: conv2d, name: a, c: 90, k: 1}\n"
    "  - {op: conv2d, name: b, c: 336, k: 1, groups: 3}\n"
)


def test_groups_error_quotes_the_written_input_channels_at_the_groups_field():
    err = _error(GROUPED)
    assert err.field == "layers[1].groups" and err.location.line == _line(GROUPED, "name: b")
    assert (
        err.location.column
        == GROUPED.splitlines()[_line(GROUPED, "name: b") - 1].index("groups: 3")
        + len("groups: ")
        + 1
    )
    assert (
        f"groups=3 must divide both the input channels ({make_divisible(90)}, rounded from the "
        "written 90) and the output channels (336)"
    ) in err.message


def test_groups_error_at_c_when_rounding_broke_the_output_channels():
    text = GROUPED.replace("c: 90", "c: 96").replace("c: 336", "c: 90")
    err = _error(text)
    assert err.field == "layers[1].c"
    assert "the output channels (88, rounded from the written 90)" in err.message
    assert "`scale: none`" in err.message
    lower(load_spec_text(text.replace("groups: 3", "groups: 3, scale: none")))
    # under a width multiplier the message shows the scaled value that was rounded
    err = _error(GROUPED.replace("c: 90", "c: 180"), "width_multiplier=0.5")
    assert "input channels (88: the written 180 × width, 90, rounded)" in err.message


# The bias of every conv/fc node a row kind lowers to, as a function of the row's `bn` (None for
# kinds without a `bn` field); every registered row kind must be listed (kinds without weights
# map to no nodes).
BIAS_RULES = {
    "conv2d": ("{op: conv2d, c: 24}", lambda bn: [not bn]),
    "dwconv": ("{op: dwconv}", lambda bn: [False]),
    "sepconv": ("{op: sepconv, c: 24}", lambda bn: [False, not bn]),
    "bottleneck": ("{op: bottleneck, t: 2, c: 24}", lambda bn: [False, False, False]),
    "shuffle_unit": (
        "{op: shuffle_unit, c: 48, s: 2, groups: 3}",
        lambda bn: [False, False, False],
    ),
    "fc": ("{op: avgpool, global: true}\n  - {op: fc, c: 10}", lambda bn: [True]),
    "avgpool": ("{op: avgpool, k: 3}", lambda bn: []),
    "maxpool": ("{op: maxpool, k: 3}", lambda bn: []),
    "add": ("{op: add, from: [trunk, other]}", lambda bn: []),
    "concat": ("{op: concat, from: [trunk, other]}", lambda bn: []),
    "upsample": ("{op: upsample, factor: 2}", lambda bn: []),
    "shuffle": ("{op: shuffle, groups: 3}", lambda bn: []),
    "act": ("{op: act, act: relu}", lambda bn: []),
    "shift": ("{op: shift}", lambda bn: []),
}


def test_every_row_kind_states_its_bias_rule():
    assert set(BIAS_RULES) == set(LAYER_KINDS)


def _last_row_weights(row: str) -> tuple[list[bool], list[str]]:
    """The biases of the conv/fc nodes of the last row, and the ops of its other nodes."""
    text = HEAD + (
        "layers:\n  - {op: conv2d, name: trunk, c: 24}\n"
        f"  - {{op: conv2d, name: other, c: 24}}\n  - {row}\n"
    )
    graph = lower(load_spec_text(text))
    last = graph.spec.rows[-1].index
    nodes = [n for n in graph.nodes if n.row == last]
    weighted = [n.attrs["bias"] for n in nodes if n.op in ("conv2d", "fc")]
    return weighted, [n.op for n in nodes if n.op not in ("conv2d", "fc")]


@pytest.mark.parametrize(
    ("kind", "bn"),
    [
        (kind, bn)
        for kind in sorted(BIAS_RULES)
        for bn in ((True, False) if "bn" in LAYER_KINDS[kind].field_index else (None,))
    ],
)
def test_bias_rule(kind, bn):
    row, rule = BIAS_RULES[kind]
    fields = LAYER_KINDS[kind].field_index
    if bn is not None:
        row = row[:-1] + f", bn: {str(bn).lower()}}}"
    biases, others = _last_row_weights(row)
    assert biases == rule(bn)
    # the other nodes have no weights at all
    assert all(GRAPH_OPS[op].weights is no_weights for op in others)
    if "bias" in fields:  # an explicit `bias:` wins
        assert _last_row_weights(row[:-1] + ", bias: true}")[0] == [True]
        assert _last_row_weights(row[:-1] + ", bias: false}")[0] == [False]


LABELLED = HEAD + (
    "outputs: [dw, head]\nlayers:\n"
    "  - {op: conv2d, name: stem, c: 24, s: 2}\n"
    "  - {op: conv2d, name: gpw, c: 48, k: 1, groups: 3}\n"
    "  - {op: dwconv, name: dw}\n"
    "  - {op: conv2d, name: head, from: gpw, c: num_classes, k: 1, bn: false}\n"
)


def test_layer_labels_terms_and_output_markers():
    data = _report(LABELLED)
    layers = {x["name"]: x for x in data["layers"]}
    # a grouped 1x1 conv is pointwise in the breakdown; a dwconv row is depthwise
    assert layers["gpw"]["terms"] == {"pointwise": 16 * 16 * 48 * 8}
    assert layers["dw"]["conv_kind"] == "depthwise" and layers["stem"]["conv_kind"] == "conv"
    assert set(data["madds_breakdown"]) == {"conv", "pointwise", "depthwise"}
    text = render_text(data)
    assert re.search(r"^dw +conv2d \(depthwise\) ", text, re.M)
    assert re.search(r"^gpw +conv2d +16", text, re.M)
    # the params label says what it counts, conv biases included (head has one)
    assert data["layers"][-1]["params"] == 48 * 10 + 10
    assert "params (deployed: conv/FC weights and biases)" in text
    # the rows that are outputs are marked (and only those)
    marked = [r[1] for r in table2_rows(data) if r[1].endswith(" [output]")]
    assert marked == ["dwconv (dw) [output]", "conv2d (head) [output]"]
    assert [r["output"] for r in data["rows"]] == [False, False, True, True]


NOTED = HEAD + (
    "layers:\n"
    "  - {op: conv2d, name: stem, c: 16, note: 'review: stride 1 | 2?'}\n"
    '  - {op: bottleneck, t: 6, c: 16, note: "<b>keep</b>\\nthe residual"}\n'
    "  - {op: conv2d, c: 16}\n"
)


def test_a_row_note_is_shown_in_every_report_format():
    data = _report(NOTED)
    assert [r["note"] for r in data["rows"]] == [
        "review: stride 1 | 2?",
        "<b>keep</b>\nthe residual",
        None,
    ]
    text = render_text(data)
    assert re.search(r"^32²×3 .*  review: stride 1 \| 2\?$", text, re.M)
    assert re.search(r"^block0_expand .*<b>keep</b> the residual", text, re.M)
    markdown = render_text(data, markdown=True)
    assert "| review: stride 1 \\| 2? |" in markdown
    assert json.loads(render_json(data))["rows"][1]["note"] == "<b>keep</b>\nthe residual"
    page = render_html(data, {})
    assert "<td>&lt;b&gt;keep&lt;/b&gt;\nthe residual</td>" in page
    assert "<th>Note</th>" in page
    # without notes there is no Note column
    assert "Note" not in render_text(_report(HEAD + "layers:\n  - {op: conv2d, c: 16}\n"))


def test_a_note_round_trips_and_must_be_text():
    spec = load_spec_text(NOTED)
    again = load_spec_text(yaml.safe_dump(spec_to_dict(spec), sort_keys=False))
    assert [r.note for r in again.rows] == [r.note for r in spec.rows]
    with pytest.raises(SpecError) as info:
        load_spec_text(NOTED.replace("note: 'review: stride 1 | 2?'", "note: [1]"))
    assert info.value.field == "layers[0].note" and "expected text" in info.value.message


def _typo(word: str) -> str:
    """The word with its middle letter dropped."""
    i = len(word) // 2
    return word[:i] + word[i + 1 :]


@pytest.mark.parametrize("kind", sorted(LAYER_KINDS))
def test_an_unknown_op_suggests_only_a_close_row_kind(kind):
    others = [k for k in LAYER_KINDS if k != kind]
    # a typo of a registered kind (or its name in capitals) finds it
    if len(kind) > 3:
        assert closest(_typo(kind), LAYER_KINDS) == kind
    assert closest(kind.upper(), LAYER_KINDS) == kind
    # the same name before its op existed: a suggestion, if any, is a near spelling
    near = closest(kind, others)
    assert near is None or edit_distance(kind, near) <= 2
    text = HEAD + f"layers:\n  - {{op: {_typo(kind)}x}}\n"
    with pytest.raises(SpecError) as info:
        load_spec_text(text)
    assert info.value.field == "layers[0].op"
    assert info.value.message.endswith("expected one of: " + ", ".join(LAYER_KINDS))


def test_maxpool_is_not_offered_avgpool():
    assert closest("maxpool", [k for k in LAYER_KINDS if k != "maxpool"]) is None
    assert edit_distance("maxpool", "avgpool") == 3
    assert edit_distance("bottlenekc", "bottleneck") == 1  # a swap counts once


@pytest.mark.parametrize("kind", sorted(LAYER_KINDS))
def test_an_unknown_field_lists_the_fields_of_its_row_kind(kind):
    text = HEAD + f"layers:\n  - {{op: {kind}, zzz: 1}}\n"
    with pytest.raises(SpecError) as info:
        load_spec_text(text)
    fields = ", ".join(LAYER_KINDS[kind].field_index)
    assert info.value.message == f"unknown field 'zzz' for a {kind} row; expected one of: {fields}"
    assert info.value.field == "layers[0].zzz"


@pytest.mark.parametrize(
    ("row", "hint"),
    [
        ("{op: conv2d, c: 8, stride: 2}", "did you mean 's'?"),
        ("{op: conv2d, c: 8, kernel: 3}", "did you mean 'k'?"),
        ("{op: bottleneck, t: 6, channels: 8}", "did you mean 'c'?"),
        ("{op: conv2d, c: 8, dilaton: 2}", "did you mean 'dilation'?"),
        ("{op: conv2d, c: 8, t: 6}", "'t' is a field of bottleneck rows"),
        ("{op: conv2d, c: 8, qqq: 6}", None),
    ],
)
def test_unknown_field_hints(row, hint):
    with pytest.raises(SpecError) as info:
        load_spec_text(HEAD + f"layers:\n  - {row}\n")
    assert info.value.hint == hint


def _readme_section(title: str) -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(f"### {title}\n")
    return text[start : text.index("\n#", start + 1)]


def test_readme_lists_the_reserved_names_and_each_is_refused():
    from archspec.names import RESERVED, identifier_problem
    from archspec.targets.pytorch import MODULE_ATTRIBUTES

    section = _readme_section("Reserved names")
    bullets = section.split("\n- ")[1:]
    quoted = [re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)`", b) for b in bullets]
    assert {f"`{n}`" for n in RESERVED} <= set(re.findall(r"`[^`]+`", section))
    for names in quoted[:3]:  # keywords, C keywords, the generated modules' own names
        assert names and all(identifier_problem(n) for n in names if n != "from")
    torch_attrs = [n for n in quoted[3] if n in MODULE_ATTRIBUTES]
    assert len(torch_attrs) >= 6 and not any(identifier_problem(n) for n in ("train", "cuda"))


def _memory_report(graph) -> tuple[dict, str]:
    from archspec.analysis.memory_summary import analyze_memory

    data = report_data(graph, analyze_cost(graph), analyze_memory(graph, dtype="float16").data)
    return data, render_text(data)


def test_no_split_table_nor_paper_column_for_mobilenet_v1():
    data, text = _memory_report(lower(load_spec(str(ROOT / "specs/paper/mnv1_1.0.yaml"))))
    tradeoff = data["memory"]["split_tradeoff"]
    assert len({r["peak_bytes"] for r in tradeoff}) == 1  # nothing to fuse: every split alike
    assert "Memory against split" not in text
    table3_rows = data["memory"]["table3"]
    assert all("paper_channels" not in r for r in table3_rows)
    assert "Table 3" in text and "Paper (ch / K)" not in text and "≠" not in text
    assert "Bottleneck tensor" not in text  # no block reads or writes any tensor


def test_mobilenet_v2_keeps_the_split_table_and_the_paper_column():
    data, text = _memory_report(lower(load_spec(str(ROOT / "specs/mnv2_1.0.yaml"))))
    assert "Memory against split" in text and "Paper (ch / K)" in text
    assert all("paper_channels" in r for r in data["memory"]["table3"])


def test_a_network_shaped_like_mobilenet_v2_is_not_compared_with_it():
    """Same sizes and width, one stage wider: its own column alone."""
    from archspec.analysis.table3 import table3

    source = (ROOT / "specs/mnv2_1.0.yaml").read_text(encoding="utf-8")
    assert source.count("c: 96,") == 1
    graph = lower(load_spec_text(source.replace("c: 96,", "c: 104,")))
    assert all("paper_channels" not in r for r in table3(graph, "float16"))
    paper = lower(load_spec_text(source))
    assert all("paper_channels" in r for r in table3(paper, "float16"))
    half = lower(load_spec_text(source, overrides=["resolution=[224, 192]"]))
    assert all("paper_channels" not in r for r in table3(half, "float16"))
