"""The commented TEMPLATE op of docs/op_template/ is a working op: registered with its four
fragments, it builds and runs in every target and agrees with its numpy reference."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import jinja2
import pytest

from archspec import emit as emit_module
from archspec.activations import TARGETS
from archspec.analysis.cost import analyze_cost
from archspec.lower import lower
from archspec.ops import GRAPH_OPS, LAYER_KINDS
from archspec.spec import load_spec_text
from archspec.targets import FRAGMENTS, missing_pieces
from archspec.templating import environment, templates_root
from archspec.verify import verify
from archspec.weights import init_weights

TEMPLATE = Path(__file__).resolve().parent.parent / "docs" / "op_template"
FRAGMENT_FILES = {
    "pytorch": "pytorch.py.j2",
    "keras": "keras.py.j2",
    "onnx": "onnx.onnxtxt.j2",
    "c": "c.c.j2",
}
SPEC = """
name: template-op
input: {resolution: [6, 5], channels: 3}
num_classes: 4
outputs: [logits, scaled]
layers:
  - {op: conv2d, c: 8, s: 2}
  - {op: scale, name: scaled, factor: -2.5}
  - {op: avgpool, global: true}
  - {op: fc, name: logits, c: num_classes}
"""


@pytest.fixture
def template_op(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Register the TEMPLATE op and its fragments (in a temporary template folder)."""
    spec = importlib.util.spec_from_file_location("op_template", TEMPLATE / "TEMPLATE.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for target, name in FRAGMENT_FILES.items():
        dest = tmp_path / FRAGMENTS[target].format(op="scale")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(TEMPLATE / name, dest)
    env = environment().overlay(
        loader=jinja2.ChoiceLoader(
            [jinja2.FileSystemLoader(str(tmp_path)), jinja2.FileSystemLoader(str(templates_root()))]
        )
    )
    monkeypatch.setitem(GRAPH_OPS, "scale", module.GRAPH_OP)
    monkeypatch.setitem(LAYER_KINDS, "scale", module.LAYER)
    monkeypatch.setattr(emit_module, "environment", lambda: env)
    monkeypatch.setattr("archspec.targets.templates_root", lambda: tmp_path)
    return module


def test_template_op_has_every_piece(template_op) -> None:
    problems = missing_pieces()
    assert not [p for p in problems if "'scale'" in p]


def test_template_op_counts_and_runs_in_every_target(template_op) -> None:
    graph = lower(load_spec_text(SPEC, "template.yaml"))
    assert graph.node("scaled").op == "scale"
    cost = analyze_cost(graph)
    assert cost.terms["scale"] == 8 * 3 * 3
    result = verify(graph, init_weights(graph, 0), targets=TARGETS, progress=False)
    assert not result.skipped and set(result.runtimes) == set(TARGETS)
    assert result.passed, result.comparisons
