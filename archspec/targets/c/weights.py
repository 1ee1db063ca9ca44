"""The C target's weights: BatchNorm folded, laid out for the HWC kernels, as C arrays."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from archspec.errors import SpecError
from archspec.graph import GNode, Graph, weight_key
from archspec.ops.conv2d import c_variant
from archspec.templating import c_float


@dataclass(frozen=True)
class CArray:
    """One `static const float` array of the weights file."""

    field: str  # member of the weights struct
    symbol: str  # the static array
    comment: str
    values: np.ndarray  # float32, flat


def fold_conv(node: GNode, w: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Conv weight (OIHW) and bias with inference BatchNorm folded in, computed in float64."""
    weight = w["weight"].astype(np.float64)
    bias = w["bias"].astype(np.float64) if node.attrs["bias"] else np.zeros(node.shape.c)
    if node.attrs["bn"]:
        scale = w["bn_gamma"].astype(np.float64) / np.sqrt(
            w["bn_var"].astype(np.float64) + node.attrs["bn_eps"]
        )
        weight = weight * scale[:, None, None, None]
        bias = (bias - w["bn_mean"]) * scale + w["bn_beta"]
    return weight, bias


def conv_layout(node: GNode, c_in: int, weight: np.ndarray) -> tuple[np.ndarray, str]:
    """The folded OIHW weight in the kernels' layout: depthwise [k][k][C]; every other conv
    [groups][k][k][C_in/groups][C_out/groups] (a 1x1 conv: [C_in][C_out])."""
    k, groups = node.attrs["k"], node.attrs["groups"]
    if c_variant(node.attrs, c_in) == "depthwise":
        return weight[:, 0].transpose(1, 2, 0), f"[{k}][{k}][{node.shape.c}]"
    c_out = node.shape.c
    cin_g, cout_g = c_in // groups, c_out // groups
    arr = weight.reshape(groups, cout_g, cin_g, k, k).transpose(0, 3, 4, 2, 1)
    if groups == 1 and k == 1:
        return arr, f"[{c_in}][{c_out}]"
    return arr, f"[{groups}][{k}][{k}][{cin_g}][{cout_g}]"


def node_arrays(graph: Graph, node: GNode, weights: Mapping[str, np.ndarray]) -> list[CArray]:
    """The weight and bias arrays of one conv2d or fc node."""
    own = {w.name: weights[weight_key(node.name, w.name)] for w in graph.weights(node)}
    c_in = graph.input_shapes(node)[0].c
    if node.op == "fc":
        arr = own["weight"].astype(np.float64).T
        bias = own["bias"].astype(np.float64) if node.attrs["bias"] else np.zeros(node.shape.c)
        layout, what = f"[{c_in}][{node.shape.c}]", "fc weight (transposed)"
    else:
        folded, bias = fold_conv(node, own)
        arr, layout = conv_layout(node, c_in, folded)
        what = "conv weight, BatchNorm folded" if node.attrs["bn"] else "conv weight"
    out = []
    for suffix, values, desc in (("w", arr, f"{what}, {layout}"), ("b", bias, "bias")):
        flat = np.ascontiguousarray(values, dtype=np.float32).ravel()
        if not np.all(np.isfinite(flat)):
            raise SpecError(
                f"folding BatchNorm into {node.name} gives non-finite values",
                node.loc,
                "weights",
                "check bn_var (it must be > -bn_eps) and the magnitudes of the weights",
            )
        out.append(
            CArray(f"{node.name}_{suffix}", f"{suffix}_{node.name}", f"{node.name}: {desc}", flat)
        )
    return out


def weight_arrays(graph: Graph, weights: Mapping[str, np.ndarray]) -> list[CArray]:
    """Every weights-file array, in graph order: the nodes that have weights. Independent of
    the split and of fusion."""
    arrays: list[CArray] = []
    for node in graph.ops():
        if graph.weights(node):
            arrays.extend(node_arrays(graph, node, weights))
    return arrays


def array_lines(values: np.ndarray, per_line: int = 8) -> list[str]:
    """The initialiser lines of one array."""
    items = [c_float(v) for v in values.astype(np.float64).tolist()]
    return [", ".join(items[i : i + per_line]) + "," for i in range(0, len(items), per_line)]
