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
from archspec.errors import SpecError
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


def qdq_lines(tensor: str, params: str, stem: str, outs: list[str]) -> list[dict[str, Any]]:
    """QuantizeLinear of `tensor` (float) into `<stem>/q`, then one DequantizeLinear per name of
    `outs` (each reader of a tensor has its own, as ONNX Runtime's QDQ fusion wants), with the
    per-tensor scale and zero point of `params` (initializers `<params>/scale` and
    `<params>/zero_point`): what marks a tensor as int8 in a QDQ model."""
    scale, zero = _q(f"{params}/scale"), _q(f"{params}/zero_point")
    lines = [
        {
            "node": _q(f"{stem}/quantize"),
            "out": _q(f"{stem}/q"),
            "op": "QuantizeLinear",
            "axis": None,
            "ins": [_q(tensor), scale, zero],
        }
    ]
    for out in outs:
        lines.append(
            {
                "node": _q(f"{out}/dequantize"),
                "out": _q(out),
                "op": "DequantizeLinear",
                "axis": None,
                "ins": [_q(f"{stem}/q"), scale, zero],
            }
        )
    return lines


def dq_names(graph: Graph, tensor: str) -> dict[str, str]:
    """The dequantized copies of a tensor in the QDQ rendering, by reader: the graph output
    (reader "") is the tensor's own name, and so is the first consuming node's copy when the
    tensor is neither an output nor the graph input; other readers get `<tensor>/dq/<node>`."""
    names: dict[str, str] = {}
    if tensor in graph.outputs:
        names[""] = tensor
    for reader in graph.consumers(tensor):
        if reader in names:
            continue
        plain = not names and tensor != graph.input.name
        names[reader] = tensor if plain else f"{tensor}/dq/{reader}"
    return names


def _weight_dq(node: GNode, weight: str) -> dict[str, Any]:
    """DequantizeLinear of an int8 weight or int32 bias initializer, per output channel."""
    key = weight_key(node.name, weight)
    return {
        "node": _q(f"{node.name}/{weight}_dequantize"),
        "out": _q(f"{key}/dq"),
        "op": "DequantizeLinear",
        "axis": 0,
        "ins": [_q(key), _q(f"{key}/scale"), _q(f"{key}/zero_point")],
    }


def _node_context(
    graph: Graph, node: GNode, flat: frozenset[str], qdq: frozenset[str] | None = None
) -> dict[str, Any]:
    """What a fragment needs about one node: its inputs (after any layout change), its
    weights' initializer names, and the op's attributes as ONNX wants them.

    `qdq` (the nodes with int8 weights) asks for the QDQ rendering: the op computes in float
    from dequantized inputs and writes `<node>/f`, which a QuantizeLinear turns into `<node>/q`
    and a DequantizeLinear per reader into the copies its readers read (`dq_names`); int8
    weights and int32 biases (BatchNorm folded) are dequantized per output channel; layout
    changes keep their source's parameters.
    """
    want_flat = GRAPH_OPS[node.op].layout == "flat" or node.name in flat
    prep: list[dict[str, Any]] = []
    ins: list[str] = []
    for i, src in enumerate(node.inputs):
        read = src if qdq is None else dq_names(graph, src)[node.name]
        change = None
        if want_flat and src not in flat:
            change = "flatten"
        elif not want_flat and src in flat:
            change = "unflatten"
        if change is None:
            ins.append(_q(read))
            continue
        out = f"{node.name}/{change}{i}"
        wrote = out if qdq is None else f"{out}/f"
        post = [] if qdq is None else qdq_lines(wrote, src, out, [out])
        prep.append(
            {"op": change, "node": _q(out), "src": _q(read), "out": _q(wrote), "post": post}
        )
        ins.append(_q(out))
    act = node.attrs.get("act", "linear")
    own = op_context("onnx", graph, node)
    constants = [{**c, "name": _q(f"{node.name}/{c['part']}")} for c in own.pop("constants", ())]
    out = node.name if qdq is None else f"{node.name}/f"
    ctx = {
        **node.attrs,
        **own,
        "name": node.name,
        "op": node.op,
        "prep": prep,
        "ins": ins,
        "out": _q(out),
        "act": act,
        "act_op": rendering(act, "onnx")["op"],
        "act_inputs": [_q(c) for c in rendering(act, "onnx")["constants"]],
        "constants": constants,
        "w": {w.name: _q(weight_key(node.name, w.name)) for w in graph.weights(node)},
        "sub": lambda part: _q(f"{node.name}/{part}"),
        "pre": [],
        "post": []
        if qdq is None
        else qdq_lines(out, node.name, node.name, list(dq_names(graph, node.name).values())),
    }
    if qdq is not None and node.name in qdq:
        # BatchNorm is folded into the int8 weight and the int32 bias, which every such node has.
        ctx["bn"], ctx["bias"] = False, True
        ctx["w"] = {w: _q(f"{weight_key(node.name, w)}/dq") for w in ("weight", "bias")}
        ctx["pre"] = [_weight_dq(node, "weight"), _weight_dq(node, "bias")]
    return ctx


def graph_context(graph: Graph, qdq: frozenset[str] | None = None) -> dict[str, Any]:
    """The context of `templates/onnx/model.onnxtxt.j2`; `qdq` (the nodes with int8 weights)
    asks for the QDQ rendering (see `_node_context`)."""
    flat = flat_tensors(graph)
    nodes = [_node_context(graph, n, flat, qdq) for n in graph.ops()]
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
        "pre": []
        if qdq is None
        else qdq_lines("input", "input", "input", list(dq_names(graph, graph.input.name).values())),
    }


def render_text(graph: Graph, env: jinja2.Environment, qdq: frozenset[str] | None = None) -> str:
    """The model in ONNX's textual syntax, weights left out (they become initializers); `qdq`
    as in `graph_context`."""
    ctx = graph_context(graph, qdq)
    ctx["fragments"] = {
        op: env.get_template(fragment("onnx", op)).make_module() for op in ctx["ops"]
    }
    return env.get_template("onnx/model.onnxtxt.j2").render(ctx)


def describe_model(model: Any, graph: Graph, form: str = "") -> None:
    """Set the producer and the doc string (the spec's name and description, and `form`)."""
    model.producer_name = "archspec"
    model.producer_version = __version__
    model.doc_string = f"{graph.name}: {graph.spec.description}".strip().rstrip(":")
    if form:
        model.doc_string += f" ({form})"


def name_batch_dims(model: Any) -> None:
    """Give inferred intermediate shapes back the batch dimension's name: ONNX's Resize
    inference (with `axes`) forgets it; every activation here is batch-first."""
    for value in model.graph.value_info:
        dim = value.type.tensor_type.shape.dim[0]
        if dim.dim_param.startswith("unk__"):
            dim.dim_param = BATCH


def build_proto(graph: Graph, weights: Mapping[str, np.ndarray], env: jinja2.Environment) -> Any:
    """The ModelProto: the parsed template text plus the weights as initializers."""
    import onnx
    import onnx.parser
    import onnx.shape_inference
    from onnx import numpy_helper

    model = onnx.parser.parse_model(render_text(graph, env))
    describe_model(model, graph)
    for node in graph.ops():
        for w in graph.weights(node):
            key = weight_key(node.name, w.name)
            array = np.ascontiguousarray(weights[key], dtype=np.float32)
            model.graph.initializer.append(numpy_helper.from_array(array, key))
    # Record every intermediate tensor's shape (value_info) so that viewers show them.
    model = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    name_batch_dims(model)
    return model


def model_bytes(graph: Graph, weights: Mapping[str, np.ndarray], env: jinja2.Environment) -> bytes:
    """The serialised model (deterministic: same graph and weights, same bytes)."""
    return build_proto(graph, weights, env).SerializeToString(deterministic=True)


def digest(data: bytes) -> str:
    """A short stable fingerprint of model bytes (for golden files)."""
    return hashlib.sha256(data).hexdigest()


def render(
    graph: Graph,
    weights: Mapping[str, np.ndarray],
    env: jinja2.Environment,
    *,
    quantize: str | None = None,
    qparams: Any = None,
    **options: Any,
) -> dict[str, str | bytes]:
    """`{<spec identifier>.onnx: model bytes}` (the CLI adds the canonical `weights.npz`).

    `quantize="int8"` renders the QDQ model (`archspec.targets.onnx_qdq`) for `qparams` (an
    `archspec.quant.QParams`; default: calibrated on the default seeded inputs) and writes the
    qparams file beside it."""
    reject_options("onnx", options)
    if quantize is None:
        if qparams is not None:
            raise SpecError("applies to int8 builds only", None, "--qparams", "add --quantize int8")
        return {f"{spec_identifier(graph.name)}.onnx": model_bytes(graph, weights, env)}
    from archspec.quantize import QuantizeOptions, resolve_qparams
    from archspec.targets import onnx_qdq

    if quantize != "int8":
        raise SpecError(f"cannot quantize to {quantize!r}; expected int8", None, "--quantize")
    if qparams is None:
        qparams = resolve_qparams(graph, weights, QuantizeOptions(quantize))
    return onnx_qdq.render_files(graph, qparams, env)
