"""The `--board` options of `archspec report` and `archspec build` (registered by archspec.cli).

* `report SPEC --board NAME [--boards FILE] [--instructions]`: the int8 C build's SRAM and
  flash needs against the board (fused plan with the report's --split and --row-tile), said
  plainly when it does not fit; `--instructions` also builds it, runs it on QEMU and adds the
  instructions per step beside the MAdds (JSON: the `board` object, with `instructions`).
* `build SPEC --target c --board NAME [--boards FILE]`: the cross build's files too; a network
  that does not fit is refused (exit 2, both sizes and the excess, nothing written).
"""

from __future__ import annotations

import argparse
from typing import Any

from archspec.boards import ENV_VAR, Board, get_board
from archspec.errors import SpecError
from archspec.graph import Graph


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--boards",
        metavar="FILE",
        help=f"extra boards (YAML, the shape of archspec/boards.yaml; default: ${ENV_VAR})",
    )


def add_report_arguments(p: argparse.ArgumentParser) -> None:
    """`report`'s --board, --boards and --instructions."""
    p.add_argument(
        "--board",
        metavar="NAME",
        help="also check the int8 C build against a microcontroller (stm32f746, stm32h743, or "
        "one from --boards): SRAM and flash needed, and the excess when it does not fit",
    )
    _add_common(p)
    p.add_argument(
        "--instructions",
        action="store_true",
        help="with --board: build for it, run once on QEMU (-icount shift=0) and add the "
        "instructions per step and MACs per instruction (needs arm-none-eabi-gcc and "
        "qemu-system-arm)",
    )


def add_build_arguments(p: argparse.ArgumentParser) -> None:
    """`build`'s --board and --boards."""
    p.add_argument(
        "--board",
        metavar="NAME",
        help="c target: also write the cross build for a microcontroller (linker script, "
        "startup, `make arm`, `make qemu`); refused when the network does not fit",
    )
    _add_common(p)


def build_board(args: argparse.Namespace) -> Board | None:
    """The board of `build --board` (checked before the spec is read), or None."""
    if args.board is None:
        if args.boards is not None:
            raise SpecError("applies with --board only", None, "--boards", "add --board NAME")
        return None
    if args.target != "c":
        raise SpecError(
            f"applies to the c target only, not {args.target}", None, "--board", "add --target c"
        )
    return get_board(args.board, args.boards)


def report_board(
    args: argparse.Namespace, graph: Graph, data: dict[str, Any], split: int | str
) -> str:
    """Add the board's fit (and the instruction counts) to the report data; the text to
    append to a text or markdown report ("" without --board)."""
    from archspec.boards_fit import board_fit, fit_text

    if args.board is None:
        for flag, value in (("--boards", args.boards), ("--instructions", args.instructions)):
            if value:
                raise SpecError("applies with --board only", None, flag, "add --board NAME")
        return ""
    if args.format == "html":
        raise SpecError(
            "applies to text, markdown and json reports", None, "--board", "use --format json"
        )
    board = get_board(args.board, args.boards)
    fit = board_fit(graph, board, split, args.row_tile, "int8")
    data["board"] = fit.summary()
    markdown = args.format == "markdown"
    text = "\n" + fit_text(fit, markdown)
    if args.instructions:
        from archspec.boards_run import count_instructions, instructions_text
        from archspec.verify import resolve_weights

        weights = resolve_weights(graph, None, 0)
        count = count_instructions(graph, board, weights, split=split, row_tile=args.row_tile)
        data["board"]["instructions"] = count.summary()
        text += "\n" + instructions_text(count, markdown)
    return text
