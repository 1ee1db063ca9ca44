"""The Keras 3 target: one functional-model module per spec, `<spec identifier>.py`.

The module stands alone (it imports keras and numpy, never archspec) and defines
`build_model(weights=None) -> keras.Model`. Conventions of the generated code:

* input NHWC `(N, H, W, C)`; an `fc` output is `(N, classes)`, every other output NHWC; several
  graph outputs come back as a list, in the spec's order;
* Keras layer names are the graph's node names; the extra layers a node needs are suffixed
  (`_pad`, `_bn`, `_relu`, `_relu6`, `_subsample`, `_flatten`, `_nhwc`);
* padding is PyTorch's symmetric `dilation·(k−1)/2`: Keras' "same" at stride 1, and a
  `ZeroPadding2D` then a "valid" conv when strided (Keras' own strided "same" padding is
  asymmetric), so the model computes the same function as the other targets;
* weights are the canonical archspec arrays (`<node>.<weight>`, PyTorch layouts) transposed into
  Keras' layouts when loaded.

This file decides which variables and layer names a node gets; `archspec.targets.pyformat` lays
the statements out as `ruff format` would; which Keras layers an op becomes is written in
`templates/keras/ops/<op>.py.j2`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

import jinja2
import numpy as np

from archspec.activations import rendering
from archspec.errors import SpecError
from archspec.files import Files
from archspec.graph import GNode, Graph
from archspec.names import spec_identifier
from archspec.ops import GRAPH_OPS
from archspec.targets import fragment, op_context
from archspec.targets.common import flat_tensors, reject_options
from archspec.targets.pyformat import INDENT, Call, Seq, assign, comment, wrap


def layer_factory(literal: Callable[[Any], str]) -> Callable[..., Call]:
    """`layer(cls, *args, **kwargs)` for the templates: the constructor call
    `keras.layers.<cls>(<args>)`, its arguments Python literals (the environment's `py` filter)."""

    def layer(cls: str, *args: Any, **kwargs: Any) -> Call:
        parts = [literal(a) for a in args]
        parts += [f"{key}={literal(value)}" for key, value in kwargs.items()]
        # classes the generated module defines itself start with an underscore
        return Call(cls if cls.startswith("_") else f"keras.layers.{cls}", tuple(parts))

    return layer


def chain(node: Mapping[str, Any], steps: Sequence[Call], indent: str = INDENT) -> str:
    """A node's layers applied in turn: the first reads the node's inputs, the last assigns the
    variable named after the node, the ones between go through `x`."""
    level = len(indent) // len(INDENT)
    out = []
    for i, step in enumerate(steps):
        target = node["name"] if i == len(steps) - 1 else "x"
        first = i == 0
        inputs = node["inputs"] if first else ["x"]
        operand = Seq(tuple(inputs), "[]") if node["many"] and first else inputs[0]
        out.append(assign(level, target, Call(step, (operand,))))
    return "\n".join(out)


def call_statement(target: str, callee: str, args: Sequence[str | list[str]], indent: str) -> str:
    """`target = callee(args)` where an argument may be a list of names (a list display)."""
    items = tuple(a if isinstance(a, str) else Seq(tuple(a), "[]") for a in args)
    return assign(len(indent) // len(INDENT), target, Call(callee, items))


# -- what the templates are given ---------------------------------------------------------------


@dataclass
class _Namer:
    """Keras layer names (and the Python variables named after them) must be unique."""

    graph: Graph
    owner: dict[str, str]

    def claim(self, node: GNode, name: str) -> str:
        if name in self.owner and self.owner[name] != node.name:
            first = self.owner[name]
            raise SpecError(
                f"the Keras target would name two layers {name!r} (one for node {first!r}, one "
                f"for node {node.name!r})",
                node.loc,
                "name",
                hint="rename one of the rows (Keras layer names are the node names plus "
                "suffixes like _bn, _relu6, _pad)",
            )
        self.owner[name] = node.name
        return name


def _docstring_text(text: str) -> str:
    """Free text made safe inside a triple-quoted docstring."""
    return text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"').strip()


def _file_name(path: str) -> str:
    """The spec's file name as text that can be written (undecodable bytes as escapes)."""
    return PurePath(path).name.encode("utf-8", "backslashreplace").decode("utf-8")


def _layer_names(
    graph: Graph, node: GNode, own: dict[str, Any], namer: _Namer, flat: frozenset[str]
) -> dict[str, Any]:
    """Names of the extra layers a node needs (`<suffix>_name`, None where it needs none): the
    ones its op asks for, a Flatten before a flat-layout op whose input is a map, and its
    activation's layer (`act_step`, built from the activation table)."""
    names = {
        f"{suffix}_name": namer.claim(node, f"{node.name}_{suffix}") if wanted else None
        for suffix, wanted in own.pop("extra_layers", {}).items()
    }
    if GRAPH_OPS[node.op].layout == "flat":
        flatten = node.inputs[0] not in flat
        names["flatten_name"] = namer.claim(node, f"{node.name}_flatten") if flatten else None
    act = node.attrs.get("act", "linear")
    act_layer = rendering(act, "keras")
    act_name = namer.claim(node, f"{node.name}_{act}") if act_layer["layer"] else None
    names["act_name"] = act_name
    names["act_step"] = (
        {"cls": act_layer["layer"], "options": {**act_layer["options"], "name": act_name}}
        if act_name
        else None
    )
    return names


def _wants_flat(node: GNode, flat: frozenset[str]) -> bool:
    return GRAPH_OPS[node.op].layout == "flat" or node.name in flat


def _contexts(graph: Graph) -> list[dict[str, Any]]:
    namer = _Namer(graph, {})
    namer.claim(graph.input, graph.input.name)
    flat = flat_tensors(graph)
    nhwc: dict[str, str] = {}  # flat tensor → the variable holding it as a 1×1 map
    nodes = []
    for node in graph.ops():
        namer.claim(node, node.name)
        own = op_context("keras", graph, node)
        names = _layer_names(graph, node, own, namer, flat)
        plan = {**own, **names}
        wants_flat = _wants_flat(node, flat)
        spatial_consumers = [
            c for c in graph.consumers(node.name) if not _wants_flat(graph.node(c), flat)
        ]
        if node.name in flat and spatial_consumers:
            nhwc[node.name] = namer.claim(node, f"{node.name}_nhwc")
        nodes.append(
            {
                "name": node.name,
                "op": node.op,
                "fragment": fragment("keras", node.op),
                "attrs": dict(node.attrs),
                "shape": node.shape,
                "in_shapes": graph.input_shapes(node),
                "inputs": [i if wants_flat else nhwc.get(i, i) for i in node.inputs],
                "many": GRAPH_OPS[node.op].max_inputs is None,
                "flat": node.name in flat,
                "nhwc_name": nhwc.get(node.name),
                **plan,
            }
        )
    return nodes


# Keras' functional API maps a model's graph recursively, one Python frame per layer on the
# longest path (keras.src.ops.function._build_map_helper): past about 950 layers it raises
# RecursionError under Python's default limit (measured: 901 layers deep builds, 1,021 fails;
# the margin covers callers deeper in the stack, such as `archspec verify`).
MAX_KERAS_DEPTH = 900


def check_depth(graph: Graph, nodes: Sequence[Mapping[str, Any]]) -> None:
    """Refuse a network deeper (in Keras layers) than the functional API can build."""
    depth = {graph.input.name: 1}
    for node in nodes:
        layers = 1 + sum(1 for k, v in node.items() if k.endswith("_name") and v)
        inputs = graph.node(node["name"]).inputs
        depth[node["name"]] = layers + max(depth[i] for i in inputs)
    deepest = max(depth.values())
    if deepest > MAX_KERAS_DEPTH:
        raise SpecError(
            f"the Keras model would be {deepest} layers deep; the Keras target builds at most "
            f"{MAX_KERAS_DEPTH} (Keras' functional API maps its graph recursively)",
            graph.spec.locs.get("layers", graph.spec.rows[0].loc),
            "layers",
            "build this network for pytorch, onnx or c",
        )


def render(
    graph: Graph, weights: Mapping[str, np.ndarray], env: jinja2.Environment, **options: Any
) -> Files:
    """Render the Keras module of `graph`. The weights are not embedded: the module loads the
    canonical `.npz` the build writes next to it."""
    reject_options("keras", options)
    ident = spec_identifier(graph.name)
    nodes = _contexts(graph)
    check_depth(graph, nodes)
    flat = flat_tensors(graph)
    outputs = [graph.node(o) for o in graph.outputs]
    text = env.get_template("keras/model.py.j2").render(
        ident=ident,
        spec=graph.spec,
        source=_docstring_text(_file_name(graph.spec.source)),
        description=_docstring_text(graph.spec.description),
        input=graph.input,
        nodes=nodes,
        outputs=[o.name for o in outputs],
        output_shapes=[
            [o.shape.c] if o.name in flat else [o.shape.h, o.shape.w, o.shape.c] for o in outputs
        ],
        supports=list(dict.fromkeys(n["fragment"] for n in nodes if n.get("custom"))),
        input_shape=graph.input.shape.hwc(),
        layer=layer_factory(env.filters["py"]),
        chain=chain,
        call_statement=call_statement,
        comment=comment,
        wrap=wrap,
        indent=INDENT,
    )
    return {f"{ident}.py": text}
