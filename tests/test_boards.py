"""The boards table, the fit of a network on a board, and `--board` on report and build.

No cross toolchain needed here (tests/test_board_qemu.py builds and runs on QEMU)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from archspec.analysis.memory import plan_memory
from archspec.boards import ENV_VAR, get_board, load_boards, shipped_boards
from archspec.boards_fit import (
    INT8_CHANNEL_BYTES,
    RUNTIME_STATIC_BYTES,
    board_fit,
)
from archspec.cli import main as cli_main
from archspec.errors import SpecError
from archspec.lower import lower
from archspec.spec import load_spec
from archspec.verify import resolve_weights

MNV2 = str(Path(__file__).parent.parent / "specs" / "mnv2_1.0.yaml")
SMALL = ["width_multiplier=0.35", "resolution=64", "num_classes=10"]

GOOD_BOARD = """\
boards:
  tiny_m7:
    description: a made-up board
    core: cortex-m7
    cflags: [-mcpu=cortex-m7, -mthumb, -mfpu=fpv5-sp-d16, -mfloat-abi=hard]
    flash: {base: 0x08000000, size: 256K}
    sram: {base: 0x20000000, size: 64K}
    reserve: {stack: 4K, heap: 2048}
"""


def small_graph():
    return lower(load_spec(MNV2, SMALL))


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "boards.yaml"
    path.write_text(text)
    return str(path)


# -- the table ---------------------------------------------------------------------------------


def test_shipped_boards_have_the_issue_sizes() -> None:
    boards = shipped_boards()
    f7, h7 = boards["stm32f746"], boards["stm32h743"]
    assert (f7.core, f7.sram.size, f7.flash.size) == ("cortex-m7", 320 * 1024, 1024 * 1024)
    assert (h7.core, h7.sram.size, h7.flash.size) == ("cortex-m7", 512 * 1024, 2 * 1024 * 1024)
    assert f7.sram.base == 0x20000000 and h7.sram.base == 0x24000000
    assert "-mfpu=fpv5-sp-d16" in f7.cflags and "-mfpu=fpv5-d16" in h7.cflags
    assert f7.reserve_bytes == f7.stack_bytes + f7.heap_bytes > 0


def test_user_file_extends_and_replaces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(
        tmp_path, GOOD_BOARD + GOOD_BOARD.replace("tiny_m7", "stm32f746").split("\n", 1)[1]
    )
    boards = load_boards(path)
    assert boards["tiny_m7"].sram.size == 64 * 1024 and boards["tiny_m7"].heap_bytes == 2048
    assert boards["stm32f746"].flash.size == 256 * 1024  # replaced by name
    assert boards["stm32h743"].source == "boards.yaml"
    monkeypatch.setenv(ENV_VAR, path)
    assert get_board("tiny_m7").source == path
    with pytest.raises(SpecError, match="unknown board 'nope'.*stm32f746"):
        get_board("nope")


HOSTILE = [
    ("boards: []\n", 1, "boards", "expected a mapping of board names"),
    ("[1, 2]\n", 1, None, "expected a mapping"),
    ("boards: {}\nextra: 1\n", 2, None, "unknown key 'extra'"),
    (GOOD_BOARD.replace("tiny_m7", "../../etc"), 2, "boards", "board name"),
    (GOOD_BOARD.replace("tiny_m7", "Tiny"), 2, "boards", "board name"),
    (GOOD_BOARD.replace("    core: cortex-m7\n", ""), 3, "boards.tiny_m7", "missing key 'core'"),
    (GOOD_BOARD.replace("core:", "cpu:"), 4, "boards.tiny_m7", "unknown key 'cpu'"),
    (GOOD_BOARD.replace("-mthumb", "'-mthumb; rm -rf /'"), 5, "cflags[1]", "compiler flag"),
    (GOOD_BOARD.replace("-mthumb", "$(shell id)"), 5, "cflags[1]", "compiler flag"),
    (GOOD_BOARD.replace("-mthumb", "-O0"), 5, "cflags[1]", "compiler flag"),
    (GOOD_BOARD.replace("-mthumb", "'-mthumb\n  -x'"), 5, "cflags[1]", "compiler flag"),
    (
        GOOD_BOARD.replace("[-mcpu=cortex-m7, -mthumb, -mfpu=fpv5-sp-d16, -mfloat-abi=hard]", "[]"),
        5,
        "cflags",
        "list of -m flags",
    ),
    (GOOD_BOARD.replace("core: cortex-m7", "core: 'm7 $(x)'"), 4, "core", "core name"),
    (GOOD_BOARD.replace("size: 64K", "size: 64Q"), 7, "sram.size", "byte count"),
    (GOOD_BOARD.replace("size: 64K", "size: -64"), 7, "sram.size", "at least"),
    (GOOD_BOARD.replace("size: 64K", "size: 1028"), 7, "sram.size", "multiple of 8"),
    (GOOD_BOARD.replace("size: 64K", "size: 99999999999"), 7, "sram.size", "below 4 GiB"),
    (GOOD_BOARD.replace("size: 64K", "size: true"), 7, "sram.size", "byte count"),
    (GOOD_BOARD.replace("base: 0x20000000", "base: 0xFFFFF000"), 7, "sram.size", "past the 32-bit"),
    (GOOD_BOARD.replace("base: 0x20000000", "base: 0x08010000"), 7, "sram", "overlaps"),
    (GOOD_BOARD.replace("base: 0x20000000", "base: 0x20000001"), 7, "sram.base", "aligned"),
    (GOOD_BOARD.replace("base: 0x20000000", "base: '0x2'"), 7, "sram.base", "an address"),
    (GOOD_BOARD.replace("stack: 4K", "stack: 64K"), 8, "reserve", "leaves nothing"),
    (GOOD_BOARD.replace("stack: 4K", "stack: 16"), 8, "reserve.stack", "at least 1,024"),
    (GOOD_BOARD.replace("heap: 2048", "heap: 2048, extra: 1"), 8, "reserve", "unknown key"),
    (
        GOOD_BOARD.replace(
            "description: a made-up board", "description: !!python/object:os.system x"
        ),
        3,
        None,
        "not allowed",
    ),
    (
        GOOD_BOARD.replace("description: a made-up board", "description: [a]"),
        3,
        "description",
        "a text",
    ),
    (GOOD_BOARD.replace("a made-up board", "'x */ SECTIONS {'"), 3, "description", "comments"),
    (GOOD_BOARD.replace("a made-up board", "'ends in \\\\'"), 3, "description", "comments"),
    (GOOD_BOARD.replace("a made-up board", "'$(shell id)'"), 3, "description", "comments"),
    (GOOD_BOARD + "    core: cortex-m4\n", 9, "core", "duplicate key"),
    ("boards: {a: &x [*x]}\n", 1, None, ""),
    ("boards:\n  a: {\n", 3, None, "YAML syntax error"),
]


@pytest.mark.parametrize(("text", "line", "field", "message"), HOSTILE)
def test_hostile_boards_file_is_a_located_error(
    tmp_path: Path, text: str, line: int, field: str | None, message: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(SpecError) as info:
        load_boards(path)
    err = info.value
    assert err.location is not None and err.location.file == path
    assert err.location.line == line, err.render()
    if field is not None:
        assert err.field is not None and field in err.field, err.render()
    assert message in err.message, err.render()


@pytest.mark.parametrize(
    "text",
    [
        "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n",
        "boards: 'root:x:0:0:root:/root:/bin/bash'\n",
        "boards:\n  tiny:\n    'root:x:0:0:root:/root:/bin/bash': 1\n",
    ],
)
def test_a_file_that_is_not_a_boards_file_is_not_echoed(tmp_path: Path, text: str) -> None:
    with pytest.raises(SpecError) as info:
        load_boards(write(tmp_path, text))
    shown = f"{info.value.field} {info.value.message} {info.value.hint}"
    assert "root" not in shown and "bash" not in shown and "x:0" not in shown


def test_unreadable_and_binary_boards_files(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read file"):
        load_boards(str(tmp_path / "missing.yaml"))
    path = tmp_path / "bin.yaml"
    path.write_bytes(b"boards:\n  \xff\xfe: 1\n")
    with pytest.raises(SpecError, match="not valid UTF-8"):
        load_boards(str(path))


# -- the fit -----------------------------------------------------------------------------------


def independent_weight_bytes(graph, dtype: str) -> int:
    """Weight bytes from the canonical weights file itself: every `<node>.weight` array (conv2d,
    fc) with one bias (float32) or bias + multiplier + shift (int8) per output channel."""
    weights = resolve_weights(graph, None, 0)
    total = 0
    for key, array in weights.items():
        node, name = key.rsplit(".", 1)
        if name != "weight":
            continue
        channels = array.shape[0]
        if dtype == "int8":
            total += array.size + channels * INT8_CHANNEL_BYTES
        else:
            total += (array.size + channels) * 4
    return total


@pytest.mark.parametrize(("dtype", "split", "row_tile"), [("int8", "n", 1), ("float32", 4, None)])
def test_fit_numbers_against_an_independent_count(dtype: str, split, row_tile) -> None:
    graph = small_graph()
    board = get_board("stm32f746")
    fit = board_fit(graph, board, split, row_tile, dtype)
    element = 1 if dtype == "int8" else 4
    plan = plan_memory(
        graph,
        mode="fused",
        split=split,
        dtype=dtype,
        row_tile=row_tile,
        alignment=1 if dtype == "float32" else 4,
    )
    assert fit.arena_bytes == plan.placement.arena_bytes >= plan.peak_bytes == fit.peak_bytes
    assert fit.io_bytes == (3 * 64 * 64 + 10) * element
    expected_sram = fit.arena_bytes + fit.io_bytes + RUNTIME_STATIC_BYTES + 16 * 1024
    assert fit.sram_bytes == expected_sram
    assert fit.weights_bytes == independent_weight_bytes(graph, dtype)
    assert fit.flash_bytes == fit.weights_bytes + fit.code_bytes
    assert fit.sram_excess == max(0, expected_sram - 320 * 1024)
    assert fit.flash_excess == max(0, fit.flash_bytes - 1024 * 1024)
    assert fit.fits == (fit.sram_excess == 0 and fit.flash_excess == 0)


def test_fit_takes_a_board_name() -> None:
    graph = small_graph()
    assert board_fit(graph, "stm32h743", 2) == board_fit(graph, get_board("stm32h743"), 2)
    with pytest.raises(SpecError, match="unknown board"):
        board_fit(graph, "stm32f999")


def test_float_weights_bytes_equal_the_c_weights_file() -> None:
    """The float32 weights the fit counts are the arrays the C target writes."""
    from archspec.targets.c.weights import weight_arrays

    graph = small_graph()
    arrays = weight_arrays(graph, resolve_weights(graph, None, 0))
    fit = board_fit(graph, get_board("stm32h743"), 1, None, "float32")
    assert fit.weights_bytes == 4 * sum(a.values.size for a in arrays)


def test_fit_reports_both_sizes_and_the_excess() -> None:
    graph = lower(load_spec(MNV2))  # MobileNetV2 1.0 at 224²
    fit = board_fit(graph, get_board("stm32f746"), 4, None, "int8")
    assert not fit.fits and fit.sram_excess > 0 and fit.flash_excess > 0
    text = " ".join(fit.problems())
    assert f"{fit.sram_bytes:,}" in text and f"{320 * 1024:,}" in text
    assert f"{fit.sram_excess:,} bytes too many" in text
    assert f"{fit.flash_excess:,} bytes too many" in text


def test_finer_split_and_row_tiles_need_less_sram() -> None:
    graph = lower(load_spec(MNV2, ["width_multiplier=0.35", "resolution=96"]))
    board = get_board("stm32f746")
    coarse = board_fit(graph, board, 1, None, "int8")
    fine = board_fit(graph, board, "n", 1, "int8")
    assert fine.sram_bytes < coarse.sram_bytes
    assert fine.weights_bytes == coarse.weights_bytes


# -- the command line --------------------------------------------------------------------------


def test_report_board_json_and_text(capsys: pytest.CaptureFixture) -> None:
    args = ["report", MNV2, *sum((["--set", s] for s in SMALL), [])]
    fused = ["--memory-mode", "fused", "--split", "n", "--row-tile", "1"]
    assert cli_main([*args, *fused, "--board", "stm32f746", "--format", "json"]) == 0
    board = json.loads(capsys.readouterr().out)["board"]
    fit = board_fit(small_graph(), get_board("stm32f746"), "n", 1, "int8")
    assert board["name"] == "stm32f746" and board["fits"] is True
    assert board["sram_need"]["total"] == fit.sram_bytes
    assert board["flash_need"]["total"] == fit.flash_bytes
    assert board["sram"] == {"base": 0x20000000, "size": 320 * 1024}
    assert cli_main([*args, *fused, "--board", "stm32f746", "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    assert "## Board stm32f746" in out and "**fits**" in out


def test_report_says_when_it_does_not_fit(capsys: pytest.CaptureFixture) -> None:
    assert cli_main(["report", MNV2, "--board", "stm32f746"]) == 0
    out = capsys.readouterr().out
    found = re.search(
        r"DOES NOT FIT: needs ([\d,]+) bytes of SRAM but stm32f746 has 327,680 "
        r"\(([\d,]+) bytes too many\)",
        out,
    )
    assert found, out[-800:]
    need, excess = (int(g.replace(",", "")) for g in found.groups())
    assert need - excess == 327_680


def test_build_refuses_a_network_that_does_not_fit(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "out"
    code = cli_main(
        ["build", MNV2, "--target", "c", "--board", "stm32f746", "--split", "4", "-o", str(out)]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "does not fit stm32f746" in err and "bytes of SRAM" in err and "bytes too many" in err
    assert "Traceback" not in err
    assert not out.exists()


def test_build_with_board_writes_the_cross_build(tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    sets = sum((["--set", s] for s in SMALL), [])
    code = cli_main(
        [
            "build",
            MNV2,
            *sets,
            "--target",
            "c",
            "--board",
            "stm32h743",
            "--split",
            "n",
            "--row-tile",
            "1",
            "-o",
            str(out),
        ]
    )
    assert code == 0, capsys.readouterr().err
    names = {p.name for p in out.iterdir()}
    assert {"stm32h743.ld", "stm32h743_qemu.ld", "startup.c", "profile.c", "Makefile"} <= names
    ld = (out / "stm32h743.ld").read_text()
    assert (
        "ORIGIN = 0x24000000, LENGTH = 524288" in ld
        and "ORIGIN = 0x08000000, LENGTH = 2097152" in ld
    )
    qemu_ld = (out / "stm32h743_qemu.ld").read_text()
    assert "ORIGIN = 0x20000000, LENGTH = 524288" in qemu_ld
    assert "ORIGIN = 0x00000000, LENGTH = 2097152" in qemu_ld
    makefile = (out / "Makefile").read_text()
    assert "\narm:" in makefile and "\nqemu:" in makefile and "-mfpu=fpv5-d16" in makefile
    source = next(out.glob("mobilenet*.c")).read_text()
    assert "MARK(1);" in source  # profiling marks, compiled to nothing on the host


@pytest.mark.parametrize(
    ("extra", "flag", "message"),
    [
        (["--target", "onnx", "--board", "stm32f746"], "--board", "c target only"),
        (["--target", "c", "--boards", "x.yaml"], "--boards", "with --board only"),
        (["--target", "c", "--board", "nope"], "--board", "unknown board"),
    ],
)
def test_build_board_option_errors(tmp_path: Path, capsys, extra, flag, message) -> None:
    assert cli_main(["build", MNV2, *extra, "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert flag in err and message in err
    assert not (tmp_path / "o").exists()


def test_report_board_flags_need_board(capsys: pytest.CaptureFixture) -> None:
    assert cli_main(["report", MNV2, "--instructions"]) == 2
    assert "--instructions: applies with --board only" in capsys.readouterr().err
    assert cli_main(["report", MNV2, "--board", "stm32f746", "--format", "html"]) == 2
    assert "--board: applies to text, markdown and json reports" in capsys.readouterr().err


def test_user_boards_file_on_the_command_line(tmp_path: Path, capsys) -> None:
    path = write(tmp_path, GOOD_BOARD)
    assert (
        cli_main(["report", MNV2, "--board", "tiny_m7", "--boards", path, "--format", "json"]) == 0
    )
    board = json.loads(capsys.readouterr().out)["board"]
    assert board["source"] == path and board["fits"] is False
    bad = write(tmp_path, GOOD_BOARD.replace("-mthumb", "$(shell id)"))
    assert cli_main(["report", MNV2, "--board", "tiny_m7", "--boards", bad]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:5:" in err and "cflags[1]" in err


def test_no_weights_needed_for_the_fit() -> None:
    """The fit is pure: it reads shapes, never weight values."""
    graph = small_graph()
    before = {k: np.array(v) for k, v in resolve_weights(graph, None, 0).items()}
    board_fit(graph, get_board("stm32h743"), 2, 2, "int8")
    after = resolve_weights(graph, None, 0)
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_a_core_qemu_does_not_emulate_gets_no_qemu_build(tmp_path: Path, capsys) -> None:
    text = GOOD_BOARD.replace("cortex-m7", "cortex-m4").replace("fpv5-sp-d16", "fpv4-sp-d16")
    text = text.replace("size: 256K", "size: 2M").replace("size: 64K", "size: 256K")
    path = write(tmp_path, text)
    out = tmp_path / "out"
    sets = sum((["--set", s] for s in SMALL), [])
    args = ["build", MNV2, *sets, "--target", "c", "--quantize", "int8", "--split", "4"]
    code = cli_main([*args, "--board", "tiny_m7", "--boards", path, "-o", str(out)])
    assert code == 0, capsys.readouterr().err
    assert (out / "tiny_m7.ld").exists() and not (out / "tiny_m7_qemu.ld").exists()
    assert "-mcpu=cortex-m4" in (out / "Makefile").read_text()
    if shutil.which("make") is None:
        return
    result = subprocess.run(["make", "-s", "qemu"], cwd=out, capture_output=True, text=True)
    assert result.returncode == 2
    assert "QEMU emulates no board with a cortex-m4 core here" in result.stderr
