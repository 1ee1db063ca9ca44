"""The ONNX target at `--quantize int8`: the same graph rendered in QDQ form.

The model text comes from the same templates as the float model (`archspec.targets.onnx`,
`templates/onnx/`), rendered with `qdq`: every op computes in float from dequantized inputs and
its result passes through a QuantizeLinear/DequantizeLinear pair with the tensor's scale and
zero point; conv2d and fc read their int8 weights (BatchNorm folded, symmetric, one scale per
output channel, DequantizeLinear axis 0) and int32 biases (scale input scale × weight scale, zero
point 0). ONNX Runtime recognises these DQ → op → Q groups and runs them as its int8 kernels
(QLinearConv, QLinearAdd, QLinearConcat, QLinearGlobalAveragePool, QGemm...); ReLU and ReLU6
before a QuantizeLinear whose range they do not cut are dropped by its Clip/Relu fusion.

Activation tensors are stored as uint8 with zero point + 128: the same int8 network (each value
and its zero point moved by 128: QuantizeLinear's saturating round gives q + 128 exactly where
int8 gives q, so every dequantized value is identical), in the form ONNX Runtime's x86 kernels
run (U8S8: uint8 activations, int8 weights). ONNX Runtime converts int8 QDQ pairs to uint8 itself
(its QDQS8ToU8Transformer), but only where a QuantizeLinear feeds a single DequantizeLinear, so a
tensor read twice (a residual add's inputs) would stay unfused in float; measured on MobileNetV2
1.0 at 224² with one thread: int8 storage fuses 37 of 52 convs and no add, uint8 all of them.

The model's input and outputs stay float32 with the float model's names and shapes: the input
is quantized with the input's parameters first, each output is the dequantized int8 tensor, so
`round(output / scale) + zero_point` recovers the int8 values exactly. The parameters are
initializers `<tensor>/scale` (float32) and `<tensor>/zero_point` (uint8); weights keep their
canonical names (`<node>.weight` int8, `<node>.bias` int32) with `/scale` and `/zero_point`.
"""

from __future__ import annotations

from typing import Any

import jinja2
import numpy as np

from archspec.graph import Graph, weight_key
from archspec.quant.params import QParams, TensorQ
from archspec.targets import onnx as float_onnx

# Activations are stored as uint8 with the zero point moved by this much (see the docstring).
UINT8_OFFSET = 128


def _tensor_initializers(name: str, tq: TensorQ) -> list[tuple[str, np.ndarray]]:
    return [
        (f"{name}/scale", np.array(tq.scale, dtype=np.float32)),
        (f"{name}/zero_point", np.array(tq.zero_point + UINT8_OFFSET, dtype=np.uint8)),
    ]


def initializers(graph: Graph, qparams: QParams) -> list[tuple[str, np.ndarray]]:
    """Every initializer of the QDQ model in graph order: the input's and each node's scale and
    zero point, then each conv2d / fc node's int8 weight and int32 bias with theirs."""
    out = _tensor_initializers("input", qparams.activations[graph.input.name])
    for node in graph.ops():
        out.extend(_tensor_initializers(node.name, qparams.activations[node.name]))
        wq = qparams.weights.get(node.name)
        if wq is None:
            continue
        in_scale = np.float32(qparams.activations[node.inputs[0]].scale)
        w_scale = np.asarray(wq.scale, dtype=np.float32)
        channels = w_scale.shape
        wkey, bkey = weight_key(node.name, "weight"), weight_key(node.name, "bias")
        out.extend(
            [
                (wkey, np.ascontiguousarray(wq.weight, dtype=np.int8)),
                (f"{wkey}/scale", w_scale),
                (f"{wkey}/zero_point", np.zeros(channels, dtype=np.int8)),
                (bkey, np.ascontiguousarray(wq.bias, dtype=np.int32)),
                (f"{bkey}/scale", (in_scale * w_scale).astype(np.float32)),
                (f"{bkey}/zero_point", np.zeros(channels, dtype=np.int32)),
            ]
        )
    return out


def build_proto(graph: Graph, qparams: QParams, env: jinja2.Environment) -> Any:
    """The QDQ ModelProto: the template text rendered in QDQ form plus the int8 parameters."""
    import onnx.parser
    import onnx.shape_inference
    from onnx import numpy_helper

    text = float_onnx.render_text(graph, env, frozenset(qparams.weights))
    model = onnx.parser.parse_model(text)
    float_onnx.describe_model(model, graph, "int8 QDQ")
    for name, array in initializers(graph, qparams):
        model.graph.initializer.append(numpy_helper.from_array(array, name))
    model = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    float_onnx.name_batch_dims(model)
    return model


def model_bytes(graph: Graph, qparams: QParams, env: jinja2.Environment) -> bytes:
    """The serialised QDQ model (deterministic: same graph and parameters, same bytes)."""
    return build_proto(graph, qparams, env).SerializeToString(deterministic=True)


def dequantized_input(x_q: np.ndarray, tq: TensorQ) -> np.ndarray:
    """The float32 input that the model's first QuantizeLinear maps back to exactly `x_q`."""
    return (x_q.astype(np.float32) - np.float32(tq.zero_point)) * np.float32(tq.scale)


def requantized_output(y: np.ndarray, tq: TensorQ) -> np.ndarray:
    """The int8 values behind a dequantized model output (exact: y = scale · (q − zp))."""
    q = np.rint(np.asarray(y, dtype=np.float64) / np.float64(np.float32(tq.scale)))
    return np.clip(q + tq.zero_point, -128, 127).astype(np.int8)


def render_files(graph: Graph, qparams: QParams, env: jinja2.Environment) -> dict[str, str | bytes]:
    """`{<ident>.onnx: QDQ model, <ident>.qparams.json: the activation parameters}`."""
    from archspec.names import spec_identifier
    from archspec.quant.qfile import qparams_filename, write_qparams

    ident = spec_identifier(graph.name)
    return {
        f"{ident}.onnx": model_bytes(graph, qparams, env),
        qparams_filename(ident): write_qparams(graph, qparams),
    }
