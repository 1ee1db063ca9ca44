"""int8 MobileNetV2: peak activation memory against the field, C int8 against ONNX Runtime int8,
accuracy, and the largest MobileNetV2 each microcontroller board holds (issue 12).

Default run, for MobileNetV2 1.0 at 224², width 0.35 at 144² (1000 classes) and the largest
`stm32f746` variant of specs/spaces/mnv2_mcu.yaml (by MAdds, among the variants whose int8 C
build fits the board at the space's split; found with `BoardRequest` / `evaluate_point` over the
full grid, or a seeded sample with `--sample N`):

* **Memory**: the planner's int8 peak (Eq. 1, int32 sums of split blocks included) in op mode,
  fused at splits 1/2/4/n, and row-tiled (R = 1, 2, 4 at split 4 and n). Every fused plan that is
  compiled (all of them by default; with `--quick` MNV2 1.0/224 split 4, 0.35/144 split n
  R = 1 and the F746 variant split 4, plus the timing builds) is run and its measured arena
  high-water mark must equal the planner's peak, else the run stops with both numbers. The
  same plans are also counted in the convention of MCUNetV2 (input + output of each op,
  depthwise in place, KiB), and the peak step of the smallest plan is broken into its parts:
  what stands between archspec and MCUNetV2's 172 KiB.
* **Speed**: C int8 (the generated sources, gcc -O3, optionally -march=native, a timing harness
  written here) against ONNX Runtime on the QDQ model (`--target onnx --quantize int8`, its int8
  kernels), 1 thread, sequential execution; C float32 and ONNX Runtime float32 for context. All
  four are timed in alternating rounds; each round is the median of `--calls` calls, the table
  the median over rounds.
* **Accuracy**, on fresh inputs (verify's stream, never the calibration inputs): SQNR of the
  int8 network (C) against the float32 network (ONNX Runtime), the same for ONNX Runtime's int8
  model, and the share of C int8 output values equal to / within one step of ONNX Runtime's.
  Every int8 build must give the same output bit for bit (any split, any row tile).

`--largest-fit`: for stm32f746 and stm32h743, the largest variant of the space by MAdds whose
int8 build fits (the space's split 4; row tiles 2 and 1 at split 4 and row tile 1 at split n are
tried for anything larger), built for the board and run once on QEMU (`make qemu`, -icount):
MAdds, SRAM and flash need against the board, instructions, MACs per instruction.

`--quick`: a seeded sample of 500 points, 1 fresh input, split 4 only, -march=native only,
1 round of 3 calls (about 1 to 2 minutes; the default run takes about 4, `--largest-fit` 2).

Usage: python benchmarks/bench_int8.py [--quick] [--rounds 3] [--calls 10] [--fresh 4]
       [--splits 1,4] [--flags portable,native] [--sample N] [--seed 0] [--largest-fit]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from archspec.analysis.memory import MemoryPlan, plan_memory
from archspec.boards import Board, get_board
from archspec.boards_fit import ARENA_ALIGNMENT, board_fit
from archspec.emit import emit, environment
from archspec.graph import INPUT, GNode, Graph
from archspec.lower import lower
from archspec.names import spec_identifier
from archspec.output import write_tree
from archspec.quant.params import QParams
from archspec.quant.reference import dequantize, quantize_tensor
from archspec.spec import load_spec
from archspec.targets import onnx_qdq
from archspec.targets.c import default_qparams
from archspec.targets.c.int8 import render_int8
from archspec.variants.evaluation import BoardRequest, evaluate_point
from archspec.variants.model import Outcome
from archspec.variants.sampling import point_at, resolve, sample_points
from archspec.variants.space import Space
from archspec.verify_int8 import INPUT_STREAM, compare, sqnr_db
from archspec.weights import init_weights

ROOT = Path(__file__).resolve().parent.parent
MNV2 = ROOT / "specs" / "mnv2_1.0.yaml"
SPACE = ROOT / "specs" / "spaces" / "mnv2_mcu.yaml"
BASE_FLAGS = ("-std=c99", "-O3", "-ffp-contract=fast")  # what the generated Makefile uses
FLAG_SETS = {"portable": (), "native": ("-march=native",)}
LINE = re.compile(r"median_ms ([0-9.]+) high_water ([0-9]+)")
KIB = 1024
# Figures from the literature (not measured here): the anchors the tables are read against.
MCUNETV2_LAYER_KIB = 1372  # MobileNetV2 1.0/224 int8, layer by layer (Lin et al. 2021)
MCUNETV2_PATCH_KIB = 172  # the same with 4x4 patches for the first stage
TINYENGINE_KB = 295  # MobileNetV2 w0.35/144 on STM32H743 (TinyEngine's measured peak SRAM)
XCUBEAI_KB = 296  # X-CUBE-AI on the same network and board (TFLite Micro, CMSIS-NN: OOM)
# The manifest's largest variant by MAdds (ties: less SRAM, then id), as `largest_fit` picks.
PICK = (
    "import json, sys; rows = [json.loads(x) for x in open(sys.argv[1])]; "
    "print(min(rows, key=lambda r: (-r['madds'], r['sram_bytes'], r['id']))['id'])"
)
FIT_SPLITS: tuple[tuple[int | str, int | None], ...] = ((4, None), (4, 2), (4, 1), ("n", 1))

HARNESS = r"""
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "{ident}.h"

static {ctype} input[{IDENT}_INPUT_SIZE], output[{IDENT}_OUTPUT_SIZE];

static double now(void)
{{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}}

static int cmp(const void *a, const void *b)
{{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}}

/* bench IN OUT CALLS: CALLS timed runs on IN (after one warm-up), the last output to OUT. */
int main(int argc, char **argv)
{{
    int i, calls;
    double *t;
    FILE *f;
    if (argc != 4) return 2;
    calls = atoi(argv[3]);
    t = malloc(sizeof(double) * (size_t)(calls > 0 ? calls : 1));
    f = fopen(argv[1], "rb");
    if (!f || fread(input, sizeof input[0], {IDENT}_INPUT_SIZE, f) != {IDENT}_INPUT_SIZE) return 2;
    fclose(f);
    if ({ident}_run(input, output) != 0) return 1;
    for (i = 0; i < calls; i++) {{
        double t0 = now();
        if ({ident}_run(input, output) != 0) return 1;
        t[i] = now() - t0;
    }}
    qsort(t, (size_t)calls, sizeof(double), cmp);
    f = fopen(argv[2], "wb");
    if (!f || fwrite(output, sizeof output[0], {IDENT}_OUTPUT_SIZE, f) != {IDENT}_OUTPUT_SIZE)
        return 1;
    fclose(f);
    printf("median_ms %.6f high_water %lu\n", calls > 0 ? 1e3 * t[calls / 2] : 0.0,
           (unsigned long){ident}_high_water_bytes());
    return 0;
}}
"""

Config = tuple[int | str, int | None]  # (split, row tile)


def config_label(split: int | str, row_tile: int | None) -> str:
    """`4`, `n R=1`: how a fused plan is named in the tables."""
    return f"{split}" if row_tile is None else f"{split} R={row_tile}"


# -- networks ----------------------------------------------------------------------------------


@dataclass
class Network:
    """One network of the tables, its weights and int8 parameters."""

    label: str
    graph: Graph
    weights: dict[str, np.ndarray] = field(repr=False)
    qparams: QParams = field(repr=False)


def network(label: str, graph: Graph) -> Network:
    """The network with `archspec build`'s default weights (seed 0) and int8 parameters
    (calibrated on the default seeded inputs)."""
    weights = init_weights(graph, 0)
    return Network(label, graph, weights, default_qparams(graph, weights))


@dataclass(frozen=True)
class Fitting:
    """The largest variant of a space that fits a board, and how it was found."""

    outcome: Outcome
    board: Board
    split: int | str
    row_tile: int | None
    sampling: str
    evaluated: int
    illegal: int
    fitting: int
    choices: dict[str, Any]
    too_big_sram: int  # legal variants whose SRAM need exceeds the board's (base plan)
    too_big_flash: int  # ... whose flash need does
    max_sram: int  # the largest SRAM need of a legal variant (base plan)

    @property
    def madds(self) -> int:
        """The variant's MAdds."""
        return int(self.outcome.metrics["madds"])


def largest_fit(space: Space, board: Board, sample: int | None, seed: int) -> Fitting:
    """The largest variant by MAdds (ties: less SRAM, then id) whose int8 C build fits `board`:
    every point of the space (or a seeded sample) at the space's split, untiled; then the
    variants above that one, largest first, at the plans of `FIT_SPLITS` (the first that fits
    any of them wins, with the first plan it fits)."""
    if sample is None or sample >= space.size:
        points = [point_at(space, i) for i in range(space.size)]
        how = f"full grid of {space.size:,} points"
    else:
        points = sample_points(space, sample, seed)
        how = f"seeded sample of {len(points):,} of {space.size:,} points (seed {seed})"
    split = space.fused_split
    base = BoardRequest(board, split, None)
    outcomes = [evaluate_point(space, p, board=base) for p in points]
    legal = [o for o in outcomes if o.metrics is not None]
    fits = [o for o in legal if o.metrics["fits"]]

    def key(o: Outcome) -> tuple:
        return (-o.metrics["madds"], o.metrics["sram_bytes"], o.id)

    best = min(fits, key=key) if fits else None
    chosen: tuple[Outcome, int | str, int | None] | None = (
        (best, split, None) if best is not None else None
    )
    floor = best.metrics["madds"] if best is not None else -1
    for o in sorted(legal, key=key):
        if o.metrics["madds"] <= floor:
            break
        if o.metrics["flash_bytes"] > board.flash.size:
            continue  # the plan changes the SRAM only (same weights, same steps)
        hit = None
        for s, r in FIT_SPLITS[1:]:
            tried = evaluate_point(space, o.point, board=BoardRequest(board, s, r))
            if tried.metrics is not None and tried.metrics["fits"]:
                hit = (tried, s, r)
                break
        if hit is not None:
            chosen = hit
            break
    if chosen is None:
        raise SystemExit(f"no variant of {space.name} fits {board.name} ({how})")
    outcome, s, r = chosen
    choices = dict(resolve(space, outcome.point).choices)
    illegal = len(outcomes) - len(legal)
    sram = [o.metrics["sram_bytes"] for o in legal]
    flash = [o.metrics["flash_bytes"] for o in legal]
    return Fitting(
        outcome,
        board,
        s,
        r,
        how,
        len(outcomes),
        illegal,
        len(fits),
        choices,
        sum(v > board.sram.size for v in sram),
        sum(v > board.flash.size for v in flash),
        max(sram),
    )


def variant_graph(space: Space, fitting: Fitting) -> Graph:
    """The lowered graph of the chosen variant."""
    return lower(resolve(space, fitting.outcome.point).spec)


# -- memory ------------------------------------------------------------------------------------


def memory_configs() -> list[Config]:
    """The fused plans of the memory table: splits 1/2/4/n, then R = 1, 2, 4 at split 4 and n."""
    configs: list[Config] = [(1, None), (2, None), (4, None), ("n", None)]
    configs += [(s, r) for s in (4, "n") for r in (1, 2, 4)]
    return configs


def int8_plan(graph: Graph, split: int | str, row_tile: int | None) -> MemoryPlan:
    """The int8 C build's plan (fused, its arena alignment)."""
    return plan_memory(
        graph,
        mode="fused",
        split=split,
        dtype="int8",
        row_tile=row_tile,
        alignment=ARENA_ALIGNMENT["int8"],
    )


def _in_place(node: GNode, graph: Graph) -> bool:
    """A depthwise conv (one group per channel, as many outputs as inputs): MCUNetV2 counts it
    in place."""
    if node.op != "conv2d" or len(node.inputs) != 1:
        return False
    c_in = (graph.input if node.inputs[0] == INPUT else graph.node(node.inputs[0])).shape.c
    return c_in > 1 and node.attrs.get("groups", 1) == c_in == node.shape.c


def _tensor_bytes(graph: Graph, name: str) -> int:
    shape = graph.input.shape if name == INPUT else graph.node(name).shape
    return shape.numel  # int8: one byte per value


def layer_convention_bytes(graph: Graph) -> tuple[int, str]:
    """MCUNetV2's layer-by-layer figure: the largest input + output of one op (int8), a
    depthwise conv in place (the larger of its input and output), nothing else held."""
    best, at = 0, ""
    for node in graph.ops():
        ins = sum(_tensor_bytes(graph, i) for i in node.inputs)
        out = _tensor_bytes(graph, node.name)
        need = max(ins, out) if _in_place(node, graph) else ins + out
        if need > best:
            best, at = need, node.name
    return best, at


def fused_convention_bytes(graph: Graph, plan: MemoryPlan) -> tuple[int, str]:
    """A fused plan in MCUNetV2's convention: the largest input + output + workspace of one step
    (a single depthwise op in place), nothing else held."""
    best, at = 0, ""
    for name in plan.order:
        fo = plan.op(name)
        ins = sum(plan.problem.size[t] for t in fo.inputs)
        out = plan.problem.size[name]
        work = plan.problem.workspace.get(name, 0)
        single = fo.kind == "op" and _in_place(graph.node(fo.output_node), graph)
        need = max(ins, out) if single else ins + out + work
        if need > best:
            best, at = need, name
    return best, at


def step_parts(plan: MemoryPlan, step: str) -> tuple[int, int, int, str]:
    """(input bytes, output bytes, workspace bytes, kind) of one step of a plan."""
    fo = plan.op(step)
    ins = sum(plan.problem.size[t] for t in fo.inputs)
    return ins, plan.problem.size[step], plan.problem.workspace.get(step, 0), fo.kind


# -- builds ------------------------------------------------------------------------------------


class CProgram:
    """One network's C build (int8 or float32) at one plan, compiled per flag set."""

    def __init__(
        self,
        net: Network,
        dtype: str,
        split: int | str,
        row_tile: int | None,
        work: Path,
        objects: dict[str, Path],
    ) -> None:
        self.net, self.dtype = net, dtype
        self.split, self.row_tile = split, row_tile
        graph = net.graph
        self.ident = spec_identifier(graph.name)
        if dtype == "int8":
            files = render_int8(
                graph, {}, environment(), split=split, row_tile=row_tile, qparams=net.qparams
            )
            self.plan: MemoryPlan | None = int8_plan(graph, split, row_tile)
        else:
            files = emit(graph, "c", net.weights, split=split, row_tile=row_tile)
            self.plan = None
        tag = f"{net.label}_{dtype}_{config_label(split, row_tile)}".replace(" ", "_")
        self.folder = work / re.sub(r"[^A-Za-z0-9_.=-]", "_", tag)
        write_tree(self.folder, files)
        ctype = "int8_t" if dtype == "int8" else "float"
        harness = HARNESS.format(ident=self.ident, IDENT=self.ident.upper(), ctype=ctype)
        (self.folder / "bench.c").write_text(harness)
        self.weights_object = self._weights_object(objects)
        self.exes: dict[str, Path] = {}

    def _weights_object(self, objects: dict[str, Path]) -> Path:
        """The weights file is the same at every plan: compiled once per content (-O0)."""
        source = self.folder / f"{self.ident}_weights.c"
        digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
        if digest not in objects:
            obj = self.folder.parent / f"weights_{digest}.o"
            subprocess.run(
                ["gcc", "-std=c99", "-O0", "-c", str(source), "-o", str(obj)], check=True
            )
            objects[digest] = obj
        return objects[digest]

    def exe(self, flags: str) -> Path:
        """The timing harness linked with the network, compiled with `flags`."""
        if flags not in self.exes:
            exe = self.folder / f"bench_{flags}"
            cmd = [
                "gcc",
                *BASE_FLAGS,
                *FLAG_SETS[flags],
                "-o",
                str(exe),
                str(self.folder / "bench.c"),
                str(self.folder / f"{self.ident}.c"),
                str(self.weights_object),
                "-lm",
            ]
            subprocess.run(cmd, check=True)
            self.exes[flags] = exe
        return self.exes[flags]

    def run(self, flags: str, x: np.ndarray, calls: int) -> tuple[float, int, np.ndarray]:
        """(median ms of `calls` calls, measured high-water mark, output) on one input."""
        src, dst = self.folder / "in.bin", self.folder / "out.bin"
        dtype = np.int8 if self.dtype == "int8" else np.dtype("<f4")
        np.ascontiguousarray(x, dtype=dtype).tofile(src)
        done = subprocess.run(
            [str(self.exe(flags)), str(src), str(dst), str(calls)],
            capture_output=True,
            text=True,
        )
        found = LINE.search(done.stdout)
        if done.returncode != 0 or not found:
            raise SystemExit(f"{self.folder.name}: the harness failed ({done.returncode})")
        out = np.fromfile(dst, dtype=dtype)
        return float(found.group(1)), int(found.group(2)), out

    def check_high_water(self, measured: int) -> None:
        """The measured high-water mark must equal the planner's int8 peak."""
        if self.plan is not None and measured != self.plan.peak_bytes:
            raise SystemExit(
                f"FAIL {self.net.label} int8 split {config_label(self.split, self.row_tile)}: "
                f"measured high-water mark {measured:,} bytes, planner's int8 peak "
                f"{self.plan.peak_bytes:,}"
            )


def ort_session(model: bytes) -> ort.InferenceSession:
    """ONNX Runtime on the CPU, 1 thread, sequential execution."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def time_ort(session: ort.InferenceSession, x: np.ndarray, calls: int) -> float:
    """Median ms of `calls` runs on `x` (batch 1), after one warm-up."""
    feed = {"input": x[None]}
    session.run(None, feed)
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        session.run(None, feed)
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


@dataclass
class Runtimes:
    """One network's ONNX Runtime sessions (int8 QDQ and float32) and its fresh inputs."""

    int8: ort.InferenceSession
    float32: ort.InferenceSession
    x: np.ndarray  # (N, C, H, W) float32, fresh
    x_q: np.ndarray  # the same quantized with the input's parameters


def runtimes(net: Network, fresh: int) -> Runtimes:
    """ORT sessions of the QDQ and float models, and `fresh` inputs from verify's stream."""
    graph, qp = net.graph, net.qparams
    qdq = onnx_qdq.model_bytes(graph, qp, environment())
    files = emit(graph, "onnx", net.weights)
    model = next(v for k, v in files.items() if k.endswith(".onnx"))
    assert isinstance(model, bytes)
    shape = (fresh, *graph.input.shape)
    x = np.random.default_rng([0, INPUT_STREAM]).standard_normal(shape).astype(np.float32)
    x_q = quantize_tensor(x, qp.activations[graph.input.name])
    return Runtimes(ort_session(qdq), ort_session(model), x, x_q)


# -- the benchmark -----------------------------------------------------------------------------


def check_builds(
    nets: Sequence[Network],
    configs: dict[str, list[Config]],
    rts: dict[str, Runtimes],
    work: Path,
    objects: dict[str, Path],
) -> tuple[dict[tuple[str, str], int], dict[str, np.ndarray]]:
    """Compile and run the int8 builds of `configs` (per network label); every high-water mark
    must equal the plan's peak and every build's output the first build's. Returns the
    measured marks and each network's int8 C outputs on its fresh inputs."""
    measured: dict[tuple[str, str], int] = {}
    outputs: dict[str, np.ndarray] = {}
    for net in nets:
        first: np.ndarray | None = None
        for split, row_tile in configs.get(net.label, []):
            prog = CProgram(net, "int8", split, row_tile, work, objects)
            outs = []
            for x_q in rts[net.label].x_q:
                _, hwm, out = prog.run("portable", x_q, 0)
                prog.check_high_water(hwm)
                outs.append(out)
            label = config_label(split, row_tile)
            measured[(net.label, label)] = hwm
            stacked = np.stack(outs)
            if first is None:
                first, outputs[net.label] = stacked, stacked
            elif not np.array_equal(first, stacked):
                raise SystemExit(f"FAIL {net.label} split {label}: int8 output differs")
            print(f"  checked {net.label} split {label}: {hwm:,} B", file=sys.stderr)
            shutil.rmtree(prog.folder, ignore_errors=True)
    return measured, outputs


def memory_table(
    nets: Sequence[Network], measured: dict[tuple[str, str], int]
) -> tuple[str, dict[str, dict[str, MemoryPlan]]]:
    """The int8 peaks of every plan (bytes), marked where the C build measured them."""
    plans: dict[str, dict[str, MemoryPlan]] = {}
    lines = [
        "| plan | " + " | ".join(n.label for n in nets) + " |",
        "|---|" + "---:|" * len(nets),
    ]
    op_row = ["op mode (unfused)"]
    for net in nets:
        op = plan_memory(net.graph, mode="op", dtype="int8")
        plans.setdefault(net.label, {})["op"] = op
        op_row.append(f"{op.peak_bytes:,}")
    lines.append("| " + " | ".join(op_row) + " |")
    for split, row_tile in memory_configs():
        label = config_label(split, row_tile)
        row = [f"fused, split {label}"]
        for net in nets:
            plan = int8_plan(net.graph, split, row_tile)
            plans[net.label][label] = plan
            mark = " ✓" if (net.label, label) in measured else ""
            row.append(f"{plan.peak_bytes:,}{mark}")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n", plans


def convention_text(nets: Sequence[Network], plans: dict[str, dict[str, MemoryPlan]]) -> str:
    """The peaks in MCUNetV2's convention, against the anchors, and what stands between."""
    out = [
        "| network | layer by layer (in + out, dw in place) | archspec op mode | "
        "best fused plan | its peak | in MCUNetV2's convention | peak step: in + out + work |",
        "|---|---:|---:|---|---:|---:|---|",
    ]
    notes = []
    for net in nets:
        layer, at = layer_convention_bytes(net.graph)
        fused = {k: p for k, p in plans[net.label].items() if k != "op"}
        best_label = min(fused, key=lambda k: (fused[k].peak_bytes, k))
        best = fused[best_label]
        conv, _ = fused_convention_bytes(net.graph, best)
        ins, outs, work, kind = step_parts(best, best.peak_step)
        out.append(
            f"| {net.label} | {layer / KIB:,.1f} KiB ({at}) | "
            f"{plans[net.label]['op'].peak_bytes / KIB:,.1f} KiB | split {best_label} | "
            f"{best.peak_bytes / KIB:,.1f} KiB | {conv / KIB:,.1f} KiB | {best.peak_step} "
            f"({kind}): {ins / KIB:,.1f} + {outs / KIB:,.1f} + {work / KIB:,.1f} KiB |"
        )
        notes.append((net, layer, best_label, best, ins, outs, work, kind))
    text = "\n".join(out) + "\n"
    for net, layer, best_label, best, ins, outs, work, kind in notes:
        if net.label.startswith("MNV2 1.0/224"):
            text += (
                f"\nMCUNetV2 (Lin et al. 2021), MNV2 1.0/224 int8: {MCUNETV2_LAYER_KIB:,} KiB "
                f"layer by layer, {MCUNETV2_PATCH_KIB} KiB with 4x4 patches. Counted the same "
                f"way here: "
                f"{layer / KIB:,.1f} KiB layer by layer "
                f"({'equal' if round(layer / KIB) == MCUNETV2_LAYER_KIB else 'NOT equal'} "
                f"to theirs, rounded). archspec's smallest int8 plan (split {best_label}) peaks at "
                f"{best.peak_bytes / KIB:,.1f} KiB = "
                f"{best.peak_bytes / KIB / MCUNETV2_PATCH_KIB:.2f}x "
                f"their patch figure, {MCUNETV2_LAYER_KIB / (best.peak_bytes / KIB):.2f}x below "
                f"their layer-by-layer one. Its peak step is {best.peak_step} ({kind}): input "
                f"{ins / KIB:,.1f} KiB + output {outs / KIB:,.1f} KiB + workspace "
                f"{work / KIB:,.1f} KiB. A fused op holds its whole input and output, so no "
                f"split or row tile goes below {(ins + outs) / KIB:,.1f} KiB here, "
                f"{(ins + outs) / KIB / MCUNETV2_PATCH_KIB:.2f}x MCUNetV2's {MCUNETV2_PATCH_KIB} "
                f"KiB: patch inference computes the first stage patch by patch, so it never holds "
                f"the stem's whole input ({ins / KIB:,.1f} KiB) or output ({outs / KIB:,.1f} KiB)."
                f"\n"
            )
        if net.label.startswith("MNV2 0.35/144"):
            fit = board_fit(net.graph, "stm32h743", best.split, best.row_tile, "int8")
            text += (
                f"\nTinyEngine (MCUNet), MNV2 w0.35/144 on STM32H743: {TINYENGINE_KB} kB measured "
                f"peak SRAM (X-CUBE-AI {XCUBEAI_KB} kB; TFLite Micro and CMSIS-NN out of memory). "
                f"archspec, split {best_label}: activations {best.peak_bytes / 1000:,.1f} kB "
                f"({best.peak_bytes / KIB:,.1f} KiB; peak step {best.peak_step}: "
                f"{ins / 1000:,.1f} + {outs / 1000:,.1f} + {work / 1000:,.1f} kB); its whole "
                f"stm32h743 SRAM need (arena {fit.arena_bytes:,} B + harness input/output "
                f"{fit.io_bytes:,} B + runtime statics {fit.static_bytes:,} B + stack and heap "
                f"{fit.reserve_bytes:,} B) {fit.sram_bytes / 1000:,.1f} kB of "
                f"{fit.board.sram.size / 1000:,.1f} kB. TinyEngine's figure is SRAM measured on "
                f"the device, runtime included; counted layer by layer in MCUNetV2's convention "
                f"this network needs {layer / 1000:,.1f} kB ({layer / KIB:,.1f} KiB).\n"
            )
    return text


def timing_rows(
    nets: Sequence[Network],
    rts: dict[str, Runtimes],
    splits: Sequence[int | str],
    flag_sets: Sequence[str],
    rounds: int,
    calls: int,
    work: Path,
    objects: dict[str, Path],
    measured: dict[tuple[str, str], int],
) -> list[dict[str, Any]]:
    """C int8 / ORT int8 / C float32 / ORT float32 in alternating rounds, per network, split
    and flag set (the int8 builds' high-water marks checked too)."""
    rows = []
    for net in nets:
        rt = rts[net.label]
        x, x_q = rt.x[0], rt.x_q[0]
        tq = net.qparams.activations[net.graph.input.name]
        x_deq = onnx_qdq.dequantized_input(x_q, tq)
        for split in splits:
            c8 = CProgram(net, "int8", split, None, work, objects)
            cf = CProgram(net, "float32", split, None, work, objects)
            for flags in flag_sets:
                t: dict[str, list[float]] = {"c8": [], "o8": [], "cf": [], "of": []}
                for _ in range(rounds):
                    ms, hwm, _ = c8.run(flags, x_q, calls)
                    c8.check_high_water(hwm)
                    measured[(net.label, config_label(split, None))] = hwm
                    t["c8"].append(ms)
                    t["o8"].append(time_ort(rt.int8, x_deq, calls))
                    t["cf"].append(cf.run(flags, x, calls)[0])
                    t["of"].append(time_ort(rt.float32, x, calls))
                med = {k: statistics.median(v) for k, v in t.items()}
                rows.append({"net": net.label, "split": split, "flags": flags, **med})
                print(
                    f"  {net.label} split {split} {flags}: C int8 {med['c8']:.2f} ms, ORT int8 "
                    f"{med['o8']:.2f} ms, C f32 {med['cf']:.2f} ms, ORT f32 {med['of']:.2f} ms",
                    file=sys.stderr,
                )
            shutil.rmtree(c8.folder, ignore_errors=True)
            shutil.rmtree(cf.folder, ignore_errors=True)
    return rows


def timing_table(rows: Sequence[dict[str, Any]]) -> str:
    """Markdown: the medians and the C / ORT ratios."""
    lines = [
        "| network | split | C flags | C int8 ms | ORT int8 ms | C/ORT int8 | C float32 ms | "
        "ORT float32 ms | C/ORT float32 |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['net']} | {r['split']} | {r['flags']} | {r['c8']:.2f} | {r['o8']:.2f} | "
            f"{r['c8'] / r['o8']:.2f} | {r['cf']:.2f} | {r['of']:.2f} | {r['cf'] / r['of']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def accuracy_table(
    nets: Sequence[Network], rts: dict[str, Runtimes], c_out: dict[str, np.ndarray]
) -> str:
    """SQNR against float32 and C int8 against ORT int8 on the fresh inputs."""
    lines = [
        "| network | fresh inputs | SQNR C int8 vs float32 | SQNR ORT int8 vs float32 | "
        "C = ORT (int8 values) | C within 1 step of ORT | max steps |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for net in nets:
        rt, graph = rts[net.label], net.graph
        out_name = graph.outputs[0]
        tq = net.qparams.activations[out_name]
        shape = (len(rt.x), *graph.node(out_name).shape)
        floats = np.stack([rt.float32.run(None, {"input": x[None]})[0] for x in rt.x])
        ort_q = []
        tq_in = net.qparams.activations[graph.input.name]
        for x_q in rt.x_q:
            y = rt.int8.run(None, {"input": onnx_qdq.dequantized_input(x_q, tq_in)[None]})[0]
            ort_q.append(onnx_qdq.requantized_output(y, tq))
        ort8 = np.stack(ort_q).reshape(shape)
        c8 = c_out[net.label].reshape(shape)
        cmp = compare("C int8 vs ORT QDQ", {out_name: (c8, ort8)}, None)
        lines.append(
            f"| {net.label} | {len(rt.x)} | "
            f"{sqnr_db(floats.reshape(shape), dequantize(c8, tq)):.1f} dB | "
            f"{sqnr_db(floats.reshape(shape), dequantize(ort8, tq)):.1f} dB | "
            f"{100 * cmp.exact:.1f}% | {100 * cmp.within_one:.1f}% | {cmp.max_steps} |"
        )
    return "\n".join(lines) + "\n"


def bench_networks(args: argparse.Namespace, space: Space) -> None:
    """The default run: memory, speed and accuracy of the three networks."""
    f746 = get_board("stm32f746")
    t0 = time.perf_counter()
    fitting = largest_fit(space, f746, args.sample, args.seed)
    sweep_s = time.perf_counter() - t0
    nets = [
        network("MNV2 1.0/224", lower(load_spec(str(MNV2)))),
        network(
            "MNV2 0.35/144",
            lower(load_spec(str(MNV2), ["width_multiplier=0.35", "resolution=144"])),
        ),
        network(f"F746 best {fitting.outcome.id}", variant_graph(space, fitting)),
    ]
    print(
        f"# int8 MobileNetV2 (onnxruntime {ort.__version__}, gcc {gcc_version()}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start)\n"
    )
    print(
        f"F746 best: the largest variant of {space.name} by MAdds whose int8 C build fits "
        f"stm32f746 at split {fitting.split}"
        + ("" if fitting.row_tile is None else f", row tile {fitting.row_tile}")
        + f": {fitting.outcome.id} ({fitting.madds:,} MAdds; {fitting.sampling}: "
        f"{fitting.illegal:,} illegal, {fitting.fitting:,} fit at split {space.fused_split}; "
        f"{sweep_s:.0f} s on one core).\n"
    )
    rts = {net.label: runtimes(net, args.fresh) for net in nets}
    configs: dict[str, list[Config]] = {}
    if args.quick:
        configs = {
            nets[0].label: [(4, None)],
            nets[1].label: [("n", 1)],
            nets[2].label: [(4, None)],
        }
    else:
        configs = {net.label: memory_configs() for net in nets}
    splits: list[int | str] = [s if s == "n" else int(s) for s in args.splits.split(",") if s]
    with tempfile.TemporaryDirectory(prefix="bench_int8_") as tmp:
        work, objects = Path(tmp), {}
        measured, c_out = check_builds(nets, configs, rts, work, objects)
        rows = timing_rows(
            nets,
            rts,
            splits,
            args.flags.split(","),
            args.rounds,
            args.calls,
            work,
            objects,
            measured,
        )
    table, plans = memory_table(nets, measured)
    print("## int8 peak activation memory (bytes; planner, ✓ = measured in the C build, equal)\n")
    print(table)
    print("## Against MCUNetV2 and TinyEngine\n")
    print(convention_text(nets, plans))
    print(
        f"## C int8 vs ONNX Runtime int8 (QDQ model), 1 thread, sequential; median of "
        f"{args.rounds} alternating rounds x {args.calls} calls\n"
    )
    print(timing_table(rows))
    print(
        f"## Accuracy on {args.fresh} fresh input(s) (verify's stream, not the calibration "
        "inputs; calibration: 8 seeded inputs)\n"
    )
    print(accuracy_table(nets, rts, c_out))


def gcc_version() -> str:
    """gcc's version."""
    done = subprocess.run(["gcc", "-dumpfullversion"], capture_output=True, text=True)
    return done.stdout.strip()


# -- the largest MobileNetV2 per board ---------------------------------------------------------


def short_choices(choices: dict[str, Any]) -> str:
    """The variant's choices in one line (`width 0.75, 128², row2 t6 n2, ...`)."""
    return ", ".join(f"{k} {v}" for k, v in choices.items() if k != "num_classes")


def largest_fit_report(args: argparse.Namespace, space: Space) -> None:
    """`--largest-fit`: per board, the largest variant that fits, built and run on QEMU."""
    from archspec.boards_run import count_instructions, missing_tools

    missing = missing_tools()
    rows, details, chosen = [], [], []
    for name in ("stm32f746", "stm32h743"):
        board = get_board(name)
        t0 = time.perf_counter()
        fitting = largest_fit(space, board, args.sample, args.seed)
        sweep_s = time.perf_counter() - t0
        chosen.append((name, fitting))
        graph = variant_graph(space, fitting)
        fit = board_fit(graph, board, fitting.split, fitting.row_tile, "int8")
        count = None
        if not missing:
            count = count_instructions(
                graph, board, init_weights(graph, 0), split=fitting.split, row_tile=fitting.row_tile
            )
        plan = config_label(fitting.split, fitting.row_tile)
        instr = "n/a" if count is None else f"{count.total:,}"
        mpi = "n/a" if count is None else f"{count.macs_per_instruction:.3f}"
        secs = "n/a" if count is None else f"{count.qemu_seconds:.1f} s"
        rows.append(
            f"| {name} | `{fitting.outcome.id}` | {fitting.madds / 1e6:,.2f} M | split {plan} | "
            f"{fit.arena_bytes:,} | {fit.sram_bytes:,} of {board.sram.size:,} | "
            f"{fit.flash_bytes:,} of {board.flash.size:,} | {instr} | {mpi} | {secs} |"
        )
        details.append(
            f"- {name}: {fitting.sampling}, {fitting.illegal:,} illegal, {fitting.fitting:,} of "
            f"{fitting.evaluated - fitting.illegal:,} fit at split {space.fused_split} "
            f"({fitting.too_big_sram:,} need too much SRAM, {fitting.too_big_flash:,} too much "
            f"flash; the largest SRAM need is {fitting.max_sram:,} B; {sweep_s:.0f} s on one "
            f"core); `{fitting.outcome.id}`: "
            f"{short_choices(fitting.choices)}; weights {fit.weights_bytes:,} B + code estimate "
            f"{fit.code_bytes:,} B"
            + (
                ""
                if count is None
                else f"; stack {count.stack_bytes:,} B, heap {count.heap_bytes:,} B"
            )
        )
    print(f"## The largest variant of {space.name} (by MAdds) whose int8 C build fits each board\n")
    print(
        "| board | variant | MAdds | plan | arena B | SRAM need B | flash need B | instructions "
        "(QEMU) | MACs / instr | QEMU run |"
    )
    print("|---|---|---:|---|---:|---:|---:|---:|---:|---:|")
    print("\n".join(rows) + "\n")
    print("\n".join(details))
    print("\nThe same with the CLI (per board; the full grid is --n 12288):\n")
    print("```sh")
    for name, fitting in chosen:
        spec = f"out/{name}/specs/{fitting.outcome.id}.yaml"
        plan = f"--split {fitting.split}" + (
            "" if fitting.row_tile is None else f" --row-tile {fitting.row_tile}"
        )
        print(
            f"archspec variants {SPACE.relative_to(ROOT)} --board {name} --n {space.size} "
            f"-o out/{name}"
            + ("" if fitting.row_tile is None else f" --row-tile {fitting.row_tile}")
        )
        print(f'python -c "{PICK}" out/{name}/manifest.jsonl   # {fitting.outcome.id}')
        print(
            f"archspec build {spec} --target c --quantize int8 {plan} --board {name} "
            f"-o out/{name}_c"
        )
        print(f"make -C out/{name}_c qemu IN=input.i8 OUT=output.i8")
        print(f"archspec report {spec} --memory-mode fused {plan} --board {name} --instructions")
    print("```")
    if missing:
        print(f"\n(instructions not counted: {', '.join(missing)} not on PATH)")


def main() -> None:
    """Parse the options and run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer builds, rounds and inputs")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--fresh", type=int, default=4, help="fresh inputs for the accuracy")
    parser.add_argument("--splits", default="1,4", help="splits timed (untiled)")
    parser.add_argument("--flags", default="portable,native")
    parser.add_argument(
        "--sample", type=int, default=None, help="seeded sample of the space (default: full grid)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--largest-fit", action="store_true", help="the largest variant per board, on QEMU"
    )
    args = parser.parse_args()
    if shutil.which("gcc") is None:
        raise SystemExit("needs gcc")
    if args.quick:
        args.rounds, args.calls, args.fresh, args.splits = 1, 3, 1, "4"
        args.flags = "native"
        args.sample = 500 if args.sample is None else args.sample
    space = Space.load(str(SPACE))
    if args.largest_fit:
        largest_fit_report(args, space)
    else:
        bench_networks(args, space)


if __name__ == "__main__":
    main()
