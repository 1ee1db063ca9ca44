"""The cross build on QEMU's emulated Cortex-M7: bit-identical to the host build, the linker
enforcing the board's sizes, deterministic instruction counts.

Needs arm-none-eabi-gcc (with newlib) and qemu-system-arm, installed by
`apt-get install -y gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm`; skipped with
that reason where they are absent. Runs are short (MobileNetV2 variants at small resolutions).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from archspec.boards import get_board
from archspec.boards_fit import board_fit
from archspec.boards_run import (
    APT_HINT,
    count_instructions,
    missing_tools,
    parse_profile,
    run_qemu,
)
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


@dataclass(frozen=True)
class Config:
    board: str
    sets: tuple[str, ...]
    split: int | str
    row_tile: int | None
    dtype: str

    def graph(self):
        return lower(load_spec(MNV2, list(self.sets)))

    def options(self) -> list[str]:
        out = ["--split", str(self.split)]
        out += [] if self.row_tile is None else ["--row-tile", str(self.row_tile)]
        return out + (["--quantize", "int8"] if self.dtype == "int8" else [])


# A MobileNetV2 that fits the 320 KB / 1 MB STM32F746 in int8: width 0.35 at 96², 10 classes,
# one expansion channel per group and one output row per band.
INT8 = Config(
    "stm32f746", ("width_multiplier=0.35", "resolution=96", "num_classes=10"), "n", 1, "int8"
)
# float32 (4-byte weights need the H743's 2 MB of flash): the same network at 64².
FLOAT = Config(
    "stm32h743", ("width_multiplier=0.35", "resolution=64", "num_classes=10"), 4, 2, "float32"
)


def make(folder: Path, *targets: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "-s", *targets],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=900,
        check=check,
    )


@pytest.fixture(scope="module", params=[INT8, FLOAT], ids=["int8", "float32"])
def build(request: pytest.FixtureRequest, tmp_path_factory) -> tuple[Config, Path]:
    """`archspec build --board` of a variant, its host `run` built, and one input."""
    config: Config = request.param
    out = tmp_path_factory.mktemp(config.dtype) / "c"
    sets = sum((["--set", s] for s in config.sets), [])
    args = ["build", MNV2, *sets, "--target", "c", "--board", config.board, *config.options()]
    assert cli_main([*args, "-o", str(out)]) == 0
    make(out, "CFLAGS=-std=c99 -Wall -Wextra -Werror")
    rng = np.random.default_rng(3)
    numel = config.graph().input.shape.numel
    if config.dtype == "int8":
        x = rng.integers(-128, 128, size=numel, dtype=np.int8)
    else:
        x = rng.standard_normal(numel).astype("<f4")
    (out / "in.bin").write_bytes(x.tobytes())
    return config, out


def test_qemu_output_is_bit_identical_to_the_host_build(build) -> None:
    config, folder = build
    host = subprocess.run(
        ["./run", "in.bin", "host.bin"], cwd=folder, capture_output=True, text=True, check=True
    )
    strict = "ARM_CFLAGS=-std=c99 -Wall -Wextra -Werror -ffp-contract=off"
    result = make(folder, strict, "qemu", "IN=in.bin", "OUT=qemu.bin")
    host_out = (folder / "host.bin").read_bytes()
    assert len(host_out) == 10 * (1 if config.dtype == "int8" else 4)
    # int8: integer kernels; float32: no contraction on either side, the same order of sums.
    assert (folder / "qemu.bin").read_bytes() == host_out
    # The same measured high-water mark on both, equal to the plan's peak.
    mark = re.search(r"high-water mark: (\d+) bytes", host.stdout)
    assert mark and f"high-water mark: {mark.group(1)} bytes" in result.stdout
    fit = board_fit(
        config.graph(), get_board(config.board), config.split, config.row_tile, config.dtype
    )
    assert int(mark.group(1)) == fit.peak_bytes


def test_a_failing_run_fails_make_qemu(build) -> None:
    _, folder = build
    result = make(folder, "qemu", "IN=missing.bin", "OUT=x.bin", check=False)
    assert result.returncode != 0
    assert "cannot open missing.bin" in result.stdout + result.stderr
    assert not (folder / "x.bin").exists()


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


def used(sizes: dict[str, int], region: str) -> int:
    if region == "SRAM":
        return sizes[".data"] + sizes[".bss"] + sizes[".heap"] + sizes[".stack"]
    return sizes[".text"] + sizes.get(".ARM.exidx", 0) + sizes[".data"]


def test_the_fit_is_conservative_against_the_linked_program(build) -> None:
    """What `make arm` links for the board is within what the fit said it needs."""
    config, folder = build
    make(folder, "arm")
    sizes = section_sizes(folder / f"run_{config.board}.elf")
    board = get_board(config.board)
    fit = board_fit(config.graph(), board, config.split, config.row_tile, config.dtype)
    assert sizes[".heap"] + sizes[".stack"] == board.reserve_bytes
    assert fit.sram_bytes - fit.static_bytes <= used(sizes, "SRAM") <= fit.sram_bytes
    assert fit.weights_bytes < used(sizes, "FLASH") <= fit.flash_bytes


def test_the_board_map_places_each_part(build) -> None:
    """In the board's ELF: the vector table at the flash base, the weights in flash, the arena,
    the heap and the stack in SRAM."""
    config, folder = build
    make(folder, "arm")
    nm = subprocess.run(
        ["arm-none-eabi-nm", str(folder / f"run_{config.board}.elf")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    address = {}
    for line in nm.splitlines():
        parts = line.split()
        if len(parts) == 3:
            address[parts[2]] = int(parts[0], 16)
    board = get_board(config.board)

    def inside(name: str, region) -> bool:
        return region.base <= address[name] < region.end

    assert address["vectors"] == board.flash.base
    assert inside("w_stem", board.flash)
    arena = next(name for name in address if name.startswith("arena"))
    assert inside(arena, board.sram) and inside("end", board.sram)
    assert inside("__stack_limit__", board.sram)
    assert address["__stack_limit__"] < address["__stack_top__"] <= board.sram.end


@pytest.mark.parametrize("build", [INT8], indirect=True, ids=["int8"])
@pytest.mark.parametrize("region", ["SRAM", "FLASH"])
def test_a_linker_overflow_is_a_link_error(build, region: str) -> None:
    """The linker script carries the board's sizes: shrink one region below what the program
    uses and the link fails with the linker's overflow message."""
    config, folder = build
    make(folder, "arm")
    sizes = section_sizes(folder / f"run_{config.board}.elf")
    ld = (folder / f"{config.board}.ld").read_text()
    pattern = rf"({region} +\([a-z]+\) +: ORIGIN = 0x[0-9a-f]+, LENGTH = )\d+"
    small = re.sub(pattern, rf"\g<1>{used(sizes, region) - 64}", ld)
    assert small != ld
    shrunk = folder / "shrunk.ld"
    shrunk.write_text(small)
    objects = sorted(str(p) for p in (folder / "arm").glob("*.o"))
    result = subprocess.run(
        [
            "arm-none-eabi-gcc",
            *get_board(config.board).cflags,
            "--specs=nano.specs",
            "--specs=rdimon.specs",
            "-nostartfiles",
            "-Wl,--gc-sections",
            "-T",
            str(shrunk),
            "-o",
            str(folder / "shrunk.elf"),
            *objects,
            "-lm",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert re.search(rf"region `{region}' overflowed by \d+ bytes", result.stderr), result.stderr


def test_instruction_counts_are_deterministic(tmp_path: Path, capsys) -> None:
    config = INT8
    g = config.graph()
    weights = resolve_weights(g, None, 0)
    board = get_board(config.board)
    kwargs = {"split": config.split, "row_tile": config.row_tile, "dtype": config.dtype}
    first = count_instructions(g, board, weights, keep=str(tmp_path / "kept"), **kwargs)
    # Run the same program again: QEMU's -icount mode gives the same counts.
    again, _ = run_qemu(tmp_path / "kept", (tmp_path / "kept" / "input.bin").read_bytes())
    profile = parse_profile(again, len(first.steps))
    assert profile["total"] * first.tick_instructions == first.total
    ticks = [profile["steps"][i] * first.tick_instructions for i in range(len(first.steps))]
    assert ticks == [s.instructions for s in first.steps]
    # The intervals are differences of one counter: they add up to the whole run exactly.
    assert first.input + sum(s.instructions for s in first.steps) + first.output == first.total
    assert first.tick_instructions == 40  # a 25 MHz timer, 1 ns per instruction
    assert sum(s.madds for s in first.steps) == first.madds
    assert all(s.instructions > 0 for s in first.steps)
    assert 0 < first.macs_per_instruction < 2
    # The harness stays within the board's reserve (a painted stack, newlib's heap).
    assert 0 < first.stack_bytes < board.stack_bytes
    assert 0 < first.heap_bytes <= board.heap_bytes
    # The command line gives the same numbers.
    sets = sum((["--set", s] for s in config.sets), [])
    fused = ["--memory-mode", "fused", "--split", str(config.split), "--row-tile", "1"]
    args = ["report", MNV2, *sets, *fused, "--board", config.board, "--instructions"]
    assert cli_main([*args, "--format", "json"]) == 0
    counted = json.loads(capsys.readouterr().out)["board"]["instructions"]
    assert counted["dtype"] == "int8" and counted["total"] == first.total
    assert [s["instructions"] for s in counted["steps"]] == [s.instructions for s in first.steps]
    assert [s["name"] for s in counted["steps"]] == [s.name for s in first.steps]


def test_parse_profile_refuses_an_incomplete_run() -> None:
    with pytest.raises(RuntimeError, match="no complete profile"):
        parse_profile("archspec-profile: tick 40\narchspec-profile: step 0 5\n", 2)
