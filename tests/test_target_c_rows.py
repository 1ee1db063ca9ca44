"""The C target's row-tiled fused blocks (`--row-tile R`), compiled with gcc -Werror and
compared with ONNX Runtime like tests/test_target_c.py (whose helpers this file reuses).

Each fused block works in bands of R output rows: the expansion (or stem) workspace holds only
the input rows a band's depthwise reads, so the kernels index bands, slide the rows two bands
share and handle the padding at the top and bottom bands. Every case runs with buffer poisoning
(a read outside the rows a band computed gives NaN) and checks the measured high-water mark
against the planner's row-tiled peak.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from archspec.analysis.memory import plan_memory
from archspec.cli import main as cli_main
from archspec.emit import emit
from archspec.graph import Graph
from archspec.lower import lower
from archspec.names import spec_identifier
from archspec.output import write_tree
from archspec.spec import load_spec, load_spec_text
from archspec.weights import init_weights
from tests.test_target_c import (
    BLOCKS,
    BRANCHING,
    CFLAGS,
    GCC,
    MNV2,
    assert_close,
    block_graph,
    compile_c,
    ort_outputs,
    random_input,
    run_c,
)

pytestmark = pytest.mark.skipif(GCC is None, reason="needs gcc")


def build_rows(graph: Graph, split: int | str, row_tile: int, folder: Path) -> int:
    """Emit with a row tile, compile, run, compare with ONNX Runtime; the measured peak."""
    weights = init_weights(graph, 0)
    write_tree(folder, emit(graph, "c", weights, split=split, row_tile=row_tile))
    exe = compile_c(folder, spec_identifier(graph.name))
    x = random_input(graph)
    expected = ort_outputs(graph, weights, x)
    out, hwm, predicted, arena = run_c(exe, x, sum(e.size for e in expected))
    assert_close(out, expected)
    plan = plan_memory(graph, mode="fused", split=split, dtype="float32", row_tile=row_tile)
    assert hwm == predicted == plan.peak_bytes
    assert arena == plan.placement.arena_bytes
    return hwm


@pytest.mark.parametrize("row_tile", [1, 2])
@pytest.mark.parametrize("split", [1, 4, "n"])
@pytest.mark.parametrize("kind", list(BLOCKS))
def test_row_tiled_block_matches_onnxruntime(
    kind: str, split: int | str, row_tile: int, tmp_path: Path
) -> None:
    graph = block_graph(kind)
    tiled = build_rows(graph, split, row_tile, tmp_path)
    untiled = plan_memory(graph, mode="fused", split=split, dtype="float32").peak_bytes
    assert tiled < untiled


def test_row_tiled_branching_spec_matches_onnxruntime(tmp_path: Path) -> None:
    """Row-tiled blocks beside untiled ops: the grouped 3x3 conv (and the dwconv with a
    multiplier) need direct_conv() while the stem block needs direct_rows(); no untiled op is
    depthwise, so depthwise() is left out (an unused static function fails -Werror)."""
    graph = lower(load_spec_text(BRANCHING, "<branching>"))
    build_rows(graph, 4, 2, tmp_path)
    source = (tmp_path / "c_branching.c").read_text()
    for helper in ("direct_conv", "direct_rows", "depthwise_rows"):
        assert re.search(rf"^static void {helper}\(", source, flags=re.M), helper
    assert not re.search(r"^static void depthwise\(", source, flags=re.M)


def test_row_tiled_block_beside_an_untiled_depthwise_conv(tmp_path: Path) -> None:
    """A dwconv row outside any block needs depthwise() beside the blocks' depthwise_rows()."""
    text = (
        "name: c-rows-dw\ninput: {resolution: 9, channels: 8}\nlayers:\n"
        "  - {op: dwconv, name: a, k: 3, s: 1}\n"
        "  - {op: bottleneck, t: 6, c: 8, s: 1}\n"
    )
    build_rows(lower(load_spec_text(text, "<rows-dw>")), 2, 1, tmp_path)
    source = (tmp_path / "c_rows_dw.c").read_text()
    for helper in ("depthwise", "depthwise_rows"):
        assert re.search(rf"^static void {helper}\(", source, flags=re.M), helper


def test_mobilenet_v2_row_tiled_at_split_4(tmp_path: Path) -> None:
    """The whole network at split 4, R = 1 (the weights compiled at -O0: they need no
    optimisation and are large)."""
    graph = lower(load_spec(str(MNV2)))
    weights = init_weights(graph, 0)
    ident = spec_identifier(graph.name)
    write_tree(tmp_path, emit(graph, "c", weights, split=4, row_tile=1))
    weights_object = tmp_path / "weights.o"
    subprocess.run(
        [
            GCC,
            *CFLAGS,
            "-O0",
            "-c",
            str(tmp_path / f"{ident}_weights.c"),
            "-o",
            str(weights_object),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    exe = compile_c(tmp_path, ident, weights_object)
    x = random_input(graph)
    out, hwm, predicted, _ = run_c(exe, x, 1000)
    assert_close(out, ort_outputs(graph, weights, x))
    plan = plan_memory(graph, mode="fused", split=4, dtype="float32", row_tile=1)
    assert hwm == predicted == plan.peak_bytes
    op_peak = plan_memory(graph, mode="op", dtype="float32").peak_bytes
    assert op_peak >= 4 * hwm


def test_row_tiled_kernels_are_described_and_shared() -> None:
    graph = lower(load_spec(str(MNV2)))
    files = emit(graph, "c", init_weights(graph, 0), split=4, row_tile=2)
    source = files[f"{spec_identifier(graph.name)}.c"]
    assert "split 4, row tile 2" in source
    assert "--split 4 --row-tile 2" in source
    kernels = re.findall(r"^static void (k_\w+)\(", source, flags=re.M)
    untiled = emit(graph, "c", init_weights(graph, 0), split=4)[f"{spec_identifier(graph.name)}.c"]
    # The same kernels (one per distinct configuration) as without row tiling.
    assert kernels == re.findall(r"^static void (k_\w+)\(", untiled, flags=re.M)
    comment = source[: source.index("static void k_block1(")].rsplit("/*", 1)[1]
    # block1: 112x112x16 -> 56x56x24, 96 hidden, split 4 (24 channels), stride 2, R = 2: the
    # band is (2 - 1)·2 + 3 = 5 rows of 112 at the input, 2 rows of 56 at the output.
    assert "Row tile 2: bands of 2 output rows, reading 5 rows of the expansion" in comment
    ws = (5 * 112 * 24 + 2 * 56 * 24) * 4
    assert f"workspace 5x112x24 + 2x56x24 floats = {ws} bytes." in comment
    assert "static void depthwise(" not in source  # every depthwise is inside a tiled block


def test_cli_row_tile(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    spec = tmp_path / "block.yaml"
    spec.write_text(
        "name: c-t6-s2\ninput: {resolution: 15, channels: 16}\nlayers:\n"
        "  - {op: bottleneck, t: 6, c: 24, s: 2}\n"
    )
    report = ["report", str(spec), "--format", "json", "--memory-mode", "fused", "--split", "4"]
    assert cli_main([*report, "--row-tile", "2"]) == 0
    memory = json.loads(capsys.readouterr().out)["memory"]
    assert memory["row_tile"] == 2
    out = tmp_path / "out"
    build = ["build", str(spec), "--target", "c", "--split", "4", "--row-tile", "2"]
    assert cli_main([*build, "-o", str(out)]) == 0
    capsys.readouterr()
    header = (out / "c_t6_s2.h").read_text()
    found = re.search(r"#define C_T6_S2_PREDICTED_PEAK_BYTES (\d+)", header)
    assert found and int(found.group(1)) == memory["peak_bytes"]
    # Op mode has no blocks to tile; other targets have no row-tiled kernels.
    assert cli_main(["report", str(spec), "--row-tile", "2"]) == 2
    assert "--row-tile" in capsys.readouterr().err
    elsewhere = tmp_path / "onnx"
    onnx = ["build", str(spec), "--target", "onnx", "--row-tile", "1", "-o", str(elsewhere)]
    assert cli_main(onnx) == 2
    assert "--row-tile" in capsys.readouterr().err
    assert not elsewhere.exists()


@pytest.mark.parametrize("row_tile", [0, -1, "x", 1.5, True])
def test_bad_row_tile_is_refused_by_the_api(row_tile: object) -> None:
    # the CLI parses --row-tile once (archspec.options.parse_row_tile); the API checks values
    graph = block_graph("t6_s2")
    with pytest.raises(ValueError, match="row_tile must be"):
        emit(graph, "c", init_weights(graph, 0), row_tile=row_tile)
