"""Does a network fit a board? SRAM and flash needs of its C build against the boards table.

`board_fit(graph, board, split, row_tile, dtype)` is pure: it plans memory exactly as the C
build does (`plan_memory(mode="fused", split, dtype, row_tile)`) and adds up

* SRAM: the plan's arena (at the build's alignment), the run harness's input and output
  buffers (run.c holds one input and one output at the build's element size), the runtime's
  statics (`RUNTIME_STATIC_BYTES`: the buffer tables, newlib's state, the profile stamps) and
  the board's reserve (stack + heap), the same parts the board's linker script places in SRAM;
* flash: the weights as the C build stores them (float32: every conv and fc weight plus one
  bias per output channel, 4 bytes each; int8: 1 byte per weight plus, per output channel, an
  int32 bias and the requantization multiplier and shift, `INT8_CHANNEL_BYTES`) and an
  estimate of the code: `CODE_BASE_BYTES` for the harness, startup and newlib-nano's stdio and
  semihosting (15 KB linked), plus `CODE_STEP_BYTES` per step of the plan (a step has at most
  one kernel of its own: steps of equal configuration share one; MobileNetV2's 20 kernels link
  to 9-10 KB, int8 and float32 alike; see docs/c_target.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from archspec.analysis.memory import MemoryPlan, plan_memory
from archspec.boards import Board, board_summary, get_board
from archspec.errors import Location, SpecError
from archspec.graph import Graph
from archspec.options import DTYPE_BYTES, Split, check_row_tile, check_split

BUILD_DTYPES = ("float32", "int8")
# The arena alignment each C build places its buffers at (the int8 build aligns them to 4 bytes
# for the int32 sums of split blocks; float32 buffers are whole floats already).
ARENA_ALIGNMENT = {"float32": 1, "int8": 4}
INT8_CHANNEL_BYTES = 4 + 4 + 4  # int32 bias, int32 multiplier, int32 shift per output channel
RUNTIME_STATIC_BYTES = 4096
CODE_BASE_BYTES = 16 * 1024
CODE_STEP_BYTES = 1024


@dataclass(frozen=True)
class Fit:
    """A network's C build on one board: what it needs, what the board has, and whether it fits.

    All sizes are bytes. `sram_bytes` = arena + io + runtime statics + reserve;
    `flash_bytes` = weights + code estimate.
    """

    board: Board
    dtype: str
    split: Split
    row_tile: int | None
    arena_bytes: int
    peak_bytes: int
    io_bytes: int
    static_bytes: int
    reserve_bytes: int
    weights_bytes: int
    code_bytes: int
    steps: int
    plan: MemoryPlan = field(repr=False, compare=False)

    @property
    def sram_bytes(self) -> int:
        """The SRAM the build needs."""
        return self.arena_bytes + self.io_bytes + self.static_bytes + self.reserve_bytes

    @property
    def flash_bytes(self) -> int:
        """The flash the build needs (the code part estimated)."""
        return self.weights_bytes + self.code_bytes

    @property
    def sram_excess(self) -> int:
        """Bytes of SRAM missing (0 when it fits)."""
        return max(0, self.sram_bytes - self.board.sram.size)

    @property
    def flash_excess(self) -> int:
        """Bytes of flash missing (0 when it fits)."""
        return max(0, self.flash_bytes - self.board.flash.size)

    @property
    def fits(self) -> bool:
        """Whether both the SRAM and the flash needs fit the board."""
        return self.sram_excess == 0 and self.flash_excess == 0

    def problems(self) -> list[str]:
        """One sentence per memory that does not fit: both sizes and the excess."""
        out = []
        for what, need, have, excess in (
            ("SRAM", self.sram_bytes, self.board.sram.size, self.sram_excess),
            ("flash", self.flash_bytes, self.board.flash.size, self.flash_excess),
        ):
            if excess:
                out.append(
                    f"needs {need:,} bytes of {what} but {self.board.name} has {have:,} "
                    f"({excess:,} bytes too many)"
                )
        return out

    def summary(self) -> dict[str, Any]:
        """Plain data for reports (the JSON report's `board` object)."""
        return {
            **board_summary(self.board),
            "dtype": self.dtype,
            "split": self.split,
            "row_tile": self.row_tile,
            "sram_need": {
                "arena": self.arena_bytes,
                "peak": self.peak_bytes,
                "io": self.io_bytes,
                "runtime_statics": self.static_bytes,
                "reserve": self.reserve_bytes,
                "total": self.sram_bytes,
            },
            "flash_need": {
                "weights": self.weights_bytes,
                "code_estimate": self.code_bytes,
                "steps": self.steps,
                "total": self.flash_bytes,
            },
            "sram_excess": self.sram_excess,
            "flash_excess": self.flash_excess,
            "fits": self.fits,
        }


def weights_bytes(graph: Graph, dtype: str) -> int:
    """Bytes of the C build's weights: per conv2d/fc node its weight elements and, per output
    channel, a float32 bias (float32 build) or an int32 bias, multiplier and shift (int8)."""
    total = 0
    for node in graph.ops():
        specs = graph.weights(node)
        if not specs:
            continue
        elements = sum(_numel(w.shape) for w in specs if w.kind == "weight")
        channels = node.shape.c
        if dtype == "int8":
            total += elements + channels * INT8_CHANNEL_BYTES
        else:
            total += (elements + channels) * DTYPE_BYTES["float32"]
    return total


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def board_fit(
    graph: Graph,
    board: Board | str,
    split: Split = 1,
    row_tile: int | None = None,
    dtype: str = "int8",
) -> Fit:
    """SRAM and flash needs of `graph`'s C build (fused plan, `split`, `row_tile`, `dtype`
    activations and weights) on `board` (a Board, or a name looked up with `get_board`)."""
    if isinstance(board, str):
        board = get_board(board)
    split = check_split(split)
    row_tile = check_row_tile(row_tile)
    if dtype not in BUILD_DTYPES:
        raise ValueError(f"dtype must be one of {BUILD_DTYPES}, got {dtype!r}")
    plan = plan_memory(
        graph,
        mode="fused",
        split=split,
        dtype=dtype,
        row_tile=row_tile,
        alignment=ARENA_ALIGNMENT[dtype],
    )
    element = DTYPE_BYTES[dtype]
    inputs = graph.input.shape.numel
    outputs = sum(graph.node(o).shape.numel for o in graph.outputs)
    steps = len(plan.order)
    return Fit(
        board=board,
        dtype=dtype,
        split=split,
        row_tile=row_tile,
        arena_bytes=plan.placement.arena_bytes,
        peak_bytes=plan.peak_bytes,
        io_bytes=(inputs + outputs) * element,
        static_bytes=RUNTIME_STATIC_BYTES,
        reserve_bytes=board.reserve_bytes,
        weights_bytes=weights_bytes(graph, dtype),
        code_bytes=CODE_BASE_BYTES + CODE_STEP_BYTES * steps,
        steps=steps,
        plan=plan,
    )


def check_fit(fit: Fit, spec_file: str) -> None:
    """Refuse a build that does not fit, before anything is written."""
    problems = fit.problems()
    if problems:
        raise SpecError(
            f"the {fit.dtype} C build does not fit {fit.board.name}: " + "; ".join(problems),
            Location(spec_file),
            "--board",
            "lower the resolution or the width multiplier, try --split n and --row-tile 1, "
            "or see `archspec report SPEC --board NAME`",
        )


def fit_text(fit: Fit, markdown: bool = False) -> str:
    """The fit as a short text (or markdown) section for `archspec report --board`."""
    b = fit.board
    rows = [
        ("arena (fused plan)", f"{fit.arena_bytes:,}"),
        ("run harness input + output", f"{fit.io_bytes:,}"),
        ("runtime statics (estimate)", f"{fit.static_bytes:,}"),
        (f"reserve (stack {b.stack_bytes:,} + heap {b.heap_bytes:,})", f"{fit.reserve_bytes:,}"),
        ("SRAM need", f"{fit.sram_bytes:,} of {b.sram.size:,}"),
        ("weights", f"{fit.weights_bytes:,}"),
        (f"code (estimate, {fit.steps} steps)", f"{fit.code_bytes:,}"),
        ("flash need", f"{fit.flash_bytes:,} of {b.flash.size:,}"),
    ]
    split = f"split {fit.split}" + ("" if fit.row_tile is None else f", row tile {fit.row_tile}")
    head = f"Board {b.name}: {b.description}"
    what = f"{fit.dtype} C build, fused plan ({split}); bytes"
    verdict = "fits" if fit.fits else "DOES NOT FIT: " + "; ".join(fit.problems())
    if markdown:
        lines = [f"## {head}", "", what, "", "| part | bytes |", "|---|---:|"]
        lines += [f"| {a} | {v} |" for a, v in rows]
        lines += ["", f"**{verdict}**"]
    else:
        width = max(len(a) for a, _ in rows)
        lines = [head, what, ""]
        lines += [f"{a.ljust(width)}  {v}" for a, v in rows]
        lines += ["", verdict]
    return "\n".join(lines) + "\n"
