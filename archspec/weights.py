"""The canonical weights of a graph: one `.npz` of float32 arrays keyed `<node>.<weight>`.

Every target loads the same arrays. `init_weights(graph, seed)` makes a deterministic set
(BatchNorm statistics included, so that inference-mode comparisons exercise them);
`load_weights` reads a file without pickle and checks names, shapes and dtypes against the graph.
"""

from __future__ import annotations

import hashlib
import io
import math
import zipfile
from collections.abc import Mapping

import numpy as np

from archspec.errors import Location, SpecError
from archspec.graph import Graph, weight_key

Weights = Mapping[str, np.ndarray]
MAX_WEIGHTS_FILE = 2 * 1024**3


def expected_weights(graph: Graph) -> dict[str, tuple[tuple[int, ...], str]]:
    """Every array the graph needs: key → (shape, kind), in graph order."""
    out: dict[str, tuple[tuple[int, ...], str]] = {}
    for node in graph.ops():
        for w in graph.weights(node):
            out[weight_key(node.name, w.name)] = (w.shape, w.kind)
    return out


def _node_rng(seed: int, key: str) -> np.random.Generator:
    # Per-array streams: adding a layer does not change every other layer's weights.
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def init_weights(graph: Graph, seed: int = 0) -> dict[str, np.ndarray]:
    """Deterministic weights: He-normal convs/FC, small random biases and BatchNorm statistics
    (γ ≈ 1, β ≈ 0, mean ≈ 0, var ≈ 1, all perturbed) so activations keep a sane scale."""
    weights: dict[str, np.ndarray] = {}
    for key, (shape, kind) in expected_weights(graph).items():
        rng = _node_rng(seed, key)
        if kind == "weight":
            fan_in = math.prod(shape[1:])
            arr = rng.standard_normal(shape) * math.sqrt(2.0 / fan_in)
        elif kind in ("bias", "bn_beta", "bn_mean"):
            arr = rng.standard_normal(shape) * 0.1
        elif kind == "bn_gamma":
            arr = 1.0 + rng.standard_normal(shape) * 0.1
        else:  # bn_var
            arr = rng.uniform(0.5, 1.5, shape)
        weights[key] = arr.astype(np.float32)
    return weights


def save_weights(weights: Weights) -> bytes:
    """Serialise to `.npz` bytes, deterministically (fixed order and zip timestamps)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as zf:
        for key in weights:
            array_bytes = io.BytesIO()
            np.lib.format.write_array(
                array_bytes, np.ascontiguousarray(weights[key]), allow_pickle=False
            )
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            zf.writestr(info, array_bytes.getvalue())
    return buffer.getvalue()


def load_weights(path: str, graph: Graph) -> dict[str, np.ndarray]:
    """Read a weights file (no pickle) and check it against the graph; errors name the first
    mismatch (missing, unexpected, wrong shape or dtype, non-finite values)."""
    where = Location(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            loaded = {k: data[k] for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise SpecError(f"cannot read weights: {exc}", where, "--weights") from None
    expected = expected_weights(graph)
    for key in loaded:
        if key not in expected:
            raise SpecError(
                f"unexpected array {key!r}; the graph has no such weight", where, "--weights"
            )
    out: dict[str, np.ndarray] = {}
    for key, (shape, _) in expected.items():
        if key not in loaded:
            raise SpecError(f"missing array {key!r} of shape {list(shape)}", where, "--weights")
        arr = loaded[key]
        if tuple(arr.shape) != shape:
            raise SpecError(
                f"array {key!r} has shape {list(arr.shape)}; expected {list(shape)}",
                where,
                "--weights",
            )
        if arr.dtype.kind != "f":
            raise SpecError(
                f"array {key!r} has dtype {arr.dtype}; expected float32", where, "--weights"
            )
        if not np.all(np.isfinite(arr)):
            raise SpecError(f"array {key!r} holds NaN or infinite values", where, "--weights")
        out[key] = arr.astype(np.float32)
    return out


def reference_forward(graph: Graph, weights: Weights, x: np.ndarray) -> dict[str, np.ndarray]:
    """Run the numpy reference of every op on one (C, H, W) input; returns every tensor."""
    from archspec.ops import GRAPH_OPS

    values: dict[str, np.ndarray] = {graph.input.name: np.asarray(x, dtype=np.float64)}
    for node in graph.ops():
        own = {w.name: weights[weight_key(node.name, w.name)] for w in graph.weights(node)}
        values[node.name] = GRAPH_OPS[node.op].reference(
            node.attrs, [values[i] for i in node.inputs], own
        )
    return values
