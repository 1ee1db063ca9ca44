"""Tests for the generic peak-memory scheduler (archspec.analysis.schedule)."""

from __future__ import annotations

import itertools
from functools import cache

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archspec.analysis import schedule
from archspec.analysis.schedule import (
    Placement,
    Problem,
    ScheduleResult,
    brute_force_order,
    greedy_order,
    live_at,
    lower_bound,
    optimal_order,
    peak,
    place_buffers,
    step_memory,
)

# --------------------------------------------------------------------------------------------
# Helpers


def chain(sizes: list[int], workspace: dict[str, int] | None = None) -> Problem:
    """o0 -> o1 -> ... with the given output sizes."""
    ops = tuple(f"o{i}" for i in range(len(sizes)))
    inputs = {ops[i]: (ops[i - 1],) for i in range(1, len(ops))}
    return Problem(ops, inputs, dict(zip(ops, sizes, strict=True)), workspace or {})


def is_topological(problem: Problem, order: tuple[str, ...]) -> bool:
    if sorted(order) != sorted(problem.ops):
        return False
    pos = {op: i for i, op in enumerate(order)}
    return all(
        pos[x] < pos[op] for op in problem.ops for x in problem.inputs.get(op, ()) if x in pos
    )


def dp_optimum(problem: Problem) -> int:
    """Independent exact reference: plain memoised recursion over done sets (no pruning)."""
    ops = problem.ops
    readers: dict[str, set[str]] = {}
    for op in ops:
        for x in problem.inputs.get(op, ()):
            readers.setdefault(x, set()).add(op)
    deps = {op: frozenset(x for x in problem.inputs.get(op, ()) if x in ops) for op in ops}

    def live(done: frozenset[str]) -> int:
        return sum(
            problem.size[t]
            for t in (*problem.graph_inputs, *done)
            if t in problem.outputs or readers.get(t, set()) - done
        )

    @cache
    def best(done: frozenset[str]) -> int:
        if len(done) == len(ops):
            return 0
        base = live(done)
        return min(
            max(base + problem.size[op] + problem.workspace.get(op, 0), best(done | {op}))
            for op in ops
            if op not in done and deps[op] <= done
        )

    return best(frozenset())


@st.composite
def dags(draw: st.DrawFn, min_ops: int = 1, max_ops: int = 9, max_size: int = 50) -> Problem:
    """Random DAG problems: random edges, sizes (zero included), workspaces, inputs, outputs."""
    n = draw(st.integers(min_ops, max_ops))
    n_in = draw(st.integers(0, 2))
    gins = tuple(f"x{k}" for k in range(n_in))
    ops = tuple(f"op{i}" for i in range(n))
    density = draw(st.sampled_from([0.15, 0.3, 0.5]))
    inputs = {}
    for i, op in enumerate(ops):
        candidates = gins + ops[:i]
        picks = draw(st.lists(st.floats(0, 1), min_size=len(candidates), max_size=len(candidates)))
        inputs[op] = tuple(x for x, r in zip(candidates, picks, strict=True) if r < density)
    sizes = st.integers(0, max_size)
    size = {t: draw(sizes) for t in gins + ops}
    workspace = {op: draw(st.sampled_from([0, 0, draw(st.integers(0, max_size))])) for op in ops}
    outputs = tuple(t for t in gins + ops if draw(st.integers(0, 9)) == 0)
    return Problem(ops, inputs, size, workspace, gins, outputs)


# --------------------------------------------------------------------------------------------
# Eq. 1 by hand


def test_sanity_value_from_the_brief() -> None:
    a, b = 112 * 112 * 96 * 2, 56 * 56 * 96 * 2
    p = chain([a, b])
    assert step_memory(p, ("o0", "o1")) == [a, 3_010_560]
    assert peak(p, ("o0", "o1")) == (3_010_560, 1)


def test_chain_frees_after_last_reader() -> None:
    p = chain([10, 40, 5, 20])
    # o1 holds o0+o1, o2 holds o1+o2, o3 holds o2+o3
    assert step_memory(p, p.ops) == [10, 50, 45, 25]
    res = optimal_order(p)
    assert res.optimal and res.peak_bytes == 50 and res.order == p.ops


def test_diamond_order_matters_with_workspace() -> None:
    p = Problem(
        ops=("a", "b", "c"),
        inputs={"a": ("x",), "b": ("x",), "c": ("a", "b")},
        size={"x": 10, "a": 20, "b": 30, "c": 5},
        workspace={"a": 15},
        graph_inputs=("x",),
        outputs=("c",),
    )
    assert step_memory(p, ("a", "b", "c")) == [10 + 20 + 15, 10 + 20 + 30, 20 + 30 + 5]
    assert step_memory(p, ("b", "a", "c")) == [10 + 30, 10 + 30 + 20 + 15, 55]
    res = optimal_order(p)
    assert res.order == ("a", "b", "c") and res.peak_bytes == 60 and res.optimal
    assert brute_force_order(p) == (("a", "b", "c"), 60)


def test_residual_matches_eq2() -> None:
    # x -> expand -> project -> add(x, project): the block input is held for the add.
    p = Problem(
        ops=("expand", "project", "add"),
        inputs={"expand": ("x",), "project": ("expand",), "add": ("x", "project")},
        size={"x": 8, "expand": 32, "project": 8, "add": 8},
        workspace={},
        graph_inputs=("x",),
        outputs=("add",),
    )
    assert step_memory(p, p.ops) == [8 + 32, 8 + 32 + 8, 8 + 8 + 8]
    assert peak(p, p.ops) == (48, 1)
    assert lower_bound(p) == 48  # Eq. 2 with the residual held is exact for this chain
    res = optimal_order(p)
    assert res.optimal and res.peak_bytes == 48 and res.states_explored == 0


def test_workspace_counts_only_at_its_step() -> None:
    p = chain([10, 10, 10], workspace={"o1": 100})
    assert step_memory(p, p.ops) == [10, 120, 20]
    assert live_at(p, p.ops, 1) == {"o0": 10, "o1": 10, "o1#ws": 100}


def test_graph_outputs_stay_live() -> None:
    base = chain([10, 5, 3])
    assert step_memory(base, base.ops) == [10, 15, 8]
    held = Problem(base.ops, base.inputs, base.size, {}, outputs=("o0",))
    assert step_memory(held, held.ops) == [10, 15, 18]


def test_unread_output_counts_at_its_own_step_only() -> None:
    p = Problem(
        ops=("dead", "a", "b"),
        inputs={"dead": ("x",), "a": ("x",), "b": ("a",)},
        size={"x": 1, "dead": 100, "a": 10, "b": 10},
        workspace={},
        graph_inputs=("x",),
    )
    assert step_memory(p, p.ops) == [101, 11, 20]
    assert step_memory(p, ("a", "dead", "b")) == [11, 111, 20]
    assert optimal_order(p).peak_bytes == 101


def test_unread_graph_input_is_never_counted() -> None:
    p = Problem(("a",), {"a": ()}, {"a": 5, "x": 1000}, {}, graph_inputs=("x",))
    assert step_memory(p, ("a",)) == [5]
    assert live_at(p, ("a",), 0) == {"a": 5}


def test_branch_interleaving_saving() -> None:
    # Two big->small branches: finishing one branch first avoids holding both big tensors.
    p = Problem(
        ops=("a1", "b1", "a2", "b2", "c"),
        inputs={"a1": ("x",), "b1": ("x",), "a2": ("a1",), "b2": ("b1",), "c": ("a2", "b2")},
        size={"x": 1, "a1": 100, "b1": 100, "a2": 1, "b2": 1, "c": 1},
        workspace={},
        graph_inputs=("x",),
        outputs=("c",),
    )
    assert peak(p, p.ops)[0] == 201
    res = optimal_order(p)
    assert res.optimal and res.peak_bytes == 102
    assert peak(p, greedy_order(p))[0] == 102
    assert brute_force_order(p)[1] == 102


def test_live_at_sums_to_step_memory() -> None:
    p = Problem(
        ops=("a", "b", "c", "d"),
        inputs={"a": ("x",), "b": ("a",), "c": ("a", "x"), "d": ("b", "c")},
        size={"x": 3, "a": 7, "b": 11, "c": 13, "d": 17},
        workspace={"b": 5, "d": 2},
        graph_inputs=("x",),
        outputs=("a",),
    )
    for order in (("a", "b", "c", "d"), ("a", "c", "b", "d")):
        mem = step_memory(p, order)
        for i in range(len(order)):
            assert sum(live_at(p, order, i).values()) == mem[i]
    assert live_at(p, ("a", "b", "c", "d"), 1) == {"x": 3, "a": 7, "b": 11, "b#ws": 5}


def test_invalid_inputs_raise() -> None:
    p = chain([1, 2, 3])
    with pytest.raises(ValueError, match="before one of its inputs"):
        step_memory(p, ("o1", "o0", "o2"))
    with pytest.raises(ValueError, match="misses"):
        peak(p, ("o0", "o1"))
    with pytest.raises(ValueError, match="unknown op"):
        peak(p, ("o0", "o1", "zz"))
    with pytest.raises(ValueError, match="no size"):
        optimal_order(Problem(("a",), {}, {}, {}))
    with pytest.raises(ValueError, match="topological"):
        lower_bound(Problem(("a", "b"), {"a": ("b",)}, {"a": 1, "b": 1}, {}))
    with pytest.raises(ValueError, match="unknown tensor"):
        lower_bound(Problem(("a",), {"a": ("q",)}, {"a": 1}, {}))
    with pytest.raises(IndexError):
        live_at(p, p.ops, 3)


def test_empty_problem() -> None:
    p = Problem((), {}, {}, {})
    assert step_memory(p, ()) == [] and peak(p, ()) == (0, -1)
    res = optimal_order(p)
    assert res.order == () and res.peak_bytes == 0 and res.optimal
    assert place_buffers(p, ()).arena_bytes == 0


def test_problem_is_not_mutated() -> None:
    p = Problem(
        ops=("a", "b", "c"),
        inputs={"b": ("a",), "c": ("a",)},
        size={"a": 5, "b": 6, "c": 7},
        workspace={"b": 1},
    )
    snapshot = repr(p)
    optimal_order(p)
    place_buffers(p, greedy_order(p), alignment=4)
    brute_force_order(p)
    assert repr(p) == snapshot


# --------------------------------------------------------------------------------------------
# Exact search


def test_long_chain_with_residuals_is_instant() -> None:
    # 160 ops: blocks of expand -> depthwise -> project (+ add with the block input).
    ops: list[str] = []
    inputs: dict[str, tuple[str, ...]] = {}
    size: dict[str, int] = {}
    prev = "x"
    size["x"] = 3 * 224 * 224
    for k in range(40):
        e, d, pj, a = f"e{k}", f"d{k}", f"p{k}", f"a{k}"
        ops += [e, d, pj, a]
        inputs.update({e: (prev,), d: (e,), pj: (d,), a: (prev, pj)})
        size.update({e: 6000 + 37 * k, d: 6000 + 37 * k, pj: 1000 + k, a: 1000 + k})
        prev = a
    p = Problem(tuple(ops), inputs, size, {}, ("x",), (prev,))
    res = optimal_order(p, time_limit=None)
    assert res.optimal and res.order == p.ops
    assert res.peak_bytes == peak(p, p.ops)[0] == lower_bound(p)
    assert res.seconds < 1.0


def test_pieces_do_not_run_ops_of_the_next_piece() -> None:
    # A diamond whose join frees memory, followed by a shrinking chain: the dominance rule
    # must stop at the end of the diamond's piece.
    p = Problem(
        ops=("a", "b", "c", "d", "e", "f"),
        inputs={"a": ("x",), "b": ("a",), "c": ("a",), "d": ("b", "c"), "e": ("d",), "f": ("e",)},
        size={"x": 50, "a": 40, "b": 30, "c": 35, "d": 20, "e": 10, "f": 5},
        workspace={"b": 3},
        graph_inputs=("x",),
        outputs=("f",),
    )
    res = optimal_order(p)
    assert is_topological(p, res.order)
    assert res.optimal and res.peak_bytes == brute_force_order(p)[1] == peak(p, res.order)[0]


@settings(max_examples=300, deadline=None, derandomize=True)
@given(dags())
def test_optimal_matches_brute_force(p: Problem) -> None:
    _, best = brute_force_order(p)
    res = optimal_order(p, time_limit=None)
    assert isinstance(res, ScheduleResult)
    assert res.optimal
    assert res.peak_bytes == best
    assert is_topological(p, res.order)
    assert peak(p, res.order)[0] == res.peak_bytes
    assert lower_bound(p) <= best == res.lower_bound_bytes
    assert peak(p, greedy_order(p))[0] >= best


@settings(
    max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(dags(min_ops=10, max_ops=16, max_size=1000))
def test_optimal_matches_reference_dp_on_larger_graphs(p: Problem) -> None:
    res = optimal_order(p, time_limit=None)
    assert res.optimal
    assert res.peak_bytes == dp_optimum(p) == peak(p, res.order)[0]
    assert is_topological(p, res.order)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(dags(), st.integers(0, 40))
def test_budgeted_search_reports_valid_bounds(p: Problem, max_states: int) -> None:
    _, best = brute_force_order(p)
    res = optimal_order(p, max_states=max_states, time_limit=None)
    assert is_topological(p, res.order)
    assert peak(p, res.order)[0] == res.peak_bytes >= best
    assert lower_bound(p) <= res.lower_bound_bytes <= best <= res.peak_bytes
    assert res.optimal == (res.lower_bound_bytes == res.peak_bytes)
    if res.optimal:
        assert res.peak_bytes == best


@settings(
    max_examples=100, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(dags(min_ops=10, max_ops=16, max_size=1000), st.integers(1, 300))
def test_budgeted_search_on_larger_graphs(p: Problem, max_states: int) -> None:
    best = dp_optimum(p)
    res = optimal_order(p, max_states=max_states, time_limit=None)
    assert peak(p, res.order)[0] == res.peak_bytes >= best
    assert is_topological(p, res.order)
    assert res.lower_bound_bytes <= best
    if res.optimal:
        assert res.peak_bytes == best


@settings(max_examples=200, deadline=None, derandomize=True)
@given(dags(min_ops=4, max_ops=13, max_size=60), st.lists(st.floats(0, 1.5), max_size=12))
def test_budget_questions_share_a_sound_memo(p: Problem, fractions: list[float]) -> None:
    # White-box: the exact search answers "is there an order with every step <= B?" many
    # times with one memo; answers must stay exact whatever the sequence of budgets.
    c = schedule._compile(p)
    best = dp_optimum(p)
    ready0 = schedule._ready_at(c, 0)
    full = (1 << c.n) - 1
    piece = schedule._Piece(c, 0, full, c.live0, ready0, 0, list(range(c.n)), peak(p, p.ops)[0])
    for f in fractions:
        budget = int(best * f)
        outcome = piece.probe(budget, 10**6, None)
        assert (outcome == schedule._FOUND) == (best <= budget)
        assert piece.lb <= best <= piece.ub
        assert peak(p, tuple(c.names[i] for i in piece.ub_seq))[0] == piece.ub


def wide_problem(branches: int) -> Problem:
    """x feeds ``branches`` big->small branches that one op joins."""
    ops: list[str] = []
    inputs: dict[str, tuple[str, ...]] = {}
    size = {"x": 4}
    for i in range(branches):
        ops += [f"a{i}", f"b{i}"]
        inputs[f"a{i}"] = ("x",)
        inputs[f"b{i}"] = (f"a{i}",)
        size[f"a{i}"] = 50 + 7 * i
        size[f"b{i}"] = 9 + i
    ops.append("join")
    inputs["join"] = tuple(f"b{i}" for i in range(branches))
    size["join"] = 3
    return Problem(tuple(ops), inputs, size, {}, ("x",), ("join",))


def test_tiny_budget_returns_valid_unproven_result() -> None:
    p = wide_problem(4)
    order, best = brute_force_order(p)
    assert lower_bound(p) < best  # the static bound is not tight here
    res = optimal_order(p, max_states=1)
    assert not res.optimal
    assert is_topological(p, res.order)
    assert peak(p, res.order)[0] == res.peak_bytes
    assert lower_bound(p) <= res.lower_bound_bytes <= best <= res.peak_bytes
    full = optimal_order(p)
    assert full.optimal and full.peak_bytes == best


def test_time_limit_zero_still_returns_an_order() -> None:
    p = wide_problem(6)
    res = optimal_order(p, time_limit=0.0)
    assert is_topological(p, res.order)
    assert res.lower_bound_bytes <= res.peak_bytes == peak(p, res.order)[0]


# --------------------------------------------------------------------------------------------
# Buffer placement


def check_placement(p: Problem, order: tuple[str, ...], placement: Placement, align: int) -> None:
    for i in range(len(order)):
        live = live_at(p, order, i)
        spans = [(placement.offsets[name], placement.offsets[name] + b) for name, b in live.items()]
        for (lo1, hi1), (lo2, hi2) in itertools.combinations(spans, 2):
            assert hi1 <= lo2 or hi2 <= lo1 or lo1 == hi1 or lo2 == hi2
        assert all(hi <= placement.arena_bytes for _, hi in spans)
    names = set(p.graph_inputs) | set(p.ops)
    names |= {f"{op}#ws" for op in p.ops if p.workspace.get(op, 0)}
    assert set(placement.offsets) == names
    assert all(off % align == 0 for off in placement.offsets.values())
    assert placement.live_bound_bytes == peak(p, order)[0] if order else True
    assert placement.arena_bytes >= placement.live_bound_bytes
    assert placement.fragmentation == placement.arena_bytes - placement.live_bound_bytes


def test_placement_of_a_chain_is_tight() -> None:
    p = chain([100, 50, 100])
    placement = place_buffers(p, p.ops)
    assert placement.offsets == {"o0": 0, "o1": 100, "o2": 0}
    assert placement.arena_bytes == placement.live_bound_bytes == 150
    assert placement.fragmentation == 0


def test_placement_alignment() -> None:
    p = chain([10, 3, 10], workspace={"o1": 5})
    placement = place_buffers(p, p.ops, alignment=8)
    check_placement(p, p.ops, placement, 8)
    with pytest.raises(ValueError):
        place_buffers(p, p.ops, alignment=0)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(dags(), st.sampled_from([1, 4, 16]), st.booleans())
def test_placement_never_overlaps_live_buffers(p: Problem, align: int, optimal: bool) -> None:
    order = optimal_order(p).order if optimal else p.ops
    check_placement(p, order, place_buffers(p, order, alignment=align), align)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.data())
def test_single_order_fast_path_matches_the_general_evaluator(data):
    """Chains with residual skips take the one-pass path; it must agree with Eq. 1 as
    `step_memory` computes it, graph inputs, outputs and workspaces included."""
    n = data.draw(st.integers(1, 30))
    ops = tuple(f"o{i}" for i in range(n))
    inputs = {}
    for i, op in enumerate(ops):
        reads = ["x"] if i == 0 else [ops[i - 1]]
        skips = data.draw(st.lists(st.integers(0, max(0, i - 2)), max_size=2)) if i > 1 else []
        reads += [ops[j] for j in skips]
        if data.draw(st.booleans()):
            reads.append("x")
        inputs[op] = tuple(dict.fromkeys(reads))
    size = {name: data.draw(st.integers(0, 1000)) for name in (*ops, "x")}
    workspace = {op: data.draw(st.integers(0, 300)) for op in ops}
    outputs = tuple(data.draw(st.sets(st.sampled_from([*ops, "x"]), max_size=3)))
    problem = Problem(ops, inputs, size, workspace, graph_inputs=("x",), outputs=outputs)
    result = optimal_order(problem)
    assert result.optimal and result.order == ops
    assert result.peak_bytes == max(step_memory(problem, ops))
