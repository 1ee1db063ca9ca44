"""The microcontroller boards table: what `--board NAME` builds for and checks against.

The shipped table is `archspec/boards.yaml`; a user extends it with a file of the same shape,
given as `--boards FILE` or in the `ARCHSPEC_BOARDS` environment variable (the option wins). A
board of the same name in the user's file replaces the shipped one. Files are read with the
project's safe YAML reader (located nodes, no object construction) and every field is checked
with a located `SpecError`: names and flags end up in file names and in a Makefile, so both are
restricted to plain characters.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

from archspec.errors import Location, SpecError
from archspec.yamlsrc import Node, load_yaml, read_yaml_file

ENV_VAR = "ARCHSPEC_BOARDS"
ADDRESS_SPACE = 1 << 32
MAX_BOARDS = 1000
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_CORE = re.compile(r"^[a-z][a-z0-9.+-]{0,39}$")
# A CPU flag: -m<option>[=<value>], plain characters only (it is written into a Makefile).
_FLAG = re.compile(r"^-m[a-z0-9][a-z0-9_.+-]{0,39}(=[a-z0-9][a-z0-9_.+-]{0,39})?$")
# A description goes into C, linker-script and Makefile comments: no `*`, `\\`, `#`, `$`.
_DESCRIPTION_PUNCTUATION = ".,;:()+-_/'%&"
_DESCRIPTION = re.compile(r"^[A-Za-z0-9 .,;:()+_/'%&-]{0,200}$")
_SIZE = re.compile(r"^([0-9]{1,10})\s*([KM]?)$")
_UNITS = {"": 1, "K": 1024, "M": 1024 * 1024}
_BOARD_KEYS = ("description", "core", "cflags", "flash", "sram", "reserve")
_REGION_KEYS = ("base", "size")
_RESERVE_KEYS = ("stack", "heap")


@dataclass(frozen=True)
class Region:
    """One memory region: its base address and size in bytes."""

    base: int
    size: int

    @property
    def end(self) -> int:
        """The first address past the region."""
        return self.base + self.size


@dataclass(frozen=True)
class Board:
    """A microcontroller: its core, compiler flags, flash and SRAM, and the runtime's reserve."""

    name: str
    description: str
    core: str
    cflags: tuple[str, ...]
    flash: Region
    sram: Region
    stack_bytes: int
    heap_bytes: int
    source: str

    @property
    def reserve_bytes(self) -> int:
        """SRAM the run harness needs beside the network: its stack and its heap."""
        return self.stack_bytes + self.heap_bytes


_SHOWN = re.compile(r"^[A-Za-z0-9_.+=-]{1,40}$")


def _shown(value: Any) -> str:
    """A found value for a message, never echoing arbitrary file content: mappings and lists by
    their kind, text only when it is one short plain token (a file given as --boards that is
    not a boards file, /etc/passwd say, shows none of its characters)."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing (null)"
    if isinstance(value, str):
        return repr(value) if _SHOWN.match(value) else "a text value"
    return repr(value)


def _items(node: Node, path: str, keys: tuple[str, ...]) -> dict[str, Node]:
    if not isinstance(node.value, dict):
        raise SpecError(f"found {_shown(node.value)}; expected a mapping", node.loc, path)
    out = {}
    for key, (key_loc, value) in node.value.items():
        if key not in keys:
            raise SpecError(
                f"unknown key {_shown(key)}; expected one of: {', '.join(keys)}",
                key_loc,
                path,
            )
        out[key] = value
    for key in keys:
        if key not in out:
            raise SpecError(f"missing key {key!r}", node.loc, path)
    return out


def _size(node: Node, path: str, *, minimum: int = 1) -> int:
    """A byte count: an integer, or text like `320K` or `1M` (KiB, MiB)."""
    value = node.value
    if isinstance(value, str):
        match = _SIZE.match(value.strip())
        if match is None:
            raise SpecError(
                f"found {_shown(value)}; expected a byte count such as 4096, 320K or 1M",
                node.loc,
                path,
            )
        value = int(match.group(1)) * _UNITS[match.group(2)]
    elif isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(
            f"found {_shown(node.value)}; expected a byte count such as 4096, 320K or 1M",
            node.loc,
            path,
        )
    if not minimum <= value < ADDRESS_SPACE:
        raise SpecError(
            f"found {value:,} bytes; expected at least {minimum:,} and below 4 GiB", node.loc, path
        )
    if value % 8:
        raise SpecError(f"found {value:,} bytes; expected a multiple of 8", node.loc, path)
    return value


def _region(node: Node, path: str) -> Region:
    items = _items(node, path, _REGION_KEYS)
    base_node = items["base"]
    base = base_node.value
    if isinstance(base, bool) or not isinstance(base, int) or not 0 <= base < ADDRESS_SPACE:
        raise SpecError(
            f"found {_shown(base_node.value)}; expected an address such as 0x20000000",
            base_node.loc,
            f"{path}.base",
        )
    if base % 8:
        raise SpecError(
            f"found {base:#x}; expected an 8-byte aligned address", base_node.loc, f"{path}.base"
        )
    size = _size(items["size"], f"{path}.size", minimum=1024)
    if base + size > ADDRESS_SPACE:
        raise SpecError(
            f"the region {base:#x} + {size:,} bytes ends past the 32-bit address space",
            items["size"].loc,
            f"{path}.size",
        )
    return Region(base, size)


def _text(node: Node, path: str, pattern: re.Pattern[str] | None, expected: str) -> str:
    value = node.value
    if not isinstance(value, str) or (pattern is not None and not pattern.match(value)):
        raise SpecError(f"found {_shown(node.value)}; expected {expected}", node.loc, path)
    return value


def _board(name: str, key_loc: Location, node: Node, source: str) -> Board:
    path = f"boards.{name}" if _NAME.match(name) else "boards"
    if not _NAME.match(name):
        raise SpecError(
            f"found board name {_shown(name)}; expected lower-case letters, digits and _ "
            "(a letter first, at most 40)",
            key_loc,
            path,
        )
    items = _items(node, path, _BOARD_KEYS)
    description = _text(items["description"], f"{path}.description", None, "a text")
    if not _DESCRIPTION.match(description):
        raise SpecError(
            "expected a one-line description of at most 200 letters, digits, spaces and "
            f"{_DESCRIPTION_PUNCTUATION} (it goes into comments of the generated files)",
            items["description"].loc,
            f"{path}.description",
        )
    core = _text(items["core"], f"{path}.core", _CORE, "a core name such as cortex-m7")
    flags_node = items["cflags"]
    if not isinstance(flags_node.value, list) or not flags_node.value:
        raise SpecError(
            f"found {_shown(flags_node.value)}; expected a list of -m flags",
            flags_node.loc,
            f"{path}.cflags",
        )
    flags = tuple(
        _text(flag, f"{path}.cflags[{i}]", _FLAG, "a compiler flag such as -mcpu=cortex-m7")
        for i, flag in enumerate(flags_node.value)
    )
    flash = _region(items["flash"], f"{path}.flash")
    sram = _region(items["sram"], f"{path}.sram")
    if flash.base < sram.end and sram.base < flash.end:
        raise SpecError(
            f"the flash ({flash.base:#x}..{flash.end:#x}) overlaps the SRAM "
            f"({sram.base:#x}..{sram.end:#x})",
            items["sram"].loc,
            f"{path}.sram",
        )
    reserve = _items(items["reserve"], f"{path}.reserve", _RESERVE_KEYS)
    stack = _size(reserve["stack"], f"{path}.reserve.stack", minimum=1024)
    heap = _size(reserve["heap"], f"{path}.reserve.heap", minimum=0)
    if stack + heap >= sram.size:
        raise SpecError(
            f"the reserve ({stack + heap:,} bytes) leaves nothing of the SRAM ({sram.size:,})",
            items["reserve"].loc,
            f"{path}.reserve",
        )
    return Board(name, description, core, flags, flash, sram, stack, heap, source)


def parse_boards(root: Node, source: str) -> dict[str, Board]:
    """The boards of one parsed file (a mapping with one key, `boards`)."""
    top = _items(root, "", ("boards",))
    table = top["boards"]
    if not isinstance(table.value, dict) or not table.value:
        raise SpecError(
            f"found {_shown(table.value)}; expected a mapping of board names",
            table.loc,
            "boards",
        )
    if len(table.value) > MAX_BOARDS:
        raise SpecError(f"more than {MAX_BOARDS} boards", table.loc, "boards")
    return {
        name: _board(name, key_loc, node, source) for name, (key_loc, node) in table.value.items()
    }


def shipped_boards() -> dict[str, Board]:
    """The boards that come with archspec (`archspec/boards.yaml`)."""
    text = resources.files("archspec").joinpath("boards.yaml").read_text("utf-8")
    return parse_boards(load_yaml(text, "boards.yaml"), "boards.yaml")


def boards_file(path: str | None = None) -> str | None:
    """The user's boards file: `path` (the --boards option), else $ARCHSPEC_BOARDS, else None."""
    if path is not None:
        return path
    env = os.environ.get(ENV_VAR)
    return env if env else None


def load_boards(path: str | None = None) -> dict[str, Board]:
    """The shipped boards, extended (or replaced by name) by the user's file if there is one."""
    boards = shipped_boards()
    user = boards_file(path)
    if user is not None:
        boards.update(parse_boards(read_yaml_file(user), user))
    return boards


def get_board(name: str, path: str | None = None) -> Board:
    """One board by name, or a SpecError listing the known ones."""
    boards = load_boards(path)
    if name not in boards:
        found = f"unknown board {name!r}" if _NAME.match(name) else "not a board name"
        raise SpecError(
            f"{found}; expected one of: {', '.join(sorted(boards))}",
            None,
            "--board",
            f"add it to a boards file (--boards FILE or ${ENV_VAR}); see archspec/boards.yaml",
        )
    return boards[name]


def board_summary(board: Board) -> dict[str, Any]:
    """The board as plain data (for JSON reports)."""
    return {
        "name": board.name,
        "description": board.description,
        "core": board.core,
        "cflags": list(board.cflags),
        "flash": {"base": board.flash.base, "size": board.flash.size},
        "sram": {"base": board.sram.base, "size": board.sram.size},
        "reserve": {"stack": board.stack_bytes, "heap": board.heap_bytes},
        "source": board.source,
    }
