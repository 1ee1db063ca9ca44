"""Benchmark: analysing NAS variants with archspec vs the usual way, side by side.

The same variants (a random sample of a search space, legal ones only) are measured twice on one
core:

* archspec: resolve the variant's spec, lower it, count params and MAdds, and find the op-mode
  and fused-mode peak memory (`Space.metrics`); per stage times are printed too;
* the usual way: build each variant's PyTorch model (a compact torchvision-style MobileNetV2
  builder written here, fed the resolved spec's rows) and count it with fvcore's
  FlopCountAnalysis plus `sum(p.numel())`.

The usual way's counts are checked against archspec's `fvcore` profile and `params_with_bn`, so
both sides do the same job. Targets (issue 6): >= 1,000 variants/s for cost + op-mode peak, and
>= 100x the usual way.

Usage: python benchmarks/bench_variants.py [--space FILE] [--n N] [--usual K] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SPACE = ROOT / "specs" / "spaces" / "mnv2_mcu.yaml"


# --------------------------------------------------------------------------------------------
# The usual way: a hand-written PyTorch MobileNetV2 builder (as NAS code usually has one).


def _round_channels(v: float, divisor: int, min_value: int) -> int:
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def build_torch_model(spec: dict[str, Any]) -> Any:
    """A torchvision-style MobileNetV2 from a resolved spec dict (Table 2 rows)."""
    import torch
    from torch import nn

    width = spec["width_multiplier"]
    divisor, min_c = spec["rounding"]["divisor"], spec["rounding"]["min"]

    def channels(row: dict[str, Any]) -> int:
        c = spec["num_classes"] if row["c"] == "num_classes" else row["c"]
        scale = row.get("scale", "width")
        if scale == "last_layer":
            scale = "width" if width > 1.0 else "none"
        return _round_channels(c * width, divisor, min_c) if scale == "width" else c

    def conv_bn(cin: int, cout: int, k: int, s: int, groups: int = 1, act: bool = True) -> Any:
        layers: list[Any] = [
            nn.Conv2d(cin, cout, k, s, (k - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
        ]
        if act:
            layers.append(nn.ReLU6(inplace=True))
        return nn.Sequential(*layers)

    class InvertedResidual(nn.Module):
        def __init__(self, cin: int, cout: int, s: int, t: int, k: int) -> None:
            super().__init__()
            hidden = _round_channels(cin * t, divisor, min_c) if t != 1 else cin
            self.use_res = s == 1 and cin == cout
            layers = [] if t == 1 else [conv_bn(cin, hidden, 1, 1)]
            layers += [
                conv_bn(hidden, hidden, k, s, groups=hidden),
                conv_bn(hidden, cout, 1, 1, act=False),
            ]
            self.conv = nn.Sequential(*layers)

        def forward(self, x: Any) -> Any:
            return x + self.conv(x) if self.use_res else self.conv(x)

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            cin = spec["input"]["channels"]
            feats: list[Any] = []
            head = None
            for row in spec["layers"]:
                if row["op"] == "conv2d":
                    cout = channels(row)
                    for i in range(row.get("n", 1)):
                        feats.append(conv_bn(cin, cout, row["k"], row["s"] if i == 0 else 1))
                        cin = cout
                elif row["op"] == "bottleneck":
                    cout = channels(row)
                    for i in range(row["n"]):
                        s = row["s"] if i == 0 else 1
                        feats.append(InvertedResidual(cin, cout, s, row["t"], row["k"]))
                        cin = cout
                elif row["op"] == "fc":
                    head = nn.Linear(cin, channels(row))
            self.features = nn.Sequential(*feats)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.classifier = head

        def forward(self, x: Any) -> Any:
            return self.classifier(torch.flatten(self.pool(self.features(x)), 1))

    return Net().eval()


def usual_way(spec_dict: dict[str, Any]) -> tuple[int, int]:
    """Build the model and count it: (fvcore total, parameter count)."""
    import torch
    from fvcore.nn import FlopCountAnalysis

    model = build_torch_model(spec_dict)
    h, w = spec_dict["input"]["resolution"]
    x = torch.zeros(1, spec_dict["input"]["channels"], h, w)
    with torch.no_grad():
        flops = FlopCountAnalysis(model, x)
        flops.unsupported_ops_warnings(False)
        flops.uncalled_modules_warnings(False)
        total = int(flops.total())
    return total, sum(p.numel() for p in model.parameters())


# --------------------------------------------------------------------------------------------


def rate(label: str, count: int, seconds: float) -> float:
    per_s = count / seconds if seconds > 0 else float("inf")
    print(
        f"  {label:<44} {count:>6} in {seconds:8.3f} s  = {per_s:10.1f} variants/s"
        f"  ({1e3 * seconds / count:8.3f} ms each)"
    )
    return per_s


def timed(fn: Callable[[], Any], repeat: int) -> float:
    """Best of `repeat` wall-clock runs (the machine is shared; the best run is the cleanest)."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default=str(DEFAULT_SPACE), help="search-space file")
    parser.add_argument("--n", type=int, default=400, help="variants sampled (default 400)")
    parser.add_argument(
        "--usual",
        type=int,
        default=20,
        help="of those, how many also go the usual way (default 20)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="timing repeats (best is kept)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", action="store_true", help="print where archspec's time goes")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(1)  # one core, both sides
    from archspec.analysis.cost import analyze_cost
    from archspec.lower import lower
    from archspec.variants import Space

    space = Space.load(args.space)
    points = space.sample_points(args.n, args.seed)
    variants, _, _ = space._unique(points)
    legal = []
    for v in variants:
        try:
            lower(v.spec)
            legal.append(v)
        except Exception:  # illegal choices: not part of the comparison
            pass
    specs = [v.spec for v in legal]
    n = len(specs)
    print(
        f"space {space.name}: {len(points)} points sampled (seed {args.seed}), "
        f"{len(variants)} distinct, {n} legal; fused split {space.fused_split}, "
        f"{space.dtype} activations; python {sys.version.split()[0]}, torch "
        f"{torch.__version__}, 1 thread\n"
    )

    print("archspec (per variant):")
    t_resolve = timed(lambda: [space.variant(v.point) for v in legal], args.repeat)
    rate("resolve spec + content id", n, t_resolve)
    t_lower = timed(lambda: [lower(s) for s in specs], args.repeat)
    rate("lower", n, t_lower)
    graphs = [lower(s) for s in specs]
    t_cost = timed(lambda: [analyze_cost(g) for g in graphs], args.repeat)
    rate("cost (params, MAdds)", n, t_cost)
    t_op = timed(lambda: [space._peak(g, "op", 1) for g in graphs], args.repeat)
    rate("op-mode peak (exact order search)", n, t_op)
    t_fused = timed(
        lambda: [space._peak(g, "fused", space.fused_split) for g in graphs], args.repeat
    )
    rate(f"fused-mode peak (split {space.fused_split})", n, t_fused)
    print()
    t_target = t_lower + t_cost + t_op
    r_target = rate("lower + cost + op-mode peak", n, t_target)
    t_all = timed(lambda: [space.metrics(s) for s in specs], args.repeat)
    r_all = rate("Space.metrics (lower + cost + both peaks)", n, t_all)

    k = min(args.usual, n)
    print(f"\nthe usual way (PyTorch model + fvcore), first {k} of the same variants:")
    dicts = [legal[i].spec_dict() for i in range(k)]
    usual_way(dicts[0])  # warm-up: imports, JIT tracer set-up
    t0 = time.perf_counter()
    usual = [usual_way(d) for d in dicts]
    t_usual = time.perf_counter() - t0
    r_usual = rate("build model + FlopCountAnalysis + numel", k, t_usual)

    mismatches = 0
    for (flops, params), g in zip(usual, graphs[:k], strict=True):
        cost = analyze_cost(g, "fvcore")
        if flops != cost.madds or params != cost.params_with_bn:
            mismatches += 1
            print(
                f"  mismatch: fvcore {flops:,} / {params:,} vs archspec fvcore profile "
                f"{cost.madds:,} / {cost.params_with_bn:,}"
            )
    print(f"  counts agree with archspec's fvcore profile on {k - mismatches}/{k} variants")

    print("\nsummary (one core):")
    print(
        f"  archspec, lower + cost + op-mode peak: {r_target:10.1f} variants/s  "
        f"(target >= 1,000: {'met' if r_target >= 1000 else 'NOT met'})"
    )
    print(f"  archspec, everything in the manifest:  {r_all:10.1f} variants/s")
    print(f"  usual way:                             {r_usual:10.2f} variants/s")
    print(
        f"  speed-up, lower + cost + op peak:      {r_target / r_usual:10.0f}x  "
        f"(target >= 100x: {'met' if r_target / r_usual >= 100 else 'NOT met'})"
    )
    print(f"  speed-up, everything in the manifest:  {r_all / r_usual:10.0f}x")

    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        for s in specs:
            space.metrics(s)
        prof.disable()
        out = io.StringIO()
        stats = pstats.Stats(prof, stream=out)
        stats.sort_stats("cumulative").print_stats(25)
        print("\nprofile of Space.metrics (cumulative):")
        print(out.getvalue())
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(15)
        print("profile of Space.metrics (own time):")
        print(out.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
