"""The op kit: every op × every target × every counting profile × every activation.

Nothing can be forgotten: each op's module carries its terms for every profile and its context
for every target, each target has its fragment, each activation its rendering in every target,
and every combination builds and computes the same function as the numpy reference.
"""

from __future__ import annotations

import dataclasses

import pytest

from archspec import targets
from archspec.activations import ACTIVATION_TABLE, ACTIVATIONS, TARGETS
from archspec.analysis.cost import analyze_cost
from archspec.errors import SpecError
from archspec.lower import lower
from archspec.ops import BLOCK_KINDS, GRAPH_OPS, LAYER_KINDS, TERMS
from archspec.ops.base import COUNTING_PROFILES
from archspec.spec import load_spec_text
from archspec.verify import verify
from archspec.weights import init_weights

from .conftest import BRANCHING_SPEC


def test_every_op_has_every_piece() -> None:
    assert targets.missing_pieces() == []
    for op in GRAPH_OPS.values():
        for profile in COUNTING_PROFILES[1:]:
            assert profile in op.profiles, (op.name, profile)
    for act in ACTIVATION_TABLE.values():
        assert set(act.render) == set(TARGETS), act.name
    for kind in LAYER_KINDS.values():
        assert kind.auto_prefix, kind.name
    for name, kind in BLOCK_KINDS.items():
        assert name in LAYER_KINDS and kind.c_kernel is not None


def test_a_missing_piece_names_the_op_and_the_target(monkeypatch: pytest.MonkeyPatch) -> None:
    conv = GRAPH_OPS["conv2d"]
    lacking = dataclasses.replace(
        conv, name="lacking", targets={k: v for k, v in conv.targets.items() if k != "keras"}
    )
    monkeypatch.setitem(GRAPH_OPS, "lacking", lacking)
    problems = targets.missing_pieces()
    assert "op 'lacking' has no context for target keras" in problems
    for target in TARGETS:
        assert f"op 'lacking' has no {target} fragment {targets.fragment(target, 'lacking')}" in (
            problems
        )
    with pytest.raises(RuntimeError, match="incomplete op kit: op 'lacking'"):
        targets._check()


def test_an_undeclared_term_is_an_error_not_a_silent_drop(
    monkeypatch: pytest.MonkeyPatch, branching_graph
) -> None:
    fc = GRAPH_OPS["fc"]
    monkeypatch.setitem(GRAPH_OPS, "fc", dataclasses.replace(fc, terms=()))
    with pytest.raises(RuntimeError, match="op 'fc' reports undeclared terms"):
        analyze_cost(branching_graph)


def test_branching_spec_uses_every_op() -> None:
    graph = lower(load_spec_text(BRANCHING_SPEC, "b.yaml"))
    assert {n.op for n in graph.nodes} == set(GRAPH_OPS)
    assert {r.kind for r in graph.spec.rows} == set(LAYER_KINDS)


@pytest.mark.parametrize("profile", COUNTING_PROFILES)
def test_every_op_under_every_profile(profile: str, branching_graph) -> None:
    cost = analyze_cost(branching_graph, profile)
    assert cost.madds == sum(layer.madds for layer in cost.layers)
    assert cost.madds == sum(cost.terms.values())
    assert list(cost.terms) == [t for t in TERMS if t in cost.terms]
    for layer in cost.layers:
        assert set(layer.terms) <= set(GRAPH_OPS[layer.op].terms), layer.name
    seen = {layer.op for layer in cost.layers}
    assert seen == set(GRAPH_OPS) - {"input"}


def _act_spec(act: str) -> str:
    """Every row kind with an activation, each using `act` (a fused block keeps clamp inner
    activations where `act` is not a clamp, so the C target can fuse it; see the next test)."""
    inner = act if ACTIVATION_TABLE[act].is_clamp else "relu6"
    return f"""
name: act-{act}
input: {{resolution: [9, 7], channels: 3}}
num_classes: 5
outputs: [logits, post]
layers:
  - {{op: conv2d, name: stem, c: 8, s: 2, act: {act}}}
  - {{op: bottleneck, name: b, t: 3, c: 8, n: 2, s: 1, act: {inner}}}
  - {{op: dwconv, name: dw, act: {act}}}
  - {{op: conv2d, name: grouped, c: 8, k: 3, groups: 2, bn: false, act: {act}}}
  - {{op: add, name: sum, from: [b, dw, grouped], act: {act}}}
  - {{op: act, name: post, act: {act}}}
  - {{op: avgpool, name: gap, global: true}}
  - {{op: fc, name: hidden, c: 6, act: {act}}}
  - {{op: fc, name: logits, c: num_classes}}
"""


@pytest.mark.slow
@pytest.mark.parametrize("act", ACTIVATIONS)
def test_every_activation_in_every_target(act: str) -> None:
    graph = lower(load_spec_text(_act_spec(act), f"act_{act}.yaml"))
    result = verify(graph, init_weights(graph, 1), targets=TARGETS, progress=False)
    assert not result.skipped, result.skipped
    assert set(result.runtimes) == set(TARGETS)
    assert result.passed, [c for c in result.comparisons if c.relative > result.tolerance]


@pytest.mark.parametrize("act", [a for a in ACTIVATIONS if not ACTIVATION_TABLE[a].is_clamp])
def test_c_refuses_a_fused_block_with_a_non_clamp_activation(act: str) -> None:
    from archspec.emit import emit

    text = _act_spec(act).replace("act: relu6}", f"act: {act}}}")
    graph = lower(load_spec_text(text, "fused.yaml"))
    with pytest.raises(SpecError) as info:
        emit(graph, "c", init_weights(graph, 0))
    assert f"has activation {act!r}" in info.value.message
    assert "clamp activations" in info.value.message
    assert info.value.field == "act"
