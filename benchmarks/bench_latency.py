"""Latency prediction accuracy and cost (issue 13).

For each space and runtime: measure a sample of variants whole (`--n`, default 50; the Figure 5
space has 21 networks, so all of them), build the latency table of the units those variants
contain, predict each variant from the table, and report the share predicted within ±10% of the
measurement, the mean absolute error (ms and %), the mean signed error (the default prediction:
the sum of units net of the per-inference overhead, plus it once); the same with the context
factor of 5 calibration variants (left out of every accuracy figure), for the plain sum of unit
medians (no overhead correction), and fastest run against fastest runs (less sensitive to load).
Then the cost: time to build the table vs time to measure the sample whole, and both extrapolated
to the whole space (distinct units of every legal variant, counted exactly).

    .venv/bin/python benchmarks/bench_latency.py [--n 50] [--repeats 20] [--runtimes ort,c]
        [--spaces specs/spaces/mnv2_mcu.yaml,specs/spaces/mnv2_figure5.yaml] [--json FILE]

The machine is shared: the load average before and after each part is printed beside it.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from archspec.errors import SpecError  # noqa: E402
from archspec.latency.machine import machine_info  # noqa: E402
from archspec.latency.measure import clear_cache, runtime_version, time_graphs  # noqa: E402
from archspec.latency.table import build_table, distinct_units, predict  # noqa: E402
from archspec.latency.timing import MeasureSettings  # noqa: E402
from archspec.latency.units import graph_digest, units_of  # noqa: E402
from archspec.lower import lower  # noqa: E402
from archspec.variants.space import Space  # noqa: E402


def load() -> str:
    """The 1-minute load average."""
    return f"{os.getloadavg()[0]:.2f}"


def sample_graphs(space: Space, n: int, seed: int = 0) -> list:
    """Up to `n` legal variants' graphs, drawn at random (all of them if the space is smaller)."""
    graphs = []
    for v in space.sample(min(space.size, 4 * n), seed):
        try:
            graphs.append(lower(v.spec))
        except SpecError:
            continue
        if len(graphs) == n:
            break
    return graphs


@functools.lru_cache(maxsize=4)
def _full_space_units(path: str, split: int | str) -> tuple[int, int, float]:
    """(legal variants, distinct units, seconds to enumerate them) over every point."""
    space = Space.load(path)
    began = time.perf_counter()
    graphs = []
    for v in space.grid():
        try:
            graphs.append(lower(v.spec))
        except SpecError:
            continue
    units = distinct_units(graphs, split)
    return len(graphs), len(units), time.perf_counter() - began


def accuracy(measured: list[float], predicted: list[float]) -> dict[str, float]:
    """Share within ±10%, MAE (ms), mean absolute % error, mean signed % error, worst % error."""
    rel = [(p - m) / m for m, p in zip(measured, predicted, strict=True)]
    return {
        "within_10pct": sum(abs(r) <= 0.10 for r in rel) / len(rel),
        "mae_ms": statistics.fmean(abs(p - m) for m, p in zip(measured, predicted, strict=True)),
        "mape_pct": 100 * statistics.fmean(abs(r) for r in rel),
        "bias_pct": 100 * statistics.fmean(rel),
        "worst_pct": 100 * max(rel, key=abs),
    }


def bench(
    space_path: str, runtime: str, n: int, repeats: int, calibrate: int, interleaved: bool
) -> dict:
    """One space × runtime. `interleaved`: each variant's not yet timed units, then the variant
    whole, one variant after another (so that a drift of the machine's speed between two long
    phases does not count as prediction error; the cost columns are then not meaningful)."""
    space = Space.load(space_path)
    settings = MeasureSettings(runtime, 1, repeats)
    graphs = sample_graphs(space, n)
    out: dict = {"space": space.name, "runtime": runtime_version(runtime), "variants": len(graphs)}
    out["order"] = "interleaved" if interleaved else "phases"

    out["load_before"] = load()
    clear_cache()
    began = time.perf_counter()
    if interleaved:
        whole = []
        for g in graphs:
            time_graphs([u.graph for u in units_of(g, settings.split)], settings)
            whole += time_graphs([g], settings)
    else:
        whole = time_graphs(graphs, settings)
    out["whole_s"] = time.perf_counter() - began
    out["load_mid"] = load()
    if not interleaved:
        clear_cache()  # the table measures its calibration variants itself
    began = time.perf_counter()
    table = build_table(graphs, settings, space.name, calibrate=calibrate)
    out["table_s"] = time.perf_counter() - began
    out["load_after"] = load()
    out["units"] = len(table.entries)
    out["overhead_ms"] = table.overhead.median_ms
    out["context_factor"] = table.factor

    # held out: the calibration variants are left out of the accuracy figures
    seen = {vid for vid, _, _ in table.calibration}
    held = [(g, t) for g, t in zip(graphs, whole, strict=True) if graph_digest(g) not in seen]
    out["held_out"] = len(held)
    measured = [t.median_ms for _, t in held]
    predicted = [predict(table, g).latency_ms for g, _ in held]
    uncalibrated = dataclasses.replace(table, factor=1.0)
    net = [predict(uncalibrated, g).latency_ms for g, _ in held]
    plain = [
        sum(table.entries[u].timing.median_ms for _, u, _ in predict(table, g).units)
        for g, _ in held
    ]
    # fastest runs against fastest runs (factor 1): what the load on a shared machine leaves
    fastest = [t.min_ms for _, t in held]
    from_min = [predict(table, g).min_ms for g, _ in held]
    out["accuracy_min"] = accuracy(fastest, from_min)
    out["accuracy"] = accuracy(measured, predicted)
    out["accuracy_no_factor"] = accuracy(measured, net)
    out["accuracy_plain_sum"] = accuracy(measured, plain)
    out["median_latency_ms"] = statistics.median(measured)
    out["median_iqr_pct"] = 100 * statistics.median(
        t.iqr_ms / t.median_ms for t in whole
    )  # run-to-run noise of one measurement

    legal, full_units, enum_s = _full_space_units(space_path, settings.split)
    out["space_variants"] = legal
    out["space_units"] = full_units
    out["enumerate_s"] = enum_s
    out["space_table_s_est"] = enum_s + out["table_s"] / max(1, out["units"]) * full_units
    out["space_whole_s_est"] = out["whole_s"] / len(graphs) * legal
    return out


def render(results: list[dict]) -> str:
    """Markdown tables."""
    lines = [
        f"machine: {machine_info()['cpu']}, {machine_info()['cores']} cores; "
        f"order: {results[0]['order'] if results else ''}",
        "",
        "| space | runtime | held out | units | within ±10% | MAE ms | MAPE | bias | worst | "
        "context factor: value, within / bias | plain sum: within / bias | "
        "min-to-min: within / bias | "
        "median latency | noise (IQR/median) | load |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        a, f, p = r["accuracy_no_factor"], r["accuracy"], r["accuracy_plain_sum"]
        mn = r["accuracy_min"]
        lines.append(
            f"| {r['space']} | {r['runtime']} | {r['held_out']} | {r['units']} | "
            f"{100 * a['within_10pct']:.0f}% | {a['mae_ms']:.3f} | {a['mape_pct']:.1f}% | "
            f"{a['bias_pct']:+.1f}% | {a['worst_pct']:+.1f}% | "
            f"{r['context_factor']}, {100 * f['within_10pct']:.0f}% / {f['bias_pct']:+.1f}% | "
            f"{100 * p['within_10pct']:.0f}% / {p['bias_pct']:+.1f}% | "
            f"{100 * mn['within_10pct']:.0f}% / {mn['bias_pct']:+.1f}% | "
            f"{r['median_latency_ms']:.3f} ms | {r['median_iqr_pct']:.1f}% | "
            f"{r['load_before']}/{r['load_mid']}/{r['load_after']} |"
        )
    lines += [
        "",
        "| space | runtime | measure sample whole | build its table | whole space: variants, "
        "units | measure all whole (est.) | table for all (est.) | ratio |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        ratio = r["space_whole_s_est"] / r["space_table_s_est"]
        lines.append(
            f"| {r['space']} | {r['runtime']} | {r['whole_s']:.1f} s ({r['variants']}) | "
            f"{r['table_s']:.1f} s ({r['units']} units) | {r['space_variants']}, "
            f"{r['space_units']} | {r['space_whole_s_est']:.0f} s | "
            f"{r['space_table_s_est']:.0f} s | {ratio:.1f}x |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    """Run the benchmark and print its tables."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--spaces",
        default="specs/spaces/mnv2_mcu.yaml,specs/spaces/mnv2_figure5.yaml",
    )
    ap.add_argument("--runtimes", default="ort,c")
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--calibrate", type=int, default=5)
    ap.add_argument("--interleaved", action="store_true")
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args()
    results = []
    for space in args.spaces.split(","):
        for runtime in args.runtimes.split(","):
            r = bench(
                str(ROOT / space), runtime, args.n, args.repeats, args.calibrate, args.interleaved
            )
            results.append(r)
            print(json.dumps(r), file=sys.stderr, flush=True)
    print(render(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0 if all(math.isfinite(r["accuracy"]["mae_ms"]) for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
