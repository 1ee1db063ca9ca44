"""The C target's kernels: one generated function per distinct configuration, and the shared
helper functions (clamp, taps, pointwise, depthwise, direct) they call.

A kernel's kind names its fragment (`templates/c/ops/<kind>.c.j2`: a graph op's name, or a kernel
kind a fusable block declares); its parameters are what the op's module (`GraphOp.targets["c"]`)
or the block's declaration (`BlockKind.c_kernel`) computed, plus the activation bounds from the
activation table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jinja2

from archspec.activations import rendering

# Register tiles of the pointwise and direct kernels as (columns, rows), widest first, per
# instruction set (a preprocessor condition; None: anything else). Columns are output channels
# (the vector loop), rows are pixels sharing each weight load: enough independent sums to hide
# the FMA latency without running out of vector registers (16 with SSE2/AVX2). Measured with
# benchmarks/bench_c.py on AVX-512, AVX2 and SSE2 builds.
TILE_SETS: tuple[tuple[str | None, tuple[tuple[int, int], ...]], ...] = (
    ("defined(__AVX2__) || defined(__AVX512F__)", ((16, 6), (8, 8), (4, 8), (2, 8), (1, 8))),
    (None, ((8, 4), (4, 8), (2, 8), (1, 8))),
)  # each set ends with a one-column tile, so that every channel count is covered
HELPER_ORDER = ("clamp", "taps", "pointwise", "depthwise", "direct")
# The row-tiled kernels' helpers live in the files of their untiled twins (they share code).
ROW_HELPERS = {"depthwise_rows": "depthwise", "direct_rows": "direct"}


def with_bounds(params: Mapping[str, Any]) -> dict[str, Any]:
    """Kernel parameters with the clamp bounds of each activation they name: `act` gives `lo`
    and `hi`, `<part>_act` gives `<part>_lo` and `<part>_hi`."""
    out = dict(params)
    for key, value in params.items():
        if key == "act" or key.endswith("_act"):
            prefix = key.removesuffix("act")
            bounds = rendering(value, "c")
            out[f"{prefix}lo"], out[f"{prefix}hi"] = bounds["lo"], bounds["hi"]
    return out


@dataclass
class Kernel:
    """One generated kernel function (shared by every step with the same configuration).

    `info` holds what only its comment reads (the first user's shapes); `helpers` the shared
    helper functions it calls.
    """

    kind: str
    fn: str
    params: dict[str, Any]
    helpers: tuple[str, ...]
    info: dict[str, Any]
    users: list[str] = field(default_factory=list)

    def users_text(self) -> str:
        """Its users as its comment names them."""
        others = self.users[1:]
        if not others:
            return self.users[0]
        return f"{self.users[0]} (also {', '.join(others)})"

    def context(self, describe: jinja2.runtime.Macro) -> dict[str, Any]:
        """What the fragment's `kernel(k)` macro reads; `describe` is its `describe(k)` macro."""
        ctx = {**self.params, **self.info, "kind": self.kind, "fn": self.fn}
        ctx["users_text"] = self.users_text()
        lines = str(describe(ctx)).strip("\n").split("\n")
        ctx["comment"] = "/* " + "\n * ".join(lines) + " */"
        return ctx


class KernelSet:
    """The distinct kernels of a program, in first-use order."""

    def __init__(self) -> None:
        self.kernels: dict[tuple[Any, ...], Kernel] = {}

    def add(
        self,
        kind: str,
        user: str,
        params: Mapping[str, Any],
        helpers: Sequence[str],
        info: Mapping[str, Any],
    ) -> Kernel:
        """The kernel of this configuration (a new one, or the one a previous user made)."""
        full = with_bounds(params)
        key = (kind, tuple(sorted((k, repr(v)) for k, v in full.items())))
        found = self.kernels.get(key)
        if found is None:
            found = Kernel(kind, f"k_{user}", full, tuple(helpers), dict(info))
            self.kernels[key] = found
        found.users.append(user)
        return found

    def __iter__(self):
        return iter(self.kernels.values())


def helper_texts(
    env: jinja2.Environment, kernels: KernelSet, max_taps: int
) -> tuple[list[str], dict[str, str]]:
    """The shared helpers the kernels call, in dependency order, and their C text."""
    needed = {h for k in kernels for h in k.helpers}
    row_needed = {ROW_HELPERS[h] for h in needed if h in ROW_HELPERS}
    helpers = [h for h in HELPER_ORDER if h in needed or h in row_needed]
    args = {
        "clamp": (),
        "taps": (max_taps,),
        "pointwise": (TILE_SETS,),
        "depthwise": (),
        "direct": (TILE_SETS,),
    }
    text = {}
    for h in helpers:
        module: Any = env.get_template(f"c/ops/{h}.c.j2").module
        if h in row_needed:  # the whole-tensor function only if an untiled kernel calls it
            text[h] = module.helpers(*args[h], full=h in needed, banded=True)
        else:
            text[h] = module.helpers(*args[h])
    return helpers, text
