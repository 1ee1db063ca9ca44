"""Speed and memory of the C target against ONNX Runtime, side by side (issue 5).

For each distinct MobileNetV2 block configuration (as a one-block spec with the block's input
shape: the fused stem block, then every distinct inverted-residual block) and for the whole
network, at splits 1, 2, 4, 6 and n:

* C: `archspec build --target c` sources compiled with the generated Makefile's flags
  (`-std=c99 -O3 -ffp-contract=fast`, and again with `-march=native`), run single-threaded by a
  small timing harness (written here, linked with the generated network);
* ORT: ONNX Runtime on the ONNX target's model with the same weights, `intra_op_num_threads=1`,
  `inter_op_num_threads=1`, sequential execution.

Both are timed in alternating rounds; each round reports the median of `--calls` calls, and the
table shows the median over rounds, the ratio C / ORT, and GFLOP/s = 2 x MAdds / time (MAdds of
the slim profile). Memory: C's peak is the measured high-water mark of its arena (checked equal
to the planner's fused-mode peak); ORT's activation figure is the planner's op-mode (unfused)
Eq. 1 peak of the same graph, float32 — ORT's own allocator is not measured. The ratio column is
op-mode peak / fused peak.

Row-tiled rows (`--row-tile R` builds, the whole network at split 4 for each R of
`--row-tiles`, default 1,2,4): every fused block runs in bands of R output rows, so its
workspace holds only the rows a band needs (docs/c_target.md); shown as split "4 R=1" etc.

Target (whole network, split 4): C time <= 2 x ORT's time, and op-mode peak / fused peak >= 4.

Usage: python benchmarks/bench_c.py [--quick] [--rounds 3] [--calls 10]
       [--splits 1,2,4,6,n] [--row-tiles 1,2,4] [--flags portable,native] [--no-blocks]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from archspec.analysis.cost import analyze_cost
from archspec.analysis.memory import plan_memory
from archspec.emit import emit
from archspec.graph import Graph
from archspec.lower import lower
from archspec.names import spec_identifier
from archspec.output import write_tree
from archspec.spec import load_spec, load_spec_text
from archspec.weights import init_weights

ROOT = Path(__file__).resolve().parent.parent
MNV2 = ROOT / "specs" / "mnv2_1.0.yaml"
BASE_FLAGS = ("-std=c99", "-O3", "-ffp-contract=fast")  # what the generated Makefile uses
FLAG_SETS = {"portable": (), "native": ("-march=native",)}
LINE = re.compile(r"median_ms ([0-9.]+) min_ms ([0-9.]+) high_water ([0-9]+)")

HARNESS = r"""
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "{ident}.h"

static float input[{IDENT}_INPUT_SIZE], output[{IDENT}_OUTPUT_SIZE];

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

int main(int argc, char **argv)
{{
    int i, calls = atoi(argv[2]);
    double *t = malloc(sizeof(double) * (size_t)calls);
    FILE *f = fopen(argv[1], "rb");
    if (!f || fread(input, sizeof(float), {IDENT}_INPUT_SIZE, f) != {IDENT}_INPUT_SIZE) return 2;
    fclose(f);
    for (i = 0; i < 2; i++) {ident}_run(input, output);
    for (i = 0; i < calls; i++) {{
        double t0 = now();
        if ({ident}_run(input, output) != 0) return 1;
        t[i] = now() - t0;
    }}
    qsort(t, (size_t)calls, sizeof(double), cmp);
    printf("median_ms %.6f min_ms %.6f high_water %lu\n", 1e3 * t[calls / 2], 1e3 * t[0],
           (unsigned long){ident}_high_water_bytes());
    return 0;
}}
"""


@dataclass
class Case:
    """One graph to time: a block configuration or the whole network."""

    label: str
    shape: str
    graph: Graph


def mnv2_block_cases(graph: Graph) -> list[Case]:
    """One single-block spec per distinct fused block of MobileNetV2 (first user's name)."""
    plan = plan_memory(graph, mode="fused", split=1, dtype="float32")
    seen: set[tuple] = set()
    cases = []
    for fo in plan.fused_ops:
        if fo.kind == "op":
            continue
        first = graph.node(fo.nodes[0])
        out = graph.node(fo.output_node).shape
        if fo.kind == "stem_block":
            x = graph.input.shape
            dw = graph.node(fo.nodes[1])
            rows = [
                f"{{op: conv2d, name: stem, c: {first.shape.c}, s: {first.attrs['s']}, "
                f"k: {first.attrs['k']}}}",
                f"{{op: bottleneck, t: 1, c: {out.c}, s: {dw.attrs['s']}}}",
            ]
            key: tuple = ("stem", x, first.shape.c, out.c)
        else:
            block = graph.block_of(fo.output_node)
            assert block is not None
            x = graph.node(block.input).shape
            dw = next(graph.node(n) for n in block.nodes if graph.node(n).role == "dwise")
            rows = [f"{{op: bottleneck, t: {block.t}, c: {out.c}, s: {dw.attrs['s']}}}"]
            key = (block.t, x, out.c, dw.attrs["s"])
        if key in seen:
            continue
        seen.add(key)
        text = (
            f"name: mnv2-{fo.name}\ninput: {{resolution: [{x.h}, {x.w}], channels: {x.c}}}\n"
            "layers:\n" + "".join(f"  - {r}\n" for r in rows)
        )
        single = lower(load_spec_text(text, f"<{fo.name}>"))
        shape = f"{x.h}x{x.w}x{x.c} -> {out.h}x{out.w}x{out.c}"
        cases.append(Case(fo.name, shape, single))
    return cases


def ort_session(graph: Graph, weights: dict[str, np.ndarray]) -> ort.InferenceSession:
    files = emit(graph, "onnx", weights)
    model = next(v for k, v in files.items() if k.endswith(".onnx"))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def time_ort(session: ort.InferenceSession, x: np.ndarray, calls: int) -> float:
    feed = {"input": x[None]}
    session.run(None, feed)
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        session.run(None, feed)
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


class CBuild:
    """The C sources of one graph at one split, compiled once per flag set."""

    def __init__(
        self,
        graph: Graph,
        weights: dict,
        split: int | str,
        folder: Path,
        weights_object: Path,
        row_tile: int | None = None,
    ) -> None:
        self.ident = spec_identifier(graph.name)
        files = emit(graph, "c", weights, split=split, row_tile=row_tile)
        write_tree(folder, files)
        if not weights_object.exists():  # the weights file is the same at every split
            subprocess.run(
                [
                    "gcc",
                    "-std=c99",
                    "-O0",
                    "-c",
                    str(folder / f"{self.ident}_weights.c"),
                    "-o",
                    str(weights_object),
                ],
                check=True,
            )
        (folder / "bench.c").write_text(HARNESS.format(ident=self.ident, IDENT=self.ident.upper()))
        self.folder = folder
        self.weights_object = weights_object
        self.exes: dict[str, Path] = {}

    def exe(self, flags: str) -> Path:
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


def time_c(exe: Path, input_file: Path, calls: int) -> tuple[float, int]:
    done = subprocess.run(
        [str(exe), str(input_file), str(calls)], capture_output=True, text=True, check=True
    )
    found = LINE.search(done.stdout)
    assert found, done.stdout
    return float(found.group(1)), int(found.group(3))


def bench_case(
    case: Case,
    splits: list[int | str],
    flag_sets: list[str],
    rounds: int,
    calls: int,
    work: Path,
    row_tiles: Sequence[int] = (),
) -> list[dict]:
    """Time one case at every split (untiled), then at split 4 with each of `row_tiles`."""
    graph = case.graph
    weights = init_weights(graph, 0)
    madds = analyze_cost(graph).madds
    x = np.random.default_rng(0).standard_normal(graph.input.shape).astype(np.float32)
    input_file = work / f"{case.label}_input.f32"
    x.astype("<f4").tofile(input_file)
    session = ort_session(graph, weights)
    op_peak = plan_memory(graph, mode="op", dtype="float32").peak_bytes
    weights_object = work / f"{case.label}_weights.o"
    rows = []
    configs: list[tuple[int | str, int | None]] = [(s, None) for s in splits]
    configs += [(4, r) for r in row_tiles]
    for split, row_tile in configs:
        plan = plan_memory(graph, mode="fused", split=split, dtype="float32", row_tile=row_tile)
        label = f"{split}" if row_tile is None else f"{split} R={row_tile}"
        folder = work / f"{case.label}_split_{split}_rows_{row_tile}"
        build = CBuild(graph, weights, split, folder, weights_object, row_tile)
        for flags in flag_sets:
            exe = build.exe(flags)
            c_times, ort_times = [], []
            for _ in range(rounds):  # alternate, so both see the same machine load
                c_ms, high_water = time_c(exe, input_file, calls)
                c_times.append(c_ms)
                ort_times.append(time_ort(session, x, calls))
            if high_water != plan.peak_bytes:
                raise SystemExit(
                    f"{case.label} split {label}: measured {high_water} bytes, "
                    f"planned {plan.peak_bytes}"
                )
            c_ms, ort_ms = statistics.median(c_times), statistics.median(ort_times)
            rows.append(
                {
                    "case": case.label,
                    "shape": case.shape,
                    "split": label,
                    "flags": flags,
                    "madds": madds,
                    "c_ms": c_ms,
                    "ort_ms": ort_ms,
                    "c_gflops": 2 * madds / c_ms * 1e-6,
                    "ort_gflops": 2 * madds / ort_ms * 1e-6,
                    "c_peak": high_water,
                    "op_peak": op_peak,
                }
            )
            print(
                f"  {case.label:>12} split {label:>6} {flags:>8}: C {c_ms:8.3f} ms, "
                f"ORT {ort_ms:8.3f} ms",
                file=sys.stderr,
            )
    return rows


def table(rows: list[dict], title: str) -> str:
    head = (
        f"\n### {title}\n\n| case | shape | split | C ms | ORT ms | C/ORT | C GFLOP/s | "
        "ORT GFLOP/s | C peak (fused) B | ORT peak (op-mode plan) B | op/fused |\n"
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    lines = [
        f"| {r['case']} | {r['shape']} | {r['split']} | {r['c_ms']:.3f} | {r['ort_ms']:.3f} | "
        f"{r['c_ms'] / r['ort_ms']:.2f} | {r['c_gflops']:.1f} | {r['ort_gflops']:.1f} | "
        f"{r['c_peak']:,} | {r['op_peak']:,} | {r['op_peak'] / r['c_peak']:.2f} |"
        for r in rows
    ]
    return head + "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 round, 3 calls, splits 1,4,n")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--splits", default="1,2,4,6,n")
    parser.add_argument(
        "--row-tiles",
        default="1,2,4",
        help="row tiles R for the whole network at split 4 ('' for none)",
    )
    parser.add_argument("--flags", default="portable,native")
    parser.add_argument("--no-blocks", action="store_true", help="whole network only")
    args = parser.parse_args()
    if shutil.which("gcc") is None:
        raise SystemExit("needs gcc")
    if args.quick:
        args.rounds, args.calls, args.splits = 1, 3, "1,4,n"
    splits: list[int | str] = [s if s == "n" else int(s) for s in args.splits.split(",") if s]
    row_tiles = [int(r) for r in args.row_tiles.split(",") if r]
    flag_sets = args.flags.split(",")
    graph = lower(load_spec(str(MNV2)))
    net = Case("mnv2_1.0", "224x224x3 -> 1000", graph)
    cases = ([] if args.no_blocks else mnv2_block_cases(graph)) + [net]
    gcc = subprocess.run(["gcc", "-dumpfullversion"], capture_output=True, text=True).stdout
    print(
        f"# C target vs ONNX Runtime {ort.__version__}, single thread, gcc {gcc.strip()}, "
        f"{os.cpu_count()} CPUs (load average {os.getloadavg()[0]:.1f} at start)"
    )
    print(
        f"C flags: {' '.join(BASE_FLAGS)} (portable); + -march=native (native). Median of "
        f"{args.rounds} alternating rounds x {args.calls} calls."
    )
    results: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench_c_") as tmp:
        for case in cases:
            tiles = row_tiles if case is net else []
            results.extend(
                bench_case(case, splits, flag_sets, args.rounds, args.calls, Path(tmp), tiles)
            )
    for flags in flag_sets:
        print(table([r for r in results if r["flags"] == flags], f"{flags} build"))
    for flags in flag_sets:
        whole = [r for r in results if r["case"] == net.label and r["flags"] == flags]
        for at4 in whole:
            if at4["split"] != "4" and not at4["split"].startswith("4 R="):
                continue
            ratio, saving = at4["c_ms"] / at4["ort_ms"], at4["op_peak"] / at4["c_peak"]
            print(
                f"Target, whole network at split {at4['split']} ({flags}): time {ratio:.2f}x "
                f"ORT ({'met' if ratio <= 2 else 'NOT met'}: <= 2x); activation memory "
                f"{saving:.2f}x below the op-mode plan "
                f"({'met' if saving >= 4 else 'NOT met'}: >= 4x)"
            )


if __name__ == "__main__":
    main()
