"""Inference speed of what `archspec build` generates, side by side with a baseline each.

* PyTorch: the generated mnv2_1.0 module against a hand-written MobileNetV2 in the style of
  torchvision's (nn.Sequential features, InvertedResidual blocks; torchvision itself cannot be
  installed here). Both get the same weights (their state dicts line up tensor for tensor).
* ONNX Runtime: our `.onnx` against `torch.onnx.export` (TorchScript exporter, opset 18, constant
  folding) of the generated PyTorch model.

Single-threaded (torch.set_num_threads(1), ORT intra/inter-op threads 1), eval mode, no grad.
Each pair is timed in alternating rounds and the median per-call time is reported with the
ratio ours / baseline (target: ≤ 1.05).

Usage: python benchmarks/bench_inference.py [--spec specs/mnv2_1.0.yaml] [--batch 1]
       [--rounds 7] [--calls 10]
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from archspec.emit import environment
from archspec.lower import lower
from archspec.spec import load_spec
from archspec.targets import onnx as onnx_target
from archspec.targets import pytorch as pytorch_target
from archspec.verify import import_module_file
from archspec.weights import init_weights

ROOT = Path(__file__).resolve().parent.parent


# -- a hand-written MobileNetV2 (torchvision's layout) -----------------------------------------


def _conv_bn(c_in: int, c_out: int, k: int = 3, s: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, k, s, (k - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU6(inplace=True),
    )


class InvertedResidual(nn.Module):
    def __init__(self, c_in: int, c_out: int, s: int, t: int) -> None:
        super().__init__()
        hidden = c_in * t
        self.use_res = s == 1 and c_in == c_out
        layers: list[nn.Module] = [] if t == 1 else [_conv_bn(c_in, hidden, 1)]
        layers += [
            _conv_bn(hidden, hidden, 3, s, groups=hidden),
            nn.Conv2d(hidden, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res else self.conv(x)


class HandMobileNetV2(nn.Module):
    """MobileNetV2 at width 1.0 (Table 2), channels already multiples of 8."""

    def __init__(self, classes: int = 1000) -> None:
        super().__init__()
        table = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                 (6, 160, 3, 2), (6, 320, 1, 1)]  # fmt: skip
        features: list[nn.Module] = [_conv_bn(3, 32, 3, 2)]
        c_in = 32
        for t, c, n, s in table:
            for i in range(n):
                features.append(InvertedResidual(c_in, c, s if i == 0 else 1, t))
                c_in = c
        features.append(_conv_bn(c_in, 1280, 1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Linear(1280, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = nn.functional.adaptive_avg_pool2d(x, 1)
        return self.classifier(torch.flatten(x, 1))


# -- timing --------------------------------------------------------------------------------------


def _side_by_side(
    fns: dict[str, Callable[[], object]], rounds: int, calls: int
) -> dict[str, float]:
    """Median seconds per call of each function, timed in alternating rounds."""
    for fn in fns.values():  # warm-up
        for _ in range(3):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            samples[name].append((time.perf_counter() - start) / calls)
    return {name: statistics.median(s) for name, s in samples.items()}


def _session(data: bytes) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", default=str(ROOT / "specs" / "mnv2_1.0.yaml"))
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(1)

    graph = lower(load_spec(args.spec))
    weights = init_weights(graph, 0)
    env = environment()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "generated.py"
        path.write_text(pytorch_target.render_module(graph, env), encoding="utf-8")
        ours = import_module_file(path).build_model(weights)

    hand = HandMobileNetV2(graph.spec.num_classes).eval()
    ours_state = list(ours.state_dict().values())
    hand_state = hand.state_dict()
    assert [tuple(t.shape) for t in ours_state] == [tuple(t.shape) for t in hand_state.values()]
    hand.load_state_dict(dict(zip(hand_state, ours_state, strict=True)))

    x = np.random.default_rng(0).standard_normal((args.batch, *graph.input.shape))
    x = x.astype(np.float32)
    xt = torch.from_numpy(x)
    with torch.inference_mode():
        diff = (ours(xt) - hand(xt)).abs().max().item()
    print(
        f"{graph.name}, batch {args.batch}, 1 thread; generated vs hand-written max diff {diff:.2e}"
    )

    def run_torch(model: nn.Module) -> Callable[[], object]:
        def call() -> object:
            with torch.inference_mode():
                return model(xt)

        return call

    ours_onnx = _session(onnx_target.model_bytes(graph, weights, env))
    buffer = io.BytesIO()
    torch.onnx.export(ours, (xt,), buffer, dynamo=False, opset_version=18,
                      input_names=["input"], output_names=list(graph.outputs),
                      dynamic_axes={"input": {0: "batch"}})  # fmt: skip
    exported = _session(buffer.getvalue())
    feed = {"input": x}
    onnx_diff = np.abs(ours_onnx.run(None, feed)[0] - exported.run(None, feed)[0]).max()
    print(f"ORT: our .onnx vs torch.onnx.export max diff {onnx_diff:.2e}")

    rows = [
        ("PyTorch", "generated module", "hand-written MobileNetV2",
         _side_by_side({"ours": run_torch(ours), "base": run_torch(hand)}, args.rounds,
                       args.calls)),
        ("ONNX Runtime", "archspec .onnx", "torch.onnx.export",
         _side_by_side({"ours": lambda: ours_onnx.run(None, feed),
                        "base": lambda: exported.run(None, feed)}, args.rounds, args.calls)),
    ]  # fmt: skip
    print()
    print("| runtime | ours | ms/call | baseline | ms/call | ratio |")
    print("|---|---|---:|---|---:|---:|")
    for runtime, ours_name, base_name, t in rows:
        ratio = t["ours"] / t["base"]
        print(
            f"| {runtime} | {ours_name} | {t['ours'] * 1e3:.2f} | {base_name} | "
            f"{t['base'] * 1e3:.2f} | {ratio:.3f} |"
        )


if __name__ == "__main__":
    main()
