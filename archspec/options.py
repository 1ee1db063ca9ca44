"""Options of the memory model and the C target, as value types checked once.

The CLI parses `--split`, `--row-tile`, `--activation-dtype` and `--memory-mode` text with the
`parse_*` functions at its edge (a bad value is a located error on the flag); the Python API
checks values handed to it with the `check_*` functions (a bad value is a ValueError). Everything
past those takes the values as given.
"""

from __future__ import annotations

from typing import Literal

from archspec.errors import SpecError

Split = int | Literal["n"]
MAX_SPLIT = 1 << 20
MEMORY_MODES = ("op", "fused")
DTYPE_BYTES = {"float32": 4, "float16": 2, "int8": 1}


def check_split(split: object) -> Split:
    """A split handed to the API: a positive number of channel groups or "n"."""
    if split == "n":
        return "n"
    if isinstance(split, bool) or not isinstance(split, int) or not 1 <= split <= MAX_SPLIT:
        raise ValueError(f"split must be a positive integer or 'n', got {split!r}")
    return split


def check_row_tile(row_tile: object) -> int | None:
    """A row tile handed to the API: None (untiled) or a positive number of output rows."""
    if row_tile is None:
        return None
    if (
        isinstance(row_tile, bool)
        or not isinstance(row_tile, int)
        or not 1 <= row_tile <= MAX_SPLIT
    ):
        raise ValueError(f"row_tile must be a positive integer or None, got {row_tile!r}")
    return row_tile


def parse_split(text: str) -> Split:
    """The `--split` option: a positive number of groups, or n (one channel per group)."""
    value = text.strip().lower()
    if value == "n":
        return "n"
    if value.isdigit() and len(value) <= 7 and 1 <= int(value) <= MAX_SPLIT:
        return int(value)
    raise SpecError(
        f"found split {text!r}; expected a positive number of channel groups or n",
        None,
        "--split",
        "--split 4 splits every block's expansion channels into 4 groups; --split n keeps one",
    )


def parse_row_tile(text: str) -> int:
    """The `--row-tile` option: a positive number of output rows per band."""
    value = text.strip()
    if value.isdigit() and len(value) <= 7 and 1 <= int(value) <= MAX_SPLIT:
        return int(value)
    raise SpecError(
        f"found row tile {text!r}; expected a positive number of output rows",
        None,
        "--row-tile",
        "--row-tile 1 computes each fused block one output row at a time",
    )
