"""The C target: compiled with gcc -Werror, run, and compared with ONNX Runtime.

Every case compiles the generated sources with `-std=c99 -pedantic -O2 -Wall -Wextra -Werror` and
`-DARCHSPEC_POISON` (buffers are filled with NaN when allocated and freed, so a kernel reading
memory the plan does not give it shows up as NaN), runs the `run` program on a random input and
compares its output with ONNX Runtime running the ONNX target's model on the same weights. The
high-water mark the program measures must equal the planner's predicted peak.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from archspec.analysis.memory import plan_memory
from archspec.cli import main as cli_main
from archspec.emit import emit
from archspec.errors import SpecError
from archspec.graph import Graph
from archspec.lower import lower
from archspec.names import spec_identifier
from archspec.output import write_tree
from archspec.spec import load_spec, load_spec_text
from archspec.weights import init_weights

ort = pytest.importorskip("onnxruntime")
GCC = shutil.which("gcc")
pytestmark = pytest.mark.skipif(GCC is None, reason="needs gcc")

ROOT = Path(__file__).resolve().parent.parent
MNV2 = ROOT / "specs" / "mnv2_1.0.yaml"
CFLAGS = ("-std=c99", "-pedantic", "-O2", "-Wall", "-Wextra", "-Werror", "-DARCHSPEC_POISON")
TOLERANCE = 1e-4
SPLITS: tuple[int | str, ...] = (1, 2, 4, "n")
HIGH_WATER = re.compile(r"high-water mark: (\d+) bytes \(predicted peak (\d+), arena (\d+)\)")

# One spec per kind of fused op: (input channels, resolution, rows, expected fused kind).
BLOCKS = {
    "t6_s1_residual": (24, 14, ["{op: bottleneck, t: 6, c: 24, s: 1}"], "block"),
    "t6_s1_no_residual": (16, 14, ["{op: bottleneck, t: 6, c: 24, s: 1}"], "block"),
    "t6_s2": (16, 15, ["{op: bottleneck, t: 6, c: 24, s: 2}"], "block"),
    "t1_s1_residual": (16, 12, ["{op: bottleneck, t: 1, c: 16, s: 1}"], "block"),
    "t1_s1_no_residual": (32, 12, ["{op: bottleneck, t: 1, c: 16, s: 1}"], "block"),
    "t1_s2": (16, 13, ["{op: bottleneck, t: 1, c: 24, s: 2}"], "block"),
    "t6_k5_dilation2": (
        32,
        12,
        ["{op: bottleneck, t: 6, c: 32, s: 1, k: 5, dilation: 2}"],
        "block",
    ),
    "stem_t1": (
        3,
        33,
        ["{op: conv2d, name: stem, c: 32, s: 2, k: 3}", "{op: bottleneck, t: 1, c: 16, s: 1}"],
        "stem_block",
    ),
    "stem_t1_residual": (
        3,
        29,
        ["{op: conv2d, name: stem, c: 16, s: 2, k: 3}", "{op: bottleneck, t: 1, c: 16, s: 1}"],
        "stem_block",
    ),
    # ShuffleNet units (the second fusable block kind): add and concat shortcuts, the
    # network's first unit (one group in its first 1x1 conv), no shuffle (g = 1), a 5x5 window.
    "shuffle_s1": (24, 10, ["{op: shuffle_unit, c: 24, groups: 3, s: 1}"], "block"),
    "shuffle_s2": (24, 11, ["{op: shuffle_unit, c: 48, groups: 3, s: 2}"], "block"),
    "shuffle_s2_first_group": (
        12,
        9,
        ["{op: shuffle_unit, c: 48, groups: 3, s: 2, first_group: true}"],
        "block",
    ),
    "shuffle_g1": (16, 8, ["{op: shuffle_unit, c: 16, groups: 1}"], "block"),
    "shuffle_g4_k5": (32, 9, ["{op: shuffle_unit, c: 32, groups: 4, k: 5}"], "block"),
    "stem_grouped_t1_residual": (
        6,
        21,
        [
            "{op: conv2d, name: stem, c: 24, s: 2, k: 3, groups: 3}",
            "{op: bottleneck, t: 1, c: 24, s: 1}",
        ],
        "stem_block",
    ),
}

# Every other op of the spec language, with branches, two outputs and two blocks.
BRANCHING = """\
name: c-branching
input: {resolution: [19, 23], channels: 5}
num_classes: 7
outputs: [logits, seg]
layers:
  - {op: conv2d, name: stem, c: 16, s: 2, k: 3}
  - {op: bottleneck, name: b1, t: 1, c: 16, s: 1}
  - {op: bottleneck, name: b2, t: 4, c: 24, s: 1, k: 5, dilation: 2}
  - {op: conv2d, name: grouped, from: b2, c: 24, k: 3, groups: 4, act: relu}
  - {op: dwconv, name: dwmul, from: b2, multiplier: 2, k: 3, s: 1}
  - {op: conv2d, name: strided1x1, from: dwmul, c: 24, k: 1, s: 2, bn: false}
  - {op: upsample, name: up_near, from: strided1x1, like: b2, mode: nearest}
  - {op: add, name: merged, from: [b2, grouped, up_near], act: relu6}
  - {op: avgpool, name: win, from: merged, k: 2, s: 2}
  - {op: upsample, name: up_bil, from: win, like: merged, mode: bilinear}
  - {op: concat, name: cat, from: [merged, up_bil, b2]}
  - {op: conv2d, name: seg, c: 3, k: 1, bn: false, act: linear}
  - {op: avgpool, name: gap, from: cat, global: true}
  - {op: fc, name: logits, c: num_classes}
"""


def block_graph(kind: str) -> Graph:
    channels, resolution, rows, _ = BLOCKS[kind]
    text = (
        f"name: c-{kind.replace('_', '-')}\n"
        f"input: {{resolution: {resolution}, channels: {channels}}}\n"
        "layers:\n" + "".join(f"  - {row}\n" for row in rows)
    )
    return lower(load_spec_text(text, f"<{kind}>"))


def random_input(graph: Graph, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(graph.input.shape).astype(np.float32)


def ort_outputs(graph: Graph, weights: dict[str, np.ndarray], x: np.ndarray) -> list[np.ndarray]:
    """ONNX Runtime on the ONNX target's model with the same weights (batch of one)."""
    files = emit(graph, "onnx", weights)
    model = next(v for k, v in files.items() if k.endswith(".onnx"))
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    return list(session.run(list(graph.outputs), {"input": x[None]}))


def compile_c(folder: Path, ident: str, weights_object: Path | None = None) -> Path:
    """Compile the generated sources in `folder` (the weights file unless an object is given)."""
    sources = [folder / "run.c", folder / f"{ident}.c"]
    sources.append(weights_object or folder / f"{ident}_weights.c")
    exe = folder / "run"
    subprocess.run(
        [GCC, *CFLAGS, "-o", str(exe), *map(str, sources), "-lm"],
        check=True,
        capture_output=True,
        text=True,
    )
    return exe


def run_c(exe: Path, x: np.ndarray, size: int) -> tuple[np.ndarray, int, int, int]:
    """(output, measured high-water mark, predicted peak, arena bytes) of one run."""
    folder = exe.parent
    x.astype("<f4").tofile(folder / "in.f32")
    done = subprocess.run(
        [str(exe), str(folder / "in.f32"), str(folder / "out.f32")],
        capture_output=True,
        text=True,
        check=True,
    )
    found = HIGH_WATER.search(done.stdout)
    assert found, done.stdout
    out = np.fromfile(folder / "out.f32", dtype="<f4")
    assert out.size == size
    hwm, predicted, arena = (int(v) for v in found.groups())
    return out, hwm, predicted, arena


def assert_close(c_out: np.ndarray, expected: Sequence[np.ndarray]) -> None:
    offset = 0
    for want in expected:
        got = c_out[offset : offset + want.size]
        offset += want.size
        scale = max(float(np.abs(want).max()), 1e-6)
        error = float(np.abs(got - want.ravel()).max()) / scale
        assert np.all(np.isfinite(got)), "NaN in the output: a kernel read a poisoned buffer"
        assert error <= TOLERANCE, f"relative error {error:.3g} above {TOLERANCE}"
    assert offset == c_out.size


def build_and_check(graph: Graph, split: int | str, folder: Path, seed: int = 0) -> int:
    """Emit, compile, run and compare one graph at one split; return the measured peak."""
    weights = init_weights(graph, seed)
    files = emit(graph, "c", weights, split=split)
    write_tree(folder, files)
    ident = spec_identifier(graph.name)
    exe = compile_c(folder, ident)
    x = random_input(graph)
    expected = ort_outputs(graph, weights, x)
    out, hwm, predicted, arena = run_c(exe, x, sum(e.size for e in expected))
    assert_close(out, expected)
    plan = plan_memory(graph, mode="fused", split=split, dtype="float32")
    assert hwm == predicted == plan.peak_bytes
    assert arena == plan.placement.arena_bytes
    return hwm


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("kind", list(BLOCKS))
def test_single_block_matches_onnxruntime(kind: str, split: int | str, tmp_path: Path) -> None:
    graph = block_graph(kind)
    plan = plan_memory(graph, mode="fused", split=split, dtype="float32")
    assert [f.kind for f in plan.fused_ops] == [BLOCKS[kind][3]]
    build_and_check(graph, split, tmp_path)


ONE_KERNEL_KIND = {
    "pointwise_only": [
        "{op: conv2d, name: a, c: 16, k: 1}",
        "{op: avgpool, global: true}",
        "{op: fc, c: 3}",
    ],
    "depthwise_only": ["{op: dwconv, name: a, k: 3, s: 2}"],
    "direct_only": ["{op: conv2d, name: a, c: 8, k: 3}", "{op: add, from: [a, a]}"],
    "pool_only": ["{op: avgpool, k: 2, s: 1}", "{op: upsample, factor: 2, mode: nearest}"],
}


@pytest.mark.parametrize("kind", list(ONE_KERNEL_KIND))
def test_only_the_helpers_a_spec_needs(kind: str, tmp_path: Path) -> None:
    """Shared helpers are emitted only when a kernel calls them (-Werror refuses unused static
    functions); found by the random-spec fuzzer."""
    text = (
        f"name: c-{kind.replace('_', '-')}\ninput: {{resolution: 7, channels: 8}}\n"
        "layers:\n" + "".join(f"  - {row}\n" for row in ONE_KERNEL_KIND[kind])
    )
    build_and_check(lower(load_spec_text(text, f"<{kind}>")), 1, tmp_path)


def test_overlapping_buffers_are_caught(tmp_path: Path) -> None:
    """The instrumentation is a check, not a copy of the plan: move the output onto the input
    (both live during the block) and the run reports an arena conflict."""
    graph = block_graph("t6_s2")
    files = emit(graph, "c", init_weights(graph, 0), split=2)
    source = files["c_t6_s2.c"]
    offsets = re.search(r"buffer_offset\[NUM_BUFFERS\] = \{\n    ([0-9, ]+),\n", source)
    assert offsets
    values = offsets.group(1).split(", ")  # T_input, T_block0, WS_block0
    assert len(values) == 3 and values[0] != values[1]
    moved = ", ".join([values[0], values[0], values[2]])
    files["c_t6_s2.c"] = source.replace(offsets.group(1), moved, 1)
    write_tree(tmp_path, files)
    exe = compile_c(tmp_path, "c_t6_s2")
    random_input(graph).astype("<f4").tofile(tmp_path / "in.f32")
    done = subprocess.run(
        [str(exe), str(tmp_path / "in.f32"), str(tmp_path / "out.f32")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    assert "arena conflict" in done.stderr


@pytest.mark.parametrize("split", [1, "n"])
def test_branching_spec_matches_onnxruntime(split: int | str, tmp_path: Path) -> None:
    graph = lower(load_spec_text(BRANCHING, "<branching>"))
    ops = {n.op for n in graph.ops()}
    assert ops == {"conv2d", "add", "concat", "upsample", "avgpool", "fc"}
    build_and_check(graph, split, tmp_path)


def test_mobilenet_v2_matches_onnxruntime_at_every_split(tmp_path: Path) -> None:
    """The whole network at splits 1, 2, 4 and n; the (large) weights file is the same at every
    split, so it is compiled once and linked four times."""
    graph = lower(load_spec(str(MNV2)))
    weights = init_weights(graph, 0)
    ident = spec_identifier(graph.name)
    x = random_input(graph)
    expected = ort_outputs(graph, weights, x)
    weights_source = None
    weights_object = tmp_path / "weights.o"
    peaks = {}
    for split in SPLITS:
        folder = tmp_path / f"split_{split}"
        files = emit(graph, "c", weights, split=split)
        if weights_source is None:
            weights_source = files[f"{ident}_weights.c"]
            write_tree(folder, files)
            subprocess.run(
                [
                    GCC,
                    *CFLAGS,
                    "-O0",
                    "-c",
                    str(folder / f"{ident}_weights.c"),
                    "-o",
                    str(weights_object),
                ],
                check=True,
                capture_output=True,
                text=True,
            )
        else:
            assert files[f"{ident}_weights.c"] == weights_source
            write_tree(folder, {k: v for k, v in files.items() if not k.endswith("_weights.c")})
        exe = compile_c(folder, ident, weights_object)
        out, hwm, predicted, _ = run_c(exe, x, 1000)
        assert_close(out, expected)
        plan = plan_memory(graph, mode="fused", split=split, dtype="float32")
        assert hwm == predicted == plan.peak_bytes
        peaks[split] = hwm
    # Finer splits need less memory: the point of the split.
    assert peaks[1] > peaks[2] > peaks[4] > peaks["n"]


def test_report_and_build_agree_on_the_peak(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """`archspec report --memory-mode fused --split T` prints the number the C header predicts
    (and the tests above measure)."""
    graph = block_graph("t6_s2")
    spec = tmp_path / "block.yaml"
    spec.write_text(
        "name: c-t6-s2\ninput: {resolution: 15, channels: 16}\nlayers:\n"
        "  - {op: bottleneck, t: 6, c: 24, s: 2}\n"
    )
    for split in (2, "n"):
        assert (
            cli_main(
                [
                    "report",
                    str(spec),
                    "--format",
                    "json",
                    "--memory-mode",
                    "fused",
                    "--split",
                    str(split),
                    "--activation-dtype",
                    "float32",
                ]
            )
            == 0
        )
        reported = json.loads(capsys.readouterr().out)["memory"]["peak_bytes"]
        files = emit(graph, "c", init_weights(graph, 0), split=split)
        header = files["c_t6_s2.h"]
        found = re.search(r"#define C_T6_S2_PREDICTED_PEAK_BYTES (\d+)", header)
        assert found and int(found.group(1)) == reported


def test_cli_build_writes_the_c_sources(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    spec = tmp_path / "block.yaml"
    spec.write_text(
        "name: c-cli\ninput: {resolution: 8, channels: 8}\nlayers:\n"
        "  - {op: bottleneck, t: 6, c: 8, s: 1}\n"
    )
    out = tmp_path / "out"
    assert cli_main(["build", str(spec), "--target", "c", "--split", "n", "-o", str(out)]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["Makefile", "c_cli.c", "c_cli.h", "c_cli_weights.c", "run.c", "weights.npz"]
    assert "split n" in (out / "c_cli.c").read_text()
    if shutil.which("make") is None:
        return
    # The generated Makefile builds the run program, which agrees with ONNX Runtime.
    subprocess.run(
        ["make", "-s", "-C", str(out), "CFLAGS=-std=c99 -Wall -Wextra -Werror"],
        check=True,
        capture_output=True,
        text=True,
    )
    graph = lower(load_spec(str(spec)))
    x = random_input(graph)
    out_c, hwm, predicted, _ = run_c(out / "run", x, graph.node(graph.outputs[0]).shape.numel)
    assert_close(out_c, ort_outputs(graph, init_weights(graph, 0), x))
    assert hwm == predicted


@pytest.mark.parametrize("isa", [(), ("-mavx2", "-mfma")])
def test_compiles_cleanly_at_o3(isa: tuple[str, ...], tmp_path: Path) -> None:
    """The Makefile builds with -O3 (and -march=native on request): no warnings there either,
    for both register-tile sets (baseline and AVX2/AVX-512)."""
    graph = lower(load_spec_text(BRANCHING, "<branching>"))
    files = emit(graph, "c", init_weights(graph, 0), split=2)
    write_tree(tmp_path, files)
    subprocess.run(
        [
            GCC,
            "-std=c99",
            "-O3",
            "-ffp-contract=fast",
            *isa,
            "-Wall",
            "-Wextra",
            "-Werror",
            "-c",
            str(tmp_path / "c_branching.c"),
            "-o",
            str(tmp_path / "net.o"),
        ],
        check=True,
        capture_output=True,
        text=True,
    )


def test_generation_is_deterministic() -> None:
    graph = lower(load_spec_text(BRANCHING, "<branching>"))
    first = emit(graph, "c", init_weights(graph, 3), split=2)
    again = emit(
        lower(load_spec_text(BRANCHING, "<branching>")), "c", init_weights(graph, 3), split=2
    )
    assert first == again
    other_seed = emit(graph, "c", init_weights(graph, 4), split=2)
    assert other_seed["c_branching.c"] == first["c_branching.c"]
    assert other_seed["c_branching_weights.c"] != first["c_branching_weights.c"]


def test_one_kernel_per_distinct_block_named_after_its_first_user(golden) -> None:
    """The generated MobileNetV2 (split 4) against its golden files, and its kernel structure."""
    graph = lower(load_spec(str(MNV2)))
    files = emit(graph, "c", init_weights(graph, 0), split=4)
    ident = spec_identifier(graph.name)
    source = files[f"{ident}.c"]
    golden("c/mnv2_1.0.split4.c", source)
    golden("c/mnv2_1.0.h", files[f"{ident}.h"])
    digest = hashlib.sha256(files[f"{ident}_weights.c"].encode()).hexdigest()
    golden("c/mnv2_1.0.seed0.weights.sha256", digest + "\n")
    kernels = re.findall(r"^static void (k_\w+)\(", source, flags=re.M)
    # The stem block, one kernel per distinct block configuration, the last conv, the pool, fc.
    assert kernels[0] == "k_stem_block0"
    assert kernels[-3:] == ["k_last_conv", "k_pool", "k_classifier"]
    blocks = [k for k in kernels if k.startswith("k_block")]
    # 16 blocks after the stem block; the repeats of a stage share their stage's second kernel.
    assert blocks == [
        "k_block1",
        "k_block2",
        "k_block3",
        "k_block4",
        "k_block6",
        "k_block7",
        "k_block10",
        "k_block11",
        "k_block13",
        "k_block14",
        "k_block16",
    ]
    assert re.search(r"k_block7\(A\(T_block8\)", source)
    comment = source[: source.index("static void k_block7(")].rsplit("/*", 1)[1]
    assert comment.startswith(" block7 (also block8, block9): bottleneck 14x14x64 -> 14x14x64")
    assert "Split 4: 4 groups of 96 channels" in comment
    assert f"workspace 14x14x96 + 14x14x96 floats = {2 * 14 * 14 * 96 * 4} bytes" in comment


@pytest.mark.parametrize("split", [0, -2, "x", 2.5, True])
def test_bad_split_is_refused_by_the_api(split: object) -> None:
    # the CLI parses --split once (archspec.options.parse_split); the API checks its values
    graph = block_graph("t6_s2")
    with pytest.raises(ValueError, match="split must be"):
        emit(graph, "c", init_weights(graph, 0), split=split)


def test_unknown_option_is_a_spec_error() -> None:
    graph = block_graph("t6_s2")
    with pytest.raises(SpecError):
        emit(graph, "c", init_weights(graph, 0), dtype="float16")
