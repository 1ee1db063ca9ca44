"""How many MobileNetV2-sized specs per second lower + analyze on one core; and how fast the
paper's branching networks (NASNet-A Mobile's cells, MobileNetV2 + SSDLite's heads) are analysed
with their optimal op order proven.

Specs are built in memory (no YAML parsing): the width multiplier and resolution vary so that no
cache could help. Run: `python benchmarks/bench_lower_analyze.py [--seconds 5]`.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

from archspec import analyze_cost, load_spec, lower
from archspec.analysis.memory import plan_memory

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0, help="measuring time")
    args = parser.parse_args()
    base = load_spec(str(ROOT / "specs" / "mnv2_1.0.yaml"))
    widths = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)
    resolutions = (96, 128, 160, 192, 224)
    specs = [
        dataclasses.replace(base, width_multiplier=w, resolution=(r, r))
        for w in widths
        for r in resolutions
    ]
    for spec in specs[:3]:  # warm-up
        analyze_cost(lower(spec))
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < args.seconds:
        spec = specs[done % len(specs)]
        analyze_cost(lower(spec))
        done += 1
    elapsed = time.perf_counter() - start
    lower_only, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < args.seconds / 2:
        lower(specs[lower_only % len(specs)])
        lower_only += 1
    lower_rate = lower_only / (time.perf_counter() - t0)
    print("| measure | specs/s (1 core) | ms/spec |")
    print("|---|---:|---:|")
    print(f"| lower | {lower_rate:,.0f} | {1000 / lower_rate:.2f} |")
    print(f"| lower + analyze_cost | {done / elapsed:,.0f} | {1000 * elapsed / done:.2f} |")
    print(f"target: >= 1,000 specs/s -> {'met' if done / elapsed >= 1000 else 'NOT met'}")
    print(f"10^5 variants would take {1e5 * elapsed / done / 60:.1f} minutes")
    print()
    paper_networks(args.seconds)


PAPER = ("nasnet_a_mobile.yaml", "mnv2_ssdlite_320.yaml", "mnv2_deeplabv3_aspp.yaml")


def paper_networks(seconds: float) -> None:
    """Lower + cost + op-mode memory plan with the exact order search, per spec: specs/s, and
    whether the optimal order was proven (target: NASNet-A Mobile proven in under 1 s)."""
    print("| spec | ops | specs/s (lower + cost + proven order) | s/spec | optimal proven |")
    print("|---|---:|---:|---:|---|")
    for name in PAPER:
        path = ROOT / "specs" / "paper" / name
        if not path.exists():
            print(f"| {name} | - | not shipped | - | - |")
            continue
        spec = load_spec(str(path))
        done, proven, start = 0, True, time.perf_counter()
        while done == 0 or time.perf_counter() - start < seconds / 2:
            graph = lower(spec)
            analyze_cost(graph)
            plan = plan_memory(graph, mode="op", time_limit=30.0)
            proven = proven and plan.optimal
            done += 1
        per = (time.perf_counter() - start) / done
        ops = sum(1 for _ in graph.ops())
        print(f"| {name} | {ops} | {1 / per:,.2f} | {per:.3f} | {'yes' if proven else 'no'} |")


if __name__ == "__main__":
    main()
