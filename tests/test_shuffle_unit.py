"""The ShuffleNet unit: its lowering, its split rule as a fused block, and its C kernel's limits.

The C kernel itself is checked against ONNX Runtime (with the measured high-water mark equal to
the planned peak) at splits 1, 2, 4 and n in tests/test_target_c.py, and row-tiled in
tests/test_target_c_rows.py (the `shuffle_*` cases of both).
"""

from __future__ import annotations

import math

import pytest

from archspec.analysis.cost import analyze_cost
from archspec.analysis.memory import fused_ops, plan_memory
from archspec.errors import SpecError
from archspec.lower import lower
from archspec.spec import load_spec_text

HEAD = "name: units\ninput: {resolution: 14, channels: 24}\nlayers:\n"


def _graph(*rows: str):
    return lower(load_spec_text(HEAD + "".join(f"  - {r}\n" for r in rows), "units.yaml"))


def test_unit_lowers_to_the_rows_written_out() -> None:
    unit = _graph("{op: shuffle_unit, name: u, c: 48, groups: 3, s: 2}")
    by_hand = _graph(
        "{op: conv2d, name: g1, c: 12, k: 1, groups: 3, act: relu, scale: none}",
        "{op: shuffle, name: sh, groups: 3}",
        "{op: dwconv, name: dw, k: 3, s: 2, act: linear}",
        "{op: conv2d, name: g2, c: 24, k: 1, groups: 3, act: relu}",
        "{op: avgpool, name: pool, from: input, k: 3, s: 2, count_pad: true}",
        "{op: concat, name: cat, from: [pool, g2]}",
    )
    ops = [(n.op, n.shape, {k: v for k, v in n.attrs.items()}) for n in unit.ops()]
    expected = [(n.op, n.shape, {k: v for k, v in n.attrs.items()}) for n in by_hand.ops()]
    assert sorted(ops, key=repr) == sorted(expected, key=repr)
    a, b = analyze_cost(unit), analyze_cost(by_hand)
    assert (a.madds, a.params, a.params_with_bn) == (b.madds, b.params, b.params_with_bn)


def test_first_group_uses_one_group_only_in_the_first_repeat() -> None:
    graph = _graph("{op: shuffle_unit, name: u, c: 48, groups: 3, s: 2, n: 2, first_group: true}")
    groups = [graph.node(f"u_{i}_gconv1").attrs["groups"] for i in range(2)]
    assert groups == [1, 3]


@pytest.mark.parametrize("split", [1, 2, 5, "n"])
@pytest.mark.parametrize("stride", [1, 2])
def test_split_rule(split: int | str, stride: int) -> None:
    c = 24 if stride == 1 else 48
    graph = _graph(f"{{op: shuffle_unit, name: u, c: {c}, groups: 3, s: {stride}}}")
    (fo,) = fused_ops(graph, "fused", split)
    mid = c // 4  # the split divides the bottleneck (depthwise) channels into groups
    group = math.ceil(mid / (mid if split == "n" else min(split, mid)))
    out = math.ceil(14 / stride)
    assert fo.kind == "block" and fo.nodes == tuple(n.name for n in graph.ops())
    assert fo.group_channels == group and fo.groups == math.ceil(mid / group)
    # one group of the first group conv (input resolution) + one of the depthwise (output)
    assert fo.workspace_elems == group * 14 * 14 + group * out * out
    assert dict(fo.workspace_parts) == {"u_gconv1": group * 196, "u_dw": group * out * out}
    plan = plan_memory(graph, mode="fused", split=split)
    assert plan.peak_bytes == 4 * (24 * 14 * 14 + c * out * out + fo.workspace_elems)


def test_row_tiled_rule_bands_the_first_group_conv() -> None:
    graph = _graph("{op: shuffle_unit, name: u, c: 48, groups: 3, s: 2}")
    (fo,) = fused_ops(graph, "fused", 1, row_tile=2)
    # 2 output rows of a 3x3 stride-2 depthwise read (2 - 1)·2 + 3 = 5 input rows
    assert dict(fo.workspace_parts) == {"u_gconv1": 12 * 5 * 14, "u_dw": 12 * 2 * 7}


@pytest.mark.parametrize(
    ("row", "needle"),
    [
        ("{op: shuffle_unit, c: 48, groups: 3, s: 1}", "expected them equal"),
        ("{op: shuffle_unit, c: 24, groups: 3, s: 2}", "expected c above 24"),
        ("{op: shuffle_unit, c: 40, groups: 3, s: 2}", "groups=3 must divide"),
    ],
)
def test_bad_units_are_located(row: str, needle: str) -> None:
    with pytest.raises(SpecError) as info:
        _graph(row)
    assert needle in info.value.message
    assert info.value.location is not None and info.value.location.line == 4
