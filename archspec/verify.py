"""Building targets and proving they compute the same function.

`target_files` is what `archspec build` writes: a target's generated files plus the canonical
`weights.npz` next to them, so every output folder stands alone. `verify` builds every target
whose runtime is importable into a temporary folder, loads each from that folder with the same
weights file, runs all of them on the same random input in inference mode, and compares every
pair and each against the numpy reference (`archspec.weights.reference_forward`).

The Python runtimes run in this process, one after the other; the C target is compiled with its
own Makefile and its `run` program is called once per batch item. Keras is imported with
`KERAS_BACKEND=torch` (set here unless Keras was already imported, in which case its backend is
reported): one process means torch is imported once and arrays are compared directly, where a
subprocess per runtime would add seconds of start-up to every run.

Differences are reported as max |a − b| and judged relative to the output's scale:
max |a − b| / max(1, max |reference|) ≤ tolerance, since float32 rounding grows with the
magnitude of the values (a network whose logits reach 10 differs by ~1e-5 · 10 between runtimes).
"""

from __future__ import annotations

import importlib.util
import itertools
import math
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import numpy as np

from archspec.emit import Files, emit, target_names
from archspec.errors import Location, SpecError
from archspec.graph import Graph
from archspec.names import spec_identifier
from archspec.output import Progress, write_tree
from archspec.targets.common import flat_tensors
from archspec.weights import init_weights, load_weights, reference_forward, save_weights

WEIGHTS_FILE = "weights.npz"
VERIFY_TARGETS = ("pytorch", "keras", "onnx", "c")
DEFAULT_TOLERANCE = 1e-4
# The numpy reference keeps every tensor of every batch item in float64: 1 GiB at this bound.
MAX_VERIFY_VALUES = 1 << 27


def check_verify_budget(graph: Graph, batch: int) -> None:
    """Refuse, before any allocation, a verification whose test input and reference tensors
    (every activation of every batch item) exceed `MAX_VERIFY_VALUES` values."""
    per_item = graph.input.shape.numel + sum(node.shape.numel for node in graph.ops())
    total = batch * per_item
    if total > MAX_VERIFY_VALUES:
        raise SpecError(
            f"verify would hold {total:,} activation values ({batch} × {per_item:,}); "
            f"it runs networks of at most {MAX_VERIFY_VALUES:,}",
            Location(graph.spec.source),
            None,
            "lower the resolution or the widths with --set, or use --batch 1",
        )


def resolve_weights(
    graph: Graph, weights_path: str | None = None, seed: int | None = None
) -> dict[str, np.ndarray]:
    """The canonical weights: read from `weights_path` (validated against the graph), else
    initialised from `seed` (0 when neither is given)."""
    if weights_path is not None and seed is not None:
        raise SpecError(
            "give either --weights or --seed, not both", Location(weights_path), "--weights"
        )
    if weights_path is not None:
        return load_weights(weights_path, graph)
    return init_weights(graph, 0 if seed is None else seed)


def target_files(
    graph: Graph, target: str, weights: Mapping[str, np.ndarray], **options: object
) -> Files:
    """A target's files plus the canonical weights file, ready for `write_tree`."""
    available = target_names()
    if target not in available:
        raise SpecError(
            f"target {target!r} is not available; expected one of {', '.join(available)}",
            None,
            "--target",
        )
    files = dict(emit(graph, target, weights, **options))
    files.setdefault(WEIGHTS_FILE, save_weights(weights))
    return files


# -- running the generated models --------------------------------------------------------------


def import_module_file(path: Path) -> ModuleType:
    """Import a generated module under a fresh name (never cached in sys.modules)."""
    name = f"_archspec_generated_{uuid.uuid4().hex}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and typing look the module up while it executes
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[name]
    return module


def _runtime_pytorch() -> str:
    import torch

    return f"torch {torch.__version__.split('+')[0]}"


def _run_pytorch(folder: Path, graph: Graph, x: np.ndarray) -> list[np.ndarray]:
    import torch

    module = import_module_file(folder / f"{spec_identifier(graph.name)}.py")
    model = module.build_model(str(folder / WEIGHTS_FILE))
    with torch.no_grad():
        out = model(torch.from_numpy(x))
    outs = out if isinstance(out, tuple) else (out,)
    return [o.detach().cpu().numpy() for o in outs]


def _runtime_keras() -> str:
    if "keras" not in sys.modules:
        os.environ["KERAS_BACKEND"] = "torch"
    import keras

    return f"keras {keras.__version__} ({keras.backend.backend()} backend)"


def _run_keras(folder: Path, graph: Graph, x: np.ndarray) -> list[np.ndarray]:
    module = import_module_file(folder / f"{spec_identifier(graph.name)}.py")
    model = module.build_model(str(folder / WEIGHTS_FILE))
    out = model.predict(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), verbose=0)
    outs = out if isinstance(out, list | tuple) else [out]
    # Keras is NHWC; compare in NCHW.
    return [np.asarray(o).transpose(0, 3, 1, 2) if np.ndim(o) == 4 else np.asarray(o) for o in outs]


def _runtime_onnx() -> str:
    import onnxruntime

    return f"onnxruntime {onnxruntime.__version__}"


def _run_onnx(folder: Path, graph: Graph, x: np.ndarray) -> list[np.ndarray]:
    import onnxruntime

    path = folder / f"{spec_identifier(graph.name)}.onnx"
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return list(session.run(list(graph.outputs), {"input": x}))


def _runtime_c() -> str:
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None or shutil.which("make") is None:
        raise ImportError("no C compiler and make on PATH")
    first = subprocess.run([compiler, "--version"], capture_output=True, text=True).stdout
    return first.splitlines()[0] if first else compiler


def _run_c(folder: Path, graph: Graph, x: np.ndarray) -> list[np.ndarray]:
    """Compile the generated C with its own Makefile and run `run` once per batch item; the
    program writes the graph outputs one after another, each flattened in NCHW order."""
    subprocess.run(["make", "-s", "-C", str(folder)], check=True, capture_output=True)
    flat = flat_tensors(graph)
    shapes = [
        (node.shape.c,) if node.name in flat else tuple(node.shape)
        for node in (graph.node(name) for name in graph.outputs)
    ]
    per_item: list[list[np.ndarray]] = []
    for i, item in enumerate(x):
        src, dst = folder / f"input{i}.f32", folder / f"output{i}.f32"
        item.astype("<f4").tofile(src)
        subprocess.run([str(folder / "run"), str(src), str(dst)], check=True, capture_output=True)
        values = np.fromfile(dst, dtype="<f4")
        outs, at = [], 0
        for shape in shapes:
            size = int(np.prod(shape))
            outs.append(values[at : at + size].reshape(shape))
            at += size
        if at != values.size:
            raise RuntimeError(f"the C program wrote {values.size} floats; expected {at}")
        per_item.append(outs)
    return [np.stack([item[k] for item in per_item]) for k in range(len(shapes))]


@dataclass(frozen=True)
class Runner:
    """How to run one target's generated files: its runtime's version string (raises
    ImportError when the runtime is missing) and a forward pass from an output folder."""

    runtime: Callable[[], str]
    run: Callable[[Path, Graph, np.ndarray], list[np.ndarray]]


RUNNERS: Mapping[str, Runner] = {
    "pytorch": Runner(_runtime_pytorch, _run_pytorch),
    "keras": Runner(_runtime_keras, _run_keras),
    "onnx": Runner(_runtime_onnx, _run_onnx),
    "c": Runner(_runtime_c, _run_c),
}


# -- comparing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """One pair of implementations on one output."""

    output: str
    a: str
    b: str
    max_abs: float
    scale: float

    @property
    def relative(self) -> float:
        """max |a − b| / max(1, max |reference|); infinite when either side is NaN or infinite."""
        if not (math.isfinite(self.max_abs) and math.isfinite(self.scale)):
            return math.inf
        return self.max_abs / max(1.0, self.scale)


@dataclass
class VerifyResult:
    """What `verify` ran, skipped and measured."""

    name: str
    input_shape: tuple[int, ...]
    tolerance: float
    runtimes: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    comparisons: list[Comparison] = field(default_factory=list)

    @property
    def worst(self) -> float:
        """The largest relative difference (0 when nothing was compared)."""
        return max((c.relative for c in self.comparisons), default=0.0)

    @property
    def passed(self) -> bool:
        """At least one target ran and every pair is within the tolerance."""
        return bool(self.runtimes) and self.worst <= self.tolerance


def _as_batch(ref: np.ndarray, like: np.ndarray) -> np.ndarray:
    if ref.size != like.size:
        raise ValueError(f"output of shape {like.shape} cannot hold the reference's {ref.shape}")
    return ref.reshape(like.shape)


def verify(
    graph: Graph,
    weights: Mapping[str, np.ndarray],
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    batch: int = 2,
    input_seed: int = 0,
    targets: Sequence[str] = VERIFY_TARGETS,
    progress: bool | None = None,
) -> VerifyResult:
    """Build, run and compare every available target of `targets` (see the module docstring)."""
    check_verify_budget(graph, batch)
    shape = (batch, *graph.input.shape)
    x = np.random.default_rng(input_seed).standard_normal(shape).astype(np.float32)
    result = VerifyResult(graph.name, shape, tolerance)
    registered = set(target_names())
    steps = Progress(len(targets) + 1, "verify", progress)
    outputs: dict[str, list[np.ndarray]] = {}
    with tempfile.TemporaryDirectory(prefix="archspec-verify-") as tmp:
        for target in targets:
            steps.step(target)
            if target not in registered:
                result.skipped[target] = "target not available in this build"
                continue
            if target not in RUNNERS:
                result.skipped[target] = "verify does not know how to run this target"
                continue
            try:
                result.runtimes[target] = RUNNERS[target].runtime()
            except ImportError as exc:
                result.skipped[target] = f"runtime not importable ({exc})"
                continue
            folder = Path(tmp) / target
            try:
                files = target_files(graph, target, weights)
            except SpecError as exc:  # a target that cannot build this network: say why, go on
                result.skipped[target] = f"the target refuses this network: {exc.message}"
                continue
            write_tree(folder, files)
            outputs[target] = RUNNERS[target].run(folder, graph, x)
            if len(outputs[target]) != len(graph.outputs):
                raise RuntimeError(
                    f"the {target} model returned {len(outputs[target])} outputs; expected "
                    f"{len(graph.outputs)} ({', '.join(graph.outputs)})"
                )
        steps.step("reference")
        refs = [reference_forward(graph, weights, xi) for xi in x.astype(np.float64)]
        steps.close()
    reference = {o: np.stack([r[o] for r in refs]) for o in graph.outputs}
    for i, name in enumerate(graph.outputs):
        scale = float(np.abs(reference[name]).max())
        values = {t: np.asarray(outs[i], dtype=np.float64) for t, outs in outputs.items()}
        for t, value in values.items():
            diff = np.abs(value - _as_batch(reference[name], value)).max()
            result.comparisons.append(Comparison(name, t, "reference", float(diff), scale))
        for (ta, va), (tb, vb) in itertools.combinations(values.items(), 2):
            diff = np.abs(va - vb.reshape(va.shape)).max()
            result.comparisons.append(Comparison(name, ta, tb, float(diff), scale))
    return result


def render_result(result: VerifyResult) -> str:
    """A human-readable account of a verification."""
    lines = [
        f"verify {result.name}: input {tuple(result.input_shape)} float32 NCHW, "
        f"tolerance {result.tolerance:g} on max|a-b| / max(1, max|reference|)",
    ]
    for target, runtime in result.runtimes.items():
        lines.append(f"  {target:<8} {runtime}")
    for target, why in result.skipped.items():
        lines.append(f"  {target:<8} skipped: {why}")
    current = None
    for c in result.comparisons:
        if c.output != current:
            current = c.output
            lines.append(f"output {c.output} (max |reference| {c.scale:.4g}):")
        verdict = "ok" if c.relative <= result.tolerance else "FAIL"
        pair = f"{c.a} vs {c.b}"
        lines.append(
            f"  {pair:<22} max abs diff {c.max_abs:.3e}  relative {c.relative:.3e}  {verdict}"
        )
    if not result.runtimes:
        lines.append("verify: FAIL (no target runtime is importable; nothing was compared)")
    elif result.passed:
        lines.append(f"verify: pass (worst relative difference {result.worst:.3e})")
    else:
        lines.append(
            f"verify: FAIL (worst relative difference {result.worst:.3e} > {result.tolerance:g})"
        )
    return "\n".join(lines) + "\n"
