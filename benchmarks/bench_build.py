"""Build time per target for a spec (default mnv2_1.0): what `archspec build` spends.

Per target, the median of several runs of each stage: load + lower the spec, initialise the
weights (seed 0), emit the target's files plus weights.npz (`archspec.verify.target_files`), and
the whole `archspec build` command in-process (writing into a temporary folder). The Jinja
templates are compiled once per process; the first run's time is shown separately.

Usage: python benchmarks/bench_build.py [--spec specs/mnv2_1.0.yaml] [--repeats 5]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from archspec.cli import main as cli_main
from archspec.emit import target_names
from archspec.lower import lower
from archspec.spec import load_spec
from archspec.verify import target_files
from archspec.weights import init_weights

ROOT = Path(__file__).resolve().parent.parent


def _timed(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """(first call, median of the following `repeats` calls) in seconds."""
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return first, statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", default=str(ROOT / "specs" / "mnv2_1.0.yaml"))
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    _, load_t = _timed(lambda: lower(load_spec(args.spec)), args.repeats)
    graph = lower(load_spec(args.spec))
    _, init_t = _timed(lambda: init_weights(graph, 0), args.repeats)
    weights = init_weights(graph, 0)
    print(f"{graph.name}: load + lower {load_t * 1e3:.1f} ms, init weights {init_t * 1e3:.1f} ms")
    print()
    print("| target | files | bytes | emit first (ms) | emit (ms) | `archspec build` (ms) |")
    print("|---|---|---:|---:|---:|---:|")
    for target in target_names():
        files = target_files(graph, target, weights)
        size = sum(len(v if isinstance(v, bytes) else v.encode()) for v in files.values())
        first, emit_t = _timed(lambda t=target: target_files(graph, t, weights), args.repeats)
        with tempfile.TemporaryDirectory() as tmp:
            argv = ["build", args.spec, "--target", target, "-o", tmp]
            with contextlib.redirect_stdout(io.StringIO()):
                _, cli_t = _timed(lambda a=argv: cli_main(a), args.repeats)
        print(
            f"| {target} | {', '.join(sorted(files))} | {size:,} | {first * 1e3:.1f} | "
            f"{emit_t * 1e3:.1f} | {cli_t * 1e3:.1f} |"
        )


if __name__ == "__main__":
    main()
