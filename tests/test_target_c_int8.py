"""The C target in int8: compiled with gcc -Werror, run, and compared bit for bit with the int8
numpy reference (`archspec.quant.reference.int8_forward`) on the same quantized input.

Every case compiles with `-std=c99 -pedantic -O2 -Wall -Wextra -Werror -DARCHSPEC_POISON` (the
runner fills buffers with a byte pattern when they are allocated and freed, so a kernel reading
memory the plan does not give it changes the output). The high-water mark the program measures
must equal the planner's int8 peak for the same split and row tile.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from archspec.analysis.memory import int8_band, plan_memory
from archspec.errors import SpecError
from archspec.graph import Graph
from archspec.lower import lower
from archspec.names import spec_identifier
from archspec.quant.calibrate import calibrate, calibration_inputs
from archspec.quant.params import QParams
from archspec.quant.reference import int8_forward, quantize_tensor
from archspec.spec import load_spec_text
from archspec.targets.c.int8 import render_int8
from archspec.templating import environment
from archspec.weights import init_weights

GCC = shutil.which("gcc")
pytestmark = pytest.mark.skipif(GCC is None, reason="needs gcc")

ROOT = Path(__file__).resolve().parent.parent
CFLAGS = ("-std=c99", "-pedantic", "-O2", "-Wall", "-Wextra", "-Werror", "-DARCHSPEC_POISON")
HIGH_WATER = re.compile(r"high-water mark: (\d+) bytes \(predicted peak (\d+), arena (\d+)\)")
SPLITS: tuple[int | str, ...] = (1, 2, 4, "n")
ROW_TILES: tuple[int | None, ...] = (None, 1, 2)

# One spec per kind of fused op: (input channels, resolution, rows, expected fused kind).
BLOCKS = {
    "t6_s1_residual": (24, 14, ["{op: bottleneck, t: 6, c: 24, s: 1}"], "block"),
    "t6_s1_no_residual": (16, 14, ["{op: bottleneck, t: 6, c: 24, s: 1}"], "block"),
    "t6_s2": (16, 15, ["{op: bottleneck, t: 6, c: 24, s: 2}"], "block"),
    "t1_s1_residual": (16, 12, ["{op: bottleneck, t: 1, c: 16, s: 1}"], "block"),
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
    "stem_grouped_t1_residual": (
        6,
        21,
        [
            "{op: conv2d, name: stem, c: 24, s: 2, k: 3, groups: 3}",
            "{op: bottleneck, t: 1, c: 24, s: 1}",
        ],
        "stem_block",
    ),
    "shuffle_s1_add": (24, 10, ["{op: shuffle_unit, c: 24, groups: 3, s: 1}"], "block"),
    "shuffle_s2_concat": (24, 11, ["{op: shuffle_unit, c: 48, groups: 3, s: 2}"], "block"),
    "shuffle_s2_first_group": (
        12,
        9,
        ["{op: shuffle_unit, c: 48, groups: 3, s: 2, first_group: true}"],
        "block",
    ),
    "shuffle_g1": (16, 8, ["{op: shuffle_unit, c: 16, groups: 1}"], "block"),
    "shuffle_g4_k5": (32, 9, ["{op: shuffle_unit, c: 32, groups: 4, k: 5}"], "block"),
}

# Every unfused op int8 supports, with branches and two outputs: standard, grouped, depthwise
# (dilated), strided 1x1 and biased convs, a 3-way add, max pool, windowed average pools
# (counting padding or not), shuffle, a concat of four inputs at different scales, global pool
# and fc.
OPS = """\
name: q-ops
input: {resolution: [13, 11], channels: 6}
num_classes: 5
outputs: [logits, cat]
layers:
  - {op: conv2d, name: stem, c: 24, s: 2, k: 3}
  - {op: conv2d, name: grouped, c: 24, k: 3, groups: 3, act: relu}
  - {op: dwconv, name: dw, from: stem, k: 5, s: 1, dilation: 2}
  - {op: conv2d, name: biased1x1, from: dw, c: 24, k: 1, bn: false, act: linear}
  - {op: conv2d, name: strided1x1, from: stem, c: 12, k: 1, s: 2, bn: false, act: linear}
  - {op: add, name: merged, from: [stem, grouped, biased1x1], act: relu6}
  - {op: maxpool, name: mp, from: merged, k: 3, s: 2}
  - {op: avgpool, name: win, from: merged, k: 3, s: 2, count_pad: true}
  - {op: avgpool, name: win_real, from: merged, k: 3, s: 2}
  - {op: shuffle, name: shuf, from: win, groups: 3}
  - {op: concat, name: cat, from: [mp, shuf, win_real, strided1x1]}
  - {op: avgpool, name: gap, from: cat, global: true}
  - {op: fc, name: logits, c: num_classes, act: relu}
"""


def block_graph(kind: str) -> Graph:
    channels, resolution, rows, _ = BLOCKS[kind]
    text = (
        f"name: q-{kind.replace('_', '-')}\n"
        f"input: {{resolution: {resolution}, channels: {channels}}}\n"
        "layers:\n" + "".join(f"  - {row}\n" for row in rows)
    )
    return lower(load_spec_text(text, f"<{kind}>"))


def mnv2_graph(resolution: int, width: float) -> Graph:
    text = (ROOT / "specs" / "mnv2_1.0.yaml").read_text(encoding="utf-8")
    text = text.replace("resolution: 224", f"resolution: {resolution}")
    text = text.replace("width_multiplier: 1.0", f"width_multiplier: {width}")
    return lower(load_spec_text(text, "mnv2"))


def quantized(graph: Graph) -> QParams:
    weights = init_weights(graph, 0)
    return calibrate(graph, weights, calibration_inputs(graph, 4, 0))


def write(folder: Path, files: dict[str, str | bytes]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(str(text), encoding="utf-8")


def compile_int8(folder: Path, ident: str, weights_object: Path | None = None) -> Path:
    sources = [
        folder / "run.c",
        folder / f"{ident}.c",
        weights_object or folder / f"{ident}_weights.c",
    ]
    exe = folder / "run"
    done = subprocess.run(
        [GCC, *CFLAGS, "-o", str(exe), *map(str, sources)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[:4000]
    return exe


def run_int8(exe: Path, x: np.ndarray, size: int) -> tuple[np.ndarray, int, int, int]:
    folder = exe.parent
    x.astype(np.int8).tofile(folder / "in.i8")
    done = subprocess.run(
        [str(exe), str(folder / "in.i8"), str(folder / "out.i8")],
        capture_output=True,
        text=True,
        check=True,
    )
    found = HIGH_WATER.search(done.stdout)
    assert found, done.stdout
    out = np.fromfile(folder / "out.i8", dtype=np.int8)
    assert out.size == size
    hwm, predicted, arena = (int(v) for v in found.groups())
    return out, hwm, predicted, arena


def check(
    graph: Graph,
    qp: QParams,
    split: int | str,
    row_tile: int | None,
    folder: Path,
    weights_object: Path | None = None,
) -> int:
    """Render, compile, run; bit-identical to int8_forward, high-water mark == int8 peak."""
    files = render_int8(graph, {}, environment(), split=split, row_tile=row_tile, qparams=qp)
    write(folder, files)
    ident = spec_identifier(graph.name)
    exe = compile_int8(folder, ident, weights_object)
    x = quantize_tensor(calibration_inputs(graph, 1, 99)[0], qp.activations[graph.input.name])
    ref = int8_forward(graph, qp, x)
    want = np.concatenate([ref[o].ravel() for o in graph.outputs])
    out, hwm, predicted, _ = run_int8(exe, x, want.size)
    mismatch = int(np.count_nonzero(out != want))
    assert mismatch == 0, f"{mismatch} of {want.size} values differ from int8_forward"
    plan = plan_memory(graph, mode="fused", split=split, dtype="int8", row_tile=row_tile)
    assert hwm == predicted == plan.peak_bytes
    return hwm


@pytest.mark.parametrize("row_tile", ROW_TILES, ids=lambda r: f"rows{r}")
@pytest.mark.parametrize("split", SPLITS, ids=lambda s: f"split{s}")
@pytest.mark.parametrize("kind", list(BLOCKS))
def test_every_block_kind_is_bit_identical(
    kind: str, split: int | str, row_tile: int | None, tmp_path: Path
) -> None:
    graph = block_graph(kind)
    plan = plan_memory(graph, mode="fused", split=split, dtype="int8", row_tile=row_tile)
    assert BLOCKS[kind][3] in {f.kind for f in plan.fused_ops}
    check(graph, quantized(graph), split, row_tile, tmp_path)


def test_every_unfused_op_is_bit_identical(tmp_path: Path) -> None:
    graph = lower(load_spec_text(OPS, "<ops>"))
    qp = quantized(graph)
    acts = qp.activations
    assert len({acts[i] for i in graph.node("cat").inputs}) > 1  # the concat requantizes
    check(graph, qp, 1, None, tmp_path)


@pytest.mark.parametrize(("resolution", "width"), [(96, 0.35), (64, 1.0)])
def test_mobilenet_v2_is_bit_identical_at_every_split(
    resolution: int, width: float, tmp_path: Path
) -> None:
    graph = mnv2_graph(resolution, width)
    qp = quantized(graph)
    ident = spec_identifier(graph.name)
    first = tmp_path / "first"
    write(first, render_int8(graph, {}, environment(), qparams=qp))
    weights_object = tmp_path / "weights.o"
    subprocess.run(
        [
            GCC,
            *CFLAGS[:-2],
            "-O0",
            "-c",
            str(first / f"{ident}_weights.c"),
            "-o",
            str(weights_object),
        ],
        check=True,
    )
    peaks = {}
    for split, row_tile in ((1, None), (2, None), (4, None), ("n", None), (4, 1), (4, 2)):
        folder = tmp_path / f"s{split}_r{row_tile}"
        peaks[split, row_tile] = check(graph, qp, split, row_tile, folder, weights_object)
    assert peaks[4, 1] < peaks[4, None]


def test_header_exposes_the_scales_and_zero_points() -> None:
    graph = lower(load_spec_text(OPS, "<ops>"))
    qp = quantized(graph)
    files = render_int8(graph, {}, environment(), qparams=qp)
    header = str(files["q_ops.h"])
    values = dict(re.findall(r"#define Q_OPS_(\w+) (.+)", header))
    tin, tout = qp.activations["input"], qp.activations["logits"]
    assert float(values["INPUT_SCALE"].rstrip("f")) == pytest.approx(tin.scale, rel=1e-7)
    assert int(values["INPUT_ZERO_POINT"].strip("()")) == tin.zero_point
    assert float(values["OUTPUT_SCALE"].rstrip("f")) == pytest.approx(tout.scale, rel=1e-7)
    assert int(values["OUTPUT_ZERO_POINT"].strip("()")) == tout.zero_point
    assert int(values["OUTPUT1_ZERO_POINT"].strip("()")) == qp.activations["cat"].zero_point
    assert "int q_ops_run(const int8_t *input, int8_t *output);" in header


def test_generation_is_deterministic() -> None:
    graph = block_graph("shuffle_s2_concat")
    qp = quantized(graph)
    a = render_int8(graph, {}, environment(), split=2, row_tile=1, qparams=qp)
    b = render_int8(graph, {}, environment(), split=2, row_tile=1, qparams=quantized(graph))
    assert a == b


def test_split_blocks_hold_their_int32_sums() -> None:
    graph = block_graph("t6_s1_residual")
    out = graph.node("block0_add").shape
    row_sums = 4 * out.w * out.c  # one output row of int32 sums
    extras = []
    for split in (2, 4, "n"):
        f = plan_memory(graph, mode="fused", split=split, dtype="int8").op("block0")
        workspace = plan_memory(graph, mode="fused", split=split, dtype="int8").problem.workspace
        rows, extra, parts = int8_band(graph, f)
        assert workspace["block0"] == f.workspace_elems + extra
        assert sum(parts) + rows * row_sums <= workspace["block0"]
        assert extra == 0 or rows == 1
        extras.append(extra)
        tiled = plan_memory(graph, mode="fused", split=split, dtype="int8", row_tile=1)
        assert int8_band(graph, tiled.op("block0"))[:2] == (1, row_sums)
        assert tiled.problem.workspace["block0"] == tiled.op("block0").workspace_elems + row_sums
    assert (
        extras[0] == 0 and extras[-1] > 0
    )  # split n: one channel's rows hold less than a row of sums
    one = plan_memory(graph, mode="fused", split=1, dtype="int8")
    assert one.problem.workspace["block0"] == one.op("block0").workspace_elems
    # float32 plans are unchanged: no sums
    f4 = plan_memory(graph, mode="fused", split=4, dtype="float32")
    assert f4.problem.workspace["block0"] == 4 * f4.op("block0").workspace_elems


@pytest.mark.parametrize(
    ("row", "what"),
    [
        ("{op: conv2d, c: 8, k: 3, act: hardswish}", "activation hardswish"),
        ("{op: upsample, factor: 2}", "op upsample"),
    ],
)
def test_unsupported_ops_are_refused(row: str, what: str) -> None:
    graph = lower(
        load_spec_text(
            f"name: q-bad\ninput: {{resolution: 8, channels: 4}}\nlayers:\n  - {row}\n", "bad.yaml"
        )
    )
    qp = QParams({}, {})
    with pytest.raises(SpecError, match=f"int8 does not support {what} yet") as err:
        render_int8(graph, {}, environment(), qparams=qp)
    assert err.value.location.file == "bad.yaml" and err.value.location.line == 4


def test_the_c_targets_render_takes_quantize() -> None:
    from archspec.emit import emit

    graph = block_graph("t6_s2")
    weights = init_weights(graph, 0)
    qp = calibrate(graph, weights, calibration_inputs(graph, 4, 0))
    via_target = emit(graph, "c", weights, split=2, quantize="int8", qparams=qp)
    direct = render_int8(graph, weights, environment(), split=2, qparams=qp)
    assert {k: via_target[k] for k in direct} == direct
    default = emit(graph, "c", weights, quantize="int8")  # calibrated on the default inputs
    assert "int8_t *output" in str(default[f"{spec_identifier(graph.name)}.h"])
    with pytest.raises(SpecError, match="no int4 build"):
        emit(graph, "c", weights, quantize="int4")
    with pytest.raises(SpecError, match="int8 builds only"):
        emit(graph, "c", weights, qparams=qp)


@pytest.mark.parametrize(("split", "row_tile"), [(1, None), (4, 1), ("n", None)])
def test_shufflenet_is_bit_identical(
    split: int | str, row_tile: int | None, tmp_path: Path
) -> None:
    """The paper's ShuffleNet v1 (1.5x, g = 3) at 64²: stem conv, max pool, 16 units of both
    kinds, global pool, fc without bias."""
    text = (ROOT / "specs" / "paper" / "shufflenet_g3_1.5x.yaml").read_text(encoding="utf-8")
    graph = lower(load_spec_text(text.replace("resolution: 224", "resolution: 64"), "shufflenet"))
    check(graph, quantized(graph), split, row_tile, tmp_path)
