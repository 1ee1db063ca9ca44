"""Timing graphs with the C target: each graph's C sources (rendered by the C target, seed-0
weights) are compiled with gcc at -O2 (the C target Makefile's other flags; weights at -O0, as
its Makefile does) together with a harness of ours (`templates/latency/bench.c.j2`) that calls
each network's `<ident>_run` in a loop and times every run with clock_gettime(CLOCK_MONOTONIC).
Several graphs share one build (one harness, one process), so a table pays the compiler's start
once per batch. Everything happens in a temporary folder that is removed afterwards."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import jinja2
import numpy as np

from archspec.emit import emit
from archspec.graph import Graph
from archspec.latency.timing import MeasureSettings, Timing, summarise
from archspec.names import spec_identifier
from archspec.targets.c.weights import weight_arrays
from archspec.templating import environment
from archspec.weights import init_weights

CC = "gcc"
OPT = "-O2"
CFLAGS = ("-std=c99", "-ffp-contract=fast", "-w")
COMPILE_TIMEOUT = 600  # seconds per compiler call
RUN_TIMEOUT = 3600


def compiler() -> str:
    """The compiler's path; a clear error when there is none."""
    path = shutil.which(os.environ.get("ARCHSPEC_CC", CC))
    if path is None:
        raise RuntimeError(f"no C compiler ({CC}) on PATH: --measure c needs one")
    return path


def runtime_version() -> str:
    """`gcc <version> -O2` (the first line of `gcc --version`, its last word)."""
    out = subprocess.run(
        [compiler(), "--version"], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    first = out.splitlines()[0] if out else CC
    version = first.split()[-1] if first.split() else "?"
    return f"{Path(compiler()).name} {version} {OPT}"


def _run(cmd: list[str], cwd: Path, timeout: int) -> str:
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} ... failed:\n{done.stderr[-2000:]}")
    return done.stdout


def render_sources(
    graph: Graph, weights: Mapping[str, np.ndarray], s: MeasureSettings
) -> dict[str, str]:
    """The C target's header and network source of `graph` (its weights file is replaced by
    `weights_blob`)."""
    files = emit(graph, "c", weights, split=s.split, row_tile=s.row_tile)
    ident = spec_identifier(graph.name)
    return {name: str(files[name]) for name in (f"{ident}.h", f"{ident}.c")}


def weights_blob(
    graph: Graph, weights: Mapping[str, np.ndarray], ident: str, env: jinja2.Environment
) -> tuple[bytes, str]:
    """The C target's folded weight arrays as one little-endian float32 blob (each array at a
    64-byte aligned offset) and the C file that points the weights table into it."""
    parts: list[bytes] = []
    arrays = []
    offset = 0  # in floats
    for a in weight_arrays(graph, weights):
        values = np.ascontiguousarray(a.values, dtype="<f4")
        arrays.append({"symbol": a.symbol, "size": values.size, "offset": offset})
        padded = -(-values.size // 16) * 16
        parts.append(values.tobytes() + b"\0" * 4 * (padded - values.size))
        offset += padded
    text = env.get_template("latency/weights.c.j2").render(ident=ident, arrays=arrays)
    return b"".join(parts) or b"\0" * 64, text


def time_graphs(graphs: Sequence[Graph], settings: MeasureSettings) -> list[Timing]:
    """Time each graph (distinct names; each gets its own C identifier) in one build."""
    env = environment()
    idents = [spec_identifier(g.name) for g in graphs]
    if len(set(idents)) != len(idents):
        raise ValueError("graphs timed together need distinct names")
    cc = compiler()
    with tempfile.TemporaryDirectory(prefix="archspec-latency-") as tmp:
        folder = Path(tmp)
        objects: list[str] = []
        for g, ident in zip(graphs, idents, strict=True):
            weights = init_weights(g)
            files = render_sources(g, weights, settings)
            for name in (f"{ident}.h", f"{ident}.c"):
                (folder / name).write_text(files[name])
            blob, text = weights_blob(g, weights, ident, env)
            (folder / f"{ident}_weights.bin").write_bytes(blob)
            (folder / f"{ident}_weights.c").write_text(text)
            _run([cc, *CFLAGS, OPT, "-c", f"{ident}.c"], folder, COMPILE_TIMEOUT)
            _run([cc, *CFLAGS, "-c", f"{ident}_weights.c"], folder, COMPILE_TIMEOUT)
            objects += [f"{ident}.o", f"{ident}_weights.o"]
        harness = env.get_template("latency/bench.c.j2").render(
            graphs=[{"ident": i, "IDENT": i.upper()} for i in idents],
            repeats=settings.repeats,
            warmup=settings.warmup,
            max_input=max(g.input.shape.numel for g in graphs),
            max_output=max(sum(g.node(o).shape.numel for o in g.outputs) for g in graphs),
        )
        (folder / "bench.c").write_text(harness)
        _run([cc, *CFLAGS, OPT, "-o", "bench", "bench.c", *objects, "-lm"], folder, COMPILE_TIMEOUT)
        out = _run([str(folder / "bench")], folder, RUN_TIMEOUT)
    found: dict[str, list[int]] = {}
    for line in out.splitlines():
        parts = line.split()
        if parts and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", parts[0]):
            found[parts[0]] = [int(p) for p in parts[1:]]
    timings = []
    for ident in idents:
        samples = found.get(ident)
        if samples is None or len(samples) != settings.repeats:
            raise RuntimeError(f"the latency harness printed no timings for {ident}")
        timings.append(summarise(samples))
    return timings


def time_graph(graph: Graph, settings: MeasureSettings) -> Timing:
    """Time one graph with the C target."""
    return time_graphs([graph], settings)[0]
