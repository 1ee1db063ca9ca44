"""`archspec verify --quantize int8`: the int8 network in ONNX Runtime, in numpy and in C.

One batch of fresh standard-normal inputs (a stream calibration never draws from) is quantized
with the input's parameters; then:

* **ONNX Runtime, layer by layer**: the QDQ model with every int8 tensor as an extra output is
  run once, and each node's int8 result is compared with the integer op of
  `archspec.quant.reference` applied to ONNX Runtime's own int8 inputs of that node. ONNX
  Runtime requantizes in float (`round(acc · sx·sw/sy)`, once, half to even) where the integer
  network uses fixed point (one rounding, half up: `archspec.quant.fixedpoint`), so a value may
  differ by one step; more is a failure. The share of exactly equal values is reported.
* **End to end** (reported): the model's outputs against `int8_forward` on the same int8
  input. The rare one-step differences of early layers (float32 products, ties rounded to even)
  travel and grow through the later ones (MobileNetV2 1.0/224: 6 steps at the classifier, 48 %
  exact), so this is a measurement, not a check.
* **C int8** (when the C target renders `quantize="int8"`): its outputs must equal
  `int8_forward`'s bit for bit (the same integer arithmetic), and are compared with ONNX
  Runtime's like `int8_forward`'s.
* **SQNR** (reported): the int8 network's dequantized outputs against the float32 network
  (`archspec.weights.reference_forward`) on the same fresh inputs, 10·log10(Σ ref² / Σ err²);
  and layer by layer, each node's dequantized int8 result against its float op (float weights)
  on the same dequantized int8 inputs: the error one layer adds, which the end-to-end figure
  compounds (a network with random weights amplifies it from layer to layer).

The result passes when ONNX Runtime ran and every check holds; the CLI exits 1 otherwise.
"""

from __future__ import annotations

import math
import subprocess
import tempfile
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from archspec.emit import environment
from archspec.errors import SpecError
from archspec.graph import Graph
from archspec.output import Progress, write_tree
from archspec.quant.params import QParams
from archspec.quant.reference import INT8_OPS, dequantize, int8_forward, quantize_tensor
from archspec.targets import onnx_qdq
from archspec.weights import reference_forward

# verify's own test inputs: default_rng([seed, INPUT_STREAM]), never an integer seed as
# calibration_inputs uses, so the two streams never meet.
INPUT_STREAM = 8
STEP_LIMIT = 1


@dataclass(frozen=True)
class StepComparison:
    """Two int8 implementations on some tensors, in steps of each tensor's scale."""

    what: str
    tensors: str
    max_steps: int
    exact: float  # share of exactly equal values
    values: int
    limit: int | None  # the most steps allowed; None: reported only
    worst: str = ""  # the tensor with the largest difference
    within_one: float = 1.0  # share of values at most one step apart

    @property
    def passed(self) -> bool:
        """Within the limit (always, for a comparison that is only reported)."""
        return self.limit is None or self.max_steps <= self.limit


@dataclass
class Int8VerifyResult:
    """What `verify_int8` ran, skipped and measured."""

    name: str
    input_shape: tuple[int, ...]
    calibration: str
    runtimes: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    kernels: dict[str, int] = field(default_factory=dict)
    comparisons: list[StepComparison] = field(default_factory=list)
    sqnr: dict[str, float] = field(default_factory=dict)
    layer_sqnr: dict[str, float] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """ONNX Runtime ran and every checked comparison is within its limit."""
        return "onnx" in self.runtimes and all(c.passed for c in self.comparisons)


def _steps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.astype(np.int32) - b.astype(np.int32).reshape(a.shape))


def compare(
    what: str, pairs: Mapping[str, tuple[np.ndarray, np.ndarray]], limit: int | None
) -> StepComparison:
    """One comparison over several tensors (name -> (a, b) int8 arrays of equal size)."""
    worst, max_steps, equal, near, total = "", -1, 0, 0, 0
    for name, (a, b) in pairs.items():
        d = _steps(a, b)
        if d.size and int(d.max()) > max_steps:
            worst, max_steps = name, int(d.max())
        equal += int((d == 0).sum())
        near += int((d <= 1).sum())
        total += d.size
    tensors = next(iter(pairs)) if len(pairs) == 1 else f"{len(pairs)} tensors"
    share = max(total, 1)
    return StepComparison(
        what, tensors, max(max_steps, 0), equal / share, total, limit, worst, near / share
    )


def sqnr_db(reference: np.ndarray, approx: np.ndarray) -> float:
    """10·log10(Σ reference² / Σ (reference − approx)²) in dB (inf when equal)."""
    ref = np.asarray(reference, dtype=np.float64)
    err = ref - np.asarray(approx, dtype=np.float64).reshape(ref.shape)
    noise = float((err**2).sum())
    signal = float((ref**2).sum())
    if noise == 0.0:
        return math.inf
    return 10.0 * math.log10(signal / noise) if signal > 0 else -math.inf


def layer_sqnr(
    graph: Graph,
    weights: Mapping[str, np.ndarray],
    qparams: QParams,
    forward: list[dict[str, np.ndarray]],
) -> dict[str, float]:
    """Each node's SQNR in dB: its dequantized int8 result (`forward`, one `int8_forward` per
    batch item) against its float op with the float weights on the dequantized int8 inputs."""
    from archspec.graph import weight_key
    from archspec.ops import GRAPH_OPS

    out = {}
    acts = qparams.activations
    for node in graph.ops():
        own = {w.name: weights[weight_key(node.name, w.name)] for w in graph.weights(node)}
        floats, quantized = [], []
        for values in forward:
            xs = [dequantize(values[i], acts[i]).astype(np.float64) for i in node.inputs]
            floats.append(GRAPH_OPS[node.op].reference(node.attrs, xs, own))
            quantized.append(dequantize(values[node.name], acts[node.name]))
        out[node.name] = sqnr_db(np.stack(floats), np.stack(quantized))
    return out


# -- ONNX Runtime ------------------------------------------------------------------------------


def _probe_model(graph: Graph, qparams: QParams) -> bytes:
    """The QDQ model with every int8 tensor (`<tensor>/q`, stored uint8) as an extra output."""

    model = onnx_qdq.build_proto(graph, qparams, environment())
    types = {v.name: v for v in model.graph.value_info}
    for name in [graph.input.name, *(n.name for n in graph.ops())]:
        model.graph.output.append(types[f"{name}/q"])
    return model.SerializeToString()


def _session(model: bytes, optimized: Path | None = None) -> Any:
    """An ONNX Runtime CPU session (quiet); with `optimized`, at the extended level (QDQ fusion,
    no layout changes) and writing the optimized model there."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    if optimized is not None:
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        options.optimized_model_filepath = str(optimized)
    return onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def ort_kernels(model: bytes, folder: Path) -> dict[str, int]:
    """The operators ONNX Runtime runs after its QDQ fusion (QLinearConv, QLinearAdd, ...)."""
    import onnx

    path = folder / "optimized.onnx"
    _session(model, path)
    counts = Counter(node.op_type for node in onnx.load(str(path)).graph.node)
    return dict(sorted(counts.items()))


def run_ort(
    graph: Graph, qparams: QParams, x_q: np.ndarray, model: bytes | None = None
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(the QDQ model's outputs as int8, every int8 tensor of the probe model) on the batch of
    int8 inputs `x_q`, each array shaped (batch, C, H, W) as `int8_forward`'s; `model` is the
    QDQ model's bytes when the caller has them."""
    tq_in = qparams.activations[graph.input.name]
    x = onnx_qdq.dequantized_input(x_q, tq_in)
    if model is None:
        model = onnx_qdq.model_bytes(graph, qparams, environment())
    outs = _session(model).run(list(graph.outputs), {"input": x})
    batch = x_q.shape[0]
    outputs = {
        name: onnx_qdq.requantized_output(y, qparams.activations[name]).reshape(
            batch, *graph.node(name).shape
        )
        for name, y in zip(graph.outputs, outs, strict=True)
    }
    probe = _session(_probe_model(graph, qparams))
    names = [o.name for o in probe.get_outputs()][len(graph.outputs) :]
    tensors = {}
    for name, y in zip(names, probe.run(names, {"input": x}), strict=True):
        tensor = name[: -len("/q")]
        shift = y.astype(np.int16) - onnx_qdq.UINT8_OFFSET
        tensors[tensor] = shift.astype(np.int8).reshape(batch, *graph.node(tensor).shape)
    return outputs, tensors


def per_layer(
    graph: Graph, qparams: QParams, x_q: np.ndarray, tensors: Mapping[str, np.ndarray]
) -> StepComparison:
    """ONNX Runtime's int8 tensors against the integer op of each node on ONNX Runtime's own
    int8 inputs (and its quantized input against `x_q`)."""
    pairs = {graph.input.name: (tensors[graph.input.name], x_q)}
    ctx = (graph, qparams)
    for node in graph.ops():
        expected = np.stack(
            [
                INT8_OPS[node.op](node, ctx, [tensors[i][b] for i in node.inputs])
                for b in range(x_q.shape[0])
            ]
        )
        pairs[node.name] = (tensors[node.name], expected)
    return compare("ORT QDQ vs int8 ops, layer by layer", pairs, STEP_LIMIT)


# -- C -----------------------------------------------------------------------------------------


def c_int8_available() -> str | None:
    """Why the C int8 comparison cannot run here (None when it can)."""
    import shutil

    if (shutil.which("cc") or shutil.which("gcc")) is None or shutil.which("make") is None:
        return "no C compiler and make on PATH"
    return None


def _c_runtime() -> str:
    from archspec.verify import RUNNERS

    return f"{RUNNERS['c'].runtime()} (int8 build)"


def run_c_int8(
    graph: Graph,
    weights: Mapping[str, np.ndarray],
    qparams: QParams,
    x_q: np.ndarray,
    folder: Path,
) -> dict[str, np.ndarray]:
    """Build the C int8 target for `qparams`, compile it, run it on each raw int8 input and
    read its raw int8 outputs (the graph outputs one after another, each in NCHW order)."""
    from archspec.targets import c

    files = c.render(graph, weights, environment(), quantize="int8", qparams=qparams)
    write_tree(folder, files)
    subprocess.run(["make", "-s", "-C", str(folder)], check=True, capture_output=True)
    shapes = [tuple(graph.node(o).shape) for o in graph.outputs]
    per_item = []
    for i, item in enumerate(x_q):
        src, dst = folder / f"input{i}.i8", folder / f"output{i}.i8"
        item.astype(np.int8).tofile(src)
        subprocess.run([str(folder / "run"), str(src), str(dst)], check=True, capture_output=True)
        values = np.fromfile(dst, dtype=np.int8)
        outs, at = [], 0
        for shape in shapes:
            size = math.prod(shape)
            outs.append(values[at : at + size].reshape(shape))
            at += size
        if at != values.size:
            raise RuntimeError(f"the C int8 program wrote {values.size} values; expected {at}")
        per_item.append(outs)
    return {o: np.stack([item[k] for item in per_item]) for k, o in enumerate(graph.outputs)}


# -- the whole verification --------------------------------------------------------------------


def verify_int8(
    graph: Graph,
    weights: Mapping[str, np.ndarray],
    qparams: QParams,
    *,
    calibration: str,
    batch: int = 2,
    input_seed: int = 0,
    progress: bool | None = None,
) -> Int8VerifyResult:
    """Run the int8 network in ONNX Runtime, numpy and (when it can) C; compare (see the module
    docstring). `calibration` says where the activation parameters came from."""
    shape = (batch, *graph.input.shape)
    x = np.random.default_rng([input_seed, INPUT_STREAM]).standard_normal(shape)
    x = x.astype(np.float32)
    tq_in = qparams.activations[graph.input.name]
    x_q = quantize_tensor(x, tq_in)
    result = Int8VerifyResult(graph.name, shape, calibration)
    steps = Progress(4, "verify int8", progress)
    steps.step("int8_forward")
    forward = [int8_forward(graph, qparams, item) for item in x_q]
    reference = {o: np.stack([f[o] for f in forward]) for o in graph.outputs}
    steps.step("onnx")
    try:
        import onnxruntime

        result.runtimes["onnx"] = f"onnxruntime {onnxruntime.__version__} (QDQ model)"
    except ImportError as exc:
        result.skipped["onnx"] = f"runtime not importable ({exc})"
    with tempfile.TemporaryDirectory(prefix="archspec-verify-int8-") as tmp:
        ort_out: dict[str, np.ndarray] = {}
        if "onnx" in result.runtimes:
            model = onnx_qdq.model_bytes(graph, qparams, environment())
            result.kernels = ort_kernels(model, Path(tmp))
            ort_out, tensors = run_ort(graph, qparams, x_q, model)
            result.comparisons.append(per_layer(graph, qparams, x_q, tensors))
        steps.step("c")
        why = c_int8_available()
        c_out: dict[str, np.ndarray] = {}
        if why is None:
            result.runtimes["c"] = _c_runtime()
            try:
                c_out = run_c_int8(graph, weights, qparams, x_q, Path(tmp) / "c")
            except SpecError as exc:
                del result.runtimes["c"]
                result.skipped["c"] = f"the target refuses this network: {exc.message}"
        else:
            result.skipped["c"] = why
        if c_out:
            pairs = {o: (c_out[o], reference[o]) for o in graph.outputs}
            result.comparisons.append(compare("C int8 vs int8_forward", pairs, 0))
        for o in graph.outputs:
            if ort_out:
                pair = {o: (ort_out[o], reference[o])}
                result.comparisons.append(compare("ORT QDQ vs int8_forward", pair, None))
            if ort_out and c_out:
                pair = {o: (c_out[o], ort_out[o])}
                result.comparisons.append(compare("C int8 vs ORT QDQ", pair, None))
    steps.step("float reference")
    for o in graph.outputs:
        floats = np.stack(
            [reference_forward(graph, weights, item.astype(np.float64))[o] for item in x]
        )
        result.sqnr[o] = sqnr_db(floats, dequantize(reference[o], qparams.activations[o]))
    result.layer_sqnr = layer_sqnr(graph, weights, qparams, forward)
    steps.close()
    return result


def _kernels_text(kernels: Mapping[str, int]) -> str:
    quantized = {k: n for k, n in kernels.items() if k.startswith(("QLinear", "QGemm"))}
    compute = ("Conv", "Add", "Sum", "Concat", "Gemm", "AveragePool", "GlobalAveragePool")
    left = {k: n for k, n in kernels.items() if k in compute}
    text = ", ".join(f"{n} {k}" for k, n in quantized.items()) or "none"
    if left:
        text += "; left in float: " + ", ".join(f"{n} {k}" for k, n in left.items())
    return text


def _share(x: float) -> str:
    """A share as a percentage; never shown as 100.00 % unless every value is equal."""
    text = f"{100 * x:.2f}%"
    return f"{100 * x:.4f}%" if x < 1 and text == "100.00%" else text


def render_int8_result(result: Int8VerifyResult) -> str:
    """A human-readable account of an int8 verification."""
    lines = [
        f"verify {result.name} --quantize int8: input {tuple(result.input_shape)} float32 "
        f"NCHW (fresh inputs) quantized to int8; activation parameters from "
        f"{result.calibration}",
    ]
    for target, runtime in result.runtimes.items():
        lines.append(f"  {target:<8} {runtime}")
    if result.kernels:
        lines.append(f"  ORT int8 kernels: {_kernels_text(result.kernels)}")
    for target, why in result.skipped.items():
        lines.append(f"  {target:<8} skipped: {why}")
    lines.append("int8 comparisons, in steps of each tensor's scale:")
    for c in result.comparisons:
        verdict = "ok" if c.passed else "FAIL"
        if c.limit is None:
            verdict = f"(within 1 step {100 * c.within_one:.2f}%) reported"
        limit = "" if c.limit is None else f" (limit {c.limit})"
        worst = f", worst {c.worst}" if not c.passed and c.tensors != c.worst else ""
        lines.append(
            f"  {c.what:<38} {c.tensors:<14} max {c.max_steps} step(s){limit}{worst}  "
            f"exact {_share(c.exact)}  {verdict}"
        )
    for output, db in result.sqnr.items():
        lines.append(f"SQNR of the int8 network vs float32, output {output}: {db:.1f} dB")
    if result.layer_sqnr:
        worst = min(result.layer_sqnr, key=result.layer_sqnr.__getitem__)
        lines.append(
            f"SQNR layer by layer (each op on the same dequantized int8 inputs): worst "
            f"{result.layer_sqnr[worst]:.1f} dB ({worst}), median "
            f"{float(np.median(list(result.layer_sqnr.values()))):.1f} dB"
        )
    if "onnx" not in result.runtimes:
        lines.append("verify --quantize int8: FAIL (onnxruntime is not importable)")
    elif result.passed:
        lines.append("verify --quantize int8: pass")
    else:
        failed = ", ".join(c.what for c in result.comparisons if not c.passed)
        lines.append(f"verify --quantize int8: FAIL ({failed})")
    return "\n".join(lines) + "\n"
