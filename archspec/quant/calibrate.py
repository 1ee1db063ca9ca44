"""Post-training calibration: tensor ranges over calibration inputs, the per-tensor activation
parameters they give, and the weights quantized for those parameters (DESIGN.md §4b)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from archspec.graph import Graph, weight_key
from archspec.quant.params import PASS_THROUGH_OPS, QParams, TensorQ, WeightQ, check_supported
from archspec.weights import reference_forward

QMIN, QMAX = -128, 127
WEIGHT_QMAX = 127  # symmetric weights use [-127, 127]


def calibration_inputs(graph: Graph, n: int, seed: int) -> np.ndarray:
    """`n` seeded standard-normal inputs (N, C, H, W) float32 (the default calibration set)."""
    x = graph.input.shape
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, x.c, x.h, x.w)).astype(np.float32)


def activation_ranges(
    graph: Graph, weights: Mapping[str, np.ndarray], inputs: np.ndarray
) -> dict[str, tuple[float, float]]:
    """min/max of every tensor (the input and every node) over the calibration inputs
    (N, C, H, W) float32, computed by the float reference."""
    check_supported(graph)
    ranges: dict[str, tuple[float, float]] = {}
    for x in inputs:
        values = reference_forward(graph, weights, x)
        for name, v in values.items():
            lo, hi = float(v.min()), float(v.max())
            if name in ranges:
                lo, hi = min(lo, ranges[name][0]), max(hi, ranges[name][1])
            ranges[name] = (lo, hi)
    return ranges


def tensor_params(lo: float, hi: float) -> TensorQ:
    """Asymmetric int8 parameters of a range widened to include 0: scale (hi − lo) / 255 as a
    float32 (1.0 for an all-zero range), zero point −128 − lo / scale rounded half to even and
    saturated to [−128, 127]."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = float(np.float32((hi - lo) / (QMAX - QMIN)))
    if not scale > 0.0 or not np.isfinite(scale):
        scale = 1.0
    zero = int(np.clip(np.rint(QMIN - lo / scale), QMIN, QMAX))
    return TensorQ(scale, zero)


def choose_activations(
    graph: Graph, ranges: Mapping[str, tuple[float, float]]
) -> dict[str, TensorQ]:
    """Per-tensor parameters from the ranges (`tensor_params`); ops that only move values
    (maxpool, shuffle, shift, nearest upsample) take their input's parameters."""
    out = {graph.input.name: tensor_params(*ranges[graph.input.name])}
    for node in graph.ops():
        if node.op in PASS_THROUGH_OPS:
            out[node.name] = out[node.inputs[0]]
        else:
            out[node.name] = tensor_params(*ranges[node.name])
    return out


def _folded(graph: Graph, node, weights: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The node's float64 weight (canonical layout) and bias, BatchNorm folded."""
    from archspec.targets.c.weights import fold_conv

    own = {w.name: weights[weight_key(node.name, w.name)] for w in graph.weights(node)}
    if node.op == "fc":
        w = own["weight"].astype(np.float64)
        b = own["bias"].astype(np.float64) if node.attrs["bias"] else np.zeros(node.shape.c)
        return w, b
    return fold_conv(node, own)


def quantize_weights(weight: np.ndarray, bias: np.ndarray, input_scale: float) -> WeightQ:
    """Symmetric per-output-channel int8 weights (scale max|w| / 127 as float32, 1.0 for an
    all-zero channel; values rounded half to even) and int32 biases at input scale × weight
    scale (rounded half to even, saturated)."""
    flat = weight.reshape(weight.shape[0], -1)
    peak = np.abs(flat).max(axis=1)
    scale = (peak / WEIGHT_QMAX).astype(np.float32)
    scale[~(scale > 0)] = np.float32(1.0)
    per = scale.astype(np.float64).reshape((-1,) + (1,) * (weight.ndim - 1))
    q = np.clip(np.rint(weight / per), -WEIGHT_QMAX, WEIGHT_QMAX).astype(np.int8)
    bias_scale = np.float64(input_scale) * scale.astype(np.float64)
    qb = np.clip(np.rint(bias / bias_scale), -(2**31), 2**31 - 1).astype(np.int32)
    return WeightQ(q, scale, qb)


def quantize(
    graph: Graph, weights: Mapping[str, np.ndarray], activations: Mapping[str, TensorQ]
) -> QParams:
    """The QParams of `graph`: `activations` as given and every conv2d / fc node's weights
    quantized for its input's scale (deterministic)."""
    check_supported(graph)
    qweights = {}
    for node in graph.ops():
        if node.op in ("conv2d", "fc"):
            w, b = _folded(graph, node, weights)
            qweights[node.name] = quantize_weights(w, b, activations[node.inputs[0]].scale)
    return QParams(dict(activations), qweights)


def calibrate(graph: Graph, weights: Mapping[str, np.ndarray], inputs: np.ndarray) -> QParams:
    """Ranges over `inputs`, the activation parameters they give, the weights quantized."""
    return quantize(
        graph, weights, choose_activations(graph, activation_ranges(graph, weights, inputs))
    )
