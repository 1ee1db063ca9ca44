"""The graph-level memory model (paper §5.1): op and fused modes, Table 3, weights, JSON.

Expected values are computed independently from the graph's shapes (Eq. 2 for chains, the
design's workspace rule written out per block) or are the paper's own numbers.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from pathlib import Path

import networkx as nx
import pytest

from archspec.analysis.cost import analyze_cost
from archspec.analysis.memory import (
    DEFAULT_SPLITS,
    DTYPE_BYTES,
    fused_ops,
    memory_problem,
    plan_memory,
    split_tradeoff,
)
from archspec.analysis.memory_summary import memory_json
from archspec.analysis.schedule import step_memory
from archspec.analysis.table3 import table3
from archspec.lower import lower
from archspec.spec import load_spec, load_spec_text

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def mnv2():
    return lower(load_spec(str(ROOT / "specs" / "mnv2_1.0.yaml")))


@pytest.fixture(scope="module")
def aspp():
    return lower(load_spec(str(ROOT / "specs" / "mnv2_aspp.yaml")))


# Two expensive branches off one tensor, listed breadth-first: the spec order holds both wide
# tensors at once, the best order finishes one branch before starting the other.
BRANCHY = """
name: branchy
input: {resolution: 16, channels: 3}
num_classes: 10
layers:
  - {op: conv2d, name: stem, c: 8, s: 1, k: 3}
  - {op: conv2d, name: a_wide, from: stem, c: 64, k: 1}
  - {op: conv2d, name: b_wide, from: stem, c: 64, k: 1}
  - {op: conv2d, name: a_thin, from: a_wide, c: 4, k: 1}
  - {op: conv2d, name: b_thin, from: b_wide, c: 4, k: 1}
  - {op: concat, name: cat, from: [a_thin, b_thin]}
  - {op: avgpool, name: pool, global: true}
  - {op: fc, name: head, c: num_classes}
"""


def _bytes(graph, name, dtype_bytes):
    return graph.node(name).shape.numel * dtype_bytes


# --------------------------------------------------------------------------------------------
# Op mode.


def test_op_mode_peak_is_the_first_strided_depthwise(mnv2):
    plan = plan_memory(mnv2, mode="op", dtype="float16")
    assert plan.peak_bytes == 3_010_560
    assert plan.peak_step == "block1_dw"
    assert plan.live_at_peak == {"block1_expand": 112 * 112 * 96 * 2, "block1_dw": 56 * 56 * 96 * 2}
    assert plan.optimal and plan.lower_bound_bytes == plan.peak_bytes
    assert plan.spec_order_peak == plan.greedy_peak == plan.peak_bytes


@pytest.mark.parametrize("dtype", sorted(DTYPE_BYTES))
def test_op_mode_matches_eq2_on_the_chain(mnv2, dtype):
    """Eq. 2: per op, its inputs + its output + a residual input held for a later add."""
    nbytes = DTYPE_BYTES[dtype]
    expected = {}
    for node in mnv2.ops():
        total = sum(_bytes(mnv2, i, nbytes) for i in set(node.inputs))
        total += _bytes(mnv2, node.name, nbytes)
        block = mnv2.block_of(node.name)
        if block is not None and block.residual and block.input not in node.inputs:
            total += _bytes(mnv2, block.input, nbytes)
        expected[node.name] = total
    plan = plan_memory(mnv2, mode="op", dtype=dtype)
    assert dict(plan.steps) == expected
    assert plan.peak_bytes == max(expected.values())
    # A chain with residuals has one non-trivial order: the spec's.
    assert plan.order == tuple(n.name for n in mnv2.ops())


def test_op_mode_problem_shape(mnv2):
    problem, fops = memory_problem(mnv2, "op", dtype_bytes=4)
    assert problem.ops == tuple(n.name for n in mnv2.ops())
    assert problem.graph_inputs == ("input",)
    assert problem.outputs == mnv2.outputs
    assert not any(problem.workspace.values())
    assert all(f.kind == "op" and f.nodes == (f.name,) and f.group_channels is None for f in fops)


# --------------------------------------------------------------------------------------------
# Fused mode.


def _expected_workspace(graph, block, split, stem=None):
    """DESIGN §4 written out: one group of the expansion (or stem) output at its resolution
    plus one group of the depthwise output at its resolution."""
    dw = graph.node(f"{block.name}_dw")
    first = stem or (graph.node(f"{block.name}_expand") if block.t != 1 else None)
    hidden = first.shape.c if first is not None else dw.shape.c
    group = 1 if split == "n" else math.ceil(hidden / min(split, hidden))

    def area(n):
        return n.shape.h * n.shape.w

    return group * area(dw) + (group * area(first) if first is not None else 0), group


@pytest.mark.parametrize("split", DEFAULT_SPLITS)
def test_fused_workspace_follows_the_design_rule(mnv2, split):
    fops = {f.name: f for f in fused_ops(mnv2, "fused", split, first_layer_trick=True)}
    stem = mnv2.node("stem")
    for k, block in enumerate(mnv2.blocks):
        if k == 0:
            f = fops["stem_block0"]
            assert f.kind == "stem_block"
            assert f.nodes == ("stem", *block.nodes) and f.inputs == ("input",)
            ws, group = _expected_workspace(mnv2, block, split, stem)
        else:
            f = fops[block.name]
            assert f.kind == "block" and f.nodes == block.nodes
            assert f.output_node == block.output
            ws, group = _expected_workspace(mnv2, block, split)
        assert (f.workspace_elems, f.group_channels) == (ws, group)
        hidden = mnv2.node(f"{block.name}_dw").shape.c
        assert f.groups == math.ceil(hidden / group)
    assert [f.name for f in fops.values() if f.kind == "op"] == ["last_conv", "pool", "classifier"]


def test_fused_workspace_literal_values(mnv2):
    # block1 (t = 6, 16 -> 24, s = 2): 96 expansion channels at 112², depthwise out at 56².
    f = {x.name: x for x in fused_ops(mnv2, "fused", 4)}["block1"]
    assert (f.group_channels, f.groups, f.workspace_elems) == (24, 4, 24 * 112 * 112 + 24 * 56**2)
    assert f.workspace_parts == (("block1_expand", 24 * 112 * 112), ("block1_dw", 24 * 56**2))
    # Without the trick, block0 (t = 1) keeps only its depthwise group; the stem is an op.
    g = {x.name: x for x in fused_ops(mnv2, "fused", 2, first_layer_trick=False)}
    assert g["block0"].workspace_elems == 16 * 112 * 112
    assert g["stem"].kind == "op" and g["block0"].inputs == ("stem",)
    # A split larger than the channels is clamped to one channel per group.
    h = {x.name: x for x in fused_ops(mnv2, "fused", 10_000)}["block1"]
    assert (h.group_channels, h.groups) == (1, 96)


@pytest.mark.parametrize("split", DEFAULT_SPLITS)
def test_fused_steps_are_inputs_plus_output_plus_workspace(mnv2, split):
    """Blocks fused, the chain has no residual held across ops: every step is Eq. 2's."""
    plan = plan_memory(mnv2, mode="fused", split=split, dtype="float16")
    problem = plan.problem
    for op, nbytes in plan.steps:
        f = plan.op(op)
        expected = sum(problem.size[t] for t in f.inputs) + problem.size[op]
        assert nbytes == expected + f.workspace_elems * 2
    assert plan.optimal


def test_fused_peaks_fall_with_the_split(mnv2):
    rows = split_tradeoff(mnv2, "float16")
    peaks = [r["peak_bytes"] for r in rows]
    assert [r["split"] for r in rows] == list(DEFAULT_SPLITS)
    assert peaks == sorted(peaks, reverse=True)
    assert peaks[-1] < peaks[0]
    op_peak = plan_memory(mnv2, mode="op", dtype="float16").peak_bytes
    assert all(r["saving_vs_op_bytes"] == op_peak - r["peak_bytes"] for r in rows)
    # One channel at a time: the peak is the stem step, input image + 112²×16 output + groups.
    assert rows[-1]["peak_step"] == "stem_block0"
    assert peaks[-1] == (224 * 224 * 3 + 112 * 112 * 16 + 112 * 112 + 112 * 112) * 2


def test_first_layer_trick_helps_at_fine_splits(mnv2):
    on = plan_memory(mnv2, mode="fused", split="n", dtype="float16")
    off = plan_memory(mnv2, mode="fused", split="n", dtype="float16", first_layer_trick=False)
    assert off.peak_step == "block0"  # the stem's 112²×32 output must be materialised
    assert off.live_at_peak["stem"] == 112 * 112 * 32 * 2
    assert on.peak_bytes < off.peak_bytes


def test_no_stem_fusion_when_the_stem_output_is_read_elsewhere():
    text = """
name: stem_shared
input: {resolution: 32, channels: 3}
num_classes: 10
layers:
  - {op: conv2d, name: stem, c: 16, s: 2, k: 3}
  - {op: bottleneck, name: b0, t: 1, c: 16, n: 1, s: 1}
  - {op: add, name: mix, from: [stem, b0]}
  - {op: avgpool, global: true}
  - {op: fc, c: num_classes}
"""
    graph = lower(load_spec_text(text))
    fops = fused_ops(graph, "fused", 2, first_layer_trick=True)
    kinds = {f.name: f.kind for f in fops}
    assert "stem_block" not in kinds.values()
    assert kinds["b0"] == "block" and kinds["stem"] == "op"
    # The block still fuses, with its residual add inside: the block reads the stem output once.
    b0 = next(f for f in fops if f.name == "b0")
    assert b0.inputs == ("stem",)
    assert next(f for f in fops if f.name == "mix").inputs == ("stem", "b0")


def test_bad_model_arguments(mnv2):
    with pytest.raises(ValueError, match="split"):
        fused_ops(mnv2, "fused", 0)
    with pytest.raises(ValueError, match="memory mode"):
        fused_ops(mnv2, "blocks")
    with pytest.raises(ValueError, match="dtype"):
        plan_memory(mnv2, dtype="bfloat16")


# --------------------------------------------------------------------------------------------
# Branching graphs: the order search.


def _all_orders_best(problem):
    g = nx.DiGraph()
    g.add_nodes_from(problem.ops)
    for op, ins in problem.inputs.items():
        g.add_edges_from((i, op) for i in ins if i in problem.ops)
    return min(max(step_memory(problem, o)) for o in nx.all_topological_sorts(g))


def test_branching_spec_gets_a_proven_optimal_order():
    graph = lower(load_spec_text(BRANCHY))
    plan = plan_memory(graph, mode="op", dtype="float32")
    assert plan.optimal
    assert plan.peak_bytes <= plan.greedy_peak <= plan.spec_order_peak
    assert plan.peak_bytes < plan.spec_order_peak  # the spec order holds both wide tensors
    assert plan.peak_bytes == _all_orders_best(plan.problem)
    # The wide tensor of one branch is consumed before the other branch starts.
    pos = {op: i for i, op in enumerate(plan.order)}
    first, second = sorted(("a", "b"), key=lambda x: pos[f"{x}_wide"])
    assert pos[f"{first}_thin"] < pos[f"{second}_wide"]
    data = memory_json(plan, graph)
    assert data["orders"]["saving_vs_spec_bytes"] == plan.spec_order_peak - plan.peak_bytes > 0
    assert data["optimal"] is True


def test_aspp_spec_optimal_in_both_modes(aspp):
    for mode in ("op", "fused"):
        plan = plan_memory(aspp, mode=mode, split=4, dtype="float16")
        assert plan.optimal
        assert plan.peak_bytes <= min(plan.greedy_peak, plan.spec_order_peak)
        assert plan.placement.arena_bytes >= plan.placement.live_bound_bytes == plan.peak_bytes


def test_budget_stopped_search_is_reported_as_such(monkeypatch):
    """When the scheduler's budget ends the search, the plan keeps its verdict and bound."""
    import archspec.analysis.memory as memory
    import archspec.analysis.memory_report as memory_report
    from archspec.analysis.schedule import ScheduleResult, peak

    graph = lower(load_spec_text(BRANCHY))

    def stopped(problem, *, max_states, time_limit):
        order = problem.ops  # the spec order: the worst here, as a budget-stopped search might
        worst = peak(problem, order)[0]
        return ScheduleResult(order, worst, False, worst // 2, max_states, 0.0)

    monkeypatch.setattr(memory, "optimal_order", stopped)
    plan = memory.plan_memory(graph, dtype="float32", max_states=7)
    assert not plan.optimal
    assert plan.peak_bytes == plan.greedy_peak < plan.spec_order_peak  # never worse than greedy
    assert plan.lower_bound_bytes == plan.spec_order_peak // 2
    data = memory_json(plan, graph)
    assert data["optimal"] is False and data["orders"]["optimal"]["proven"] is False
    assert any("not proven" in line for line in memory_report.memory_sections(data)[0].lines)


# --------------------------------------------------------------------------------------------
# Table 3.


def test_table3_reproduces_the_paper_max(mnv2):
    rows = table3(mnv2, "float16")
    assert [tuple(r["resolution"]) for r in rows] == [(s, s) for s in (112, 56, 28, 14, 7, 1)]
    top = max(rows, key=lambda r: r["bytes"])
    assert top["bytes"] == 112 * 112 * 16 * 2 == 401_408
    assert top["resolution"] == [112, 112] and top["channels"] == 16


def test_table3_bottleneck_rows_follow_table2(mnv2):
    """Independently: per size, the widest tensor a block reads or writes (stem excluded)."""
    widest: dict[int, int] = {}
    for block in mnv2.blocks:
        for name in (block.input, block.output):
            if name == "stem":  # not materialised under the first-layer trick
                continue
            shape = mnv2.node(name).shape
            widest[shape.h] = max(widest.get(shape.h, 0), shape.c)
    rows = {r["resolution"][0]: r for r in table3(mnv2, "float16")}
    for size, channels in widest.items():
        assert rows[size]["bottleneck_channels"] == channels
        assert rows[size]["bottleneck_bytes"] == size * size * channels * 2
    # The paper agrees at 112², 7² and 1×1; at 56², 28², 14² it lists the next stage's channels.
    agree = {s for s, r in rows.items() if r["agrees_with_paper"]}
    assert agree == {112, 7, 1}
    for size, nxt in ((56, 28), (28, 14), (14, 7)):
        assert rows[size]["paper_channels"] in {
            mnv2.node(b.output).shape.c for b in mnv2.blocks if mnv2.node(b.output).shape.h == nxt
        }
        assert f"{nxt}² stage" in rows[size]["note"]
    assert rows[7]["tensor"] == "last_conv" and rows[7]["channels"] == 1280
    assert "first-layer trick" in rows[112]["note"]


def test_table3_without_the_trick_materialises_the_stem(mnv2):
    rows = table3(mnv2, "float16", first_layer_trick=False)
    assert (rows[0]["tensor"], rows[0]["bytes"]) == ("stem", 112 * 112 * 32 * 2)
    assert rows[0]["agrees_with_paper"] is False


def test_table3_of_other_graphs_has_no_paper_column(aspp):
    rows = table3(aspp, "int8")
    assert all("paper_channels" not in r for r in rows)
    assert all(r["bytes"] == math.prod(r["resolution"]) * r["channels"] for r in rows)


# --------------------------------------------------------------------------------------------
# Weights, placement, JSON.


def test_weights_are_deployed_params_with_bn_folded(mnv2):
    cost = analyze_cost(mnv2)
    bn_channels = (cost.params_with_bn - cost.params) // 2  # γ and β per BN channel
    plan = plan_memory(mnv2, mode="op", dtype="int8")
    assert plan.weights_params == cost.params + bn_channels == 3_487_816
    assert plan.weights_bytes == plan.weights_params
    assert plan_memory(mnv2, dtype="float32").weights_bytes == 4 * 3_487_816


@pytest.mark.parametrize(("mode", "split"), [("op", 1), ("fused", 1), ("fused", 4), ("fused", "n")])
def test_placement_offsets_never_overlap_live_buffers(mnv2, mode, split):
    plan = plan_memory(mnv2, mode=mode, split=split, dtype="float16", alignment=16)
    pl = plan.placement
    assert pl.arena_bytes >= pl.live_bound_bytes == plan.peak_bytes
    assert all(off % 16 == 0 for off in pl.offsets.values())
    problem, pos = plan.problem, {op: i for i, op in enumerate(plan.order)}
    last = len(plan.order) - 1
    spans = {}
    for name, size in problem.size.items():
        readers = [pos[op] for op, ins in problem.inputs.items() if name in ins]
        start = pos.get(name, 0)
        end = last if name in problem.outputs else max(readers, default=start)
        spans[name] = (start, end, size)
    for op, ws in problem.workspace.items():
        spans[f"{op}#ws"] = (pos[op], pos[op], ws)
    for (a, (s1, e1, n1)), (b, (s2, e2, n2)) in itertools.combinations(spans.items(), 2):
        if s1 <= e2 and s2 <= e1 and n1 and n2:
            o1, o2 = pl.offsets[a], pl.offsets[b]
            assert o1 + n1 <= o2 or o2 + n2 <= o1, (a, b)


def test_memory_json_contract_and_determinism(mnv2):
    plan = plan_memory(mnv2, mode="fused", split=2, dtype="float16")
    data = memory_json(plan, mnv2)
    for key in (
        "mode",
        "split",
        "dtype_bytes",
        "peak_bytes",
        "peak_step",
        "live_at_peak",
        "order",
        "optimal",
        "lower_bound_bytes",
        "weights_bytes",
        "table3",
        "steps",
        "orders",
        "placement",
        "split_tradeoff",
    ):
        assert key in data, key
    assert (data["mode"], data["split"], data["dtype_bytes"]) == ("fused", 2, 2)
    assert sum(x["bytes"] for x in data["live_at_peak"]) == data["peak_bytes"]
    assert [s["op"] for s in data["steps"]] == data["order"]
    assert max(s["bytes"] for s in data["steps"]) == data["peak_bytes"]
    p = data["placement"]
    assert p["fragmentation_bytes"] == p["arena_bytes"] - p["live_bound_bytes"] >= 0
    assert data["table3_max_bytes"] == 401_408
    again = memory_json(plan_memory(mnv2, mode="fused", split=2, dtype="float16"), mnv2)
    assert json.dumps(data) == json.dumps(again)


def test_analyze_memory_compares_every_model(mnv2):
    from archspec.analysis.memory_report import plan_label
    from archspec.analysis.memory_summary import analyze_memory

    result = analyze_memory(mnv2, mode="fused", split=2, dtype="float16")
    plans = result.timeline_plans()
    assert [plan_label(p) for p in plans] == ["op mode"] + [
        f"fused, split {s}" for s in DEFAULT_SPLITS
    ]
    assert plans[2] is result.plan and result.op_plan.mode == "op"
    assert result.data["op_mode_peak_bytes"] == 3_010_560
    assert result.data["peak_bytes"] == result.plan.peak_bytes


# ---------------------------------------------------------------------------------------------
# The row-tiled workspace rule (opt-in `row_tile`).


def _one_block(channels: int, resolution: int, *rows: str):
    text = f"name: rows\ninput: {{resolution: {resolution}, channels: {channels}}}\nlayers:\n"
    return lower(load_spec_text(text + "".join(f"  - {r}\n" for r in rows), "<rows>"))


# (graph rows, split, row tile) -> workspace parts in elements, computed by hand from
# group × band rows × width (expansion or stem) + group × R × output width (depthwise).
ROW_TILED_CASES = [
    # t = 6, stride 2, 16 -> 96 hidden at 15x15 -> 8x8; split 4: 24 channels. R = 1: the
    # depthwise reads 3 input rows; R = 2: (2 - 1)·2 + 3 = 5.
    ((16, 15, "{op: bottleneck, t: 6, c: 24, s: 2}"), 4, 1, [24 * 3 * 15, 24 * 1 * 8]),
    ((16, 15, "{op: bottleneck, t: 6, c: 24, s: 2}"), 4, 2, [24 * 5 * 15, 24 * 2 * 8]),
    # k = 5, dilation 2 at 12x12, 192 hidden, split 4: 48 channels; R = 1 reads 2·4 + 1 = 9
    # rows, R = 4 would read 12 (the whole input).
    (
        (32, 12, "{op: bottleneck, t: 6, c: 32, s: 1, k: 5, dilation: 2}"),
        4,
        1,
        [48 * 9 * 12, 48 * 12],
    ),
    (
        (32, 12, "{op: bottleneck, t: 6, c: 32, s: 1, k: 5, dilation: 2}"),
        4,
        4,
        [48 * 12 * 12, 48 * 4 * 12],
    ),
    # t = 1: no expansion, the depthwise band alone (32 channels, split 4: 8).
    ((32, 12, "{op: bottleneck, t: 1, c: 16, s: 1}"), 4, 3, [8 * 3 * 12]),
    # The stem block: 33x33 -> stem 17x17x32 -> t = 1 at 17x17; split 4: 8 stem channels, band
    # of 3 stem rows (R = 1) or 4 (R = 2).
    (
        (
            3,
            33,
            "{op: conv2d, name: stem, c: 32, s: 2, k: 3}",
            "{op: bottleneck, t: 1, c: 16, s: 1}",
        ),
        4,
        1,
        [8 * 3 * 17, 8 * 1 * 17],
    ),
    (
        (
            3,
            33,
            "{op: conv2d, name: stem, c: 32, s: 2, k: 3}",
            "{op: bottleneck, t: 1, c: 16, s: 1}",
        ),
        "n",
        2,
        [1 * 4 * 17, 1 * 2 * 17],
    ),
]


@pytest.mark.parametrize(("rows", "split", "row_tile", "parts"), ROW_TILED_CASES)
def test_row_tiled_workspace_is_the_band_formula(rows, split, row_tile, parts):
    graph = _one_block(*rows)
    (fo,) = fused_ops(graph, "fused", split, row_tile=row_tile)
    assert [n for _, n in fo.workspace_parts] == parts
    assert fo.workspace_elems == sum(parts)
    assert fo.row_tile == row_tile
    problem, _ = memory_problem(graph, "fused", split, dtype_bytes=4, row_tile=row_tile)
    assert problem.workspace[fo.name] == 4 * sum(parts)


def test_row_tile_covering_the_output_is_the_untiled_rule(mnv2):
    tallest = max(n.shape.h for n in mnv2.ops())
    for split in (1, 4, "n"):
        untiled = fused_ops(mnv2, "fused", split)
        tiled = fused_ops(mnv2, "fused", split, row_tile=tallest)
        assert [f.workspace_parts for f in tiled] == [f.workspace_parts for f in untiled]
        assert all(f.row_tile is None for f in untiled)
    plain = plan_memory(mnv2, mode="fused", split=4)
    covering = plan_memory(mnv2, mode="fused", split=4, row_tile=tallest)
    assert covering.peak_bytes == plain.peak_bytes
    assert plain.row_tile is None and covering.row_tile == tallest
    # Per block: R equal to the block's own output height already gives the untiled workspace.
    graph = _one_block(16, 15, "{op: bottleneck, t: 6, c: 24, s: 2}")
    assert fused_ops(graph, "fused", 4, row_tile=8) == tuple(
        dataclasses.replace(f, row_tile=8) for f in fused_ops(graph, "fused", 4)
    )


def test_row_tiled_peak_is_monotone_in_the_row_tile(mnv2):
    peaks, workspaces = [], []
    for row_tile in (1, 2, 3, 4, 7, 14, 28, 56, 112):
        plan = plan_memory(mnv2, mode="fused", split=4, row_tile=row_tile)
        peaks.append(plan.peak_bytes)
        workspaces.append([f.workspace_elems for f in plan.fused_ops])
    assert peaks == sorted(peaks) and peaks[0] < peaks[-1]
    for smaller, larger in itertools.pairwise(workspaces):
        assert all(a <= b for a, b in zip(smaller, larger, strict=True))
    # The point of the mode: at split 4, R = 1 needs over 4x less than op mode (the untiled
    # rule: 2.3x), the stem block's input and output now being the largest step.
    op_peak = plan_memory(mnv2, mode="op").peak_bytes
    assert op_peak / peaks[0] > 4 > op_peak / plan_memory(mnv2, mode="fused", split=4).peak_bytes


def test_row_tile_in_the_report_and_bad_row_tiles(mnv2):
    plan = plan_memory(mnv2, mode="fused", split=4, row_tile=2)
    data = memory_json(plan, mnv2, tradeoff=[], table3_rows=[])
    assert data["row_tile"] == 2
    assert memory_json(plan_memory(mnv2), mnv2, tradeoff=[], table3_rows=[])["row_tile"] is None
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="row_tile"):
            fused_ops(mnv2, "fused", 4, row_tile=bad)
