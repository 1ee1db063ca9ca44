"""The qparams file: the int8 activation parameters of one network, as JSON.

`archspec build --quantize int8` writes it beside the model (`<ident>.qparams.json`) and
`--qparams FILE` reads it back instead of calibrating, so a build can be reproduced or handed
another set of parameters. The weights are not in it: they are quantized again from the float
weights for the file's activation parameters (`archspec.quant.calibrate.quantize`), which is
deterministic, so the same weights and file give the same model bytes.

    {
      "format": "archspec-qparams",
      "version": 1,
      "network": "<the spec's name>",
      "graph": "<sha256 of every tensor's name, op, inputs and shape>",
      "activations": {
        "input": {"scale": 0.0235, "zero_point": -2},
        "<node>": {"scale": ..., "zero_point": ...},      one entry per tensor, graph order
        ...
      },
      "weight_scales": {"<conv or fc node>": [...], ...}   informative; not read back
    }

Reading is strict (`archspec.jsonsrc`: positions of every value): every tensor of the graph
exactly once, scales finite and within [`MIN_SCALE`, `MAX_SCALE`] (stored as float32 values),
zero points integers in [-128, 127], ops that only move values (`PASS_THROUGH_OPS`) with
their input's parameters, the network's own name and graph (the same spec with other widths or
resolution is another graph), no unknown fields, at most
`MAX_QPARAMS_BYTES`. Every refusal is a `SpecError` naming the file, line and field.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator

import numpy as np

from archspec.errors import SpecError
from archspec.graph import Graph
from archspec.jsonsrc import read_json_file
from archspec.quant.params import PASS_THROUGH_OPS, QParams, TensorQ
from archspec.yamlsrc import Node, describe

FORMAT = "archspec-qparams"
VERSION = 1
MAX_QPARAMS_BYTES = 16 * 1024 * 1024
MIN_SCALE = 1e-20
MAX_SCALE = 1e20
OPTION = "--qparams"
_TOP_REQUIRED = ("format", "version", "network", "graph", "activations")
_TOP_OPTIONAL = ("weight_scales",)
_ENTRY = ("scale", "zero_point")


def tensor_names(graph: Graph) -> list[str]:
    """The tensors a qparams file describes, in graph order: the input, then every node."""
    return [graph.input.name, *(node.name for node in graph.ops())]


def graph_digest(graph: Graph) -> str:
    """A fingerprint of the graph a qparams file describes: every tensor's name, op, inputs
    and shape, in graph order."""
    parts = [
        f"{node.name}|{node.op}|{','.join(node.inputs)}|{tuple(node.shape)}" for node in graph.nodes
    ]
    return hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()


def qparams_filename(ident: str) -> str:
    """The qparams file written beside a model whose files are named after `ident`."""
    return f"{ident}.qparams.json"


def _number(value: float) -> str:
    """A float32 value written so that reading it back gives the same float32."""
    return json.dumps(float(np.float32(value)))


def write_qparams(graph: Graph, qparams: QParams) -> str:
    """The qparams file's text: one line per tensor (graph order) and, informative, the
    per-channel scales of every conv and fc weight."""
    lines = [
        "{",
        f'  "format": {json.dumps(FORMAT)},',
        f'  "version": {VERSION},',
        f'  "network": {json.dumps(graph.name)},',
        f'  "graph": "{graph_digest(graph)}",',
        '  "activations": {',
    ]
    names = tensor_names(graph)
    for i, name in enumerate(names):
        tq = qparams.activations[name]
        entry = f'"scale": {_number(tq.scale)}, "zero_point": {int(tq.zero_point)}'
        lines.append(f"    {json.dumps(name)}: {{{entry}}}{',' if i < len(names) - 1 else ''}")
    lines.append("  },")
    lines.append('  "weight_scales": {')
    weighted = [node.name for node in graph.ops() if node.name in qparams.weights]
    for i, name in enumerate(weighted):
        scales = ", ".join(_number(s) for s in np.asarray(qparams.weights[name].scale).ravel())
        lines.append(f"    {json.dumps(name)}: [{scales}]{',' if i < len(weighted) - 1 else ''}")
    lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _fail(message: str, node: Node, field: str, hint: str | None = None) -> SpecError:
    return SpecError(message, node.loc, field, hint)


def _mapping(node: Node, field: str) -> dict[str, tuple[object, Node]]:
    if not isinstance(node.value, dict):
        raise _fail(f"found {describe(node.plain())}; expected an object", node, field)
    return node.value


def _items(node: Node, field: str, allowed: tuple[str, ...]) -> Iterator[tuple[str, Node]]:
    """The object's members after refusing any key outside `allowed`."""
    for key, (loc, value) in _mapping(node, field).items():
        if key not in allowed:
            raise SpecError(
                f"unknown field {describe(key)}; expected one of {', '.join(allowed)}",
                loc,  # type: ignore[arg-type]
                field or None,
            )
        yield key, value


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _scale(node: Node, field: str) -> float:
    value = node.value
    if not _is_number(value):
        raise _fail(f"found {describe(node.plain())}; expected a positive number", node, field)
    if not MIN_SCALE <= value <= MAX_SCALE:
        raise _fail(
            f"found {describe(value)}; expected a scale in [{MIN_SCALE:g}, {MAX_SCALE:g}]",
            node,
            field,
        )
    return float(np.float32(value))


def _zero_point(node: Node, field: str) -> int:
    value = node.value
    if not isinstance(value, int) or isinstance(value, bool):
        raise _fail(f"found {describe(node.plain())}; expected an integer", node, field)
    if not -128 <= value <= 127:
        raise _fail(f"found {value}; expected a zero point in [-128, 127]", node, field)
    return value


def _entry(node: Node, field: str) -> TensorQ:
    values = dict(_items(node, field, _ENTRY))
    for key in _ENTRY:
        if key not in values:
            raise _fail(f"missing field {key!r}", node, field)
    return TensorQ(
        _scale(values["scale"], f"{field}.scale"),
        _zero_point(values["zero_point"], f"{field}.zero_point"),
    )


def _activations(node: Node, graph: Graph) -> dict[str, TensorQ]:
    wanted = tensor_names(graph)
    known = set(wanted)
    found: dict[str, TensorQ] = {}
    for key, (loc, value) in _mapping(node, "activations").items():
        if key not in known:
            raise SpecError(
                f"tensor {describe(key)} is not in the network {graph.name!r}",
                loc,  # type: ignore[arg-type]
                "activations",
                "the file must describe this network's tensors: its input and every node",
            )
        found[key] = _entry(value, f"activations.{key}")
    missing = [name for name in wanted if name not in found]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise _fail(
            f"missing tensor {missing[0]!r}{more}",
            node,
            "activations",
            "the file must describe every tensor of the network: write one with "
            "archspec build --quantize int8",
        )
    for op_node in graph.ops():
        if op_node.op not in PASS_THROUGH_OPS:
            continue
        source = op_node.inputs[0]
        if found[op_node.name] != found[source]:
            raise _fail(
                f"{op_node.op} {op_node.name!r} only moves values, so it keeps the "
                f"parameters of its input {source!r}; found different ones",
                _mapping(node, "activations")[op_node.name][1],
                f"activations.{op_node.name}",
                f"copy the scale and zero point of {source!r}",
            )
    return {name: found[name] for name in wanted}


def read_qparams(path: str, graph: Graph) -> dict[str, TensorQ]:
    """The activation parameters of a qparams file, validated against `graph` (every refusal
    names the file, the line and the field)."""
    root = read_json_file(path, MAX_QPARAMS_BYTES, OPTION)
    top = dict(_items(root, "", _TOP_REQUIRED + _TOP_OPTIONAL))
    for key in _TOP_REQUIRED:
        if key not in top:
            raise _fail(f"missing field {key!r}; expected a qparams file", root, key)
    if top["format"].value != FORMAT:
        raise _fail(
            f"found {describe(top['format'].plain())}; expected {FORMAT!r}", top["format"], "format"
        )
    version = top["version"].value
    if not isinstance(version, int) or isinstance(version, bool) or version != VERSION:
        raise _fail(
            f"found {describe(top['version'].plain())}; expected version {VERSION}",
            top["version"],
            "version",
        )
    if top["network"].value != graph.name:
        raise _fail(
            f"the file is for the network {describe(top['network'].plain())}; expected "
            f"{graph.name!r}",
            top["network"],
            "network",
        )
    if top["graph"].value != graph_digest(graph):
        raise _fail(
            f"the file was written for another graph of the network {graph.name!r}",
            top["graph"],
            "graph",
            "the spec's layers, widths or resolution (--set) differ from the build that wrote "
            "it; calibrate again or write it with this spec and these --set values",
        )
    if "weight_scales" in top:
        _mapping(top["weight_scales"], "weight_scales")
    return _activations(top["activations"], graph)
