"""The PyTorch target: one standalone module per spec, laid out as a person would write it.

The module defines `build_model(weights=None)`, which returns a `torch.nn.Module` in eval mode.
Its `Network` is built from units: a graph node (a conv node is a `ConvBN`: Conv2d, BatchNorm2d,
activation), or a whole fusable block, rendered as its kind's class (`InvertedResidual`,
`ShuffleUnit`: the fragment `templates/pytorch/blocks/<kind>.py.j2`). Consecutive units of one
spec row that form a chain are one `nn.Sequential` stage, named after the row (or `stage<k>`);
`forward` keeps branching graphs readable (a variable per branch, `x` along a chain). Parameters
are registered in graph order, so the state dict holds torchvision's MobileNetV2 tensors in
torchvision's order; `NODE_MODULES` in the module maps the canonical weight keys (`<node>.<weight>`)
to submodules, and for MobileNetV2-like specs `from_torchvision_state_dict` renames torchvision's
keys (see docs/pytorch_target.md). Input: float32 NCHW; a classifier (fc) output is (N, classes),
every other output NCHW; several graph outputs come back as a tuple in `graph.outputs` order.

What the fragments get is computed here (padding, channel counts, layouts, stages); the
templates in `templates/pytorch/` only format it, and `archspec.targets.pyformat` lays the
statements out as `ruff format` would.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jinja2
import numpy as np

from archspec import __version__
from archspec.activations import rendering
from archspec.errors import SpecError
from archspec.graph import Block, GNode, Graph
from archspec.names import spec_identifier
from archspec.ops import GRAPH_OPS
from archspec.ops.base import Role
from archspec.targets import block_fragment, fragment, op_context
from archspec.targets.common import flat_tensors, reject_options
from archspec.targets.pyformat import (
    INDENT,
    LINE_LENGTH,
    Seq,
    assign,
    comment,
    fits,
    lines,
    noqa,
    parse,
    statement,
)
from archspec.targets.torchvision_keys import torchvision_modules
from archspec.templating import py_literal

# Attributes of torch.nn.Module (torch 2.x): a submodule of one of these names would be hidden
# behind the method (`self.train` stays the method), so such node names are refused.
# tests/test_target_pytorch.py checks this list against the installed torch.
MODULE_ATTRIBUTES = frozenset(
    [
        "T_destination",
        "add_module",
        "apply",
        "bfloat16",
        "buffers",
        "call_super_init",
        "children",
        "compile",
        "cpu",
        "cuda",
        "double",
        "dump_patches",
        "eval",
        "extra_repr",
        "float",
        "forward",
        "get_buffer",
        "get_extra_state",
        "get_parameter",
        "get_submodule",
        "half",
        "ipu",
        "load_state_dict",
        "modules",
        "mtia",
        "named_buffers",
        "named_children",
        "named_modules",
        "named_parameters",
        "parameters",
        "register_backward_hook",
        "register_buffer",
        "register_forward_hook",
        "register_forward_pre_hook",
        "register_full_backward_hook",
        "register_full_backward_pre_hook",
        "register_load_state_dict_post_hook",
        "register_load_state_dict_pre_hook",
        "register_module",
        "register_parameter",
        "register_state_dict_post_hook",
        "register_state_dict_pre_hook",
        "requires_grad_",
        "set_extra_state",
        "set_submodule",
        "share_memory",
        "state_dict",
        "to",
        "to_empty",
        "train",
        "training",
        "type",
        "xpu",
        "zero_grad",
    ]
)


def check_names(graph: Graph) -> None:
    """Refuse node and block names that torch.nn.Module already uses for its own attributes."""
    blocks = {b.nodes[0]: b.name for b in graph.blocks}
    for node in graph.ops():
        for name in (node.name, blocks.get(node.name)):
            if name in MODULE_ATTRIBUTES:
                row = f"layers[{node.row}].name"
                raise SpecError(
                    f"{name!r} cannot name a PyTorch submodule: torch.nn.Module has an "
                    "attribute of that name",
                    node.loc,
                    row,
                    "rename the row",
                )


# -- the module's structure: units (a node, or a whole fusable block) and stages ----------------


@dataclass(frozen=True)
class Unit:
    """One submodule of `Network`: a graph node, or a fusable block rendered as its kind's class.

    `name` is the node's or the block's name; `inputs` the tensors it reads; `output` the tensor
    it produces."""

    name: str
    nodes: tuple[GNode, ...]
    block: Block | None
    inputs: tuple[str, ...]
    output: str
    row: int


@dataclass
class Item:
    """One attribute of `Network` and one statement of its `forward`: a unit, or a chain of
    consecutive units of one row held in an `nn.Sequential` stage."""

    attr: str
    units: list[Unit]

    @property
    def output(self) -> str:
        return self.units[-1].output


def _self_contained(graph: Graph, block: Block) -> bool:
    """Whether nothing outside the block reads its inner tensors (so it can be one submodule)."""
    inner = set(block.nodes) - {block.output}
    if inner & set(graph.outputs):
        return False
    return all(set(graph.consumers(n)) <= set(block.nodes) for n in inner)


def units(graph: Graph) -> list[Unit]:
    """The graph's nodes in order, each fusable block (whose inner tensors only it reads) taken
    as one unit."""
    out: list[Unit] = []
    seen: set[str] = set()
    for node in graph.ops():
        block = graph.block_of(node.name)
        if block is not None and _self_contained(graph, block):
            if block.name not in seen:
                seen.add(block.name)
                members = tuple(graph.node(n) for n in block.nodes)
                out.append(Unit(block.name, members, block, (block.input,), block.output, node.row))
            continue
        out.append(Unit(node.name, (node,), None, node.inputs, node.name, node.row))
    return out


def _has_module(unit: Unit, modules: Mapping[str, str]) -> bool:
    return unit.block is not None or bool(modules[unit.name])


def _chains(
    graph: Graph, prev: Unit, unit: Unit, modules: Mapping[str, str], plain: set[str]
) -> bool:
    """Whether `unit` continues a Sequential stage after `prev`: same row, both submodules called
    as is, and `unit` alone reads `prev`'s output, which is nothing else's."""
    if prev.row != unit.row or unit.inputs != (prev.output,) or prev.output in graph.outputs:
        return False
    if not (_has_module(prev, modules) and _has_module(unit, modules)):
        return False
    if not {prev.name, unit.name} <= plain:
        return False
    return set(graph.consumers(prev.output)) <= {n.name for n in unit.nodes}


def items(graph: Graph, modules: Mapping[str, str], plain: set[str]) -> list[Item]:
    """Units grouped into stages: runs of chained units of one row become one `nn.Sequential`,
    named after the row (or `stage<k>`); every other unit is an attribute of its own name."""
    runs: list[list[Unit]] = []
    for unit in units(graph):
        if runs and _chains(graph, runs[-1][-1], unit, modules, plain):
            runs[-1].append(unit)
        else:
            runs.append([unit])
    taken = set(MODULE_ATTRIBUTES) | {run[0].name for run in runs if len(run) == 1}
    out = []
    stage = 0
    for run in runs:
        if len(run) == 1:
            out.append(Item(run[0].name, run))
            continue
        stage += 1
        row = graph.spec.rows[run[0].row].name
        name = row or f"stage{stage}"
        k = 0
        while name in taken:  # a row with several stages: <row>_1, <row>_2, ...
            k += 1
            name = f"{row or 'stage'}_{k}"
        taken.add(name)
        out.append(Item(name, run))
    return out


# -- what the fragments are given -----------------------------------------------------------------


def _dims(graph: Graph, name: str, flat: frozenset[str]) -> str:
    """A tensor's shape in the comments of `__init__`: C, or CxHxW."""
    s = graph.node(name).shape
    return str(s.c) if name in flat else f"{s.c}x{s.h}x{s.w}"


def _shape_text(graph: Graph, name: str, flat: frozenset[str]) -> str:
    shape = graph.node(name).shape
    if name in flat:
        return f"(N, {shape.c})"
    return f"(N, {shape.c}, {shape.h}, {shape.w})"


def _arg(var: str, name: str, flat: frozenset[str], want_flat: bool) -> str:
    """The expression that feeds tensor `name` (held in `var`) to a consumer in its layout."""
    if want_flat and name not in flat:
        return f"torch.flatten({var}, 1)"
    if not want_flat and name in flat:
        return f"{var}[:, :, None, None]"
    return var


def act_class(act: str) -> str | None:
    """The activation's module class (the activation table's module expression, uncalled)."""
    module = rendering(act, "pytorch")["module"]
    return module.split("(", 1)[0] if module else None


def node_context(graph: Graph, node: GNode) -> dict[str, Any]:
    """Everything a fragment needs about one node, as plain values: the node's attributes, what
    its op's module says the PyTorch target needs, and the activation's rendering."""
    act = rendering(node.attrs.get("act", "linear"), "pytorch")
    return {
        **node.attrs,
        **op_context("pytorch", graph, node),
        "name": node.name,
        "op": node.op,
        "shape": node.shape,
        "act": node.attrs.get("act", "linear"),
        "act_class": act_class(node.attrs.get("act", "linear")),
        "act_function": act["function"],
        "eps": graph.spec.bn_eps,
    }


def block_context(graph: Graph, unit: Unit) -> dict[str, Any]:
    """What a block fragment needs about one block: its members' node contexts by role."""
    assert unit.block is not None
    members = unit.block.members(graph)
    return {
        "name": unit.name,
        "c_in": graph.node(unit.block.input).shape.c,
        "c_out": graph.node(unit.output).shape.c,
        "block": unit.block,
        "members": {str(role): node_context(graph, n) for role, n in members.items()},
        "eps": graph.spec.bn_eps,
    }


# -- rendering ------------------------------------------------------------------------------------


@dataclass
class _Fragments:
    """The op and block fragments of one rendering, as Jinja template modules."""

    env: jinja2.Environment
    ops: dict[str, Any]
    blocks: dict[str, Any]

    def op(self, name: str) -> Any:
        if name not in self.ops:
            self.ops[name] = self.env.get_template(fragment("pytorch", name)).module
        return self.ops[name]

    def block(self, kind: str) -> Any:
        if kind not in self.blocks:
            self.blocks[kind] = self.env.get_template(block_fragment("pytorch", kind)).module
        return self.blocks[kind]


def _text(macro: Any, *args: Any) -> str:
    return " ".join(str(macro(*args)).split())


def _unit_module(frags: _Fragments, graph: Graph, unit: Unit) -> str:
    if unit.block is not None:
        return _text(frags.block(unit.block.kind).module, block_context(graph, unit))
    node = unit.nodes[0]
    return _text(frags.op(node.op).module, node_context(graph, node))


def _unit_comment(graph: Graph, unit: Unit, flat: frozenset[str]) -> str:
    """`name: in -> out`, and for a block every member's output on the way."""
    text = f"{unit.name}: {_dims(graph, unit.inputs[0], flat) if unit.inputs else ''}"
    if unit.block is not None:
        steps = []
        for n in unit.nodes:
            dims = _dims(graph, n.name, flat)
            same = n.inputs and _dims(graph, n.inputs[-1], flat) == dims
            residual = n.role == Role.RESIDUAL and n.op == "add" and same
            steps.append("(+ input)" if residual else f"{n.role} {dims}")
        return f"{text} -> {' -> '.join(steps)}"
    return f"{text} -> {_dims(graph, unit.output, flat)}"


def _init(frags: _Fragments, graph: Graph, item: Item, flat: frozenset[str]) -> list[str]:
    """The lines of `__init__` that build one item (comment lines, then the assignment)."""
    target = f"self.{item.attr}"
    if len(item.units) == 1:
        unit = item.units[0]
        ctor = _unit_module(frags, graph, unit)
        if not ctor:
            return []
        return [
            comment(_unit_comment(graph, unit, flat), INDENT * 2),
            assign(2, target, parse(ctor)),
        ]
    body = []
    for unit in item.units:
        body.append(comment(_unit_comment(graph, unit, flat), INDENT * 3))
        body.append(noqa(lines(parse(_unit_module(frags, graph, unit)), 3, suffix=",")))
    return [f"{INDENT * 2}{target} = nn.Sequential(", *body, f"{INDENT * 2})"]


def _forward(
    frags: _Fragments, graph: Graph, items_: list[Item], flat: frozenset[str]
) -> list[str]:
    """`forward`'s statements: each item's output in a variable named after its tensor, or in
    `x` when the very next statement alone reads it."""
    var = {graph.input.name: graph.input.name}
    out = []
    for i, item in enumerate(items_):
        first = item.units[0]
        node = first.nodes[0]
        want_flat = GRAPH_OPS[node.op].layout == "flat" or node.name in flat
        args = [_arg(var[t], t, flat, want_flat) for t in first.inputs]
        call = f"self.{item.attr}({', '.join(args)})"
        expr = call
        if len(item.units) == 1 and first.block is None:
            ctx = {**node_context(graph, node), "args": args, "call": call}
            expr = _text(frags.op(node.op).forward, ctx) or call
        following = items_[i + 1] if i + 1 < len(items_) else None
        readers = set(graph.consumers(item.output))
        alone = following is not None and readers <= {
            n.name for u in following.units for n in u.nodes
        }
        target = "x" if alone and item.output not in graph.outputs else item.output
        var[item.output] = target
        text = assign(2, target, parse(expr))
        shape = f"  # {_shape_text(graph, item.output, flat)}"
        if "\n" not in text and fits(text + shape):
            out.append(text + shape)
        else:
            out += [f"{INDENT * 2}# {item.output}: {_shape_text(graph, item.output, flat)}", text]
    outputs = [var[o] for o in graph.outputs]
    out.append(statement(2, "return", Seq(tuple(outputs)) if len(outputs) > 1 else outputs[0]))
    return out


def _plain(frags: _Fragments, graph: Graph) -> set[str]:
    """Units whose forward is their submodule called as is (they may sit in a Sequential)."""
    plain = set()
    for unit in units(graph):
        if unit.block is not None:
            plain.add(unit.name)
            continue
        node = unit.nodes[0]
        ctx = {**node_context(graph, node), "args": ["x"], "call": "self.m(x)"}
        if not _text(frags.op(node.op).forward, ctx) and GRAPH_OPS[node.op].layout != "flat":
            plain.add(unit.name)
    return plain


def _paths(graph: Graph, frags: _Fragments, items_: list[Item]) -> dict[str, str]:
    """Node -> the dotted path of its submodule, for every node with weights."""
    paths = {}
    for item in items_:
        for i, unit in enumerate(item.units):
            base = item.attr if len(item.units) == 1 else f"{item.attr}.{i}"
            for node in unit.nodes:
                if not graph.weights(node):
                    continue
                if unit.block is None:
                    paths[node.name] = base
                else:
                    attrs = frags.block(unit.block.kind).ATTRIBUTES
                    paths[node.name] = f"{base}.{attrs[str(node.role)]}"
    return paths


def module_context(graph: Graph, env: jinja2.Environment, source: str = "") -> dict[str, Any]:
    """The context of `templates/pytorch/module.py.j2`."""
    frags = _Fragments(env, {}, {})
    flat = flat_tensors(graph)
    modules = {u.name: _unit_module(frags, graph, u) for u in units(graph)}
    items_ = items(graph, modules, _plain(frags, graph))
    paths = _paths(graph, frags, items_)
    inp = graph.input.shape
    outputs = list(graph.outputs)
    kinds = sorted({u.block.kind for it in items_ for u in it.units if u.block is not None})
    init = [line for item in items_ for line in _init(frags, graph, item, flat)]
    tv = torchvision_modules(graph, paths)
    return {
        "version": __version__,
        "spec_name": graph.name,
        "source": source,
        "description": _docstring_lines(graph.spec.description),
        "input_shape": (inp.c, inp.h, inp.w),
        "outputs": outputs,
        "outputs_line": assign(0, "OUTPUTS", Seq(tuple(f'"{o}"' for o in outputs))),
        "output_shapes": [(o, _shape_text(graph, o, flat)) for o in outputs],
        "conv": any(n.op == "conv2d" for n in graph.ops()),
        "eps": py_literal(graph.spec.bn_eps),
        "blocks": [
            str(frags.block(k).define(py_literal(graph.spec.bn_eps))).strip("\n") for k in kinds
        ],
        "init": "\n".join(init),
        "forward": "\n".join(_forward(frags, graph, items_, flat)),
        "node_modules": _table("NODE_MODULES", [(f'"{k}"', f'"{v}"') for k, v in paths.items()]),
        "torchvision": _table(
            "TORCHVISION_MODULES",
            [(f'"{n}"', f'("{c}", {py_literal(b)})') for n, c, b in tv],
        )
        if tv
        else None,
    }


def _table(name: str, pairs: list[tuple[str, str]]) -> str:
    """`NAME = {key: value, ...}` laid out like ruff (one entry a line when it does not fit)."""
    one = f"{name} = {{{', '.join(f'{k}: {v}' for k, v in pairs)}}}"
    if fits(one):
        return one
    return "\n".join([f"{name} = {{", *(noqa([f"{INDENT}{k}: {v},"]) for k, v in pairs), "}"])


def _docstring_lines(text: str) -> list[str]:
    """Free text made safe for a docstring (no escapes, no closing quotes), wrapped to width."""
    clean = text.replace("\\", "/").replace('"""', "'''").strip()
    if not clean:
        return []
    return textwrap.wrap(" ".join(clean.split()), LINE_LENGTH - 4)


def render_module(graph: Graph, env: jinja2.Environment) -> str:
    """The generated Python module's text."""
    return env.get_template("pytorch/module.py.j2").render(module_context(graph, env))


def render(
    graph: Graph, weights: Mapping[str, np.ndarray], env: jinja2.Environment, **options: Any
) -> dict[str, str | bytes]:
    """`{<spec identifier>.py: module text}` (the CLI adds the canonical `weights.npz`)."""
    reject_options("pytorch", options)
    check_names(graph)
    return {f"{spec_identifier(graph.name)}.py": render_module(graph, env)}
