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
from archspec.graph import GNode, Graph, weight_key
from archspec.names import spec_identifier
from archspec.targets.common import flat_tensors, reject_options

IR_VERSION = 8
OPSET = 18
BATCH = "batch"
ACT_OPS = {"relu": "Relu", "relu6": "Clip"}


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
    a = node.attrs
    want_flat = node.op == "fc" or node.name in flat
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
    act = a.get("act", "linear")
    ctx: dict[str, Any] = {
        "name": node.name,
        "op": node.op,
        "prep": prep,
        "ins": ins,
        "out": _q(node.name),
        "act": act,
        "act_op": ACT_OPS.get(act),
        "w": {w.name: _q(weight_key(node.name, w.name)) for w in graph.weights(node)},
        "sub": lambda part: _q(f"{node.name}/{part}"),
    }
    if node.op == "conv2d":
        k, d, pad = a["k"], a["dilation"], a["dilation"] * (a["k"] - 1) // 2
        ctx.update(
            k=k,
            s=a["s"],
            dilation=d,
            pads=pad,
            groups=a["groups"],
            bias=a["bias"],
            bn=a["bn"],
            eps=repr(float(a["bn_eps"])),
        )
    elif node.op == "fc":
        ctx.update(bias=a["bias"])
    elif node.op == "avgpool":
        ctx.update(is_global=a["global"], k=a["k"], s=a["s"])
    elif node.op == "upsample":
        ctx.update(h=a["h"], w_out=a["w"], mode=a["mode"], sizes=_q(f"{node.name}/sizes"))
    return ctx


def graph_context(graph: Graph) -> dict[str, Any]:
    """The context of `templates/onnx/model.onnxtxt.j2`."""
    flat = flat_tensors(graph)
    nodes = [_node_context(graph, n, flat) for n in graph.ops()]
    inp = graph.input.shape
    constants: list[dict[str, Any]] = []
    if any(n["act"] == "relu6" for n in nodes):
        constants.append({"type": "float", "name": _q("const/zero"), "data": ["0.0"]})
        constants.append({"type": "float", "name": _q("const/six"), "data": ["6.0"]})
    if any(p["op"] == "unflatten" for n in nodes for p in n["prep"]):
        constants.append({"type": "int64[2]", "name": _q("const/hw_axes"), "data": [2, 3]})
    for n in nodes:
        if n["op"] == "upsample":
            constants.append({"type": "int64[2]", "name": n["sizes"], "data": [n["h"], n["w_out"]]})
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
        op: env.get_template(f"onnx/ops/{op}.onnxtxt.j2").make_module() for op in ctx["ops"]
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
