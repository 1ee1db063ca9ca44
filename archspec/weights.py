"""The canonical weights of a graph: one `.npz` of float32 arrays keyed `<node>.<weight>`.

Every target loads the same arrays. `init_weights(graph, seed)` makes a deterministic set
(BatchNorm statistics included, so that inference-mode comparisons exercise them);
`load_weights` reads a file without pickle, each member's header before its data
(`archspec.npzread`), and checks names, shapes, dtypes and values against the graph. Both refuse
a graph with more than `MAX_WEIGHT_VALUES` weight values before allocating anything.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import zipfile
from collections.abc import Mapping

import numpy as np

from archspec import npzread
from archspec.errors import Location, SpecError
from archspec.graph import Graph, weight_key

Weights = Mapping[str, np.ndarray]
MAX_WEIGHTS_FILE = 2 * 1024**3
MAX_WEIGHT_VALUES = 1 << 28  # what build and verify hold in memory: 1 GiB as float32


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
    check_weights_budget(graph)
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


def _refuse(message: str, path: str) -> SpecError:
    return SpecError(message, Location(path), "--weights")


def check_weights_budget(graph: Graph, source: str | None = None) -> None:
    """Refuse, before anything is allocated, a graph whose weights exceed what `build` and
    `verify` materialise (`MAX_WEIGHT_VALUES` values); names the largest array."""
    expected = expected_weights(graph)
    total = sum(math.prod(shape) for shape, _ in expected.values())
    if total <= MAX_WEIGHT_VALUES:
        return
    largest = max(expected, key=lambda k: math.prod(expected[k][0]))
    raise SpecError(
        f"the network has {total:,} weight values; build and verify materialise at most "
        f"{MAX_WEIGHT_VALUES:,} ({MAX_WEIGHT_VALUES * 4 // 1024**3} GiB as float32)",
        Location(source or graph.spec.source),
        None,
        f"the largest array is {largest!r} of shape {list(expected[largest][0])}",
    )


def load_weights(path: str, graph: Graph) -> dict[str, np.ndarray]:
    """Read a weights file (no pickle) and check it against the graph; errors name the array
    and the reason (unexpected, missing, raw bytes or a pickle, wrong shape or dtype, a size
    its zip entry does not hold, NaN or infinite values, values beyond float32, negative
    BatchNorm variances). Every member's header is judged before any data is inflated."""
    check_weights_budget(graph)
    try:
        size = os.stat(path).st_size
    except OSError as exc:
        raise _refuse(f"cannot read weights: {exc.strerror}", path) from None
    if size > MAX_WEIGHTS_FILE:
        raise _refuse(f"the file has {size:,} bytes; expected at most {MAX_WEIGHTS_FILE:,}", path)
    try:
        with zipfile.ZipFile(path) as zf:
            return _load_members(zf, path, graph)
    except npzread.MemberError as exc:
        raise _refuse(f"cannot read weights: {exc}", path) from None
    except npzread.READ_ERRORS as exc:
        raise _refuse(f"cannot read weights: {exc}", path) from None


def _load_members(zf: zipfile.ZipFile, path: str, graph: Graph) -> dict[str, np.ndarray]:
    expected = expected_weights(graph)
    infos = npzread.members(zf)
    for key in infos:
        if key not in expected:
            raise _refuse(f"unexpected array {key!r}; the graph has no such weight", path)
    headers = {}
    for key, (shape, _) in expected.items():
        if key not in infos:
            raise _refuse(f"missing array {key!r} of shape {list(shape)}", path)
        header = npzread.read_header(zf, key, infos[key])
        if header.shape != shape:
            raise _refuse(
                f"array {key!r} has shape {list(header.shape)}; expected {list(shape)}", path
            )
        if header.dtype.kind != "f":
            raise _refuse(f"array {key!r} has dtype {header.dtype}; expected float32", path)
        headers[key] = header
    out: dict[str, np.ndarray] = {}
    for key, (_, kind) in expected.items():
        out[key] = _checked_values(npzread.read_data(zf, headers[key]), key, kind, path)
    return out


def _checked_values(arr: np.ndarray, key: str, kind: str, path: str) -> np.ndarray:
    """The array as float32 after refusing values that would not survive or make no sense:
    NaN or infinity, magnitudes beyond float32 (a cast would make them infinite), negative
    BatchNorm variances (folding takes their square root)."""
    finite = np.isfinite(arr)
    if not finite.all():
        at = _first(~finite)
        raise _refuse(f"array {key!r} holds NaN or infinite values (first at {at})", path)
    too_big = np.abs(arr) > np.finfo(np.float32).max
    if too_big.any():
        at = _first(too_big)
        raise _refuse(
            f"array {key!r} holds {arr[at]:.6g} at {at}, beyond float32's range "
            f"(±{np.finfo(np.float32).max:.4g})",
            path,
        )
    if kind == "bn_var" and (arr < 0).any():
        at = _first(arr < 0)
        raise _refuse(
            f"array {key!r} holds the negative BatchNorm variance {arr[at]:.6g} at {at}; "
            "expected variances of at least 0",
            path,
        )
    return arr.astype(np.float32)


def _first(mask: np.ndarray) -> tuple[int, ...]:
    return tuple(int(i) for i in np.unravel_index(int(np.argmax(mask)), mask.shape))


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
