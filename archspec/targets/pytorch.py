"""The PyTorch target: one standalone, readable module per spec.

The module defines `build_model(weights=None)`, which returns a `torch.nn.Module` in eval mode.
Every conv node becomes a `Conv2d(bias=False)` + `BatchNorm2d` (+ activation) submodule named
after the node, registered in graph order, so the state dict lines up with torchvision's
MobileNetV2 tensor for tensor. Input: float32 NCHW; a classifier (fc) output is (N, classes),
every other output NCHW; several graph outputs come back as a tuple in `graph.outputs` order.

What the templates get is computed here (padding, channel counts, layouts); the templates in
`templates/pytorch/` only format it. The weights are not part of the module: `build_model`
loads the canonical `.npz` the CLI writes next to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jinja2
import numpy as np

from archspec import __version__
from archspec.activations import rendering
from archspec.errors import SpecError
from archspec.graph import GNode, Graph
from archspec.names import spec_identifier
from archspec.ops import GRAPH_OPS
from archspec.targets import fragment, op_context
from archspec.targets.common import flat_tensors, reject_options

LINE_LENGTH = 100
INDENT = "    "
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
    """Refuse node names that torch.nn.Module already uses for its own attributes."""
    for node in graph.ops():
        if node.name in MODULE_ATTRIBUTES:
            row = f"layers[{node.row}].name"
            raise SpecError(
                f"{node.name!r} cannot name a PyTorch submodule: torch.nn.Module has an "
                "attribute of that name",
                node.loc,
                row,
                "rename the row",
            )


# -- layout: statements split the way `ruff format` splits them -------------------------------
# The fragments say what a statement is (calls, sums, tuples of names); these helpers only lay it
# out within LINE_LENGTH, so that the generated module passes `ruff format --check` for ordinary
# names. A line that still cannot fit (an unbreakable 60-character name) gets a noqa for E501.


@dataclass(frozen=True)
class Call:
    """`func(args)`; `magic` keeps one argument per line with a trailing comma."""

    func: str
    args: tuple[Expr, ...]
    magic: bool = False


@dataclass(frozen=True)
class Sum:
    """`a + b + ...`."""

    terms: tuple[Expr, ...]


@dataclass(frozen=True)
class Tup:
    """A tuple display `(a, b)`."""

    items: tuple[Expr, ...]


Expr = str | Call | Sum | Tup


def _flat(e: Expr) -> str:
    if isinstance(e, Call):
        return f"{e.func}({', '.join(_flat(a) for a in e.args)})"
    if isinstance(e, Sum):
        return " + ".join(_flat(t) for t in e.terms)
    if isinstance(e, Tup):
        return "(" + ", ".join(_flat(i) for i in e.items) + ("," if len(e.items) == 1 else "") + ")"
    return e


def _fits(line: str) -> bool:
    return len(line) <= LINE_LENGTH


def _lines(e: Expr, indent: int, prefix: str = "", suffix: str = "") -> list[str]:
    """`e` as lines at `indent`, the first starting with `prefix`, the last ending in `suffix`."""
    pad = INDENT * indent
    one = f"{pad}{prefix}{_flat(e)}{suffix}"
    if _fits(one) and not (isinstance(e, Call) and e.magic):
        return [one]
    if isinstance(e, Call):
        return [f"{pad}{prefix}{e.func}(", *_args(e, indent + 1), f"{pad}){suffix}"]
    if isinstance(e, Tup):
        body = [line for i in e.items for line in _lines(i, indent + 1, suffix=",")]
        return [f"{pad}{prefix}(", *body, f"{pad}){suffix}"]
    if isinstance(e, Sum):  # inside brackets: one term per line, operators first
        last = len(e.terms) - 1
        out: list[str] = []
        for i, term in enumerate(e.terms):
            out += _lines(term, indent, prefix if i == 0 else "+ ", suffix if i == last else "")
        return out
    return [one]


def _args(call: Call, indent: int) -> list[str]:
    if not call.magic:
        joined = INDENT * indent + ", ".join(_flat(a) for a in call.args)
        if _fits(joined):
            return [joined]
        if len(call.args) == 1:
            return _lines(call.args[0], indent)
    return [line for a in call.args for line in _lines(a, indent, suffix=",")]


def _opening(e: Expr) -> str | None:
    return f"{e.func}(" if isinstance(e, Call) else "(" if isinstance(e, Tup) else None


def _noqa(lines: list[str]) -> str:
    return "\n".join(line if _fits(line) else f"{line}  # noqa: E501" for line in lines)


def statement(indent: int, head: str, rhs: Expr) -> str:
    """`head rhs` (head is `x =` or `return`), split like ruff: whole; at the right-hand
    bracket; or inside added parentheses."""
    pad = INDENT * indent
    magic = isinstance(rhs, Call) and rhs.magic
    one = f"{pad}{head} {_flat(rhs)}"
    if _fits(one) and not magic:
        return one
    opening = _opening(rhs)
    if opening is not None and (magic or _fits(f"{pad}{head} {opening}")):
        return _noqa(_lines(rhs, indent, f"{head} "))
    return _noqa([f"{pad}{head} (", *_lines(rhs, indent + 1), f"{pad})"])


def layout_helpers() -> dict[str, Any]:
    """What the templates lay statements out with."""
    return {
        "call": lambda func, *args, magic=False: Call(func, tuple(args), magic),
        "plus": lambda *terms: Sum(tuple(terms)),
        "tup": lambda *items: Tup(tuple(items)),
        "assign": lambda indent, lhs, rhs: statement(indent, f"{lhs} =", rhs),
        "ret": lambda indent, rhs: statement(indent, "return", rhs),
    }


def _docstring_lines(text: str) -> list[str]:
    """Free text made safe for a docstring (no escapes, no closing quotes), wrapped to width."""
    import textwrap

    clean = text.replace("\\", "/").replace('"""', "'''").strip()
    if not clean:
        return []
    return textwrap.wrap(" ".join(clean.split()), LINE_LENGTH - 4)


def _shape_text(graph: Graph, name: str, flat: frozenset[str]) -> str:
    shape = graph.node(name).shape
    if name in flat:
        return f"(N, {shape.c})"
    return f"(N, {shape.c}, {shape.h}, {shape.w})"


def _arg(name: str, flat: frozenset[str], want_flat: bool) -> Expr:
    """The expression that feeds tensor `name` to a consumer in the layout it wants."""
    if want_flat and name not in flat:
        return Call("torch.flatten", (name, "1"))
    if not want_flat and name in flat:
        return f"{name}[:, :, None, None]"
    return name


def _node_context(graph: Graph, node: GNode, flat: frozenset[str]) -> dict[str, Any]:
    """Everything a fragment needs about one node, as plain values: the node's attributes, what
    its op's module says the PyTorch target needs, and the activation's rendering."""
    act = rendering(node.attrs.get("act", "linear"), "pytorch")
    want_flat = GRAPH_OPS[node.op].layout == "flat" or node.name in flat
    return {
        **node.attrs,
        **op_context("pytorch", graph, node),
        "name": node.name,
        "op": node.op,
        "args": [_arg(i, flat, want_flat) for i in node.inputs],
        "shape": node.shape,
        "act": node.attrs.get("act", "linear"),
        "act_module": act["module"] or "nn.Identity()",
        "act_function": act["function"],
    }


def module_context(graph: Graph, source: str = "") -> dict[str, Any]:
    """The context of `templates/pytorch/module.py.j2`."""
    flat = flat_tensors(graph)
    inp = graph.input.shape
    outputs = list(graph.outputs)
    return {
        "version": __version__,
        "spec_name": graph.name,
        "source": source,
        "description": _docstring_lines(graph.spec.description),
        "input_shape": (inp.c, inp.h, inp.w),
        "outputs": outputs,
        "outputs_quoted": [f'"{o}"' for o in outputs],
        "output_shapes": [(o, _shape_text(graph, o, flat)) for o in outputs],
        "nodes": [_node_context(graph, n, flat) for n in graph.ops()],
        "ops": sorted({n.op for n in graph.ops()}),
        **layout_helpers(),
    }


def render_module(graph: Graph, env: jinja2.Environment) -> str:
    """The generated Python module's text."""
    ctx = module_context(graph)
    ctx["fragments"] = {
        op: env.get_template(fragment("pytorch", op)).make_module(layout_helpers())
        for op in ctx["ops"]
    }
    return env.get_template("pytorch/module.py.j2").render(ctx)


def render(
    graph: Graph, weights: Mapping[str, np.ndarray], env: jinja2.Environment, **options: Any
) -> dict[str, str | bytes]:
    """`{<spec identifier>.py: module text}` (the CLI adds the canonical `weights.npz`)."""
    reject_options("pytorch", options)
    check_names(graph)
    return {f"{spec_identifier(graph.name)}.py": render_module(graph, env)}
