"""The ONNX target: a `.onnx` model whose node structure comes from Jinja templates.

The templates in `templates/onnx/` render the graph in ONNX's textual syntax (without weights);
`onnx.parser.parse_model` turns that into a ModelProto, and the canonical weights are attached as
initializers named by their canonical keys (`<node>.<weight>`). BatchNorm stays a
BatchNormalization node (ONNX Runtime folds it into the conv when it optimises the graph), ReLU6
is Clip(0, 6), and bilinear upsampling is Resize with half-pixel centres.

Pinned: IR version 8 and the default-domain opset 18, which current ONNX Runtime loads. The input
`input` is float32 NCHW with a dynamic batch dimension `batch`; outputs are named after their
graph nodes, (batch, classes) for a classifier and NCHW otherwise. The same graph and weights give
the same bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import jinja2
import numpy as np

from archspec import __version__
from archspec.activations import rendering
from archspec.graph import GNode, Graph, weight_key
from archspec.names import spec_identifier
from archspec.ops import GRAPH_OPS
from archspec.targets import fragment, op_context
from archspec.targets.common import flat_tensors, reject_options

IR_VERSION = 8
OPSET = 18
BATCH = "batch"
# Constants shared by every node that needs them (activation bounds, the unflatten axes).
SHARED_CONSTANTS = {
    "const/zero": {"type": "float", "data": ["0.0"]},
    "const/six": {"type": "float", "data": ["6.0"]},
    "const/hw_axes": {"type": "int64[2]", "data": [2, 3]},
}


def _q(name: str) -> str:
    """A name in the textual syntax: quoted unless it is a plain identifier."""
    return name if name.isidentifier() else f'"{name}"'


def _dims(graph: Graph, name: str, flat: frozenset[str]) -> str:
    shape = graph.node(name).shape
    if name in flat:
        return f"{BATCH}, {shape.c}"
    return f"{BATCH}, {shape.c}, {shape.h}, {shape.w}"


def _node_context(graph: Graph, node: GNode, flat: frozenset[str]) -> dict[str, Any]:
    """What a fragment needs about one node: its inputs (after any layout change), its
    weights' initializer names, and the op's attributes as ONNX wants them."""
    want_flat = GRAPH_OPS[node.op].layout == "flat" or node.name in flat
    prep: list[dict[str, str]] = []
    ins: list[str] = []
    for i, src in enumerate(node.inputs):
        if want_flat and src not in flat:
            out = f"{node.name}/flatten{i}"
            prep.append({"op": "flatten", "node": _q(out), "src": _q(src), "out": _q(out)})
            ins.append(_q(out))
        elif not want_flat and src in flat:
            out = f"{node.name}/unflatten{i}"
            prep.append({"op": "unflatten", "node": _q(out), "src": _q(src), "out": _q(out)})
            ins.append(_q(out))
        else:
            ins.append(_q(src))
    act = node.attrs.get("act", "linear")
    own = op_context("onnx", graph, node)
    constants = [{**c, "name": _q(f"{node.name}/{c['part']}")} for c in own.pop("constants", ())]
    return {
        **node.attrs,
        **own,
        "name": node.name,
        "op": node.op,
        "prep": prep,
        "ins": ins,
        "out": _q(node.name),
        "act": act,
        "act_op": rendering(act, "onnx")["op"],
        "act_inputs": [_q(c) for c in rendering(act, "onnx")["constants"]],
        "constants": constants,
        "w": {w.name: _q(weight_key(node.name, w.name)) for w in graph.weights(node)},
        "sub": lambda part: _q(f"{node.name}/{part}"),
    }


def graph_context(graph: Graph) -> dict[str, Any]:
    """The context of `templates/onnx/model.onnxtxt.j2`."""
    flat = flat_tensors(graph)
    nodes = [_node_context(graph, n, flat) for n in graph.ops()]
    inp = graph.input.shape
    constants: list[dict[str, Any]] = []
    used = {c for n in nodes for c in rendering(n["act"], "onnx")["constants"]}
    for name in sorted(used, key=list(SHARED_CONSTANTS).index):
        constants.append({"name": _q(name), **SHARED_CONSTANTS[name]})
    if any(p["op"] == "unflatten" for n in nodes for p in n["prep"]):
        constants.append({"name": _q("const/hw_axes"), **SHARED_CONSTANTS["const/hw_axes"]})
    for n in nodes:
        constants.extend(n["constants"])
    return {
        "ir_version": IR_VERSION,
        "opset": OPSET,
        "graph_name": spec_identifier(graph.name),
        "input": f"float[{BATCH}, {inp.c}, {inp.h}, {inp.w}] input",
        "outputs": [f"float[{_dims(graph, o, flat)}] {_q(o)}" for o in graph.outputs],
        "nodes": nodes,
        "ops": sorted({n["op"] for n in nodes}),
        "constants": constants,
    }


def render_text(graph: Graph, env: jinja2.Environment) -> str:
    """The model in ONNX's textual syntax, weights left out (they become initializers)."""
    ctx = graph_context(graph)
    ctx["fragments"] = {
        op: env.get_template(fragment("onnx", op)).make_module() for op in ctx["ops"]
    }
    return env.get_template("onnx/model.onnxtxt.j2").render(ctx)


def build_proto(graph: Graph, weights: Mapping[str, np.ndarray], env: jinja2.Environment) -> Any:
    """The ModelProto: the parsed template text plus the weights as initializers."""
    import onnx
    import onnx.parser
    import onnx.shape_inference
    from onnx import numpy_helper

    model = onnx.parser.parse_model(render_text(graph, env))
    model.producer_name = "archspec"
    model.producer_version = __version__
    model.doc_string = f"{graph.name}: {graph.spec.description}".strip().rstrip(":")
    for node in graph.ops():
        for w in graph.weights(node):
            key = weight_key(node.name, w.name)
            array = np.ascontiguousarray(weights[key], dtype=np.float32)
            model.graph.initializer.append(numpy_helper.from_array(array, key))
    # Record every intermediate tensor's shape (value_info) so that viewers show them.
    model = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    for value in model.graph.value_info:
        # ONNX's Resize inference (with `axes`) forgets the batch dimension's name; every
        # activation here is batch-first, so give it back.
        dim = value.type.tensor_type.shape.dim[0]
        if dim.dim_param.startswith("unk__"):
            dim.dim_param = BATCH
    return model


def model_bytes(graph: Graph, weights: Mapping[str, np.ndarray], env: jinja2.Environment) -> bytes:
    """The serialised model (deterministic: same graph and weights, same bytes)."""
    return build_proto(graph, weights, env).SerializeToString(deterministic=True)


def digest(data: bytes) -> str:
    """A short stable fingerprint of model bytes (for golden files)."""
    return hashlib.sha256(data).hexdigest()


def render(
    graph: Graph, weights: Mapping[str, np.ndarray], env: jinja2.Environment, **options: Any
) -> dict[str, str | bytes]:
    """`{<spec identifier>.onnx: model bytes}` (the CLI adds the canonical `weights.npz`)."""
    reject_options("onnx", options)
    return {f"{spec_identifier(graph.name)}.onnx": model_bytes(graph, weights, env)}
