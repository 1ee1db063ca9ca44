"""The C target's board files: a cross build for a microcontroller and its QEMU twin.

With `--board NAME` the C build also has (templates/c/board/):

* `<board>.ld`: the board's flash and SRAM with the table's sizes (code, weights and .data's
  initial values in flash; .data, .bss with the arena and the harness buffers, the heap and the
  stack in SRAM), so a network that does not fit is a link error;
* `<board>_qemu.ld`: the same sizes placed where QEMU's machine for the core has memory;
* `startup.c`: the vector table and reset handler (FPU on, .data copied, .bss zeroed,
  semihosting opened, the command line read, main() called);
* `profile.c`: time stamps before and after every step of the plan (the DWT cycle counter on
  the board, QEMU's CMSDK timer under `-icount shift=0` in the QEMU build);
* Makefile targets `arm`, `arm-size`, `qemu` and `clean-arm` appended to the host Makefile.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import jinja2

from archspec import __version__
from archspec.boards import Board
from archspec.boards_fit import board_fit, check_fit
from archspec.graph import Graph
from archspec.names import spec_identifier
from archspec.options import Split


@dataclass(frozen=True)
class QemuMachine:
    """A QEMU machine that emulates a core, and where its memories and timer are."""

    machine: str
    flash_base: int
    flash_size: int
    sram_base: int
    sram_size: int
    timer: int  # CMSDK APB timer 0
    timer_hz: int

    def holds(self, board: Board) -> bool:
        """Whether the board's flash and SRAM sizes fit the machine's memories."""
        return board.flash.size <= self.flash_size and board.sram.size <= self.sram_size


MIB = 1024 * 1024
# QEMU's mps2 machines (hw/arm/mps2.c, AN385 memory map shared by AN386 and AN500): ZBT SSRAM1,
# 4 MiB at 0 (the vector table must be there at reset), ZBT SSRAM2/3, 4 MiB at 0x20000000,
# CMSDK APB timer 0 at 0x40000000 clocked by the 25 MHz SYSCLK.
QEMU_MACHINES = {
    "cortex-m7": QemuMachine(
        "mps2-an500", 0x0, 4 * MIB, 0x20000000, 4 * MIB, 0x40000000, 25_000_000
    ),
}
NS_PER_INSTRUCTION = 1  # -icount shift=0: each instruction advances virtual time by 2**0 ns


def ns_per_tick(machine: QemuMachine) -> int:
    """Instructions per timer tick under `-icount shift=0`."""
    return 10**9 // machine.timer_hz // NS_PER_INSTRUCTION


def elf_names(board: Board) -> tuple[str, str]:
    """The ELF files `make arm` and `make qemu` link."""
    return f"run_{board.name}.elf", f"run_{board.name}_qemu.elf"


def board_environment(env: jinja2.Environment) -> jinja2.Environment:
    """The C templates' environment with the profiling marks switched on (network.c.j2 emits
    its MARK calls when `archspec_profile` is defined). A private overlay: no shared cache."""
    overlay = env.overlay(cache_size=0)
    overlay.globals = {**env.globals, "archspec_profile": True}
    return overlay


def board_files(env: jinja2.Environment, board: Board, ident: str, steps: int) -> dict[str, str]:
    """The linker scripts, startup and profile sources and the Makefile section for `board`;
    `steps` is the number of steps of the build's memory plan."""
    qemu = QEMU_MACHINES.get(board.core)
    if qemu is not None and not qemu.holds(board):
        qemu = None
    elf, qemu_elf = elf_names(board)
    common = {
        "board": board,
        "ident": ident,
        "version": __version__,
        "qemu": qemu,
        "elf": elf,
        "qemu_elf": qemu_elf,
        "qemu_cores": ", ".join(sorted(QEMU_MACHINES)),
    }
    machine = qemu or QEMU_MACHINES["cortex-m7"]
    ld = env.get_template("c/board/board.ld.j2")
    files = {
        f"{board.name}.ld": ld.render(
            **{**common, "qemu": None},
            script=f"{board.name}.ld",
            flash_base=board.flash.base,
            sram_base=board.sram.base,
        ),
        "startup.c": env.get_template("c/board/startup.c.j2").render(**common),
        "profile.c": env.get_template("c/board/profile.c.j2").render(
            **common,
            points=steps + 3,
            qemu_timer=machine.timer,
            qemu_timer_hz=machine.timer_hz,
            ns_per_tick=ns_per_tick(machine),
        ),
    }
    if qemu is not None:
        files[f"{board.name}_qemu.ld"] = ld.render(
            **common,
            script=f"{board.name}_qemu.ld",
            flash_base=qemu.flash_base,
            sram_base=qemu.sram_base,
        )
    files["Makefile.arm"] = env.get_template("c/board/Makefile.arm.j2").render(**common)
    return files


def render_for_board(
    graph: Graph,
    board: Board,
    env: jinja2.Environment,
    render_host: Callable[[jinja2.Environment], dict[str, str | bytes]],
    *,
    split: Split,
    row_tile: int | None,
    dtype: str,
) -> dict[str, str | bytes]:
    """The C build for `board`: refused (SpecError, nothing rendered) when the network does not
    fit; else the host build's files (`render_host` renders them with the marks on) plus the
    board files, the Makefile extended with the board's targets."""
    fit = board_fit(graph, board, split, row_tile, dtype)
    check_fit(fit, graph.spec.rows[0].loc.file)
    files = dict(render_host(board_environment(env)))
    ident = spec_identifier(graph.name)
    extra = board_files(env, board, ident, len(fit.plan.order))
    makefile = files["Makefile"]
    if not isinstance(makefile, str):
        raise RuntimeError("the C target's Makefile is not text")
    files["Makefile"] = makefile + extra.pop("Makefile.arm")
    files.update(extra)
    return files
