"""The cross build on QEMU's emulated Cortex-M7: bit-identical to the host build, the linker
enforcing the board's sizes, deterministic instruction counts.

Needs arm-none-eabi-gcc (with newlib) and qemu-system-arm, installed by
`apt-get install -y gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm`; skipped with
that reason where they are absent. Runs are short (a MobileNetV2 variant at a small resolution).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from archspec.boards import get_board
from archspec.boards_fit import board_fit
from archspec.boards_run import APT_HINT, count_instructions, missing_tools, parse_profile
from archspec.cli import main as cli_main
from archspec.lower import lower
from archspec.spec import load_spec
from archspec.verify import resolve_weights

MISSING = missing_tools()
pytestmark = pytest.mark.skipif(
    bool(MISSING) or shutil.which("cc") is None,
    reason=f"needs {', '.join(MISSING) or 'cc'} ({APT_HINT})",
)

MNV2 = str(Path(__file__).parent.parent / "specs" / "mnv2_1.0.yaml")
# A MobileNetV2 variant that fits: width 0.35, 64², 10 classes, one channel per group and one
# output row per band (the float32 build: its weights need the 2 MB of flash of the H743).
SETS = ["width_multiplier=0.35", "resolution=64", "num_classes=10"]
BOARD = "stm32h743"
SPLIT, ROW_TILE = "n", 1
DTYPE = "float32"


def graph():
    return lower(load_spec(MNV2, SETS))


def make(folder: Path, *targets: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "-s", *targets],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=900,
        check=check,
    )


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`archspec build --board` of the variant, its host `run` built, and one input."""
    out = tmp_path_factory.mktemp("board") / "c"
    sets = sum((["--set", s] for s in SETS), [])
    args = ["build", MNV2, *sets, "--target", "c", "--board", BOARD, "--split", SPLIT]
    assert cli_main([*args, "--row-tile", str(ROW_TILE), "-o", str(out)]) == 0
    make(out, "CFLAGS=-std=c99 -Wall -Wextra -Werror")
    x = np.random.default_rng(3).standard_normal(graph().input.shape.numel).astype("<f4")
    (out / "in.bin").write_bytes(x.tobytes())
    return out


def test_qemu_output_is_bit_identical_to_the_host_build(build: Path) -> None:
    host = subprocess.run(
        ["./run", "in.bin", "host.bin"], cwd=build, capture_output=True, text=True, check=True
    )
    result = make(
        build,
        "ARM_CFLAGS=-std=c99 -Wall -Wextra -Werror -ffp-contract=off "
        "-ffunction-sections -fdata-sections",
        "qemu",
        "IN=in.bin",
        "OUT=qemu.bin",
    )
    host_out = (build / "host.bin").read_bytes()
    assert len(host_out) == 10 * 4
    assert (build / "qemu.bin").read_bytes() == host_out  # float32 too: no contraction, same order
    # The same measured high-water mark, equal to the plan's peak.
    mark = re.search(r"high-water mark: (\d+) bytes", host.stdout)
    assert mark and f"high-water mark: {mark.group(1)} bytes" in result.stdout
    fit = board_fit(graph(), get_board(BOARD), SPLIT, ROW_TILE, DTYPE)
    assert int(mark.group(1)) == fit.peak_bytes


def test_a_failing_run_fails_make_qemu(build: Path) -> None:
    result = make(build, "qemu", "IN=missing.bin", "OUT=x.bin", check=False)
    assert result.returncode != 0
    assert "cannot open missing.bin" in result.stdout + result.stderr
    assert not (build / "x.bin").exists()


def section_sizes(elf: Path) -> dict[str, int]:
    out = subprocess.run(
        ["arm-none-eabi-size", "-A", str(elf)], capture_output=True, text=True, check=True
    ).stdout
    sizes = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1].isdigit():
            sizes[parts[0]] = int(parts[1])
    return sizes


def test_the_fit_is_conservative_against_the_linked_program(build: Path) -> None:
    """What `make arm` links for the board is within what the fit said it needs."""
    make(build, "arm")
    sizes = section_sizes(build / f"run_{BOARD}.elf")
    board = get_board(BOARD)
    fit = board_fit(graph(), board, SPLIT, ROW_TILE, DTYPE)
    sram_used = sizes[".data"] + sizes[".bss"] + sizes[".heap"] + sizes[".stack"]
    flash_used = sizes[".text"] + sizes.get(".ARM.exidx", 0) + sizes[".data"]
    assert sizes[".heap"] + sizes[".stack"] == board.reserve_bytes
    assert fit.sram_bytes - 4096 <= sram_used <= fit.sram_bytes
    assert fit.weights_bytes < flash_used <= fit.flash_bytes
    code = flash_used - fit.weights_bytes
    print(
        f"linked: SRAM {sram_used:,} (fit {fit.sram_bytes:,}); code {code:,} "
        f"(estimate {fit.code_bytes:,})"
    )


@pytest.mark.parametrize("region", ["SRAM", "FLASH"])
def test_a_linker_overflow_is_a_link_error(build: Path, region: str) -> None:
    """The linker script carries the board's sizes: shrink one region below what the program
    uses and `make arm` fails with the linker's overflow message."""
    make(build, "arm")
    sizes = section_sizes(build / f"run_{BOARD}.elf")
    used = (
        sizes[".data"] + sizes[".bss"] + sizes[".heap"] + sizes[".stack"]
        if region == "SRAM"
        else sizes[".text"] + sizes.get(".ARM.exidx", 0) + sizes[".data"]
    )
    ld = (build / f"{BOARD}.ld").read_text()
    small = re.sub(
        rf"({region} +\([a-z]+\) +: ORIGIN = 0x[0-9a-f]+, LENGTH = )\d+", rf"\g<1>{used - 64}", ld
    )
    assert small != ld
    shrunk = build / "shrunk.ld"
    shrunk.write_text(small)
    result = subprocess.run(
        [
            "arm-none-eabi-gcc",
            *get_board(BOARD).cflags,
            "--specs=nano.specs",
            "--specs=rdimon.specs",
            "-nostartfiles",
            "-Wl,--gc-sections",
            "-T",
            str(shrunk),
            "-o",
            str(build / "shrunk.elf"),
            *sorted(str(p) for p in (build / "arm").glob("*.o")),
            "-lm",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert re.search(rf"region `{region}' overflowed by \d+ bytes", result.stderr), result.stderr


def test_instruction_counts_are_deterministic(tmp_path: Path, capsys) -> None:
    g = graph()
    weights = resolve_weights(g, None, 0)
    board = get_board(BOARD)
    first = count_instructions(g, board, weights, split=SPLIT, row_tile=ROW_TILE, dtype=DTYPE)
    second = count_instructions(g, board, weights, split=SPLIT, row_tile=ROW_TILE, dtype=DTYPE)
    assert first.total == second.total
    assert [s.instructions for s in first.steps] == [s.instructions for s in second.steps]
    # The intervals are differences of one counter: they add up to the whole run exactly.
    assert first.input + sum(s.instructions for s in first.steps) + first.output == first.total
    assert first.tick_instructions == 40  # 25 MHz timer, 1 ns per instruction
    assert sum(s.madds for s in first.steps) == first.madds
    assert all(s.instructions > 0 for s in first.steps)
    assert 0 < first.macs_per_instruction < 2
    # The command line gives the same numbers.
    sets = sum((["--set", s] for s in SETS), [])
    fused = ["--memory-mode", "fused", "--split", SPLIT, "--row-tile", str(ROW_TILE)]
    args = ["report", MNV2, *sets, *fused, "--board", BOARD, "--instructions", "--format", "json"]
    assert cli_main(args) == 0
    counted = json.loads(capsys.readouterr().out)["board"]["instructions"]
    assert counted["total"] == first.total
    assert [s["instructions"] for s in counted["steps"]] == [s.instructions for s in first.steps]
    assert [s["name"] for s in counted["steps"]] == [s.name for s in first.steps]


def test_parse_profile_refuses_an_incomplete_run() -> None:
    with pytest.raises(RuntimeError, match="no complete profile"):
        parse_profile("archspec-profile: tick 40\narchspec-profile: step 0 5\n", 2)
