"""The integer network in numpy: the oracle the C int8 target must match bit for bit.

Every tensor is int8 with its `TensorQ`; the arithmetic is integer except where noted:

* conv2d / fc: int32 accumulation of (x − zx)·w (padding holds zx, a real 0) plus the int32
  bias, `multiply_by_quantized_multiplier` by the per-channel multiplier of
  sx · sw[c] / sy, plus zy, then the activation as a clamp (`activation_bounds`);
* add: each input's (x − z) · 2^20 scaled by sx / (2 · s_max), the sum scaled by
  2 · s_max / (2^20 · sy) (TFLite's add), plus zy, clamped by the activation;
* concat (and maxpool, shuffle, whose parameters normally equal their input's): an input whose
  parameters differ from the output's is requantized, zy + MBQM(x − zx, sx / sy), saturated;
* avgpool: the int32 sum of (x − zx) over the window (padding adds 0), scaled by
  sx / (sy · n) with n the window's divisor (all pixels for a global pool; k·k or the real
  pixels of a windowed one, per `count_pad`): the fixed-point rounding of the multiply, no
  separate division;
* maxpool: the max over the window (padded taps never win); shuffle: a permutation.

"MBQM" is `multiply_by_quantized_multiplier` (rounding stated in `archspec.quant.fixedpoint`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from archspec.graph import GNode, Graph
from archspec.ops import avgpool, conv2d, pool, shuffle
from archspec.quant.fixedpoint import multiply_by_quantized_multiplier, quantize_multiplier
from archspec.quant.params import QParams, TensorQ, activation_bounds, check_supported

ADD_LEFT_SHIFT = 20  # TFLite's headroom for the rescaled inputs of an add


def quantize_tensor(x: np.ndarray, tq: TensorQ) -> np.ndarray:
    """round(x / scale) + zero_point, half to even (ONNX QuantizeLinear), saturated to int8."""
    q = np.rint(np.asarray(x, dtype=np.float32) / np.float32(tq.scale)) + tq.zero_point
    return np.clip(q, -128, 127).astype(np.int8)


def dequantize(q: np.ndarray, tq: TensorQ) -> np.ndarray:
    """scale · (q − zero_point) as float32 (ONNX DequantizeLinear)."""
    return (np.asarray(q, dtype=np.int32) - tq.zero_point).astype(np.float32) * np.float32(tq.scale)


def multipliers(reals: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """`quantize_multiplier` of each real multiplier: (int32 multipliers, int32 shifts)."""
    pairs = [quantize_multiplier(float(r)) for r in reals]
    return (
        np.array([p[0] for p in pairs], dtype=np.int64).astype(np.int32),
        np.array([p[1] for p in pairs], dtype=np.int32),
    )


def conv_multipliers(
    input_scale: float, weight_scale: np.ndarray, output_scale: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per-output-channel (multiplier, shift) of sx · sw[c] / sy, computed in float64."""
    reals = np.float64(input_scale) * weight_scale.astype(np.float64) / np.float64(output_scale)
    return multipliers(reals.tolist())


def add_multipliers(
    input_scales: Sequence[float], output_scale: float
) -> tuple[list[tuple[int, int]], tuple[int, int]]:
    """TFLite's add: each input's (multiplier, shift) of s_i / (2 · s_max), and the output's of
    2 · s_max / (2^20 · sy)."""
    twice = 2.0 * max(input_scales)
    ins = [quantize_multiplier(s / twice) for s in input_scales]
    out = quantize_multiplier(twice / ((1 << ADD_LEFT_SHIFT) * output_scale))
    return ins, out


def requantize(q: np.ndarray, src: TensorQ, dst: TensorQ) -> np.ndarray:
    """`q` at `src`'s parameters re-expressed at `dst`'s: itself when they are equal, else
    zy + MBQM(q − zx, sx / sy), saturated to int8."""
    if src == dst:
        return q.astype(np.int8)
    m, s = quantize_multiplier(src.scale / dst.scale)
    out = multiply_by_quantized_multiplier(q.astype(np.int32) - src.zero_point, m, s)
    return np.clip(out.astype(np.int64) + dst.zero_point, -128, 127).astype(np.int8)


def _store(acc: np.ndarray, out: TensorQ, act: str) -> np.ndarray:
    """The int32 values after the multiply plus the zero point, clamped by the activation."""
    lo, hi = activation_bounds(act, out)
    return np.clip(acc.astype(np.int64) + out.zero_point, lo, hi).astype(np.int8)


Ctx = tuple[Graph, QParams]


def _conv2d(node: GNode, ctx: Ctx, xs: Sequence[np.ndarray]) -> np.ndarray:
    graph, qp = ctx
    tx, ty, wq = qp.activations[node.inputs[0]], qp.activations[node.name], qp.weights[node.name]
    a = node.attrs
    xi = xs[0].astype(np.float64) - tx.zero_point
    acc = conv2d.convolve(
        xi, wq.weight.astype(np.float64), a["s"], a["groups"], a["dilation"], conv2d.pad_of(a)
    )
    acc = acc.astype(np.int64) + wq.bias.astype(np.int64)[:, None, None]
    m, s = conv_multipliers(tx.scale, wq.scale, ty.scale)
    y = multiply_by_quantized_multiplier(acc, m[:, None, None], s[:, None, None])
    return _store(y, ty, a["act"])


def _fc(node: GNode, ctx: Ctx, xs: Sequence[np.ndarray]) -> np.ndarray:
    graph, qp = ctx
    tx, ty, wq = qp.activations[node.inputs[0]], qp.activations[node.name], qp.weights[node.name]
    xi = xs[0].reshape(-1).astype(np.int64) - tx.zero_point
    acc = wq.weight.astype(np.int64) @ xi + wq.bias.astype(np.int64)
    m, s = conv_multipliers(tx.scale, wq.scale, ty.scale)
    y = multiply_by_quantized_multiplier(acc, m, s)
    return _store(y, ty, node.attrs["act"]).reshape(-1, 1, 1)


def _add(node: GNode, ctx: Ctx, xs: Sequence[np.ndarray]) -> np.ndarray:
    graph, qp = ctx
    tins = [qp.activations[i] for i in node.inputs]
    ty = qp.activations[node.name]
    ins, (mo, so) = add_multipliers([t.scale for t in tins], ty.scale)
    total = np.zeros(xs[0].shape, dtype=np.int64)
    for x, t, (m, s) in zip(xs, tins, ins, strict=True):
        shifted = (x.astype(np.int32) - t.zero_point) << ADD_LEFT_SHIFT
        total += multiply_by_quantized_multiplier(shifted, m, s)
    y = multiply_by_quantized_multiplier(total, mo, so)
    return _store(y, ty, node.attrs["act"])


def _concat(node: GNode, ctx: Ctx, xs: Sequence[np.ndarray]) -> np.ndarray:
    graph, qp = ctx
    ty = qp.activations[node.name]
    parts = [requantize(x, qp.activations[i], ty) for x, i in zip(xs, node.inputs, strict=True)]
    return np.concatenate(parts, axis=0)


def avgpool_multipliers(node: GNode, graph: Graph, qp: QParams) -> dict[int, tuple[int, int]]:
    """(multiplier, shift) of sx / (sy · n) for every divisor n the pool uses."""
    tx, ty = qp.activations[node.inputs[0]], qp.activations[node.name]
    x = graph.input_shapes(node)[0]
    if node.attrs["global"]:
        ns = {x.h * x.w}
    else:
        ns = {int(n) for n in np.unique(avgpool.counts(node.attrs, x.h, x.w))}
    return {n: quantize_multiplier(tx.scale / (ty.scale * n)) for n in sorted(ns)}


def _avgpool(node: GNode, ctx: Ctx, xs: Sequence[np.ndarray]) -> np.ndarray:
    graph, qp = ctx
    tx, ty = qp.activations[node.inputs[0]], qp.activations[node.name]
    xi = xs[0].astype(np.int64) - tx.zero_point
    table = avgpool_multipliers(node, graph, qp)
    if node.attrs["global"]:
        total = xi.sum(axis=(1, 2), keepdims=True)
        (n,) = table
        m, s = table[n]
        y = multiply_by_quantized_multiplier(total, m, s)
    else:
        total = pool.windows(xi, node.attrs, 0).sum(axis=0)
        counts = avgpool.counts(node.attrs, xi.shape[1], xi.shape[2]).astype(np.int64)
        m = np.vectorize(lambda n: table[int(n)][0], otypes=[np.int64])(counts)
        s = np.vectorize(lambda n: table[int(n)][1], otypes=[np.int64])(counts)
        y = multiply_by_quantized_multiplier(total, m[None], s[None])
    return _store(y, ty, "linear")


def _maxpool(node: GNode, ctx: Ctx, xs: Sequence[np.ndarray]) -> np.ndarray:
    graph, qp = ctx
    best = pool.windows(xs[0].astype(np.int16), node.attrs, -129).max(axis=0)
    return requantize(best, qp.activations[node.inputs[0]], qp.activations[node.name])


def _shuffle(node: GNode, ctx: Ctx, xs: Sequence[np.ndarray]) -> np.ndarray:
    graph, qp = ctx
    x = xs[0][shuffle.source_channels(xs[0].shape[0], node.attrs["groups"])]
    return requantize(x, qp.activations[node.inputs[0]], qp.activations[node.name])


INT8_OPS: Mapping[str, Callable[[GNode, Ctx, Sequence[np.ndarray]], np.ndarray]] = {
    "conv2d": _conv2d,
    "fc": _fc,
    "add": _add,
    "concat": _concat,
    "avgpool": _avgpool,
    "maxpool": _maxpool,
    "shuffle": _shuffle,
}


def int8_forward(graph: Graph, qparams: QParams, x_q: np.ndarray) -> dict[str, np.ndarray]:
    """Every tensor of the integer network on one (C, H, W) int8 input, as int8 arrays keyed
    by tensor name (the input's and every node's)."""
    check_supported(graph)
    values: dict[str, np.ndarray] = {graph.input.name: np.asarray(x_q, dtype=np.int8)}
    ctx = (graph, qparams)
    for node in graph.ops():
        values[node.name] = INT8_OPS[node.op](node, ctx, [values[i] for i in node.inputs])
    return values
